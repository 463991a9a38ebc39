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
pub mod registry;
pub mod streams;
pub mod topics;

/// A REST Proxy v2 answer that carries no records: JSON under REST
/// Proxy's v2 media type.
pub struct V2<T>(pub T);

impl<T: serde::Serialize> IntoResponse for V2<T> {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, crate::wire::RESPONSE_V2)],
            Json(self.0),
        )
            .into_response()
    }
}

use axum::routing::get;
use axum::Router;
use freeport_common::error::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The route table, its one home: every documented operation is routed
/// here from its handler's `#[utoipa::path]`, which is also where the
/// OpenAPI document (`crate::openapi::spec`) gets it. `routes!` takes the
/// handlers of one path together.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<crate::openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(streams::list, streams::register))
        .routes(routes!(streams::get_one))
        .routes(routes!(streams::asyncapi))
        .routes(routes!(events::events))
        .routes(routes!(streams::schemas, streams::register_schema))
        .routes(routes!(streams::set_compatibility))
        .routes(routes!(streams::set_validation))
        .routes(routes!(contracts::list, contracts::request))
        .routes(routes!(contracts::get_one))
        .routes(routes!(contracts::audit))
        .routes(routes!(contracts::act))
        .routes(routes!(partners::asyncapi))
        .routes(routes!(publish::list, publish::publish))
        .routes(routes!(publish::get_one))
        .routes(routes!(admin::me))
        .routes(routes!(admin::clusters))
        .routes(routes!(admin::list_orgs, admin::create_org))
        .routes(routes!(credentials::list_keys, credentials::create_key))
        .routes(routes!(credentials::revoke_key))
        .routes(routes!(credentials::rotate_key))
        .routes(routes!(credentials::revoke_certificate))
        .routes(routes!(records::produce))
        .merge(rest_proxy_v2())
        .merge(schema_registry())
        .routes(routes!(crate::openapi::health))
        .routes(routes!(crate::openapi::document))
        // The web UI: pages, not API operations.
        .route("/", get(crate::ui::root))
        .route("/ui/", get(crate::ui::index))
        .route("/ui/app.js", get(crate::ui::script))
        .route("/ui/app.css", get(crate::ui::style))
}

/// REST Proxy v2's routes, each negotiating its answer's media type
/// ([`negotiate`]): a consumer's records come only in the embedded
/// formats, every other answer in any v2 or JSON type.
fn rest_proxy_v2() -> OpenApiRouter<AppState> {
    use axum::extract::Request;
    use axum::middleware::{from_fn, Next};
    let records = OpenApiRouter::new()
        .routes(routes!(consumers::positions::records))
        .routes(routes!(consumers::positions::topic_records))
        .layer(from_fn(|request: Request, next: Next| {
            negotiate(&crate::wire::RECORDS_V2, request, next)
        }));
    OpenApiRouter::new()
        .routes(routes!(topics::brokers))
        .routes(routes!(topics::list))
        .routes(routes!(topics::get_one, produce::produce))
        .routes(routes!(topics::partitions))
        .routes(routes!(topics::partition, produce::produce_to_partition))
        .routes(routes!(topics::offsets))
        .routes(routes!(consumers::create))
        .routes(routes!(consumers::delete))
        .routes(routes!(
            consumers::subscribe,
            consumers::subscription,
            consumers::unsubscribe
        ))
        .routes(routes!(consumers::assign, consumers::assignments))
        .routes(routes!(consumers::positions::seek))
        .routes(routes!(consumers::positions::seek_beginning))
        .routes(routes!(consumers::positions::seek_end))
        .routes(routes!(
            consumers::positions::commit,
            consumers::positions::committed
        ))
        .layer(from_fn(|request: Request, next: Next| {
            negotiate(&crate::wire::ANSWERS_V2, request, next)
        }))
        .merge(records)
}

/// The Schema Registry API's routes ([`registry`]), negotiating their
/// answers' media type as Confluent's registry does.
fn schema_registry() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(registry::schema_types))
        .routes(routes!(registry::subjects))
        .routes(routes!(registry::versions, registry::register))
        .routes(routes!(registry::version, registry::delete_version))
        .routes(routes!(registry::version_schema))
        .routes(routes!(registry::referenced_by))
        .routes(routes!(registry::lookup, registry::delete_subject))
        .routes(routes!(registry::mode, registry::put_mode))
        .routes(routes!(registry::subject_mode, registry::put_subject_mode))
        .routes(routes!(registry::compatibility))
        .routes(routes!(registry::compatibility_all))
        .routes(routes!(registry::config, registry::set_config))
        .routes(routes!(
            registry::subject_config,
            registry::set_subject_config
        ))
        .routes(routes!(registry::schema))
        .routes(routes!(registry::schema_raw))
        .routes(routes!(registry::schema_subjects))
        .routes(routes!(registry::schema_versions))
        .layer(axum::middleware::from_fn(registry::negotiate))
}

/// The routes with their fallbacks. Paths reach it without a trailing
/// `/` ([`trimming_trailing_slashes`], which `crate::app` puts in front of
/// routing).
pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .with_state(state)
}

/// `app` with paths trimmed before routing, so that both spellings reach
/// the same route. Outside the router, so that the layers inside it still
/// see the route a request matched (metrics, spans).
pub fn trimming_trailing_slashes(app: Router) -> Router {
    Router::new().fallback_service(tower::Layer::layer(
        &axum::middleware::map_request(without_trailing_slash),
        app,
    ))
}

/// REST Proxy's content negotiation: an `Accept` that admits none of the
/// media types the route answers in (`produced`) is refused with 406
/// before the handler runs; no `Accept` admits everything. Which of a
/// consumer's embedded formats is the instance's to say (40601 for the
/// other).
async fn negotiate(
    produced: &'static [&'static str],
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    if let Some(accept) = accept {
        if !crate::wire::accepts(accept, produced) {
            return ApiError::new(
                ErrorCode::NotAcceptable,
                format!(
                    "this route answers in {}; Accept {accept:?} admits none of them",
                    produced.join(", ")
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// A path without its trailing `/`: REST Proxy clients write
/// `/consumers/{group}/` and `/consumers/{group}` alike, and Confluent's
/// REST Proxy answers both. The web UI's `/ui/` is the one path that keeps
/// it.
async fn without_trailing_slash(mut request: axum::extract::Request) -> axum::extract::Request {
    let path = request.uri().path();
    let Some(trimmed) = path.strip_suffix('/') else {
        return request;
    };
    if trimmed.is_empty() || path == "/ui/" {
        return request;
    }
    let rewritten = match request.uri().query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = rewritten.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
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
