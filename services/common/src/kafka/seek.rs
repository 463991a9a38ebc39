//! Where to start reading a partition so that no record from a given
//! offset on is skipped.
//!
//! Kafka answers a fetch from an offset inside a record batch with the whole
//! batch, and the client drops the records before the offset. Some brokers
//! (tansu 0.6) answer with the batches *after* that batch instead, silently
//! skipping the rest of it (and, as the client asks again and again, deliver
//! the next batch repeatedly): a reader resuming at offset 5 of a batch
//! holding 0..9 would never see 5..9. So a reader that resumes at `next`
//! starts at an offset found here, the first of a batch, and drops the
//! records before `next` itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{
    blocking, client_config, explain_failure, ClusterError, ErrorRecorder, METADATA_TIMEOUT,
};
use crate::config::ClusterConfig;

/// How long one probe waits for the broker's first record.
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// Reading a partition's last batch to find its end settles once nothing
/// new has arrived for this long, or the broker says it is at the end.
const TAIL_IDLE: Duration = Duration::from_millis(300);
/// The first step back when the broker skipped; each further step is
/// [`REWIND_GROWTH`] times longer.
const FIRST_REWIND: i64 = 64;
const REWIND_GROWTH: i64 = 16;

/// Where a reader wants to continue in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// At this offset (the next one it has not read).
    At(i64),
    /// With the records produced from now on: the partition's current end.
    End,
}

/// Where to fetch from, and the first offset the reader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Offset to assign the consumer at.
    pub fetch_from: i64,
    /// The reader's next offset; it drops records before this one.
    pub next: i64,
}

/// For each partition of `topic` in `wanted`, where to start fetching so
/// that the broker delivers every record from the wanted offset on (the
/// end resolved to an offset, from the same watermarks the probe reads).
///
/// The probe asks for `next - 1`, a record the reader already had and so
/// known to exist: a broker that delivers it (or something before it) from
/// there has skipped nothing. One that delivers only later records skipped
/// part of a batch, so the probe steps back, further each time, down to the
/// partition's first offset. The start is the first record delivered, the
/// first of its batch, so reading from it makes the broker skip nothing. On a
/// Kafka broker the first probe succeeds and the start is `next - 1`.
pub async fn read_starts(
    cluster: &ClusterConfig,
    topic: &str,
    wanted: HashMap<i32, Resume>,
) -> Result<HashMap<i32, Start>, ClusterError> {
    let topic = topic.to_string();
    let cluster = cluster.clone();
    blocking(move || read_starts_blocking(&cluster, &topic, wanted)).await
}

/// [`read_starts`] for callers already on a thread that may block (a
/// consumer's rebalance callback, say).
pub fn read_starts_blocking(
    cluster: &ClusterConfig,
    topic: &str,
    wanted: HashMap<i32, Resume>,
) -> Result<HashMap<i32, Start>, ClusterError> {
    let consumer = probe_consumer(cluster)?;
    let explain = |e| explain_failure(&consumer, cluster, e);
    let mut starts = HashMap::new();
    for (partition, resume) in wanted {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(explain)?;
        let next = match resume {
            Resume::At(offset) => offset,
            Resume::End => true_end(&consumer, topic, partition, low, high).map_err(explain)?,
        };
        let start = probe(&consumer, topic, partition, next, low, high).map_err(explain)?;
        if start < next {
            tracing::debug!(
                topic,
                partition,
                next,
                start,
                "reading from before the resume point"
            );
        }
        starts.insert(
            partition,
            Start {
                fetch_from: start,
                next,
            },
        );
    }
    Ok(starts)
}

/// The oldest offset each of `partitions` holds and the offset its next
/// record will get. The end is read from the records themselves: tansu 0.6
/// reports an end inside the last batch, Kafka the true one.
pub async fn partition_ends(
    cluster: &ClusterConfig,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<HashMap<i32, (i64, i64)>, ClusterError> {
    let consumer = probe_consumer(cluster)?;
    let topic = topic.to_string();
    let cluster = cluster.clone();
    blocking(move || ends_where(&consumer, &cluster, &topic, partitions, |_, _| true)).await
}

/// [`partition_ends`] of the partitions in `positions` whose offset lies
/// beyond the partition's high watermark; the others cannot be past the
/// end and cost one watermark read, not a read of the last batch.
pub async fn ends_if_past(
    cluster: &ClusterConfig,
    topic: &str,
    positions: Vec<(i32, i64)>,
) -> Result<HashMap<i32, (i64, i64)>, ClusterError> {
    let consumer = probe_consumer(cluster)?;
    let topic = topic.to_string();
    let cluster = cluster.clone();
    let partitions = positions.iter().map(|&(p, _)| p).collect();
    let offsets: HashMap<i32, i64> = positions.into_iter().collect();
    blocking(move || {
        ends_where(
            &consumer,
            &cluster,
            &topic,
            partitions,
            |partition, high| offsets.get(&partition).is_some_and(|&offset| offset > high),
        )
    })
    .await
}

/// The first offset and true end of each of `partitions` for which
/// `wanted(partition, high watermark)` holds.
fn ends_where(
    consumer: &BaseConsumer<ErrorRecorder>,
    cluster: &ClusterConfig,
    topic: &str,
    partitions: Vec<i32>,
    wanted: impl Fn(i32, i64) -> bool,
) -> Result<HashMap<i32, (i64, i64)>, ClusterError> {
    let explain = |e| explain_failure(consumer, cluster, e);
    let mut ends = HashMap::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(explain)?;
        if wanted(partition, high) {
            let end = true_end(consumer, topic, partition, low, high).map_err(explain)?;
            ends.insert(partition, (low, end));
        }
    }
    Ok(ends)
}

fn probe_consumer(cluster: &ClusterConfig) -> Result<BaseConsumer<ErrorRecorder>, KafkaError> {
    client_config(cluster, "freeport-probe")
        .set("group.id", "freeport-probe")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "50")
        .create_with_context(ErrorRecorder::default())
}

/// One past the last record of the partition whose watermarks are `low`
/// and `high`: reads the last batch from its start, as the broker may
/// report an end inside it.
fn true_end<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    low: i64,
    high: i64,
) -> Result<i64, KafkaError> {
    if high <= low {
        return Ok(high);
    }
    let start = probe(consumer, topic, partition, high, low, high)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let mut end = high;
    let deadline = Instant::now() + PROBE_WAIT;
    let mut last_record = None::<Instant>;
    while Instant::now() < deadline && last_record.is_none_or(|at| at.elapsed() < TAIL_IDLE) {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(message)) if message.partition() == partition => {
                end = end.max(message.offset() + 1);
                last_record = Some(Instant::now());
            }
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition && last_record.is_some() => {
                break
            }
            Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(end)
}

fn probe<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    next: i64,
    low: i64,
    high: i64,
) -> Result<i64, KafkaError> {
    let known = next - 1;
    if known < low {
        return Ok(next.max(low));
    }
    let mut start = known;
    let mut step = FIRST_REWIND;
    loop {
        if start <= low {
            return Ok(low);
        }
        // Below the reported end the broker has something to answer with;
        // at or past it (tansu reports an end inside the last batch), it
        // has not.
        if start < high {
            if let Some(first) = first_offset_from(consumer, topic, partition, start)? {
                if first <= known {
                    return Ok(first);
                }
            }
        }
        start = (known - step).max(low);
        step = step.saturating_mul(REWIND_GROWTH);
    }
}

/// The offset of the first record the broker delivers when asked for
/// `start`, or `None` if it delivers none within [`PROBE_WAIT`].
fn first_offset_from<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    start: i64,
) -> Result<Option<i64>, KafkaError> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + PROBE_WAIT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            // A record left from an earlier probe starts later than this
            // one asked for only if that probe's did: it can only make this
            // step back further, never skip.
            Some(Ok(message)) if message.partition() == partition => {
                return Ok(Some(message.offset()))
            }
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => return Ok(None),
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(None)
}
