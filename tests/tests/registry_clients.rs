//! confluent-kafka's own Schema Registry serializers (Python, from PyPI)
//! against the portal's registry: the owner's `AvroSerializer` and
//! `JSONSerializer` register their schemas and produce to its tansu; the
//! link mirrors the records into the partner's tansu as they are (magic
//! byte and global schema id); the partner's deserializers fetch the
//! writers' schemas by id with the partner's own key and read them. An
//! incompatible schema is refused with Confluent's 409.

use std::process::Command;

use freeport_tests::{clients_python, workspace, TwoOrgs};
use serde_json::{json, Value};

/// Runs tests/clients/registry_clients.py in `mode`; its last line's JSON.
fn clients(sandbox: &TwoOrgs, mode: &str, key: &str, bootstrap: &str) -> Value {
    let ca = sandbox.hub.pki().ca_path();
    let output = Command::new(clients_python())
        .arg(workspace().join("tests/clients/registry_clients.py"))
        .args([mode, &sandbox.hub.url])
        .arg(&ca)
        .args([key, bootstrap])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "registry_clients.py {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_serializers_register_produce_and_read_through_the_registry() {
    let sandbox = TwoOrgs::start().await;
    let order_v1 = json!({"type": "record", "name": "Order", "namespace": "acme",
        "fields": [{"name": "id", "type": "long"}]});
    sandbox
        .stream(
            "orders",
            1,
            json!({"schema_format": "avro", "schema": order_v1}),
        )
        .await;
    sandbox
        .stream(
            "events",
            1,
            json!({"schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}),
        )
        .await;
    sandbox
        .active_contract("orders", "orders-copy", json!(null))
        .await;
    sandbox
        .active_contract("events", "events-copy", json!(null))
        .await;

    let produced = clients(
        &sandbox,
        "produce",
        &sandbox.owner,
        &sandbox.owner_cluster.bootstrap,
    );
    assert_eq!(
        produced["refused"]["http_status"], 409,
        "an incompatible schema is refused: {produced}"
    );
    assert_eq!(produced["refused"]["error_code"], 409);
    assert_eq!(produced["is_compatible"], false);
    // The serializer registered its schema as the stream's version 2.
    assert_eq!(produced["orders_latest"]["version"], 2, "{produced}");
    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/orders/schemas", &sandbox.owner, None)
        .await;
    assert_eq!(
        versions["versions"][1]["id"], produced["orders_latest"]["id"],
        "the id in the records is the catalog's: {versions}"
    );

    let read = clients(
        &sandbox,
        "consume",
        &sandbox.partner,
        &sandbox.partner_cluster.bootstrap,
    );
    let orders: Vec<Value> = (0..5)
        .map(|n| json!({"id": n, "note": format!("order {n}")}))
        .collect();
    let events: Vec<Value> = (0..5)
        .map(|n| json!({"id": n, "kind": "created"}))
        .collect();
    assert_eq!(read["orders-copy"], json!(orders), "{read}");
    assert_eq!(read["events-copy"], json!(events), "{read}");
}
