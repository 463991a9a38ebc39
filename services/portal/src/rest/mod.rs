//! The REST API, one file per area. Handlers parse input into valid values,
//! call the catalog or Kafka, and shape the answer; rules live in the catalog.

pub mod admin;
pub mod consumers;
pub mod contracts;
pub mod credentials;
pub mod events;
pub mod partners;
pub mod produce;
pub mod publish;
pub mod records;
pub mod streams;
pub mod topics;

/// A REST Proxy v2 answer that carries no records.
fn v2(body: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, crate::wire::RESPONSE_V2)],
        axum::Json(body),
    )
        .into_response()
}

use axum::routing::{delete, get, post, put};
use axum::Router;
use freeport_common::error::ErrorCode;

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/streams", get(streams::list).post(streams::register))
        .route("/v1/streams/{name}", get(streams::get_one))
        .route("/v1/streams/{name}/asyncapi", get(streams::asyncapi))
        .route("/v1/streams/{name}/events", get(events::events))
        .route(
            "/v1/streams/{name}/schemas",
            get(streams::schemas).post(streams::register_schema),
        )
        .route(
            "/v1/streams/{name}/compatibility",
            put(streams::set_compatibility),
        )
        .route(
            "/v1/contracts",
            get(contracts::list).post(contracts::request),
        )
        .route("/v1/contracts/{id}", get(contracts::get_one))
        .route("/v1/contracts/{id}/audit", get(contracts::audit))
        .route("/v1/contracts/{id}/{action}", post(contracts::act))
        .route("/v1/partners/{org}/asyncapi", get(partners::asyncapi))
        .route("/v1/asyncapi", get(publish::list).post(publish::publish))
        .route("/v1/asyncapi/{id}", get(publish::get_one))
        .route("/v1/clusters", get(admin::clusters))
        .route("/v1/orgs", get(admin::list_orgs).post(admin::create_org))
        .route(
            "/v1/orgs/{org}/keys",
            get(credentials::list_keys).post(credentials::create_key),
        )
        .route(
            "/v1/orgs/{org}/keys/{key_id}",
            delete(credentials::revoke_key),
        )
        .route(
            "/v1/orgs/{org}/keys/{key_id}/rotate",
            post(credentials::rotate_key),
        )
        .route(
            "/v1/orgs/{org}/revoked-certificates",
            post(credentials::revoke_certificate),
        )
        .route("/topics", get(topics::list))
        .route(
            "/topics/{topic}",
            get(topics::get_one).post(produce::produce),
        )
        .route("/topics/{topic}/partitions", get(topics::partitions))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(topics::partition).post(produce::produce_to_partition),
        )
        .route(
            "/topics/{topic}/partitions/{partition}/offsets",
            get(topics::offsets),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/records",
            post(records::produce),
        )
        .route("/consumers/{group}", post(consumers::create))
        .route(
            "/consumers/{group}/instances/{instance}",
            delete(consumers::delete),
        )
        .route(
            "/consumers/{group}/instances/{instance}/subscription",
            post(consumers::subscribe)
                .get(consumers::subscription)
                .delete(consumers::unsubscribe),
        )
        .route(
            "/consumers/{group}/instances/{instance}/assignments",
            post(consumers::assign).get(consumers::assignments),
        )
        .route(
            "/consumers/{group}/instances/{instance}/positions",
            post(consumers::positions::seek),
        )
        .route(
            "/consumers/{group}/instances/{instance}/positions/beginning",
            post(consumers::positions::seek_beginning),
        )
        .route(
            "/consumers/{group}/instances/{instance}/positions/end",
            post(consumers::positions::seek_end),
        )
        .route(
            "/consumers/{group}/instances/{instance}/records",
            get(consumers::positions::records),
        )
        .route(
            "/consumers/{group}/instances/{instance}/offsets",
            post(consumers::positions::commit).get(consumers::positions::committed),
        )
        .route("/v1/me", get(admin::me))
        .route("/", get(crate::ui::root))
        .route("/ui/", get(crate::ui::index))
        .route("/ui/app.js", get(crate::ui::script))
        .route("/ui/app.css", get(crate::ui::style))
        .route("/healthz", get(crate::openapi::health))
        .route("/openapi.json", get(crate::openapi::document))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .with_state(state)
}

/// An AsyncAPI document as YAML, or as JSON when the caller's `Accept`
/// asks for it.
pub fn asyncapi_response(document: serde_json::Value, headers: &HeaderMap) -> ApiResult<Response> {
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

/// A stream's classification as the REST API and the policies name it:
/// `public`, `partner`, `internal` or `restricted`.
pub fn classification_name(value: i32) -> String {
    freeport_common::proto::catalog::v1::Classification::try_from(value)
        .map(|c| enum_name(c.as_str_name(), "CLASSIFICATION_"))
        .unwrap_or_default()
}

/// A contract's state as the REST API names it (`requested`, `active`, ...).
pub fn contract_state_name(value: i32) -> String {
    freeport_common::contract::ContractState::from_pb(value)
        .map_or("unknown", |s| s.as_str())
        .to_string()
}

/// An organization's kind as the REST API and the policies name it:
/// `internal` or `partner`.
pub fn org_kind_name(value: i32) -> String {
    freeport_common::proto::catalog::v1::OrganizationKind::try_from(value)
        .map(|k| enum_name(k.as_str_name(), "ORGANIZATION_KIND_"))
        .unwrap_or_default()
}

/// `CONTRACT_STATE_APPROVED` -> `approved`: proto enum names as the REST API shows them.
pub fn enum_name(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}
