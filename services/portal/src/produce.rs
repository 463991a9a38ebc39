//! The produce path, whatever the HTTP shape a record arrived in (REST
//! Proxy v2 in `rest/produce.rs`, the v3 records stream in
//! `rest/records.rs`): where a topic's records go (`destination`, decided
//! by the access view), checking and encoding each record (`Encoded`,
//! `decode_headers`, `check_partition`), the `send` span that carries the
//! trace into the records, and the delivery report (`delivered`).

use base64::Engine;
use freeport_common::error::ErrorCode;
use freeport_common::names::ClusterName;
use freeport_common::telemetry;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureRecord};

use crate::error::{ApiError, ApiResult};
use crate::validate::Check;
use crate::wire::Header;
use crate::AppState;

/// A record checked and encoded, ready to send.
pub(crate) struct Encoded {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: Option<i32>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch; the producer's clock when absent.
    pub timestamp: Option<i64>,
}

impl Encoded {
    /// Carries `trace` (W3C headers) instead of any trace context the
    /// record came with.
    pub fn carry(&mut self, trace: &[(&'static str, String)]) {
        if trace.is_empty() {
            return;
        }
        self.headers
            .retain(|(name, _)| !telemetry::is_trace_header(name));
        self.headers.extend(
            trace
                .iter()
                .map(|(name, value)| (name.to_string(), Some(value.as_bytes().to_vec()))),
        );
    }

    /// The record as rdkafka sends it to `topic`.
    pub fn to_kafka<'a>(&'a self, topic: &'a str) -> FutureRecord<'a, [u8], [u8]> {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers = headers.insert(rdkafka::message::Header {
                key: name,
                value: value.as_deref(),
            });
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(key) = &self.key {
            out = out.key(key);
        }
        if let Some(value) = &self.value {
            out = out.payload(value);
        }
        if let Some(partition) = self.partition {
            out = out.partition(partition);
        }
        if let Some(timestamp) = self.timestamp {
            out = out.timestamp(timestamp);
        }
        out
    }
}

/// The `send` span of records produced to `topic` on `cluster`, the child
/// of `parent` (the HTTP call's span); `None` when tracing is off.
pub(crate) fn send_span(
    parent: &Context,
    cluster: &str,
    topic: &str,
    records: usize,
) -> Option<Context> {
    if !telemetry::enabled() {
        return None;
    }
    let mut attributes = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.operation.type", "send"),
        KeyValue::new("messaging.destination.name", topic.to_string()),
        KeyValue::new("freeport.cluster", cluster.to_string()),
    ];
    if records > 1 {
        attributes.push(KeyValue::new(
            "messaging.batch.message_count",
            i64::try_from(records).unwrap_or(i64::MAX),
        ));
    }
    let span = telemetry::span(format!("send {topic}"), SpanKind::Producer, parent, || {
        attributes
    });
    Some(parent.with_span(span))
}

/// Waits for a record's delivery report: where it landed, or why not.
pub(crate) async fn delivered(
    sent: Result<DeliveryFuture, KafkaError>,
) -> Result<Delivery, KafkaError> {
    match sent?.await {
        Ok(Ok(delivery)) => Ok(delivery),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// The stable code of a failed delivery: 50003 when the producer's queue
/// is full (try again), else a Kafka error.
pub(crate) fn delivery_error_code(error: &KafkaError) -> u32 {
    match error {
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => 50003,
        _ => ErrorCode::KafkaError.code(),
    }
}

/// Where a produce request's records go, and how they are checked.
pub(crate) struct Target {
    pub cluster: ClusterName,
    /// The topic's partition count.
    pub partitions: usize,
    /// The stream's schema, to check and encode records with.
    pub check: Check,
}

/// A stream's topic that `org` may produce to: the stream's cluster, the
/// topic's partition count and the stream's schema. Only the stream's
/// owner may produce.
pub(crate) async fn destination(state: &AppState, org: &str, topic: &str) -> ApiResult<Target> {
    let stream = state.view().producible(org, topic).await?;
    let cluster_name = ClusterName::parse(stream.cluster.clone())
        .map_err(|e| ApiError::internal("stream names an invalid cluster", e))?;
    let partitions = state
        .partitions(&cluster_name, topic)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic {topic:?} not found on its cluster"),
            )
        })?;
    Ok(Target {
        cluster: cluster_name,
        partitions,
        check: Check::new(stream, state.record_schemas().clone()),
    })
}

pub(crate) fn decode_base64(what: &str, index: usize, text: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRecords,
                format!("records[{index}].{what} is not valid base64: {e}"),
            )
        })
}

/// Headers as `(name, bytes)`; each needs a name, values are base64.
pub(crate) fn decode_headers(
    index: usize,
    headers: Vec<Header>,
) -> ApiResult<Vec<(String, Option<Vec<u8>>)>> {
    headers
        .into_iter()
        .map(|h| {
            if h.name.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidRecords,
                    format!("records[{index}].headers: a header needs a name"),
                ));
            }
            let value = h
                .value
                .map(|v| decode_base64("headers", index, &v))
                .transpose()?;
            Ok((h.name, value))
        })
        .collect()
}

/// Checks a partition number against the topic's partition count.
pub(crate) fn check_partition(index: usize, partition: i32, partitions: usize) -> ApiResult<()> {
    if partition < 0 || partition as usize >= partitions {
        return Err(ApiError::new(
            ErrorCode::PartitionNotFound,
            format!("records[{index}]: partition {partition} does not exist; the topic has {partitions}"),
        ));
    }
    Ok(())
}
