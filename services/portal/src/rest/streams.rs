//! Discovery and registration of streams, and their AsyncAPI documents.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use freeport_common::error::ErrorCode;
use freeport_common::kafka::{ensure_topic_with, partition_count};
use freeport_common::names::{ClusterName, StreamName, TopicName};
use freeport_common::proto::catalog::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::asyncapi;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;

/// Most partitions a registration may create a topic with.
const MAX_PARTITIONS: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterStream {
    name: String,
    cluster: String,
    topic: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    /// JSON Schema of the record value.
    #[serde(default)]
    schema: Option<serde_json::Value>,
    /// Partitions to create the topic with when it does not exist yet.
    #[serde(default)]
    partitions: Option<u32>,
    /// public, partner, internal (the default) or restricted.
    #[serde(default)]
    classification: Option<String>,
    /// JSON pointers to the value's fields that hold personal data.
    #[serde(default)]
    personal_data_fields: Vec<String>,
    /// Retention to create the topic with when it does not exist yet.
    #[serde(default)]
    retention_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct StreamView {
    name: String,
    owner: String,
    cluster: String,
    topic: String,
    title: String,
    description: String,
    tags: Vec<String>,
    schema: serde_json::Value,
    classification: String,
    personal_data_fields: Vec<String>,
    partitions: u32,
    retention_ms: Option<i64>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<pb::Stream> for StreamView {
    fn from(s: pb::Stream) -> StreamView {
        StreamView {
            schema: serde_json::from_str(&s.value_schema_json).unwrap_or(serde_json::Value::Null),
            classification: pb::Classification::try_from(s.classification)
                .map(|c| super::enum_name(c.as_str_name(), "CLASSIFICATION_"))
                .unwrap_or_default(),
            personal_data_fields: s.personal_data_fields,
            partitions: s.partitions,
            retention_ms: (s.retention_ms != 0).then_some(s.retention_ms),
            name: s.name,
            owner: s.owner,
            cluster: s.cluster,
            topic: s.topic,
            title: s.title,
            description: s.description,
            tags: s.tags,
            created_at_ms: s.created_at_ms,
            updated_at_ms: s.updated_at_ms,
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    let streams: Vec<StreamView> = state
        .catalog()
        .list_streams_for(caller.0)
        .await?
        .into_iter()
        .map(StreamView::from)
        .collect();
    Ok(Json(serde_json::json!({ "streams": streams })))
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<StreamView>> {
    Ok(Json(
        state
            .catalog()
            .get_stream_for(&name, caller.0)
            .await?
            .into(),
    ))
}

pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterStream>,
) -> ApiResult<(StatusCode, Json<StreamView>)> {
    caller.require_org("register streams")?;
    let invalid = |e: freeport_common::names::NameError| ApiError::invalid(e.to_string());
    let name = StreamName::parse(body.name).map_err(invalid)?;
    let cluster_name = ClusterName::parse(body.cluster).map_err(invalid)?;
    let topic = TopicName::parse(body.topic).map_err(invalid)?;
    let partitions = body.partitions.unwrap_or(1);
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(ApiError::invalid(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}"
        )));
    }
    let schema = body.schema.unwrap_or_else(|| serde_json::json!({}));
    if !schema.is_object() {
        return Err(ApiError::invalid("schema must be a JSON Schema object"));
    }
    let classification = match body.classification.as_deref() {
        None | Some("internal") => pb::Classification::Internal,
        Some("public") => pb::Classification::Public,
        Some("partner") => pb::Classification::Partner,
        Some("restricted") => pb::Classification::Restricted,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "classification {other:?} is not one of public, partner, internal, restricted"
            )))
        }
    };
    if body.retention_ms.is_some_and(|r| r <= 0) {
        return Err(ApiError::invalid("retention_ms must be positive"));
    }
    let cluster = state.cluster(&cluster_name)?;
    // Refuse a duplicate before touching the cluster.
    match state.catalog().get_stream(name.as_str()).await {
        Ok(_) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("stream {:?} already exists", name.as_str()),
            ))
        }
        Err(e) if e.code == ErrorCode::StreamNotFound => {}
        Err(e) => return Err(e),
    }
    let retention = body.retention_ms.map(|r| r.to_string());
    let configs: Vec<(&str, &str)> = retention
        .as_deref()
        .map(|r| ("retention.ms", r))
        .into_iter()
        .collect();
    let partitions = ensure_topic_with(cluster, topic.as_str(), partitions as usize, &configs)
        .await
        .map_err(|e| {
            ApiError::kafka(&format!("cannot create topic {topic} on {cluster_name}"), e)
        })?;
    let stream = pb::Stream {
        name: name.to_string(),
        cluster: cluster_name.to_string(),
        topic: topic.to_string(),
        title: body.title,
        description: body.description,
        tags: body.tags,
        value_schema_json: schema.to_string(),
        classification: classification.into(),
        personal_data_fields: body.personal_data_fields,
        partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
        retention_ms: body.retention_ms.unwrap_or(0),
        ..Default::default()
    };
    let stream = state.catalog().register_stream(caller.0, stream).await?;
    Ok((StatusCode::CREATED, Json(stream.into())))
}

/// YAML unless the caller asks for JSON.
pub async fn asyncapi(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stream = state.catalog().get_stream_for(&name, caller.0).await?;
    let cluster_name = ClusterName::parse(stream.cluster.clone())
        .map_err(|e| ApiError::internal("stream names an invalid cluster", e))?;
    let cluster = state.cluster(&cluster_name)?;
    // The partition count is a nicety; a cluster that cannot be reached
    // must not make the document unavailable.
    let partitions = partition_count(cluster, &stream.topic).await.ok().flatten();
    let document = asyncapi::stream_document(&stream, cluster, partitions);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("json"));
    if wants_json {
        return Ok(([(header::CONTENT_TYPE, "application/json")], Json(document)).into_response());
    }
    let yaml = serde_yaml_ng::to_string(&document)
        .map_err(|e| ApiError::internal("cannot render AsyncAPI as YAML", e))?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response())
}
