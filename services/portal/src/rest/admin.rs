//! Hub administration: clusters and organizations (their keys are in
//! `keys.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use freeport_common::proto::catalog::v1 as pb;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Caller};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    #[schema(value_type = crate::openapi::Identifier)]
    name: String,
    #[schema(pattern = "^(internal|partner)$")]
    kind: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    display_name: String,
    #[serde(default)]
    #[schema(max_items = 20)]
    contacts: Vec<ContactBody>,
    /// SHA-256 fingerprints of client certificates that identify the organization.
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::Fingerprint>)]
    trusted_cert_fingerprints: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    #[schema(min_length = 1, max_length = 1024, pattern = "\\S")]
    name: String,
    #[schema(
        max_length = 254,
        pattern = "^[^\\s\\u0085@]+@[^\\s\\u0085@]+\\.[^\\s\\u0085@]+$"
    )]
    email: String,
}

/// `GET /v1/me`: who the credentials shown belong to.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "admin_me",
    tag = "administration",
    responses(
        (status = 200, body = crate::openapi::Me),
        crate::openapi::Failures,
    ),
)]
pub async fn me(caller: Caller) -> Json<serde_json::Value> {
    let role = if caller.is_admin() { "admin" } else { "member" };
    Json(serde_json::json!({
        "role": role,
        "organization": caller.org(),
        "key_id": caller.0.key_id,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/clusters",
    operation_id = "admin_clusters",
    tag = "administration",
    responses(
        (status = 200, body = crate::openapi::ClusterList),
        crate::openapi::Failures,
    ),
)]
pub async fn clusters(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    // Admins see every cluster; an organization sees its own, where it may
    // register streams and receive contracts.
    let clusters: Vec<_> = state
        .clusters()
        .iter()
        .filter(|(_, c)| caller.is_admin() || caller.org().is_some_and(|org| c.is_owned_by(org)))
        .map(|(name, c)| {
            serde_json::json!({
                "name": name,
                "owner": c.owner,
                "bootstrap": c.bootstrap,
                "description": c.description,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "clusters": clusters })))
}

fn org_view(o: pb::Organization) -> serde_json::Value {
    let kind = super::org_kind_name(o.kind);
    serde_json::json!({
        "name": o.name,
        "kind": kind,
        "display_name": o.display_name,
        "contacts": o.contacts.iter().map(|c| serde_json::json!({"name": c.name, "email": c.email})).collect::<Vec<_>>(),
        "trusted_cert_fingerprints": o.trusted_cert_fingerprints,
        "created_at_ms": o.created_at_ms,
    })
}

#[utoipa::path(
    get,
    path = "/v1/orgs",
    operation_id = "admin_list_orgs",
    tag = "administration",
    responses(
        (status = 200, body = crate::openapi::OrganizationList),
        crate::openapi::Failures,
    ),
)]
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin("list organizations")?;
    let orgs: Vec<_> = state
        .catalog()
        .list_organizations()
        .await?
        .into_iter()
        .map(org_view)
        .collect();
    Ok(Json(serde_json::json!({ "organizations": orgs })))
}

#[utoipa::path(
    post,
    path = "/v1/orgs",
    operation_id = "admin_create_org",
    tag = "administration",
    request_body = CreateOrg,
    responses(
        (status = 201, body = crate::openapi::Organization),
        crate::openapi::Failures,
    ),
)]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.require_admin("create organizations")?;
    let kind = match body.kind.as_str() {
        "internal" => pb::OrganizationKind::Internal,
        "partner" => pb::OrganizationKind::Partner,
        other => {
            return Err(ApiError::invalid(format!(
                "kind must be \"internal\" or \"partner\", not {other:?}"
            )))
        }
    };
    let org = state
        .catalog()
        .create_organization(pb::CreateOrganizationRequest {
            actor: Some(caller.0),
            name: body.name,
            kind: kind.into(),
            display_name: body.display_name,
            contacts: body
                .contacts
                .into_iter()
                .map(|c| pb::Contact {
                    name: c.name,
                    email: c.email,
                })
                .collect(),
            trusted_cert_fingerprints: body.trusted_cert_fingerprints,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(org_view(org))))
}
