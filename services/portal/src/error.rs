//! REST errors: the Kafka REST Proxy body shape, with Freeport's stable codes.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use freeport_common::error::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Itemized problems (for example of a refused AsyncAPI document),
    /// shown as `problems` beside the message.
    pub problems: Option<Vec<Problem>>,
    /// When to try again (429): sent as `Retry-After`, in whole seconds.
    pub retry_after: Option<std::time::Duration>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Every refusal and failure: a stable `error_code` (its first three digits
/// are the HTTP status) and a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error_code: u32,
    pub message: String,
    /// Itemized problems, for example of a refused AsyncAPI document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<Problem>>,
}

/// One problem of a refused document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// JSON pointer into the document.
    pub pointer: String,
    pub message: String,
}

/// The answers every operation may give besides its own: a refusal of the
/// caller's request, or a failure on the portal's side (or a service's it
/// depends on).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only the document's: answers are built from `ApiError`
pub enum Failures {
    #[response(status = "4XX", description = "refused: error_code says why")]
    Refused(ErrorBody),
    #[response(
        status = "5XX",
        description = "failed on our side or a dependency's; try again"
    )]
    Failed(ErrorBody),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            problems: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidField, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// A failure on our side: logged in full, shown as a code.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::new(ErrorCode::Internal, format!("internal error: {context}"))
    }

    pub fn kafka(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %err, "{context}");
        ApiError::new(ErrorCode::KafkaError, format!("{context}: {err}"))
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> ApiError {
        let code = ErrorCode::from_status(&status);
        match code {
            ErrorCode::Internal => ApiError::internal("catalog request failed", status.message()),
            ErrorCode::Unavailable => {
                tracing::warn!(message = %status.message(), "catalog unavailable");
                ApiError::new(code, "the catalog is unavailable; try again")
            }
            _ => ApiError::new(code, status.message()),
        }
    }
}

impl From<freeport_common::ownership::Refusal> for ApiError {
    fn from(refusal: freeport_common::ownership::Refusal) -> ApiError {
        ApiError::new(refusal.code(), refusal.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error_code: self.code.code(),
            message: self.message,
            problems: self.problems,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(seconds.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"freeport\""),
            );
        }
        response
    }
}
