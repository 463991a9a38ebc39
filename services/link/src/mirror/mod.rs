//! One mirror: copies a contract's source topic to its destination topic,
//! exactly once without broker transactions (the protocol is in
//! [`crate::provenance`]).
//!
//! A run is a few steps: prepare the destination topic, find where to
//! resume from its tail ([`resume`]), open the source consumer and the
//! destination producer, start the monitor and the offset translation
//! ([`progress`]), copy records until stopped ([`copy`]), then flush what
//! is in flight. A failed run is retried with backoff; each retry resumes
//! from the destination's tail again.

mod copy;
mod progress;
mod resume;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::{
    client_config, config_differences, ensure_topic_with, partition_count, read_starts,
    topic_configs, Resume, Start,
};
use freeport_common::terms::Reshaper;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::error::MirrorError;
use crate::offsets::{OffsetMap, Topics};
use crate::plan::MirrorSpec;
use crate::provenance::{Floors, ResumePoint};
use crate::status::StatusReporter;
use copy::Copier;
use progress::{Pending, Progress};
pub use resume::resume_positions;

/// Records produced but not yet acknowledged; bounds memory when the
/// destination is slower than the source.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long stopping may wait for records in flight.
const STOP_FLUSH: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Topic configs the destination must share with the source: set when the
/// mirror creates the destination topic, compared when it exists.
const MIRRORED_CONFIGS: [&str; 3] = ["cleanup.policy", "retention.ms", "retention.bytes"];

pub struct Mirror {
    pub spec: MirrorSpec,
    pub source: ClusterConfig,
    pub destination: ClusterConfig,
    /// The contract's terms, when they reshape records.
    pub reshaper: Option<Reshaper>,
    /// The contract's maximum rate, in records per second.
    pub rate: Option<NonZeroU32>,
    /// Asked for the schemas reshaped values in the Confluent wire format
    /// are written under ([`copy::DeliveredSchemas`]).
    pub catalog: freeport_common::proto::catalog::v1::catalog_service_client::CatalogServiceClient<
        tonic::transport::Channel,
    >,
}

/// The partition counts a run works with.
struct Partitions {
    source: usize,
    destination: usize,
}

/// Where a run starts reading the source.
struct StartAt {
    /// Per partition, one past the last record this contract wrote.
    resume: HashMap<i32, ResumePoint>,
    /// Where to fetch from, so the broker skips nothing from the resume
    /// points on.
    fetch: HashMap<i32, Start>,
}

impl Mirror {
    /// Mirrors until `cancel` fires, restarting with backoff after failures.
    /// Each restart resumes from the destination's tail.
    pub async fn run(self, status: StatusReporter, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let started = Instant::now();
            match self.run_once(&status, &cancel).await {
                Ok(()) => {
                    status.stopped().await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(contract = %self.spec.contract_id, error = %e, "mirror failed; retrying");
                    status.error(&e.to_string()).await;
                }
            }
            if started.elapsed() > MAX_BACKOFF {
                backoff = Duration::from_millis(250);
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    status.stopped().await;
                    return;
                }
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn run_once(
        &self,
        status: &StatusReporter,
        cancel: &CancellationToken,
    ) -> Result<(), MirrorError> {
        let partitions = self.prepare_destination().await?;
        let start = self.start_at(partitions.destination).await?;
        let consumer = self.open_source(partitions.source, &start)?;
        let producer = self.open_destination()?;
        status.running().await;

        let progress = Arc::new(Progress::new(partitions.source, &start.resume));
        let monitoring = cancel.child_token();
        tokio::spawn(progress::monitor(
            consumer.clone(),
            self.spec.source_topic.clone(),
            progress.clone(),
            status.clone(),
            monitoring.clone(),
        ));
        let translations = self.translate_groups(partitions.source, &start.resume, &monitoring);
        let _stop_monitor = monitoring.drop_guard();

        let (in_flight, acknowledged) = mpsc::channel::<(DeliveryFuture, Pending)>(MAX_IN_FLIGHT);
        let mut deliveries = progress::deliveries(acknowledged, progress.clone(), translations);
        let floors = Floors::new(partitions.source, &start.resume);
        let mut copier = Copier::new(self, floors, progress.clone())?;
        let result = loop {
            tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                delivered = &mut deliveries => {
                    // The delivery task only ends early on a failed delivery.
                    break Err(match delivered {
                        Ok(Err(e)) => MirrorError::Kafka(e),
                        _ => MirrorError::Kafka(KafkaError::Canceled),
                    });
                }
                message = consumer.recv() => {
                    let Some(sent) = copier.copy(&producer, &message?).await? else {
                        continue;
                    };
                    progress.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if in_flight.send(sent).await.is_err() {
                        continue; // the delivery task failed; the next turn reports it
                    }
                }
            }
        };
        drop(in_flight);
        self.finish(&producer, deliveries, result.is_ok()).await;
        result
    }

    /// Creates the destination topic with the source's partitions and
    /// mirrored configs, or checks the one that exists.
    async fn prepare_destination(&self) -> Result<Partitions, MirrorError> {
        let spec = &self.spec;
        let source = partition_count(&self.source, &spec.source_topic)
            .await?
            .ok_or_else(|| MirrorError::SourceTopicMissing(spec.source_topic.clone()))?;
        let mut wanted = topic_configs(&self.source, &spec.source_topic, &MIRRORED_CONFIGS).await;
        if spec.retention_ms > 0 {
            wanted
                .entry("retention.ms".to_string())
                .or_insert_with(|| spec.retention_ms.to_string());
        }
        let destination = match partition_count(&self.destination, &spec.destination_topic).await? {
            None => {
                let configs: Vec<(&str, &str)> = wanted
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                ensure_topic_with(&self.destination, &spec.destination_topic, source, &configs)
                    .await?
            }
            Some(existing) => {
                let found = topic_configs(
                    &self.destination,
                    &spec.destination_topic,
                    &MIRRORED_CONFIGS,
                )
                .await;
                let differences = config_differences(&wanted, &found);
                if !differences.is_empty() {
                    return Err(MirrorError::ConfigMismatch {
                        topic: spec.destination_topic.clone(),
                        differences,
                    });
                }
                existing
            }
        };
        if destination < source {
            return Err(MirrorError::PartitionMismatch {
                topic: spec.destination_topic.clone(),
                destination,
                source_count: source,
            });
        }
        Ok(Partitions {
            source,
            destination,
        })
    }

    /// Where to resume, from the destination's tail, and where to fetch the
    /// source from to get there.
    async fn start_at(&self, destination_partitions: usize) -> Result<StartAt, MirrorError> {
        let spec = &self.spec;
        let resume = resume_positions(
            &self.destination,
            &spec.destination_topic,
            &spec.contract_id,
            destination_partitions,
        )
        .await?;
        let fetch = if resume.is_empty() {
            HashMap::new()
        } else {
            let wanted = resume
                .iter()
                .map(|(&p, point)| (p, Resume::At(point.next)))
                .collect();
            read_starts(&self.source, &spec.source_topic, wanted).await?
        };
        Ok(StartAt { resume, fetch })
    }

    /// The source consumer, assigned every partition at its start (from the
    /// beginning where nothing was mirrored yet).
    fn open_source(
        &self,
        partitions: usize,
        start: &StartAt,
    ) -> Result<Arc<StreamConsumer>, MirrorError> {
        let spec = &self.spec;
        let consumer: Arc<StreamConsumer> = Arc::new(
            client_config(&self.source, "freeport-link")
                .set("group.id", format!("freeport-link.{}", spec.contract_id))
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .set("auto.offset.reset", "earliest")
                .set("fetch.wait.max.ms", "50")
                .create()?,
        );
        let mut assignment = TopicPartitionList::new();
        for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
            let offset = start
                .fetch
                .get(&partition)
                .map_or(Offset::Beginning, |start| Offset::Offset(start.fetch_from));
            assignment.add_partition_offset(&spec.source_topic, partition, offset)?;
        }
        consumer.assign(&assignment)?;
        tracing::info!(
            contract = %spec.contract_id,
            source = %format!("{}/{}", spec.source_cluster, spec.source_topic),
            destination = %format!("{}/{}", spec.destination_cluster, spec.destination_topic),
            resume = ?start.resume,
            starts = ?start.fetch,
            "mirror running"
        );
        Ok(consumer)
    }

    /// The destination producer: idempotent, so a run neither duplicates
    /// nor reorders.
    fn open_destination(&self) -> Result<FutureProducer, MirrorError> {
        Ok(client_config(&self.destination, "freeport-link")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()?)
    }

    /// When the terms name consumer groups: the map of where source offsets
    /// landed, seeded from the resume points, and the task that translates
    /// the groups' offsets with it until `stop`.
    fn translate_groups(
        &self,
        partitions: usize,
        resume: &HashMap<i32, ResumePoint>,
        stop: &CancellationToken,
    ) -> Option<Arc<Mutex<OffsetMap>>> {
        let spec = &self.spec;
        if spec.terms.consumer_groups.is_empty() {
            return None;
        }
        let mut map = OffsetMap::default();
        for (&partition, point) in resume {
            if point.landed_at >= 0 {
                map.record(partition, point.next - 1, point.landed_at);
            }
        }
        let map = Arc::new(Mutex::new(map));
        tokio::spawn(crate::offsets::sync(
            self.source.clone(),
            self.destination.clone(),
            Topics {
                source: spec.source_topic.clone(),
                destination: spec.destination_topic.clone(),
                partitions,
            },
            spec.terms.consumer_groups.clone(),
            map.clone(),
            stop.clone(),
        ));
        Some(map)
    }

    /// Flushes the producer and, after a clean stop, waits (briefly) for
    /// the deliveries in flight.
    async fn finish(
        &self,
        producer: &FutureProducer,
        mut deliveries: JoinHandle<Result<(), KafkaError>>,
        clean: bool,
    ) {
        let flushing = producer.clone();
        let _ = tokio::task::spawn_blocking(move || flushing.flush(STOP_FLUSH)).await;
        if clean {
            match tokio::time::timeout(STOP_FLUSH, &mut deliveries).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::warn!(contract = %self.spec.contract_id, error = %e, "delivery failed while stopping")
                }
                _ => {
                    tracing::warn!(contract = %self.spec.contract_id, "records still in flight when the mirror stopped")
                }
            }
        }
        deliveries.abort();
    }
}
