//! A contract's terms applied by the link, on two real brokers: fields
//! dropped, masked and hashed, rows filtered, and a record that cannot be
//! reshaped sent to the dead-letter topic on the owner's cluster.

use std::time::Duration;

use freeport_tests::{eventually, json, read_topic, TwoOrgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partner_receives_only_what_its_terms_allow() {
    let sandbox = TwoOrgs::start().await;
    let (hub, owner) = (&sandbox.hub, &sandbox.owner);
    sandbox
        .stream(
            "customers",
            2,
            json!({
                "personal_data_fields": ["/email", "/name"],
                "schema": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "total": {"type": "number"}, "country": {"type": "string"},
                    "email": {"type": "string"}, "name": {"type": "string"}
                }},
            }),
        )
        .await;
    let record = |id: i64, total: i64, country: &str, name: &str, partition: i32| {
        json!({
            "key": format!("c-{id}"), "partition": partition,
            "value": {"id": id, "total": total, "country": country, "email": format!("{name}@x.example"), "name": name},
        })
    };
    let (status, _) = hub
        .produce(
            "customers",
            owner,
            json!([
                record(1, 5, "NL", "ann", 0),
                record(2, 50, "DE", "dirk", 1),
                record(3, 70, "BE", "bob", 1)
            ]),
        )
        .await;
    assert_eq!(status, 200);
    // A record that is not JSON, through the binary format: the portal
    // refuses it while it checks records against the stream's schema, so
    // the owner turns that off (as any producer writing to the cluster
    // directly could put such a record there anyway).
    let (status, _) = hub
        .call(
            "PUT",
            "/v1/streams/customers/validation",
            owner,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    freeport_tests::eventually(
        std::time::Duration::from_secs(10),
        "the portal to take a record that is not JSON",
        || async {
            let not_json = hub
                .http
                .post(format!("{}/topics/customers", hub.url))
                .bearer_auth(owner)
                .header("content-type", "application/vnd.kafka.binary.v2+json")
                .body(
                    json!({"records": [{"key": "Yy05", "value": "bm90IGpzb24=", "partition": 0}]})
                        .to_string(),
                )
                .send()
                .await
                .unwrap();
            (not_json.status() == 200).then_some(())
        },
    )
    .await;

    let id = sandbox
        .approved_contract(
            "customers",
            "partner.customers",
            json!({
                "drop_fields": ["/total"], "mask_fields": ["/name"], "hash_fields": ["/email"],
                "row_filter": [{"field": "/country", "op": "in", "value": ["NL", "BE"]}],
                "max_records_per_second": 100
            }),
        )
        .await;

    let received = eventually(Duration::from_secs(30), "the reshaped records", || async {
        let found = read_topic(
            &sandbox.partner_cluster.bootstrap,
            "partner.customers",
            Duration::from_millis(500),
        )
        .await;
        (found.len() >= 2).then_some(found)
    })
    .await;
    let settled = read_topic(
        &sandbox.partner_cluster.bootstrap,
        "partner.customers",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        settled.len(),
        2,
        "the row filter leaves the DE record out, the non-JSON one never arrives"
    );
    assert_eq!(received.len(), settled.len());
    let values: Vec<serde_json::Value> = settled
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .collect();
    for (record, value) in settled.iter().zip(&values) {
        assert!(value.get("total").is_none(), "dropped: {value}");
        assert_eq!(value["name"], "****", "masked: {value}");
        let email = value["email"].as_str().unwrap();
        assert!(
            email.starts_with("hmac-sha256:") && !email.contains("x.example"),
            "hashed: {value}"
        );
        assert!(["NL", "BE"].contains(&value["country"].as_str().unwrap()));
        assert_eq!(record.header("freeport.contract"), Some(id.as_str()));
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        assert_eq!(key, format!("\"c-{}\"", value["id"]), "keys kept");
    }
    let partitions: Vec<i32> = settled.iter().map(|r| r.partition).collect();
    assert_eq!(partitions, [0, 1], "partitions kept");

    // The record that could not be reshaped is on the owner's cluster, with why.
    let dead = eventually(Duration::from_secs(30), "the dead letter", || {
        let topic = format!("freeport.dlq.{id}");
        let bootstrap = sandbox.owner_cluster.bootstrap.clone();
        async move {
            let found = read_topic(&bootstrap, &topic, Duration::from_millis(500)).await;
            (!found.is_empty()).then_some(found)
        }
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json"[..]));
    assert!(dead[0]
        .header("freeport.dead_letter.reason")
        .unwrap()
        .contains("not valid JSON"));
    assert!(read_topic(
        &sandbox.partner_cluster.bootstrap,
        &format!("freeport.dlq.{id}"),
        Duration::from_millis(500)
    )
    .await
    .is_empty());
    let (_, contract) = hub
        .call("GET", &format!("/v1/contracts/{id}"), &hub.admin_key, None)
        .await;
    assert_eq!(
        (contract["state"].as_str(), contract["link_status"].as_str()),
        (Some("active"), Some("running"))
    );
}
