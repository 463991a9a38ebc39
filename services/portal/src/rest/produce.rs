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

use super::V2;
use freeport_common::error::ErrorCode;
use freeport_common::telemetry;
use opentelemetry::Context;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{body_bytes, media_type, parse_json, ApiPath, Caller};
use crate::produce::{
    check_partition, decode_base64, decode_headers, delivered, delivery_error_code, destination,
    send_span, Encoded,
};
use crate::wire::{Format, BINARY_V2, JSON_V2};
use crate::AppState;

/// Most records one request may carry.
const MAX_RECORDS: usize = 10_000;

/// A produce body; `T` is how the request's embedded format writes keys
/// and values: any JSON (json) or base64 strings (binary).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest<T> {
    #[schema(min_items = 1, max_items = 10000)]
    records: Vec<ProduceRecord<T>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord<T> {
    key: Option<T>,
    value: Option<T>,
    #[serde(default)]
    #[schema(minimum = 0)]
    partition: Option<i32>,
    #[serde(default)]
    headers: Vec<crate::wire::Header>,
}

/// A binary-format key or value: base64 of the bytes, or null.
// Read as any JSON, so that anything else is refused with the records
// code (42202) rather than as a malformed body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Option<String>, format = Byte)]
pub struct Base64Data(serde_json::Value);

/// A key or value as the embedded format writes it, to its bytes.
trait Embedded {
    fn bytes(self, what: &str, index: usize) -> ApiResult<Option<Vec<u8>>>;
}

impl Embedded for serde_json::Value {
    fn bytes(self, _: &str, _: usize) -> ApiResult<Option<Vec<u8>>> {
        Ok((!self.is_null()).then(|| self.to_string().into_bytes()))
    }
}

impl Embedded for Base64Data {
    fn bytes(self, what: &str, index: usize) -> ApiResult<Option<Vec<u8>>> {
        match self.0 {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(text) => decode_base64(what, index, &text).map(Some),
            _ => Err(ApiError::new(
                ErrorCode::InvalidRecords,
                format!("records[{index}].{what} must be a base64 string in the binary format"),
            )),
        }
    }
}

/// A produce body read in its embedded format.
enum Parsed {
    Json(ProduceRequest<serde_json::Value>),
    Binary(ProduceRequest<Base64Data>),
}

/// Where each record of a produce request landed, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    key_schema_id: Option<i32>,
    value_schema_id: Option<i32>,
    offsets: Vec<ProducedOffset>,
}

/// Where one record landed, or (`error_code`, `error`) why it did not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProducedOffset {
    partition: Option<i32>,
    offset: Option<i64>,
    error_code: Option<u32>,
    error: Option<String>,
}

/// The records of `request`, checked against the topic's `partitions`
/// (and the one in the path, `fixed`) and encoded.
fn encode<T: Embedded>(
    mut request: ProduceRequest<T>,
    fixed: Option<i32>,
    partitions: usize,
) -> ApiResult<Vec<Encoded>> {
    if let Some(fixed) = fixed {
        check_partition(0, fixed, partitions).map_err(|_| {
            ApiError::new(
                ErrorCode::PartitionNotFound,
                format!("partition {fixed} not found; the topic has {partitions}"),
            )
        })?;
        for (i, record) in request.records.iter_mut().enumerate() {
            if record.partition.is_some_and(|p| p != fixed) {
                return Err(ApiError::new(
                    ErrorCode::InvalidRecords,
                    format!("records[{i}].partition differs from partition {fixed} in the path"),
                ));
            }
            record.partition = Some(fixed);
        }
    }
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
                key: record.key.map(|k| k.bytes("key", i)).transpose()?.flatten(),
                value: record
                    .value
                    .map(|v| v.bytes("value", i))
                    .transpose()?
                    .flatten(),
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
    params(("topic" = crate::openapi::TopicName, Path)),
    request_body(content((ProduceRequest<serde_json::Value> = "application/vnd.kafka.json.v2+json"), (ProduceRequest<Base64Data> = "application/vnd.kafka.binary.v2+json"))),
    responses(
        (status = 200, body = ProduceResponse, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn produce(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
    request: Request,
) -> ApiResult<V2<ProduceResponse>> {
    produce_records(state, caller, topic, None, request).await
}

/// `POST /topics/{topic}/partitions/{partition}`: every record goes to
/// that partition.
#[utoipa::path(
    post,
    path = "/topics/{topic}/partitions/{partition}",
    operation_id = "produce_produce_to_partition",
    tag = "rest proxy",
    params(("topic" = crate::openapi::TopicName, Path), ("partition" = i32, Path, minimum = 0)),
    request_body(content((ProduceRequest<serde_json::Value> = "application/vnd.kafka.json.v2+json"), (ProduceRequest<Base64Data> = "application/vnd.kafka.binary.v2+json"))),
    responses(
        (status = 200, body = ProduceResponse, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn produce_to_partition(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((topic, partition)): ApiPath<(String, i32)>,
    request: Request,
) -> ApiResult<V2<ProduceResponse>> {
    produce_records(state, caller, topic, Some(partition), request).await
}

async fn produce_records(
    state: AppState,
    caller: Caller,
    topic: String,
    partition: Option<i32>,
    request: Request,
) -> ApiResult<V2<ProduceResponse>> {
    let media = media_type(request.headers());
    let format = match media.as_deref().and_then(Format::of_content_type) {
        Some(format) => format,
        None => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type {:?} is not supported; use {JSON_V2} or {BINARY_V2}",
                    media.as_deref().unwrap_or("")
                ),
            ))
        }
    };
    let org = caller.require_org("produce")?.to_string();
    let body = body_bytes(request, &state).await?;
    let parsed = match format {
        Format::Json => Parsed::Json(parse_json(&body)?),
        Format::Binary => Parsed::Binary(parse_json(&body)?),
    };

    let (cluster_name, partitions) = destination(&state, &org, &topic).await?;
    // Everything is checked before anything is sent: a bad record fails the
    // whole request and writes nothing.
    let mut records = match parsed {
        Parsed::Json(request) => encode(request, partition, partitions)?,
        Parsed::Binary(request) => encode(request, partition, partitions)?,
    };
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
            Ok(delivery) => ProducedOffset {
                partition: Some(delivery.partition),
                offset: Some(delivery.offset),
                error_code: None,
                error: None,
            },
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "produce failed");
                failed = Some(e.to_string());
                ProducedOffset {
                    partition: None,
                    offset: None,
                    error_code: Some(delivery_error_code(&e)),
                    error: Some(e.to_string()),
                }
            }
        });
    }
    if let Some(cx) = &sending {
        telemetry::end(cx, failed);
    }
    Ok(V2(ProduceResponse {
        key_schema_id: None,
        value_schema_id: None,
        offsets,
    }))
}
