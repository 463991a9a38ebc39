//! A running mirror's progress: what is in flight, what the destination
//! acknowledged, and the monitor that turns it into metrics and `stalled`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freeport_common::telemetry;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Sample;
use crate::offsets::OffsetMap;
use crate::provenance::ResumePoint;
use crate::status::StatusReporter;

/// How often a running mirror samples its progress for the metrics and
/// checks whether it is stalled.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Records waiting and none acknowledged for this long: stalled.
const STALL_AFTER: Duration = Duration::from_secs(10);
/// How long a sample may wait for the source's watermarks.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// What a record in flight is, for the progress counters.
pub(super) struct Pending {
    pub(super) partition: i32,
    pub(super) source_offset: i64,
    pub(super) timestamp_ms: i64,
    pub(super) bytes: u64,
    /// The record's `mirror` span, ended when the destination has it.
    pub(super) mirroring: Option<opentelemetry::Context>,
}

/// A running mirror's progress, shared by the copy loop, the delivery task
/// and the monitor. Atomics only: the copy loop touches it per record.
pub(super) struct Progress {
    /// Per source partition, the next offset the copy loop will take; -1
    /// before the first record (the mirror starts at the beginning).
    next: Vec<AtomicI64>,
    pub(super) sent: AtomicU64,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    /// Source timestamp of the record the delivery task waits on; 0 if none.
    oldest_unacked_ms: AtomicI64,
    last_acked_ms: AtomicI64,
}

impl Progress {
    pub(super) fn new(partitions: usize, resume: &HashMap<i32, ResumePoint>) -> Progress {
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

    pub(super) fn consumed(&self, partition: i32, offset: i64) {
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

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Samples a running mirror every [`SAMPLE_INTERVAL`]: rates and lag to the
/// metrics, and `stalled` to the catalog when records wait and none has
/// been acknowledged for [`STALL_AFTER`] (and `running` once they move).
pub(super) async fn monitor(
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

/// Awaits each record's delivery in order, counting it into `progress` and
/// recording where it landed in `translations` (when consumer groups are
/// translated). Ends at the first failed delivery, or when `acknowledged`
/// closes.
pub(super) fn deliveries(
    mut acknowledged: mpsc::Receiver<(DeliveryFuture, Pending)>,
    progress: Arc<Progress>,
    translations: Option<Arc<Mutex<OffsetMap>>>,
) -> JoinHandle<Result<(), KafkaError>> {
    tokio::spawn(async move {
        while let Some((delivery, pending)) = acknowledged.recv().await {
            progress
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
                    progress.acked.fetch_add(1, Ordering::Relaxed);
                    progress
                        .acked_bytes
                        .fetch_add(pending.bytes, Ordering::Relaxed);
                    progress
                        .last_acked_ms
                        .store(pending.timestamp_ms, Ordering::Relaxed);
                    progress.oldest_unacked_ms.store(0, Ordering::Relaxed);
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
    })
}
