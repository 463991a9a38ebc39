//! Reading the destination's tail to find where to resume: the I/O half of
//! [`crate::provenance`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::{client_config, explain_failure, ErrorRecorder, METADATA_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::MirrorError;
use crate::provenance::{self, ResumePoint, Tail, TailState};

/// For each destination partition, where to resume: one past the last
/// source offset this contract wrote there ([`Tail`] says when the tail has
/// been read far enough).
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
        // From just before each partition's reported end; partitions
        // holding data must each show a record.
        let mut assignment = TopicPartitionList::new();
        let mut holding_data = Vec::new();
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
                holding_data.push(partition);
            }
        }
        if !holding_data.is_empty() {
            consumer.assign(&assignment)?;
        }
        let mut tail = Tail::new(holding_data, Instant::now());
        loop {
            match tail.state(Instant::now()) {
                TailState::Settled(positions) => return Ok(positions),
                TailState::Unreadable(partitions) => {
                    return Err(MirrorError::TailUnreadable {
                        topic: topic.clone(),
                        partitions,
                    })
                }
                TailState::Reading => {}
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => tail.end_of(partition),
                Some(Err(e)) => return Err(explain(&consumer, e)),
                Some(Ok(message)) => {
                    let source = message.headers().and_then(|headers| {
                        let headers: Vec<_> = headers.iter().map(|h| (h.key, h.value)).collect();
                        provenance::source_offset(headers.into_iter(), &contract_id)
                    });
                    tail.record(
                        message.partition(),
                        message.offset(),
                        source,
                        Instant::now(),
                    );
                }
            }
        }
    })
    .await
    .map_err(|_| MirrorError::Kafka(KafkaError::Canceled))?
}
