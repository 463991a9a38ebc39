//! What callers hand the catalog to create things, and what it reports
//! beyond the stored entities. Checked by the service, never stored as is.

use freeport_common::names::{ClusterName, StreamName, TopicName};

use super::{
    Classification, ClusterDestination, Compatibility, Contact, ContractTerms, Delivery,
    SchemaFormat,
};

/// What an owner registers.
#[derive(Debug, Clone)]
pub struct NewStream {
    pub name: StreamName,
    pub cluster: ClusterName,
    pub topic: TopicName,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub value_schema: serde_json::Value,
    pub classification: Classification,
    pub personal_data_fields: Vec<String>,
    pub partitions: u32,
    pub retention_ms: Option<i64>,
    pub schema_format: SchemaFormat,
    pub compatibility: Compatibility,
}

/// Who an organization is, beyond its name.
#[derive(Debug, Clone, Default)]
pub struct OrgDetails {
    pub display_name: String,
    pub contacts: Vec<Contact>,
    pub trusted_cert_fingerprints: Vec<String>,
}

/// What a partner asks for.
#[derive(Debug, Clone)]
pub struct NewContract {
    pub stream: StreamName,
    pub purpose: String,
    pub delivery: Delivery,
    /// Required for `kafka`, refused for `push`.
    pub destination: Option<ClusterDestination>,
    pub terms: ContractTerms,
}

/// What [`crate::Catalog::ownership_problems`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipReport {
    /// (entity, problem): `stream:<name>` or `contract:<id>`, and why.
    pub problems: Vec<(String, String)>,
    /// How many streams and contracts were checked.
    pub streams: usize,
    pub contracts: usize,
}

/// How the link reports on a contract it mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    Running,
    Stopped,
    Error,
    /// Running, but making no progress with records waiting.
    Stalled,
}

/// What an issuer says about a new key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    /// Milliseconds since the epoch; in the future.
    pub expires_at_ms: Option<i64>,
}
