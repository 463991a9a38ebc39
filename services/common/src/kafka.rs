//! librdkafka client settings and the topic helpers the services share.
//!
//! librdkafka's calls for metadata and watermarks block, so the async
//! helpers here run them on the blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaErrorCode as Code;

use crate::config::ClusterConfig;

/// How long a metadata or admin call may take before it counts as failed.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Settings every client of `cluster` gets.
pub fn client_config(cluster: &ClusterConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &cluster.bootstrap)
        .set("client.id", client_id)
        // Quiet the per-connection retry noise; errors still surface as results.
        .set("log_level", "4")
        .set("socket.keepalive.enable", "true");
    config
}

/// A consumer used only for metadata: never joins a group, never creates topics.
pub fn metadata_consumer(cluster: &ClusterConfig) -> Result<BaseConsumer, KafkaError> {
    client_config(cluster, "freeport-metadata")
        .set("allow.auto.create.topics", "false")
        .set("enable.auto.commit", "false")
        .set("group.id", "freeport-metadata")
        .create()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| KafkaError::Canceled)?
}

/// The topic's partition count, or `None` when the topic does not exist.
pub async fn partition_count(
    cluster: &ClusterConfig,
    topic: &str,
) -> Result<Option<usize>, KafkaError> {
    let consumer = metadata_consumer(cluster)?;
    let topic = topic.to_string();
    blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match found.error() {
            None if !found.partitions().is_empty() => Ok(Some(found.partitions().len())),
            None => Ok(None),
            Some(e) if RDKafkaErrorCode::from(e) == Code::UnknownTopicOrPartition => Ok(None),
            Some(e) => Err(KafkaError::MetadataFetch(e.into())),
        }
    })
    .await
}

/// Creates `topic` with `partitions` partitions unless it exists; returns
/// the partition count it has afterwards.
pub async fn ensure_topic(
    cluster: &ClusterConfig,
    topic: &str,
    partitions: usize,
) -> Result<usize, KafkaError> {
    ensure_topic_with(cluster, topic, partitions, &[]).await
}

/// [`ensure_topic`], with topic configs (`retention.ms`, ...) applied when
/// the topic is created; an existing topic is left as it is.
pub async fn ensure_topic_with(
    cluster: &ClusterConfig,
    topic: &str,
    partitions: usize,
    configs: &[(&str, &str)],
) -> Result<usize, KafkaError> {
    if let Some(existing) = partition_count(cluster, topic).await? {
        return Ok(existing);
    }
    let count = i32::try_from(partitions).unwrap_or(i32::MAX);
    if let Some(creator) = topic_creator(&cluster.bootstrap) {
        let name = topic.to_string();
        blocking(move || {
            creator(&name, count).map_err(|e| {
                tracing::warn!(topic = %name, error = %e, "topic creation failed");
                KafkaError::AdminOp(Code::Fail)
            })
        })
        .await?;
        return Ok(partitions);
    }
    let admin: AdminClient<DefaultClientContext> =
        client_config(cluster, "freeport-admin").create()?;
    let mut new_topic = NewTopic::new(topic, count, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) => {}
            // Someone else created it between our check and our request.
            Err((_, Code::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::warn!(topic = %name, ?code, "topic creation failed");
                })
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
    Err(KafkaError::AdminOp(Code::UnknownTopicOrPartition))
}
