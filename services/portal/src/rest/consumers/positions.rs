//! Reading through an instance: positions (seek), records, and committed
//! offsets.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use freeport_common::error::ErrorCode;
use serde::Deserialize;

use super::{
    no_content, InstancePath, OffsetsBody, PartitionsBody, DEFAULT_MAX_BYTES, MAX_MAX_BYTES,
    MAX_RECORDS, MAX_REQUEST_TIMEOUT,
};
use crate::consumers::with_instance;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, OptionalJson};
use crate::rest::V2;
use crate::wire::Format;
use crate::AppState;

/// `POST .../positions`: the next record read from each partition is the
/// one at the offset given.
#[utoipa::path(
    post,
    path = "/consumers/{group}/instances/{instance}/positions",
    operation_id = "consumers_seek",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = OffsetsBody, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 204, description = "moved"),
        crate::error::Failures,
    ),
)]
pub async fn seek(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiJson(body): ApiJson<OffsetsBody>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    let offsets = body.triples();
    if let Some((topic, partition, offset)) = offsets.iter().find(|(_, _, o)| *o < 0) {
        return Err(ApiError::invalid(format!(
            "offset {offset} of partition {partition} of {topic:?} is negative"
        )));
    }
    with_instance(instance, move |i| i.seek(offsets)).await?;
    Ok(no_content())
}

async fn seek_to(
    state: AppState,
    caller: Caller,
    path: InstancePath,
    body: PartitionsBody,
    end: bool,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    let partitions = body.pairs();
    with_instance(instance, move |i| i.seek_to(partitions, end)).await?;
    Ok(no_content())
}

/// `POST .../positions/beginning`.
#[utoipa::path(
    post,
    path = "/consumers/{group}/instances/{instance}/positions/beginning",
    operation_id = "consumers_seek_beginning",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = PartitionsBody, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 204, description = "moved"),
        crate::error::Failures,
    ),
)]
pub async fn seek_beginning(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiJson(body): ApiJson<PartitionsBody>,
) -> ApiResult<Response> {
    seek_to(state, caller, path, body, false).await
}

/// `POST .../positions/end`.
#[utoipa::path(
    post,
    path = "/consumers/{group}/instances/{instance}/positions/end",
    operation_id = "consumers_seek_end",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = PartitionsBody, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 204, description = "moved"),
        crate::error::Failures,
    ),
)]
pub async fn seek_end(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiJson(body): ApiJson<PartitionsBody>,
) -> ApiResult<Response> {
    seek_to(state, caller, path, body, true).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Milliseconds to wait for records.
    #[serde(default)]
    #[param(value_type = Option<u64>, maximum = 4294967295.0)]
    timeout: Option<u32>,
    /// Most bytes of keys and values to return.
    #[serde(default)]
    #[param(value_type = Option<u64>, maximum = 4294967295.0)]
    max_bytes: Option<u32>,
}

/// The format `Accept` asks for, if it names one.
fn accepted_format(headers: &HeaderMap) -> Option<Format> {
    Format::accepted(headers.get(header::ACCEPT)?.to_str().ok()?)
}

/// The media type records go out in: the v1 type of the instance's format
/// when `Accept` asks for it (REST Proxy v1's readers), else the v2 one.
fn records_type(headers: &HeaderMap, format: Format) -> &'static str {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match format.v1_media_type() {
        Some(v1) if accept.contains(v1) && !accept.contains(format.media_type()) => v1,
        _ => format.media_type(),
    }
}

/// Path of REST Proxy v1's read of one topic.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TopicPath {
    #[param(value_type = crate::openapi::ConsumerName)]
    group: String,
    #[param(value_type = crate::openapi::ConsumerName)]
    instance: String,
    #[param(value_type = crate::openapi::TopicName)]
    topic: String,
}

/// `GET .../topics/{topic}`: REST Proxy v1's read, as its clients make it
/// (Confluent's `kafka-rest` for Node.js among them): the instance reads
/// `topic` from now on (added to its subscription the first time, with
/// the same access checks as subscribing), then answers what arrived as
/// `GET .../records` does.
#[utoipa::path(
    get,
    path = "/consumers/{group}/instances/{instance}/topics/{topic}",
    operation_id = "consumers_topic_records",
    tag = "rest proxy",
    params(TopicPath, RecordsQuery),
    responses(
        (status = 200, description = "the records, in the instance's format", content((Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.binary.v1+json"), (Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.json.v1+json"), (Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.avro.v1+json"), (Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.binary.v2+json"))),
        crate::error::Failures,
    ),
)]
pub async fn topic_records(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TopicPath>,
    ApiQuery(query): ApiQuery<RecordsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let instance = InstancePath {
        group: path.group,
        instance: path.instance,
    };
    let held = instance.get(&state, &caller)?;
    let subscribed = with_instance(held.clone(), |i| {
        Ok(match i.mode() {
            crate::consumers::Mode::Subscribed(topics) => topics.clone(),
            _ => vec![],
        })
    })
    .await?;
    if !subscribed.contains(&path.topic) {
        let topics = subscribed.into_iter().chain([path.topic]);
        let (reads, cluster) = super::topic_reads(&state, &caller, topics).await?;
        with_instance(held, move |i| i.subscribe(reads, &cluster)).await?;
    }
    records(
        State(state),
        caller,
        ApiPath(instance),
        ApiQuery(query),
        headers,
    )
    .await
}

/// `GET .../records`: what arrived, in the instance's format, after
/// checking that every contract it reads under is still active.
#[utoipa::path(
    get,
    path = "/consumers/{group}/instances/{instance}/records",
    operation_id = "consumers_records",
    tag = "rest proxy",
    params(InstancePath, RecordsQuery),
    responses(
        (status = 200, description = "the records, in the instance's format", content((Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.json.v2+json"), (Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.binary.v2+json"), (Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.avro.v2+json"), (Vec<crate::consumers::ConsumerRecord> = "application/vnd.kafka.jsonschema.v2+json"))),
        crate::error::Failures,
    ),
)]
pub async fn records(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiQuery(query): ApiQuery<RecordsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    // Off the async runtime: another request may hold the instance while
    // it waits for records.
    let (format, default_timeout, contracts) = with_instance(instance.clone(), |i| {
        Ok((i.settings.format, i.settings.request_timeout, i.contracts()))
    })
    .await?;
    if accepted_format(&headers).is_some_and(|wanted| wanted != format) {
        return Err(ApiError::new(
            ErrorCode::ConsumerFormatMismatch,
            format!(
                "this instance reads the {} format; ask for {}",
                format.name(),
                format.media_type()
            ),
        ));
    }
    // Each contract read under must still be active, and its budgets
    // allow this request and at most this many records.
    let mut max_records = usize::MAX;
    let mut granted: Vec<(String, usize)> = vec![];
    for id in contracts {
        let contract = state.view().active(&id).await?;
        state.limits().request(&id)?;
        let per_second = contract
            .terms
            .as_ref()
            .map_or(0, |t| t.max_records_per_second);
        if per_second > 0 {
            let got = match state.limits().records(&id, per_second, MAX_RECORDS) {
                Ok(got) => got,
                Err(refused) => {
                    for (id, got) in granted {
                        state.limits().give_back(&id, got);
                    }
                    return Err(refused);
                }
            };
            max_records = max_records.min(got);
            granted.push((id, got));
        }
    }
    let timeout = query
        .timeout
        .map(|ms| Duration::from_millis(ms.into()))
        .unwrap_or(default_timeout)
        .min(MAX_REQUEST_TIMEOUT);
    let max_bytes = query
        .max_bytes
        .map_or(DEFAULT_MAX_BYTES, |b| b as usize)
        .min(MAX_MAX_BYTES);
    let records = with_instance(instance, move |i| {
        i.records(timeout, max_bytes, max_records)
    })
    .await;
    let read = records.as_ref().map_or(0, Vec::len);
    for (id, got) in granted {
        state.limits().give_back(&id, got.saturating_sub(read));
    }
    let records = records?;
    let content_type = records_type(&headers, format);
    Ok(([(header::CONTENT_TYPE, content_type)], Json(records)).into_response())
}

/// `POST .../offsets`: commits the offsets given (each the last record
/// processed), or with no body everything read so far.
#[utoipa::path(
    post,
    path = "/consumers/{group}/instances/{instance}/offsets",
    operation_id = "consumers_commit",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = Option<OffsetsBody>, content_type = "application/vnd.kafka.v2+json", description = "without a body: everything read so far"),
    responses(
        (status = 204, description = "committed"),
        crate::error::Failures,
    ),
)]
pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    OptionalJson(body): OptionalJson<OffsetsBody>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    // No body, or no offsets in it: everything read so far.
    let offsets = body.triples();
    with_instance(instance, move |i| i.commit(offsets)).await?;
    Ok(no_content())
}

/// A group's committed offsets.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CommittedOffsets {
    offsets: Vec<crate::consumers::CommittedOffset>,
}

/// `GET .../offsets`: the group's committed offsets of the partitions in
/// the body.
#[utoipa::path(
    get,
    path = "/consumers/{group}/instances/{instance}/offsets",
    operation_id = "consumers_committed",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = PartitionsBody, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 200, body = CommittedOffsets, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn committed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiJson(body): ApiJson<PartitionsBody>,
) -> ApiResult<V2<CommittedOffsets>> {
    let instance = path.get(&state, &caller)?;
    let partitions = body.pairs();
    let offsets = with_instance(instance, move |i| i.committed(partitions)).await?;
    Ok(V2(CommittedOffsets { offsets }))
}
