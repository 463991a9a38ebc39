//! What a partner receives, as one AsyncAPI document.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use freeport_common::error::ErrorCode;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Caller};
use crate::AppState;

/// `GET /v1/partners/{org}/asyncapi`: every stream `org` receives under an
/// approved or active contract, with where it arrives. For the organization
/// itself and admins; another organization's is not found.
#[utoipa::path(
    get,
    path = "/v1/partners/{org}/asyncapi",
    operation_id = "partners_asyncapi",
    tag = "discovery",
    params(("org" = crate::openapi::Identifier, Path)),
    responses(
        (status = 200, description = "AsyncAPI 3.0 of every stream the organization receives", content((Object = "application/yaml"), (Object = "application/json"))),
        crate::error::Failures,
    ),
)]
pub async fn asyncapi(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !caller.is_admin() && caller.org() != Some(org.as_str()) {
        return Err(ApiError::new(
            ErrorCode::OrganizationNotFound,
            format!("organization {org:?} not found"),
        ));
    }
    // Push contracts are read here: the document names this portal as the
    // caller reached it.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255);
    let secure = state.scheme() == "https";
    let document = state
        .catalog()
        .partner_asyncapi(&org, host.map(|h| (h, secure)))
        .await?;
    super::asyncapi_response(document, &headers)
}
