//! Kafka REST Proxy v2 produce: `POST /topics/{topic}` with the json or
//! binary embedded format, answered with per-record offsets as REST Proxy
//! does. Only the organization that owns the topic's stream may produce.
//!
//! Beyond v2, a record may carry `headers`: `[{"name": "...", "value":
//! "<base64>"}]`, the shape of REST Proxy v3.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use freeport_common::error::ErrorCode;
use freeport_common::names::ClusterName;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    records: Vec<ProduceRecord>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderIn {
    name: String,
    /// Base64 of the header's bytes; absent or null for a null header.
    #[serde(default)]
    value: Option<String>,
}

/// A record checked and encoded, ready to send.
struct Encoded {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn decode_base64(what: &str, index: usize, text: &str) -> ApiResult<Vec<u8>> {
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
                if p < 0 || p as usize >= partitions {
                    return Err(ApiError::new(
                        ErrorCode::PartitionNotFound,
                        format!(
                            "records[{i}].partition {p} does not exist; the topic has {partitions}"
                        ),
                    ));
                }
            }
            let headers = record
                .headers
                .into_iter()
                .map(|h| {
                    if h.name.is_empty() {
                        return Err(ApiError::new(
                            ErrorCode::InvalidRecords,
                            format!("records[{i}].headers: a header needs a name"),
                        ));
                    }
                    let value = h
                        .value
                        .map(|v| decode_base64("headers", i, &v))
                        .transpose()?;
                    Ok((h.name, value))
                })
                .collect::<ApiResult<_>>()?;
            Ok(Encoded {
                key: encode_field(format, "key", i, record.key)?,
                value: encode_field(format, "value", i, record.value)?,
                partition: record.partition,
                headers,
            })
        })
        .collect()
}

pub async fn produce(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
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
    let parsed: ProduceRequest = parse_json(&body)?;

    let streams = state.catalog().list_streams().await?;
    let on_topic: Vec<_> = streams.into_iter().filter(|s| s.topic == topic).collect();
    let Some(stream) = on_topic.iter().find(|s| s.owner == org) else {
        return Err(if on_topic.is_empty() {
            ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic {topic:?} not found"),
            )
        } else {
            ApiError::forbidden(format!(
                "only the owner of topic {topic:?} may produce to it"
            ))
        });
    };
    let cluster_name = ClusterName::parse(stream.cluster.clone())
        .map_err(|e| ApiError::internal("stream names an invalid cluster", e))?;
    let partitions = state
        .partitions(&cluster_name, &topic)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic {topic:?} not found on its cluster"),
            )
        })?;
    // Everything is checked before anything is sent: a bad record fails the
    // whole request and writes nothing.
    let records = encode(format, parsed, partitions)?;
    let producer = state.producer(&cluster_name)?;

    let mut deliveries = Vec::with_capacity(records.len());
    for record in &records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key);
        }
        if let Some(value) = &record.value {
            out = out.payload(value);
        }
        if let Some(partition) = record.partition {
            out = out.partition(partition);
        }
        deliveries.push(producer.send_result(out).map_err(|(e, _)| e));
    }
    let mut offsets = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let outcome = match delivery {
            Ok(future) => match future.await {
                Ok(Ok(delivered)) => Ok((delivered.partition, delivered.offset)),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(e) => Err(e),
        };
        offsets.push(match outcome {
            Ok((partition, offset)) => serde_json::json!({
                "partition": partition, "offset": offset, "error_code": null, "error": null,
            }),
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "produce failed");
                let code = match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => 50003,
                    _ => ErrorCode::KafkaError.code(),
                };
                serde_json::json!({
                    "partition": null, "offset": null, "error_code": code, "error": e.to_string(),
                })
            }
        });
    }
    let body = serde_json::json!({
        "key_schema_id": null,
        "value_schema_id": null,
        "offsets": offsets,
    });
    Ok(([(header::CONTENT_TYPE, RESPONSE_V2)], Json(body)).into_response())
}
