//! Kafka REST Proxy v2 produce: `POST /topics/{topic}` with the json or
//! binary embedded format, answered with per-record offsets as REST Proxy
//! does. Only the organization that owns the topic's stream may produce.
//!
//! Beyond v2, a record may carry `headers`: `[{"name": "...", "value":
//! "<base64>"}]`, the shape of REST Proxy v3.
//!
//! With tracing on, a produce call is a `send` span (the child of the
//! call's own span) and every record it writes carries that span's W3C
//! context in its `traceparent` / `tracestate` headers, in place of any
//! the client put there: downstream spans (the link's mirror, a push
//! feed's delivery) continue the call's trace.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use freeport_common::error::ErrorCode;
use freeport_common::names::ClusterName;
use freeport_common::telemetry;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{body_bytes, media_type, parse_json, ApiPath, Caller};
use crate::AppState;

pub const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
pub const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";
pub const RESPONSE_V2: &str = "application/vnd.kafka.v2+json";
/// Most records one request may carry.
const MAX_RECORDS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Binary,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    records: Vec<ProduceRecord>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    #[serde(default)]
    key: Option<serde_json::Value>,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    headers: Vec<HeaderIn>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderIn {
    pub name: String,
    /// Base64 of the header's bytes; absent or null for a null header.
    #[serde(default)]
    pub value: Option<String>,
}

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
            headers = headers.insert(Header {
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

/// A stream's topic that `org` may produce to: the stream's cluster and the
/// topic's partition count. Only the stream's owner may produce.
pub(crate) async fn owned_topic(
    state: &AppState,
    org: &str,
    topic: &str,
) -> ApiResult<(ClusterName, usize)> {
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
    Ok((cluster_name, partitions))
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

fn encode_field(
    format: Format,
    what: &str,
    index: usize,
    value: Option<serde_json::Value>,
) -> ApiResult<Option<Vec<u8>>> {
    match (format, value) {
        (_, None | Some(serde_json::Value::Null)) => Ok(None),
        (Format::Json, Some(v)) => Ok(Some(v.to_string().into_bytes())),
        (Format::Binary, Some(serde_json::Value::String(s))) => {
            decode_base64(what, index, &s).map(Some)
        }
        (Format::Binary, Some(_)) => Err(ApiError::new(
            ErrorCode::InvalidRecords,
            format!("records[{index}].{what} must be a base64 string in the binary format"),
        )),
    }
}

/// Headers as `(name, bytes)`; each needs a name, values are base64.
pub(crate) fn decode_headers(
    index: usize,
    headers: Vec<HeaderIn>,
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

fn encode(format: Format, request: ProduceRequest, partitions: usize) -> ApiResult<Vec<Encoded>> {
    if request.records.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRecords,
            "records must not be empty",
        ));
    }
    if request.records.len() > MAX_RECORDS {
        return Err(ApiError::new(
            ErrorCode::InvalidRecords,
            format!(
                "{} records in one request; the limit is {MAX_RECORDS}",
                request.records.len()
            ),
        ));
    }
    request
        .records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            if let Some(p) = record.partition {
                check_partition(i, p, partitions)?;
            }
            Ok(Encoded {
                key: encode_field(format, "key", i, record.key)?,
                value: encode_field(format, "value", i, record.value)?,
                partition: record.partition,
                headers: decode_headers(i, record.headers)?,
                timestamp: None,
            })
        })
        .collect()
}

/// `POST /topics/{topic}`: each record goes to the partition it names, or
/// where the producer's partitioner puts it.
#[utoipa::path(
    post,
    path = "/topics/{topic}",
    operation_id = "produce_produce",
    tag = "rest proxy",
    params(("topic" = String, Path)),
    request_body(content((ProduceRequest = "application/vnd.kafka.json.v2+json"), (ProduceRequest = "application/vnd.kafka.binary.v2+json"))),
    responses(
        (status = 200, body = crate::openapi::ProduceResponse, content_type = "application/vnd.kafka.v2+json"),
        crate::openapi::Failures,
    ),
)]
pub async fn produce(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
    request: Request,
) -> ApiResult<Response> {
    produce_records(state, caller, topic, None, request).await
}

/// `POST /topics/{topic}/partitions/{partition}`: every record goes to
/// that partition.
#[utoipa::path(
    post,
    path = "/topics/{topic}/partitions/{partition}",
    operation_id = "produce_produce_to_partition",
    tag = "rest proxy",
    params(("topic" = String, Path), ("partition" = i32, Path)),
    request_body(content((ProduceRequest = "application/vnd.kafka.json.v2+json"), (ProduceRequest = "application/vnd.kafka.binary.v2+json"))),
    responses(
        (status = 200, body = crate::openapi::ProduceResponse, content_type = "application/vnd.kafka.v2+json"),
        crate::openapi::Failures,
    ),
)]
pub async fn produce_to_partition(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((topic, partition)): ApiPath<(String, i32)>,
    request: Request,
) -> ApiResult<Response> {
    produce_records(state, caller, topic, Some(partition), request).await
}

async fn produce_records(
    state: AppState,
    caller: Caller,
    topic: String,
    partition: Option<i32>,
    request: Request,
) -> ApiResult<Response> {
    let format = match media_type(request.headers()).as_deref() {
        Some(JSON_V2 | "application/json") => Format::Json,
        Some(BINARY_V2) => Format::Binary,
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type {:?} is not supported; use {JSON_V2} or {BINARY_V2}",
                    other.unwrap_or("")
                ),
            ))
        }
    };
    let org = caller.require_org("produce")?.to_string();
    let body = body_bytes(request, &state).await?;
    let mut parsed: ProduceRequest = parse_json(&body)?;

    let (cluster_name, partitions) = owned_topic(&state, &org, &topic).await?;
    if let Some(fixed) = partition {
        check_partition(0, fixed, partitions).map_err(|_| {
            ApiError::new(
                ErrorCode::PartitionNotFound,
                format!("partition {fixed} not found; the topic has {partitions}"),
            )
        })?;
        for (i, record) in parsed.records.iter_mut().enumerate() {
            if record.partition.is_some_and(|p| p != fixed) {
                return Err(ApiError::new(
                    ErrorCode::InvalidRecords,
                    format!("records[{i}].partition differs from partition {fixed} in the path"),
                ));
            }
            record.partition = Some(fixed);
        }
    }
    // Everything is checked before anything is sent: a bad record fails the
    // whole request and writes nothing.
    let mut records = encode(format, parsed, partitions)?;
    let producer = state.producer(&cluster_name)?;
    let sending = send_span(
        &Context::current(),
        cluster_name.as_str(),
        &topic,
        records.len(),
    );
    if let Some(cx) = &sending {
        let trace = telemetry::trace_headers(cx);
        records.iter_mut().for_each(|record| record.carry(&trace));
    }

    let deliveries: Vec<_> = records
        .iter()
        .map(|record| {
            producer
                .send_result(record.to_kafka(&topic))
                .map_err(|(e, _)| e)
        })
        .collect();
    let mut offsets = Vec::with_capacity(deliveries.len());
    let mut failed = None;
    for sent in deliveries {
        offsets.push(match delivered(sent).await {
            Ok(delivery) => serde_json::json!({
                "partition": delivery.partition, "offset": delivery.offset, "error_code": null, "error": null,
            }),
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "produce failed");
                failed = Some(e.to_string());
                serde_json::json!({
                    "partition": null, "offset": null, "error_code": delivery_error_code(&e), "error": e.to_string(),
                })
            }
        });
    }
    if let Some(cx) = &sending {
        telemetry::end(cx, failed);
    }
    let body = serde_json::json!({
        "key_schema_id": null,
        "value_schema_id": null,
        "offsets": offsets,
    });
    Ok(([(header::CONTENT_TYPE, RESPONSE_V2)], Json(body)).into_response())
}
