//! Kafka REST Proxy v2 produce: `POST /topics/{topic}` in every embedded
//! format (`json`, `binary`, `avro`, `jsonschema`; v1's media types too),
//! answered with per-record offsets as REST Proxy does. Only the
//! organization that owns the topic's stream may produce, and every record
//! is checked against the stream's schema before anything is sent
//! ([`crate::validate`]): one bad record refuses the whole request, with
//! Confluent's code and a message naming the record and the field.
//!
//! In `avro` and `jsonschema`, values come with `value_schema_id` (one of
//! the stream's global schema ids) or `value_schema` (registered as the
//! stream's next version, or found among its versions), and are written in
//! the Confluent wire format under that id.
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
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::proto::catalog::v1::RecordPart as Part;
use freeport_common::telemetry;
use opentelemetry::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{body_bytes, media_type, parse_json, ApiPath, Caller};
use crate::produce::{
    check_partition, decode_base64, decode_headers, delivered, delivery_error_code, destination,
    send_span, Encoded, Target,
};
use crate::validate::Check;
use crate::wire::Format;
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

/// A produce body of a schema-registry embedded format (`avro`,
/// `jsonschema`): values as JSON, under the schema `value_schema_id` names
/// or `value_schema` is.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaProduceRequest {
    /// The keys' schema as text: registered as the next version of the
    /// stream's key schema (the `<topic>-key` subject) unless it has it.
    #[serde(default)]
    key_schema: Option<String>,
    /// One of the global ids of the stream's key schema versions.
    #[serde(default)]
    #[schema(minimum = 1)]
    key_schema_id: Option<u32>,
    /// The values' schema as text: registered as the stream's next version
    /// (under its compatibility mode) unless the stream has it already.
    #[serde(default)]
    value_schema: Option<String>,
    /// One of the stream's global schema ids.
    #[serde(default)]
    #[schema(minimum = 1)]
    value_schema_id: Option<u32>,
    #[schema(min_items = 1, max_items = 10000)]
    records: Vec<ProduceRecord<Value>>,
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
pub struct Base64Data(Value);

impl Base64Data {
    /// The bytes, checked as `part` of record `index`.
    fn checked(self, check: &Check, part: Part, index: usize) -> ApiResult<Option<Vec<u8>>> {
        let what = part.name();
        let bytes = match self.0 {
            Value::Null => return Ok(None),
            Value::String(text) => decode_base64(what, index, &text)?,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidRecords,
                    format!("records[{index}].{what} must be a base64 string in the binary format"),
                ))
            }
        };
        check.bytes(part, index, &bytes)?;
        Ok(Some(bytes))
    }
}

/// A JSON key or value's bytes (`None` for null), checked as `part` of
/// record `index`.
fn json_checked(
    check: &Check,
    part: Part,
    index: usize,
    data: Value,
) -> ApiResult<Option<Vec<u8>>> {
    match data {
        Value::Null => Ok(None),
        data => check.json(part, index, &data).map(Some),
    }
}

/// Where each record of a produce request landed, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    key_schema_id: Option<u32>,
    /// The schema id the values were written under (`avro`, `jsonschema`).
    value_schema_id: Option<u32>,
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

/// How a request's keys and values become bytes.
type ToBytes<'a, T> = dyn FnMut(usize, T) -> ApiResult<Option<Vec<u8>>> + 'a;

/// The records, checked against the topic's `partitions` (and the one in
/// the path, `fixed`) and encoded with `key` and `value`.
fn encode<T>(
    mut records: Vec<ProduceRecord<T>>,
    fixed: Option<i32>,
    partitions: usize,
    key: &mut ToBytes<'_, T>,
    value: &mut ToBytes<'_, T>,
) -> ApiResult<Vec<Encoded>> {
    if let Some(fixed) = fixed {
        check_partition(0, fixed, partitions).map_err(|_| {
            ApiError::new(
                ErrorCode::PartitionNotFound,
                format!("partition {fixed} not found; the topic has {partitions}"),
            )
        })?;
        for (i, record) in records.iter_mut().enumerate() {
            if record.partition.is_some_and(|p| p != fixed) {
                return Err(ApiError::new(
                    ErrorCode::InvalidRecords,
                    format!("records[{i}].partition differs from partition {fixed} in the path"),
                ));
            }
            record.partition = Some(fixed);
        }
    }
    if records.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRecords,
            "records must not be empty",
        ));
    }
    if records.len() > MAX_RECORDS {
        return Err(ApiError::new(
            ErrorCode::InvalidRecords,
            format!(
                "{} records in one request; the limit is {MAX_RECORDS}",
                records.len()
            ),
        ));
    }
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            if let Some(p) = record.partition {
                check_partition(i, p, partitions)?;
            }
            Ok(Encoded {
                key: record.key.map(|k| key(i, k)).transpose()?.flatten(),
                value: record.value.map(|v| value(i, v)).transpose()?.flatten(),
                partition: record.partition,
                headers: decode_headers(i, record.headers)?,
                timestamp: None,
            })
        })
        .collect()
}

/// The schema version a schema-registry request's keys or values
/// (`part`) are written under: the stream's version with the request's
/// `*_schema_id`, or its `*_schema` registered (or found) as one of the
/// part's versions. `None` when the request names neither.
async fn part_schema(
    state: &AppState,
    caller: &Caller,
    check: &Check,
    format: Format,
    part: Part,
    (id, text): (Option<u32>, Option<&str>),
) -> ApiResult<Option<pb::SchemaVersion>> {
    let stream = check.stream();
    let name = part.name();
    let Some(wanted) = format.schema_format() else {
        return Ok(None);
    };
    if check.format(part).is_some_and(|f| f != wanted) {
        return Err(ApiError::new(
            ErrorCode::InvalidSchema,
            format!(
                "stream {}'s {name} schema is not {}; produce in its own format",
                stream.name,
                format.name()
            ),
        ));
    }
    match (id, text) {
        (Some(id), _) => check.version_with_id(part, id).cloned().map(Some).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSchema,
                format!(
                    "schema id {id} is not one of stream {}'s {name} schema versions (GET /registry/subjects/{}-{name}/versions lists them)",
                    stream.name, stream.topic
                ),
            )
        }),
        (None, Some(text)) => {
            let schema = wanted.schema_from_text(text).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidSchema,
                    format!("{name}_schema is not JSON: {e}"),
                )
            })?;
            state
                .catalog()
                .register_schema(pb::RegisterSchemaRequest {
                    actor: Some(caller.0.clone()),
                    stream: stream.name.clone(),
                    format: pb::SchemaFormat::from(wanted).into(),
                    schema_json: schema.to_string(),
                    part: part.into(),
                    references: vec![],
                })
                .await
                .map(Some)
                .map_err(|e| match e.code {
                    ErrorCode::InvalidField => ApiError::new(ErrorCode::InvalidSchema, e.message),
                    _ => e,
                })
        }
        (None, None) => Ok(None),
    }
}

/// The records of a schema-registry request, encoded, and the schema ids
/// their keys and values are under. A request whose records have keys
/// (or values) must name the schema they are under, as REST Proxy
/// requires (42201, 42202).
async fn encode_under_schema(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    format: Format,
    request: SchemaProduceRequest,
    fixed: Option<i32>,
) -> ApiResult<(Vec<Encoded>, [Option<u32>; 2])> {
    let present = |part: fn(&ProduceRecord<Value>) -> &Option<Value>| {
        request
            .records
            .iter()
            .position(|r| part(r).as_ref().is_some_and(|v| !v.is_null()))
    };
    let (first_key, any_value) = (present(|r| &r.key), present(|r| &r.value).is_some());
    let check = &target.check;
    let key = (request.key_schema_id, request.key_schema.as_deref());
    let key = match (
        part_schema(state, caller, check, format, Part::Key, key).await?,
        first_key,
    ) {
        (None, Some(i)) => {
            return Err(ApiError::new(
                ErrorCode::KeySchemaMissing,
                format!(
                    "Request includes keys but does not include key schema: give key_schema_id or key_schema (records[{i}].key)"
                ),
            ))
        }
        (key, _) => key,
    };
    let value = (request.value_schema_id, request.value_schema.as_deref());
    let value = match part_schema(state, caller, check, format, Part::Value, value).await? {
        None if any_value => {
            return Err(ApiError::new(
                ErrorCode::ValueSchemaMissing,
                "Request includes values but does not include value schema: give value_schema_id or value_schema",
            ))
        }
        value => value,
    };
    let under = |part: Part, version: &Option<pb::SchemaVersion>, i: usize, data: Value| match (
        version, data,
    ) {
        (_, Value::Null) | (None, _) => Ok(None),
        (Some(version), data) => check.registry_encode(part, i, version, &data).map(Some),
    };
    let records = encode(
        request.records,
        fixed,
        target.partitions,
        &mut |i, data| under(Part::Key, &key, i, data),
        &mut |i, data| under(Part::Value, &value, i, data),
    )?;
    Ok((records, [key.map(|v| v.id), value.map(|v| v.id)]))
}

/// `POST /topics/{topic}`: each record goes to the partition it names, or
/// where the producer's partitioner puts it.
#[utoipa::path(
    post,
    path = "/topics/{topic}",
    operation_id = "produce_produce",
    tag = "rest proxy",
    params(("topic" = crate::openapi::TopicName, Path)),
    request_body(content((ProduceRequest<serde_json::Value> = "application/vnd.kafka.json.v2+json"), (ProduceRequest<Base64Data> = "application/vnd.kafka.binary.v2+json"), (SchemaProduceRequest = "application/vnd.kafka.avro.v2+json"), (SchemaProduceRequest = "application/vnd.kafka.jsonschema.v2+json"), (SchemaProduceRequest = "application/vnd.kafka.protobuf.v2+json"))),
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
    request_body(content((ProduceRequest<serde_json::Value> = "application/vnd.kafka.json.v2+json"), (ProduceRequest<Base64Data> = "application/vnd.kafka.binary.v2+json"), (SchemaProduceRequest = "application/vnd.kafka.avro.v2+json"), (SchemaProduceRequest = "application/vnd.kafka.jsonschema.v2+json"), (SchemaProduceRequest = "application/vnd.kafka.protobuf.v2+json"))),
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
    let Some(format) = media.as_deref().and_then(Format::of_content_type) else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content type {:?} is not supported; use {}",
                media.as_deref().unwrap_or(""),
                Format::ALL.map(Format::media_type).join(", ")
            ),
        ));
    };
    let org = caller.require_org("produce")?.to_string();
    let body = body_bytes(request, &state).await?;
    let target = destination(&state, &org, &topic).await?;
    let check = &target.check;
    let cluster_name = target.cluster.clone();
    // Everything is checked before anything is sent: a bad record fails the
    // whole request and writes nothing.
    let (mut records, [key_schema_id, value_schema_id]) = match format {
        Format::Json => {
            let request: ProduceRequest<Value> = parse_json(&body)?;
            let records = encode(
                request.records,
                partition,
                target.partitions,
                &mut |i, key| json_checked(check, Part::Key, i, key),
                &mut |i, value| json_checked(check, Part::Value, i, value),
            )?;
            (records, [None, None])
        }
        Format::Binary => {
            let request: ProduceRequest<Base64Data> = parse_json(&body)?;
            let records = encode(
                request.records,
                partition,
                target.partitions,
                &mut |i, key: Base64Data| key.checked(check, Part::Key, i),
                &mut |i, value: Base64Data| value.checked(check, Part::Value, i),
            )?;
            (records, [None, None])
        }
        Format::Avro | Format::JsonSchema | Format::Protobuf => {
            let request: SchemaProduceRequest = parse_json(&body)?;
            encode_under_schema(&state, &caller, &target, format, request, partition).await?
        }
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
        key_schema_id,
        value_schema_id,
        offsets,
    }))
}
