//! An organization's credentials. API keys: `GET, POST /v1/orgs/{org}/keys`,
//! `DELETE /v1/orgs/{org}/keys/{key_id}` and
//! `POST /v1/orgs/{org}/keys/{key_id}/rotate`; an admin manages every
//! organization's keys, a member its own; a key is shown once, when it is
//! issued, and listings never show it. Client certificates:
//! `POST /v1/orgs/{org}/revoked-certificates`, an admin's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use freeport_common::proto::catalog::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Caller, OptionalJson};
use crate::AppState;

/// The longest overlap a rotation takes (the catalog's limit).
const MAX_OVERLAP_SECS: u64 = 30 * 86_400;
/// The overlap when a rotation names none: a day.
const DEFAULT_OVERLAP_SECS: u64 = 86_400;

/// `POST /v1/orgs/{org}/keys`: an optional body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for ("ci", "billing export").
    #[serde(default)]
    #[schema(pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]{0,100}$")]
    name: String,
    /// Seconds until it stops working; none for a key that does not expire.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3153600000.0)]
    expires_in_secs: Option<u64>,
}

/// `POST /v1/orgs/{org}/keys/{key_id}/rotate`: an optional body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// Seconds the old key goes on working (default a day, at most 30 days).
    #[serde(default)]
    #[schema(maximum = 2592000)]
    overlap_secs: Option<u64>,
    /// For the new key; the old key's name when absent.
    #[serde(default)]
    #[schema(pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]{0,100}$")]
    name: String,
    /// Seconds until the new key stops working; none for no end.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3153600000.0)]
    expires_in_secs: Option<u64>,
}

/// `DELETE /v1/orgs/{org}/keys/{key_id}`: an optional body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    #[serde(default)]
    reason: String,
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    key_id: String,
    name: String,
    /// `active`, `expired` or `revoked`.
    state: String,
    created_at_ms: i64,
    /// When it last authenticated a call (to within a minute).
    last_used_ms: Option<i64>,
    expires_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
    revoked_by: Option<String>,
    revoked_reason: Option<String>,
    /// The key this one replaced by rotation.
    replaces: Option<String>,
}

impl From<pb::ApiKey> for KeyView {
    fn from(k: pb::ApiKey) -> KeyView {
        let now = freeport_common::now_ms();
        let state = if k.revoked_at_ms != 0 {
            "revoked"
        } else if k.expires_at_ms != 0 && k.expires_at_ms <= now {
            "expired"
        } else {
            "active"
        };
        let some = |v: i64| (v != 0).then_some(v);
        let text = |v: String| (!v.is_empty()).then_some(v);
        KeyView {
            state: state.into(),
            key_id: k.key_id,
            name: k.name,
            created_at_ms: k.created_at_ms,
            last_used_ms: some(k.last_used_ms),
            expires_at_ms: some(k.expires_at_ms),
            revoked_at_ms: some(k.revoked_at_ms),
            revoked_by: text(k.revoked_by),
            revoked_reason: text(k.revoked_reason),
            replaces: text(k.replaces),
        }
    }
}

/// A key just issued: the only time it is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Issued {
    organization: String,
    key_id: String,
    /// The key itself. Keep it now: it is not shown again.
    api_key: String,
    key: KeyView,
}

/// A rotation's outcome: the new key, and the old one with its new expiry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    #[serde(flatten)]
    issued: Issued,
    replaced: KeyView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    #[param(value_type = crate::openapi::Identifier)]
    org: String,
    #[param(pattern = "^key-[0-9a-f]{1,64}$")]
    key_id: String,
}

/// Milliseconds since the epoch, `secs` from now.
fn from_now(field: &str, secs: Option<u64>) -> ApiResult<i64> {
    const MAX_SECS: u64 = 100 * 365 * 86_400;
    match secs {
        None => Ok(0),
        Some(0) => Err(ApiError::invalid(format!("{field} must be at least 1"))),
        Some(secs) if secs > MAX_SECS => Err(ApiError::invalid(format!(
            "{field} must be at most {MAX_SECS} (100 years)"
        ))),
        Some(secs) => Ok(freeport_common::now_ms() + secs as i64 * 1000),
    }
}

fn issued(org: String, created: pb::CreateApiKeyResponse) -> ApiResult<Issued> {
    let key = created
        .key
        .ok_or_else(|| ApiError::internal("issuing a key", "the catalog sent no key record"))?;
    Ok(Issued {
        organization: org,
        key_id: created.key_id,
        api_key: created.api_key,
        key: key.into(),
    })
}

/// Issues a key for an organization. The key is in this answer only.
#[utoipa::path(
    post,
    path = "/v1/orgs/{org}/keys",
    operation_id = "keys_create",
    tag = "credentials",
    params(("org" = crate::openapi::Identifier, Path)),
    request_body(content = Option<NewKey>, description = "optional"),
    responses(
        (status = 201, body = Issued),
        crate::error::Failures,
    ),
)]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<String>,
    OptionalJson(body): OptionalJson<NewKey>,
) -> ApiResult<(StatusCode, Json<Issued>)> {
    let expires_at_ms = from_now("expires_in_secs", body.expires_in_secs)?;
    let created = state
        .catalog()
        .create_api_key(pb::CreateApiKeyRequest {
            actor: Some(caller.0),
            role: pb::Role::Member.into(),
            organization: org.clone(),
            name: body.name,
            expires_at_ms,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(issued(org, created)?)))
}

/// The organization's keys, oldest first.
#[utoipa::path(
    get,
    path = "/v1/orgs/{org}/keys",
    operation_id = "keys_list",
    tag = "credentials",
    params(("org" = crate::openapi::Identifier, Path)),
    responses(
        (status = 200, body = KeyList),
        crate::error::Failures,
    ),
)]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<KeyList>> {
    let keys = state.catalog().list_api_keys(caller.0, org).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Revokes a key at once: every portal refuses it within about a second,
/// and the push feeds and consumer instances it opened close.
#[utoipa::path(
    delete,
    path = "/v1/orgs/{org}/keys/{key_id}",
    operation_id = "keys_revoke",
    tag = "credentials",
    params(KeyPath),
    request_body(content = Option<Revocation>, description = "optional"),
    responses(
        (status = 200, body = KeyView),
        crate::error::Failures,
    ),
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<KeyPath>,
    OptionalJson(body): OptionalJson<Revocation>,
) -> ApiResult<Json<KeyView>> {
    let revoked = state
        .catalog()
        .revoke_api_key(pb::RevokeApiKeyRequest {
            actor: Some(caller.0),
            organization: path.org,
            key_id: path.key_id,
            reason: body.reason,
        })
        .await?;
    Ok(Json(revoked.into()))
}

/// Issues a successor; the old key works on for the overlap, then expires.
#[utoipa::path(
    post,
    path = "/v1/orgs/{org}/keys/{key_id}/rotate",
    operation_id = "keys_rotate",
    tag = "credentials",
    params(KeyPath),
    request_body(content = Option<Rotation>, description = "optional"),
    responses(
        (status = 201, body = Rotated),
        crate::error::Failures,
    ),
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<KeyPath>,
    OptionalJson(body): OptionalJson<Rotation>,
) -> ApiResult<(StatusCode, Json<Rotated>)> {
    let overlap = body.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::invalid(format!(
            "overlap_secs must be at most {MAX_OVERLAP_SECS} (30 days)"
        )));
    }
    let expires_at_ms = from_now("expires_in_secs", body.expires_in_secs)?;
    let rotated = state
        .catalog()
        .rotate_api_key(pb::RotateApiKeyRequest {
            actor: Some(caller.0),
            organization: path.org.clone(),
            key_id: path.key_id,
            overlap_ms: overlap as i64 * 1000,
            name: body.name,
            expires_at_ms,
        })
        .await?;
    let (Some(created), Some(replaced)) = (rotated.created, rotated.replaced) else {
        return Err(ApiError::internal(
            "rotating a key",
            "the catalog's answer is incomplete",
        ));
    };
    Ok((
        StatusCode::CREATED,
        Json(Rotated {
            issued: issued(path.org, created)?,
            replaced: replaced.into(),
        }),
    ))
}

/// `POST /v1/orgs/{org}/revoked-certificates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRevocation {
    /// SHA-256 of the certificate (64 hex digits; "AB:CD:..." too).
    #[schema(value_type = crate::openapi::Fingerprint)]
    fingerprint: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    reason: String,
}

/// An organization's revoked client certificates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedCertificates {
    organization: String,
    revoked_certificates: Vec<RevokedCertificate>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedCertificate {
    fingerprint: String,
    revoked_at_ms: i64,
    revoked_by: String,
    reason: String,
}

/// An admin revokes one of an organization's client certificates: every
/// portal refuses it within about a second (40102), and the push feeds and
/// consumer instances it opened close. Answers the organization's revoked
/// certificates.
#[utoipa::path(
    post,
    path = "/v1/orgs/{org}/revoked-certificates",
    operation_id = "certificates_revoke",
    tag = "credentials",
    params(("org" = crate::openapi::Identifier, Path)),
    request_body = CertificateRevocation,
    responses(
        (status = 201, body = RevokedCertificates),
        crate::error::Failures,
    ),
)]
pub async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<CertificateRevocation>,
) -> ApiResult<(StatusCode, Json<RevokedCertificates>)> {
    caller.require_admin("revoke client certificates")?;
    let organization = state
        .catalog()
        .revoke_certificate(pb::RevokeCertificateRequest {
            actor: Some(caller.0),
            organization: org,
            fingerprint: body.fingerprint,
            reason: body.reason,
        })
        .await?;
    let revoked_certificates = organization
        .revoked_certificates
        .into_iter()
        .map(|c| RevokedCertificate {
            fingerprint: c.fingerprint,
            revoked_at_ms: c.revoked_at_ms,
            revoked_by: c.revoked_by,
            reason: c.reason,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(RevokedCertificates {
            organization: organization.name,
            revoked_certificates,
        }),
    ))
}
