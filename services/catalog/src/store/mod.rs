//! Storage behind a trait: sled for real use, in memory for tests, chosen by
//! URL (`sled://PATH` or `memory://`). One test suite runs against both.
//!
//! Every commit writes its entities, one change-log event per entity and the
//! new revision in one atomic step, so the Watch stream and the entities
//! never disagree.

mod memory;
mod sled_store;
#[cfg(test)]
mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use freeport_common::names::{OrgName, StreamName};

use crate::audit::{AuditBreak, AuditEntry, AuditRecord};
use crate::domain::{
    ApiKeyRecord, AsyncApiDocument, Change, Contract, Event, Organization, Stream,
};

pub use memory::MemoryStore;
pub use sled_store::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid store url {0:?}: expected sled://PATH or memory://")]
    BadUrl(String),
}

/// One atomic write.
#[derive(Debug, Default, Clone)]
pub struct Commit {
    pub changes: Vec<Change>,
    pub api_keys: Vec<ApiKeyRecord>,
    /// Appended to the audit chain in the same atomic write.
    pub audit: Vec<AuditRecord>,
}

impl Commit {
    /// One change and the audit entry that explains it.
    pub fn one(change: Change, audit: AuditRecord) -> Commit {
        Commit::audited(vec![change], vec![audit])
    }

    /// Changes and the audit entries that explain them.
    pub fn audited(changes: Vec<Change>, audit: Vec<AuditRecord>) -> Commit {
        Commit {
            changes,
            api_keys: vec![],
            audit,
        }
    }
}

pub trait Store: Send + Sync + 'static {
    fn get_org(&self, name: &OrgName) -> Result<Option<Organization>, StoreError>;
    fn list_orgs(&self) -> Result<Vec<Organization>, StoreError>;
    fn get_stream(&self, name: &StreamName) -> Result<Option<Stream>, StoreError>;
    fn list_streams(&self) -> Result<Vec<Stream>, StoreError>;
    fn get_contract(&self, id: &str) -> Result<Option<Contract>, StoreError>;
    fn list_contracts(&self) -> Result<Vec<Contract>, StoreError>;
    fn get_document(&self, id: &str) -> Result<Option<AsyncApiDocument>, StoreError>;
    fn list_documents(&self) -> Result<Vec<AsyncApiDocument>, StoreError>;
    fn get_api_key(&self, key_sha256: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// The revision of the last commit; 0 before the first.
    fn revision(&self) -> Result<u64, StoreError>;
    /// Writes everything in `commit` atomically and durably; returns the
    /// events it appended, numbered from `revision() + 1`.
    fn commit(&self, commit: Commit) -> Result<Vec<Event>, StoreError>;
    /// Up to `limit` events with a revision above `after`, in order.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Up to `limit` audit entries with a sequence number above `after`, in order.
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Whether calls may block on I/O (then they run on the blocking pool).
    fn blocks(&self) -> bool {
        true
    }
}

/// Checks the whole audit chain; returns its length or the first broken entry.
pub fn verify_audit(store: &dyn Store) -> Result<Result<u64, AuditBreak>, StoreError> {
    const PAGE: usize = 1024;
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        entries.extend(page);
    }
    Ok(crate::audit::verify(entries))
}

/// Opens the store a URL names.
pub fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == "memory://" {
        return Ok(Arc::new(MemoryStore::default()));
    }
    match url.strip_prefix("sled://") {
        Some(path) if !path.is_empty() => Ok(Arc::new(SledStore::open(PathBuf::from(path))?)),
        _ => Err(StoreError::BadUrl(url.to_string())),
    }
}

/// Numbers the changes of a commit as events after `revision`.
fn number(revision: u64, changes: Vec<Change>) -> Vec<Event> {
    changes
        .into_iter()
        .zip(revision + 1..)
        .map(|(change, revision)| Event { revision, change })
        .collect()
}
