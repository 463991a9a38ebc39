//! The journey that must always work, end to end: two real brokers (one
//! per organization) and the three services as separate processes.

use std::collections::BTreeMap;

use base64::Engine;
use std::time::Duration;

use freeport_tests::{asyncapi_violations, eventually, json, read_topic, Record, TwoOrgs};

const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_millis(1500);

fn records(from: usize, to: usize) -> serde_json::Value {
    (from..to)
        .map(|i| {
            json!({
                "key": format!("order-{i}"),
                "value": {"id": i, "total": i as f64 * 1.5},
                "partition": (i % 3) as i32,
                "headers": [{"name": "seq", "value": base64_of(&i.to_string())}],
            })
        })
        .collect()
}

fn base64_of(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn wait_for_count(bootstrap: &str, topic: &str, count: usize) -> Vec<Record> {
    eventually(
        MIRROR_TIMEOUT,
        &format!("{count} records on {topic}"),
        || async {
            let found = read_topic(bootstrap, topic, Duration::from_millis(500)).await;
            (found.len() >= count).then_some(found)
        },
    )
    .await
}

/// Every destination record matches its source record, and every source
/// record arrived exactly once, in order per partition.
fn assert_faithful_copy(source: &[Record], destination: &[Record], contract: &str) {
    let by_position: BTreeMap<(i32, i64), &Record> = source
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    let mut copied: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for record in destination {
        let partition: i32 = record
            .header("freeport.source.partition")
            .unwrap()
            .parse()
            .unwrap();
        let offset: i64 = record
            .header("freeport.source.offset")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(record.header("freeport.source.cluster"), Some("acme"));
        assert_eq!(record.header("freeport.source.topic"), Some("orders"));
        assert_eq!(record.header("freeport.contract"), Some(contract));
        let original = by_position[&(partition, offset)];
        assert_eq!(record.partition, original.partition, "partition kept");
        assert_eq!(record.key, original.key, "key kept");
        assert_eq!(record.value, original.value, "value kept");
        assert_eq!(record.timestamp, original.timestamp, "timestamp kept");
        assert_eq!(
            record.headers[..original.headers.len()],
            original.headers[..],
            "original headers kept, first and in order"
        );
        copied.entry(partition).or_default().push(offset);
    }
    for (partition, offsets) in &copied {
        let expected: Vec<i64> = source
            .iter()
            .filter(|r| r.partition == *partition)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition}: each record once, in order"
        );
    }
    assert_eq!(destination.len(), source.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_request_approve_mirror_revoke_on_two_real_brokers() {
    let TwoOrgs {
        owner_cluster,
        partner_cluster,
        mut hub,
        owner,
        partner,
        logs: _logs,
    } = TwoOrgs::start().await;
    let admin = hub.admin_key.clone();

    // The owner publishes the stream.
    let (status, stream) = hub
        .call(
            "POST",
            "/v1/streams",
            &owner,
            Some(json!({
                "name": "orders", "cluster": "acme", "topic": "orders", "partitions": 3,
                "title": "Orders", "description": "Orders placed", "tags": ["sales"],
                "classification": "partner", "personal_data_fields": ["/id"],
                "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
            })),
        )
        .await;
    assert_eq!(status, 201, "{stream}");
    assert_eq!(stream["owner"], "acme");

    // The partner finds it and reads a valid AsyncAPI 3.0 document, as
    // YAML by default and as JSON on request.
    let (_, listing) = hub.call("GET", "/v1/streams", &partner, None).await;
    assert_eq!(listing["streams"][0]["name"], "orders");

    // Search by words, tags and owner, among what the caller may see: an
    // internal stream shows to its owner only.
    let (status, _) = hub
        .call(
            "POST",
            "/v1/streams",
            &owner,
            Some(json!({
                "name": "payments", "cluster": "acme", "topic": "payments",
                "title": "Payments", "description": "Card payments settled", "tags": ["finance", "sales"],
                "classification": "internal",
            })),
        )
        .await;
    assert_eq!(status, 201);
    let names = |listing: &serde_json::Value| -> Vec<String> {
        listing["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (who, query, expected) in [
        (&owner, "?q=PLACED", vec!["orders"]),
        (&owner, "?q=card%20settled", vec!["payments"]),
        (&owner, "?tag=sales", vec!["orders", "payments"]),
        (&owner, "?tag=sales,finance", vec!["payments"]),
        (&owner, "?owner=acme&q=orders", vec!["orders"]),
        (&owner, "?owner=globex", vec![]),
        (&partner, "?tag=sales", vec!["orders"]),
        (&partner, "?q=payments", vec![]),
    ] {
        let (status, listing) = hub
            .call("GET", &format!("/v1/streams{query}"), who, None)
            .await;
        assert_eq!(status, 200, "{query}: {listing}");
        assert_eq!(names(&listing), expected, "{query}");
    }
    let (status, refused) = hub.call("GET", "/v1/streams?text=x", &owner, None).await;
    assert_eq!((status, refused["error_code"].as_u64()), (422, Some(42201)));
    let yaml = hub
        .http
        .get(format!("{}/v1/streams/orders/asyncapi", hub.url))
        .bearer_auth(&partner)
        .send()
        .await
        .unwrap();
    assert!(yaml.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("yaml"));
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml.text().await.unwrap()).unwrap();
    let as_json: serde_json::Value = hub
        .http
        .get(format!("{}/v1/streams/orders/asyncapi", hub.url))
        .bearer_auth(&partner)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(yaml, as_json);
    assert_eq!(asyncapi_violations(&as_json), Vec::<String>::new());
    assert_eq!(as_json["servers"]["acme"]["host"], owner_cluster.bootstrap);
    assert_eq!(
        as_json["channels"]["orders"]["bindings"]["kafka"]["partitions"],
        3
    );

    // Only the owner may produce.
    let (status, refused) = hub.produce("orders", &partner, records(0, 1)).await;
    assert_eq!((status, refused["error_code"].as_u64()), (403, Some(40301)));
    let (status, produced) = hub.produce("orders", &owner, records(0, 6)).await;
    assert_eq!(status, 200, "{produced}");
    assert_eq!(produced["offsets"].as_array().unwrap().len(), 6);
    assert_eq!(produced["offsets"][3]["partition"], 0);
    assert_eq!(produced["offsets"][3]["offset"], 1);

    // The partner requests; nothing flows before approval.
    let (status, contract) = hub
        .call(
            "POST",
            "/v1/contracts",
            &partner,
            Some(json!({
                "stream": "orders", "purpose": "analytics",
                "destination": {"cluster": "globex", "topic": "partner.orders"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{contract}");
    assert_eq!(contract["state"], "requested");
    let id = contract["id"].as_str().unwrap().to_string();

    // Contracts filter by state, stream, consuming org and owner.
    for (query, count) in [
        ("?state=requested&stream=orders", 1),
        ("?org=globex", 1),
        ("?org=acme", 0),
        ("?owner=acme", 1),
        ("?owner=globex", 0),
        ("?state=active", 0),
    ] {
        let (status, listed) = hub
            .call("GET", &format!("/v1/contracts{query}"), &admin, None)
            .await;
        assert_eq!(status, 200, "{query}: {listed}");
        assert_eq!(
            listed["contracts"].as_array().unwrap().len(),
            count,
            "{query}"
        );
    }
    let (status, refused) = hub
        .call("GET", "/v1/contracts?state=pending", &admin, None)
        .await;
    assert_eq!((status, refused["error_code"].as_u64()), (422, Some(42201)));
    let (status, _) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/approve"),
            &partner,
            None,
        )
        .await;
    assert_eq!(status, 403, "a partner cannot approve");
    assert!(
        read_topic(&partner_cluster.bootstrap, "partner.orders", IDLE)
            .await
            .is_empty()
    );

    // The admin approves: the records appear at the partner's broker.
    let (status, approved) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/approve"),
            &admin,
            Some(json!({"reason": "signed"})),
        )
        .await;
    assert_eq!(
        (status, approved["state"].as_str()),
        (200, Some("approved"))
    );
    let mirrored = wait_for_count(&partner_cluster.bootstrap, "partner.orders", 6).await;
    let source = read_topic(&owner_cluster.bootstrap, "orders", IDLE).await;
    assert_faithful_copy(&source, &mirrored, &id);
    assert_eq!(mirrored[0].header("seq"), Some("0"));
    hub.until_contract(&id, "state", "active").await;

    // The partner's own AsyncAPI document lists what it now receives.
    let partner_doc: serde_json::Value = hub
        .http
        .get(format!("{}/v1/partners/globex/asyncapi", hub.url))
        .bearer_auth(&partner)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asyncapi_violations(&partner_doc), Vec::<String>::new());
    assert_eq!(
        partner_doc["servers"]["globex"]["host"],
        partner_cluster.bootstrap
    );
    assert_eq!(
        partner_doc["channels"]["globex_partner_orders"]["address"],
        "partner.orders"
    );
    let (status, _) = hub
        .call("GET", "/v1/partners/globex/asyncapi", &owner, None)
        .await;
    assert_eq!(status, 404, "another organization's document is not found");

    // The link dies without warning; records keep coming; a new link
    // resumes from what the destination holds: nothing lost, nothing twice.
    hub.link.kill();
    let (status, _) = hub.produce("orders", &owner, records(6, 12)).await;
    assert_eq!(status, 200);
    hub.restart_link();
    let mirrored = wait_for_count(&partner_cluster.bootstrap, "partner.orders", 12).await;
    let mirrored_settled = read_topic(&partner_cluster.bootstrap, "partner.orders", IDLE).await;
    assert_eq!(mirrored.len(), mirrored_settled.len());
    let source = read_topic(&owner_cluster.bootstrap, "orders", IDLE).await;
    assert_faithful_copy(&source, &mirrored_settled, &id);

    // Suspension pauses the flow; resuming continues where it stopped.
    let (status, suspended) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/suspend"),
            &admin,
            Some(json!({"reason": "incident"})),
        )
        .await;
    assert_eq!(
        (status, suspended["state"].as_str()),
        (200, Some("suspended")),
        "{suspended}"
    );
    hub.until_contract(&id, "link_status", "stopped").await;
    let (status, _) = hub.produce("orders", &owner, records(12, 15)).await;
    assert_eq!(status, 200);
    let paused = read_topic(
        &partner_cluster.bootstrap,
        "partner.orders",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(paused.len(), 12, "nothing flows while suspended");
    let (status, resumed) = hub
        .call("POST", &format!("/v1/contracts/{id}/resume"), &admin, None)
        .await;
    assert_eq!(
        (status, resumed["state"].as_str()),
        (200, Some("active")),
        "{resumed}"
    );
    wait_for_count(&partner_cluster.bootstrap, "partner.orders", 15).await;
    let source = read_topic(&owner_cluster.bootstrap, "orders", IDLE).await;
    let mirrored = read_topic(&partner_cluster.bootstrap, "partner.orders", IDLE).await;
    assert_faithful_copy(&source, &mirrored, &id);

    // Revocation stops the flow.
    let (status, revoked) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/revoke"),
            &admin,
            Some(json!({"reason": "ended"})),
        )
        .await;
    assert_eq!((status, revoked["state"].as_str()), (200, Some("revoked")));
    hub.until_contract(&id, "link_status", "stopped").await;
    let (status, _) = hub.produce("orders", &owner, records(15, 18)).await;
    assert_eq!(status, 200);
    assert_eq!(
        read_topic(&owner_cluster.bootstrap, "orders", IDLE)
            .await
            .len(),
        18
    );
    let after = read_topic(
        &partner_cluster.bootstrap,
        "partner.orders",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        after.len(),
        15,
        "records produced after revocation must not arrive"
    );

    // A revoked contract stays revoked.
    let (status, refused) = hub
        .call("POST", &format!("/v1/contracts/{id}/approve"), &admin, None)
        .await;
    assert_eq!(
        (status, refused["error_code"].as_u64()),
        (409, Some(40902)),
        "{refused}"
    );
    let (_, history) = hub
        .call("GET", &format!("/v1/contracts/{id}"), &admin, None)
        .await;
    let states: Vec<_> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].clone())
        .collect();
    assert_eq!(
        states,
        [
            json!("approved"),
            json!("active"),
            json!("suspended"),
            json!("active"),
            json!("revoked")
        ]
    );
    // The contract's audit trail, hash-chained, for whoever may see it.
    let (status, audit) = hub
        .call("GET", &format!("/v1/contracts/{id}/audit"), &partner, None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| *a != "contract.link_status")
        .collect();
    assert_eq!(
        actions,
        [
            "contract.request",
            "contract.approve",
            "contract.activate",
            "contract.suspend",
            "contract.resume",
            "contract.revoke"
        ]
    );
    assert_eq!(entries[1]["detail"]["reason"], "signed");
    assert!(entries
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    hub.catalog.assert_running();
    hub.portal.assert_running();
}
