//! Helpers the benchmarks share (`tests/benches/`).

use std::time::{Duration, Instant};

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::client_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The `p` quantile (0 to 1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Consumes `topic` (`partitions` of them) from the beginning until `count`
/// records have been read; returns the time from the first record to the
/// last, and each record's delay from its timestamp (when `delays` is set).
/// Blocks: call it from a blocking task.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: usize,
    count: usize,
    delays: bool,
) -> (Duration, Vec<Duration>) {
    let cluster = ClusterConfig::plaintext(bootstrap);
    let consumer: BaseConsumer = client_config(&cluster, "bench-consumer")
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut first = None;
    let mut seen = 0;
    let mut measured = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "only {seen} of {count} records arrived"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("consume");
            first.get_or_insert_with(Instant::now);
            seen += 1;
            if delays {
                let produced = message.timestamp().to_millis().unwrap_or_default();
                let now = freeport_common::now_ms();
                measured.push(Duration::from_millis((now - produced).max(0) as u64));
            }
        }
    }
    (first.map_or(Duration::ZERO, |f| f.elapsed()), measured)
}
