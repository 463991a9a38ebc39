//! The portal's OpenAPI document, generated from the handlers'
//! `#[utoipa::path]` annotations and the request and answer types, served
//! at `GET /openapi.json`. `tests/tests/openapi.rs` checks it against the
//! running server: every operation it lists is routed, and sampled answers
//! match their documented schemas.
//!
//! The types here describe answers the handlers build as JSON values; the
//! request types are the handlers' own.

use std::collections::BTreeMap;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::rest;

/// Every refusal and failure: a stable `error_code` (its first three digits
/// are the HTTP status) and a message.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error_code: u32,
    message: String,
    /// Itemized problems, for example of a refused AsyncAPI document.
    problems: Option<Vec<Problem>>,
}

/// The answers every operation may give besides its own: a refusal of the
/// caller's request, or a failure on the portal's side (or a service's it
/// depends on).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Failures {
    #[response(status = "4XX", description = "refused: error_code says why")]
    Refused(ErrorBody),
    #[response(
        status = "5XX",
        description = "failed on our side or a dependency's; try again"
    )]
    Failed(ErrorBody),
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// JSON pointer into the document.
    pointer: String,
    message: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamList {
    streams: Vec<rest::streams::StreamView>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SchemaVersion {
    version: u32,
    /// `json_schema` or `avro`.
    format: String,
    schema: Value,
    registered_at_ms: i64,
    registered_by: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SchemaVersions {
    versions: Vec<SchemaVersion>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContractList {
    contracts: Vec<rest::contracts::ContractView>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditEntry {
    seq: u64,
    at_ms: i64,
    actor: String,
    action: String,
    detail: Value,
    /// Hash of this entry, chained to the previous one's.
    hash: String,
    prev_hash: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditTrail {
    entries: Vec<AuditEntry>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Cluster {
    name: String,
    /// The organization that owns the cluster; null when the configuration
    /// names none (nothing may use such a cluster).
    owner: Option<String>,
    bootstrap: String,
    description: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ClusterList {
    clusters: Vec<Cluster>,
}

/// Who the credentials shown belong to.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Me {
    /// `admin` or `member`.
    role: String,
    /// The member's organization; null for admins.
    organization: Option<String>,
    /// Identifies the credential (an API key's id, or the certificate's
    /// organization), never the secret.
    key_id: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Contact {
    name: String,
    email: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Organization {
    name: String,
    /// `internal` or `partner`.
    kind: String,
    display_name: String,
    contacts: Vec<Contact>,
    trusted_cert_fingerprints: Vec<String>,
    created_at_ms: i64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrganizationList {
    organizations: Vec<Organization>,
}

/// An organization's revoked client certificates.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokedCertificates {
    organization: String,
    revoked_certificates: Vec<RevokedCertificate>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokedCertificate {
    fingerprint: String,
    revoked_at_ms: i64,
    revoked_by: String,
    reason: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AsyncApiDocumentSummary {
    id: String,
    owner: String,
    title: String,
    version: String,
    streams: Vec<String>,
    published_at_ms: i64,
    published_by: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AsyncApiDocumentList {
    documents: Vec<AsyncApiDocumentSummary>,
}

/// Where each record of a REST Proxy v2 produce landed, in order.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProduceResponse {
    key_schema_id: Option<i32>,
    value_schema_id: Option<i32>,
    offsets: Vec<ProducedOffset>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProducedOffset {
    partition: Option<i32>,
    offset: Option<i64>,
    error_code: Option<u32>,
    error: Option<String>,
}

/// A key or value of a streaming produce record.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct V3Data {
    /// `JSON` (the default), `BINARY` (base64) or `STRING`.
    #[schema(rename = "type")]
    kind: Option<String>,
    data: Value,
}

/// One record of a streaming produce body (records follow each other,
/// concatenated or one per line).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct V3Record {
    partition_id: Option<i32>,
    headers: Option<Vec<Header>>,
    key: Option<V3Data>,
    value: Option<V3Data>,
    /// RFC 3339.
    timestamp: Option<String>,
}

/// One delivery report of a streaming produce (one per record, in order):
/// `error_code` 200 with where the record landed, or a Freeport code and
/// a message.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct V3Report {
    error_code: u32,
    message: Option<String>,
    cluster_id: Option<String>,
    topic_name: Option<String>,
    partition_id: Option<i32>,
    offset: Option<i64>,
    timestamp: Option<String>,
    key: Option<V3Size>,
    value: Option<V3Size>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct V3Size {
    #[schema(rename = "type")]
    kind: String,
    size: usize,
}

/// A record header: its value as base64 (null for a null value).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Header {
    name: String,
    value: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Replica {
    broker: i32,
    leader: bool,
    in_sync: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Partition {
    partition: i32,
    leader: i32,
    replicas: Vec<Replica>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Topic {
    name: String,
    /// As far as the cluster describes them (some describe none).
    configs: BTreeMap<String, String>,
    partitions: Vec<Partition>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PartitionOffsets {
    beginning_offset: i64,
    /// The offset the next record will get.
    end_offset: i64,
}

/// A new REST Proxy consumer instance's settings; values may be strings or
/// numbers, as REST Proxy clients send them.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConsumerSettings {
    #[schema(value_type = Option<ConsumerName>)]
    name: Option<String>,
    /// `binary` (the default) or `json`.
    #[schema(pattern = "^(binary|json)$")]
    format: Option<String>,
    /// `earliest` or `latest` (the default).
    #[schema(
        rename = "auto.offset.reset",
        pattern = "^(earliest|latest|smallest|largest)$"
    )]
    auto_offset_reset: Option<String>,
    #[schema(rename = "auto.commit.enable", pattern = "^(true|false)$")]
    auto_commit_enable: Option<String>,
    #[schema(rename = "fetch.min.bytes", pattern = "^[0-9]{1,19}$")]
    fetch_min_bytes: Option<String>,
    #[schema(rename = "consumer.request.timeout.ms", pattern = "^[0-9]{1,19}$")]
    consumer_request_timeout_ms: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsumerCreated {
    instance_id: String,
    base_uri: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Subscription {
    topics: Vec<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TopicPartition {
    topic: String,
    partition: i32,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Assignments {
    partitions: Vec<TopicPartition>,
}

/// A record read by a consumer instance: key and value as JSON (json
/// format) or base64 (binary format).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsumerRecord {
    topic: String,
    key: Value,
    value: Value,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    headers: Vec<Header>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CommittedOffset {
    topic: String,
    partition: i32,
    /// The next record to read; -1 when nothing is committed.
    offset: i64,
    metadata: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CommittedOffsets {
    offsets: Vec<CommittedOffset>,
}

/// The name of a stream, an organization or a cluster (`names.rs`): 1 to
/// 63 lowercase letters, digits, '.', '_' and '-', starting with a letter
/// or digit.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
#[allow(dead_code)]
pub struct Identifier(String);

/// A REST Proxy consumer group or instance name: 1 to 200 letters, digits,
/// '.', '_' and '-'.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9._-]{1,200}$")]
#[allow(dead_code)]
pub struct ConsumerName(String);

/// A SHA-256 fingerprint: 64 hex digits, colons between them allowed.
#[derive(ToSchema)]
#[schema(pattern = "^(?:[0-9A-Fa-f]:?){63}[0-9A-Fa-f]$")]
#[allow(dead_code)]
pub struct Fingerprint(String);

/// A Kafka topic name (also the rule for consumer group names in terms).
#[derive(ToSchema)]
#[schema(pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]{1,249}$")]
#[allow(dead_code)]
pub struct TopicName(String);

/// A tag: 1 to 64 characters (printable ASCII documented; any printable
/// accepted).
#[derive(ToSchema)]
#[schema(pattern = "^[\\x20-\\x7e]{1,64}$")]
#[allow(dead_code)]
pub struct Tag(String);

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme("client_certificate", SecurityScheme::MutualTls {
            description: Some(
                "a certificate signed by the portal's client_ca naming urn:freeport:org:<name>, or one whose fingerprint an organization registered".into(),
            ),
            extensions: None,
        });
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Freeport portal",
        description = "Discovery, contracts, AsyncAPI publishing, push feeds and a Kafka REST Proxy-compatible data plane. Errors are `{\"error_code\", \"message\"}`; the code's first three digits are the HTTP status.",
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, Problem)),
    security(("api_key" = []), ("client_certificate" = [])),
)]
pub struct ApiDoc;

/// `GET /healthz`: the portal answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
pub async fn health() -> &'static str {
    "ok"
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn document() -> Response {
    static JSON: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| spec().to_pretty_json().unwrap_or_else(|_| "{}".into()));
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str()).into_response()
}

/// The OpenAPI document: the description above, with every operation the
/// route table (`rest::routes`) serves.
pub fn spec() -> utoipa::openapi::OpenApi {
    rest::routes().into_openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is the document the code generates; refresh it
    /// with `UPDATE_OPENAPI=1 cargo test -p freeport-portal openapi`.
    #[test]
    fn docs_openapi_json_is_current() {
        let generated = spec().to_pretty_json().unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == generated,
            "docs/openapi.json is out of date: run UPDATE_OPENAPI=1 cargo test -p freeport-portal openapi"
        );
    }

    #[test]
    fn every_operation_documents_its_failures_under_its_own_id() {
        let doc = serde_json::to_value(spec()).unwrap();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "{method} {path}: operationId {id:?} twice"
                );
                let responses = &operation["responses"];
                if path == "/healthz" || path == "/openapi.json" {
                    continue;
                }
                assert!(
                    responses["4XX"].is_object() && responses["5XX"].is_object(),
                    "{method} {path}: {responses}"
                );
            }
        }
    }
}
