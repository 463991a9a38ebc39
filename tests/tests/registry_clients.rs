//! confluent-kafka's own Schema Registry serializers (Python, from PyPI)
//! against the portal's registry: the owner's `AvroSerializer` and
//! `JSONSerializer` register their schemas and produce to its tansu; the
//! link mirrors the records into the partner's tansu as they are (magic
//! byte and global schema id); the partner's deserializers fetch the
//! writers' schemas by id with the partner's own key and read them. The
//! orders contract masks a field: the link decodes each Avro value,
//! masks it and writes it under the schema the catalog derived for the
//! contract, which the partner's deserializer fetches by its own id. An
//! incompatible schema is refused with Confluent's 409. The orders keys
//! are Avro under the `orders-key` subject, and reach the partner as they
//! were written. The shipments schema refers to the `addresses-value`
//! subject (a schema reference): the link reshapes its values through the
//! reference, and the partner's deserializer resolves it through a subject
//! only that reference shows it.

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
        .stream(
            "payments",
            1,
            json!({"schema_format": "protobuf", "schema": "syntax = \"proto3\";\npackage acme;\nmessage Payment {\n  int64 id = 1;\n  string card = 2;\n  double amount = 3;\n}\n"}),
        )
        .await;
    let address = json!({"type": "record", "name": "Address", "namespace": "acme",
        "fields": [{"name": "city", "type": "string"}]});
    sandbox
        .stream(
            "addresses",
            1,
            json!({"schema_format": "avro", "schema": address}),
        )
        .await;
    sandbox
        .stream(
            "shipments",
            1,
            json!({"schema_format": "avro", "schema": {"type": "record", "name": "Shipment",
                "namespace": "acme", "fields": [{"name": "id", "type": "long"}]}}),
        )
        .await;
    sandbox
        .stream(
            "places",
            1,
            json!({"schema_format": "protobuf", "schema": "syntax = \"proto3\";\npackage acme;\nmessage Place {\n  string city = 1;\n}\n"}),
        )
        .await;
    sandbox
        .stream(
            "visits",
            1,
            json!({"schema_format": "protobuf", "schema": "syntax = \"proto3\";\npackage acme;\nmessage Visit {\n  int64 id = 1;\n}\n"}),
        )
        .await;
    sandbox
        .active_contract("visits", "visits-copy", json!({"mask_fields": ["/id"]}))
        .await;
    sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/note"]}))
        .await;
    sandbox
        .active_contract(
            "shipments",
            "shipments-copy",
            json!({"mask_fields": ["/carrier"]}),
        )
        .await;
    sandbox
        .active_contract(
            "payments",
            "payments-copy",
            json!({"mask_fields": ["/card", "/amount"]}),
        )
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
    let orders: Vec<Value> = (0..5).map(|n| json!({"id": n, "note": "****"})).collect();
    let events: Vec<Value> = (0..5)
        .map(|n| json!({"id": n, "kind": "created"}))
        .collect();
    assert_eq!(read["values"]["orders-copy"], json!(orders), "{read}");
    assert_eq!(read["values"]["events-copy"], json!(events), "{read}");
    let keys: Vec<Value> = (0..5).map(|n| json!({"region": "eu", "n": n})).collect();
    assert_eq!(
        read["keys"]["orders-copy"],
        json!(keys),
        "Avro keys, unchanged by the terms: {read}"
    );
    assert_eq!(produced["orders_key"]["version"], 1, "{produced}");
    assert_eq!(
        produced["payments_latest"]["version"], 1,
        "the Python client's descriptor is the stream's .proto text, one schema: {produced}"
    );
    assert_eq!(
        produced["lifecycle"],
        json!({
            "level": [{"compatibility": "FULL"}, "FULL"],
            "versions": [1, 2],
            "soft_one": 2,
            "after_one": [1],
            "soft_all": [1],
            "permanent": [1, 2],
            "subjects": ["addresses-value", "events-value", "orders-key", "orders-value", "payments-value", "places-value", "shipments-value", "visits-value"],
        }),
        "the client's own subject calls: {produced}"
    );
    assert_eq!(
        produced["protobuf_refused"]["http_status"], 409,
        "{produced}"
    );
    assert!(
        produced["protobuf_refused"]["message"]
            .as_str()
            .unwrap()
            .contains("FIELD_SCALAR_KIND_CHANGED"),
        "{produced}"
    );
    let payments: Vec<Value> = (0..5)
        .map(|n| json!({"id": (n + 1).to_string(), "card": "****", "amount": "****"}))
        .collect();
    assert_eq!(
        read["values"]["payments-copy"],
        json!(payments),
        "Protobuf, masked by the link and read by the partner's ProtobufDeserializer: {read}"
    );
    assert_ne!(
        produced["orders_key"]["id"],
        produced["orders_latest"]["id"]
    );

    // Schema references: the serializer registered the shipments schema
    // with its reference; the referenced version cannot be deleted; the
    // partner read the masked copy through the reference.
    assert_eq!(
        produced["shipments_latest"]["references"],
        json!([{"name": "acme.Address", "subject": "addresses-value", "version": 1}]),
        "{produced}"
    );
    assert_eq!(
        (
            &produced["referenced_refused"]["http_status"],
            &produced["referenced_refused"]["error_code"]
        ),
        (&json!(422), &json!(42206)),
        "{produced}"
    );
    assert_eq!(
        produced["visits_latest"],
        json!({"version": 2, "references": [{"name": "acme/place.proto", "subject": "places-value", "version": 1}]}),
        "ProtobufSerializer registered the import as a reference: {produced}"
    );
    let visits: Vec<Value> = (0..5)
        .map(|_| json!({"id": "****", "at": {"city": "Lyon"}}))
        .collect();
    assert_eq!(
        read["values"]["visits-copy"],
        json!(visits),
        "Protobuf with an import, masked by the link: {read}"
    );
    let shipments: Vec<Value> = (0..5)
        .map(|n| json!({"id": n, "carrier": "****", "to": {"city": "Lyon"}}))
        .collect();
    assert_eq!(
        read["values"]["shipments-copy"],
        json!(shipments),
        "Avro with a reference, masked by the link: {read}"
    );

    // The masked copy is under a schema of the contract's own, which the
    // partner sees in its subject and the owner does not.
    let registry = |key: &str, path: &str| {
        let request = sandbox
            .hub
            .http
            .get(format!("{}/registry{path}", sandbox.hub.url))
            .basic_auth("x", Some(key));
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, latest) = registry(
        &sandbox.partner,
        "/subjects/orders-copy-value/versions/latest",
    )
    .await;
    assert_eq!(status, 200, "{latest}");
    assert_ne!(
        latest["id"], produced["orders_latest"]["id"],
        "not the stream's schema"
    );
    let delivered: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert!(
        delivered
            .to_string()
            .contains(r#"{"name":"note","type":"string"}"#),
        "{delivered}"
    );
    let (status, _) = registry(&sandbox.owner, &format!("/schemas/ids/{}", latest["id"])).await;
    assert_eq!(status, 404, "the derived schema is the contract's");

    // The partner sees the reference under the referenced stream's
    // context, and only the version it refers to; the owner sees who
    // refers to its version.
    let (status, delivered) = registry(
        &sandbox.partner,
        "/subjects/shipments-copy-value/versions/latest",
    )
    .await;
    assert_eq!(status, 200, "{delivered}");
    let reference = &delivered["references"][0];
    assert_eq!(
        reference["subject"], ":.addresses:addresses-value",
        "{delivered}"
    );
    let (status, versions) = registry(
        &sandbox.partner,
        "/subjects/:.addresses:addresses-value/versions",
    )
    .await;
    assert_eq!((status, versions), (200, json!([1])));
    let (status, _) = registry(&sandbox.partner, "/subjects/addresses-value/versions").await;
    assert_eq!(
        status, 404,
        "the addresses stream itself is not the partner's"
    );
    let (status, referrers) = registry(
        &sandbox.owner,
        "/subjects/addresses-value/versions/1/referencedby",
    )
    .await;
    assert_eq!(
        (status, referrers),
        (200, json!([produced["shipments_latest"]["id"]]))
    );
}
