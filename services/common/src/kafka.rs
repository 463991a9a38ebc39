//! librdkafka client settings and the topic helpers the services share.
//!
//! librdkafka's calls for metadata and watermarks block, so the async
//! helpers here run them on the blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode as Code;

use crate::config::ClusterConfig;

mod seek;
pub use seek::{ends_if_past, partition_ends, read_starts, read_starts_blocking, Resume, Start};

/// How long a metadata or admin call may take before it counts as failed.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a full producer queue is left to drain before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);

/// Hands `record` to `producer`, waiting while the producer's queue is
/// full, for at most `give_up` (with `None`, until there is room); the
/// delivery report to await. Any other refusal comes back at once.
pub async fn send_queued<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
    give_up: Option<Duration>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let started = Instant::now();
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                if give_up.is_none_or(|limit| started.elapsed() < limit) =>
            {
                record = returned;
                tokio::time::sleep(QUEUE_FULL_WAIT).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Creates a topic with a partition count on a cluster that cannot do it
/// through the Kafka protocol: librdkafka's in-process mock clusters, used by
/// `freeport up`, have no CreateTopics.
pub type TopicCreator = Arc<dyn Fn(&str, i32) -> Result<(), String> + Send + Sync>;

fn topic_creators() -> &'static Mutex<HashMap<String, TopicCreator>> {
    static CREATORS: OnceLock<Mutex<HashMap<String, TopicCreator>>> = OnceLock::new();
    CREATORS.get_or_init(Default::default)
}

/// Routes [`ensure_topic`] for the cluster at `bootstrap` to `creator`.
pub fn register_topic_creator(bootstrap: &str, creator: TopicCreator) {
    if let Ok(mut creators) = topic_creators().lock() {
        creators.insert(bootstrap.to_string(), creator);
    }
}

fn topic_creator(bootstrap: &str) -> Option<TopicCreator> {
    topic_creators().lock().ok()?.get(bootstrap).cloned()
}

/// Settings every client of `cluster` gets: where it is and, when the
/// cluster wants mutual TLS, the CA, certificate and key to use. Broker
/// host names are checked against their certificates.
pub fn client_config(cluster: &ClusterConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &cluster.bootstrap)
        .set("client.id", client_id)
        // Quiet the per-connection retry noise; errors still surface as results.
        .set("log_level", "4")
        .set("socket.keepalive.enable", "true");
    if let Some(tls) = &cluster.tls {
        config
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", tls.ca.to_string_lossy())
            .set("ssl.certificate.location", tls.cert.to_string_lossy())
            .set("ssl.key.location", tls.key.to_string_lossy())
            .set("ssl.endpoint.identification.algorithm", "https");
    }
    config
}

/// How long [`explain_failure`] waits for librdkafka to say why a
/// call failed.
const EXPLAIN_WAIT: Duration = Duration::from_millis(300);

/// A call to a cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The client never got a usable connection; `reason` is the last thing
    /// the connection said (refused, TLS handshake failed, certificate
    /// rejected), which says far more than the timeout that followed.
    #[error("cannot reach cluster at {bootstrap}: {reason}")]
    Unreachable { bootstrap: String, reason: String },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// A client context that keeps the last connection-level error librdkafka
/// reported, so a failed call can say why instead of only "timed out".
#[derive(Clone, Default)]
pub struct ErrorRecorder {
    last: Arc<Mutex<Option<String>>>,
}

impl ErrorRecorder {
    /// The last connection error reported, if any.
    pub fn last(&self) -> Option<String> {
        self.last.lock().ok()?.clone()
    }

    /// Forgets the last error, before a new attempt.
    pub fn clear(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = None;
        }
    }

    /// `error` as a [`ClusterError`], naming the connection's last complaint
    /// when there was one.
    pub fn explain(&self, cluster: &ClusterConfig, error: KafkaError) -> ClusterError {
        match self.last() {
            Some(reason) => ClusterError::Unreachable {
                bootstrap: cluster.bootstrap.clone(),
                reason,
            },
            None => ClusterError::Kafka(error),
        }
    }
}

/// [`ErrorRecorder::explain`] for a consumer's failed call. librdkafka
/// queues its logs and errors for the consumer's next poll, so this polls
/// for up to [`EXPLAIN_WAIT`] until the reason arrives. Blocks.
pub fn explain_failure(
    consumer: &BaseConsumer<ErrorRecorder>,
    cluster: &ClusterConfig,
    error: KafkaError,
) -> ClusterError {
    let deadline = std::time::Instant::now() + EXPLAIN_WAIT;
    while consumer.context().last().is_none() && std::time::Instant::now() < deadline {
        // Serves the queued callbacks; a message it returns is not wanted
        // by a caller that is giving up.
        let _ = consumer.poll(Duration::from_millis(20));
    }
    consumer.context().explain(cluster, error)
}

impl ErrorRecorder {
    fn record(&self, reason: &str) {
        // "[thrd:ssl://host:port/bootstrap]: " says nothing the rest does not.
        let reason = match reason.strip_prefix("[thrd:") {
            Some(rest) => rest.split_once("]: ").map_or(reason, |(_, r)| r),
            None => reason,
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(reason.to_string());
        }
    }
}

impl ClientContext for ErrorRecorder {
    /// Connection failures (refused, TLS handshake, certificate) arrive
    /// here, on librdkafka's own threads, while a call is still waiting.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "kafka client log");
        if (level as i32) <= (RDKafkaLogLevel::Error as i32) {
            self.record(log_message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, %reason, "kafka client error");
        // "1/1 brokers are down" would hide why they are.
        if error.rdkafka_error_code() != Some(Code::AllBrokersDown) {
            self.record(reason);
        }
    }
}

impl ConsumerContext for ErrorRecorder {}

/// A consumer used only for metadata: never joins a group, never creates topics.
pub fn metadata_consumer(
    cluster: &ClusterConfig,
) -> Result<BaseConsumer<ErrorRecorder>, KafkaError> {
    client_config(cluster, "freeport-metadata")
        .set("allow.auto.create.topics", "false")
        .set("enable.auto.commit", "false")
        .set("group.id", "freeport-metadata")
        .create_with_context(ErrorRecorder::default())
}

async fn blocking<T: Send + 'static, E: From<KafkaError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| E::from(KafkaError::Canceled))?
}

/// The topic's partition count, or `None` when the topic does not exist.
pub async fn partition_count(
    cluster: &ClusterConfig,
    topic: &str,
) -> Result<Option<usize>, ClusterError> {
    Ok(topic_layout(cluster, topic)
        .await?
        .map(|partitions| partitions.len()))
}

/// The ids of the cluster's brokers, sorted. Asks for one topic's metadata
/// (a reserved name that nobody creates), not every topic's: the answer
/// names every broker either way.
pub async fn broker_ids(cluster: &ClusterConfig) -> Result<Vec<i32>, ClusterError> {
    let consumer = metadata_consumer(cluster)?;
    let cluster = cluster.clone();
    blocking(move || {
        let metadata = consumer
            .fetch_metadata(
                Some(&format!("{}metadata", crate::names::RESERVED_TOPIC_PREFIX)),
                METADATA_TIMEOUT,
            )
            .map_err(|e| explain_failure(&consumer, &cluster, e))?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    })
    .await
}

/// One partition of a topic as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    pub id: i32,
    /// The leader's broker id; -1 when there is none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync: Vec<i32>,
}

/// The topic's partitions, ordered by id, or `None` when the topic does
/// not exist.
pub async fn topic_layout(
    cluster: &ClusterConfig,
    topic: &str,
) -> Result<Option<Vec<PartitionLayout>>, ClusterError> {
    let consumer = metadata_consumer(cluster)?;
    let topic = topic.to_string();
    let cluster = cluster.clone();
    blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            .map_err(|e| explain_failure(&consumer, &cluster, e))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match found.error() {
            None if !found.partitions().is_empty() => {}
            None => return Ok(None),
            Some(e) if RDKafkaErrorCode::from(e) == Code::UnknownTopicOrPartition => {
                return Ok(None)
            }
            Some(e) => return Err(KafkaError::MetadataFetch(e.into()).into()),
        }
        let mut partitions: Vec<_> = found
            .partitions()
            .iter()
            .map(|p| PartitionLayout {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                in_sync: p.isr().to_vec(),
            })
            .collect();
        partitions.sort_by_key(|p| p.id);
        Ok(Some(partitions))
    })
    .await
}

/// The values of `keys` among `topic`'s configs, as the cluster reports
/// them. A broker that does not describe configs (the test broker, the
/// in-process mock clusters) gives an empty map: unknown, not defaults.
pub async fn topic_configs(
    cluster: &ClusterConfig,
    topic: &str,
    keys: &[&str],
) -> BTreeMap<String, String> {
    let mut configs = all_topic_configs(cluster, topic).await;
    configs.retain(|name, _| keys.contains(&name.as_str()));
    configs
}

/// Every config of `topic` the cluster reports a value for; empty when it
/// describes none (see [`topic_configs`]).
pub async fn all_topic_configs(cluster: &ClusterConfig, topic: &str) -> BTreeMap<String, String> {
    let mut configs = BTreeMap::new();
    if topic_creator(&cluster.bootstrap).is_some() {
        // A mock cluster: no admin API, and asking waits out the timeout.
        return configs;
    }
    let described = async {
        let admin: AdminClient<ErrorRecorder> = client_config(cluster, "freeport-admin")
            .create_with_context(ErrorRecorder::default())?;
        let options = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
        admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
            .await
    };
    match described.await {
        Ok(results) => {
            for resource in results.into_iter().flatten() {
                for entry in resource.entries {
                    if let Some(value) = entry.value {
                        configs.insert(entry.name, value);
                    }
                }
            }
        }
        Err(e) => tracing::debug!(%topic, error = %e, "topic configs unknown"),
    }
    configs
}

/// Each config of `wanted` that `found` reports with another value, as
/// `key: wanted → found`. A key `found` does not report is unknown, not a
/// difference.
pub fn config_differences(
    wanted: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> Vec<String> {
    wanted
        .iter()
        .filter_map(|(key, value)| {
            let other = found.get(key)?;
            (other != value).then(|| format!("{key}: source {value:?}, destination {other:?}"))
        })
        .collect()
}

/// Creates `topic` with `partitions` partitions unless it exists; returns
/// the partition count it has afterwards.
pub async fn ensure_topic(
    cluster: &ClusterConfig,
    topic: &str,
    partitions: usize,
) -> Result<usize, ClusterError> {
    ensure_topic_with(cluster, topic, partitions, &[]).await
}

/// [`ensure_topic`], with topic configs (`retention.ms`, ...) applied when
/// the topic is created; an existing topic is left as it is.
pub async fn ensure_topic_with(
    cluster: &ClusterConfig,
    topic: &str,
    partitions: usize,
    configs: &[(&str, &str)],
) -> Result<usize, ClusterError> {
    if let Some(existing) = partition_count(cluster, topic).await? {
        return Ok(existing);
    }
    let count = i32::try_from(partitions).unwrap_or(i32::MAX);
    if let Some(creator) = topic_creator(&cluster.bootstrap) {
        let name = topic.to_string();
        blocking(move || {
            creator(&name, count).map_err(|e| {
                tracing::warn!(topic = %name, error = %e, "topic creation failed");
                ClusterError::from(KafkaError::AdminOp(Code::Fail))
            })
        })
        .await?;
        return Ok(partitions);
    }
    let admin: AdminClient<ErrorRecorder> =
        client_config(cluster, "freeport-admin").create_with_context(ErrorRecorder::default())?;
    let mut new_topic = NewTopic::new(topic, count, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| admin.inner().context().explain(cluster, e))?;
    for result in results {
        match result {
            Ok(_) => {}
            // Someone else created it between our check and our request.
            Err((_, Code::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::warn!(topic = %name, ?code, "topic creation failed");
                return Err(KafkaError::AdminOp(code).into());
            }
        }
    }
    // Metadata can lag creation for a moment.
    for _ in 0..50 {
        if let Some(count) = partition_count(cluster, topic).await? {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(KafkaError::AdminOp(Code::UnknownTopicOrPartition).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_both_values_and_skip_unknown_keys() {
        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let wanted = configs(&[("cleanup.policy", "compact"), ("retention.ms", "86400000")]);
        assert!(config_differences(&wanted, &wanted).is_empty());
        assert!(
            config_differences(&wanted, &BTreeMap::new()).is_empty(),
            "a broker that reports nothing is unknown, not different"
        );
        let found = configs(&[("cleanup.policy", "delete"), ("retention.ms", "86400000")]);
        assert_eq!(
            config_differences(&wanted, &found),
            ["cleanup.policy: source \"compact\", destination \"delete\""]
        );
    }
}
