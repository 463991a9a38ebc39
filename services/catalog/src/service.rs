//! The catalog's operations and rules, independent of any transport.
//!
//! All writes go through one lock, so each read-check-write is atomic with
//! respect to the others, and events are broadcast in revision order.

use std::collections::BTreeSet;
use std::sync::Arc;

use freeport_common::authz::{Authorizer, StreamFacts, Who};
use freeport_common::config::Clusters;
use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};
use freeport_common::now_ms;
use freeport_common::ownership;
use futures::Stream as FuturesStream;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, Mutex};
use tokio_util::sync::CancellationToken;

use crate::asyncapi::{AsyncApiValidator, Problem};
use crate::audit::AuditRecord;
use crate::domain::{
    ApiKeyRecord, AsyncApiDocument, Change, Classification, ClusterDestination, Compatibility,
    Contact, Contract, ContractAction, ContractState, ContractTerms, Event, OrgKind, Organization,
    Principal, Role, SchemaFormat, SchemaVersion, Stream,
};
use crate::error::CatalogError;
use crate::links::{LinkShares, Share};
use crate::metrics::CatalogMetrics;
use crate::store::{Commit, Store};

/// Live events kept for slow Watch subscribers before they fall back to
/// reading the change log from the store.
const LIVE_EVENT_BUFFER: usize = 1024;
const CATCH_UP_PAGE: usize = 512;
const MAX_TEXT: usize = 4096;
const MAX_TAGS: usize = 20;
/// The largest value schema accepted, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;

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
    pub destination: ClusterDestination,
    pub terms: ContractTerms,
}

/// What [`Catalog::ownership_problems`] found.
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

pub use keys::{NewKey, MAX_ROTATION_OVERLAP_MS};

pub struct Catalog {
    asyncapi: Option<AsyncApiValidator>,
    /// The Cedar policies: who may discover a stream, who may decide on
    /// contracts.
    authz: Authorizer,
    store: Arc<dyn Store>,
    clusters: Clusters,
    write_lock: Mutex<()>,
    events: broadcast::Sender<Event>,
    shutdown: CancellationToken,
    metrics: Option<CatalogMetrics>,
    meter: opentelemetry::metrics::Meter,
    /// Which link process mirrors which contract.
    link_shares: std::sync::Mutex<LinkShares>,
    /// When keys were last used, not yet written ([`keys`]).
    key_use: keys::KeyUse,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A string at a JSON pointer, or empty.
fn text_at(document: &serde_json::Value, pointer: &str) -> String {
    document
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn check_text(field: &str, value: &str, required: bool) -> Result<(), CatalogError> {
    if required && value.trim().is_empty() {
        return Err(CatalogError::InvalidField(format!(
            "{field} must not be empty"
        )));
    }
    if value.len() > MAX_TEXT {
        return Err(CatalogError::InvalidField(format!(
            "{field} is {} bytes; the limit is {MAX_TEXT}",
            value.len()
        )));
    }
    Ok(())
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>, clusters: Clusters, shutdown: CancellationToken) -> Catalog {
        let (events, _) = broadcast::channel(LIVE_EVENT_BUFFER);
        Catalog {
            asyncapi: None,
            authz: Authorizer::default(),
            store,
            clusters,
            write_lock: Mutex::new(()),
            events,
            shutdown,
            metrics: None,
            meter: opentelemetry::global::meter("freeport-catalog"),
            link_shares: std::sync::Mutex::new(LinkShares::new(
                crate::links::LEASE,
                std::time::Instant::now(),
                false,
            )),
            key_use: keys::KeyUse::default(),
        }
    }

    /// Records write latencies and contract counts through `meter`.
    pub fn set_metrics(&mut self, meter: &opentelemetry::metrics::Meter) {
        self.metrics = Some(CatalogMetrics::new(meter, self.store.clone()));
        self.meter = meter.clone();
    }

    /// Where the catalog's instruments record (a no-op one until
    /// [`Catalog::set_metrics`]).
    pub fn meter(&self) -> &opentelemetry::metrics::Meter {
        &self.meter
    }

    /// Grants links `lease`; `fresh` when no link can be holding anything
    /// from before this catalog started.
    pub fn set_link_lease(&mut self, lease: std::time::Duration, fresh: bool) {
        self.link_shares =
            std::sync::Mutex::new(LinkShares::new(lease, std::time::Instant::now(), fresh));
    }

    /// A link process's call: what it may mirror, and for how long.
    pub fn share_links(
        &self,
        member: &str,
        wanted: &std::collections::BTreeSet<String>,
        held: &std::collections::BTreeSet<String>,
    ) -> Result<(Share, std::time::Duration), CatalogError> {
        if member.is_empty() || member.len() > 200 {
            return Err(CatalogError::InvalidField(
                "member must be 1 to 200 characters".into(),
            ));
        }
        let mut shares = self
            .link_shares
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let share = shares.share(member, wanted, held, std::time::Instant::now());
        Ok((share, shares.lease()))
    }

    /// The revision of the last commit.
    pub fn revision(&self) -> Result<u64, CatalogError> {
        Ok(self.store.revision()?)
    }

    /// Whether the store answers reads: the catalog's readiness.
    pub fn store_readable(&self) -> Result<(), String> {
        self.store.revision().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Decides with these policies instead of the built-in ones.
    pub fn set_policies(&mut self, authz: Authorizer) {
        self.authz = authz;
    }

    /// Enables AsyncAPI publishing, validated against this schema.
    pub fn set_asyncapi_validator(&mut self, validator: AsyncApiValidator) {
        self.asyncapi = Some(validator);
    }

    /// Publishes an AsyncAPI 3.0 document: registers the streams it
    /// describes, or updates those the caller owns (a new schema version,
    /// checked under the stream's mode). All or nothing: when anything is
    /// wrong, every problem comes back with its JSON pointer and nothing is
    /// written. A dry run checks and plans without writing.
    pub async fn publish_asyncapi(
        &self,
        actor: &Principal,
        text: &str,
        dry_run: bool,
    ) -> Result<Result<Vec<Stream>, Vec<Problem>>, CatalogError> {
        let owner = Self::require_member(actor, "publish AsyncAPI documents")?.clone();
        let validator = self.asyncapi.as_ref().ok_or_else(|| {
            CatalogError::Unavailable(
                "AsyncAPI publishing is not configured on this catalog: set catalog.asyncapi_schema to the official AsyncAPI 3.0 JSON Schema".into(),
            )
        })?;
        let document = match crate::asyncapi::parse(text) {
            Ok(document) => document,
            Err(problem) => return Ok(Err(vec![problem])),
        };
        let planned =
            match crate::asyncapi::plan(&document, validator, |c| self.clusters.contains_key(c)) {
                Ok(planned) => planned,
                Err(problems) => return Ok(Err(problems)),
            };

        let described: Vec<StreamName> = planned.iter().map(|p| p.new.name.clone()).collect();
        let _guard = self.write_lock.lock().await;
        let now = now_ms();
        let existing_streams = self.store.list_streams()?;
        let mut problems = Vec::new();
        let mut streams = Vec::new();
        let mut audit = Vec::new();
        for plan in planned {
            let at = plan.pointer.clone();
            let mut refuse = |message: String| {
                problems.push(Problem {
                    pointer: at.clone(),
                    message,
                })
            };
            match existing_streams.iter().find(|s| s.name == plan.new.name) {
                None => {
                    if let Err(refusal) = ownership::check_stream_home(
                        &self.clusters,
                        &plan.new.cluster,
                        plan.new.topic.as_str(),
                        owner.as_str(),
                    ) {
                        refuse(refusal.to_string());
                        continue;
                    }
                    let stream = match Self::build_stream(actor, owner.clone(), plan.new, now) {
                        Ok(stream) => stream,
                        Err(e) => {
                            refuse(e.to_string());
                            continue;
                        }
                    };
                    if let Err(e) = self.check_stream_free(&stream, &existing_streams) {
                        refuse(e.to_string());
                        continue;
                    }
                    audit.push(AuditRecord::new(
                        actor.audit_name(),
                        "stream.publish",
                        format!("stream:{}", stream.name),
                        json!({"created": true, "cluster": stream.cluster, "topic": stream.topic, "version": 1}),
                    ));
                    streams.push(stream);
                }
                Some(current) => {
                    if current.owner != owner {
                        refuse(format!(
                            "stream {} belongs to {}",
                            current.name, current.owner
                        ));
                        continue;
                    }
                    if current.cluster != plan.new.cluster || current.topic != plan.new.topic {
                        refuse(format!(
                            "stream {} is topic {} on {}; a document cannot move it",
                            current.name, current.topic, current.cluster
                        ));
                        continue;
                    }
                    let mut stream = current.clone();
                    match Self::evolve_schema(
                        &mut stream,
                        plan.new.schema_format,
                        plan.new.value_schema,
                        actor,
                        now,
                    ) {
                        Ok(_) => {}
                        Err(CatalogError::IncompatibleSchema { mode, problems, .. }) => {
                            for b in problems {
                                refuse(format!("payload is not {mode} compatible: {b}"));
                            }
                            continue;
                        }
                        Err(e) => {
                            refuse(e.to_string());
                            continue;
                        }
                    }
                    stream.title = plan.new.title;
                    stream.description = plan.new.description;
                    stream.tags = plan.new.tags;
                    stream.classification = plan.new.classification;
                    if stream == *current {
                        continue;
                    }
                    stream.updated_at_ms = now;
                    audit.push(AuditRecord::new(
                        actor.audit_name(),
                        "stream.publish",
                        format!("stream:{}", stream.name),
                        json!({"created": false, "version": stream.schema_versions.last().map(|v| v.version)}),
                    ));
                    streams.push(stream);
                }
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let title = text_at(&document, "/info/title");
        let id = format!(
            "{owner}:{}",
            document
                .get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&title)
        );
        let unchanged = self
            .store
            .get_document(&id)?
            .is_some_and(|d| d.text == text);
        if dry_run || (streams.is_empty() && unchanged) {
            return Ok(Ok(streams));
        }
        let record = AsyncApiDocument {
            id: id.clone(),
            owner: owner.clone(),
            title,
            version: text_at(&document, "/info/version"),
            text: text.to_string(),
            streams: described,
            published_at_ms: now,
            published_by: actor.audit_name(),
        };
        audit.push(AuditRecord::new(
            actor.audit_name(),
            "asyncapi.publish",
            format!("asyncapi:{id}"),
            json!({"streams": record.streams, "version": record.version, "bytes": text.len()}),
        ));
        let mut changes: Vec<Change> = streams.iter().cloned().map(Change::Stream).collect();
        changes.push(Change::Document(record));
        self.commit(Commit {
            changes,
            api_keys: vec![],
            audit,
        })
        .await?;
        Ok(Ok(streams))
    }

    pub fn list_documents(&self) -> Result<Vec<AsyncApiDocument>, CatalogError> {
        Ok(self.store.list_documents()?)
    }

    /// Checks the audit chain: its length, or the first broken entry.
    pub fn verify_audit(&self) -> Result<Result<u64, crate::audit::AuditBreak>, CatalogError> {
        Ok(crate::store::verify_audit(self.store.as_ref())?)
    }

    /// Streams and live contracts that break the ownership rules, as
    /// (entity, problem): written before the rules existed, they are
    /// reported for an admin to settle, never changed here. Returns how
    /// many streams and contracts were checked too.
    pub fn ownership_problems(&self) -> Result<OwnershipReport, CatalogError> {
        let streams = self.store.list_streams()?;
        let contracts = self.store.list_contracts()?;
        let mut problems = Vec::new();
        for stream in &streams {
            if let Err(refusal) = ownership::check_stream_home(
                &self.clusters,
                &stream.cluster,
                stream.topic.as_str(),
                stream.owner.as_str(),
            ) {
                problems.push((format!("stream:{}", stream.name), refusal.to_string()));
            }
        }
        for contract in contracts.iter().filter(|c| c.state.is_live()) {
            if let Err(refusal) = ownership::check_destination(
                &self.clusters,
                &contract.destination.cluster,
                contract.destination.topic.as_str(),
                contract.consumer.as_str(),
            ) {
                problems.push((format!("contract:{}", contract.id), refusal.to_string()));
            }
        }
        Ok(OwnershipReport {
            problems,
            streams: streams.len(),
            contracts: contracts.len(),
        })
    }

    /// The audit entries about one entity (`contract:<id>`, ...), oldest first.
    pub fn audit_trail(&self, entity: &str) -> Result<Vec<crate::audit::AuditEntry>, CatalogError> {
        let mut trail = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.audit_after(after, CATCH_UP_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            trail.extend(page.into_iter().filter(|e| e.record.entity == entity));
        }
        Ok(trail)
    }

    pub fn clusters(&self) -> &Clusters {
        &self.clusters
    }

    /// Commits and then broadcasts, under the write lock, so subscribers
    /// see events in revision order.
    async fn commit(&self, commit: Commit) -> Result<Vec<Event>, CatalogError> {
        let operation = commit
            .audit
            .first()
            .map_or_else(|| "other".to_string(), |record| record.action.clone());
        let started = std::time::Instant::now();
        let events = if self.store.blocks() {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.commit(commit))
                .await
                .map_err(|e| {
                    CatalogError::Store(crate::store::StoreError::Backend(e.to_string()))
                })??
        } else {
            self.store.commit(commit)?
        };
        if let Some(metrics) = &self.metrics {
            metrics.wrote(&operation, started.elapsed());
        }
        for event in &events {
            // No subscriber is not an error.
            let _ = self.events.send(event.clone());
        }
        Ok(events)
    }

    fn require_admin(actor: &Principal, what: &str) -> Result<(), CatalogError> {
        if actor.is_admin() {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!("only an admin may {what}")))
        }
    }

    fn require_member<'a>(actor: &'a Principal, what: &str) -> Result<&'a OrgName, CatalogError> {
        actor.org().ok_or_else(|| {
            CatalogError::Forbidden(format!(
                "only an organization's key may {what}; admin keys act for no organization"
            ))
        })
    }

    // ---- organizations (credentials are in keys.rs) ----

    pub async fn create_organization(
        &self,
        actor: &Principal,
        name: OrgName,
        kind: OrgKind,
        details: OrgDetails,
    ) -> Result<Organization, CatalogError> {
        Self::require_admin(actor, "create organizations")?;
        check_text("display_name", &details.display_name, false)?;
        if details.contacts.len() > 20 {
            return Err(CatalogError::InvalidField("contacts: at most 20".into()));
        }
        for (i, contact) in details.contacts.iter().enumerate() {
            check_text(&format!("contacts[{i}].name"), &contact.name, true)?;
            let email = contact.email.as_str();
            let plausible = email.len() <= 254
                && !email.chars().any(char::is_whitespace)
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !plausible {
                return Err(CatalogError::InvalidField(format!(
                    "contacts[{i}].email {email:?} is not an email address"
                )));
            }
        }
        let mut fingerprints = Vec::with_capacity(details.trusted_cert_fingerprints.len());
        for (i, raw) in details.trusted_cert_fingerprints.iter().enumerate() {
            fingerprints.push(keys::fingerprint(
                &format!("trusted_cert_fingerprints[{i}]"),
                raw,
            )?);
        }
        let display_name = details.display_name;
        let _guard = self.write_lock.lock().await;
        if self.store.get_org(&name)?.is_some() {
            return Err(CatalogError::AlreadyExists(format!(
                "organization {:?} already exists",
                name.as_str()
            )));
        }
        let org = Organization {
            name,
            kind,
            display_name,
            created_at_ms: now_ms(),
            contacts: details.contacts,
            trusted_cert_fingerprints: fingerprints,
            revoked_certificates: vec![],
        };
        self.commit(Commit {
            changes: vec![Change::Organization(org.clone())],
            api_keys: vec![],
            audit: vec![AuditRecord::new(
                actor.audit_name(),
                "organization.create",
                format!("organization:{}", org.name),
                json!({"kind": org.kind, "display_name": org.display_name}),
            )],
        })
        .await?;
        Ok(org)
    }

    pub fn list_organizations(&self) -> Result<Vec<Organization>, CatalogError> {
        Ok(self.store.list_orgs()?)
    }
    // ---- streams ----

    /// Checks a new stream's own fields, all at once, and builds it with its
    /// first schema version. Uniqueness is [`Self::check_stream_free`]'s job.
    fn build_stream(
        actor: &Principal,
        owner: OrgName,
        new: NewStream,
        now: i64,
    ) -> Result<Stream, CatalogError> {
        let mut problems = Vec::new();
        for (field, value) in [("title", &new.title), ("description", &new.description)] {
            if let Err(e) = check_text(field, value, false) {
                problems.push(e.to_string());
            }
        }
        if new.tags.len() > MAX_TAGS {
            problems.push(format!(
                "tags: {} given; the limit is {MAX_TAGS}",
                new.tags.len()
            ));
        }
        for tag in &new.tags {
            if tag.is_empty() || tag.len() > 64 || tag.chars().any(char::is_control) {
                problems.push(format!(
                    "tags: {tag:?} must be 1 to 64 printable characters"
                ));
            }
        }
        if new.schema_format == SchemaFormat::JsonSchema && !new.value_schema.is_object() {
            problems.push("schema must be a JSON Schema object".into());
        } else if let Err(errors) =
            crate::schema::check_schema(new.schema_format, &new.value_schema)
        {
            problems.extend(errors.into_iter().map(|e| format!("schema {e}")));
        }
        let schema_len = serde_json::to_vec(&new.value_schema).map_or(usize::MAX, |v| v.len());
        if schema_len > MAX_SCHEMA_BYTES {
            problems.push(format!(
                "schema is {schema_len} bytes; the limit is {MAX_SCHEMA_BYTES}"
            ));
        }
        for field in &new.personal_data_fields {
            crate::domain::check_field(
                "personal_data_fields",
                field,
                &new.value_schema,
                &mut problems,
            );
        }
        if new.partitions == 0 {
            problems.push("partitions must be at least 1".into());
        }
        if new.retention_ms.is_some_and(|r| r <= 0) {
            problems.push("retention_ms must be positive".into());
        }
        if !problems.is_empty() {
            return Err(CatalogError::InvalidField(problems.join("; ")));
        }
        let tags: BTreeSet<String> = new.tags.into_iter().collect();
        Ok(Stream {
            name: new.name,
            owner,
            cluster: new.cluster,
            topic: new.topic,
            title: new.title,
            description: new.description,
            tags: tags.into_iter().collect(),
            created_at_ms: now,
            updated_at_ms: now,
            classification: new.classification,
            personal_data_fields: new.personal_data_fields,
            partitions: new.partitions,
            retention_ms: new.retention_ms,
            schema_format: new.schema_format,
            compatibility: new.compatibility,
            schema_versions: vec![SchemaVersion {
                version: 1,
                format: new.schema_format,
                schema: new.value_schema.clone(),
                registered_at_ms: now,
                registered_by: actor.audit_name(),
            }],
            value_schema: new.value_schema,
        })
    }

    /// A new stream's name and topic must be free, and its topic no
    /// contract's destination. Call under the write lock.
    fn check_stream_free(&self, stream: &Stream, existing: &[Stream]) -> Result<(), CatalogError> {
        if existing.iter().any(|s| s.name == stream.name) {
            return Err(CatalogError::AlreadyExists(format!(
                "stream {:?} already exists",
                stream.name.as_str()
            )));
        }
        if let Some(other) = existing
            .iter()
            .find(|s| s.cluster == stream.cluster && s.topic == stream.topic)
        {
            return Err(CatalogError::AlreadyExists(format!(
                "topic {:?} on cluster {:?} is already offered as stream {:?}",
                stream.topic.as_str(),
                stream.cluster.as_str(),
                other.name.as_str()
            )));
        }
        self.check_destination_free(&stream.cluster, &stream.topic, None)
    }

    pub async fn register_stream(
        &self,
        actor: &Principal,
        new: NewStream,
    ) -> Result<Stream, CatalogError> {
        self.register_stream_for(actor, None, new).await
    }

    /// Registers a stream of `owner`'s: the caller's own organization, or,
    /// for an admin acting for one, the organization it names (audited as
    /// the admin's act on its behalf). The cluster must be the owner's.
    pub async fn register_stream_for(
        &self,
        actor: &Principal,
        owner: Option<OrgName>,
        new: NewStream,
    ) -> Result<Stream, CatalogError> {
        let owner = match (actor, owner) {
            (Principal::Admin { .. }, Some(owner)) => owner,
            (Principal::Admin { .. }, None) => {
                return Err(CatalogError::InvalidField(
                    "owner: an admin registers a stream for an organization; name it".into(),
                ))
            }
            (Principal::Member { org, .. }, Some(owner)) if *org != owner => {
                return Err(CatalogError::Forbidden(format!(
                    "organization {org} cannot register streams for {owner}"
                )))
            }
            (Principal::Member { org, .. }, _) => org.clone(),
        };
        ownership::check_stream_home(
            &self.clusters,
            &new.cluster,
            new.topic.as_str(),
            owner.as_str(),
        )?;
        let stream = Self::build_stream(actor, owner, new, now_ms())?;

        let _guard = self.write_lock.lock().await;
        if self.store.get_org(&stream.owner)?.is_none() {
            return Err(CatalogError::OrganizationNotFound(stream.owner.to_string()));
        }
        self.check_stream_free(&stream, &self.store.list_streams()?)?;
        self.commit(Commit {
            changes: vec![Change::Stream(stream.clone())],
            api_keys: vec![],
            audit: vec![AuditRecord::new(
                actor.audit_name(),
                "stream.register",
                format!("stream:{}", stream.name),
                json!({
                    "cluster": stream.cluster,
                    "topic": stream.topic,
                    "owner": stream.owner,
                    "on_behalf_of": actor.is_admin().then_some(&stream.owner),
                    "classification": stream.classification,
                    "personal_data_fields": stream.personal_data_fields,
                }),
            )],
        })
        .await?;
        Ok(stream)
    }

    /// The stream's owner or an admin may change it.
    fn require_owner(actor: &Principal, stream: &Stream, what: &str) -> Result<(), CatalogError> {
        if actor.is_admin() || actor.org() == Some(&stream.owner) {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!(
                "only the owner of stream {} or an admin may {what}",
                stream.name
            )))
        }
    }

    /// Makes `schema` the stream's next version, checked against the latest
    /// under the stream's compatibility mode; `None` when it is the latest
    /// already. Leaves the stream untouched when it refuses.
    fn evolve_schema(
        stream: &mut Stream,
        format: SchemaFormat,
        schema: serde_json::Value,
        actor: &Principal,
        now: i64,
    ) -> Result<Option<SchemaVersion>, CatalogError> {
        if format != stream.schema_format {
            return Err(CatalogError::InvalidField(format!(
                "stream {} uses {}; a version in {} cannot follow it",
                stream.name,
                stream.schema_format.as_str(),
                format.as_str()
            )));
        }
        if stream
            .schema_versions
            .last()
            .is_some_and(|latest| latest.schema == schema)
        {
            return Ok(None);
        }
        let problems = crate::schema::incompatibilities(
            stream.compatibility,
            format,
            &stream.value_schema,
            &schema,
        );
        if !problems.is_empty() {
            return Err(CatalogError::IncompatibleSchema {
                stream: stream.name.to_string(),
                mode: stream.compatibility.as_str(),
                problems,
            });
        }
        let version = SchemaVersion {
            version: stream.schema_versions.last().map_or(1, |v| v.version + 1),
            format,
            schema: schema.clone(),
            registered_at_ms: now,
            registered_by: actor.audit_name(),
        };
        stream.schema_versions.push(version.clone());
        stream.value_schema = schema;
        stream.updated_at_ms = now;
        Ok(Some(version))
    }

    /// Registers a new version of a stream's value schema, after checking
    /// it against the latest under the stream's compatibility mode. The same
    /// schema again returns the latest version and writes nothing.
    pub async fn register_schema(
        &self,
        actor: &Principal,
        name: &StreamName,
        format: SchemaFormat,
        schema: serde_json::Value,
    ) -> Result<SchemaVersion, CatalogError> {
        if let Err(errors) = crate::schema::check_schema(format, &schema) {
            return Err(CatalogError::InvalidField(format!(
                "schema {}",
                errors.join("; schema ")
            )));
        }
        let size = serde_json::to_vec(&schema)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SCHEMA_BYTES {
            return Err(CatalogError::InvalidField(format!(
                "schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}"
            )));
        }
        let _guard = self.write_lock.lock().await;
        let mut stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "register schema versions")?;
        let Some(version) = Self::evolve_schema(&mut stream, format, schema, actor, now_ms())?
        else {
            // The latest version already: nothing to write.
            return Ok(stream
                .schema_versions
                .last()
                .cloned()
                .expect("a stream has a version"));
        };
        self.commit(Commit {
            changes: vec![Change::Stream(stream.clone())],
            api_keys: vec![],
            audit: vec![AuditRecord::new(
                actor.audit_name(),
                "stream.schema_register",
                format!("stream:{}", stream.name),
                json!({"version": version.version, "format": format, "compatibility": stream.compatibility}),
            )],
        })
        .await?;
        Ok(version)
    }

    /// Changes the mode later schema versions are checked under.
    pub async fn set_compatibility(
        &self,
        actor: &Principal,
        name: &StreamName,
        mode: Compatibility,
    ) -> Result<Stream, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "change its compatibility mode")?;
        if stream.compatibility == mode {
            return Ok(stream);
        }
        let before = stream.compatibility;
        stream.compatibility = mode;
        stream.updated_at_ms = now_ms();
        self.commit(Commit {
            changes: vec![Change::Stream(stream.clone())],
            api_keys: vec![],
            audit: vec![AuditRecord::new(
                actor.audit_name(),
                "stream.compatibility",
                format!("stream:{}", stream.name),
                json!({"from": before, "to": mode}),
            )],
        })
        .await?;
        Ok(stream)
    }

    pub fn get_stream(&self, name: &StreamName) -> Result<Stream, CatalogError> {
        self.store
            .get_stream(name)?
            .ok_or_else(|| CatalogError::StreamNotFound(name.to_string()))
    }

    pub fn list_streams(&self) -> Result<Vec<Stream>, CatalogError> {
        Ok(self.store.list_streams()?)
    }

    /// Whether `viewer` may discover `stream`, as the policies say (see
    /// `policies/freeport.cedar`): the facts are the viewer's organization
    /// and its kind, the stream's owner and classification, and whether the
    /// viewer holds a live contract on it.
    fn visible(
        &self,
        stream: &Stream,
        viewer: &Principal,
        orgs: &[Organization],
        contracts: &[Contract],
    ) -> bool {
        let Some(who) = who(viewer, orgs) else {
            return false;
        };
        let live = viewer.org().is_some_and(|org| {
            contracts
                .iter()
                .any(|c| &c.consumer == org && c.stream == stream.name && c.state.is_live())
        });
        let facts = StreamFacts {
            name: stream.name.as_str(),
            owner: stream.owner.as_str(),
            classification: stream.classification.as_str(),
        };
        self.authz.may_view_stream(&who, &facts, live)
    }

    /// The streams `viewer` may discover.
    pub fn list_streams_for(&self, viewer: &Principal) -> Result<Vec<Stream>, CatalogError> {
        let orgs = self.store.list_orgs()?;
        let contracts = self.store.list_contracts()?;
        Ok(self
            .store
            .list_streams()?
            .into_iter()
            .filter(|s| self.visible(s, viewer, &orgs, &contracts))
            .collect())
    }

    /// A stream `viewer` may discover; one it may not is not found.
    pub fn get_stream_for(
        &self,
        name: &StreamName,
        viewer: &Principal,
    ) -> Result<Stream, CatalogError> {
        let stream = self.get_stream(name)?;
        let orgs = self.store.list_orgs()?;
        let contracts = self.store.list_contracts()?;
        if self.visible(&stream, viewer, &orgs, &contracts) {
            Ok(stream)
        } else {
            Err(CatalogError::StreamNotFound(name.to_string()))
        }
    }

    // ---- contracts ----

    /// A live contract already writing into (cluster, topic) makes it taken:
    /// two mirrors into one topic would interleave, and resuming from the
    /// destination's tail would read the other's position.
    fn check_destination_free(
        &self,
        cluster: &ClusterName,
        topic: &TopicName,
        except: Option<&str>,
    ) -> Result<(), CatalogError> {
        let taken = self.store.list_contracts()?.into_iter().find(|c| {
            c.state.is_live()
                && Some(c.id.as_str()) != except
                && &c.destination.cluster == cluster
                && &c.destination.topic == topic
        });
        match taken {
            Some(c) => Err(CatalogError::DestinationInUse {
                cluster: cluster.to_string(),
                topic: topic.to_string(),
                used_by: format!("contract {}", c.id),
            }),
            None => Ok(()),
        }
    }

    pub async fn request_contract(
        &self,
        actor: &Principal,
        new: NewContract,
    ) -> Result<Contract, CatalogError> {
        let consumer = Self::require_member(actor, "request contracts")?.clone();
        check_text("purpose", &new.purpose, true)?;
        ownership::check_destination(
            &self.clusters,
            &new.destination.cluster,
            new.destination.topic.as_str(),
            consumer.as_str(),
        )?;

        let _guard = self.write_lock.lock().await;
        let stream = self.get_stream_for(&new.stream, actor)?;
        new.terms
            .validate(&stream.value_schema, now_ms())
            .map_err(|e| CatalogError::InvalidField(e.to_string()))?;
        if let Some(source) = self
            .store
            .list_streams()?
            .into_iter()
            .find(|s| s.cluster == new.destination.cluster && s.topic == new.destination.topic)
        {
            return Err(CatalogError::DestinationInUse {
                cluster: new.destination.cluster.to_string(),
                topic: new.destination.topic.to_string(),
                used_by: format!("stream {}", source.name),
            });
        }
        self.check_destination_free(&new.destination.cluster, &new.destination.topic, None)?;
        let contract = Contract {
            id: uuid::Uuid::now_v7().to_string(),
            stream: stream.name,
            consumer,
            purpose: new.purpose,
            destination: new.destination,
            terms: new.terms,
            state: ContractState::Requested,
            history: vec![],
            created_at_ms: now_ms(),
            link_status: String::new(),
        };
        self.commit(Commit {
            changes: vec![Change::Contract(contract.clone())],
            api_keys: vec![],
            audit: vec![AuditRecord::new(
                actor.audit_name(),
                "contract.request",
                format!("contract:{}", contract.id),
                json!({
                    "stream": contract.stream,
                    "consumer": contract.consumer,
                    "purpose": contract.purpose,
                    "destination": contract.destination,
                    "terms": contract.terms,
                }),
            )],
        })
        .await?;
        Ok(contract)
    }

    pub fn get_contract(&self, id: &str) -> Result<Contract, CatalogError> {
        self.store
            .get_contract(id)?
            .ok_or_else(|| CatalogError::ContractNotFound(id.chars().take(80).collect()))
    }

    /// All contracts and the revision they are consistent with. Taken under
    /// the write lock so no commit lands between the two reads.
    pub async fn list_contracts(&self) -> Result<(Vec<Contract>, u64), CatalogError> {
        let _guard = self.write_lock.lock().await;
        Ok((self.store.list_contracts()?, self.store.revision()?))
    }

    /// An admin's decision. Approval may replace the requested terms.
    pub async fn transition_contract(
        &self,
        actor: &Principal,
        id: &str,
        action: ContractAction,
        reason: String,
        terms: Option<ContractTerms>,
    ) -> Result<Contract, CatalogError> {
        match action {
            ContractAction::Activate => {
                return Err(CatalogError::Forbidden(
                    "only the link activates a contract".into(),
                ))
            }
            ContractAction::Expire => {
                return Err(CatalogError::Forbidden(
                    "contracts expire at their end time; revoke to end one now".into(),
                ))
            }
            _ => {}
        }
        let orgs = self.store.list_orgs()?;
        let allowed = who(actor, &orgs).is_some_and(|who| self.authz.may_decide(&who, id));
        if !allowed {
            return Err(CatalogError::Forbidden(format!(
                "only an admin may {} contracts",
                action.as_str()
            )));
        }
        check_text("reason", &reason, false)?;
        if terms.is_some() && action != ContractAction::Approve {
            return Err(CatalogError::InvalidField(format!(
                "terms can be set when approving, not on {}",
                action.as_str()
            )));
        }
        let _guard = self.write_lock.lock().await;
        let contract = self.get_contract(id)?;
        if let Some(terms) = &terms {
            let stream = self.get_stream(&contract.stream)?;
            terms
                .validate(&stream.value_schema, now_ms())
                .map_err(|e| CatalogError::InvalidField(e.to_string()))?;
        }
        self.apply_locked(contract, action, actor.audit_name(), reason, terms)
            .await
    }

    /// Applies `action` to a contract read under the write lock, which the
    /// caller holds, with `imposed` terms replacing its own (checked by the
    /// caller); commits the change with its audit entry.
    async fn apply_locked(
        &self,
        mut contract: Contract,
        action: ContractAction,
        actor: String,
        reason: String,
        imposed: Option<ContractTerms>,
    ) -> Result<Contract, CatalogError> {
        let id = contract.id.clone();
        let terms_before = contract.terms.clone();
        if let Some(terms) = imposed {
            contract.terms = terms;
        }
        let from = contract.state;
        contract
            .apply(action, actor.clone(), reason.clone(), now_ms())
            .map_err(|(state, action)| CatalogError::IllegalTransition {
                id: id.to_string(),
                state,
                action,
            })?;
        let mut detail = json!({"from": from, "to": contract.state, "reason": reason});
        if contract.terms != terms_before {
            detail["terms"] = json!(contract.terms);
        }
        let audit = AuditRecord::new(
            actor,
            format!("contract.{}", action.as_str()),
            format!("contract:{id}"),
            detail,
        );
        self.commit(Commit {
            changes: vec![Change::Contract(contract.clone())],
            api_keys: vec![],
            audit: vec![audit],
        })
        .await?;
        Ok(contract)
    }

    /// The earliest end time among live contracts.
    fn next_expiry(&self) -> Result<Option<i64>, CatalogError> {
        Ok(self
            .store
            .list_contracts()?
            .iter()
            .filter(|c| c.state.is_live())
            .filter_map(|c| c.terms.end_time_ms)
            .min())
    }

    /// Expires every live contract whose end time is at or before `now_ms`.
    pub async fn expire_due(&self, now_ms: i64) -> Result<Vec<Contract>, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let due: Vec<_> = self
            .store
            .list_contracts()?
            .into_iter()
            .filter(|c| c.state.is_live() && c.terms.end_time_ms.is_some_and(|end| end <= now_ms))
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for contract in due {
            let end = contract.terms.end_time_ms.unwrap_or_default();
            let contract = self
                .apply_locked(
                    contract,
                    ContractAction::Expire,
                    "system:expiry".into(),
                    format!("end time {end} ms reached"),
                    None,
                )
                .await?;
            expired.push(contract);
        }
        Ok(expired)
    }

    /// Expires contracts at their end time, woken by a timer set for the
    /// earliest one and reset by every change; never by polling. Runs until
    /// shutdown.
    pub async fn run_expiry(self: Arc<Self>) {
        let mut changes = self.events.subscribe();
        loop {
            let next = match self.next_expiry() {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read contracts for expiry");
                    None
                }
            };
            // Sleep until the earliest end time; with none, until a change.
            let wait = next.map(|end| {
                std::time::Duration::from_millis(u64::try_from(end - now_ms()).unwrap_or(0))
            });
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = async {
                    match wait {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => std::future::pending().await,
                    }
                } => {
                    match self.expire_due(now_ms()).await {
                        Ok(expired) => for c in expired {
                            tracing::info!(contract = %c.id, "contract expired");
                        },
                        Err(e) => {
                            tracing::error!(error = %e, "cannot expire contracts");
                            // Do not spin on a failing store.
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
                changed = changes.recv() => {
                    if matches!(changed, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
            }
        }
    }

    /// Records what the link says about a contract. The first `Running` on an
    /// approved contract makes it active; `Running` on a contract that no
    /// longer flows is ignored (the link may be behind the Watch stream),
    /// while `Stopped` is kept, so callers can see the flow has ended.
    pub async fn report_link_status(
        &self,
        id: &str,
        status: LinkStatus,
        detail: &str,
    ) -> Result<Contract, CatalogError> {
        let text = match status {
            LinkStatus::Running => "running".to_string(),
            LinkStatus::Stopped => "stopped".to_string(),
            LinkStatus::Error => format!("error: {}", detail.chars().take(512).collect::<String>()),
            LinkStatus::Stalled => {
                format!("stalled: {}", detail.chars().take(512).collect::<String>())
            }
        };
        let _guard = self.write_lock.lock().await;
        let mut contract = self.get_contract(id)?;
        if !contract.state.is_flowing() && status == LinkStatus::Running {
            // A late report from before the link saw the contract end.
            return Ok(contract);
        }
        let before = contract.clone();
        if status == LinkStatus::Running && contract.state == ContractState::Approved {
            contract
                .apply(
                    ContractAction::Activate,
                    "service:link".into(),
                    String::new(),
                    now_ms(),
                )
                .map_err(|(state, action)| CatalogError::IllegalTransition {
                    id: id.to_string(),
                    state,
                    action,
                })?;
        }
        contract.link_status = text;
        if contract == before {
            return Ok(contract);
        }
        let action = if contract.state == before.state {
            "contract.link_status"
        } else {
            "contract.activate"
        };
        let audit = AuditRecord::new(
            "service:link",
            action,
            format!("contract:{id}"),
            json!({"state": contract.state, "link_status": contract.link_status}),
        );
        self.commit(Commit {
            changes: vec![Change::Contract(contract.clone())],
            api_keys: vec![],
            audit: vec![audit],
        })
        .await?;
        Ok(contract)
    }

    // ---- watch ----

    /// Every event after `after`, then live events, without gaps or repeats.
    /// Ends when the catalog shuts down.
    pub fn watch(
        self: &Arc<Self>,
        after: u64,
    ) -> impl FuturesStream<Item = Result<Event, CatalogError>> + Send + 'static {
        let mut live = self.events.subscribe();
        let catalog = self.clone();
        async_stream::try_stream! {
            let mut last = after;
            'outer: loop {
                // Catch up from the change log: it holds everything committed,
                // including what was broadcast before we subscribed.
                loop {
                    let store = catalog.store.clone();
                    let page = tokio::task::spawn_blocking(move || store.events_after(last, CATCH_UP_PAGE))
                        .await
                        .map_err(|e| CatalogError::Store(crate::store::StoreError::Backend(e.to_string())))??;
                    if page.is_empty() {
                        break;
                    }
                    for event in page {
                        last = event.revision;
                        yield event;
                    }
                }
                loop {
                    let received = tokio::select! {
                        _ = catalog.shutdown.cancelled() => break 'outer,
                        received = live.recv() => received,
                    };
                    match received {
                        Ok(event) if event.revision <= last => continue,
                        Ok(event) if event.revision == last + 1 => {
                            last = event.revision;
                            yield event;
                        }
                        // A gap or an overflow: the log has what we missed.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue 'outer,
                        Err(broadcast::error::RecvError::Closed) => break 'outer,
                    }
                }
            }
        }
    }
}

/// Who a principal is, for the policies: an admin, or a member of an
/// organization of a kind; `None` for a member of an unknown organization.
fn who<'a>(principal: &'a Principal, orgs: &'a [Organization]) -> Option<Who<'a>> {
    match principal.org() {
        None if principal.is_admin() => Some(Who::Admin),
        None => None,
        Some(org) => {
            let kind = orgs.iter().find(|o| &o.name == org)?.kind;
            let kind = match kind {
                OrgKind::Internal => "internal",
                OrgKind::Partner => "partner",
            };
            Some(Who::Org {
                name: org.as_str(),
                kind,
            })
        }
    }
}

mod keys;
#[cfg(test)]
mod tests;
