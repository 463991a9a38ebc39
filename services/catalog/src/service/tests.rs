use std::sync::Arc;

use freeport_common::config::{ClusterConfig, Clusters};
use freeport_common::error::ErrorCode;
use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::domain::*;
use crate::store::MemoryStore;

/// Cluster `a` is the owner's, `b` the partner's, `c` a third party's.
fn clusters() -> Clusters {
    [("a", "owner"), ("b", "partner"), ("c", "initech")]
        .into_iter()
        .map(|(n, owner)| {
            (
                ClusterName::parse(n).unwrap(),
                ClusterConfig::owned_by(OrgName::parse(owner).unwrap(), format!("{n}:9092")),
            )
        })
        .collect()
}

struct Fixture {
    catalog: Arc<Catalog>,
    admin: Principal,
    owner: Principal,
    partner: Principal,
}

async fn fixture() -> Fixture {
    let catalog = Arc::new(Catalog::new(
        Arc::new(MemoryStore::default()),
        clusters(),
        CancellationToken::new(),
    ));
    let (_, admin_key) = catalog.bootstrap_admin_key().await.unwrap().unwrap();
    assert!(catalog.bootstrap_admin_key().await.unwrap().is_none());
    let admin = catalog.authenticate(&admin_key).unwrap();
    let mut members = vec![];
    for name in ["owner", "partner"] {
        let org = OrgName::parse(name).unwrap();
        catalog
            .create_organization(&admin, org.clone(), OrgKind::Partner, OrgDetails::default())
            .await
            .unwrap();
        let (_, key) = catalog
            .create_api_key(&admin, Role::Member, Some(org), Default::default())
            .await
            .unwrap();
        members.push(catalog.authenticate(&key).unwrap());
    }
    let partner = members.pop().unwrap();
    let owner = members.pop().unwrap();
    Fixture {
        catalog,
        admin,
        owner,
        partner,
    }
}

fn orders() -> NewStream {
    NewStream {
        name: StreamName::parse("orders").unwrap(),
        cluster: ClusterName::parse("a").unwrap(),
        topic: TopicName::parse("orders").unwrap(),
        title: "Orders".into(),
        description: String::new(),
        tags: vec!["sales".into(), "sales".into()],
        value_schema: serde_json::json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "email": {"type": "string"}
        }}),
        classification: Classification::Partner,
        personal_data_fields: vec!["/email".into()],
        partitions: 3,
        retention_ms: None,
        schema_format: SchemaFormat::JsonSchema,
        compatibility: Compatibility::Backward,
    }
}

fn request(topic: &str) -> NewContract {
    NewContract {
        stream: StreamName::parse("orders").unwrap(),
        purpose: "analytics".into(),
        delivery: Delivery::Kafka,
        destination: Some(ClusterDestination {
            cluster: ClusterName::parse("b").unwrap(),
            topic: TopicName::parse(topic).unwrap(),
        }),
        terms: ContractTerms::default(),
    }
}

#[tokio::test]
async fn api_keys_are_stored_hashed_and_resolve_to_their_principal() {
    let f = fixture().await;
    assert!(matches!(f.owner, Principal::Member { ref org, .. } if org.as_str() == "owner"));
    assert!(f.admin.is_admin());
    assert!(matches!(
        f.catalog.authenticate("fpk_wrong"),
        Err(CatalogError::Unauthenticated)
    ));
    for record in f.catalog.store.list_api_keys().unwrap() {
        assert_eq!(record.key_sha256.len(), 64);
        assert!(!record.key_sha256.starts_with("fpk_"));
    }
}

#[tokio::test]
async fn the_contract_lifecycle_records_who_and_refuses_illegal_moves() {
    let f = fixture().await;
    let stream = f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    assert_eq!(stream.tags, vec!["sales"]);
    let c = f
        .catalog
        .request_contract(&f.partner, request("partner.orders"))
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Requested);
    assert!(matches!(
        f.catalog
            .transition_contract(
                &f.partner,
                &c.id,
                ContractAction::Approve,
                String::new(),
                None
            )
            .await,
        Err(CatalogError::Forbidden(_))
    ));
    let c = f
        .catalog
        .transition_contract(&f.admin, &c.id, ContractAction::Approve, "ok".into(), None)
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Approved);
    let c = f
        .catalog
        .report_link_status(&c.id, LinkStatus::Running, "")
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Active);
    assert_eq!(c.link_status, "running");
    let c = f
        .catalog
        .transition_contract(&f.admin, &c.id, ContractAction::Revoke, "done".into(), None)
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Revoked);
    let history: Vec<_> = c.history.iter().map(|t| (t.to, t.actor.as_str())).collect();
    assert_eq!(history[0].0, ContractState::Approved);
    assert!(history[0].1.starts_with("admin:key-"));
    assert_eq!(history[1], (ContractState::Active, "service:link"));

    let revision = f.catalog.store.revision().unwrap();
    let err = f
        .catalog
        .transition_contract(
            &f.admin,
            &c.id,
            ContractAction::Approve,
            String::new(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot approve contract {}: it is revoked", c.id)
    );
    assert_eq!(
        f.catalog.store.revision().unwrap(),
        revision,
        "a refusal wrote something"
    );
    let trail: Vec<_> = f
        .catalog
        .audit_trail(&format!("contract:{}", c.id))
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.record.action,
                e.record.actor.split(':').next().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("contract.request", "org"),
        ("contract.approve", "admin"),
        ("contract.activate", "service"),
        ("contract.revoke", "admin"),
    ];
    assert_eq!(
        trail,
        expected.map(|(a, b)| (a.to_string(), b.to_string())),
        "one entry per change, none for the refusal"
    );
    // Organizations, keys and the stream are audited too, and the chain holds.
    let length = f.catalog.verify_audit().unwrap().unwrap();
    assert_eq!(
        length,
        f.catalog.store.audit_after(0, 1000).unwrap().len() as u64
    );
    assert!(length >= 9, "{length}");
    // A late report from the link does not revive it.
    let c = f
        .catalog
        .report_link_status(&c.id, LinkStatus::Running, "")
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Revoked);
    assert_eq!(c.link_status, "running");
    let c = f
        .catalog
        .report_link_status(&c.id, LinkStatus::Stopped, "")
        .await
        .unwrap();
    assert_eq!(
        (c.state, c.link_status.as_str()),
        (ContractState::Revoked, "stopped")
    );
}

#[tokio::test]
async fn destinations_cannot_be_shared_or_point_at_a_source() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let first = f
        .catalog
        .request_contract(&f.partner, request("copy"))
        .await
        .unwrap();
    assert!(matches!(
        f.catalog
            .request_contract(&f.partner, request("copy"))
            .await,
        Err(CatalogError::DestinationInUse { .. })
    ));
    // The partner's own stream on its own cluster is no destination either.
    let mut own = orders();
    own.name = StreamName::parse("mine").unwrap();
    own.cluster = ClusterName::parse("b").unwrap();
    own.topic = TopicName::parse("mine").unwrap();
    f.catalog.register_stream(&f.partner, own).await.unwrap();
    assert!(matches!(
        f.catalog
            .request_contract(&f.partner, request("mine"))
            .await,
        Err(CatalogError::DestinationInUse { .. })
    ));
    // Once the first is over, its destination is free again.
    f.catalog
        .transition_contract(
            &f.admin,
            &first.id,
            ContractAction::Reject,
            String::new(),
            None,
        )
        .await
        .unwrap();
    f.catalog
        .request_contract(&f.partner, request("copy"))
        .await
        .unwrap();
}

#[tokio::test]
async fn registration_validates_references_and_uniqueness() {
    let f = fixture().await;
    let mut unknown = orders();
    unknown.cluster = ClusterName::parse("nowhere").unwrap();
    let err = f
        .catalog
        .register_stream(&f.owner, unknown)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown cluster \"nowhere\""),
        "{err}"
    );
    assert!(matches!(
        f.catalog.register_stream(&f.admin, orders()).await,
        Err(CatalogError::Forbidden(ref m)) if m.contains("in owner")
    ));
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    assert!(matches!(
        f.catalog.register_stream(&f.owner, orders()).await,
        Err(CatalogError::AlreadyExists(_))
    ));
    let mut same_topic = orders();
    same_topic.name = StreamName::parse("orders2").unwrap();
    assert!(matches!(
        f.catalog.register_stream(&f.owner, same_topic).await,
        Err(CatalogError::AlreadyExists(_))
    ));
}

fn refusal_code(result: Result<impl std::fmt::Debug, CatalogError>) -> ErrorCode {
    result.expect_err("refused").code()
}

#[tokio::test]
async fn streams_live_on_their_owners_clusters_and_contracts_deliver_into_the_consumers() {
    let f = fixture().await;
    // The partner claims a topic on the owner's cluster: refused, nothing written.
    let revision = f.catalog.store.revision().unwrap();
    let mut claim = orders();
    claim.name = StreamName::parse("mine").unwrap();
    claim.topic = TopicName::parse("the-owners-own-topic").unwrap();
    let refused = f.catalog.register_stream(&f.partner, claim.clone()).await;
    assert_eq!(refusal_code(refused), ErrorCode::NotClusterOwner);
    // Nor for another organization, nor on a topic of the hub's.
    let refused = f
        .catalog
        .register_stream_for(
            &f.partner,
            Some(OrgName::parse("owner").unwrap()),
            claim.clone(),
        )
        .await;
    assert!(
        matches!(refused, Err(CatalogError::Forbidden(_))),
        "{refused:?}"
    );
    let mut dead_letters = orders();
    dead_letters.topic = TopicName::parse("freeport.dlq.x").unwrap();
    let refused = f.catalog.register_stream(&f.owner, dead_letters).await;
    assert_eq!(refusal_code(refused), ErrorCode::ReservedTopic);
    assert_eq!(f.catalog.store.revision().unwrap(), revision);

    // An admin registers for the owner, on the owner's cluster only; the
    // audit says it acted on the owner's behalf.
    let owner = OrgName::parse("owner").unwrap();
    let refused = f
        .catalog
        .register_stream_for(&f.admin, Some(OrgName::parse("partner").unwrap()), orders())
        .await;
    assert_eq!(refusal_code(refused), ErrorCode::NotClusterOwner);
    let stream = f
        .catalog
        .register_stream_for(&f.admin, Some(owner.clone()), orders())
        .await
        .unwrap();
    assert_eq!(stream.owner, owner);
    let trail = f.catalog.audit_trail("stream:orders").unwrap();
    assert_eq!(trail[0].record.actor, f.admin.audit_name());
    assert_eq!(trail[0].record.detail["on_behalf_of"], "owner");

    // Destinations: the consumer's own clusters, never a reserved topic.
    for (cluster, topic, code) in [
        ("a", "copy", ErrorCode::NotClusterOwner),
        ("c", "copy", ErrorCode::NotClusterOwner),
        ("b", "freeport.dlq.orders", ErrorCode::ReservedTopic),
    ] {
        let mut foreign = request(topic);
        foreign.destination.as_mut().unwrap().cluster = ClusterName::parse(cluster).unwrap();
        let refused = f.catalog.request_contract(&f.partner, foreign).await;
        assert_eq!(refusal_code(refused), code, "{cluster}/{topic}");
    }
    f.catalog
        .request_contract(&f.partner, request("copy"))
        .await
        .unwrap();
    let report = f.catalog.ownership_problems().unwrap();
    assert_eq!(
        (report.problems.len(), report.streams, report.contracts),
        (0, 1, 1),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_store_from_before_ownership_opens_and_its_breaches_are_reported_unchanged() {
    // Written when nobody owned cluster a: the partner claimed a topic on
    // it and asked for a copy into the owner's cluster.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut anyone: Clusters = clusters();
    for config in anyone.values_mut() {
        config.owner = Some(OrgName::parse("partner").unwrap());
    }
    let before = Catalog::new(store.clone(), anyone, CancellationToken::new());
    let (_, admin_key) = before.bootstrap_admin_key().await.unwrap().unwrap();
    let admin = before.authenticate(&admin_key).unwrap();
    let partner = OrgName::parse("partner").unwrap();
    before
        .create_organization(
            &admin,
            partner.clone(),
            OrgKind::Partner,
            OrgDetails::default(),
        )
        .await
        .unwrap();
    let (_, key) = before
        .create_api_key(&admin, Role::Member, Some(partner), Default::default())
        .await
        .unwrap();
    let member = before.authenticate(&key).unwrap();
    before.register_stream(&member, orders()).await.unwrap();
    let mut into_a = request("copy");
    into_a.destination.as_mut().unwrap().cluster = ClusterName::parse("a").unwrap();
    let contract = before.request_contract(&member, into_a).await.unwrap();
    drop(before);

    let now = Catalog::new(store.clone(), clusters(), CancellationToken::new());
    let revision = store.revision().unwrap();
    let report = now.ownership_problems().unwrap();
    let problems = report.problems;
    assert_eq!((report.streams, report.contracts), (1, 1));
    let entities: Vec<&str> = problems.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        entities,
        [
            "stream:orders".to_string(),
            format!("contract:{}", contract.id)
        ]
    );
    assert!(
        problems[0].1.contains("belongs to organization \"owner\""),
        "{problems:?}"
    );
    assert!(
        problems[1].1.starts_with("destination.cluster"),
        "{problems:?}"
    );
    // Reported, not changed.
    assert_eq!(store.revision().unwrap(), revision);
    now.get_stream(&StreamName::parse("orders").unwrap())
        .unwrap();
}

#[tokio::test]
async fn watch_resumes_without_gaps_or_repeats() {
    let f = fixture().await;
    let start = f.catalog.store.revision().unwrap();
    let mut watch = Box::pin(f.catalog.watch(start));
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let c = f
        .catalog
        .request_contract(&f.partner, request("t1"))
        .await
        .unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.revision, start + 1);
    let second = watch.next().await.unwrap().unwrap();
    assert!(matches!(&second.change, Change::Contract(x) if x.id == c.id));
    drop(watch);

    // Changes made while nobody watches are replayed from the log.
    f.catalog
        .transition_contract(
            &f.admin,
            &c.id,
            ContractAction::Approve,
            String::new(),
            None,
        )
        .await
        .unwrap();
    let mut resumed = Box::pin(f.catalog.watch(second.revision));
    let third = resumed.next().await.unwrap().unwrap();
    assert_eq!(third.revision, second.revision + 1);
    assert!(matches!(&third.change, Change::Contract(x) if x.state == ContractState::Approved));
    // And live ones follow.
    f.catalog
        .transition_contract(&f.admin, &c.id, ContractAction::Revoke, String::new(), None)
        .await
        .unwrap();
    let fourth = resumed.next().await.unwrap().unwrap();
    assert_eq!(fourth.revision, third.revision + 1);
}

#[tokio::test]
async fn watch_ends_on_shutdown() {
    let shutdown = CancellationToken::new();
    let catalog = Arc::new(Catalog::new(
        Arc::new(MemoryStore::default()),
        clusters(),
        shutdown.clone(),
    ));
    let mut watch = Box::pin(catalog.watch(0));
    shutdown.cancel();
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn suspension_pauses_and_resume_returns_to_where_it_was() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let c = f
        .catalog
        .request_contract(&f.partner, request("t"))
        .await
        .unwrap();
    let act = |action| {
        let catalog = f.catalog.clone();
        let admin = f.admin.clone();
        let id = c.id.clone();
        async move {
            catalog
                .transition_contract(&admin, &id, action, "ops".into(), None)
                .await
        }
    };
    assert!(matches!(
        act(ContractAction::Suspend).await,
        Err(CatalogError::IllegalTransition { .. })
    ));
    act(ContractAction::Approve).await.unwrap();
    f.catalog
        .report_link_status(&c.id, LinkStatus::Running, "")
        .await
        .unwrap();
    assert_eq!(
        act(ContractAction::Suspend).await.unwrap().state,
        ContractState::Suspended
    );
    assert_eq!(
        act(ContractAction::Resume).await.unwrap().state,
        ContractState::Active
    );
    assert!(matches!(
        act(ContractAction::Resume).await,
        Err(CatalogError::IllegalTransition { .. })
    ));
    assert!(matches!(
        act(ContractAction::Activate).await,
        Err(CatalogError::Forbidden(_))
    ));
    assert!(matches!(
        act(ContractAction::Expire).await,
        Err(CatalogError::Forbidden(_))
    ));
}

#[tokio::test]
async fn terms_are_checked_against_the_schema_and_may_be_set_on_approval() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let mut bad = request("t");
    bad.terms.mask_fields = vec!["/phone".into()];
    let err = f
        .catalog
        .request_contract(&f.partner, bad)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"/phone\" is not a field"),
        "{err}"
    );
    assert!(
        f.catalog.list_contracts().await.unwrap().0.is_empty(),
        "nothing written"
    );

    let mut good = request("t");
    good.terms.mask_fields = vec!["/email".into()];
    let c = f.catalog.request_contract(&f.partner, good).await.unwrap();
    assert_eq!(c.terms.mask_fields, ["/email"]);
    let imposed = ContractTerms {
        drop_fields: vec!["/email".into()],
        max_records_per_second: Some(100),
        ..Default::default()
    };
    let err = f
        .catalog
        .transition_contract(
            &f.admin,
            &c.id,
            ContractAction::Reject,
            String::new(),
            Some(imposed.clone()),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("when approving"), "{err}");
    let approved = f
        .catalog
        .transition_contract(
            &f.admin,
            &c.id,
            ContractAction::Approve,
            "with conditions".into(),
            Some(imposed.clone()),
        )
        .await
        .unwrap();
    assert_eq!(approved.terms, imposed);
    let trail = f
        .catalog
        .audit_trail(&format!("contract:{}", c.id))
        .unwrap();
    assert_eq!(trail[1].record.detail["terms"]["drop_fields"][0], "/email");
}

#[tokio::test]
async fn contracts_expire_at_their_end_time_by_timer() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    tokio::spawn(f.catalog.clone().run_expiry());
    let mut short = request("short");
    short.terms.end_time_ms = Some(freeport_common::now_ms() + 300);
    let short = f.catalog.request_contract(&f.partner, short).await.unwrap();
    let mut long = request("long");
    long.terms.end_time_ms = Some(freeport_common::now_ms() + 3_600_000);
    let long = f.catalog.request_contract(&f.partner, long).await.unwrap();
    f.catalog
        .transition_contract(
            &f.admin,
            &short.id,
            ContractAction::Approve,
            String::new(),
            None,
        )
        .await
        .unwrap();

    let mut watch = Box::pin(f.catalog.watch(f.catalog.store.revision().unwrap()));
    let expired = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let event = watch.next().await.unwrap().unwrap();
            if let Change::Contract(c) = event.change {
                if c.state == ContractState::Expired {
                    return c;
                }
            }
        }
    })
    .await
    .expect("the contract expired in time");
    assert_eq!(expired.id, short.id);
    let last = expired.history.last().unwrap();
    assert_eq!(
        (last.from, last.actor.as_str()),
        (ContractState::Approved, "system:expiry")
    );
    assert_eq!(
        f.catalog.get_contract(&long.id).unwrap().state,
        ContractState::Requested
    );
    let err = f
        .catalog
        .transition_contract(
            &f.admin,
            &short.id,
            ContractAction::Resume,
            String::new(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::IllegalTransition { .. }));
}

#[tokio::test]
async fn what_an_organization_may_discover_follows_classification() {
    let f = fixture().await;
    let unit = OrgName::parse("unit").unwrap();
    f.catalog
        .create_organization(
            &f.admin,
            unit.clone(),
            OrgKind::Internal,
            OrgDetails::default(),
        )
        .await
        .unwrap();
    let (_, key) = f
        .catalog
        .create_api_key(&f.admin, Role::Member, Some(unit), Default::default())
        .await
        .unwrap();
    let unit = f.catalog.authenticate(&key).unwrap();
    for (name, classification) in [
        ("public", Classification::Public),
        ("shared", Classification::Partner),
        ("inside", Classification::Internal),
        ("secret", Classification::Restricted),
    ] {
        let mut stream = orders();
        stream.name = StreamName::parse(name).unwrap();
        stream.topic = TopicName::parse(name).unwrap();
        stream.classification = classification;
        f.catalog.register_stream(&f.owner, stream).await.unwrap();
    }
    let names = |viewer: &Principal| {
        let mut names: Vec<_> = f
            .catalog
            .list_streams_for(viewer)
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&f.owner), ["inside", "public", "secret", "shared"]);
    assert_eq!(names(&f.admin), ["inside", "public", "secret", "shared"]);
    assert_eq!(names(&unit), ["inside", "public", "shared"]);
    assert_eq!(names(&f.partner), ["public", "shared"]);
    let secret = StreamName::parse("secret").unwrap();
    assert!(matches!(
        f.catalog.get_stream_for(&secret, &f.partner),
        Err(CatalogError::StreamNotFound(_))
    ));
    let mut request = request("t");
    request.stream = StreamName::parse("inside").unwrap();
    assert!(matches!(
        f.catalog.request_contract(&f.partner, request).await,
        Err(CatalogError::StreamNotFound(_)),
    ));
}

#[tokio::test]
async fn organizations_and_streams_carry_their_details_validated() {
    let f = fixture().await;
    let details = OrgDetails {
        display_name: "Initech".into(),
        contacts: vec![Contact {
            name: "Peter".into(),
            email: "peter@initech.example".into(),
        }],
        trusted_cert_fingerprints: vec![format!("{}:{}", "AB".repeat(16), "cd".repeat(16))],
    };
    let org = f
        .catalog
        .create_organization(
            &f.admin,
            OrgName::parse("initech").unwrap(),
            OrgKind::Partner,
            details.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        org.trusted_cert_fingerprints,
        [format!("{}{}", "ab".repeat(16), "cd".repeat(16))]
    );
    assert_eq!(org.contacts, details.contacts);
    let wide = OrgDetails {
        display_name: "é".repeat(1024),
        ..Default::default()
    };
    f.catalog
        .create_organization(
            &f.admin,
            OrgName::parse("wide").unwrap(),
            OrgKind::Partner,
            wide,
        )
        .await
        .unwrap();
    for bad in [
        OrgDetails {
            contacts: vec![Contact {
                name: "x".into(),
                email: "not-an-address".into(),
            }],
            ..Default::default()
        },
        OrgDetails {
            trusted_cert_fingerprints: vec!["abc".into()],
            ..Default::default()
        },
        // Free text is limited in characters, as the OpenAPI document's
        // maxLength counts them: 1,024 (of any width) is the most.
        OrgDetails {
            display_name: "x".repeat(1025),
            ..Default::default()
        },
    ] {
        let err = f
            .catalog
            .create_organization(
                &f.admin,
                OrgName::parse("other").unwrap(),
                OrgKind::Partner,
                bad,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CatalogError::InvalidField(_)), "{err}");
    }

    let mut stream = orders();
    stream.personal_data_fields = vec!["/phone".into(), "email".into()];
    stream.partitions = 0;
    stream.tags = vec!["ü".repeat(64), "t".repeat(65), "tab\t".into()];
    let err = f
        .catalog
        .register_stream(&f.owner, stream)
        .await
        .unwrap_err()
        .to_string();
    for needle in [
        "\"/phone\" is not a field",
        "\"email\" is not a JSON pointer",
        "partitions must be at least 1",
        "tags: \"ttttt",
        "tags: \"tab\\t\"",
    ] {
        assert!(err.contains(needle), "{needle} missing from {err}");
    }
    assert!(!err.contains("üüü"), "64 wide characters are a tag: {err}");
    let stream = f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    assert_eq!(
        (stream.partitions, stream.personal_data_fields.as_slice()),
        (3, ["/email".to_string()].as_slice())
    );
}

#[tokio::test]
async fn schema_versions_are_checked_under_the_stream_mode() {
    let f = fixture().await;
    let stream = f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    assert_eq!(stream.schema_versions.len(), 1);
    let name = stream.name.clone();
    let v1 = stream.value_schema.clone();
    let mut v2 = v1.clone();
    v2["properties"]["channel"] = serde_json::json!({"type": "string"});
    let registered = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            v2.clone(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(registered.version, 2);
    // The same schema again is the same version, and writes nothing.
    let revision = f.catalog.store.revision().unwrap();
    let again = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            v2.clone(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (again.version, f.catalog.store.revision().unwrap()),
        (2, revision)
    );

    let mut breaking = v2.clone();
    breaking["required"] = serde_json::json!(["channel"]);
    let err = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            breaking.clone(),
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::IncompatibleSchema { .. }));
    assert!(
        err.to_string().contains("'channel' is now required"),
        "{err}"
    );
    assert_eq!(
        f.catalog.store.revision().unwrap(),
        revision,
        "a refusal wrote something"
    );
    assert!(matches!(
        f.catalog
            .register_schema(
                &f.partner,
                (&name, RecordPart::Value),
                SchemaFormat::JsonSchema,
                v2.clone(),
                &[]
            )
            .await,
        Err(CatalogError::Forbidden(_))
    ));
    assert!(matches!(
        f.catalog
            .register_schema(
                &f.owner,
                (&name, RecordPart::Value),
                SchemaFormat::Avro,
                serde_json::json!("string"),
                &[]
            )
            .await,
        Err(CatalogError::InvalidField(_))
    ));

    f.catalog
        .set_compatibility(&f.owner, (&name, RecordPart::Value), Compatibility::None)
        .await
        .unwrap();
    let v3 = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            breaking.clone(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let stream = f.catalog.get_stream(&name).unwrap();
    assert_eq!(stream.value_schema, breaking);
    assert_eq!(
        stream
            .schema_versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let actions: Vec<_> = f
        .catalog
        .audit_trail(&format!("stream:{name}"))
        .unwrap()
        .into_iter()
        .map(|e| e.record.action)
        .collect();
    assert_eq!(
        actions,
        [
            "stream.register",
            "stream.schema_register",
            "stream.compatibility",
            "stream.schema_register"
        ]
    );
}

#[tokio::test]
async fn avro_streams_evolve_by_avro_rules() {
    let f = fixture().await;
    let record = |fields: serde_json::Value| serde_json::json!({"type": "record", "name": "Order", "fields": fields});
    let mut stream = orders();
    stream.schema_format = SchemaFormat::Avro;
    stream.compatibility = Compatibility::Full;
    stream.personal_data_fields = vec![];
    stream.value_schema = record(serde_json::json!([{"name": "id", "type": "long"}]));
    f.catalog
        .register_stream(&f.owner, stream.clone())
        .await
        .unwrap();

    let mut invalid = stream.clone();
    invalid.name = StreamName::parse("broken").unwrap();
    invalid.topic = TopicName::parse("broken").unwrap();
    invalid.value_schema = serde_json::json!({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]});
    let err = f
        .catalog
        .register_stream(&f.owner, invalid)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/fields/0/type: unknown type \"nope\""),
        "{err}"
    );

    let added = record(serde_json::json!([
        {"name": "id", "type": "long"},
        {"name": "channel", "type": "string", "default": "web"}
    ]));
    f.catalog
        .register_schema(
            &f.owner,
            (&stream.name, RecordPart::Value),
            SchemaFormat::Avro,
            added,
            &[],
        )
        .await
        .unwrap();
    let no_default = record(serde_json::json!([
        {"name": "id", "type": "long"},
        {"name": "channel", "type": "string", "default": "web"},
        {"name": "total", "type": "double"}
    ]));
    let err = f
        .catalog
        .register_schema(
            &f.owner,
            (&stream.name, RecordPart::Value),
            SchemaFormat::Avro,
            no_default,
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("field 'total' was added without a default"),
        "{err}"
    );
}

#[tokio::test]
async fn keys_are_listed_rotated_revoked_and_expire_with_every_change_audited() {
    let f = fixture().await;
    let org = OrgName::parse("partner").unwrap();
    let soon = now_ms() + 60_000;
    let (record, key) = f
        .catalog
        .create_api_key(
            &f.partner,
            Role::Member,
            Some(org.clone()),
            NewKey {
                name: "ci".into(),
                expires_at_ms: Some(soon),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (record.name.as_str(), record.expires_at_ms),
        ("ci", Some(soon))
    );
    let (principal, expires) = f.catalog.authenticate_key(&key).unwrap();
    assert_eq!((principal.org(), expires), (Some(&org), Some(soon)));
    // The owner may not touch the partner's keys; nothing is written.
    let revision = f.catalog.store.revision().unwrap();
    for refused in [
        f.catalog.list_api_keys(&f.owner, &org).map(|_| ()),
        f.catalog
            .revoke_api_key(&f.owner, &org, &record.key_id, String::new())
            .await
            .map(|_| ()),
        f.catalog
            .create_api_key(&f.owner, Role::Member, Some(org.clone()), NewKey::default())
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(CatalogError::Forbidden(_))),
            "{refused:?}"
        );
    }
    let past = NewKey {
        name: String::new(),
        expires_at_ms: Some(now_ms() - 1),
    };
    let refused = f
        .catalog
        .create_api_key(&f.partner, Role::Member, Some(org.clone()), past)
        .await;
    assert!(matches!(refused, Err(CatalogError::InvalidField(_))));
    assert_eq!(f.catalog.store.revision().unwrap(), revision);

    // Listed without secrets, with when it was last used once flushed.
    f.catalog.flush_key_use().await.unwrap();
    let listed = f.catalog.list_api_keys(&f.admin, &org).unwrap();
    assert_eq!(listed.len(), 2, "the fixture's key and the new one");
    let ci = listed.iter().find(|k| k.key_id == record.key_id).unwrap();
    assert!(ci.last_used_ms.is_some());

    // Rotation: both work during the overlap, then only the new one.
    let (successor, new_key, old) = f
        .catalog
        .rotate_api_key(&f.partner, &org, &record.key_id, 0, NewKey::default())
        .await
        .unwrap();
    assert_eq!(successor.name, "ci");
    assert_eq!(successor.replaces.as_deref(), Some(record.key_id.as_str()));
    assert!(old.expires_at_ms.unwrap() <= now_ms());
    assert!(f.catalog.authenticate(&new_key).is_ok());
    let withdrawn = f.catalog.authenticate(&key).unwrap_err();
    assert_eq!(withdrawn.code(), ErrorCode::CredentialWithdrawn);
    assert!(withdrawn.to_string().contains("expired"), "{withdrawn}");
    let refused = f
        .catalog
        .rotate_api_key(&f.partner, &org, &record.key_id, 1000, NewKey::default())
        .await;
    assert!(
        matches!(refused, Err(CatalogError::Conflict(_))),
        "{refused:?}"
    );

    // Revocation: at once, once; an unknown key is not found.
    let revoked = f
        .catalog
        .revoke_api_key(&f.admin, &org, &successor.key_id, "leaked".into())
        .await
        .unwrap();
    assert_eq!(revoked.state(now_ms()), crate::domain::KeyState::Revoked);
    let withdrawn = f.catalog.authenticate(&new_key).unwrap_err();
    assert!(withdrawn.to_string().contains("revoked"), "{withdrawn}");
    let again = f
        .catalog
        .revoke_api_key(&f.admin, &org, &successor.key_id, String::new())
        .await;
    assert!(matches!(again, Err(CatalogError::Conflict(_))));
    let unknown = f
        .catalog
        .revoke_api_key(&f.admin, &org, "key-nope", String::new())
        .await;
    assert_eq!(unknown.unwrap_err().code(), ErrorCode::KeyNotFound);
    for (id, actions) in [
        (&record.key_id, vec!["api_key.issue", "api_key.retire"]),
        (&successor.key_id, vec!["api_key.rotate", "api_key.revoke"]),
    ] {
        let trail: Vec<String> = f
            .catalog
            .audit_trail(&format!("api_key:{id}"))
            .unwrap()
            .into_iter()
            .map(|e| e.record.action)
            .collect();
        assert_eq!(trail, actions);
    }
    // Watch carried each change of a key.
    let (all, _) = f.catalog.all_api_keys().await.unwrap();
    assert!(all.iter().all(|k| k.key_sha256.len() == 64));
    let events = f.catalog.store.events_after(revision, 100).unwrap();
    let keys = events
        .iter()
        .filter(|e| matches!(e.change, Change::ApiKey(_)))
        .count();
    assert_eq!(keys, 3, "rotation (new, old) and revocation");
}

#[tokio::test]
async fn an_admin_revokes_a_client_certificate_once() {
    let f = fixture().await;
    let org = OrgName::parse("partner").unwrap();
    let fingerprint = "AB:".repeat(31) + "AB";
    let refused = f
        .catalog
        .revoke_certificate(&f.partner, &org, &fingerprint, String::new())
        .await;
    assert!(matches!(refused, Err(CatalogError::Forbidden(_))));
    let bad = f
        .catalog
        .revoke_certificate(&f.admin, &org, "not-a-fingerprint", String::new())
        .await;
    assert!(matches!(bad, Err(CatalogError::InvalidField(_))));
    let organization = f
        .catalog
        .revoke_certificate(&f.admin, &org, &fingerprint, "lost laptop".into())
        .await
        .unwrap();
    assert_eq!(
        organization.revoked_certificates[0].fingerprint,
        "ab".repeat(32)
    );
    let again = f
        .catalog
        .revoke_certificate(&f.admin, &org, &"ab".repeat(32), String::new())
        .await;
    assert!(matches!(again, Err(CatalogError::Conflict(_))));
}

#[tokio::test]
async fn a_schema_has_one_global_id_on_every_stream_and_keeps_it() {
    let f = fixture().await;
    let orders = f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let first = orders.schema_versions[0].id;
    assert_ne!(first, 0, "a stream's first version is numbered");

    // The same schema on another stream is the same schema: the same id.
    let mut refunds = self::orders();
    refunds.name = StreamName::parse("refunds").unwrap();
    refunds.topic = TopicName::parse("refunds").unwrap();
    let refunds = f.catalog.register_stream(&f.owner, refunds).await.unwrap();
    assert_eq!(refunds.schema_versions[0].id, first);

    let name = StreamName::parse("orders").unwrap();
    let v2_schema = serde_json::json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "email": {"type": "string"}, "note": {"type": "string"}
    }});
    let v2 = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            v2_schema.clone(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(v2.id > first, "a new schema gets a new id");

    // An earlier version's schema again is that version (as a registry
    // answers), not a third one.
    let again = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            orders.schema_versions[0].schema.clone(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!((again.version, again.id), (1, first));
    assert_eq!(
        f.catalog.get_stream(&name).unwrap().schema_versions.len(),
        2
    );

    // A catalog started again on the same store goes on from the highest id.
    let restarted = Catalog::new(
        f.catalog.store.clone(),
        clusters(),
        CancellationToken::new(),
    );
    assert_eq!(restarted.number_unnumbered_schemas().await.unwrap(), 0);
    let v3 = restarted
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            serde_json::json!({"type": "object"}),
            &[],
        )
        .await
        .unwrap();
    assert!(
        v3.id > v2.id,
        "ids are never reused: {} after {}",
        v3.id,
        v2.id
    );
}

#[tokio::test]
async fn versions_from_before_ids_are_numbered_once_at_start() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let name = StreamName::parse("orders").unwrap();
    // As a store written before ids holds it.
    let mut old = f.catalog.get_stream(&name).unwrap();
    old.schema_versions[0].id = 0;
    f.catalog
        .store
        .commit(Commit::audited(vec![Change::Stream(old)], vec![]))
        .unwrap();

    let restarted = Catalog::new(
        f.catalog.store.clone(),
        clusters(),
        CancellationToken::new(),
    );
    assert_eq!(restarted.number_unnumbered_schemas().await.unwrap(), 1);
    assert_ne!(
        restarted.get_stream(&name).unwrap().schema_versions[0].id,
        0
    );
    assert_eq!(restarted.number_unnumbered_schemas().await.unwrap(), 0);
}

#[tokio::test]
async fn transitive_modes_check_every_earlier_version() {
    let f = fixture().await;
    let mut stream = orders();
    stream.compatibility = Compatibility::None;
    f.catalog.register_stream(&f.owner, stream).await.unwrap();
    let name = StreamName::parse("orders").unwrap();
    // v2 drops `email`, which v1's readers required nothing of.
    let v2 = serde_json::json!({"type": "object", "properties": {"id": {"type": "integer"}}});
    f.catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            v2,
            &[],
        )
        .await
        .unwrap();
    // v3 makes `email` a number: fine after v2, not after v1.
    let v3 = serde_json::json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "email": {"type": "integer"}
    }});
    f.catalog
        .set_compatibility(&f.owner, (&name, RecordPart::Value), Compatibility::Forward)
        .await
        .unwrap();
    assert!(f
        .catalog
        .check_schema(
            &f.owner,
            (&name, RecordPart::Value),
            Some(SchemaFormat::JsonSchema),
            &v3,
            None,
            &[]
        )
        .unwrap()
        .is_empty());
    let against_v1 = f
        .catalog
        .check_schema(
            &f.owner,
            (&name, RecordPart::Value),
            Some(SchemaFormat::JsonSchema),
            &v3,
            Some(1),
            &[],
        )
        .unwrap();
    assert!(!against_v1.is_empty());
    assert!(
        against_v1[0].starts_with("with version 1:"),
        "{against_v1:?}"
    );

    f.catalog
        .set_compatibility(
            &f.owner,
            (&name, RecordPart::Value),
            Compatibility::ForwardTransitive,
        )
        .await
        .unwrap();
    let problems = f
        .catalog
        .check_schema(
            &f.owner,
            (&name, RecordPart::Value),
            Some(SchemaFormat::JsonSchema),
            &v3,
            None,
            &[],
        )
        .unwrap();
    assert!(
        problems.iter().any(|p| p.starts_with("with version 1:")),
        "{problems:?}"
    );
    let refused = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::JsonSchema,
            v3,
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            CatalogError::IncompatibleSchema {
                mode: "FORWARD_TRANSITIVE",
                ..
            }
        ),
        "{refused}"
    );
    assert!(matches!(
        f.catalog.check_schema(
            &f.owner,
            (&name, RecordPart::Value),
            Some(SchemaFormat::JsonSchema),
            &serde_json::json!({}),
            Some(9),
            &[]
        ),
        Err(CatalogError::SchemaVersionNotFound { version: 9, .. })
    ));
    assert!(matches!(
        f.catalog.check_schema(
            &f.partner,
            (&name, RecordPart::Value),
            Some(SchemaFormat::JsonSchema),
            &serde_json::json!({}),
            None,
            &[]
        ),
        Err(CatalogError::Forbidden(_))
    ));
}

#[tokio::test]
async fn only_the_owner_turns_record_validation_off_and_it_is_audited() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let name = StreamName::parse("orders").unwrap();
    assert!(
        !f.catalog.get_stream(&name).unwrap().validation_off,
        "on by default"
    );
    assert!(matches!(
        f.catalog.set_validation(&f.partner, &name, false).await,
        Err(CatalogError::Forbidden(_))
    ));
    let off = f
        .catalog
        .set_validation(&f.owner, &name, false)
        .await
        .unwrap();
    assert!(off.validation_off);
    // Saying it again writes nothing.
    f.catalog
        .set_validation(&f.owner, &name, false)
        .await
        .unwrap();
    f.catalog
        .set_validation(&f.owner, &name, true)
        .await
        .unwrap();
    let trail: Vec<_> = f
        .catalog
        .audit_trail("stream:orders")
        .unwrap()
        .into_iter()
        .filter(|e| e.record.action == "stream.validation")
        .map(|e| e.record.detail["enabled"].clone())
        .collect();
    assert_eq!(trail, [serde_json::json!(false), serde_json::json!(true)]);
}

#[tokio::test]
async fn a_reshaping_contract_delivers_under_a_derived_schema_of_its_own() {
    let f = fixture().await;
    let mut stream = orders();
    stream.schema_format = SchemaFormat::Avro;
    stream.personal_data_fields = vec![];
    stream.value_schema = serde_json::json!({"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "long"}, {"name": "email", "type": "string"}, {"name": "card", "type": "string"}
    ]});
    let stream = f.catalog.register_stream(&f.owner, stream).await.unwrap();
    let source_id = stream.schema_versions[0].id;
    let mut masking = request("copy");
    masking.terms.mask_fields = vec!["/email".into()];
    masking.terms.drop_fields = vec!["/card".into()];
    let contract = f
        .catalog
        .request_contract(&f.partner, masking)
        .await
        .unwrap();

    let (source, delivered) = f
        .catalog
        .delivered_schema(&contract.id, source_id)
        .await
        .unwrap();
    assert_eq!(source.id, source_id);
    assert_ne!(delivered.id, source_id, "a schema of its own");
    assert_eq!(delivered.version, 1, "for the stream's version 1");
    assert_eq!(
        delivered.schema["fields"],
        serde_json::json!([{"name": "id", "type": "long"}, {"name": "email", "type": "string"}])
    );
    let again = f
        .catalog
        .delivered_schema(&contract.id, source_id)
        .await
        .unwrap()
        .1;
    assert_eq!(again, delivered, "derived once, then kept");
    let kept = f.catalog.get_contract(&contract.id).unwrap();
    assert_eq!(kept.delivered_schemas, vec![delivered.clone()]);

    // A catalog started again gives new schemas ids above the derived one.
    let restarted = Catalog::new(
        f.catalog.store.clone(),
        clusters(),
        CancellationToken::new(),
    );
    let name = StreamName::parse("orders").unwrap();
    let v2 = restarted
        .register_schema(&f.owner, (&name, RecordPart::Value), SchemaFormat::Avro, serde_json::json!({"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"}, {"name": "email", "type": "string"}, {"name": "card", "type": "string"},
            {"name": "note", "type": "string", "default": ""}
        ]}), &[])
        .await
        .unwrap();
    assert!(v2.id > delivered.id, "{} after {}", v2.id, delivered.id);

    // A filter alone changes no shape: the stream's own schema.
    let mut filtering = request("filtered");
    filtering.terms.row_filter = vec![freeport_common::contract::RowCondition {
        field: "/id".into(),
        op: freeport_common::contract::FilterOp::Gt,
        value: serde_json::json!(1),
    }];
    let filtered = f
        .catalog
        .request_contract(&f.partner, filtering)
        .await
        .unwrap();
    let (_, same) = f
        .catalog
        .delivered_schema(&filtered.id, source_id)
        .await
        .unwrap();
    assert_eq!(same.id, source_id);
    assert!(matches!(
        f.catalog.delivered_schema(&filtered.id, 424242).await,
        Err(CatalogError::SchemaIdNotFound { id: 424242, .. })
    ));
}

#[tokio::test]
async fn a_key_schema_has_its_own_versions_format_and_mode() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let name = StreamName::parse("orders").unwrap();
    let key = (&name, RecordPart::Key);
    let v1 = serde_json::json!({"type": "record", "name": "OrderKey", "fields": [{"name": "id", "type": "long"}]});
    assert!(
        f.catalog
            .check_schema(&f.owner, key, None, &v1, None, &[])
            .is_err(),
        "a first key takes JSON Schema by default: Avro text is not one"
    );
    assert!(f
        .catalog
        .check_schema(&f.owner, key, Some(SchemaFormat::Avro), &v1, None, &[])
        .unwrap()
        .is_empty());
    assert!(matches!(
        f.catalog
            .register_schema(&f.partner, key, SchemaFormat::Avro, v1.clone(), &[])
            .await,
        Err(CatalogError::Forbidden(_))
    ));
    let first = f
        .catalog
        .register_schema(&f.owner, key, SchemaFormat::Avro, v1.clone(), &[])
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let stream = f.catalog.get_stream(&name).unwrap();
    assert_eq!(stream.key_schema.format, SchemaFormat::Avro);
    assert_eq!(stream.key_schema.versions, vec![first.clone()]);
    assert_eq!(stream.schema_versions.len(), 1, "the value is untouched");
    assert_ne!(first.id, stream.schema_versions[0].id);
    assert_eq!(
        f.catalog
            .register_schema(&f.owner, key, SchemaFormat::Avro, v1.clone(), &[])
            .await
            .unwrap(),
        first,
        "the same schema again is the same version"
    );

    // A key keeps the format it started in.
    let refused = f
        .catalog
        .register_schema(
            &f.owner,
            key,
            SchemaFormat::JsonSchema,
            serde_json::json!({"type": "string"}),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("key schema is avro"),
        "{refused}"
    );

    // The key's mode is its own: BACKWARD refuses a new field without a
    // default until the key's mode (not the value's) is NONE.
    let v2 = serde_json::json!({"type": "record", "name": "OrderKey", "fields": [{"name": "id", "type": "long"}, {"name": "region", "type": "string"}]});
    assert!(matches!(
        f.catalog
            .register_schema(&f.owner, key, SchemaFormat::Avro, v2.clone(), &[])
            .await,
        Err(CatalogError::IncompatibleSchema {
            mode: "BACKWARD",
            ..
        })
    ));
    let changed = f
        .catalog
        .set_compatibility(&f.owner, key, Compatibility::None)
        .await
        .unwrap();
    assert_eq!(changed.key_schema.compatibility, Compatibility::None);
    assert_eq!(changed.compatibility, Compatibility::Backward);
    let second = f
        .catalog
        .register_schema(&f.owner, key, SchemaFormat::Avro, v2, &[])
        .await
        .unwrap();
    assert_eq!(second.version, 2);

    // The same schema as a value elsewhere has the same global id.
    let mut other = orders();
    other.name = StreamName::parse("order-keys").unwrap();
    other.topic = TopicName::parse("order-keys").unwrap();
    other.schema_format = SchemaFormat::Avro;
    other.value_schema = v1;
    let other = f.catalog.register_stream(&f.owner, other).await.unwrap();
    assert_eq!(other.schema_versions[0].id, first.id);

    let audit = f.catalog.audit_trail("stream:orders").unwrap();
    assert!(audit
        .iter()
        .any(|e| e.record.action == "stream.schema_register"
            && e.record.detail["part"] == "key"
            && e.record.detail["version"] == 2));
}

#[tokio::test]
async fn a_protobuf_schema_is_one_schema_as_text_or_as_a_descriptor() {
    use base64::Engine;
    let f = fixture().await;
    let v1 =
        "syntax = \"proto3\";\npackage acme;\nmessage Order { int64 id = 1; string note = 2; }";
    let mut stream = orders();
    stream.schema_format = SchemaFormat::Protobuf;
    stream.value_schema = serde_json::json!(v1);
    let stream = f.catalog.register_stream(&f.owner, stream).await.unwrap();
    let first = &stream.schema_versions[0];
    let text = first.schema.as_str().expect("kept as text");
    assert!(
        text.contains("message Order {\n  int64 id = 1;"),
        "canonical: {text}"
    );

    // The same schema as the base64 descriptor a client may send.
    let parsed = freeport_common::schema::ProtoSchema::parse_text(v1).unwrap();
    let descriptor = base64::engine::general_purpose::STANDARD.encode(parsed.serialized());
    let name = StreamName::parse("orders").unwrap();
    let again = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::Protobuf,
            serde_json::json!(descriptor),
            &[],
        )
        .await
        .unwrap();
    assert_eq!((again.version, again.id), (first.version, first.id));

    let breaking = v1.replace("int64 id", "string id");
    let refused = f
        .catalog
        .register_schema(
            &f.owner,
            (&name, RecordPart::Value),
            SchemaFormat::Protobuf,
            serde_json::json!(breaking),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("FIELD_SCALAR_KIND_CHANGED"),
        "{refused}"
    );
    assert!(matches!(
        f.catalog
            .register_schema(
                &f.owner,
                (&name, RecordPart::Value),
                SchemaFormat::Protobuf,
                serde_json::json!("message {"),
                &[],
            )
            .await,
        Err(CatalogError::InvalidField(_))
    ));
}

#[tokio::test]
async fn schema_versions_are_soft_deleted_then_removed_and_a_value_keeps_one() {
    let f = fixture().await;
    let mut stream = orders();
    stream.compatibility = Compatibility::None;
    f.catalog.register_stream(&f.owner, stream).await.unwrap();
    let name = StreamName::parse("orders").unwrap();
    let value = (&name, RecordPart::Value);
    let v2 = serde_json::json!({"type": "object", "properties": {"id": {"type": "string"}}});
    let second = f
        .catalog
        .register_schema(&f.owner, value, SchemaFormat::JsonSchema, v2.clone(), &[])
        .await
        .unwrap();
    assert!(matches!(
        f.catalog
            .delete_schema_versions(&f.partner, value, Some(2), false)
            .await,
        Err(CatalogError::Forbidden(_))
    ));
    let permanent_first = f
        .catalog
        .delete_schema_versions(&f.owner, value, Some(2), true)
        .await
        .unwrap_err();
    assert!(
        permanent_first.to_string().contains("soft-deleted before"),
        "{permanent_first}"
    );

    // Soft-deleting the latest: the stream's schema is version 1's again,
    // and version 2 stays readable by its id.
    let (deleted, stream) = f
        .catalog
        .delete_schema_versions(&f.owner, value, Some(2), false)
        .await
        .unwrap();
    assert_eq!(deleted, vec![2]);
    assert_eq!(stream.value_schema, stream.schema_versions[0].schema);
    assert!(stream.schema_versions[1].deleted);
    assert!(matches!(
        f.catalog
            .delete_schema_versions(&f.owner, value, Some(2), false)
            .await,
        Err(CatalogError::Conflict(_))
    ));
    // The last live version of a value stays.
    let last = f
        .catalog
        .delete_schema_versions(&f.owner, value, None, false)
        .await
        .unwrap_err();
    assert!(
        last.to_string().contains("keeps one live version"),
        "{last}"
    );

    // Registering a soft-deleted schema again is a new version, same id.
    let again = f
        .catalog
        .register_schema(&f.owner, value, SchemaFormat::JsonSchema, v2, &[])
        .await
        .unwrap();
    assert_eq!((again.version, again.id), (3, second.id));
    let (deleted, _) = f
        .catalog
        .delete_schema_versions(&f.owner, value, Some(3), false)
        .await
        .unwrap();
    assert_eq!(deleted, vec![3]);
    let (deleted, stream) = f
        .catalog
        .delete_schema_versions(&f.owner, value, Some(2), true)
        .await
        .unwrap();
    assert_eq!(deleted, vec![2]);
    assert_eq!(
        stream
            .schema_versions
            .iter()
            .map(|v| (v.version, v.deleted))
            .collect::<Vec<_>>(),
        [(1, false), (3, true)]
    );

    // A key subject may go entirely: soft, then permanent.
    let key = (&name, RecordPart::Key);
    let key_id = f
        .catalog
        .register_schema(
            &f.owner,
            key,
            SchemaFormat::JsonSchema,
            serde_json::json!({"type": "string"}),
            &[],
        )
        .await
        .unwrap()
        .id;
    assert!(f
        .catalog
        .delete_schema_versions(&f.owner, key, None, true)
        .await
        .is_err());
    let (deleted, _) = f
        .catalog
        .delete_schema_versions(&f.owner, key, None, false)
        .await
        .unwrap();
    assert_eq!(deleted, vec![1]);
    let (deleted, stream) = f
        .catalog
        .delete_schema_versions(&f.owner, key, None, true)
        .await
        .unwrap();
    assert_eq!(deleted, vec![1]);
    assert!(stream.key_schema.versions.is_empty());
    // Its id stays the schema's: never another's, and its own again after
    // a restart (the ids are loaded from the store).
    assert_eq!(
        stream
            .retired_schemas
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [second.id, key_id]
    );
    let mut ids = super::schemas::SchemaIds::load(std::slice::from_ref(&stream), &[]);
    assert_eq!(
        ids.id_of(
            SchemaFormat::JsonSchema,
            &serde_json::json!({"type": "string"}),
            &[]
        ),
        key_id
    );
    let next = ids.id_of(
        SchemaFormat::JsonSchema,
        &serde_json::json!({"type": "boolean"}),
        &[],
    );
    assert!(next > key_id && next > second.id, "{next}");
    let audit = f.catalog.audit_trail("stream:orders").unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.record.action == "stream.schema_delete")
            .count(),
        5
    );
}

#[tokio::test]
async fn a_schema_refers_to_its_owner_s_live_versions_and_keeps_them_from_deletion() {
    use freeport_common::schema::Reference;
    let f = fixture().await;
    let stream = |name: &str, cluster: &str, schema: serde_json::Value| NewStream {
        name: StreamName::parse(name).unwrap(),
        cluster: ClusterName::parse(cluster).unwrap(),
        topic: TopicName::parse(name).unwrap(),
        schema_format: SchemaFormat::Avro,
        value_schema: schema,
        personal_data_fields: vec![],
        ..orders()
    };
    let address = serde_json::json!({"type": "record", "name": "Address", "namespace": "acme",
        "fields": [{"name": "city", "type": "string"}]});
    let order = serde_json::json!({"type": "record", "name": "Order", "namespace": "acme",
        "fields": [{"name": "id", "type": "long"}]});
    f.catalog
        .register_stream(&f.owner, stream("addresses", "a", address.clone()))
        .await
        .unwrap();
    f.catalog
        .register_stream(&f.owner, stream("orders", "a", order))
        .await
        .unwrap();
    f.catalog
        .register_stream(&f.partner, stream("theirs", "b", address))
        .await
        .unwrap();
    let reference = |stream: &str, version: u32| Reference {
        name: "acme.Address".into(),
        stream: stream.into(),
        part: RecordPart::Value,
        version,
    };
    let orders = StreamName::parse("orders").unwrap();
    let value = (&orders, RecordPart::Value);
    let shipped = serde_json::json!({"type": "record", "name": "Order", "namespace": "acme",
        "fields": [{"name": "id", "type": "long"}, {"name": "ship_to", "type": ["null", "acme.Address"], "default": null}]});
    let register = |references: Vec<Reference>| {
        let catalog = f.catalog.clone();
        let owner = f.owner.clone();
        let shipped = shipped.clone();
        let orders = orders.clone();
        async move {
            catalog
                .register_schema(
                    &owner,
                    (&orders, RecordPart::Value),
                    SchemaFormat::Avro,
                    shipped,
                    &references,
                )
                .await
        }
    };

    // Without the reference the type is unknown; another organization's
    // subject, or a version that does not exist, is refused.
    for (references, says) in [
        (vec![], "acme.Address"),
        (vec![reference("theirs", 1)], "another organization"),
        (vec![reference("addresses", 9)], "version 9"),
        (vec![reference("nope", 1)], "names no stream"),
    ] {
        let refused = register(references).await.unwrap_err();
        assert!(
            matches!(refused, CatalogError::InvalidField(_)) && refused.to_string().contains(says),
            "{says}: {refused}"
        );
    }
    let v2 = register(vec![reference("addresses", 1)]).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.references, vec![reference("addresses", 1)]);
    assert_eq!(v2.dependencies.len(), 1);
    // The same again is the same version.
    let again = register(vec![reference("addresses", 1)]).await.unwrap();
    assert_eq!((again.version, again.id), (v2.version, v2.id));
    let audit = f.catalog.audit_trail("stream:orders").unwrap();
    assert!(audit
        .iter()
        .any(|e| e.record.action == "stream.schema_register"
            && e.record.detail["references"][0]["stream"] == "addresses"));

    // What a live version refers to cannot be deleted, softly or not.
    let addresses = StreamName::parse("addresses").unwrap();
    let refused = f
        .catalog
        .delete_schema_versions(&f.owner, (&addresses, RecordPart::Value), Some(1), false)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CatalogError::SchemaReferenced(_))
            && refused.to_string().contains("version 2 of stream orders"),
        "{refused}"
    );
    assert_eq!(refused.code(), ErrorCode::SchemaReferenced);
    // Once the referrer is deleted, it can be.
    f.catalog
        .delete_schema_versions(&f.owner, value, Some(2), false)
        .await
        .unwrap();
    f.catalog
        .delete_schema_versions(&f.owner, value, Some(2), true)
        .await
        .unwrap();
    f.catalog
        .register_schema(
            &f.owner,
            (&addresses, RecordPart::Value),
            SchemaFormat::Avro,
            serde_json::json!({"type": "record", "name": "Address", "namespace": "acme",
                "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string", "default": ""}]}),
            &[],
        )
        .await
        .unwrap();
    f.catalog
        .delete_schema_versions(&f.owner, (&addresses, RecordPart::Value), Some(1), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_push_contract_names_no_destination_and_is_active_once_approved() {
    let f = fixture().await;
    f.catalog.register_stream(&f.owner, orders()).await.unwrap();
    let push = |destination: Option<ClusterDestination>| NewContract {
        delivery: Delivery::Push,
        destination,
        ..request("partner.orders")
    };
    let refused = f
        .catalog
        .request_contract(&f.partner, push(request("x").destination))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CatalogError::InvalidField(m) if m.contains("mirrors nowhere")),
        "{refused}"
    );
    let kafka_without = NewContract {
        destination: None,
        ..request("partner.orders")
    };
    let refused = f
        .catalog
        .request_contract(&f.partner, kafka_without)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CatalogError::InvalidField(m) if m.contains("delivery \"push\"")),
        "{refused}"
    );

    let c = f
        .catalog
        .request_contract(&f.partner, push(None))
        .await
        .unwrap();
    assert_eq!(
        (c.state, c.delivery, &c.destination),
        (ContractState::Requested, Delivery::Push, &None)
    );
    let c = f
        .catalog
        .transition_contract(
            &f.admin,
            &c.id,
            ContractAction::Approve,
            String::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(c.state, ContractState::Active, "no link to wait for");
    let steps: Vec<(ContractState, &str)> =
        c.history.iter().map(|t| (t.to, t.actor.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            (ContractState::Approved, f.admin.audit_name().as_str()),
            (ContractState::Active, "system:push"),
        ]
    );
    let trail = f
        .catalog
        .audit_trail(&format!("contract:{}", c.id))
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.record.action.as_str()).collect();
    assert_eq!(
        actions,
        ["contract.request", "contract.approve", "contract.activate"]
    );
    assert_eq!(trail[0].record.detail["delivery"], "push");

    // Suspending and resuming returns it to active; it takes no
    // destination, so a kafka contract may still use any.
    for (action, state) in [
        (ContractAction::Suspend, ContractState::Suspended),
        (ContractAction::Resume, ContractState::Active),
    ] {
        let c = f
            .catalog
            .transition_contract(&f.admin, &c.id, action, String::new(), None)
            .await
            .unwrap();
        assert_eq!(c.state, state);
    }
    f.catalog
        .request_contract(&f.partner, request("partner.orders"))
        .await
        .unwrap();
}
