use std::path::PathBuf;

use freeport_common::names::{OrgName, StreamName};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{number, Commit, Store, StoreError};
use crate::audit::{chain, AuditEntry, AuditHead};
use crate::domain::{
    ApiKeyRecord, AsyncApiDocument, Change, Contract, Event, Organization, Stream,
};

const REVISION_KEY: &[u8] = b"revision";
const AUDIT_HEAD_KEY: &[u8] = b"audit_head";

/// Which tree an entity of a commit goes to.
#[derive(Clone, Copy)]
enum Kind {
    Org,
    Stream,
    Contract,
    Document,
    ApiKey,
}

/// sled on local disk. One tree per entity kind, plus the change log keyed by
/// big-endian revision and a `meta` tree holding the current revision.
pub struct SledStore {
    db: sled::Db,
    orgs: sled::Tree,
    streams: sled::Tree,
    contracts: sled::Tree,
    documents: sled::Tree,
    api_keys: sled::Tree,
    events: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(backend)
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn decode_revision(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        key: "revision".into(),
        reason: format!("{} bytes instead of 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

impl SledStore {
    pub fn open(path: PathBuf) -> Result<SledStore, StoreError> {
        // The store's lock is released when the last of its threads lets
        // go of it, a moment after an earlier handle in this process was
        // dropped: a locked store is tried again for a little while.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(&path).open() {
                // sled words it "could not acquire lock", its kind `Other`.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && tries < 100 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => {
                    break other.map_err(|e| {
                        StoreError::Backend(format!(
                            "cannot open sled store at {}: {e}",
                            path.display()
                        ))
                    })?
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(SledStore {
            orgs: tree("orgs")?,
            streams: tree("streams")?,
            contracts: tree("contracts")?,
            documents: tree("documents")?,
            api_keys: tree("api_keys")?,
            events: tree("events")?,
            audit: tree("audit")?,
            meta: tree("meta")?,
            db,
        })
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        tree.get(key)
            .map_err(backend)?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    /// Up to `limit` values keyed by a big-endian number above `after`.
    fn after<T: DeserializeOwned>(
        tree: &sled::Tree,
        after: u64,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        tree.range(after.saturating_add(1).to_be_bytes()..)
            .take(limit)
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }

    fn list<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        tree.iter()
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }
}

impl Store for SledStore {
    fn get_org(&self, name: &OrgName) -> Result<Option<Organization>, StoreError> {
        Self::get(&self.orgs, name.as_str().as_bytes())
    }

    fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        Self::list(&self.orgs)
    }

    fn get_stream(&self, name: &StreamName) -> Result<Option<Stream>, StoreError> {
        Self::get(&self.streams, name.as_str().as_bytes())
    }

    fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        Self::list(&self.streams)
    }

    fn get_contract(&self, id: &str) -> Result<Option<Contract>, StoreError> {
        Self::get(&self.contracts, id.as_bytes())
    }

    fn list_contracts(&self) -> Result<Vec<Contract>, StoreError> {
        Self::list(&self.contracts)
    }

    fn get_document(&self, id: &str) -> Result<Option<AsyncApiDocument>, StoreError> {
        Self::get(&self.documents, id.as_bytes())
    }

    fn list_documents(&self) -> Result<Vec<AsyncApiDocument>, StoreError> {
        Self::list(&self.documents)
    }

    fn get_api_key(&self, key_sha256: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Self::get(&self.api_keys, key_sha256.as_bytes())
    }

    fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Self::list(&self.api_keys)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.meta
            .get(REVISION_KEY)
            .map_err(backend)?
            .map_or(Ok(0), |bytes| decode_revision(&bytes))
    }

    fn commit(&self, commit: Commit) -> Result<Vec<Event>, StoreError> {
        // Encode everything before the transaction so it cannot fail halfway
        // for a reason that is not storage.
        let mut entities = Vec::with_capacity(commit.changes.len());
        for change in &commit.changes {
            entities.push(match change {
                Change::Organization(o) => (Kind::Org, o.name.as_str().as_bytes(), encode(o)?),
                Change::Stream(s) => (Kind::Stream, s.name.as_str().as_bytes(), encode(s)?),
                Change::Contract(c) => (Kind::Contract, c.id.as_bytes(), encode(c)?),
                Change::Document(d) => (Kind::Document, d.id.as_bytes(), encode(d)?),
                Change::ApiKey(k) => (Kind::ApiKey, k.key_sha256.as_bytes(), encode(k)?),
            });
        }
        let keys = commit
            .api_keys
            .iter()
            .map(|k| Ok((k.key_sha256.as_bytes().to_vec(), encode(k)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;

        let result = (
            &self.orgs,
            &self.streams,
            &self.contracts,
            &self.documents,
            &self.api_keys,
            &self.events,
            &self.audit,
            &self.meta,
        )
            .transaction(
                |(orgs, streams, contracts, documents, api_keys, events, audit, meta)| {
                    let revision = match meta.get(REVISION_KEY)? {
                        Some(bytes) => {
                            decode_revision(&bytes).map_err(ConflictableTransactionError::Abort)?
                        }
                        None => 0,
                    };
                    let numbered = number(revision, commit.changes.clone());
                    for ((kind, key, value), event) in entities.iter().zip(&numbered) {
                        let tree = match kind {
                            Kind::Org => orgs,
                            Kind::Stream => streams,
                            Kind::Contract => contracts,
                            Kind::Document => documents,
                            Kind::ApiKey => api_keys,
                        };
                        tree.insert(*key, value.as_slice())?;
                        let encoded = encode(event).map_err(ConflictableTransactionError::Abort)?;
                        events.insert(&event.revision.to_be_bytes(), encoded)?;
                    }
                    for (key, value) in &keys {
                        api_keys.insert(key.as_slice(), value.as_slice())?;
                    }
                    let last = numbered.last().map_or(revision, |e| e.revision);
                    meta.insert(REVISION_KEY, &last.to_be_bytes())?;
                    let head = match meta.get(AUDIT_HEAD_KEY)? {
                        Some(bytes) => decode(AUDIT_HEAD_KEY, &bytes)
                            .map_err(ConflictableTransactionError::Abort)?,
                        None => AuditHead::default(),
                    };
                    let (entries, head) = chain(&head, commit.audit.clone());
                    for entry in &entries {
                        let encoded = encode(entry).map_err(ConflictableTransactionError::Abort)?;
                        audit.insert(&entry.seq.to_be_bytes(), encoded)?;
                    }
                    let encoded = encode(&head).map_err(ConflictableTransactionError::Abort)?;
                    meta.insert(AUDIT_HEAD_KEY, encoded)?;
                    Ok(numbered)
                },
            );
        let events = match result {
            Ok(events) => events,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
        };
        // Acknowledged means on disk: a crash right after must not lose it.
        self.db.flush().map_err(backend)?;
        Ok(events)
    }

    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Self::after(&self.audit, after, limit)
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        Self::after(&self.events, after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_another_handle_still_holds_opens_once_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = sled::Config::new().path(dir.path()).open().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let store = SledStore::open(dir.path().to_path_buf());
        release.join().unwrap();
        assert!(store.is_ok(), "{:?}", store.err());
    }
    use crate::store::Store;

    /// Records as the version before key lifecycles and certificate
    /// revocation wrote them: no name, expiry, revocation or last use on a
    /// key, no revoked certificates on an organization.
    #[test]
    fn a_store_written_before_credentials_had_a_lifecycle_opens() {
        let dir = tempfile::tempdir().unwrap();
        let org = r#"{"name":"acme","kind":"internal","display_name":"ACME","created_at_ms":1,"contacts":[],"trusted_cert_fingerprints":["ab"]}"#;
        let key = r#"{"key_id":"key-1","key_sha256":"00ff","role":"member","org":"acme","created_at_ms":2}"#;
        let event = format!(r#"{{"revision":1,"change":{{"Organization":{org}}}}}"#);
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            db.open_tree("orgs").unwrap().insert("acme", org).unwrap();
            db.open_tree("api_keys")
                .unwrap()
                .insert("00ff", key)
                .unwrap();
            db.open_tree("events")
                .unwrap()
                .insert(1u64.to_be_bytes(), event.as_bytes())
                .unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(REVISION_KEY, &1u64.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path().to_path_buf()).unwrap();
        let org = store
            .get_org(&freeport_common::names::OrgName::parse("acme").unwrap())
            .unwrap()
            .unwrap();
        assert!(org.revoked_certificates.is_empty());
        let key = store.get_api_key("00ff").unwrap().unwrap();
        assert_eq!(
            (key.name.as_str(), key.expires_at_ms, &key.revoked),
            ("", None, &None)
        );
        assert_eq!(key.state(0), crate::domain::KeyState::Active);
        assert_eq!(store.events_after(0, 10).unwrap().len(), 1);
        assert_eq!(store.revision().unwrap(), 1);
    }
}
