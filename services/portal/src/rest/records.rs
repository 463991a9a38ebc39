//! Streaming produce in the shape of Kafka REST Proxy v3:
//! `POST /v3/clusters/{cluster}/topics/{topic}/records`.
//!
//! The body is a sequence of JSON records, concatenated or one per line,
//! which a client may keep sending for as long as it likes with
//! `Transfer-Encoding: chunked`. The answer streams back one delivery report
//! per record, in the order the records were sent, each as soon as the
//! broker has acknowledged it. A record that is not valid gets an error
//! report and the stream goes on; a body that stops being JSON ends the
//! stream with a last error report, since nothing after it can be trusted.
//!
//! A record:
//! `{"partition_id": 1, "headers": [{"name": "h", "value": "<base64>"}],
//!   "key": {"type": "STRING", "data": "k1"}, "value": {"type": "JSON", "data": {...}},
//!   "timestamp": "2026-11-24T10:00:00Z"}`, every field optional; `type` is
//! `JSON` (the default), `BINARY` (base64) or `STRING`.
//!
//! A report: `{"error_code": 200, "cluster_id", "topic_name", "partition_id",
//! "offset", "timestamp", "key": {"type", "size"}, "value": {"type", "size"}}`,
//! or `{"error_code": 42202, "message": "..."}` with one of Freeport's codes.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use freeport_common::error::ErrorCode;
use freeport_common::kafka;
use freeport_common::proto::catalog::v1::RecordPart as Part;
use freeport_common::telemetry;
use futures::StreamExt;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{media_type, ApiPath, Caller};
use crate::produce::{
    check_partition, decode_base64, decode_headers, delivered, delivery_error_code, destination,
    send_span, Encoded,
};
use crate::validate::Check;
use crate::wire::DataType;
use crate::AppState;

/// Records sent but not yet reported. A client that stops reading its
/// reports stops being read once this many are waiting.
const IN_FLIGHT: usize = 4096;
/// How long a record waits for room in a full producer queue before it
/// fails with 50003.
const QUEUE_FULL_GIVE_UP: Duration = Duration::from_secs(15);

/// One record of a streaming produce body (records follow each other,
/// concatenated or one per line).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V3Record {
    #[serde(default)]
    #[schema(minimum = 0)]
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<crate::wire::Header>,
    #[serde(default)]
    key: Option<V3Data>,
    #[serde(default)]
    value: Option<V3Data>,
    /// RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    timestamp: Option<String>,
}

/// A key or value of a streaming produce record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V3Data {
    /// `JSON` (the default), `BINARY` (base64) or `STRING`.
    #[serde(rename = "type", default)]
    kind: DataType,
    #[serde(default)]
    data: Value,
}

/// One delivery report of a streaming produce (one per record, in order):
/// where the record landed, or why it was not written.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum V3Report {
    Delivered {
        /// 200.
        error_code: u32,
        cluster_id: String,
        topic_name: String,
        partition_id: i32,
        offset: i64,
        /// RFC 3339.
        timestamp: Option<String>,
        key: Option<V3Size>,
        value: Option<V3Size>,
    },
    Refused {
        /// One of Freeport's codes.
        error_code: u32,
        message: String,
    },
}

/// What a report says about a record's key or value.
#[derive(Debug, Serialize, ToSchema)]
pub struct V3Size {
    #[serde(rename = "type")]
    kind: DataType,
    size: usize,
}

/// What the report of one record says about its key or value.
type Shape = Option<(DataType, usize)>;

/// A record on its way: sent (its delivery to wait for), or refused.
enum Pending {
    Sent {
        delivery: Result<DeliveryFuture, KafkaError>,
        key: Shape,
        value: Shape,
        /// The record's `send` span, when tracing is on.
        sending: Option<Context>,
    },
    Refused(ApiError),
}

fn encode_data(what: &str, index: usize, data: Option<V3Data>) -> ApiResult<Option<Vec<u8>>> {
    let Some(V3Data { kind, data }) = data else {
        return Ok(None);
    };
    let bad = |expected: &str| {
        ApiError::new(
            ErrorCode::InvalidRecords,
            format!(
                "records[{index}].{what}.data must be {expected} for type {}",
                kind.name()
            ),
        )
    };
    match (kind, data) {
        (_, Value::Null) => Ok(None),
        (DataType::Json, data) => Ok(Some(data.to_string().into_bytes())),
        (DataType::Binary, Value::String(text)) => decode_base64(what, index, &text).map(Some),
        (DataType::Binary, _) => Err(bad("a base64 string")),
        (DataType::String, Value::String(text)) => Ok(Some(text.into_bytes())),
        (DataType::String, _) => Err(bad("a string")),
    }
}

fn encode(
    index: usize,
    record: Value,
    partitions: usize,
    check: &Check,
) -> ApiResult<(Encoded, Shape, Shape)> {
    let record: V3Record = crate::strict::from_value(record).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRecords,
            format!("records[{index}] is not a record: {e}"),
        )
    })?;
    if let Some(partition) = record.partition_id {
        check_partition(index, partition, partitions)?;
    }
    let timestamp = record
        .timestamp
        .map(|text| {
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|e| {
                    ApiError::new(
                        ErrorCode::InvalidRecords,
                        format!("records[{index}].timestamp {text:?} is not RFC 3339: {e}"),
                    )
                })
        })
        .transpose()?;
    let kinds = (
        record.key.as_ref().map(|d| d.kind),
        record.value.as_ref().map(|d| d.kind),
    );
    // JSON is checked as JSON; bytes as the part's schema wants them.
    let checked = |part: Part, data: Option<V3Data>| match data {
        Some(V3Data {
            kind: DataType::Json,
            data,
        }) if !data.is_null() => check.json(part, index, &data).map(Some),
        data => {
            let bytes = encode_data(part.name(), index, data)?;
            if let Some(bytes) = &bytes {
                check.bytes(part, index, bytes)?;
            }
            Ok(bytes)
        }
    };
    let encoded = Encoded {
        key: checked(Part::Key, record.key)?,
        value: checked(Part::Value, record.value)?,
        partition: record.partition_id,
        headers: decode_headers(index, record.headers)?,
        timestamp,
    };
    let shape =
        |kind: Option<DataType>, bytes: &Option<Vec<u8>>| kind.zip(bytes.as_ref().map(Vec::len));
    let key = shape(kinds.0, &encoded.key);
    let value = shape(kinds.1, &encoded.value);
    Ok((encoded, key, value))
}

/// Where `read_records` sends: the producer, cluster and topic, how its
/// records are checked, and the trace context of the request (each
/// record's `send` span is its child).
struct Destination {
    producer: FutureProducer,
    cluster: String,
    topic: String,
    check: Check,
    trace: Context,
}

/// Reads records from `body` as they arrive, sends each, and queues what
/// to report, until the body ends, stops being JSON, nobody reads the
/// reports any more, or the portal shuts down (the records already read
/// are still reported, then a last report says to send the rest again).
async fn read_records(
    body: Body,
    to: Destination,
    partitions: usize,
    max_record_bytes: usize,
    reports: mpsc::Sender<Pending>,
    shutdown: CancellationToken,
) {
    let mut chunks = body.into_data_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut index = 0usize;
    let mut ended = false;
    while !ended {
        let chunk = tokio::select! {
            chunk = chunks.next() => chunk,
            _ = shutdown.cancelled() => {
                let stopping = ApiError::new(
                    ErrorCode::Unavailable,
                    format!("records[{index}]: the portal is shutting down; nothing from here on was read, send it again"),
                );
                let _ = reports.send(Pending::Refused(stopping)).await;
                return;
            }
        };
        match chunk {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(_)) => return, // the client went away
            None => ended = true,
        }
        let mut values = serde_json::Deserializer::from_slice(&buffer).into_iter::<Value>();
        let mut fatal = None;
        let mut parsed = Vec::new();
        let mut start = 0;
        while let Some(value) = values.next() {
            let end = values.byte_offset();
            if end - start > max_record_bytes {
                fatal = Some(too_large(index + parsed.len(), max_record_bytes));
                break;
            }
            start = end;
            match value {
                Ok(value) => parsed.push(value),
                Err(e) if e.is_eof() && !ended => break, // the rest is still coming
                Err(e) => {
                    fatal = Some(ApiError::new(
                        ErrorCode::MalformedBody,
                        format!(
                            "records[{}]: malformed JSON: {e}; nothing after it was read",
                            index + parsed.len()
                        ),
                    ));
                    break;
                }
            }
        }
        let consumed = values.byte_offset();
        for value in parsed {
            let pending = match encode(index, value, partitions, &to.check) {
                Ok((mut record, key, value)) => {
                    let sending = send_span(&to.trace, &to.cluster, &to.topic, 1);
                    if let Some(cx) = &sending {
                        record.carry(&telemetry::trace_headers(cx));
                    }
                    Pending::Sent {
                        delivery: kafka::send_queued(
                            &to.producer,
                            record.to_kafka(&to.topic),
                            Some(QUEUE_FULL_GIVE_UP),
                        )
                        .await,
                        key,
                        value,
                        sending,
                    }
                }
                Err(refused) => Pending::Refused(refused),
            };
            index += 1;
            if reports.send(pending).await.is_err() {
                return;
            }
        }
        if let Some(fatal) = fatal {
            let _ = reports.send(Pending::Refused(fatal)).await;
            return;
        }
        buffer.drain(..consumed);
        if buffer.len() > max_record_bytes {
            let _ = reports
                .send(Pending::Refused(too_large(index, max_record_bytes)))
                .await;
            return;
        }
    }
}

fn too_large(index: usize, max_record_bytes: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "records[{index}] is larger than {max_record_bytes} bytes; nothing after it was read"
        ),
    )
}

fn size(shape: Shape) -> Option<V3Size> {
    shape.map(|(kind, size)| V3Size { kind, size })
}

async fn report(pending: Pending, cluster: &str, topic: &str) -> V3Report {
    let refused = |e: ApiError| V3Report::Refused {
        error_code: e.code.code(),
        message: e.message,
    };
    match pending {
        Pending::Refused(e) => refused(e),
        Pending::Sent {
            delivery,
            key,
            value,
            sending,
        } => match delivered(delivery).await {
            Ok(delivery) => {
                if let Some(cx) = &sending {
                    cx.span().set_attributes([
                        KeyValue::new(
                            "messaging.destination.partition.id",
                            delivery.partition.to_string(),
                        ),
                        KeyValue::new("messaging.kafka.offset", delivery.offset),
                    ]);
                    telemetry::end(cx, None);
                }
                let timestamp = delivery
                    .timestamp
                    .to_millis()
                    .and_then(|ms| {
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                            .ok()
                    })
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    });
                V3Report::Delivered {
                    error_code: 200,
                    cluster_id: cluster.to_string(),
                    topic_name: topic.to_string(),
                    partition_id: delivery.partition,
                    offset: delivery.offset,
                    timestamp,
                    key: size(key),
                    value: size(value),
                }
            }
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "produce failed");
                if let Some(cx) = &sending {
                    telemetry::end(cx, Some(e.to_string()));
                }
                V3Report::Refused {
                    error_code: delivery_error_code(&e),
                    message: e.to_string(),
                }
            }
        },
    }
}

#[utoipa::path(
    post,
    path = "/v3/clusters/{cluster}/topics/{topic}/records",
    operation_id = "records_produce",
    tag = "rest proxy",
    params(("cluster" = crate::openapi::Identifier, Path), ("topic" = crate::openapi::TopicName, Path)),
    request_body(content = V3Record, description = "records one after another, as long as the client likes (Transfer-Encoding: chunked)"),
    responses(
        (status = 200, description = "one report per record, in order, one per line, while the request is still open", body = V3Report),
        crate::error::Failures,
    ),
)]
pub async fn produce(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, topic)): ApiPath<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    match media_type(request.headers()).as_deref() {
        Some("application/json" | "application/x-ndjson") => {}
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type {:?} is not supported; send application/json",
                    other.unwrap_or("")
                ),
            ))
        }
    }
    let org = caller.require_org("produce")?.to_string();
    let target = destination(&state, &org, &topic).await?;
    let (cluster_name, partitions) = (target.cluster, target.partitions);
    if cluster_name.as_str() != cluster {
        return Err(ApiError::new(
            ErrorCode::TopicNotFound,
            format!("topic {topic:?} is not on cluster {cluster:?}"),
        ));
    }
    let producer = state.producer(&cluster_name)?.clone();
    let (sender, receiver) = mpsc::channel(IN_FLIGHT);
    let to = Destination {
        producer,
        cluster: cluster.clone(),
        topic: topic.clone(),
        check: target.check,
        trace: Context::current(),
    };
    tokio::spawn(read_records(
        request.into_body(),
        to,
        partitions,
        state.max_body_bytes(),
        sender,
        state.shutdown().clone(),
    ));
    // A body that is not JSON from its first byte gets an HTTP error, not
    // a 200 whose only report is the error: nothing was read. Waiting for
    // the first report costs no delivery (it comes when the first record
    // is handed to the producer).
    let mut receiver = ReceiverStream::new(receiver);
    let first = match receiver.next().await {
        Some(Pending::Refused(refusal))
            if matches!(
                refusal.code,
                ErrorCode::MalformedBody | ErrorCode::PayloadTooLarge
            ) =>
        {
            return Err(refusal)
        }
        first => first,
    };
    let reports = futures::stream::iter(first)
        .chain(receiver)
        .then(move |pending| {
            let (cluster, topic) = (cluster.clone(), topic.clone());
            async move {
                let mut line = serde_json::to_vec(&report(pending, &cluster, &topic).await)
                    .unwrap_or_default();
                line.push(b'\n');
                Ok::<_, Infallible>(Bytes::from(line))
            }
        });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(reports),
    )
        .into_response())
}
