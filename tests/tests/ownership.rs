//! Every cluster belongs to one organization, and the hub keeps the
//! `freeport.` topics for itself: tried against real tansu brokers and the
//! three services as processes, the way a member who wants around a
//! contract would try it.

use std::process::Command;
use std::time::Duration;

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::{ensure_topic, partition_count};
use freeport_common::names::OrgName;
use freeport_tests::{freeport_bin, json, Broker, Hub, TwoOrgs};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

/// The usual two organizations, plus `initech`, a third that owns a
/// cluster of its own (on the partner's broker: a name is what matters).
async fn sandbox() -> TwoOrgs {
    let logs = tempfile::tempdir().expect("temp dir");
    let owner = Broker::start("broker-acme", logs.path()).await;
    let partner = Broker::start("broker-globex", logs.path()).await;
    let initech = ClusterConfig {
        owner: Some(OrgName::parse("initech").expect("name")),
        ..partner.cluster()
    };
    let hub = Hub::start_with(&[
        ("acme", owner.cluster()),
        ("globex", partner.cluster()),
        ("initech", initech),
    ])
    .await;
    let sandbox = TwoOrgs::from_parts(owner, partner, hub, logs).await;
    sandbox.hub.org("initech", "partner").await;
    sandbox
}

/// What the owner's own applications write, straight to its broker,
/// without Freeport.
async fn write_directly(broker: &Broker, topic: &str, value: &str) {
    ensure_topic(&broker.cluster(), topic, 1)
        .await
        .expect("create the topic");
    let producer: FutureProducer =
        freeport_common::kafka::client_config(&broker.cluster(), "the-owners-application")
            .create()
            .expect("producer");
    producer
        .send(
            FutureRecord::<str, str>::to(topic).payload(value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");
}

/// A REST Proxy v2 call, the way REST Proxy clients make them.
async fn v2(hub: &Hub, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let (status, body, _) = hub.call_v2(method, path, key, body).await;
    (status, body)
}

fn refused(answer: &(u16, Value), status: u16, code: u64, what: &str) {
    assert_eq!(
        (answer.0, answer.1["error_code"].as_u64()),
        (status, Some(code)),
        "{what}: {}",
        answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_claim_read_or_write_into_what_is_not_its_own() {
    let sandbox = sandbox().await;
    let hub = &sandbox.hub;
    let (owner, partner) = (sandbox.owner.as_str(), sandbox.partner.as_str());
    write_directly(&sandbox.owner_cluster, "ledger", "the owner's books").await;

    // Who owns what, as an admin and as a member see it.
    let (status, all) = hub.call("GET", "/v1/clusters", &hub.admin_key, None).await;
    assert_eq!(status, 200, "{all}");
    let owners: Vec<(&str, &str)> = all["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["owner"].as_str().unwrap()))
        .collect();
    assert_eq!(
        owners,
        [
            ("acme", "acme"),
            ("globex", "globex"),
            ("initech", "initech")
        ]
    );
    let (_, own) = hub.call("GET", "/v1/clusters", partner, None).await;
    assert_eq!(own["clusters"].as_array().map(Vec::len), Some(1), "{own}");
    assert_eq!(own["clusters"][0]["name"], "globex");

    // The partner claims the owner's unregistered topic as a stream of its
    // own: refused, and a claim on a topic that does not exist yet creates
    // nothing on the owner's cluster.
    for topic in ["ledger", "not-there-yet"] {
        let claim = json!({"name": "mine", "cluster": "acme", "topic": topic});
        let answer = hub.call("POST", "/v1/streams", partner, Some(claim)).await;
        refused(&answer, 403, 40303, "a stream on someone else's cluster");
        assert!(
            answer.1["message"]
                .as_str()
                .unwrap()
                .contains("belongs to organization \"acme\""),
            "{}",
            answer.1
        );
    }
    assert_eq!(
        partition_count(&sandbox.owner_cluster.cluster(), "not-there-yet")
            .await
            .expect("metadata"),
        None,
        "the refused registration created a topic on the owner's cluster"
    );
    let (status, streams) = hub.call("GET", "/v1/streams", &hub.admin_key, None).await;
    assert_eq!(
        (status, streams["streams"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // Nor may it name another organization as the owner.
    let answer = hub
        .call(
            "POST",
            "/v1/streams",
            partner,
            Some(json!({"name": "mine", "cluster": "acme", "topic": "ledger", "owner": "acme"})),
        )
        .await;
    refused(&answer, 403, 40301, "registering for another organization");

    // So the topic stays out of its reach over the REST Proxy data plane.
    let answer = v2(hub, "GET", "/topics/ledger", partner, None).await;
    refused(&answer, 404, 40401, "the owner's topic's metadata");
    let created = json!({"name": "thief", "format": "json", "auto.offset.reset": "earliest"});
    let (status, _) = v2(hub, "POST", "/consumers/thieves", partner, Some(created)).await;
    assert_eq!(status, 200);
    let answer = v2(
        hub,
        "POST",
        "/consumers/thieves/instances/thief/subscription",
        partner,
        Some(json!({"topics": ["ledger"]})),
    )
    .await;
    refused(&answer, 404, 40401, "subscribing to the owner's topic");
    let answer = v2(
        hub,
        "POST",
        "/consumers/thieves/instances/thief/subscription",
        partner,
        Some(json!({"topic_pattern": "led.*"})),
    )
    .await;
    refused(
        &answer,
        404,
        40401,
        "a pattern matches only readable topics",
    );

    // An admin may register the owner's topic for the owner, audited as
    // acting on its behalf; on another organization's cluster it may not.
    let for_owner = json!({"name": "ledger", "cluster": "acme", "topic": "ledger", "owner": "acme", "classification": "partner"});
    let answer = hub
        .call(
            "POST",
            "/v1/streams",
            &hub.admin_key,
            Some(
                json!({"name": "ledger", "cluster": "globex", "topic": "ledger", "owner": "acme"}),
            ),
        )
        .await;
    refused(
        &answer,
        403,
        40303,
        "an admin putting a stream on the wrong cluster",
    );
    let (status, stream) = hub
        .call("POST", "/v1/streams", &hub.admin_key, Some(for_owner))
        .await;
    assert_eq!(
        (status, stream["owner"].as_str()),
        (201, Some("acme")),
        "{stream}"
    );

    // A contract delivers into the consumer's own cluster only: not the
    // owner's, not a third organization's.
    for cluster in ["acme", "initech"] {
        let request = json!({"stream": "ledger", "purpose": "p", "destination": {"cluster": cluster, "topic": "copy"}});
        let answer = hub
            .call("POST", "/v1/contracts", partner, Some(request))
            .await;
        refused(&answer, 403, 40303, &format!("a destination on {cluster}"));
    }
    let (status, contracts) = hub.call("GET", "/v1/contracts", &hub.admin_key, None).await;
    assert_eq!(
        (status, contracts["contracts"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let request = json!({"stream": "ledger", "purpose": "p", "destination": {"cluster": "globex", "topic": "copy"}});
    let (status, contract) = hub
        .call("POST", "/v1/contracts", partner, Some(request))
        .await;
    assert_eq!(status, 201, "{contract}");
    let (status, _) = hub
        .call(
            "POST",
            "/v1/streams",
            owner,
            Some(json!({"name": "orders", "cluster": "acme", "topic": "orders"})),
        )
        .await;
    assert_eq!(status, 201, "the owner registers on its own cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_own_topics_are_nobodys() {
    let sandbox = sandbox().await;
    let hub = &sandbox.hub;
    let (owner, partner) = (sandbox.owner.as_str(), sandbox.partner.as_str());
    // Dead letters hold records before a contract's masking.
    let dead_letters = "freeport.dlq.0190c2f4-0000-7000-8000-000000000000";
    write_directly(
        &sandbox.owner_cluster,
        dead_letters,
        "{\"email\": \"unmasked\"}",
    )
    .await;

    // Registered: by nobody, not even the cluster's owner or an admin.
    for (key, body) in [
        (
            owner,
            json!({"name": "dlq", "cluster": "acme", "topic": dead_letters}),
        ),
        (
            owner,
            json!({"name": "hub", "cluster": "acme", "topic": "Freeport.catalog"}),
        ),
        (
            hub.admin_key.as_str(),
            json!({"name": "dlq", "cluster": "acme", "topic": dead_letters, "owner": "acme"}),
        ),
    ] {
        let answer = hub
            .call("POST", "/v1/streams", key, Some(body.clone()))
            .await;
        refused(&answer, 403, 40304, &format!("registering {body}"));
    }
    // Produced to, over v2 and the v3 records API.
    let answer = hub
        .produce(dead_letters, owner, json!([{"value": {"x": 1}}]))
        .await;
    refused(&answer, 403, 40304, "a v2 produce");
    let response = hub
        .http
        .post(format!(
            "{}/v3/clusters/acme/topics/{dead_letters}/records",
            hub.url
        ))
        .bearer_auth(owner)
        .header("content-type", "application/json")
        .body(r#"{"value": {"type": "JSON", "data": {"x": 1}}}"#)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON");
    refused(&(status, body), 403, 40304, "a v3 produce");
    // Read: metadata and consumers, by the owner of the cluster too.
    for key in [owner, partner] {
        let answer = v2(hub, "GET", &format!("/topics/{dead_letters}"), key, None).await;
        refused(&answer, 403, 40304, "the topic's metadata");
        let answer = v2(
            hub,
            "GET",
            &format!("/topics/{dead_letters}/partitions/0/offsets"),
            key,
            None,
        )
        .await;
        refused(&answer, 403, 40304, "the topic's offsets");
    }
    let created = json!({"name": "peek", "format": "json", "auto.offset.reset": "earliest"});
    let (status, _) = v2(hub, "POST", "/consumers/peekers", owner, Some(created)).await;
    assert_eq!(status, 200);
    let answer = v2(
        hub,
        "POST",
        "/consumers/peekers/instances/peek/subscription",
        owner,
        Some(json!({"topics": [dead_letters]})),
    )
    .await;
    refused(&answer, 403, 40304, "subscribing to dead letters");
    let answer = v2(
        hub,
        "POST",
        "/consumers/peekers/instances/peek/assignments",
        owner,
        Some(json!({"partitions": [{"topic": dead_letters, "partition": 0}]})),
    )
    .await;
    refused(&answer, 403, 40304, "assigning a partition of dead letters");
    let (_, topics) = v2(hub, "GET", "/topics", owner, None).await;
    assert_eq!(topics, json!([]), "no reserved topic is listed");
    // Named as a destination.
    hub.call("POST", "/v1/streams", owner, Some(json!({"name": "orders", "cluster": "acme", "topic": "orders", "classification": "partner"})))
        .await;
    let request = json!({"stream": "orders", "purpose": "p", "destination": {"cluster": "globex", "topic": "freeport.dlq.mine"}});
    let answer = hub
        .call("POST", "/v1/contracts", partner, Some(request))
        .await;
    refused(&answer, 403, 40304, "a reserved destination");

    // The check command finds nothing wrong with what the rules let in.
    let output = Command::new(freeport_bin())
        .args(["catalog", "check-ownership", "--config"])
        .arg(hub.config_path())
        .output()
        .expect("check-ownership");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success()
            && stdout.contains("ownership holds: 1 streams and 0 contracts checked"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
