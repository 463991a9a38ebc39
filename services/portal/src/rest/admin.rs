//! Hub administration: clusters and organizations (their keys are in
//! `keys.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use freeport_common::names::{ClusterName, OrgName};
use freeport_common::proto::catalog::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

/// Who the credentials shown belong to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `admin` or `member`.
    role: &'static str,
    /// The member's organization; null for admins.
    organization: Option<String>,
    /// Identifies the credential (an API key's id, or the certificate's
    /// organization), never the secret.
    key_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cluster {
    #[schema(value_type = crate::openapi::Identifier)]
    name: ClusterName,
    /// The organization that owns the cluster; null when the configuration
    /// names none (nothing may use such a cluster).
    #[schema(value_type = Option<crate::openapi::Identifier>)]
    owner: Option<OrgName>,
    bootstrap: String,
    description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterList {
    clusters: Vec<Cluster>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    name: String,
    email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    name: String,
    /// `internal` or `partner`.
    kind: String,
    display_name: String,
    contacts: Vec<Contact>,
    trusted_cert_fingerprints: Vec<String>,
    created_at_ms: i64,
}

impl From<pb::Organization> for Organization {
    fn from(o: pb::Organization) -> Organization {
        Organization {
            kind: super::org_kind_name(o.kind),
            name: o.name,
            display_name: o.display_name,
            contacts: o
                .contacts
                .into_iter()
                .map(|c| Contact {
                    name: c.name,
                    email: c.email,
                })
                .collect(),
            trusted_cert_fingerprints: o.trusted_cert_fingerprints,
            created_at_ms: o.created_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationList {
    organizations: Vec<Organization>,
}

/// `GET /v1/me`: who the credentials shown belong to.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "admin_me",
    tag = "administration",
    responses(
        (status = 200, body = Me),
        crate::error::Failures,
    ),
)]
pub async fn me(caller: Caller) -> Json<Me> {
    let role = if caller.is_admin() { "admin" } else { "member" };
    Json(Me {
        role,
        organization: caller.org().map(str::to_string),
        key_id: caller.0.key_id,
    })
}

#[utoipa::path(
    get,
    path = "/v1/clusters",
    operation_id = "admin_clusters",
    tag = "administration",
    responses(
        (status = 200, body = ClusterList),
        crate::error::Failures,
    ),
)]
pub async fn clusters(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ClusterList>> {
    let clusters: Vec<_> = state
        .clusters_of(&caller)
        .map(|(name, c)| Cluster {
            name: name.clone(),
            owner: c.owner.clone(),
            bootstrap: c.bootstrap.clone(),
            description: c.description.clone(),
        })
        .collect();
    Ok(Json(ClusterList { clusters }))
}

#[utoipa::path(
    get,
    path = "/v1/orgs",
    operation_id = "admin_list_orgs",
    tag = "administration",
    responses(
        (status = 200, body = OrganizationList),
        crate::error::Failures,
    ),
)]
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<OrganizationList>> {
    caller.require_admin("list organizations")?;
    let orgs: Vec<_> = state
        .catalog()
        .list_organizations()
        .await?
        .into_iter()
        .map(Organization::from)
        .collect();
    Ok(Json(OrganizationList {
        organizations: orgs,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/orgs",
    operation_id = "admin_create_org",
    tag = "administration",
    request_body = CreateOrg,
    responses(
        (status = 201, body = Organization),
        crate::error::Failures,
    ),
)]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Organization>)> {
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
    Ok((StatusCode::CREATED, Json(org.into())))
}
