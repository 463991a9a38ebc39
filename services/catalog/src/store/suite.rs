//! One behaviour, two stores: every test here runs against both.

use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};

use super::{Commit, MemoryStore, SledStore, Store};
use crate::audit::AuditRecord;
use crate::domain::{
    ApiKeyRecord, Change, ClusterDestination, Contract, ContractState, OrgKind, Organization, Role,
    Stream,
};

fn org(name: &str) -> Organization {
    Organization {
        name: OrgName::parse(name).unwrap(),
        kind: OrgKind::Partner,
        display_name: name.to_uppercase(),
        created_at_ms: 1,
        contacts: vec![],
        trusted_cert_fingerprints: vec![],
        revoked_certificates: vec![],
    }
}

fn stream(name: &str) -> Stream {
    Stream {
        name: StreamName::parse(name).unwrap(),
        owner: OrgName::parse("owner").unwrap(),
        cluster: ClusterName::parse("a").unwrap(),
        topic: TopicName::parse(name).unwrap(),
        title: String::new(),
        description: String::new(),
        tags: vec!["x".into()],
        value_schema: serde_json::json!({"type": "object"}),
        created_at_ms: 1,
        updated_at_ms: 1,
        classification: Default::default(),
        personal_data_fields: vec![],
        partitions: 1,
        retention_ms: Some(1000),
        schema_format: Default::default(),
        compatibility: Default::default(),
        schema_versions: vec![],
        validation_off: false,
        key_schema: Default::default(),
        retired_schemas: vec![],
    }
}

fn key(id: &str, hash: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: id.into(),
        key_sha256: hash.into(),
        role: Role::Admin,
        org: None,
        created_at_ms: 1,
        name: String::new(),
        expires_at_ms: None,
        revoked: None,
        last_used_ms: None,
        replaces: None,
    }
}

fn contract(id: &str, state: ContractState) -> Contract {
    Contract {
        id: id.into(),
        stream: StreamName::parse("orders").unwrap(),
        consumer: OrgName::parse("partner").unwrap(),
        purpose: "p".into(),
        delivery: Default::default(),
        destination: Some(ClusterDestination {
            cluster: ClusterName::parse("b").unwrap(),
            topic: TopicName::parse("t").unwrap(),
        }),
        terms: Default::default(),
        state,
        history: vec![],
        created_at_ms: 1,
        link_status: String::new(),
        delivered_schemas: vec![],
    }
}

fn commit_assigns_dense_revisions_and_stores_entities(store: &dyn Store) {
    assert_eq!(store.revision().unwrap(), 0);
    let events = store
        .commit(Commit {
            changes: vec![
                Change::Organization(org("owner")),
                Change::Stream(stream("orders")),
            ],
            audit: vec![],
            api_keys: vec![key("k1", "ab")],
        })
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [1, 2]
    );
    // A key change is an entity too: stored under its hash and logged.
    let mut revoked = key("k2", "cd");
    revoked.revoked = Some(crate::domain::Withdrawal {
        at_ms: 2,
        by: "admin:x".into(),
        reason: "leaked".into(),
    });
    let logged = store
        .commit(Commit {
            changes: vec![Change::ApiKey(revoked.clone())],
            api_keys: vec![],
            audit: vec![],
        })
        .unwrap();
    assert_eq!(logged[0].change, Change::ApiKey(revoked.clone()));
    assert_eq!(store.get_api_key("cd").unwrap(), Some(revoked));
    assert_eq!(store.list_api_keys().unwrap().len(), 2);
    let more = store
        .commit(Commit {
            changes: vec![Change::Contract(contract("c1", ContractState::Requested))],
            api_keys: vec![],
            audit: vec![],
        })
        .unwrap();
    assert_eq!(more[0].revision, 4);
    assert_eq!(store.revision().unwrap(), 4);
    assert_eq!(
        store.get_org(&OrgName::parse("owner").unwrap()).unwrap(),
        Some(org("owner"))
    );
    assert_eq!(
        store
            .get_stream(&StreamName::parse("orders").unwrap())
            .unwrap(),
        Some(stream("orders"))
    );
    assert_eq!(store.get_api_key("ab").unwrap().unwrap().key_id, "k1");
    assert_eq!(store.get_api_key("zz").unwrap(), None);
    assert_eq!(store.list_contracts().unwrap().len(), 1);
}

fn updates_replace_and_log_each_version(store: &dyn Store) {
    store
        .commit(Commit {
            changes: vec![Change::Contract(contract("c1", ContractState::Requested))],
            api_keys: vec![],
            audit: vec![],
        })
        .unwrap();
    store
        .commit(Commit {
            changes: vec![Change::Contract(contract("c1", ContractState::Approved))],
            api_keys: vec![],
            audit: vec![],
        })
        .unwrap();
    assert_eq!(
        store.get_contract("c1").unwrap().unwrap().state,
        ContractState::Approved
    );
    let log = store.events_after(0, 100).unwrap();
    assert_eq!(log.len(), 2);
    assert!(matches!(&log[0].change, Change::Contract(c) if c.state == ContractState::Requested));
    assert_eq!(store.events_after(1, 100).unwrap(), log[1..]);
    assert_eq!(store.events_after(2, 100).unwrap(), vec![]);
    assert_eq!(store.events_after(0, 1).unwrap(), log[..1]);
}

fn audit_entries_chain_across_commits_and_verify(store: &dyn Store) {
    let record = |i: i64| {
        AuditRecord::new(
            "admin:k",
            "contract.approve",
            format!("contract:{i}"),
            serde_json::json!({"i": i}),
        )
    };
    for batch in [vec![record(1), record(2)], vec![], vec![record(3)]] {
        store
            .commit(Commit {
                changes: vec![Change::Organization(org("owner"))],
                api_keys: vec![],
                audit: batch,
            })
            .unwrap();
    }
    let entries = store.audit_after(0, 100).unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(entries[2].prev_hash, entries[1].hash);
    assert_eq!(store.audit_after(2, 100).unwrap(), entries[2..]);
    assert_eq!(super::verify_audit(store).unwrap(), Ok(3));
}

macro_rules! suite {
    ($($test:ident),*) => {
        mod memory {
            $(#[test] fn $test() { super::$test(&super::MemoryStore::default()); })*
        }
        mod sled {
            $(#[test] fn $test() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::SledStore::open(dir.path().join("db")).unwrap();
                super::$test(&store);
            })*
        }
    };
}

suite!(
    commit_assigns_dense_revisions_and_stores_entities,
    updates_replace_and_log_each_version,
    audit_entries_chain_across_commits_and_verify
);

#[test]
fn sled_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path().join("db")).unwrap();
        store
            .commit(Commit {
                changes: vec![Change::Stream(stream("orders"))],
                api_keys: vec![],
                audit: vec![],
            })
            .unwrap();
    }
    let store = SledStore::open(dir.path().join("db")).unwrap();
    assert_eq!(store.revision().unwrap(), 1);
    assert_eq!(store.list_streams().unwrap(), vec![stream("orders")]);
}
