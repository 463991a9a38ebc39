use std::collections::BTreeMap;
use std::sync::Mutex;

use freeport_common::names::{OrgName, StreamName};

use super::{number, Commit, Store, StoreError};
use crate::audit::{chain, AuditEntry, AuditHead};
use crate::domain::{
    ApiKeyRecord, AsyncApiDocument, Change, Contract, Event, Organization, Stream,
};

/// Everything in maps behind one lock; for tests and throw-away hubs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    orgs: BTreeMap<OrgName, Organization>,
    streams: BTreeMap<StreamName, Stream>,
    contracts: BTreeMap<String, Contract>,
    documents: BTreeMap<String, AsyncApiDocument>,
    api_keys: BTreeMap<String, ApiKeyRecord>,
    events: Vec<Event>,
    audit: Vec<AuditEntry>,
    audit_head: AuditHead,
}

impl MemoryStore {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied commit
        // (commit builds everything before touching the maps), so a poisoned
        // lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get_org(&self, name: &OrgName) -> Result<Option<Organization>, StoreError> {
        Ok(self.state().orgs.get(name).cloned())
    }

    fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        Ok(self.state().orgs.values().cloned().collect())
    }

    fn get_stream(&self, name: &StreamName) -> Result<Option<Stream>, StoreError> {
        Ok(self.state().streams.get(name).cloned())
    }

    fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        Ok(self.state().streams.values().cloned().collect())
    }

    fn get_contract(&self, id: &str) -> Result<Option<Contract>, StoreError> {
        Ok(self.state().contracts.get(id).cloned())
    }

    fn list_contracts(&self) -> Result<Vec<Contract>, StoreError> {
        Ok(self.state().contracts.values().cloned().collect())
    }

    fn get_document(&self, id: &str) -> Result<Option<AsyncApiDocument>, StoreError> {
        Ok(self.state().documents.get(id).cloned())
    }

    fn list_documents(&self) -> Result<Vec<AsyncApiDocument>, StoreError> {
        Ok(self.state().documents.values().cloned().collect())
    }

    fn get_api_key(&self, key_sha256: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.state().api_keys.get(key_sha256).cloned())
    }

    fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self.state().api_keys.values().cloned().collect())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.state().events.last().map_or(0, |e| e.revision))
    }

    fn commit(&self, commit: Commit) -> Result<Vec<Event>, StoreError> {
        let mut state = self.state();
        let revision = state.events.last().map_or(0, |e| e.revision);
        let events = number(revision, commit.changes);
        for event in &events {
            match &event.change {
                Change::Organization(o) => {
                    state.orgs.insert(o.name.clone(), o.clone());
                }
                Change::Stream(s) => {
                    state.streams.insert(s.name.clone(), s.clone());
                }
                Change::Contract(c) => {
                    state.contracts.insert(c.id.clone(), c.clone());
                }
                Change::Document(d) => {
                    state.documents.insert(d.id.clone(), d.clone());
                }
                Change::ApiKey(k) => {
                    state.api_keys.insert(k.key_sha256.clone(), k.clone());
                }
            }
        }
        for key in commit.api_keys {
            state.api_keys.insert(key.key_sha256.clone(), key);
        }
        state.events.extend(events.iter().cloned());
        let (entries, head) = chain(&state.audit_head, commit.audit);
        state.audit.extend(entries);
        state.audit_head = head;
        Ok(events)
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let state = self.state();
        // Revisions are dense from 1, so event N sits at index N - 1.
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(state.events.len());
        Ok(state.events[start..].iter().take(limit).cloned().collect())
    }

    fn blocks(&self) -> bool {
        false
    }

    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let state = self.state();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(state.audit.len());
        Ok(state.audit[start..].iter().take(limit).cloned().collect())
    }
}
