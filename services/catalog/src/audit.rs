//! The audit log: append-only, each entry chained to the one before by a
//! SHA-256 hash, written in the same atomic commit as the change it records.
//!
//! The hash covers the entry's sequence number, the previous hash and a
//! canonical JSON form of the record (object keys sorted at every level), so
//! it does not depend on how a serializer orders fields.

use freeport_common::json::canonical_json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the service describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// `admin:<key id>`, `org:<name>`, `service:link`, `system:bootstrap`.
    pub actor: String,
    /// `contract.approve`, `stream.register`, ...
    pub action: String,
    /// `contract:<id>`, `stream:<name>`, ...
    pub entity: String,
    pub detail: serde_json::Value,
    pub at_ms: i64,
}

impl AuditRecord {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        entity: impl Into<String>,
        detail: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            actor: actor.into(),
            action: action.into(),
            entity: entity.into(),
            detail,
            at_ms: freeport_common::now_ms(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1 for the first entry, then dense.
    pub seq: u64,
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// The last entry's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

pub fn entry_hash(seq: u64, prev_hash: &str, record: &AuditRecord) -> String {
    let body = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
    let mut hasher = Sha256::new();
    hasher.update(seq.to_be_bytes());
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json(&body).as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends `records` after `head`; returns the entries and the new head.
pub fn chain(head: &AuditHead, records: Vec<AuditRecord>) -> (Vec<AuditEntry>, AuditHead) {
    let mut head = head.clone();
    let entries = records
        .into_iter()
        .map(|record| {
            let seq = head.seq + 1;
            let hash = entry_hash(seq, &head.hash, &record);
            let entry = AuditEntry {
                seq,
                record,
                prev_hash: head.hash.clone(),
                hash: hash.clone(),
            };
            head = AuditHead { seq, hash };
            entry
        })
        .collect();
    (entries, head)
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {reason}")]
pub struct AuditBreak {
    pub seq: u64,
    pub reason: String,
}

/// Checks a chain read in order from its start; returns how many entries
/// it holds, or the first broken one.
pub fn verify(entries: impl IntoIterator<Item = AuditEntry>) -> Result<u64, AuditBreak> {
    let mut head = AuditHead::default();
    for entry in entries {
        let expected = head.seq + 1;
        let broken = |reason: String| AuditBreak {
            seq: entry.seq,
            reason,
        };
        if entry.seq != expected {
            return Err(broken(format!("expected entry {expected} here")));
        }
        if entry.prev_hash != head.hash {
            return Err(broken(
                "its previous hash does not match the entry before".into(),
            ));
        }
        let hash = entry_hash(entry.seq, &entry.prev_hash, &entry.record);
        if hash != entry.hash {
            return Err(broken("its content does not match its hash".into()));
        }
        head = AuditHead {
            seq: entry.seq,
            hash,
        };
    }
    Ok(head.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<AuditRecord> {
        (0..n)
            .map(|i| AuditRecord {
                actor: "admin:k".into(),
                action: "contract.approve".into(),
                entity: format!("contract:{i}"),
                detail: serde_json::json!({"b": i, "a": [1, {"z": 1, "y": 2}]}),
                at_ms: i as i64,
            })
            .collect()
    }

    #[test]
    fn a_chain_verifies_and_continues_across_commits() {
        let (first, head) = chain(&AuditHead::default(), records(3));
        let (second, head) = chain(&head, records(2));
        assert_eq!(head.seq, 5);
        let all: Vec<_> = first.into_iter().chain(second).collect();
        assert_eq!(all[3].prev_hash, all[2].hash);
        assert_eq!(verify(all), Ok(5));
    }

    #[test]
    fn verify_names_the_first_broken_entry() {
        let (entries, _) = chain(&AuditHead::default(), records(5));
        let mut tampered = entries.clone();
        tampered[2].record.actor = "admin:someone-else".into();
        let err = verify(tampered).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("content"), "{err}");

        let mut missing = entries.clone();
        missing.remove(1);
        assert_eq!(verify(missing).unwrap_err().seq, 3);

        let mut relinked = entries;
        relinked[4].prev_hash = GENESIS_HASH.into();
        assert_eq!(verify(relinked).unwrap_err().seq, 5);
    }
}
