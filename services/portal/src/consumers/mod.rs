//! Kafka REST Proxy v2 consumer instances: a Kafka consumer kept in the
//! portal on a REST client's behalf, in a consumer group of the client's
//! organization.
//!
//! An instance lives in the portal that created it, as in REST Proxy:
//! clients that cannot stick to one portal instance use the push feeds
//! instead, which keep no state. An instance nobody has used for the idle
//! timeout is closed, leaving its group so its partitions go to the
//! group's other members.
//!
//! Every group is namespaced by organization on the cluster
//! (`freeport.<org>.<group>`): two organizations naming a group alike never
//! share it. Records read under a contract are reshaped by its terms, as
//! the link and the push feeds do.
//!
//! The broker may skip the rest of a batch when asked to fetch from an
//! offset inside it (see `freeport_common::kafka::read_starts`), so every
//! start this consumer takes from a committed offset or a seek fetches from
//! where `read_starts` says and drops the records before the wanted offset.

mod instance;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use freeport_common::error::ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::credentials::{Change, Credential, Crl};
use crate::error::{ApiError, ApiResult};

pub use instance::{
    CommittedOffset, ConsumerRecord, Instance, InstanceContext, Mode, Settings, TopicRead,
};

type Key = (String, String, String);

/// Most consumer instances one organization may hold in one portal: each
/// is a Kafka consumer with its own connections and threads.
pub const MAX_INSTANCES_PER_ORG: usize = 64;

/// Every consumer instance of this portal.
pub struct Consumers {
    instances: Mutex<HashMap<Key, Arc<Mutex<Instance>>>>,
    idle_timeout: Duration,
}

impl Consumers {
    pub fn new(idle_timeout: Duration) -> Consumers {
        Consumers {
            instances: Mutex::new(HashMap::new()),
            idle_timeout,
        }
    }

    fn instances(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Mutex<Instance>>>> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many instances there are.
    pub fn len(&self) -> usize {
        self.instances().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an instance; 40902 when the group has one of that name.
    pub fn create(
        &self,
        org: &str,
        group: &str,
        name: &str,
        settings: Settings,
        credential: Credential,
    ) -> ApiResult<()> {
        let key = (org.to_string(), group.to_string(), name.to_string());
        let mut instances = self.instances();
        if instances.contains_key(&key) {
            return Err(ApiError::new(
                ErrorCode::ConsumerAlreadyExists,
                format!("consumer group {group:?} already has an instance named {name:?}"),
            ));
        }
        if instances.keys().filter(|(o, _, _)| o == org).count() >= MAX_INSTANCES_PER_ORG {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "organization {org:?} holds {MAX_INSTANCES_PER_ORG} consumer instances here, the most allowed; delete some (idle ones close by themselves)"
                ),
            ));
        }
        let instance = Instance::new(org, group, name, settings, credential);
        instances.insert(key, Arc::new(Mutex::new(instance)));
        Ok(())
    }

    /// The caller's instance; 40403 when it has none of that name (another
    /// organization's instances are invisible).
    pub fn get(&self, org: &str, group: &str, name: &str) -> ApiResult<Arc<Mutex<Instance>>> {
        let key = (org.to_string(), group.to_string(), name.to_string());
        self.instances().get(&key).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::ConsumerNotFound,
                format!("consumer instance {name:?} not found in group {group:?}"),
            )
        })
    }

    pub fn remove(&self, org: &str, group: &str, name: &str) -> ApiResult<Arc<Mutex<Instance>>> {
        let key = (org.to_string(), group.to_string(), name.to_string());
        self.instances().remove(&key).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ConsumerNotFound,
                format!("consumer instance {name:?} not found in group {group:?}"),
            )
        })
    }

    /// Removes and returns the instances `matches` picks.
    fn take_where(
        &self,
        mut matches: impl FnMut(&Mutex<Instance>) -> bool,
    ) -> Vec<Arc<Mutex<Instance>>> {
        let mut instances = self.instances();
        let keys: Vec<Key> = instances
            .iter()
            .filter(|(_, instance)| matches(instance))
            .map(|(key, _)| key.clone())
            .collect();
        keys.iter()
            .filter_map(|key| instances.remove(key))
            .collect()
    }

    /// Closes instances idle for longer than the timeout, until `shutdown`;
    /// then closes them all.
    pub async fn expire_idle(self: Arc<Self>, shutdown: CancellationToken) {
        let every =
            (self.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let all: Vec<_> = self.instances().drain().map(|(_, i)| i).collect();
                    close(all).await;
                    return;
                }
                _ = tokio::time::sleep(every) => {}
            }
            // One in use (locked) is not idle.
            let expired = self.take_where(|instance| {
                instance
                    .try_lock()
                    .is_ok_and(|i| i.last_used.elapsed() > self.idle_timeout)
            });
            for instance in &expired {
                if let Ok(i) = instance.lock() {
                    tracing::info!(org = %i.org, group = %i.group, instance = %i.name, "consumer instance expired after being idle");
                }
            }
            close(expired).await;
        }
    }
}

impl Consumers {
    /// Closes the instances whose creator's credential is withdrawn, as
    /// the changes say, until `shutdown`.
    pub async fn close_withdrawn(
        self: Arc<Self>,
        mut changes: tokio::sync::broadcast::Receiver<Change>,
        crl: Crl,
        shutdown: CancellationToken,
    ) {
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                change = changes.recv() => change,
            };
            let change = match change {
                Ok(change) => change,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let withdrawn = self.take_where(|instance| {
                instance
                    .lock()
                    .is_ok_and(|i| change.withdraws(&i.credential, &crl))
            });
            for instance in &withdrawn {
                if let Ok(i) = instance.lock() {
                    tracing::info!(org = %i.org, group = %i.group, instance = %i.name, "consumer instance closed: {} was withdrawn", i.credential.describe());
                }
            }
            close(withdrawn).await;
        }
    }
}

/// Closes instances' consumers (leaving their groups) off the async
/// runtime: closing blocks.
pub async fn close(instances: Vec<Arc<Mutex<Instance>>>) {
    if instances.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for instance in instances {
            let consumer = instance
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .consumer
                .take();
            drop(consumer);
        }
    })
    .await;
}

/// Runs `f` on the instance off the async runtime (rdkafka's calls
/// block), marking it used.
pub async fn with_instance<T: Send + 'static>(
    instance: Arc<Mutex<Instance>>,
    f: impl FnOnce(&mut Instance) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || {
        let mut instance = instance.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut instance);
        instance.last_used = Instant::now();
        result
    })
    .await
    .map_err(|e| ApiError::internal("consumer instance task failed", e))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Format;

    fn key() -> Credential {
        Credential::Key("key-test".into())
    }

    fn settings() -> Settings {
        Settings {
            format: Format::Json,
            auto_offset_reset: "earliest",
            auto_commit: false,
            request_timeout: Duration::from_secs(1),
            max_bytes: 1024,
            decoder: None,
        }
    }

    #[test]
    fn instances_are_per_organization_unique_and_capped() {
        let consumers = Consumers::new(Duration::from_secs(60));
        consumers
            .create("acme", "g", "a", settings(), key())
            .unwrap();
        let taken = consumers
            .create("acme", "g", "a", settings(), key())
            .unwrap_err();
        assert_eq!(taken.code, ErrorCode::ConsumerAlreadyExists);
        // Another organization's group of the same name is its own.
        consumers
            .create("globex", "g", "a", settings(), key())
            .unwrap();
        assert!(consumers.get("globex", "g", "a").is_ok());
        assert!(matches!(
            consumers.get("initech", "g", "a"),
            Err(e) if e.code == ErrorCode::ConsumerNotFound
        ));
        for i in 1..MAX_INSTANCES_PER_ORG {
            consumers
                .create("acme", "g", &format!("i{i}"), settings(), key())
                .unwrap();
        }
        let capped = consumers
            .create("acme", "g", "one-more", settings(), key())
            .unwrap_err();
        assert_eq!(capped.code, ErrorCode::TooManyRequests);
        consumers
            .create("globex", "g", "b", settings(), key())
            .unwrap();
        consumers.remove("acme", "g", "a").unwrap();
        consumers
            .create("acme", "g", "one-more", settings(), key())
            .unwrap();
    }
}
