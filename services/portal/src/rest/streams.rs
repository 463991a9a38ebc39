//! Discovery and registration of streams, and their AsyncAPI documents.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use freeport_common::error::ErrorCode;
use freeport_common::kafka::ensure_topic_with;
use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};
use freeport_common::proto::catalog::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;

/// Most partitions a registration may create a topic with.
const MAX_PARTITIONS: u32 = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterStream {
    #[schema(value_type = crate::openapi::Identifier)]
    name: String,
    /// A cluster of the owner's (see `GET /v1/clusters`).
    #[schema(value_type = crate::openapi::Identifier)]
    cluster: String,
    /// For an admin registering on an organization's behalf: that
    /// organization. Members register for their own and may leave it out.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Identifier>)]
    owner: Option<String>,
    #[schema(value_type = crate::openapi::TopicName)]
    topic: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    title: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    #[serde(default)]
    #[schema(max_items = 20, value_type = Vec<crate::openapi::Tag>)]
    tags: Vec<String>,
    /// The record value's schema, in `schema_format`: a JSON Schema, an
    /// Avro schema, or a `.proto` file's text.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::StreamSchema>)]
    schema: Option<serde_json::Value>,
    /// Partitions to create the topic with when it does not exist yet.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    partitions: Option<u32>,
    /// public, partner, internal (the default) or restricted.
    #[serde(default)]
    #[schema(pattern = "^(public|partner|internal|restricted)$")]
    classification: Option<String>,
    /// JSON pointers to the value's fields that hold personal data.
    #[serde(default)]
    personal_data_fields: Vec<String>,
    /// Retention to create the topic with when it does not exist yet.
    #[serde(default)]
    #[schema(minimum = 1)]
    retention_ms: Option<i64>,
    /// json_schema (the default), avro or protobuf.
    #[serde(default)]
    #[schema(pattern = "^(json_schema|json|avro|protobuf)$")]
    schema_format: Option<String>,
    /// BACKWARD (the default), FORWARD, FULL, each also `_TRANSITIVE`, or NONE.
    #[serde(default)]
    #[schema(
        pattern = "^((BACKWARD|FORWARD|FULL)(_TRANSITIVE)?|NONE|(backward|forward|full)(_transitive)?|none)$"
    )]
    compatibility: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchemaVersion {
    #[schema(value_type = crate::openapi::StreamSchema)]
    schema: serde_json::Value,
    /// Defaults to the stream's format.
    #[serde(default)]
    #[schema(pattern = "^(json_schema|json|avro|protobuf)$")]
    format: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompatibilityBody {
    #[schema(
        pattern = "^((BACKWARD|FORWARD|FULL)(_TRANSITIVE)?|NONE|(backward|forward|full)(_transitive)?|none)$"
    )]
    compatibility: String,
}

fn schema_format(text: &str) -> ApiResult<pb::SchemaFormat> {
    match text {
        "json_schema" | "json" => Ok(pb::SchemaFormat::JsonSchema),
        "avro" => Ok(pb::SchemaFormat::Avro),
        "protobuf" => Ok(pb::SchemaFormat::Protobuf),
        other => Err(ApiError::invalid(format!(
            "schema format {other:?} is not json_schema, avro or protobuf"
        ))),
    }
}

/// A compatibility mode by the name the REST API and the Schema Registry
/// API give it (`BACKWARD`, `FULL_TRANSITIVE`, ...), in any case.
pub(crate) fn compatibility(text: &str) -> ApiResult<pb::Compatibility> {
    pb::Compatibility::from_str_name(&format!("COMPATIBILITY_{}", text.to_ascii_uppercase()))
        .filter(|mode| *mode != pb::Compatibility::Unspecified)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "compatibility {text:?} is not BACKWARD, FORWARD, FULL, one of those with _TRANSITIVE, or NONE"
            ))
        })
}

/// The name of a compatibility mode (`BACKWARD`, `FULL_TRANSITIVE`, ...).
pub(crate) fn compatibility_name(value: i32) -> String {
    pb::Compatibility::try_from(value)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("COMPATIBILITY_")
                .to_string()
        })
        .unwrap_or_default()
}

/// `json_schema`, `avro` or `protobuf`, as the REST API names a schema
/// format.
fn format_name(value: i32) -> String {
    pb::SchemaFormat::try_from(value)
        .map(|f| super::enum_name(f.as_str_name(), "SCHEMA_FORMAT_"))
        .unwrap_or_default()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchemaVersion {
    version: u32,
    /// The schema's global id: the same for the same schema on every
    /// stream, never changed; the id the Schema Registry API
    /// (`/registry/schemas/ids/{id}`) and the Confluent wire format use.
    id: u32,
    /// `json_schema`, `avro` or `protobuf`.
    format: String,
    schema: serde_json::Value,
    registered_at_ms: i64,
    registered_by: String,
    /// Soft-deleted (through the Schema Registry API): no longer one of the
    /// subject's versions, still readable by its id.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    /// The versions of its owner's other schemas it refers to (schema
    /// references, registered through the Schema Registry API).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<SchemaReference>,
}

/// A schema's reference to a version of another of its owner's streams'
/// schemas.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchemaReference {
    /// The name the schema uses for it: an Avro full name, a JSON Schema
    /// `$ref`, a `.proto` import path.
    name: String,
    stream: String,
    /// `value` or `key`.
    part: &'static str,
    version: u32,
}

impl From<pb::SchemaVersion> for SchemaVersion {
    fn from(v: pb::SchemaVersion) -> SchemaVersion {
        SchemaVersion {
            version: v.version,
            id: v.id,
            format: format_name(v.format),
            schema: serde_json::from_str(&v.schema_json).unwrap_or(serde_json::Value::Null),
            registered_at_ms: v.registered_at_ms,
            registered_by: v.registered_by,
            deleted: v.deleted,
            references: v
                .references
                .into_iter()
                .map(|r| SchemaReference {
                    part: r.part().name(),
                    name: r.name,
                    stream: r.stream,
                    version: r.version,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchemaVersions {
    versions: Vec<SchemaVersion>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    schema_format: String,
    compatibility: String,
    /// The latest schema version's number.
    schema_version: u32,
    /// Whether the portal checks produced records against the schema
    /// (the owner may turn it off: `PUT /v1/streams/{name}/validation`).
    validation: bool,
    /// The record key's schema, once its owner registered one (through
    /// the Schema Registry API, subject `<topic>-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_schema: Option<KeySchemaView>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

/// A stream's key schema: its latest version, format and mode.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeySchemaView {
    schema: serde_json::Value,
    schema_format: String,
    compatibility: String,
    /// The latest version's number.
    schema_version: u32,
    /// The latest version's global id.
    schema_id: u32,
}

impl From<pb::Stream> for StreamView {
    fn from(s: pb::Stream) -> StreamView {
        let schema_version = s
            .latest_live(pb::RecordPart::Value)
            .map_or(0, |v| v.version);
        let key_schema = s
            .latest_live(pb::RecordPart::Key)
            .map(|latest| KeySchemaView {
                schema: serde_json::from_str(&latest.schema_json)
                    .unwrap_or(serde_json::Value::Null),
                schema_format: format_name(s.key_schema_format),
                compatibility: compatibility_name(s.key_compatibility),
                schema_version: latest.version,
                schema_id: latest.id,
            });
        StreamView {
            schema: serde_json::from_str(&s.value_schema_json).unwrap_or(serde_json::Value::Null),
            classification: super::classification_name(s.classification),
            personal_data_fields: s.personal_data_fields,
            partitions: s.partitions,
            retention_ms: (s.retention_ms != 0).then_some(s.retention_ms),
            schema_format: format_name(s.schema_format),
            compatibility: compatibility_name(s.compatibility),
            schema_version,
            validation: !s.validation_off,
            key_schema,
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

/// `GET /v1/streams` search: every condition given must hold.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Words that must each appear (ignoring case) in the stream's name,
    /// title, description or tags.
    q: Option<String>,
    /// Tags the stream must carry, comma-separated.
    tag: Option<String>,
    /// The owning organization.
    owner: Option<String>,
}

impl Search {
    fn matches(&self, stream: &pb::Stream) -> bool {
        let text = || {
            let mut text = format!("{} {} {}", stream.name, stream.title, stream.description);
            for tag in &stream.tags {
                text.push(' ');
                text.push_str(tag);
            }
            text.to_lowercase()
        };
        let words_match = self.q.as_ref().is_none_or(|q| {
            let text = text();
            q.split_whitespace()
                .all(|word| text.contains(&word.to_lowercase()))
        });
        let tags_match = self.tag.as_ref().is_none_or(|tags| {
            tags.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .all(|tag| stream.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
        });
        words_match && tags_match && self.owner.as_ref().is_none_or(|o| *o == stream.owner)
    }
}

#[utoipa::path(
    get,
    path = "/v1/streams",
    operation_id = "streams_list",
    tag = "discovery",
    params(Search),
    responses(
        (status = 200, body = StreamList),
        crate::error::Failures,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(search): ApiQuery<Search>,
) -> ApiResult<Json<StreamList>> {
    let streams: Vec<StreamView> = state
        .catalog()
        .list_streams_for(caller.0)
        .await?
        .into_iter()
        .filter(|s| search.matches(s))
        .map(StreamView::from)
        .collect();
    Ok(Json(StreamList { streams }))
}

#[utoipa::path(
    get,
    path = "/v1/streams/{name}",
    operation_id = "streams_get_one",
    tag = "discovery",
    params(("name" = crate::openapi::Identifier, Path)),
    responses(
        (status = 200, body = StreamView),
        crate::error::Failures,
    ),
)]
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

#[utoipa::path(
    post,
    path = "/v1/streams",
    operation_id = "streams_register",
    tag = "publishing",
    request_body = RegisterStream,
    responses(
        (status = 201, body = StreamView),
        crate::error::Failures,
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterStream>,
) -> ApiResult<(StatusCode, Json<StreamView>)> {
    let invalid = |e: freeport_common::names::NameError| ApiError::invalid(e.to_string());
    let owner = match (caller.org(), body.owner) {
        (Some(org), None) => org.to_string(),
        (Some(org), Some(owner)) if owner == org => owner,
        (Some(org), Some(owner)) => {
            return Err(ApiError::forbidden(format!(
                "organization {org:?} cannot register streams for {owner:?}"
            )))
        }
        (None, Some(owner)) => OrgName::parse(owner).map_err(invalid)?.to_string(),
        (None, None) => {
            // As everywhere an organization's act is asked of an admin key.
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "an admin key acts for no organization: name the one the stream is for in owner",
            ));
        }
    };
    let name = StreamName::parse(body.name).map_err(invalid)?;
    let cluster_name = ClusterName::parse(body.cluster).map_err(invalid)?;
    let topic = TopicName::parse(body.topic).map_err(invalid)?;
    // Before anything touches the cluster: the catalog checks again.
    freeport_common::ownership::check_stream_home(
        state.clusters(),
        &cluster_name,
        topic.as_str(),
        &owner,
    )?;
    let partitions = body.partitions.unwrap_or(1);
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(ApiError::invalid(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}"
        )));
    }
    let format = schema_format(body.schema_format.as_deref().unwrap_or("json_schema"))?;
    let mode = compatibility(body.compatibility.as_deref().unwrap_or("BACKWARD"))?;
    let schema = match (body.schema, format) {
        (Some(schema), _) => schema,
        (None, pb::SchemaFormat::Avro | pb::SchemaFormat::Protobuf) => {
            return Err(ApiError::invalid(format!(
                "a {} stream needs its schema",
                format_name(format.into())
            )))
        }
        (None, _) => serde_json::json!({}),
    };
    if format == pb::SchemaFormat::JsonSchema && !schema.is_object() {
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
        owner,
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
        schema_format: format.into(),
        compatibility: mode.into(),
        ..Default::default()
    };
    let stream = state.catalog().register_stream(caller.0, stream).await?;
    Ok((StatusCode::CREATED, Json(stream.into())))
}

/// `GET /v1/streams/{name}/schemas`: every version, oldest first.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/schemas",
    operation_id = "streams_schemas",
    tag = "publishing",
    params(("name" = crate::openapi::Identifier, Path)),
    responses(
        (status = 200, body = SchemaVersions),
        crate::error::Failures,
    ),
)]
pub async fn schemas(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<SchemaVersions>> {
    let stream = state.catalog().get_stream_for(&name, caller.0).await?;
    let versions = stream
        .schema_versions
        .into_iter()
        .map(SchemaVersion::from)
        .collect();
    Ok(Json(SchemaVersions { versions }))
}

/// `POST /v1/streams/{name}/schemas`: a new version, checked under the
/// stream's compatibility mode; 409 with every break when it does not fit.
#[utoipa::path(
    post,
    path = "/v1/streams/{name}/schemas",
    operation_id = "streams_register_schema",
    tag = "publishing",
    params(("name" = crate::openapi::Identifier, Path)),
    request_body = NewSchemaVersion,
    responses(
        (status = 201, body = SchemaVersion),
        crate::error::Failures,
    ),
)]
pub async fn register_schema(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<NewSchemaVersion>,
) -> ApiResult<(StatusCode, Json<SchemaVersion>)> {
    caller.require_org("register schema versions")?;
    let format = body.format.as_deref().map(schema_format).transpose()?;
    let version = state
        .catalog()
        .register_schema(pb::RegisterSchemaRequest {
            actor: Some(caller.0),
            stream: name,
            format: format.unwrap_or(pb::SchemaFormat::Unspecified).into(),
            schema_json: body.schema.to_string(),
            part: pb::RecordPart::Value.into(),
            references: vec![],
        })
        .await?;
    Ok((StatusCode::CREATED, Json(version.into())))
}

/// `PUT /v1/streams/{name}/compatibility`.
#[utoipa::path(
    put,
    path = "/v1/streams/{name}/compatibility",
    operation_id = "streams_set_compatibility",
    tag = "publishing",
    params(("name" = crate::openapi::Identifier, Path)),
    request_body = CompatibilityBody,
    responses(
        (status = 200, body = StreamView),
        crate::error::Failures,
    ),
)]
pub async fn set_compatibility(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CompatibilityBody>,
) -> ApiResult<Json<StreamView>> {
    let mode = compatibility(&body.compatibility)?;
    let stream = state
        .catalog()
        .set_compatibility(pb::SetCompatibilityRequest {
            actor: Some(caller.0),
            stream: name,
            compatibility: mode.into(),
            part: pb::RecordPart::Value.into(),
        })
        .await?;
    Ok(Json(stream.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationBody {
    /// false: produced records are no longer checked against the schema.
    enabled: bool,
}

/// `PUT /v1/streams/{name}/validation`: the owner turns the check of
/// produced records against the stream's schema off or on (audited as
/// `stream.validation`). Records in a schema-registry format (`avro`,
/// `jsonschema`) are always encoded under their schema.
#[utoipa::path(
    put,
    path = "/v1/streams/{name}/validation",
    operation_id = "streams_set_validation",
    tag = "publishing",
    params(("name" = crate::openapi::Identifier, Path)),
    request_body = ValidationBody,
    responses(
        (status = 200, body = StreamView),
        crate::error::Failures,
    ),
)]
pub async fn set_validation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ValidationBody>,
) -> ApiResult<Json<StreamView>> {
    let stream = state
        .catalog()
        .set_validation(pb::SetValidationRequest {
            actor: Some(caller.0),
            stream: name,
            enabled: body.enabled,
        })
        .await?;
    Ok(Json(stream.into()))
}

/// YAML unless the caller asks for JSON.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/asyncapi",
    operation_id = "streams_asyncapi",
    tag = "discovery",
    params(("name" = crate::openapi::Identifier, Path)),
    responses(
        (status = 200, description = "AsyncAPI 3.0: YAML, or JSON when Accept asks for it", content((Object = "application/yaml"), (Object = "application/json"))),
        crate::error::Failures,
    ),
)]
pub async fn asyncapi(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let document = state.catalog().stream_asyncapi(&name, caller.0).await?;
    super::asyncapi_response(document, &headers)
}
