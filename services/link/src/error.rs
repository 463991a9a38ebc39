//! What can go wrong: starting the link, and running one mirror.

use freeport_common::kafka::ClusterError;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] freeport_common::tls::TlsError),
    #[error("invalid catalog_url: {0}")]
    CatalogUrl(#[from] tonic::transport::Error),
    #[error("link.hash_key must be at least 32 characters")]
    HashKey,
    #[error(transparent)]
    Metrics(#[from] freeport_common::metrics::MetricsError),
    #[error(transparent)]
    Ops(#[from] freeport_common::ops::OpsError),
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cluster {0:?} is not configured on this link")]
    UnknownCluster(String),
    #[error("source topic {0:?} does not exist")]
    SourceTopicMissing(String),
    #[error(
        "destination topic {topic:?} has {destination} partitions, fewer than the source's {source_count}"
    )]
    PartitionMismatch {
        topic: String,
        destination: usize,
        source_count: usize,
    },
    #[error("destination topic {topic:?} differs from the source: {}", differences.join("; "))]
    ConfigMismatch {
        topic: String,
        differences: Vec<String>,
    },
    #[error("cannot read the tail of destination topic {topic:?} (partitions {partitions:?}) to find where to resume")]
    TailUnreadable { topic: String, partitions: Vec<i32> },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot ask the catalog: {0}")]
    Catalog(String),
}
