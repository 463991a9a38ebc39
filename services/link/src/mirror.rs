//! One mirror: copies a contract's source topic to its destination topic.
//!
//! Exactly once without broker transactions: every record written carries
//! provenance headers naming its source partition and offset. On start the
//! mirror reads the tail of each destination partition and resumes the
//! source right after the last offset that arrived. The destination producer
//! is idempotent, so within one run nothing is duplicated or reordered, and
//! anything a crash left unacknowledged is either in the tail (and skipped)
//! or not (and copied again).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::{
    client_config, config_differences, ensure_topic, ensure_topic_with, explain_failure,
    partition_count, read_starts, topic_configs, ClusterError, ErrorRecorder, Resume,
    METADATA_TIMEOUT,
};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Sample;
use crate::offsets::{OffsetMap, Topics};
use crate::plan::MirrorSpec;
use crate::status::StatusReporter;
use freeport_common::telemetry;
use freeport_common::terms::{Outcome, Reshaper};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::KeyValue;

pub const HEADER_SOURCE_CLUSTER: &str = "freeport.source.cluster";
pub const HEADER_SOURCE_TOPIC: &str = "freeport.source.topic";
pub const HEADER_SOURCE_PARTITION: &str = "freeport.source.partition";
pub const HEADER_SOURCE_OFFSET: &str = "freeport.source.offset";
pub const HEADER_CONTRACT: &str = "freeport.contract";
/// Why a record went to the dead-letter topic.
pub const HEADER_DEAD_LETTER_REASON: &str = "freeport.dead_letter.reason";

/// The dead-letter topic of a contract, on the source (owner's) cluster: a
/// record that could not be reshaped must not reach the partner.
pub fn dead_letter_topic(contract_id: &str) -> String {
    format!("freeport.dlq.{contract_id}")
}

/// Records produced but not yet acknowledged; bounds memory when the
/// destination is slower than the source.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long stopping may wait for records in flight.
const STOP_FLUSH: Duration = Duration::from_secs(1);
/// Reading a destination tail ends after this long without a record.
const TAIL_IDLE: Duration = Duration::from_millis(1500);
const TAIL_DEADLINE: Duration = Duration::from_secs(20);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Topic configs the destination must share with the source: set when the
/// mirror creates the destination topic, compared when it exists.
const MIRRORED_CONFIGS: [&str; 3] = ["cleanup.policy", "retention.ms", "retention.bytes"];
/// How often a running mirror samples its progress for the metrics and
/// checks whether it is stalled.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Records waiting and none acknowledged for this long: stalled.
const STALL_AFTER: Duration = Duration::from_secs(10);
/// How long a sample may wait for the source's watermarks.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// What a record in flight is, for the progress counters.
struct Pending {
    partition: i32,
    source_offset: i64,
    timestamp_ms: i64,
    bytes: u64,
    /// The record's `mirror` span, ended when the destination has it.
    mirroring: Option<opentelemetry::Context>,
}

/// A running mirror's progress, shared by the copy loop, the delivery task
/// and the monitor. Atomics only: the copy loop touches it per record.
struct Progress {
    /// Per source partition, the next offset the copy loop will take; -1
    /// before the first record (the mirror starts at the beginning).
    next: Vec<AtomicI64>,
    sent: AtomicU64,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    /// Source timestamp of the record the delivery task waits on; 0 if none.
    oldest_unacked_ms: AtomicI64,
    last_acked_ms: AtomicI64,
}

impl Progress {
    fn new(partitions: usize, resume: &HashMap<i32, ResumePoint>) -> Progress {
        Progress {
            next: (0..partitions)
                .map(|p| {
                    let p = i32::try_from(p).unwrap_or(i32::MAX);
                    AtomicI64::new(resume.get(&p).map_or(-1, |point| point.next))
                })
                .collect(),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            acked_bytes: AtomicU64::new(0),
            oldest_unacked_ms: AtomicI64::new(0),
            last_acked_ms: AtomicI64::new(0),
        }
    }

    fn consumed(&self, partition: i32, offset: i64) {
        if let Some(next) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.next.get(p))
        {
            next.store(offset + 1, Ordering::Relaxed);
        }
    }
}

/// Records in the source after `positions` (per partition, -1 for "from the
/// beginning"). A partition whose watermarks cannot be read counts as 0.
fn source_lag(consumer: &StreamConsumer, topic: &str, positions: &[i64]) -> u64 {
    let mut lag = 0;
    for (partition, &next) in positions.iter().enumerate() {
        let partition = i32::try_from(partition).unwrap_or(i32::MAX);
        let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, LAG_TIMEOUT) else {
            continue;
        };
        let next = if next < 0 { low } else { next };
        lag += u64::try_from(high - next).unwrap_or(0);
    }
    lag
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Samples a running mirror every [`SAMPLE_INTERVAL`]: rates and lag to the
/// metrics, and `stalled` to the catalog when records wait and none has
/// been acknowledged for [`STALL_AFTER`] (and `running` once they move).
async fn monitor(
    consumer: Arc<StreamConsumer>,
    topic: String,
    progress: Arc<Progress>,
    status: StatusReporter,
    stop: CancellationToken,
) {
    let contract = status.contract_id().to_string();
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut acked, mut bytes) = (0u64, 0u64);
    let mut sampled = Instant::now();
    let mut moved = Instant::now();
    let mut stalled = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now_acked = progress.acked.load(Ordering::Relaxed);
        let now_bytes = progress.acked_bytes.load(Ordering::Relaxed);
        let in_flight = progress
            .sent
            .load(Ordering::Relaxed)
            .saturating_sub(now_acked);
        let positions: Vec<i64> = progress
            .next
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        let (reader, topic) = (consumer.clone(), topic.clone());
        let behind = tokio::task::spawn_blocking(move || source_lag(&reader, &topic, &positions))
            .await
            .unwrap_or(0);
        let lag = in_flight + behind;
        let oldest = match progress.oldest_unacked_ms.load(Ordering::Relaxed) {
            0 => progress.last_acked_ms.load(Ordering::Relaxed),
            oldest => oldest,
        };
        let lag_milliseconds = if lag == 0 || oldest == 0 {
            0
        } else {
            u64::try_from(now_ms() - oldest).unwrap_or(0)
        };
        let elapsed = sampled.elapsed().as_secs_f64().max(1e-3);
        let metrics = status.metrics();
        metrics.acknowledged(&contract, now_acked - acked, now_bytes - bytes);
        metrics.sample(
            &contract,
            Sample {
                records_per_second: (now_acked - acked) as f64 / elapsed,
                bytes_per_second: (now_bytes - bytes) as f64 / elapsed,
                lag_records: lag,
                lag_milliseconds,
            },
        );
        if now_acked != acked || lag == 0 {
            moved = Instant::now();
        }
        (acked, bytes, sampled) = (now_acked, now_bytes, Instant::now());
        match (stalled, moved.elapsed() >= STALL_AFTER) {
            (false, true) => {
                stalled = true;
                let detail = format!(
                    "{lag} records waiting and none acknowledged by the destination for {}s",
                    moved.elapsed().as_secs()
                );
                tracing::warn!(%contract, "mirror stalled: {detail}");
                status.stalled(&detail).await;
            }
            (true, false) => {
                stalled = false;
                tracing::info!(%contract, "mirror moving again");
                status.running().await;
            }
            _ => {}
        }
    }
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
}

pub struct Mirror {
    pub spec: MirrorSpec,
    pub source: ClusterConfig,
    pub destination: ClusterConfig,
    /// The contract's terms, when they reshape records.
    pub reshaper: Option<Reshaper>,
    /// The contract's maximum rate, in records per second.
    pub rate: Option<NonZeroU32>,
}

/// At most `per_second` records in each one-second window.
struct RateLimit {
    per_second: u32,
    window: Instant,
    used: u32,
}

impl RateLimit {
    async fn acquire(&mut self) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.used = 0;
        }
        if self.used >= self.per_second {
            tokio::time::sleep(Duration::from_secs(1).saturating_sub(self.window.elapsed())).await;
            self.window = Instant::now();
            self.used = 0;
        }
        self.used += 1;
    }
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
        let spec = &self.spec;
        let partitions = partition_count(&self.source, &spec.source_topic)
            .await?
            .ok_or_else(|| MirrorError::SourceTopicMissing(spec.source_topic.clone()))?;
        let mut wanted = topic_configs(&self.source, &spec.source_topic, &MIRRORED_CONFIGS).await;
        if spec.retention_ms > 0 {
            wanted
                .entry("retention.ms".to_string())
                .or_insert_with(|| spec.retention_ms.to_string());
        }
        let destination_partitions =
            match partition_count(&self.destination, &spec.destination_topic).await? {
                None => {
                    let configs: Vec<(&str, &str)> = wanted
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    ensure_topic_with(
                        &self.destination,
                        &spec.destination_topic,
                        partitions,
                        &configs,
                    )
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
        if destination_partitions < partitions {
            return Err(MirrorError::PartitionMismatch {
                topic: spec.destination_topic.clone(),
                destination: destination_partitions,
                source_count: partitions,
            });
        }
        let resume = resume_positions(
            &self.destination,
            &spec.destination_topic,
            &spec.contract_id,
            destination_partitions,
        )
        .await?;
        // Where to fetch from so the broker skips nothing from the resume
        // points on; records before them are dropped below.
        let starts = if resume.is_empty() {
            HashMap::new()
        } else {
            let wanted = resume
                .iter()
                .map(|(&p, point)| (p, Resume::At(point.next)))
                .collect();
            read_starts(&self.source, &spec.source_topic, wanted).await?
        };
        let floors: Vec<i64> = (0..i32::try_from(partitions).unwrap_or(i32::MAX))
            .map(|p| resume.get(&p).map_or(i64::MIN, |point| point.next))
            .collect();

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
            let offset = starts
                .get(&partition)
                .map_or(Offset::Beginning, |start| Offset::Offset(start.fetch_from));
            assignment.add_partition_offset(&spec.source_topic, partition, offset)?;
        }
        consumer.assign(&assignment)?;
        tracing::info!(
            contract = %spec.contract_id,
            source = %format!("{}/{}", spec.source_cluster, spec.source_topic),
            destination = %format!("{}/{}", spec.destination_cluster, spec.destination_topic),
            ?resume,
            ?starts,
            "mirror running"
        );

        let producer: FutureProducer = client_config(&self.destination, "freeport-link")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()?;
        status.running().await;
        let progress = Arc::new(Progress::new(partitions, &resume));
        let monitoring = cancel.child_token();
        tokio::spawn(monitor(
            consumer.clone(),
            spec.source_topic.clone(),
            progress.clone(),
            status.clone(),
            monitoring.clone(),
        ));
        let translations = (!spec.terms.consumer_groups.is_empty()).then(|| {
            let mut map = OffsetMap::default();
            for (&partition, point) in &resume {
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
                monitoring.clone(),
            ));
            map
        });
        let _stop_monitor = monitoring.drop_guard();

        let (in_flight, mut acknowledged) =
            mpsc::channel::<(DeliveryFuture, Pending)>(MAX_IN_FLIGHT);
        let delivered = progress.clone();
        let mut deliveries = tokio::spawn(async move {
            while let Some((delivery, pending)) = acknowledged.recv().await {
                delivered
                    .oldest_unacked_ms
                    .store(pending.timestamp_ms, Ordering::Relaxed);
                match delivery.await {
                    Ok(Ok(landed)) => {
                        if let Some(cx) = &pending.mirroring {
                            cx.span().set_attribute(KeyValue::new(
                                "freeport.destination.offset",
                                landed.offset,
                            ));
                            telemetry::end(cx, None);
                        }
                        if landed.offset < 0 {
                            tracing::warn!(
                                partition = pending.partition,
                                source_offset = pending.source_offset,
                                "destination acknowledged a record without an offset"
                            );
                        }
                        if let Some(map) = &translations {
                            if let Ok(mut map) = map.lock() {
                                map.record(pending.partition, pending.source_offset, landed.offset);
                            }
                        }
                        delivered.acked.fetch_add(1, Ordering::Relaxed);
                        delivered
                            .acked_bytes
                            .fetch_add(pending.bytes, Ordering::Relaxed);
                        delivered
                            .last_acked_ms
                            .store(pending.timestamp_ms, Ordering::Relaxed);
                        delivered.oldest_unacked_ms.store(0, Ordering::Relaxed);
                    }
                    Ok(Err((e, _))) => {
                        if let Some(cx) = &pending.mirroring {
                            telemetry::end(cx, Some(e.to_string()));
                        }
                        return Err(e);
                    }
                    Err(_) => return Err(KafkaError::Canceled),
                }
            }
            Ok(())
        });

        let mut limit = self.rate.map(|r| RateLimit {
            per_second: r.get(),
            window: Instant::now(),
            used: 0,
        });
        let dead_letters: Option<FutureProducer> = match &self.reshaper {
            Some(_) => Some(
                client_config(&self.source, "freeport-link-dead-letters")
                    .set("enable.idempotence", "true")
                    .set("message.timeout.ms", "30000")
                    .create()?,
            ),
            None => None,
        };
        let mut dead_letter_topic_ready = false;
        let spans = MirrorSpans::new(spec);
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
                    let message = message?;
                    let floor = usize::try_from(message.partition()).ok().and_then(|p| floors.get(p));
                    if floor.is_some_and(|&floor| message.offset() < floor) {
                        continue; // mirrored before the restart
                    }
                    progress.consumed(message.partition(), message.offset());
                    let payload = match &self.reshaper {
                        None => None,
                        Some(reshaper) => match reshaper.apply(message.payload()) {
                            Outcome::Deliver(payload) => Some(payload),
                            // Filtered out. Its offset is re-read after a
                            // restart and filtered again: nothing reaches the
                            // partner twice.
                            Outcome::Skip => continue,
                            Outcome::DeadLetter(reason) => {
                                if let Some(dead_letters) = &dead_letters {
                                    if !dead_letter_topic_ready {
                                        ensure_topic(&self.source, &dead_letter_topic(&spec.contract_id), 1).await?;
                                        dead_letter_topic_ready = true;
                                    }
                                    self.dead_letter(dead_letters, &message, &reason).await?;
                                }
                                continue;
                            }
                        },
                    };
                    if let Some(limit) = limit.as_mut() {
                        limit.acquire().await;
                    }
                    // The value as it will be written: reshaped, or as produced.
                    let value: Option<&[u8]> = match &payload {
                        Some(reshaped) => reshaped.as_deref(),
                        None => message.payload(),
                    };
                    let pending = Pending {
                        partition: message.partition(),
                        source_offset: message.offset(),
                        timestamp_ms: message.timestamp().to_millis().unwrap_or_else(now_ms),
                        bytes: (message.key().map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len))
                            as u64,
                        mirroring: spans.as_ref().map(|spans| spans.start(&message)),
                    };
                    let delivery = self.forward(&producer, &message, value, pending.mirroring.as_ref()).await?;
                    progress.sent.fetch_add(1, Ordering::Relaxed);
                    if in_flight.send((delivery, pending)).await.is_err() {
                        continue; // the delivery task failed; the next turn reports it
                    }
                }
            }
        };
        drop(in_flight);
        let flushing = producer.clone();
        let _ = tokio::task::spawn_blocking(move || flushing.flush(STOP_FLUSH)).await;
        if result.is_ok() {
            match tokio::time::timeout(STOP_FLUSH, &mut deliveries).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::warn!(contract = %spec.contract_id, error = %e, "delivery failed while stopping")
                }
                _ => {
                    tracing::warn!(contract = %spec.contract_id, "records still in flight when the mirror stopped")
                }
            }
        }
        deliveries.abort();
        result
    }

    /// The record as it came, with provenance and the reason, to the
    /// contract's dead-letter topic on the source cluster. Waits for the
    /// broker: a dead letter is never lost silently.
    async fn dead_letter(
        &self,
        producer: &FutureProducer,
        message: &BorrowedMessage<'_>,
        reason: &str,
    ) -> Result<(), MirrorError> {
        tracing::warn!(contract = %self.spec.contract_id, partition = message.partition(), offset = message.offset(), %reason, "record to the dead-letter topic");
        let headers = self.provenance(message, None).insert(Header {
            key: HEADER_DEAD_LETTER_REASON,
            value: Some(reason),
        });
        let topic = dead_letter_topic(&self.spec.contract_id);
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| MirrorError::Kafka(e))
    }

    /// The record's own headers followed by the provenance headers. With
    /// `trace` (the record's `mirror` span), the copy carries that span's
    /// context instead of the trace context the record came with.
    fn provenance(
        &self,
        message: &BorrowedMessage<'_>,
        trace: Option<&opentelemetry::Context>,
    ) -> OwnedHeaders {
        let spec = &self.spec;
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                if trace.is_none() || !telemetry::is_trace_header(header.key) {
                    headers = headers.insert(header);
                }
            }
        }
        for (key, value) in trace.map(telemetry::trace_headers).unwrap_or_default() {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        for (key, value) in [
            (HEADER_SOURCE_CLUSTER, spec.source_cluster.as_str()),
            (HEADER_SOURCE_TOPIC, spec.source_topic.as_str()),
            (HEADER_SOURCE_PARTITION, partition.as_str()),
            (HEADER_SOURCE_OFFSET, offset.as_str()),
            (HEADER_CONTRACT, spec.contract_id.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        headers
    }

    /// Queues one record for the destination: same partition, key, value
    /// (`value`, reshaped or as produced), headers and timestamp, plus provenance.
    async fn forward(
        &self,
        producer: &FutureProducer,
        message: &BorrowedMessage<'_>,
        value: Option<&[u8]>,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<DeliveryFuture, MirrorError> {
        let spec = &self.spec;
        let headers = self.provenance(message, trace);
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(&spec.destination_topic)
                .partition(message.partition())
                .headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            if let Some(ms) = message.timestamp().to_millis() {
                record = record.timestamp(ms);
            }
            match producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
}

/// What the `mirror` spans of one contract share, built once per run: a
/// span per record copied must cost little.
struct MirrorSpans {
    name: String,
    shared: Vec<KeyValue>,
}

impl MirrorSpans {
    /// `None` when tracing is off.
    fn new(spec: &MirrorSpec) -> Option<MirrorSpans> {
        if !telemetry::enabled() {
            return None;
        }
        let text = |value: &str| opentelemetry::Value::from(Arc::<str>::from(value));
        Some(MirrorSpans {
            name: format!("mirror {}", spec.source_topic),
            shared: vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", text(&spec.source_topic)),
                KeyValue::new("freeport.contract.id", text(&spec.contract_id)),
                KeyValue::new("freeport.source.cluster", text(&spec.source_cluster)),
                KeyValue::new(
                    "freeport.destination.cluster",
                    text(&spec.destination_cluster),
                ),
                KeyValue::new("freeport.destination.topic", text(&spec.destination_topic)),
            ],
        })
    }

    /// The span of copying `message`, continuing the trace its headers
    /// carry.
    fn start(&self, message: &BorrowedMessage<'_>) -> opentelemetry::Context {
        let parent = telemetry::record_context(message.headers());
        let attributes = || {
            let mut attributes = Vec::with_capacity(self.shared.len() + 2);
            attributes.extend_from_slice(&self.shared);
            attributes.push(KeyValue::new(
                "messaging.destination.partition.id",
                message.partition().to_string(),
            ));
            attributes.push(KeyValue::new("messaging.kafka.offset", message.offset()));
            attributes
        };
        let span = telemetry::span(self.name.clone(), SpanKind::Consumer, &parent, attributes);
        parent.with_span(span)
    }
}

/// Where a mirror resumes in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// The next source offset to copy: one past the last this contract
    /// wrote.
    pub next: i64,
    /// Where that last record is on the destination.
    pub landed_at: i64,
}

/// For each destination partition, where to resume: one past the last
/// source offset this contract wrote there.
///
/// Reads from just before the reported end and on until each partition
/// reports its end or nothing arrives for a while, because some brokers
/// report an end offset inside the last batch rather than after it. A
/// partition that holds data but shows none before the deadline is an
/// error: guessing would lose or duplicate records.
pub async fn resume_positions(
    destination: &ClusterConfig,
    topic: &str,
    contract_id: &str,
    partitions: usize,
) -> Result<HashMap<i32, ResumePoint>, MirrorError> {
    let consumer: BaseConsumer<ErrorRecorder> = client_config(destination, "freeport-link-resume")
        .set("group.id", format!("freeport-link-resume.{contract_id}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "50")
        .create_with_context(ErrorRecorder::default())?;
    let topic = topic.to_string();
    let contract_id = contract_id.to_string();
    let destination = destination.clone();
    let explain = move |consumer: &BaseConsumer<ErrorRecorder>, e: KafkaError| {
        MirrorError::from(explain_failure(consumer, &destination, e))
    };
    tokio::task::spawn_blocking(move || {
        let mut assignment = TopicPartitionList::new();
        // Partitions holding data: each must show us at least its last
        // record before we trust what we read.
        let mut unread = HashSet::new();
        for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, METADATA_TIMEOUT)
                .map_err(|e| explain(&consumer, e))?;
            if high > low {
                assignment.add_partition_offset(
                    &topic,
                    partition,
                    Offset::Offset((high - 1).max(low)),
                )?;
                unread.insert(partition);
            }
        }
        let mut positions = HashMap::new();
        if unread.is_empty() {
            return Ok(positions);
        }
        let mut at_end = 0;
        let assigned = unread.len();
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + TAIL_DEADLINE;
        let mut last_record = Instant::now();
        loop {
            let settled =
                unread.is_empty() && (at_end == assigned || last_record.elapsed() >= TAIL_IDLE);
            if settled {
                return Ok(positions);
            }
            if Instant::now() >= deadline {
                return Err(MirrorError::TailUnreadable {
                    topic: topic.clone(),
                    partitions: unread.into_iter().collect(),
                });
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    at_end += 1;
                    unread.remove(&partition);
                }
                Some(Err(e)) => return Err(explain(&consumer, e)),
                Some(Ok(message)) => {
                    last_record = Instant::now();
                    unread.remove(&message.partition());
                    if let Some(offset) = provenance_offset(&message, &contract_id) {
                        let point = positions.entry(message.partition()).or_insert(ResumePoint {
                            next: 0,
                            landed_at: -1,
                        });
                        if offset + 1 > point.next {
                            *point = ResumePoint {
                                next: offset + 1,
                                landed_at: message.offset(),
                            };
                        }
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| MirrorError::Kafka(KafkaError::Canceled))?
}

/// The source offset a mirrored record came from, if `contract_id` wrote it.
fn provenance_offset(message: &BorrowedMessage<'_>, contract_id: &str) -> Option<i64> {
    let headers = message.headers()?;
    // The mirror appends its headers last; a record mirrored twice carries
    // the earlier hop's too, so read from the end.
    let mut contract = None;
    let mut offset = None;
    for header in headers.iter().collect::<Vec<_>>().into_iter().rev() {
        match header.key {
            HEADER_CONTRACT if contract.is_none() => contract = header.value,
            HEADER_SOURCE_OFFSET if offset.is_none() => offset = header.value,
            _ => {}
        }
    }
    if contract? != contract_id.as_bytes() {
        return None;
    }
    std::str::from_utf8(offset?).ok()?.parse().ok()
}
