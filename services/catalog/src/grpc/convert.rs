//! Between wire and domain types, in both directions: every conversion the
//! catalog's gRPC API makes, and nothing else.

use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};
use freeport_common::proto::catalog::v1 as pb;

use crate::domain::{
    ApiKeyRecord, AsyncApiDocument, Change, Classification, ClusterDestination, Compatibility,
    Contract, ContractTerms, Event, OrgKind, Organization, Principal, RecordPart, Role,
    SchemaFormat, SchemaVersion, Stream,
};
use crate::domain::{Delivery, NewKey, NewStream, OwnershipReport};
use crate::error::CatalogError;

// ---- wire -> domain ----

pub(super) fn actor(principal: Option<pb::Principal>) -> Result<Principal, CatalogError> {
    let p = principal.ok_or(CatalogError::Unauthenticated)?;
    match pb::Role::try_from(p.role) {
        Ok(pb::Role::Admin) => Ok(Principal::Admin { key_id: p.key_id }),
        Ok(pb::Role::Member) => Ok(Principal::Member {
            org: OrgName::parse(p.organization)?,
            key_id: p.key_id,
        }),
        _ => Err(CatalogError::Unauthenticated),
    }
}

/// A request's destination, when it names one.
pub(super) fn destination(
    d: Option<pb::ClusterDestination>,
) -> Result<Option<ClusterDestination>, CatalogError> {
    d.map(|d| {
        Ok(ClusterDestination {
            cluster: ClusterName::parse(d.cluster)?,
            topic: TopicName::parse(d.topic)?,
        })
    })
    .transpose()
}

pub(super) fn delivery_from_pb(value: i32) -> Result<Delivery, CatalogError> {
    Delivery::from_pb(value)
        .ok_or_else(|| CatalogError::InvalidField("delivery: kafka or push".into()))
}

/// Terms from the wire; absent terms are none.
pub(super) fn terms_from_pb(t: Option<pb::ContractTerms>) -> Result<ContractTerms, CatalogError> {
    ContractTerms::from_pb(t.as_ref()).map_err(CatalogError::InvalidField)
}

pub(super) fn format_from_pb(value: i32) -> Result<Option<SchemaFormat>, CatalogError> {
    match pb::SchemaFormat::try_from(value) {
        Ok(pb::SchemaFormat::Unspecified) => Ok(None),
        Ok(pb::SchemaFormat::JsonSchema) => Ok(Some(SchemaFormat::JsonSchema)),
        Ok(pb::SchemaFormat::Avro) => Ok(Some(SchemaFormat::Avro)),
        Ok(pb::SchemaFormat::Protobuf) => Ok(Some(SchemaFormat::Protobuf)),
        Err(_) => Err(CatalogError::InvalidField("unknown schema format".into())),
    }
}

pub(super) fn part_from_pb(value: i32) -> Result<RecordPart, CatalogError> {
    match pb::RecordPart::try_from(value) {
        Ok(pb::RecordPart::Value) => Ok(RecordPart::Value),
        Ok(pb::RecordPart::Key) => Ok(RecordPart::Key),
        Err(_) => Err(CatalogError::InvalidField("unknown record part".into())),
    }
}

pub(super) fn format_pb(format: SchemaFormat) -> pb::SchemaFormat {
    match format {
        SchemaFormat::JsonSchema => pb::SchemaFormat::JsonSchema,
        SchemaFormat::Avro => pb::SchemaFormat::Avro,
        SchemaFormat::Protobuf => pb::SchemaFormat::Protobuf,
    }
}

/// The wire's names are the catalog's with a `COMPATIBILITY_` prefix.
pub(super) fn compatibility_from_pb(value: i32) -> Result<Option<Compatibility>, CatalogError> {
    let unknown = || CatalogError::InvalidField("unknown compatibility mode".into());
    match pb::Compatibility::try_from(value) {
        Ok(pb::Compatibility::Unspecified) => Ok(None),
        Ok(mode) => mode
            .as_str_name()
            .strip_prefix("COMPATIBILITY_")
            .and_then(Compatibility::parse)
            .map(Some)
            .ok_or_else(unknown),
        Err(_) => Err(unknown()),
    }
}

pub(super) fn compatibility_pb(mode: Compatibility) -> pb::Compatibility {
    pb::Compatibility::from_str_name(&format!("COMPATIBILITY_{}", mode.as_str()))
        .unwrap_or(pb::Compatibility::Unspecified)
}

pub(super) fn schema_version_pb(v: SchemaVersion) -> pb::SchemaVersion {
    pb::SchemaVersion {
        version: v.version,
        id: v.id,
        format: format_pb(v.format).into(),
        schema_json: v.schema.to_string(),
        registered_at_ms: v.registered_at_ms,
        registered_by: v.registered_by,
        deleted: v.deleted,
        references: v.references.into_iter().map(Into::into).collect(),
        dependencies: v
            .dependencies
            .into_iter()
            .map(|d| pb::SchemaDependency {
                reference: Some(d.reference.into()),
                schema_json: d.schema.to_string(),
            })
            .collect(),
    }
}

/// A request's schema references, checked for a known part.
pub(super) fn references_from_pb(
    references: Vec<pb::SchemaReference>,
) -> Result<Vec<freeport_common::schema::Reference>, CatalogError> {
    references
        .into_iter()
        .map(|r| {
            part_from_pb(r.part)?;
            Ok(r.into())
        })
        .collect()
}

/// A stream named in a request: a name that cannot be valid names no stream.
pub(super) fn existing_stream_name(text: &str) -> Result<StreamName, CatalogError> {
    StreamName::parse(text)
        .map_err(|_| CatalogError::StreamNotFound(text.chars().take(80).collect()))
}

pub(super) fn new_stream(s: Option<pb::Stream>) -> Result<NewStream, CatalogError> {
    let s = s.ok_or_else(|| CatalogError::InvalidField("stream is required".into()))?;
    let value_schema = if s.value_schema_json.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&s.value_schema_json)
            .map_err(|e| CatalogError::InvalidField(format!("schema is not valid JSON: {e}")))?
    };
    let classification = match pb::Classification::try_from(s.classification) {
        Ok(pb::Classification::Unspecified) => Classification::default(),
        Ok(pb::Classification::Public) => Classification::Public,
        Ok(pb::Classification::Partner) => Classification::Partner,
        Ok(pb::Classification::Internal) => Classification::Internal,
        Ok(pb::Classification::Restricted) => Classification::Restricted,
        Err(_) => return Err(CatalogError::InvalidField("unknown classification".into())),
    };
    Ok(NewStream {
        schema_format: format_from_pb(s.schema_format)?.unwrap_or_default(),
        compatibility: compatibility_from_pb(s.compatibility)?.unwrap_or_default(),
        classification,
        personal_data_fields: s.personal_data_fields,
        partitions: s.partitions,
        retention_ms: (s.retention_ms != 0).then_some(s.retention_ms),
        name: StreamName::parse(s.name)?,
        cluster: ClusterName::parse(s.cluster)?,
        topic: TopicName::parse(s.topic)?,
        title: s.title,
        description: s.description,
        tags: s.tags,
        value_schema,
    })
}

// ---- domain -> wire ----

pub(super) fn org_kind(kind: OrgKind) -> pb::OrganizationKind {
    match kind {
        OrgKind::Internal => pb::OrganizationKind::Internal,
        OrgKind::Partner => pb::OrganizationKind::Partner,
    }
}

pub(super) fn organization_pb(o: Organization) -> pb::Organization {
    pb::Organization {
        name: o.name.to_string(),
        kind: org_kind(o.kind).into(),
        display_name: o.display_name,
        created_at_ms: o.created_at_ms,
        contacts: o
            .contacts
            .into_iter()
            .map(|c| pb::Contact {
                name: c.name,
                email: c.email,
            })
            .collect(),
        trusted_cert_fingerprints: o.trusted_cert_fingerprints,
        revoked_certificates: o
            .revoked_certificates
            .into_iter()
            .map(|c| pb::RevokedCertificate {
                fingerprint: c.fingerprint,
                revoked_at_ms: c.withdrawal.at_ms,
                revoked_by: c.withdrawal.by,
                reason: c.withdrawal.reason,
            })
            .collect(),
    }
}

pub(super) fn principal_pb(p: Principal) -> pb::Principal {
    match p {
        Principal::Admin { key_id } => pb::Principal {
            role: pb::Role::Admin.into(),
            organization: String::new(),
            key_id,
            expires_at_ms: 0,
        },
        Principal::Member { org, key_id } => pb::Principal {
            role: pb::Role::Member.into(),
            organization: org.to_string(),
            key_id,
            expires_at_ms: 0,
        },
    }
}

pub fn stream_pb(s: Stream) -> pb::Stream {
    pb::Stream {
        name: s.name.to_string(),
        owner: s.owner.to_string(),
        cluster: s.cluster.to_string(),
        topic: s.topic.to_string(),
        title: s.title,
        description: s.description,
        tags: s.tags,
        value_schema_json: s.value_schema.to_string(),
        created_at_ms: s.created_at_ms,
        updated_at_ms: s.updated_at_ms,
        classification: match s.classification {
            Classification::Public => pb::Classification::Public,
            Classification::Partner => pb::Classification::Partner,
            Classification::Internal => pb::Classification::Internal,
            Classification::Restricted => pb::Classification::Restricted,
        }
        .into(),
        personal_data_fields: s.personal_data_fields,
        partitions: s.partitions,
        retention_ms: s.retention_ms.unwrap_or(0),
        schema_format: format_pb(s.schema_format).into(),
        compatibility: compatibility_pb(s.compatibility).into(),
        schema_versions: s
            .schema_versions
            .into_iter()
            .map(schema_version_pb)
            .collect(),
        validation_off: s.validation_off,
        key_schema_format: format_pb(s.key_schema.format).into(),
        key_compatibility: compatibility_pb(s.key_schema.compatibility).into(),
        key_schema_versions: s
            .key_schema
            .versions
            .into_iter()
            .map(schema_version_pb)
            .collect(),
    }
}

pub fn contract_pb(c: Contract) -> pb::Contract {
    pb::Contract {
        id: c.id,
        stream: c.stream.to_string(),
        consumer: c.consumer.to_string(),
        purpose: c.purpose,
        delivery: c.delivery.to_pb().into(),
        destination: c.destination.map(|d| pb::ClusterDestination {
            cluster: d.cluster.to_string(),
            topic: d.topic.to_string(),
        }),
        state: c.state.to_pb().into(),
        history: c
            .history
            .into_iter()
            .map(|t| pb::Transition {
                from: t.from.to_pb().into(),
                to: t.to.to_pb().into(),
                actor: t.actor,
                reason: t.reason,
                at_ms: t.at_ms,
            })
            .collect(),
        created_at_ms: c.created_at_ms,
        link_status: c.link_status,
        terms: Some(c.terms.to_pb()),
        delivered_schemas: c
            .delivered_schemas
            .into_iter()
            .map(schema_version_pb)
            .collect(),
    }
}

pub(super) fn event_pb(e: Event) -> pb::WatchEvent {
    pb::WatchEvent {
        revision: e.revision,
        change: Some(match e.change {
            Change::Organization(o) => pb::watch_event::Change::Organization(organization_pb(o)),
            Change::Stream(s) => pb::watch_event::Change::Stream(stream_pb(s)),
            Change::Contract(c) => pb::watch_event::Change::Contract(contract_pb(c)),
            Change::Document(d) => pb::watch_event::Change::Document(document_pb(d)),
            Change::ApiKey(k) => pb::watch_event::Change::ApiKey(api_key_pb(k, true)),
        }),
    }
}

/// A key record on the wire; its hash only for the services' view.
pub(super) fn api_key_pb(k: ApiKeyRecord, with_hash: bool) -> pb::ApiKey {
    let revoked = k.revoked.unwrap_or_else(|| crate::domain::Withdrawal {
        at_ms: 0,
        by: String::new(),
        reason: String::new(),
    });
    pb::ApiKey {
        key_id: k.key_id,
        role: match k.role {
            Role::Admin => pb::Role::Admin,
            Role::Member => pb::Role::Member,
        }
        .into(),
        organization: k.org.map(|o| o.to_string()).unwrap_or_default(),
        name: k.name,
        created_at_ms: k.created_at_ms,
        expires_at_ms: k.expires_at_ms.unwrap_or(0),
        revoked_at_ms: revoked.at_ms,
        revoked_by: revoked.by,
        revoked_reason: revoked.reason,
        last_used_ms: k.last_used_ms.unwrap_or(0),
        replaces: k.replaces.unwrap_or_default(),
        key_sha256: if with_hash {
            k.key_sha256
        } else {
            String::new()
        },
    }
}

pub(super) fn created_pb((record, api_key): (ApiKeyRecord, String)) -> pb::CreateApiKeyResponse {
    pb::CreateApiKeyResponse {
        key_id: record.key_id.clone(),
        api_key,
        key: Some(api_key_pb(record, false)),
    }
}

pub(super) fn org_name(text: String) -> Result<OrgName, CatalogError> {
    Ok(OrgName::parse(text)?)
}

pub(super) fn new_key(name: String, expires_at_ms: i64) -> NewKey {
    NewKey {
        name,
        expires_at_ms: (expires_at_ms != 0).then_some(expires_at_ms),
    }
}

pub(super) fn document_pb(d: AsyncApiDocument) -> pb::AsyncApiDocument {
    pb::AsyncApiDocument {
        id: d.id,
        owner: d.owner.to_string(),
        title: d.title,
        version: d.version,
        text: d.text,
        streams: d.streams.iter().map(ToString::to_string).collect(),
        published_at_ms: d.published_at_ms,
        published_by: d.published_by,
    }
}

/// The outcome of checking the audit chain, as the API reports it.
pub fn verification_pb(outcome: Result<u64, crate::audit::AuditBreak>) -> pb::VerifyAuditResponse {
    match outcome {
        Ok(entries) => pb::VerifyAuditResponse {
            intact: true,
            entries,
            ..Default::default()
        },
        Err(broken) => pb::VerifyAuditResponse {
            intact: false,
            entries: broken.seq.saturating_sub(1),
            first_broken: broken.seq,
            reason: broken.reason,
        },
    }
}

/// What [`Catalog::ownership_problems`] found, on the wire.
pub fn ownership_pb(report: OwnershipReport) -> pb::CheckOwnershipResponse {
    pb::CheckOwnershipResponse {
        problems: report
            .problems
            .into_iter()
            .map(|(entity, problem)| pb::OwnershipProblem { entity, problem })
            .collect(),
        streams: report.streams as u64,
        contracts: report.contracts as u64,
    }
}
