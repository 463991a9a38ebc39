//! Request extractors that turn every malformed input into an [`ApiError`]
//! with a stable code instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use freeport_common::error::ErrorCode;
use freeport_common::proto::catalog::v1 as pb;
use serde::de::DeserializeOwned;

use crate::credentials::Credential;
use crate::error::ApiError;
use crate::AppState;
use freeport_common::http_server::PeerCertificate;
use std::sync::Arc;

/// A JSON body: `application/json`, or any `application/*+json` type (the
/// Kafka REST Proxy media types among them). Syntax errors are 400, a body
/// of the wrong shape (unknown field, wrong type, missing field) is 422, an
/// oversized body is 413, another content type is 415.
pub struct ApiJson<T>(pub T);

/// The essence of a request's media type, lowercased, if it has one.
pub fn media_type(parts_headers: &axum::http::HeaderMap) -> Option<String> {
    let value = parts_headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Reads the whole body, mapping the body limit to 413.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
        } else {
            ApiError::new(
                ErrorCode::MalformedBody,
                format!("cannot read request body: {rejection}"),
            )
        }
    })
}

/// A JSON body as `T`: JSON that does not parse is 400 (40001), JSON that
/// does not fit `T` is 422, read as [`crate::strict`] reads it (a struct is
/// an object, a whole number is an integer).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::MalformedBody, format!("malformed JSON: {e}")))?;
    crate::strict::from_value(value).map_err(|e| ApiError::invalid(format!("invalid request: {e}")))
}

/// A JSON media type, or 415.
fn require_json(media_type: Option<String>) -> Result<(), ApiError> {
    match media_type {
        Some(m) if is_json(&m) => Ok(()),
        Some(m) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content type {m:?} is not JSON; send application/json"),
        )),
        None => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "missing Content-Type; send application/json",
        )),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(media_type(req.headers()))?;
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: an empty one (whatever its content type says,
/// as REST Proxy clients send it) or JSON `null` is the default; anything
/// else is read as [`ApiJson`] reads it.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media_type = media_type(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        require_json(media_type)?;
        let value: Option<T> = parse_json(&bytes)?;
        Ok(OptionalJson(value.unwrap_or_default()))
    }
}

/// Query parameters; unknown or malformed ones are 422, not axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))
    }
}

/// Path parameters; a segment that is not valid (for example not UTF-8)
/// is 404, not axum's plain text.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::RouteNotFound,
                    format!("invalid path: {}", e.body_text()),
                )
            })
    }
}

/// The API key an `Authorization` value carries: `Bearer <key>`, or
/// `Basic` with the key as the password (what Schema Registry and REST
/// Proxy clients send from `basic.auth.user.info`; the user name is not
/// checked, the key says who the caller is). Scheme names ignore case.
fn api_key_in(value: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let (_user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        password.to_string()
    } else {
        return None;
    };
    (!key.is_empty()).then_some(key)
}

/// The authenticated caller: from `Authorization: Bearer <api key>` or
/// `Basic` with the key as the password ([`api_key_in`]; resolved from
/// the portal's view of the catalog), or else from the client certificate the
/// caller showed (its `urn:freeport:org:<name>` names a member of that
/// organization; the portal's `client_ca` signed it).
pub struct Caller(pub pb::Principal, pub Credential);

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.0.role == i32::from(pb::Role::Admin)
    }

    /// The caller's organization; admins act for none.
    pub fn org(&self) -> Option<&str> {
        (self.0.role == i32::from(pb::Role::Member)).then_some(self.0.organization.as_str())
    }

    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("only an admin may {what}")))
        }
    }

    pub fn require_org(&self, what: &str) -> Result<&str, ApiError> {
        self.org().ok_or_else(|| {
            ApiError::forbidden(format!(
                "only an organization's key may {what}; admin keys act for no organization"
            ))
        })
    }
}

/// The organization member a client certificate speaks for: the one its
/// `urn:freeport:org:` URI names, or else the one that registered its
/// SHA-256 fingerprint among its `trusted_cert_fingerprints`.
async fn certificate_caller(state: &AppState, der: &Arc<Vec<u8>>) -> Result<Caller, ApiError> {
    use sha2::Digest;
    let fingerprint = hex::encode(sha2::Sha256::digest(der.as_slice()));
    if state.crl().revokes(der) {
        return Err(ApiError::new(
            ErrorCode::CredentialWithdrawn,
            format!("the client certificate {fingerprint} is revoked (portal.client_crl)"),
        ));
    }
    let org = state.view().certificate_org(der, &fingerprint).await?;
    Ok(Caller(
        pb::Principal {
            role: pb::Role::Member.into(),
            key_id: format!("certificate:{org}"),
            organization: org,
            expires_at_ms: 0,
        },
        Credential::Certificate {
            fingerprint,
            der: der.clone(),
        },
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthenticated = |m: &str| ApiError::new(ErrorCode::Unauthenticated, m.to_string());
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            let certificate = parts
                .extensions
                .get::<PeerCertificate>()
                .and_then(|c| c.0.clone());
            return match certificate {
                Some(der) => certificate_caller(state, &der).await,
                None => Err(unauthenticated(
                    "missing Authorization header; send 'Authorization: Bearer <api key>' or a client certificate",
                )),
            };
        };
        let key = header
            .to_str()
            .ok()
            .and_then(api_key_in)
            .ok_or_else(|| {
                unauthenticated(
                    "Authorization must be 'Bearer <api key>' or 'Basic' with the API key as the password",
                )
            })?;
        let principal = state.view().authenticate(&key).await?;
        let credential = Credential::Key(principal.key_id.clone());
        Ok(Caller(principal, credential))
    }
}

#[cfg(test)]
mod tests {
    use super::api_key_in;

    #[test]
    fn the_key_comes_as_a_bearer_token_or_a_basic_password() {
        use base64::Engine;
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        for (value, key) in [
            ("Bearer fpk_1", Some("fpk_1")),
            ("bearer  fpk_1 ", Some("fpk_1")),
            (basic("acme:fpk_2").as_str(), Some("fpk_2")),
            (basic(":fpk_3").as_str(), Some("fpk_3")),
            (
                basic("acme:fpk:with:colons").as_str(),
                Some("fpk:with:colons"),
            ),
            (basic("acme:").as_str(), None),
            (basic("no colon").as_str(), None),
            ("Basic %%%", None),
            ("Bearer ", None),
            ("Digest x", None),
            ("fpk_1", None),
        ] {
            assert_eq!(api_key_in(value).as_deref(), key, "{value}");
        }
    }
}
