//! The catalog's domain: pure types and rules, no I/O.

mod contract;
mod requests;

use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};
use serde::{Deserialize, Serialize};

pub use contract::Contract;
pub use freeport_common::contract::{
    next_state, ContractAction, ContractState, ContractTerms, Delivery, FilterOp, RowCondition,
    TermsError, Transition,
};
pub use freeport_common::json::check_field;
pub use freeport_common::schema::{Compatibility, RecordPart, SchemaFormat, SchemaVersion};
pub use requests::{LinkStatus, NewContract, NewKey, NewStream, OrgDetails, OwnershipReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// A business unit of the organization that runs the hub.
    Internal,
    /// An outside organization.
    Partner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub name: OrgName,
    pub kind: OrgKind,
    pub display_name: String,
    pub created_at_ms: i64,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// SHA-256 fingerprints (lowercase hex) of client certificates that
    /// identify this organization.
    #[serde(default)]
    pub trusted_cert_fingerprints: Vec<String>,
    /// Client certificates of this organization's that no longer identify
    /// anyone, by fingerprint.
    #[serde(default)]
    pub revoked_certificates: Vec<RevokedCertificate>,
}

/// A client certificate withdrawn by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertificate {
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint: String,
    #[serde(flatten)]
    pub withdrawal: Withdrawal,
}

/// Who may discover a stream besides its owner, the hub's admins and the
/// holders of a live contract on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Every organization.
    Public,
    /// Every organization, partners included; data flows under contract.
    Partner,
    /// Internal business units only. The default: nothing leaves by accident.
    #[default]
    Internal,
    /// Nobody else.
    Restricted,
}

impl Classification {
    pub fn parse(text: &str) -> Option<Classification> {
        Some(match text {
            "public" => Classification::Public,
            "partner" => Classification::Partner,
            "internal" => Classification::Internal,
            "restricted" => Classification::Restricted,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Partner => "partner",
            Classification::Internal => "internal",
            Classification::Restricted => "restricted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Hub administrator: approves contracts, manages organizations.
    Admin,
    /// Acts for one organization.
    Member,
}

/// Who is acting: resolved from a credential, never taken from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin { key_id: String },
    Member { org: OrgName, key_id: String },
}

impl Principal {
    pub fn org(&self) -> Option<&OrgName> {
        match self {
            Principal::Admin { .. } => None,
            Principal::Member { org, .. } => Some(org),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    /// How this principal appears in a contract's history.
    pub fn audit_name(&self) -> String {
        match self {
            Principal::Admin { key_id } => format!("admin:{key_id}"),
            Principal::Member { org, .. } => format!("org:{org}"),
        }
    }
}

/// A credential as stored: only the SHA-256 of the key, never the key.
/// Records written before keys had names, expiry and revocation read with
/// those empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub key_sha256: String,
    pub role: Role,
    pub org: Option<OrgName>,
    pub created_at_ms: i64,
    /// What its holder calls it ("ci", "billing export").
    #[serde(default)]
    pub name: String,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// When it was withdrawn, by whom and why.
    #[serde(default)]
    pub revoked: Option<Withdrawal>,
    /// The last time it authenticated a call (kept to within a minute).
    #[serde(default)]
    pub last_used_ms: Option<i64>,
    /// The key this one replaced by rotation.
    #[serde(default)]
    pub replaces: Option<String>,
}

/// A credential's withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub at_ms: i64,
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// Whether a key works now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

impl ApiKeyRecord {
    pub fn state(&self, now_ms: i64) -> KeyState {
        if self.revoked.is_some() {
            KeyState::Revoked
        } else if self.expires_at_ms.is_some_and(|end| end <= now_ms) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

/// A Kafka topic on a named cluster, offered in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub name: StreamName,
    pub owner: OrgName,
    pub cluster: ClusterName,
    pub topic: TopicName,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// JSON Schema of the record value.
    pub value_schema: serde_json::Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default)]
    pub classification: Classification,
    /// JSON pointers to the value's fields that hold personal data.
    #[serde(default)]
    pub personal_data_fields: Vec<String>,
    /// The topic's partition count when it was registered.
    #[serde(default)]
    pub partitions: u32,
    #[serde(default)]
    pub retention_ms: Option<i64>,
    #[serde(default)]
    pub schema_format: SchemaFormat,
    #[serde(default)]
    pub compatibility: Compatibility,
    /// Every registered version of the value schema, oldest first; the last
    /// one is `value_schema`.
    #[serde(default)]
    pub schema_versions: Vec<SchemaVersion>,
    /// The owner turned off the portal's check of produced records against
    /// the schema.
    #[serde(default)]
    pub validation_off: bool,
    /// The record key's schema: no versions until the owner registers one.
    #[serde(default)]
    pub key_schema: KeySchema,
    /// The global ids of versions deleted for good, with what they were:
    /// an id is never given to another schema, and the same schema
    /// registered again gets its id back, across restarts too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_schemas: Vec<RetiredSchema>,
}

/// A schema version's global id after the version was deleted for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredSchema {
    pub id: u32,
    /// SHA-256 of the format and the canonical schema (the id's key).
    pub fingerprint: String,
}

/// The versions of a stream's key schema (the `<topic>-key` subject), with
/// the format its first version set and the mode later ones are checked
/// under.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySchema {
    pub format: SchemaFormat,
    pub compatibility: Compatibility,
    /// Oldest first.
    pub versions: Vec<SchemaVersion>,
}

impl Stream {
    /// `part`'s schema versions, oldest first.
    pub fn versions(&self, part: RecordPart) -> &[SchemaVersion] {
        match part {
            RecordPart::Value => &self.schema_versions,
            RecordPart::Key => &self.key_schema.versions,
        }
    }

    /// `part`'s versions, to change them.
    pub fn versions_mut(&mut self, part: RecordPart) -> &mut Vec<SchemaVersion> {
        match part {
            RecordPart::Value => &mut self.schema_versions,
            RecordPart::Key => &mut self.key_schema.versions,
        }
    }

    /// `part`'s latest version that is not soft-deleted.
    pub fn latest_live(&self, part: RecordPart) -> Option<&SchemaVersion> {
        self.versions(part).iter().rev().find(|v| !v.deleted)
    }

    /// `part`'s versions that are not soft-deleted, oldest first.
    pub fn live_versions(&self, part: RecordPart) -> Vec<SchemaVersion> {
        self.versions(part)
            .iter()
            .filter(|v| !v.deleted)
            .cloned()
            .collect()
    }

    /// The format `part`'s versions are in; `None` for a key without
    /// versions, which takes any.
    pub fn format_of(&self, part: RecordPart) -> Option<SchemaFormat> {
        match part {
            RecordPart::Value => Some(self.schema_format),
            RecordPart::Key => {
                (!self.key_schema.versions.is_empty()).then_some(self.key_schema.format)
            }
        }
    }

    /// The mode `part`'s next version is checked under.
    pub fn compatibility_of(&self, part: RecordPart) -> Compatibility {
        match part {
            RecordPart::Value => self.compatibility,
            RecordPart::Key => self.key_schema.compatibility,
        }
    }

    /// Every schema version the stream has, value and key.
    pub fn all_versions(&self) -> impl Iterator<Item = &SchemaVersion> {
        self.schema_versions.iter().chain(&self.key_schema.versions)
    }
}

/// Where a contract's records go: a topic on a cluster the hub knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDestination {
    pub cluster: ClusterName,
    pub topic: TopicName,
}

/// An AsyncAPI document as its owner published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncApiDocument {
    /// `<owner>:<document id or info.title>`; publishing again replaces it.
    pub id: String,
    pub owner: OrgName,
    pub title: String,
    pub version: String,
    /// The document exactly as published (YAML or JSON).
    pub text: String,
    pub streams: Vec<StreamName>,
    pub published_at_ms: i64,
    pub published_by: String,
}

/// One committed change, as kept in the change log and sent on Watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    Organization(Organization),
    Stream(Stream),
    Contract(Contract),
    Document(AsyncApiDocument),
    /// A key issued, rotated or revoked; stored under its hash.
    ApiKey(ApiKeyRecord),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub revision: u64,
    pub change: Change,
}
