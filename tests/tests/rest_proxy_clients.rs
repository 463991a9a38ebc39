//! Confluent's own REST Proxy client for Node.js (`kafka-rest` from npm,
//! which speaks REST Proxy v1) pointed at the portal, unchanged but for the
//! API key it sends (`tests/clients/rest_proxy_walk.js`): broker and topic
//! metadata, binary produce, Avro produce registering its schema and then
//! reusing the id, consumer instances joined with v1 settings
//! (`auto.offset.reset: smallest`), v1 topic reads, a commit without a
//! body that the group's next instance starts after, and shutdown. The
//! records land on a real tansu.

use std::process::Command;

use freeport_tests::{read_topic, rest_client_modules, workspace, TwoOrgs};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_s_node_client_walks_produce_and_consume() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("walk", 2, json!({})).await;
    let order =
        json!({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]});
    sandbox
        .stream(
            "walk-avro",
            1,
            json!({"schema_format": "avro", "schema": order}),
        )
        .await;
    let owner = sandbox.owner.clone();
    let url = sandbox.hub.url.clone();
    let ca = sandbox.hub.pki().ca_path();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(workspace().join("tests/clients/rest_proxy_walk.js"))
            .args([&url, &owner, "walk", "walk-avro"])
            .env("NODE_PATH", rest_client_modules())
            .env("NODE_EXTRA_CA_CERTS", ca)
            .output()
            .expect("node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rest_proxy_walk.js failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let walk: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert!(!walk["brokers"].as_array().unwrap().is_empty(), "{walk}");
    let topics = walk["topics"].as_array().unwrap();
    assert!(
        topics.contains(&json!("walk")) && topics.contains(&json!("walk-avro")),
        "{walk}"
    );
    assert_eq!(walk["partitions"], 2);
    let offsets = walk["binary_offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 3, "{walk}");
    assert!(offsets.iter().all(|o| o["error_code"].is_null()), "{walk}");
    assert_eq!(offsets[2]["partition"], 0, "the partition it named");

    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/walk-avro/schemas", &sandbox.owner, None)
        .await;
    let id = &versions["versions"][0]["id"];
    assert_eq!(
        walk["avro_schema_ids"],
        json!([id, id]),
        "the stream's own schema, by its global id, then reused: {walk}"
    );

    let mut read: Vec<(Value, Value)> = walk["read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["key"].clone(), m["value"].clone()))
        .collect();
    read.sort_by_key(|(_, v)| v.to_string());
    assert_eq!(
        read,
        [
            (json!("k1"), json!("first")),
            (Value::Null, json!("second")),
            (Value::Null, json!("third")),
        ]
    );
    assert_eq!(walk["avro"], json!([{"id": 1}, {"id": 2}, {"id": 3}]));
    assert_eq!(
        walk["after_commit"],
        json!(["fourth"]),
        "the commit without a body stuck: {walk}"
    );

    // On the broker: Avro in the Confluent wire format under the id.
    let written = read_topic(
        &sandbox.owner_cluster.bootstrap,
        "walk-avro",
        std::time::Duration::from_secs(2),
    )
    .await;
    let first = written[0].value.clone().unwrap();
    assert_eq!(
        (
            first[0],
            u64::from(u32::from_be_bytes(first[1..5].try_into().unwrap()))
        ),
        (0, id.as_u64().unwrap())
    );
}
