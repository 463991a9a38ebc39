//! The Confluent Schema Registry API, under `/registry`, so that a
//! client's `schema.registry.url` is `<portal>/registry`: the catalog's
//! schema versions as subjects, with their global ids.
//!
//! Subjects follow the TopicNameStrategy: `<topic>-value` is the value
//! schema of the stream on that topic. Who sees what is the data plane's
//! rule ([`crate::access::SubjectStream`]): an owner writes and reads its
//! streams' subjects, a partner with an active contract reads them under
//! the topic its contract delivers into, nobody else sees them. Errors are
//! Confluent's: `{"error_code": 40401, "message": ...}` with its numbers
//! (409 for an incompatible schema), not Freeport's own.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use freeport_common::error::ErrorCode;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::schema::codec::Codec;
use freeport_common::schema::SchemaFormat;
use pb::RecordPart as Part;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Holder, SubjectStream};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::validate::RecordSchemas;
use crate::AppState;

/// The media type of every answer.
pub const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// What an answer may be labelled, as a registry client's `Accept` lists it.
pub const ANSWERS: [&str; 3] = [
    MEDIA_TYPE,
    "application/vnd.schemaregistry+json",
    "application/json",
];

/// A Schema Registry answer: JSON under its media type.
pub struct Registry<T>(pub T);

impl<T: Serialize> IntoResponse for Registry<T> {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, MEDIA_TYPE)], Json(self.0)).into_response()
    }
}

/// A refusal as Confluent's Schema Registry words it: its HTTP status and
/// its `error_code`.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    error_code: u32,
    message: String,
}

pub type RegistryResult<T> = Result<Registry<T>, RegistryError>;

impl RegistryError {
    fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            error_code,
            message: message.into(),
        }
    }

    fn subject_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    fn version_not_found(subject: &str, version: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }

    fn schema_not_found(what: String) -> RegistryError {
        RegistryError::new(StatusCode::NOT_FOUND, 40403, what)
    }

    fn invalid_schema(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }

    fn invalid_version(version: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    fn invalid_compatibility(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::UNPROCESSABLE_ENTITY, 42203, message)
    }

    /// Freeport's refusal `error`, where a subject was asked about.
    fn about(subject: &str, error: ApiError) -> RegistryError {
        match error.code {
            ErrorCode::StreamNotFound | ErrorCode::TopicNotFound => {
                RegistryError::subject_not_found(subject)
            }
            _ => error.into(),
        }
    }
}

impl From<ApiError> for RegistryError {
    fn from(error: ApiError) -> RegistryError {
        let (status, error_code) = match error.code {
            ErrorCode::Unauthenticated | ErrorCode::CredentialWithdrawn => {
                (StatusCode::UNAUTHORIZED, 401)
            }
            ErrorCode::Forbidden
            | ErrorCode::NoActiveContract
            | ErrorCode::NotClusterOwner
            | ErrorCode::ReservedTopic => (StatusCode::FORBIDDEN, 40301),
            ErrorCode::IncompatibleSchema => (StatusCode::CONFLICT, 409),
            // A state the operation does not fit: a value subject's last
            // live version (Freeport's own refusal; Confluent has none).
            ErrorCode::IllegalTransition => (StatusCode::CONFLICT, 40901),
            // Confluent's "one or more references exist to the schema".
            ErrorCode::SchemaReferenced => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            ErrorCode::StreamNotFound | ErrorCode::TopicNotFound => (StatusCode::NOT_FOUND, 40401),
            ErrorCode::SchemaVersionNotFound => (StatusCode::NOT_FOUND, 40402),
            ErrorCode::InvalidField | ErrorCode::InvalidRecords => {
                (StatusCode::UNPROCESSABLE_ENTITY, 42201)
            }
            ErrorCode::MalformedBody => (StatusCode::BAD_REQUEST, 400),
            ErrorCode::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 415),
            ErrorCode::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, 406),
            ErrorCode::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            ErrorCode::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, 429),
            ErrorCode::Timeout => (StatusCode::INTERNAL_SERVER_ERROR, 50002),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 50003),
            ErrorCode::RouteNotFound => (StatusCode::NOT_FOUND, 404),
            ErrorCode::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        };
        RegistryError::new(status, error_code, error.message)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, MEDIA_TYPE)],
            Json(ErrorBody {
                error_code: self.error_code,
                message: self.message,
                problems: None,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"freeport\""),
            );
        }
        response
    }
}

/// The caller, or Confluent's 401.
fn authenticated(caller: Result<Caller, ApiError>) -> Result<Caller, RegistryError> {
    caller.map_err(RegistryError::from)
}

/// A subject by the TopicNameStrategy: its topic and part. Other names
/// name no subject here.
fn parse_subject(subject: &str) -> Result<(&str, Part), RegistryError> {
    if let Some(topic) = subject.strip_suffix("-value") {
        return Ok((topic, Part::Value));
    }
    if let Some(topic) = subject.strip_suffix("-key") {
        return Ok((topic, Part::Key));
    }
    Err(RegistryError::subject_not_found(subject))
}

fn subject_name(topic: &str, part: Part) -> String {
    format!("{topic}-{}", part.name())
}

/// The subjects `stream` has for its caller: each part with a live version
/// (with `deleted`, with any).
fn subjects_of(stream: &SubjectStream, deleted: bool) -> impl Iterator<Item = String> + '_ {
    [Part::Value, Part::Key]
        .into_iter()
        .filter(move |part| stream.versions(*part).iter().any(|v| deleted || !v.deleted))
        .map(|part| subject_name(&stream.topic, part))
}

/// A subject of a stream the caller may read: the stream and which of its
/// schemas the subject is. A key subject exists before its first version
/// (registering creates it); [`existing_versions`] tells the two apart.
async fn subject_of(
    state: &AppState,
    caller: &Caller,
    subject: &str,
) -> Result<(SubjectStream, Part), RegistryError> {
    // `:.<stream>:<topic>-<part>`: a subject named through a reference.
    if let Some((stream, inner)) = subject
        .strip_prefix(":.")
        .and_then(|rest| rest.split_once(':'))
    {
        let (topic, part) = parse_subject(inner)?;
        let found = state
            .view()
            .referenced_stream(caller.org(), stream, topic)
            .await
            .map_err(|e| RegistryError::about(subject, e))?;
        return Ok((found, part));
    }
    let (topic, part) = parse_subject(subject)?;
    let found = state
        .view()
        .subject_stream(caller.org(), topic)
        .await
        .map_err(|e| RegistryError::about(subject, e))?;
    Ok((found, part))
}

/// A schema reference as the registry answers it, its subject named as
/// the caller names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferenceAnswer {
    /// The name the schema uses: an Avro full name, a JSON Schema `$ref`,
    /// a `.proto` import path.
    name: String,
    /// `<topic>-value` of one of the caller's streams, or
    /// `:.<stream>:<topic>-value` for another organization's stream the
    /// caller reads through the referring schema.
    subject: String,
    version: u32,
}

/// `version`'s references, for `caller`.
fn references_for(
    state: &AppState,
    caller: &Caller,
    version: &pb::SchemaVersion,
) -> Vec<ReferenceAnswer> {
    version
        .references
        .iter()
        .map(|r| ReferenceAnswer {
            name: r.name.clone(),
            subject: state.view().reference_subject(caller.org(), r),
            version: r.version,
        })
        .collect()
}

/// The subject's live versions (with `deleted`, soft-deleted ones too),
/// oldest first; 40401 when it has none (a key subject before its first
/// version, or one whose versions were all deleted).
fn existing_versions(
    (found, part): &(SubjectStream, Part),
    subject: &str,
    deleted: bool,
) -> Result<Vec<pb::SchemaVersion>, RegistryError> {
    let mut versions = found.versions(*part);
    versions.retain(|v| deleted || !v.deleted);
    if versions.is_empty() {
        return Err(RegistryError::subject_not_found(subject));
    }
    Ok(versions)
}

/// `AVRO`, `JSON` or `PROTOBUF`, as the registry names a format.
fn type_name(format: i32) -> &'static str {
    match pb::schema_format(format) {
        SchemaFormat::JsonSchema => "JSON",
        SchemaFormat::Avro => "AVRO",
        SchemaFormat::Protobuf => "PROTOBUF",
    }
}

/// A stored schema as the registry answers it: JSON text for Avro and JSON
/// Schema; for Protobuf the `.proto` text, or with `serialized` (the
/// portal's compiled schemas, `?format=serialized`, what confluent-kafka's
/// Protobuf deserializer asks for) the base64 of its `FileDescriptorProto`,
/// from the schema compiled once per id.
fn schema_text(
    version: &pb::SchemaVersion,
    serialized: Option<&RecordSchemas>,
) -> Result<String, RegistryError> {
    if pb::schema_format(version.format) != SchemaFormat::Protobuf {
        return Ok(version.schema_json.clone());
    }
    let stored = || RegistryError::from(ApiError::internal("a stored Protobuf schema", version.id));
    let Some(schemas) = serialized else {
        return serde_json::from_str(&version.schema_json).map_err(|_| stored());
    };
    match schemas.compiled(version)?.codec() {
        Codec::Protobuf(schema) => {
            Ok(base64::engine::general_purpose::STANDARD.encode(schema.serialized()))
        }
        _ => Err(stored()),
    }
}

/// The parameters of the reading routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// `serialized`: a Protobuf schema as the base64 of its
    /// `FileDescriptorProto`; other values (and other formats) answer the
    /// schema's text.
    #[serde(default)]
    format: Option<String>,
    /// Accepted: an id is one schema whatever the subject.
    #[serde(default)]
    subject: Option<String>,
    /// Include soft-deleted versions (and subjects).
    #[serde(default, deserialize_with = "flag")]
    #[param(value_type = Option<bool>)]
    deleted: Option<bool>,
}

/// What a reading route was asked for.
#[derive(Debug, Clone, Copy)]
struct Reading {
    serialized: bool,
    deleted: bool,
}

impl ReadQuery {
    fn reading(query: QueryResult<ReadQuery>) -> Result<Reading, RegistryError> {
        let query = parameters(query)?;
        let _ = query.subject;
        Ok(Reading {
            serialized: query.format.as_deref() == Some("serialized"),
            deleted: query.deleted.unwrap_or(false),
        })
    }
}

/// The schema type of a request (AVRO when absent, as Confluent defaults).
fn format_of(schema_type: Option<&str>) -> Result<pb::SchemaFormat, RegistryError> {
    match schema_type.unwrap_or("AVRO").to_ascii_uppercase().as_str() {
        "AVRO" => Ok(pb::SchemaFormat::Avro),
        "JSON" => Ok(pb::SchemaFormat::JsonSchema),
        "PROTOBUF" => Ok(pb::SchemaFormat::Protobuf),
        other => Err(RegistryError::invalid_schema(format!(
            "unknown schemaType {other:?}: AVRO, JSON or PROTOBUF"
        ))),
    }
}

/// One version of a subject.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectVersion {
    subject: String,
    /// The schema's global id.
    id: u32,
    version: u32,
    /// `JSON`; absent for `AVRO`, as Confluent answers.
    #[serde(rename = "schemaType", skip_serializing_if = "Option::is_none")]
    schema_type: Option<&'static str>,
    /// The schema as JSON text.
    schema: String,
    /// The other subjects' versions it refers to; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<ReferenceAnswer>,
}

impl SubjectVersion {
    fn of(
        (state, caller): (&AppState, &Caller),
        (topic, part): (&str, Part),
        version: &pb::SchemaVersion,
        serialized: Option<&RecordSchemas>,
    ) -> Result<SubjectVersion, RegistryError> {
        Ok(SubjectVersion {
            subject: subject_name(topic, part),
            id: version.id,
            version: version.version,
            schema_type: schema_type_field(version.format),
            schema: schema_text(version, serialized)?,
            references: references_for(state, caller, version),
        })
    }
}

fn schema_type_field(format: i32) -> Option<&'static str> {
    Some(type_name(format)).filter(|name| *name != "AVRO")
}

/// A schema to register, look up or check, as registry clients send it.
/// Fields it does not know are ignored, as Confluent's registry ignores
/// them (clients add fields from version to version).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SchemaRequest {
    /// The schema as text: Avro JSON, a JSON Schema, or a `.proto` file
    /// (its text, or the base64 of its `FileDescriptorProto`).
    schema: String,
    /// `AVRO` (the default), `JSON` or `PROTOBUF`.
    #[serde(rename = "schemaType", default)]
    #[schema(pattern = "^(AVRO|JSON|PROTOBUF|avro|json|protobuf)$")]
    schema_type: Option<String>,
    /// Other subjects' versions this one refers to (schema references):
    /// each a version of one of the caller's own streams.
    #[serde(default)]
    references: Option<Vec<ReferenceRequest>>,
}

/// A schema reference as registry clients send it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReferenceRequest {
    /// The name the schema uses for it: an Avro full name, a JSON Schema
    /// `$ref`, a `.proto` import path.
    name: String,
    /// `<topic>-value` or `<topic>-key` of one of the caller's streams.
    subject: String,
    /// The version, or -1 for the subject's latest.
    version: i64,
}

/// A request's references, resolved: as the catalog takes them, and what
/// they resolve to (for comparing with stored versions here).
struct Referenced {
    references: Vec<pb::SchemaReference>,
    dependencies: Vec<freeport_common::schema::Dependency>,
}

impl SchemaRequest {
    /// The format and the schema as the catalog takes it (JSON; a
    /// `.proto` file's text as a JSON string), or Confluent's 42201.
    fn parsed(&self) -> Result<(pb::SchemaFormat, serde_json::Value), RegistryError> {
        let format = format_of(self.schema_type.as_deref())?;
        let schema = pb::schema_format(format.into())
            .schema_from_text(&self.schema)
            .map_err(|e| RegistryError::invalid_schema(format!("Invalid schema: not JSON: {e}")))?;
        Ok((format, schema))
    }

    /// The versions the request's references name, each a subject the
    /// caller names; 42201 when one names none.
    async fn referenced(
        &self,
        state: &AppState,
        caller: &Caller,
    ) -> Result<Referenced, RegistryError> {
        let mut found = Vec::new();
        for r in self.references.iter().flatten() {
            let refused = |why: &str| {
                RegistryError::invalid_schema(format!(
                    "Invalid schema: reference {:?}: {why}",
                    r.name
                ))
            };
            let subject = subject_of(state, caller, &r.subject)
                .await
                .map_err(|_| refused(&format!("subject {:?} not found", r.subject)))?;
            let versions = existing_versions(&subject, &r.subject, false)
                .map_err(|_| refused(&format!("subject {:?} has no versions", r.subject)))?;
            let version =
                version_of(&versions, &r.subject, &r.version.to_string()).map_err(|_| {
                    refused(&format!(
                        "subject {:?} has no version {}",
                        r.subject, r.version
                    ))
                })?;
            let reference = pb::SchemaReference {
                name: r.name.clone(),
                stream: subject.0.stream().name.clone(),
                part: subject.1.into(),
                version: version.version,
            };
            found.push((freeport_common::schema::Reference::from(reference), version));
        }
        let common: Vec<freeport_common::schema::Reference> =
            found.iter().map(|(r, _)| r.clone()).collect();
        let dependencies = freeport_common::schema::resolve(&common, |wanted| {
            let (_, version) = found
                .iter()
                .find(|(r, _)| r == wanted)
                .ok_or_else(|| refused_reference(wanted))?;
            let schema = serde_json::from_str(&version.schema_json)
                .map_err(|e| RegistryError::from(ApiError::internal("a stored schema", e)))?;
            let inner = version
                .dependencies()
                .map_err(|e| RegistryError::from(ApiError::internal("a stored schema", e)))?;
            Ok::<_, RegistryError>((schema, inner))
        })?;
        Ok(Referenced {
            references: common.into_iter().map(Into::into).collect(),
            dependencies,
        })
    }

    /// The format and the schema as the catalog keeps it, for comparing
    /// with stored versions; 42201 when it is not a schema.
    fn canonical(
        &self,
        referenced: &Referenced,
    ) -> Result<(pb::SchemaFormat, serde_json::Value), RegistryError> {
        let (format, schema) = self.parsed()?;
        let canonical = freeport_common::schema::canonical(
            pb::schema_format(format.into()),
            schema,
            &referenced.dependencies,
        )
        .map_err(|e| RegistryError::invalid_schema(format!("Invalid schema: {}", e.join("; "))))?;
        Ok((format, canonical))
    }
}

fn refused_reference(reference: &freeport_common::schema::Reference) -> RegistryError {
    RegistryError::invalid_schema(format!(
        "Invalid schema: reference {:?} could not be resolved",
        reference.name
    ))
}

/// The query as axum reads it, or why it could not.
type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The query's parameters, or Confluent's 400.
fn parameters<T>(query: QueryResult<T>) -> Result<T, RegistryError> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, 400, e.body_text()))
}

/// The body, or Confluent's refusal of it.
fn body<T>(body: Result<ApiJson<T>, ApiError>) -> Result<T, RegistryError> {
    body.map(|ApiJson(value)| value)
        .map_err(RegistryError::from)
}

/// `GET /registry/schemas/types`.
#[utoipa::path(
    get,
    path = "/registry/schemas/types",
    operation_id = "registry_schema_types",
    tag = "schema registry",
    responses(
        (status = 200, body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn schema_types(caller: Result<Caller, ApiError>) -> RegistryResult<Vec<&'static str>> {
    authenticated(caller)?;
    Ok(Registry(vec!["JSON", "PROTOBUF", "AVRO"]))
}

/// A boolean query parameter in any case (`true`, `False`), as Java
/// registries read them and Python clients write them.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(serde::de::Error::custom(format!(
            "{text:?} is not true or false"
        ))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubjectsQuery {
    /// Only subjects that start with this.
    #[serde(rename = "subjectPrefix", default)]
    subject_prefix: Option<String>,
    /// Include subjects whose versions are all soft-deleted.
    #[serde(default, deserialize_with = "flag")]
    #[param(value_type = Option<bool>)]
    deleted: Option<bool>,
}

/// `GET /registry/subjects`: the subjects the caller sees.
#[utoipa::path(
    get,
    path = "/registry/subjects",
    operation_id = "registry_subjects",
    tag = "schema registry",
    params(SubjectsQuery),
    responses(
        (status = 200, body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn subjects(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    query: QueryResult<SubjectsQuery>,
) -> RegistryResult<Vec<String>> {
    let caller = authenticated(caller)?;
    let query = parameters(query)?;
    let deleted = query.deleted.unwrap_or(false);
    let prefix = query.subject_prefix.unwrap_or_default();
    let streams = state.view().subject_streams(caller.org()).await?;
    let names: std::collections::BTreeSet<String> = streams
        .iter()
        .flat_map(|s| subjects_of(s, deleted))
        .filter(|name| name.starts_with(&prefix))
        .collect();
    Ok(Registry(names.into_iter().collect()))
}

/// `GET /registry/subjects/{subject}/versions`.
#[utoipa::path(
    get,
    path = "/registry/subjects/{subject}/versions",
    operation_id = "registry_versions",
    tag = "schema registry",
    params(("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"), ReadQuery),
    responses(
        (status = 200, body = Vec<u32>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn versions(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    query: QueryResult<ReadQuery>,
) -> RegistryResult<Vec<u32>> {
    let caller = authenticated(caller)?;
    let deleted = ReadQuery::reading(query)?.deleted;
    let found = subject_of(&state, &caller, &subject).await?;
    Ok(Registry(
        existing_versions(&found, &subject, deleted)?
            .iter()
            .map(|v| v.version)
            .collect(),
    ))
}

/// A subject's version by number, `latest` or `-1`.
fn version_of(
    versions: &[pb::SchemaVersion],
    subject: &str,
    version: &str,
) -> Result<pb::SchemaVersion, RegistryError> {
    let found = match version {
        "latest" | "-1" => versions.last(),
        number => {
            let number: u32 = number
                .parse()
                .ok()
                .filter(|n| (1..=i32::MAX as u32).contains(n))
                .ok_or_else(|| RegistryError::invalid_version(version))?;
            versions.iter().find(|v| v.version == number)
        }
    };
    found
        .cloned()
        .ok_or_else(|| RegistryError::version_not_found(subject, version))
}

/// `GET /registry/subjects/{subject}/versions/{version}`.
#[utoipa::path(
    get,
    path = "/registry/subjects/{subject}/versions/{version}",
    operation_id = "registry_version",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("version" = String, Path, description = "a version number, `latest` or `-1`"),
        ReadQuery,
    ),
    responses(
        (status = 200, body = SubjectVersion, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn version(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath((subject, version)): ApiPath<(String, String)>,
    query: QueryResult<ReadQuery>,
) -> RegistryResult<SubjectVersion> {
    let caller = authenticated(caller)?;
    let reading = ReadQuery::reading(query)?;
    let found = subject_of(&state, &caller, &subject).await?;
    let versions = existing_versions(&found, &subject, reading.deleted)?;
    let version = version_of(&versions, &subject, &version)?;
    let serialized = reading.serialized.then(|| state.record_schemas().as_ref());
    SubjectVersion::of(
        (&state, &caller),
        (&found.0.topic, found.1),
        &version,
        serialized,
    )
    .map(Registry)
}

/// The schema itself (not as text), under the registry's media type; a
/// Protobuf schema's `.proto` text as it is.
fn raw_schema(version: &pb::SchemaVersion) -> Result<Response, RegistryError> {
    if pb::schema_format(version.format) == SchemaFormat::Protobuf {
        let text = schema_text(version, None)?;
        return Ok(([(header::CONTENT_TYPE, MEDIA_TYPE)], text).into_response());
    }
    let schema: serde_json::Value = serde_json::from_str(&version.schema_json)
        .map_err(|e| RegistryError::from(ApiError::internal("a stored schema is not JSON", e)))?;
    Ok(Registry(schema).into_response())
}

/// `GET /registry/subjects/{subject}/versions/{version}/schema`: the
/// schema alone.
#[utoipa::path(
    get,
    path = "/registry/subjects/{subject}/versions/{version}/schema",
    operation_id = "registry_version_schema",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("version" = String, Path, description = "a version number, `latest` or `-1`"),
        ReadQuery,
    ),
    responses(
        (status = 200, description = "the schema", body = Object, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn version_schema(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath((subject, version)): ApiPath<(String, String)>,
    query: QueryResult<ReadQuery>,
) -> Result<Response, RegistryError> {
    let caller = authenticated(caller)?;
    let deleted = ReadQuery::reading(query)?.deleted;
    let found = subject_of(&state, &caller, &subject).await?;
    raw_schema(&version_of(
        &existing_versions(&found, &subject, deleted)?,
        &subject,
        &version,
    )?)
}

/// `GET /registry/subjects/{subject}/versions/{version}/referencedby`:
/// the global ids of the live versions that refer to this one directly,
/// among those the caller may read.
#[utoipa::path(
    get,
    path = "/registry/subjects/{subject}/versions/{version}/referencedby",
    operation_id = "registry_referenced_by",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("version" = String, Path, description = "a version number, `latest` or `-1`"),
        ReadQuery,
    ),
    responses(
        (status = 200, body = Vec<u32>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn referenced_by(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath((subject, version)): ApiPath<(String, String)>,
    query: QueryResult<ReadQuery>,
) -> RegistryResult<Vec<u32>> {
    let caller = authenticated(caller)?;
    let deleted = ReadQuery::reading(query)?.deleted;
    let found = subject_of(&state, &caller, &subject).await?;
    let version = version_of(
        &existing_versions(&found, &subject, deleted)?,
        &subject,
        &version,
    )?;
    Ok(Registry(state.view().referenced_by(
        caller.org(),
        &found.0.stream().name,
        found.1,
        version.version,
    )))
}

/// The id a schema was registered under.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    id: u32,
}

/// `POST /registry/subjects/{subject}/versions`: registers the schema as
/// the stream's next version (checked under its compatibility mode), or
/// answers the id it has when the subject has had it before. Only the
/// stream's owner may; the stream must exist (`POST /v1/streams`): a
/// subject is not created here.
#[utoipa::path(
    post,
    path = "/registry/subjects/{subject}/versions",
    operation_id = "registry_register",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("normalize" = Option<bool>, Query, description = "accepted; schemas are always compared in canonical JSON"),
    ),
    request_body(content = SchemaRequest, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = Registered, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    request: Result<ApiJson<SchemaRequest>, ApiError>,
) -> RegistryResult<Registered> {
    let caller = authenticated(caller)?;
    let request = body(request)?;
    let (found, part) = subject_of(&state, &caller, &subject).await?;
    let (format, schema) = request.parsed()?;
    let referenced = request.referenced(&state, &caller).await?;
    let version = state
        .catalog()
        .register_schema(pb::RegisterSchemaRequest {
            actor: Some(caller.0),
            stream: found.stream().name.clone(),
            format: format.into(),
            schema_json: schema.to_string(),
            part: part.into(),
            references: referenced.references,
        })
        .await
        .map_err(|e| RegistryError::about(&subject, e))?;
    // Read your writes: what this portal answers next includes it.
    state.view().caught_up().await;
    Ok(Registry(Registered { id: version.id }))
}

/// `POST /registry/subjects/{subject}`: the version of the subject that
/// has this schema.
#[utoipa::path(
    post,
    path = "/registry/subjects/{subject}",
    operation_id = "registry_lookup",
    tag = "schema registry",
    params(("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"), ReadQuery),
    request_body(content = SchemaRequest, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = SubjectVersion, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn lookup(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    query: QueryResult<ReadQuery>,
    request: Result<ApiJson<SchemaRequest>, ApiError>,
) -> RegistryResult<SubjectVersion> {
    let caller = authenticated(caller)?;
    let deleted = ReadQuery::reading(query)?.deleted;
    let request = body(request)?;
    let found = subject_of(&state, &caller, &subject).await?;
    let versions = existing_versions(&found, &subject, deleted)?;
    let referenced = request.referenced(&state, &caller).await?;
    let (format, schema) = request.canonical(&referenced)?;
    let known = versions.iter().rev().find(|v| {
        v.format == i32::from(format)
            && v.references == referenced.references
            && serde_json::from_str::<serde_json::Value>(&v.schema_json)
                .is_ok_and(|known| known == schema)
    });
    match known {
        Some(v) => {
            SubjectVersion::of((&state, &caller), (&found.0.topic, found.1), v, None).map(Registry)
        }
        None => Err(RegistryError::schema_not_found("Schema not found".into())),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompatibilityQuery {
    /// Name what breaks in `messages`.
    #[serde(default, deserialize_with = "flag")]
    #[param(value_type = Option<bool>)]
    verbose: Option<bool>,
}

/// Whether a schema could follow a subject's versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatibilityAnswer {
    is_compatible: bool,
    /// What breaks, with `verbose=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<String>>,
}

/// `POST /registry/compatibility/subjects/{subject}/versions/{version}`:
/// whether the schema may follow that version, in the directions of the
/// stream's mode. Writes nothing.
#[utoipa::path(
    post,
    path = "/registry/compatibility/subjects/{subject}/versions/{version}",
    operation_id = "registry_compatibility",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("version" = String, Path, description = "a version number, `latest` or `-1`"),
        CompatibilityQuery,
    ),
    request_body(content = SchemaRequest, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = CompatibilityAnswer, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn compatibility(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath((subject, version)): ApiPath<(String, String)>,
    query: QueryResult<CompatibilityQuery>,
    request: Result<ApiJson<SchemaRequest>, ApiError>,
) -> RegistryResult<CompatibilityAnswer> {
    let caller = authenticated(caller)?;
    let found = subject_of(&state, &caller, &subject).await?;
    let number = version_of(
        &existing_versions(&found, &subject, false)?,
        &subject,
        &version,
    )?
    .version;
    check(&state, caller, &subject, &found, number, query, request).await
}

/// `POST /registry/compatibility/subjects/{subject}/versions`: whether
/// the schema may follow the subject's versions as registering it would
/// check (against the latest, or every one for a `_TRANSITIVE` mode).
#[utoipa::path(
    post,
    path = "/registry/compatibility/subjects/{subject}/versions",
    operation_id = "registry_compatibility_all",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        CompatibilityQuery,
    ),
    request_body(content = SchemaRequest, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = CompatibilityAnswer, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn compatibility_all(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    query: QueryResult<CompatibilityQuery>,
    request: Result<ApiJson<SchemaRequest>, ApiError>,
) -> RegistryResult<CompatibilityAnswer> {
    let caller = authenticated(caller)?;
    let found = subject_of(&state, &caller, &subject).await?;
    check(&state, caller, &subject, &found, 0, query, request).await
}

async fn check(
    state: &AppState,
    caller: Caller,
    subject: &str,
    (found, part): &(SubjectStream, Part),
    version: u32,
    query: QueryResult<CompatibilityQuery>,
    request: Result<ApiJson<SchemaRequest>, ApiError>,
) -> RegistryResult<CompatibilityAnswer> {
    let query = parameters(query)?;
    let request = body(request)?;
    let (format, schema) = request.parsed()?;
    let referenced = request.referenced(state, &caller).await?;
    let problems = state
        .catalog()
        .check_schema(pb::CheckSchemaRequest {
            actor: Some(caller.0),
            stream: found.stream().name.clone(),
            format: format.into(),
            schema_json: schema.to_string(),
            version,
            part: (*part).into(),
            references: referenced.references,
        })
        .await
        .map_err(|e| RegistryError::about(subject, e))?;
    Ok(Registry(CompatibilityAnswer {
        is_compatible: problems.is_empty(),
        messages: query.verbose.unwrap_or(false).then_some(problems),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Remove soft-deleted versions for good.
    #[serde(default, deserialize_with = "flag")]
    #[param(value_type = Option<bool>)]
    permanent: Option<bool>,
}

/// Asks the catalog to delete `version` (every one with `None`) of the
/// subject, after the checks Confluent answers with its own codes.
async fn delete_versions(
    state: &AppState,
    caller: Caller,
    subject: &str,
    version: Option<&str>,
    query: QueryResult<DeleteQuery>,
) -> Result<Vec<u32>, RegistryError> {
    let permanent = parameters(query)?.permanent.unwrap_or(false);
    let found = subject_of(state, &caller, subject).await?;
    let all = existing_versions(&found, subject, true)?;
    let number = match version {
        None => {
            let live = all.iter().any(|v| !v.deleted);
            match (permanent, live) {
                (false, false) => return Err(RegistryError::new(StatusCode::NOT_FOUND, 40404, format!("Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"))),
                (true, true) => return Err(RegistryError::new(StatusCode::NOT_FOUND, 40405, format!("Subject '{subject}' was not deleted first before being permanently deleted"))),
                _ => 0,
            }
        }
        Some(text) => {
            // `latest` is the latest live version, as for reading.
            let live: Vec<_> = all.iter().filter(|v| !v.deleted).cloned().collect();
            let chosen = match text {
                "latest" | "-1" => version_of(&live, subject, text)?,
                _ => version_of(&all, subject, text)?,
            };
            match (permanent, chosen.deleted) {
                (false, true) => return Err(RegistryError::new(StatusCode::NOT_FOUND, 40406, format!("Subject '{subject}' Version {} was soft deleted. Set permanent=true to delete permanently", chosen.version))),
                (true, false) => return Err(RegistryError::new(StatusCode::NOT_FOUND, 40407, format!("Subject '{subject}' Version {} was not deleted first before being permanently deleted", chosen.version))),
                _ => chosen.version,
            }
        }
    };
    let answer = state
        .catalog()
        .delete_schema_versions(pb::DeleteSchemaVersionsRequest {
            actor: Some(caller.0),
            stream: found.0.stream().name.clone(),
            part: found.1.into(),
            version: number,
            permanent,
        })
        .await
        .map_err(|e| RegistryError::about(subject, e))?;
    state.view().caught_up().await;
    Ok(answer.versions)
}

/// `DELETE /registry/subjects/{subject}`: soft-deletes every live version
/// of the subject (`permanent=true`: removes them, once soft-deleted).
/// The stream's owner only; a value subject keeps one live version.
#[utoipa::path(
    delete,
    path = "/registry/subjects/{subject}",
    operation_id = "registry_delete_subject",
    tag = "schema registry",
    params(("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"), DeleteQuery),
    responses(
        (status = 200, description = "the versions deleted", body = Vec<u32>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn delete_subject(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    query: QueryResult<DeleteQuery>,
) -> RegistryResult<Vec<u32>> {
    let caller = authenticated(caller)?;
    delete_versions(&state, caller, &subject, None, query)
        .await
        .map(Registry)
}

/// `DELETE /registry/subjects/{subject}/versions/{version}`: soft-deletes
/// that version (`permanent=true`: removes it, once soft-deleted).
#[utoipa::path(
    delete,
    path = "/registry/subjects/{subject}/versions/{version}",
    operation_id = "registry_delete_version",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("version" = String, Path, description = "a version number, `latest` or `-1`"),
        DeleteQuery,
    ),
    responses(
        (status = 200, description = "the version deleted", body = u32, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn delete_version(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath((subject, version)): ApiPath<(String, String)>,
    query: QueryResult<DeleteQuery>,
) -> RegistryResult<u32> {
    let caller = authenticated(caller)?;
    let deleted = delete_versions(&state, caller, &subject, Some(&version), query).await?;
    Ok(Registry(deleted.first().copied().unwrap_or_default()))
}

/// A registry mode, as `/mode` answers and takes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModeBody {
    /// `READWRITE`, the one mode here; Confluent's others (`READONLY`,
    /// `READONLY_OVERRIDE`, `IMPORT`) are refused with 42204.
    #[schema(pattern = "^(READWRITE|readwrite)$")]
    mode: String,
}

fn read_write() -> Registry<ModeBody> {
    Registry(ModeBody {
        mode: "READWRITE".into(),
    })
}

/// Setting a mode: READWRITE is what every subject is (a no-op); the
/// others are refused with 42204.
fn set_mode(request: Result<ApiJson<ModeBody>, ApiError>) -> RegistryResult<ModeBody> {
    let change = body(request)?;
    if change.mode.eq_ignore_ascii_case("READWRITE") {
        return Ok(read_write());
    }
    Err(RegistryError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        42204,
        format!(
            "mode {:?} is not taken: every subject here is READWRITE (its stream's owner writes it; schemas are never imported with their ids)",
            change.mode
        ),
    ))
}

/// `GET /registry/mode`: `READWRITE`, the only mode here.
#[utoipa::path(
    get,
    path = "/registry/mode",
    operation_id = "registry_mode",
    tag = "schema registry",
    responses(
        (status = 200, body = ModeBody, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn mode(caller: Result<Caller, ApiError>) -> RegistryResult<ModeBody> {
    authenticated(caller)?;
    Ok(read_write())
}

/// `PUT /registry/mode`: `READWRITE` is accepted (nothing changes); other
/// modes are refused with 42204.
#[utoipa::path(
    put,
    path = "/registry/mode",
    operation_id = "registry_set_mode",
    tag = "schema registry",
    request_body(content = ModeBody, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = ModeBody, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn put_mode(
    caller: Result<Caller, ApiError>,
    request: Result<ApiJson<ModeBody>, ApiError>,
) -> RegistryResult<ModeBody> {
    authenticated(caller)?;
    set_mode(request)
}

/// `GET /registry/mode/{subject}`: `READWRITE`.
#[utoipa::path(
    get,
    path = "/registry/mode/{subject}",
    operation_id = "registry_subject_mode",
    tag = "schema registry",
    params(("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`")),
    responses(
        (status = 200, body = ModeBody, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn subject_mode(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
) -> RegistryResult<ModeBody> {
    let caller = authenticated(caller)?;
    subject_of(&state, &caller, &subject).await?;
    Ok(read_write())
}

/// `PUT /registry/mode/{subject}`: as `PUT /registry/mode`, for a subject
/// of the caller's own stream (an admin's: any).
#[utoipa::path(
    put,
    path = "/registry/mode/{subject}",
    operation_id = "registry_set_subject_mode",
    tag = "schema registry",
    params(("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`")),
    request_body(content = ModeBody, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = ModeBody, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn put_subject_mode(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    request: Result<ApiJson<ModeBody>, ApiError>,
) -> RegistryResult<ModeBody> {
    let caller = authenticated(caller)?;
    let (found, _) = subject_of(&state, &caller, &subject).await?;
    // A partner reads the subject; only its stream's owner writes it.
    if caller.org().is_some_and(|org| org != found.stream().owner) {
        return Err(RegistryError::new(
            StatusCode::FORBIDDEN,
            40301,
            format!(
                "only {}, the owner of {subject}'s stream, sets its mode",
                found.stream().owner
            ),
        ));
    }
    set_mode(request)
}

/// A compatibility level, as `GET /config` answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigAnswer {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: String,
}

/// A compatibility level to set, and as `PUT /config` answers it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigChange {
    /// BACKWARD, FORWARD, FULL, each also `_TRANSITIVE`, or NONE.
    #[schema(
        pattern = "^((BACKWARD|FORWARD|FULL)(_TRANSITIVE)?|NONE|(backward|forward|full)(_transitive)?|none)$"
    )]
    compatibility: String,
}

/// `GET /registry/config`: the level new streams get (BACKWARD). Freeport
/// keeps a level per stream; `/config/{subject}` reads and sets it.
#[utoipa::path(
    get,
    path = "/registry/config",
    operation_id = "registry_config",
    tag = "schema registry",
    responses(
        (status = 200, body = ConfigAnswer, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn config(caller: Result<Caller, ApiError>) -> RegistryResult<ConfigAnswer> {
    authenticated(caller)?;
    Ok(Registry(ConfigAnswer {
        compatibility_level: "BACKWARD".into(),
    }))
}

/// `PUT /registry/config`: refused (40301). Every stream has its own
/// level, set by its owner; a hub-wide level would change other owners'.
#[utoipa::path(
    put,
    path = "/registry/config",
    operation_id = "registry_set_config",
    tag = "schema registry",
    request_body(content = ConfigChange, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(crate::error::Failures),
)]
pub async fn set_config(
    caller: Result<Caller, ApiError>,
    request: Result<ApiJson<ConfigChange>, ApiError>,
) -> Result<Response, RegistryError> {
    authenticated(caller)?;
    body(request)?;
    Err(RegistryError::new(
        StatusCode::FORBIDDEN,
        40301,
        "the compatibility level is each stream's, set by its owner: PUT /registry/config/{subject}",
    ))
}

/// `GET /registry/config/{subject}`: the stream's compatibility level.
#[utoipa::path(
    get,
    path = "/registry/config/{subject}",
    operation_id = "registry_subject_config",
    tag = "schema registry",
    params(
        ("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`"),
        ("defaultToGlobal" = Option<bool>, Query, description = "accepted: every stream has a level of its own"),
    ),
    responses(
        (status = 200, body = ConfigAnswer, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn subject_config(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
) -> RegistryResult<ConfigAnswer> {
    let caller = authenticated(caller)?;
    let (found, part) = subject_of(&state, &caller, &subject).await?;
    Ok(Registry(ConfigAnswer {
        compatibility_level: compatibility_of(found.stream(), part),
    }))
}

/// `PUT /registry/config/{subject}`: sets the stream's compatibility level
/// (its owner only).
#[utoipa::path(
    put,
    path = "/registry/config/{subject}",
    operation_id = "registry_set_subject_config",
    tag = "schema registry",
    params(("subject" = String, Path, description = "`<topic>-value` or `<topic>-key`")),
    request_body(content = ConfigChange, content_type = "application/vnd.schemaregistry.v1+json"),
    responses(
        (status = 200, body = ConfigChange, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn set_subject_config(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(subject): ApiPath<String>,
    request: Result<ApiJson<ConfigChange>, ApiError>,
) -> RegistryResult<ConfigChange> {
    let caller = authenticated(caller)?;
    let change = body(request)?;
    let mode = super::streams::compatibility(&change.compatibility)
        .map_err(|e| RegistryError::invalid_compatibility(e.message))?;
    let (found, part) = subject_of(&state, &caller, &subject).await?;
    let stream = state
        .catalog()
        .set_compatibility(pb::SetCompatibilityRequest {
            actor: Some(caller.0),
            stream: found.stream().name.clone(),
            compatibility: mode.into(),
            part: part.into(),
        })
        .await
        .map_err(|e| RegistryError::about(&subject, e))?;
    state.view().caught_up().await;
    Ok(Registry(ConfigChange {
        compatibility: compatibility_of(&stream, part),
    }))
}

/// The compatibility level of `stream`'s `part` schema.
fn compatibility_of(stream: &pb::Stream, part: Part) -> String {
    super::streams::compatibility_name(match part {
        Part::Value => stream.compatibility,
        Part::Key => stream.key_compatibility,
    })
}

/// A schema by its global id.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaById {
    /// `JSON`; absent for `AVRO`.
    #[serde(rename = "schemaType", skip_serializing_if = "Option::is_none")]
    schema_type: Option<&'static str>,
    /// The schema as JSON text.
    schema: String,
    /// The subjects' versions it refers to; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<ReferenceAnswer>,
}

/// A subject and version that have a schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectAndVersion {
    subject: String,
    version: u32,
}

/// The caller's holders of schema `id`, or Confluent's 40403.
async fn holders(state: &AppState, caller: &Caller, id: u32) -> Result<Vec<Holder>, RegistryError> {
    state
        .view()
        .schema_holders(caller.org(), id)
        .await
        .map_err(|e| match e.code {
            ErrorCode::StreamNotFound => {
                RegistryError::schema_not_found(format!("Schema {id} not found"))
            }
            _ => e.into(),
        })
}

/// `GET /registry/schemas/ids/{id}`: the schema with this global id, as
/// a deserializer fetches it.
#[utoipa::path(
    get,
    path = "/registry/schemas/ids/{id}",
    operation_id = "registry_schema",
    tag = "schema registry",
    params(("id" = u32, Path, minimum = 1), ReadQuery),
    responses(
        (status = 200, body = SchemaById, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn schema(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(id): ApiPath<u32>,
    query: QueryResult<ReadQuery>,
) -> RegistryResult<SchemaById> {
    let caller = authenticated(caller)?;
    let serialized = ReadQuery::reading(query)?.serialized;
    let holders = holders(&state, &caller, id).await?;
    let version = &holders[0].version;
    Ok(Registry(SchemaById {
        schema_type: schema_type_field(version.format),
        schema: schema_text(version, serialized.then(|| state.record_schemas().as_ref()))?,
        references: references_for(&state, &caller, version),
    }))
}

/// `GET /registry/schemas/ids/{id}/schema`: that schema alone.
#[utoipa::path(
    get,
    path = "/registry/schemas/ids/{id}/schema",
    operation_id = "registry_schema_raw",
    tag = "schema registry",
    params(("id" = u32, Path, minimum = 1)),
    responses(
        (status = 200, description = "the schema", body = Object, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn schema_raw(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Response, RegistryError> {
    let caller = authenticated(caller)?;
    let holders = holders(&state, &caller, id).await?;
    raw_schema(&holders[0].version)
}

/// `GET /registry/schemas/ids/{id}/subjects`: the caller's subjects that
/// have this schema.
#[utoipa::path(
    get,
    path = "/registry/schemas/ids/{id}/subjects",
    operation_id = "registry_schema_subjects",
    tag = "schema registry",
    params(("id" = u32, Path, minimum = 1), ReadQuery),
    responses(
        (status = 200, body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn schema_subjects(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(id): ApiPath<u32>,
    query: QueryResult<ReadQuery>,
) -> RegistryResult<Vec<String>> {
    let caller = authenticated(caller)?;
    let deleted = ReadQuery::reading(query)?.deleted;
    let names: std::collections::BTreeSet<String> = holders(&state, &caller, id)
        .await?
        .iter()
        .filter(|h| deleted || !h.version.deleted)
        .map(|h| subject_name(&h.subject.topic, h.part))
        .collect();
    Ok(Registry(names.into_iter().collect()))
}

/// `GET /registry/schemas/ids/{id}/versions`: the caller's subject
/// versions that have this schema.
#[utoipa::path(
    get,
    path = "/registry/schemas/ids/{id}/versions",
    operation_id = "registry_schema_versions",
    tag = "schema registry",
    params(("id" = u32, Path, minimum = 1), ReadQuery),
    responses(
        (status = 200, body = Vec<SubjectAndVersion>, content_type = "application/vnd.schemaregistry.v1+json"),
        crate::error::Failures,
    ),
)]
pub async fn schema_versions(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ApiPath(id): ApiPath<u32>,
    query: QueryResult<ReadQuery>,
) -> RegistryResult<Vec<SubjectAndVersion>> {
    let caller = authenticated(caller)?;
    let deleted = ReadQuery::reading(query)?.deleted;
    let mut pairs: Vec<SubjectAndVersion> = holders(&state, &caller, id)
        .await?
        .iter()
        .filter(|h| deleted || !h.version.deleted)
        .map(|h| SubjectAndVersion {
            subject: subject_name(&h.subject.topic, h.part),
            version: h.version.version,
        })
        .collect();
    pairs.sort_by(|a, b| (&a.subject, a.version).cmp(&(&b.subject, b.version)));
    Ok(Registry(pairs))
}

/// 406 with Confluent's code when `Accept` admits none of [`ANSWERS`].
pub async fn negotiate(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    if let Some(accept) = accept {
        if !crate::wire::accepts(accept, &ANSWERS) {
            return RegistryError::new(
                StatusCode::NOT_ACCEPTABLE,
                406,
                format!(
                    "the registry answers in {}; Accept {accept:?} admits none of them",
                    ANSWERS.join(", ")
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_topic_name_strategy() {
        assert_eq!(
            parse_subject("orders-value").unwrap(),
            ("orders", Part::Value)
        );
        assert_eq!(
            parse_subject("my-orders-key").unwrap(),
            ("my-orders", Part::Key)
        );
        assert_eq!(parse_subject("orders").unwrap_err().error_code, 40401);
        assert_eq!(
            parse_subject("com.acme.Order").unwrap_err().error_code,
            40401
        );
    }

    #[test]
    fn versions_are_numbers_latest_or_minus_one() {
        let versions = [
            pb::SchemaVersion {
                version: 1,
                id: 7,
                ..Default::default()
            },
            pb::SchemaVersion {
                version: 2,
                id: 9,
                ..Default::default()
            },
        ];
        assert_eq!(version_of(&versions, "s", "latest").unwrap().id, 9);
        assert_eq!(version_of(&versions, "s", "-1").unwrap().id, 9);
        assert_eq!(version_of(&versions, "s", "1").unwrap().id, 7);
        assert_eq!(
            version_of(&versions, "s", "3").unwrap_err().error_code,
            40402
        );
        for bad in ["0", "-2", "x", "2147483648", ""] {
            assert_eq!(
                version_of(&versions, "s", bad).unwrap_err().error_code,
                42202,
                "{bad}"
            );
        }
    }

    #[test]
    fn freeport_refusals_carry_confluent_codes() {
        let code = |c: ErrorCode| RegistryError::from(ApiError::new(c, "x")).error_code;
        assert_eq!(code(ErrorCode::Unauthenticated), 401);
        assert_eq!(code(ErrorCode::Forbidden), 40301);
        assert_eq!(code(ErrorCode::IncompatibleSchema), 409);
        assert_eq!(code(ErrorCode::InvalidField), 42201);
        assert_eq!(code(ErrorCode::SchemaVersionNotFound), 40402);
        assert_eq!(code(ErrorCode::Internal), 50001);
    }
}
