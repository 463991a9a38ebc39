//! The portal's OpenAPI document, served at `GET /openapi.json`: the
//! description here, and every operation the route table
//! ([`rest::routes`]) serves, from its handler's `#[utoipa::path]`, with
//! the request and answer types the handler itself takes and returns.
//! `tests/tests/openapi.rs` checks it against the running server: every
//! operation it lists is routed, and sampled answers match their
//! documented schemas.
//!
//! The types here are the document's only: the name rules that fields
//! and path parameters refer to. Handlers check names with
//! `freeport_common::names`; the test below holds each pattern to it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ErrorBody, Problem};
use crate::rest;

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

/// A tag: 1 to 64 characters, none of them a control character.
#[derive(ToSchema)]
#[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,64}$")]
#[allow(dead_code)]
pub struct Tag(String);

/// A schema as the REST API takes it: a JSON Schema or an Avro schema (as
/// JSON), or for `protobuf` the text of a `.proto` file.
#[derive(ToSchema, serde::Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum StreamSchema {
    Json(std::collections::HashMap<String, serde_json::Value>),
    Proto(String),
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "the API key as the password (any user name), as `basic.auth.user.info` sends it"
                .into(),
        );
        components.add_security_scheme("api_key_basic", SecurityScheme::Http(basic));
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
    security(("api_key" = []), ("api_key_basic" = []), ("client_certificate" = [])),
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

    /// The name patterns in the document say what the handlers accept:
    /// for any string, the pattern matches exactly when the rule the
    /// handler applies (`freeport_common::names`, consumer names) does.
    mod name_patterns {
        use freeport_common::names::{StreamName, TopicName};
        use proptest::prelude::*;

        fn pattern(name: &str) -> jsonschema::Validator {
            let doc = serde_json::to_value(super::spec()).unwrap();
            jsonschema::validator_for(&doc["components"]["schemas"][name]).unwrap()
        }

        fn agree(schema: &str, text: &str, accepted: bool) {
            let documented = pattern(schema).is_valid(&serde_json::json!(text));
            assert_eq!(
                documented, accepted,
                "{schema} pattern says {documented} for {text:?}, the handler {accepted}"
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn identifier(text in "[a-zA-Z0-9._ :/-]{0,8}|[a-z0-9._-]{60,66}") {
                agree("Identifier", &text, StreamName::parse(text.clone()).is_ok());
            }

            #[test]
            fn topic_name(text in "([A-Za-z0-9._ :/-]{0,8}|[a-z.]{0,3}|[a-z]{245,252})") {
                agree("TopicName", &text, TopicName::parse(text.clone()).is_ok());
            }

            #[test]
            fn consumer_name(text in "[A-Za-z0-9._ :/-]{0,8}|[a-z]{198,202}") {
                let accepted = crate::rest::consumers::check_name("name", &text).is_ok();
                agree("ConsumerName", &text, accepted);
            }
        }

        #[test]
        fn edges() {
            for (text, ok) in [
                ("", false),
                (".", false),
                ("..", false),
                ("...", true),
                ("a.", true),
            ] {
                agree("TopicName", text, ok);
            }
            for (text, ok) in [("", false), ("-a", false), ("a-", true), ("A", false)] {
                agree("Identifier", text, ok);
            }
            agree("Identifier", &"x".repeat(63), true);
            agree("Identifier", &"x".repeat(64), false);
        }
    }
}
