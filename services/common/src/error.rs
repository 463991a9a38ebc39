//! Stable error codes shared by every Freeport API.
//!
//! REST answers use the Kafka REST Proxy body shape
//! `{"error_code": 40401, "message": "..."}` so existing REST Proxy clients
//! understand them; gRPC answers carry the same code in the
//! `freeport-error-code` metadata entry, so the portal can pass a catalog
//! refusal through unchanged.

use tonic::{Code, Status};

/// gRPC metadata key carrying the numeric [`ErrorCode`].
/// The longest message a status carries, in characters.
pub const MAX_STATUS_MESSAGE: usize = 2000;

pub const ERROR_CODE_METADATA: &str = "freeport-error-code";

/// Every error a caller can be shown. The numbers are public API: never
/// reuse or renumber one. The first three digits are the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not well-formed (JSON or YAML syntax).
    MalformedBody,
    /// No credentials, or credentials that are not valid.
    Unauthenticated,
    /// Credentials that were valid: a revoked or expired key, a revoked
    /// client certificate.
    CredentialWithdrawn,
    /// Valid credentials that do not allow this action.
    Forbidden,
    /// Reading a stream's records needs an active contract for it.
    NoActiveContract,
    /// The cluster belongs to another organization: streams live on their
    /// owner's clusters, and a contract delivers into the consumer's own.
    NotClusterOwner,
    /// Topics under `freeport.` belong to the hub.
    ReservedTopic,
    /// No such route.
    RouteNotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// Kafka REST Proxy's "topic not found".
    TopicNotFound,
    /// Kafka REST Proxy's "partition not found".
    PartitionNotFound,
    StreamNotFound,
    ContractNotFound,
    ClusterNotFound,
    OrganizationNotFound,
    KeyNotFound,
    /// A stream has no schema version of that number.
    SchemaVersionNotFound,
    /// The entity exists already.
    AlreadyExists,
    /// The contract is not in a state that allows this action.
    IllegalTransition,
    /// Another live contract already mirrors into the same destination topic.
    DestinationInUse,
    /// A schema version that breaks the stream's compatibility mode.
    IncompatibleSchema,
    /// A schema version another live version refers to (a schema
    /// reference): it cannot be deleted while that one lives.
    SchemaReferenced,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// The request's `Accept` admits none of the media types the route
    /// answers in.
    NotAcceptable,
    /// Well-formed input with a field that is missing, unknown or invalid.
    InvalidField,
    /// A Kafka REST Proxy request that does not fit the embedded format.
    InvalidRecords,
    /// A document (AsyncAPI) with problems, each listed with its JSON pointer.
    InvalidDocument,
    /// A rate limit is spent; the answer says when to try again.
    TooManyRequests,
    /// The request took longer than the portal's request timeout.
    Timeout,
    /// Our fault: logged with context on the server side.
    Internal,
    /// The Kafka cluster refused or failed the operation.
    KafkaError,
    /// A service this one depends on (the catalog, a cluster) is unreachable.
    Unavailable,
    /// This hub does not offer what was asked: the feature is not
    /// configured (AsyncAPI publishing without its schema, say). Trying
    /// again does not help; the operator's configuration does.
    NotConfigured,

    // Kafka REST Proxy v2 consumer errors, with Confluent's numbers (see
    // [`ErrorCode::REST_PROXY`]).
    /// No such consumer instance (or not the caller's).
    ConsumerNotFound,
    /// The records' format in `Accept` is not the instance's.
    ConsumerFormatMismatch,
    /// Subscribing while assigned, or assigning while subscribed.
    ConsumerAlreadySubscribed,
    /// An instance of that name exists in the group already.
    ConsumerAlreadyExists,
    /// The instance cannot do that in its state (for example seek a
    /// partition it does not hold).
    ConsumerIllegalState,
    /// A consumer setting that is unknown or invalid.
    InvalidConsumerConfig,

    // Kafka REST Proxy produce refusals about schemas, with Confluent's
    // numbers (in [`ErrorCode::REST_PROXY`]).
    /// Keys in a schema-registry embedded format without `key_schema` or
    /// `key_schema_id`.
    KeySchemaMissing,
    /// Values in a schema-registry embedded format without `value_schema`
    /// or `value_schema_id`.
    ValueSchemaMissing,
    /// A record that does not fit its stream's schema (Confluent's "JSON to
    /// Avro conversion failed"): the message names the record and the field.
    RecordSchemaMismatch,
    /// A `value_schema` that is not a schema, or a schema id that is not the
    /// stream's.
    InvalidSchema,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 34] = [
        ErrorCode::MalformedBody,
        ErrorCode::Unauthenticated,
        ErrorCode::CredentialWithdrawn,
        ErrorCode::KeyNotFound,
        ErrorCode::Forbidden,
        ErrorCode::NoActiveContract,
        ErrorCode::NotClusterOwner,
        ErrorCode::ReservedTopic,
        ErrorCode::RouteNotFound,
        ErrorCode::TopicNotFound,
        ErrorCode::PartitionNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::StreamNotFound,
        ErrorCode::ContractNotFound,
        ErrorCode::ClusterNotFound,
        ErrorCode::OrganizationNotFound,
        ErrorCode::SchemaVersionNotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::IllegalTransition,
        ErrorCode::DestinationInUse,
        ErrorCode::IncompatibleSchema,
        ErrorCode::SchemaReferenced,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::NotAcceptable,
        ErrorCode::InvalidField,
        ErrorCode::InvalidRecords,
        ErrorCode::InvalidDocument,
        ErrorCode::TooManyRequests,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::KafkaError,
        ErrorCode::Unavailable,
        ErrorCode::NotConfigured,
    ];

    /// The REST Proxy consumer errors and its produce refusals about
    /// schemas. They carry Confluent's numbers so its clients understand
    /// them; several of those (40901-40903, 42201-42203) mean something else
    /// on Freeport's own `/v1` routes. They only ever come from the portal's
    /// REST Proxy routes (`/consumers`, `/topics`, `/v3`) and never travel
    /// over gRPC, so [`ErrorCode::from_code`] does not return them.
    pub const REST_PROXY: [ErrorCode; 10] = [
        ErrorCode::ConsumerNotFound,
        ErrorCode::ConsumerFormatMismatch,
        ErrorCode::ConsumerAlreadySubscribed,
        ErrorCode::ConsumerAlreadyExists,
        ErrorCode::ConsumerIllegalState,
        ErrorCode::InvalidConsumerConfig,
        ErrorCode::KeySchemaMissing,
        ErrorCode::ValueSchemaMissing,
        ErrorCode::RecordSchemaMismatch,
        ErrorCode::InvalidSchema,
    ];

    /// The number shown to callers as `error_code`.
    pub const fn code(self) -> u32 {
        match self {
            ErrorCode::MalformedBody => 40001,
            ErrorCode::Unauthenticated => 40101,
            ErrorCode::CredentialWithdrawn => 40102,
            ErrorCode::Forbidden => 40301,
            ErrorCode::NoActiveContract => 40302,
            ErrorCode::NotClusterOwner => 40303,
            ErrorCode::ReservedTopic => 40304,
            ErrorCode::RouteNotFound => 40400,
            ErrorCode::TopicNotFound => 40401,
            ErrorCode::PartitionNotFound => 40402,
            ErrorCode::StreamNotFound => 40410,
            ErrorCode::ContractNotFound => 40411,
            ErrorCode::ClusterNotFound => 40412,
            ErrorCode::OrganizationNotFound => 40413,
            ErrorCode::KeyNotFound => 40414,
            ErrorCode::SchemaVersionNotFound => 40415,
            ErrorCode::MethodNotAllowed => 40501,
            ErrorCode::AlreadyExists => 40901,
            ErrorCode::IllegalTransition => 40902,
            ErrorCode::DestinationInUse => 40903,
            ErrorCode::IncompatibleSchema => 40904,
            ErrorCode::SchemaReferenced => 40905,
            ErrorCode::PayloadTooLarge => 41301,
            ErrorCode::UnsupportedMediaType => 41501,
            ErrorCode::NotAcceptable => 40600,
            ErrorCode::InvalidField => 42201,
            ErrorCode::InvalidRecords => 42202,
            ErrorCode::InvalidDocument => 42203,
            ErrorCode::TooManyRequests => 42901,
            ErrorCode::Timeout => 50401,
            ErrorCode::Internal => 50001,
            ErrorCode::KafkaError => 50002,
            ErrorCode::Unavailable => 50301,
            ErrorCode::NotConfigured => 50101,
            ErrorCode::ConsumerNotFound => 40403,
            ErrorCode::ConsumerFormatMismatch => 40601,
            ErrorCode::ConsumerAlreadySubscribed => 40901,
            ErrorCode::ConsumerAlreadyExists => 40902,
            ErrorCode::ConsumerIllegalState => 40903,
            ErrorCode::InvalidConsumerConfig => 42204,
            ErrorCode::KeySchemaMissing => 42201,
            ErrorCode::ValueSchemaMissing => 42202,
            ErrorCode::RecordSchemaMismatch => 42203,
            ErrorCode::InvalidSchema => 42205,
        }
    }

    pub fn from_code(code: u32) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The HTTP status: the first three digits of the code.
    pub const fn http_status(self) -> u16 {
        (self.code() / 100) as u16
    }

    pub const fn grpc_code(self) -> Code {
        match self {
            ErrorCode::MalformedBody
            | ErrorCode::InvalidField
            | ErrorCode::InvalidRecords
            | ErrorCode::InvalidDocument
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::NotAcceptable
            | ErrorCode::InvalidConsumerConfig
            | ErrorCode::KeySchemaMissing
            | ErrorCode::ValueSchemaMissing
            | ErrorCode::RecordSchemaMismatch
            | ErrorCode::InvalidSchema => Code::InvalidArgument,
            ErrorCode::Unauthenticated | ErrorCode::CredentialWithdrawn => Code::Unauthenticated,
            ErrorCode::Forbidden
            | ErrorCode::NoActiveContract
            | ErrorCode::NotClusterOwner
            | ErrorCode::ReservedTopic => Code::PermissionDenied,
            ErrorCode::RouteNotFound
            | ErrorCode::TopicNotFound
            | ErrorCode::PartitionNotFound
            | ErrorCode::StreamNotFound
            | ErrorCode::ContractNotFound
            | ErrorCode::ClusterNotFound
            | ErrorCode::OrganizationNotFound
            | ErrorCode::KeyNotFound
            | ErrorCode::SchemaVersionNotFound
            | ErrorCode::ConsumerNotFound => Code::NotFound,
            ErrorCode::AlreadyExists
            | ErrorCode::DestinationInUse
            | ErrorCode::ConsumerAlreadyExists => Code::AlreadyExists,
            ErrorCode::IllegalTransition
            | ErrorCode::IncompatibleSchema
            | ErrorCode::SchemaReferenced
            | ErrorCode::ConsumerAlreadySubscribed
            | ErrorCode::ConsumerIllegalState
            | ErrorCode::ConsumerFormatMismatch => Code::FailedPrecondition,
            ErrorCode::PayloadTooLarge | ErrorCode::TooManyRequests => Code::ResourceExhausted,
            ErrorCode::Timeout => Code::DeadlineExceeded,
            ErrorCode::MethodNotAllowed => Code::Unimplemented,
            ErrorCode::Internal | ErrorCode::KafkaError => Code::Internal,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::NotConfigured => Code::FailedPrecondition,
        }
    }

    /// A gRPC status carrying this code in its metadata. The message is
    /// cut to [`MAX_STATUS_MESSAGE`] characters: it travels as an HTTP/2
    /// header, and one over the peer's header limit resets the connection
    /// (every call on it, Watch included) instead of reporting the error.
    pub fn to_status(self, message: impl Into<String>) -> Status {
        let mut message: String = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_STATUS_MESSAGE) {
            let dropped = message.len() - cut;
            message.truncate(cut);
            message.push_str(&format!("... ({dropped} more bytes)"));
        }
        let mut status = Status::new(self.grpc_code(), message);
        if let Ok(value) = self.code().to_string().parse() {
            status.metadata_mut().insert(ERROR_CODE_METADATA, value);
        }
        status
    }

    /// Recovers the code a Freeport service put on a status; statuses from
    /// the transport itself (connection refused, deadline) map by gRPC code.
    pub fn from_status(status: &Status) -> ErrorCode {
        let carried = status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .and_then(ErrorCode::from_code);
        carried.unwrap_or(match status.code() {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidField,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::PermissionDenied => ErrorCode::Forbidden,
            Code::NotFound => ErrorCode::RouteNotFound,
            Code::AlreadyExists => ErrorCode::AlreadyExists,
            Code::FailedPrecondition => ErrorCode::IllegalTransition,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "duplicate code {}", code.code());
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
            assert!((400..600).contains(&code.http_status()));
        }
        for code in ErrorCode::REST_PROXY {
            assert!(!ErrorCode::ALL.contains(&code));
            assert!((400..500).contains(&code.http_status()));
        }
    }

    #[test]
    fn code_survives_a_grpc_status() {
        for code in ErrorCode::ALL {
            let status = code.to_status("boom");
            assert_eq!(ErrorCode::from_status(&status), code);
        }
    }

    #[test]
    fn long_messages_are_cut_to_fit_a_header() {
        let status = ErrorCode::InvalidField.to_status("é".repeat(10_000));
        assert!(status.message().chars().count() < MAX_STATUS_MESSAGE + 40);
        assert!(status.message().ends_with("(16000 more bytes)"));
        let short = ErrorCode::InvalidField.to_status("short");
        assert_eq!(short.message(), "short");
    }

    #[test]
    fn transport_failures_read_as_unavailable() {
        let status = Status::unavailable("connection refused");
        assert_eq!(ErrorCode::from_status(&status), ErrorCode::Unavailable);
    }
}
