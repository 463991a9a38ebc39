//! The index the view answers from: the catalog as this portal last heard
//! it, and how a Watch change updates it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use freeport_common::authz::{StreamFacts, Who};
use freeport_common::proto::catalog::v1 as pb;

use crate::credentials::{organization_changes, Change};

/// The catalog as this portal last heard it.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) revision: u64,
    pub(super) orgs: HashMap<String, pb::Organization>,
    /// Trusted certificate fingerprint -> organization.
    pub(super) trusted: HashMap<String, String>,
    pub(super) keys: HashMap<String, pb::ApiKey>,
    pub(super) streams: HashMap<String, Arc<pb::Stream>>,
    /// Topic -> the streams on it (one per cluster at most).
    pub(super) by_topic: HashMap<String, BTreeSet<String>>,
    /// Owner -> its streams.
    pub(super) by_owner: HashMap<String, BTreeSet<String>>,
    /// Global schema id -> the (stream, part, version) triples that have it.
    pub(super) by_schema_id: HashMap<u32, BTreeSet<(String, pb::RecordPart, u32)>>,
    /// Global schema id -> the (contract, version) pairs that deliver
    /// reshaped values under it.
    pub(super) delivered_by_id: HashMap<u32, BTreeSet<(String, u32)>>,
    /// A schema version (stream, part, number) -> the versions that depend
    /// on it (schema references), each marked when it refers to it
    /// directly rather than through another.
    pub(super) referrers: HashMap<VersionKey, BTreeSet<(VersionKey, bool)>>,
    pub(super) contracts: HashMap<String, Arc<pb::Contract>>,
    /// Consumer -> its contracts, in every state.
    pub(super) by_consumer: HashMap<String, BTreeSet<String>>,
    /// Stream -> the contracts on it, in every state.
    pub(super) by_stream: HashMap<String, BTreeSet<String>>,
    /// (consumer, stream) -> its active contract.
    pub(super) active: HashMap<(String, String), String>,
    /// Consumer -> its active contracts.
    pub(super) active_by_consumer: HashMap<String, BTreeSet<String>>,
}

/// A schema version by its stream, part and number.
pub(super) type VersionKey = (String, pb::RecordPart, u32);

/// What `version` depends on, each marked when it is a direct reference.
fn dependencies_of(version: &pb::SchemaVersion) -> impl Iterator<Item = (VersionKey, bool)> + '_ {
    version.dependencies.iter().filter_map(|d| {
        let r = d.reference.as_ref()?;
        let direct = version
            .references
            .iter()
            .any(|v| (&v.stream, v.part, v.version) == (&r.stream, r.part, r.version));
        Some(((r.stream.clone(), r.part(), r.version), direct))
    })
}

impl Index {
    pub(super) fn apply(&mut self, change: pb::watch_event::Change) -> Vec<Change> {
        match change {
            pb::watch_event::Change::Organization(org) => {
                let changes = organization_changes(&org);
                self.trusted.retain(|_, owner| *owner != org.name);
                for fingerprint in &org.trusted_cert_fingerprints {
                    self.trusted.insert(fingerprint.clone(), org.name.clone());
                }
                self.orgs.insert(org.name.clone(), org);
                changes
            }
            pb::watch_event::Change::ApiKey(key) => {
                let revoked = key.revoked_at_ms != 0;
                let id = key.key_id.clone();
                if !key.key_sha256.is_empty() {
                    self.keys.insert(key.key_sha256.clone(), key);
                }
                if revoked {
                    vec![Change::KeyRevoked(id)]
                } else {
                    vec![]
                }
            }
            pb::watch_event::Change::Stream(stream) => {
                if let Some(old) = self.streams.get(&stream.name) {
                    if let Some(names) = self.by_topic.get_mut(&old.topic) {
                        names.remove(&old.name);
                    }
                    for (part, version) in old.all_versions() {
                        let key = (old.name.clone(), part, version.version);
                        if let Some(holders) = self.by_schema_id.get_mut(&version.id) {
                            holders.remove(&key);
                        }
                        for (dependency, direct) in dependencies_of(version) {
                            if let Some(set) = self.referrers.get_mut(&dependency) {
                                set.remove(&(key.clone(), direct));
                                if set.is_empty() {
                                    self.referrers.remove(&dependency);
                                }
                            }
                        }
                    }
                }
                for (part, version) in stream.all_versions() {
                    let key = (stream.name.clone(), part, version.version);
                    self.by_schema_id
                        .entry(version.id)
                        .or_default()
                        .insert(key.clone());
                    for (dependency, direct) in dependencies_of(version) {
                        self.referrers
                            .entry(dependency)
                            .or_default()
                            .insert((key.clone(), direct));
                    }
                }
                self.by_topic
                    .entry(stream.topic.clone())
                    .or_default()
                    .insert(stream.name.clone());
                self.by_owner
                    .entry(stream.owner.clone())
                    .or_default()
                    .insert(stream.name.clone());
                self.streams.insert(stream.name.clone(), Arc::new(stream));
                vec![]
            }
            pb::watch_event::Change::Contract(contract) => {
                if let Some(old) = self.contracts.get(&contract.id) {
                    for version in &old.delivered_schemas {
                        if let Some(holders) = self.delivered_by_id.get_mut(&version.id) {
                            holders.remove(&(old.id.clone(), version.version));
                        }
                    }
                }
                for version in &contract.delivered_schemas {
                    self.delivered_by_id
                        .entry(version.id)
                        .or_default()
                        .insert((contract.id.clone(), version.version));
                }
                let key = (contract.consumer.clone(), contract.stream.clone());
                if crate::push::is_active(&contract) {
                    self.active.insert(key, contract.id.clone());
                    self.active_by_consumer
                        .entry(contract.consumer.clone())
                        .or_default()
                        .insert(contract.id.clone());
                } else {
                    if self.active.get(&key) == Some(&contract.id) {
                        self.active.remove(&key);
                    }
                    if let Some(ids) = self.active_by_consumer.get_mut(&contract.consumer) {
                        ids.remove(&contract.id);
                    }
                }
                self.by_consumer
                    .entry(contract.consumer.clone())
                    .or_default()
                    .insert(contract.id.clone());
                self.by_stream
                    .entry(contract.stream.clone())
                    .or_default()
                    .insert(contract.id.clone());
                let announced = Change::Contract(Box::new(contract.clone()));
                self.contracts
                    .insert(contract.id.clone(), Arc::new(contract));
                vec![announced]
            }
            pb::watch_event::Change::Document(_) => vec![],
        }
    }

    /// `org`'s active contract on `stream`, unless its end time passed (the
    /// catalog expires it then, but may be away).
    pub(super) fn active_contract(&self, org: &str, stream: &str) -> Option<Arc<pb::Contract>> {
        let id = self.active.get(&(org.to_string(), stream.to_string()))?;
        let contract = self.contracts.get(id)?;
        (!past_end(contract)).then(|| contract.clone())
    }
}

/// Whether `contract`'s end time has passed (the catalog expires it then,
/// but may be away).
pub(super) fn past_end(contract: &pb::Contract) -> bool {
    let end = contract.terms.as_ref().map_or(0, |t| t.end_time_ms);
    end != 0 && end <= freeport_common::now_ms()
}

/// Runs `decide` with the policies' facts about `org` (an admin for
/// `None`) and `stream`; false for an organization the view does not know.
pub(super) fn as_subject(
    index: &Index,
    org: Option<&str>,
    stream: &pb::Stream,
    decide: impl FnOnce(&Who<'_>, &StreamFacts<'_>) -> bool,
) -> bool {
    let classification = crate::rest::classification_name(stream.classification);
    let facts = StreamFacts {
        name: &stream.name,
        owner: &stream.owner,
        classification: &classification,
    };
    match org {
        None => decide(&Who::Admin, &facts),
        Some(name) => {
            let Some(org) = index.orgs.get(name) else {
                return false;
            };
            let kind = crate::rest::org_kind_name(org.kind);
            decide(&Who::Org { name, kind: &kind }, &facts)
        }
    }
}
