use freeport_common::error::ErrorCode;
use freeport_common::names::NameError;

use crate::domain::{ContractAction, ContractState};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    InvalidField(String),
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error("unknown or missing credentials")]
    Unauthenticated,
    /// A key that exists but was revoked or has expired.
    #[error("{0}")]
    CredentialWithdrawn(String),
    #[error("organization {org:?} has no API key {key_id:?}")]
    KeyNotFound { org: String, key_id: String },
    /// The entity is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("stream {0:?} not found")]
    StreamNotFound(String),
    #[error("contract {0:?} not found")]
    ContractNotFound(String),
    #[error("stream {stream} has no schema version {version}")]
    SchemaVersionNotFound { stream: String, version: u32 },
    #[error("stream {stream} has no schema with id {id}")]
    SchemaIdNotFound { stream: String, id: u32 },
    #[error("organization {0:?} not found")]
    OrganizationNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("cannot {} contract {id}: it is {}", action.as_str(), state.as_str())]
    IllegalTransition {
        id: String,
        state: ContractState,
        action: ContractAction,
    },
    #[error("destination topic {topic:?} on cluster {cluster:?} is already used by {used_by}")]
    DestinationInUse {
        cluster: String,
        topic: String,
        used_by: String,
    },
    #[error("schema version for stream {stream} is not {mode} compatible: {}", .problems.join("; "))]
    IncompatibleSchema {
        stream: String,
        mode: &'static str,
        problems: Vec<String>,
    },
    /// A schema version a live version refers to.
    #[error("{0}")]
    SchemaReferenced(String),
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Ownership(#[from] freeport_common::ownership::Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CatalogError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CatalogError::InvalidField(_) | CatalogError::InvalidName(_) => ErrorCode::InvalidField,
            CatalogError::Unauthenticated => ErrorCode::Unauthenticated,
            CatalogError::CredentialWithdrawn(_) => ErrorCode::CredentialWithdrawn,
            CatalogError::KeyNotFound { .. } => ErrorCode::KeyNotFound,
            CatalogError::Conflict(_) => ErrorCode::IllegalTransition,
            CatalogError::Forbidden(_) => ErrorCode::Forbidden,
            CatalogError::StreamNotFound(_) => ErrorCode::StreamNotFound,
            CatalogError::ContractNotFound(_) => ErrorCode::ContractNotFound,
            CatalogError::OrganizationNotFound(_) => ErrorCode::OrganizationNotFound,
            CatalogError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            CatalogError::IllegalTransition { .. } => ErrorCode::IllegalTransition,
            CatalogError::DestinationInUse { .. } => ErrorCode::DestinationInUse,
            CatalogError::IncompatibleSchema { .. } => ErrorCode::IncompatibleSchema,
            CatalogError::SchemaVersionNotFound { .. } | CatalogError::SchemaIdNotFound { .. } => {
                ErrorCode::SchemaVersionNotFound
            }
            CatalogError::SchemaReferenced(_) => ErrorCode::SchemaReferenced,
            CatalogError::NotConfigured(_) => ErrorCode::NotConfigured,
            CatalogError::Ownership(refusal) => refusal.code(),
            CatalogError::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<CatalogError> for tonic::Status {
    fn from(err: CatalogError) -> tonic::Status {
        let code = err.code();
        if code == ErrorCode::Internal {
            // Our failure: log the detail here, show the caller a code.
            tracing::error!(error = %err, "catalog request failed");
            return code.to_status("internal catalog error");
        }
        code.to_status(err.to_string())
    }
}
