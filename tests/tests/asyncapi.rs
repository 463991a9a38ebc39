//! Generated AsyncAPI documents are valid AsyncAPI 3.0, checked against the
//! official JSON Schema (from the `@asyncapi/specs` package).

use freeport_catalog::asyncapi::{partner_document, stream_document, Delivery, Portal};
use freeport_common::config::ClusterConfig;
use freeport_common::proto::catalog::v1 as pb;
use freeport_tests::{asyncapi_violations, json};

fn cluster(bootstrap: &str, description: &str) -> ClusterConfig {
    ClusterConfig {
        description: description.into(),
        ..ClusterConfig::plaintext(bootstrap)
    }
}

#[test]
fn generated_documents_are_valid_asyncapi_3() {
    let cases = [
        (
            pb::Stream {
                name: "orders".into(),
                owner: "acme".into(),
                cluster: "eu.main".into(),
                topic: "Orders.V1".into(),
                title: "Orders".into(),
                description: "Every order".into(),
                tags: vec!["sales".into(), "pii".into()],
                value_schema_json: json!({
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "integer"}, "lines": {"type": "array", "items": {"type": "string"}}}
                })
                .to_string(),
                ..Default::default()
            },
            cluster("k1:9092,k2:9092", "main cluster"),
            Some(12),
        ),
        (
            // The least a stream can have: no title, tags or schema details.
            pb::Stream {
                name: "b2b.x_y-z".into(),
                owner: "o".into(),
                cluster: "c".into(),
                topic: "t".into(),
                value_schema_json: "{}".into(),
                ..Default::default()
            },
            cluster("localhost:1", ""),
            None,
        ),
        (
            // An Avro stream: the payload is a multi-format schema object.
            pb::Stream {
                name: "payments".into(),
                owner: "acme".into(),
                cluster: "main".into(),
                topic: "payments".into(),
                schema_format: pb::SchemaFormat::Avro.into(),
                value_schema_json: json!({
                    "type": "record", "name": "Payment",
                    "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}]
                })
                .to_string(),
                ..Default::default()
            },
            cluster("k:9092", ""),
            Some(1),
        ),
        (
            // A Protobuf stream: the payload is the .proto text, named as such.
            pb::Stream {
                name: "protos".into(),
                owner: "acme".into(),
                cluster: "main".into(),
                topic: "protos".into(),
                schema_format: pb::SchemaFormat::Protobuf.into(),
                value_schema_json: json!("syntax = \"proto3\";\nmessage P {\n  int64 id = 1;\n}\n").to_string(),
                ..Default::default()
            },
            cluster("k:9092", ""),
            Some(1),
        ),
        (
            // With an Avro key schema: the binding carries it beside the
            // bytes, and says where the schema id travels.
            pb::Stream {
                name: "keyed".into(),
                owner: "acme".into(),
                cluster: "main".into(),
                topic: "keyed".into(),
                value_schema_json: "{}".into(),
                key_schema_format: pb::SchemaFormat::Avro.into(),
                key_schema_versions: vec![pb::SchemaVersion {
                    version: 1,
                    id: 4,
                    format: pb::SchemaFormat::Avro.into(),
                    schema_json: json!({"type": "record", "name": "Key", "fields": [{"name": "id", "type": "long"}]}).to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            cluster("k:9092", ""),
            Some(1),
        ),
        (
            // With a JSON Schema key: the binding's key is that schema.
            pb::Stream {
                name: "json-keyed".into(),
                owner: "acme".into(),
                cluster: "main".into(),
                topic: "json-keyed".into(),
                value_schema_json: "{}".into(),
                key_schema_format: pb::SchemaFormat::JsonSchema.into(),
                key_schema_versions: vec![pb::SchemaVersion {
                    version: 1,
                    id: 5,
                    format: pb::SchemaFormat::JsonSchema.into(),
                    schema_json: json!({"type": "string", "pattern": "^o-"}).to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            cluster("k:9092", ""),
            Some(1),
        ),
    ];
    for (stream, cluster, partitions) in cases {
        let document = stream_document(&stream, &cluster, partitions);
        let violations = asyncapi_violations(&document);
        assert!(
            violations.is_empty(),
            "{}: {violations:#?}\n{document:#}",
            stream.name
        );
        let message = format!("{}Record", stream.name.replace('.', "_"));
        let binding = &document["components"]["messages"][&message]["bindings"]["kafka"];
        match stream.name.as_str() {
            "keyed" => {
                assert_eq!(
                    binding["key"]["x-avro-schema"]["name"], "Key",
                    "{binding:#}"
                );
                assert_eq!(binding["schemaIdLocation"], "payload");
                assert!(binding["key"]["description"]
                    .as_str()
                    .unwrap()
                    .contains("keyed-key, version 1, id 4"));
            }
            "json-keyed" => {
                assert_eq!(binding["key"]["pattern"], "^o-", "{binding:#}");
                assert!(binding.get("schemaIdLocation").is_none());
            }
            "payments" => assert_eq!(binding["schemaIdLocation"], "payload"),
            "protos" => {
                assert_eq!(binding["schemaIdLocation"], "payload");
                let payload = &document["components"]["messages"][&message]["payload"];
                assert_eq!(
                    payload["schemaFormat"],
                    "application/vnd.google.protobuf;version=3"
                );
                assert!(payload["schema"].as_str().unwrap().contains("message P"));
            }
            _ => assert_eq!(binding["key"], json!({"type": "string"})),
        }
    }
}

#[test]
fn the_validator_rejects_what_is_not_asyncapi_3() {
    // Without this, a validator that accepts everything would pass the test above.
    let stream = pb::Stream {
        name: "orders".into(),
        cluster: "a".into(),
        topic: "orders".into(),
        value_schema_json: "{}".into(),
        ..Default::default()
    };
    let mut document = stream_document(&stream, &cluster("h:1", ""), None);
    document["operations"]["receive_orders"]["action"] = json!("consume");
    document.as_object_mut().unwrap().remove("info");
    let violations = asyncapi_violations(&document);
    assert!(violations.len() >= 2, "{violations:#?}");
}

#[test]
fn the_partner_document_lists_what_it_receives_and_is_valid() {
    let orders = pb::Stream {
        name: "orders".into(),
        owner: "acme".into(),
        cluster: "acme".into(),
        topic: "orders".into(),
        title: "Orders".into(),
        value_schema_json: json!({
            "type": "object",
            "required": ["id", "email"],
            "properties": {
                "id": {"type": "integer"},
                "customer": {"type": "object", "properties": {"email": {"type": "string"}, "name": {"type": "string"}}},
                "email": {"type": "string"}
            }
        })
        .to_string(),
        ..Default::default()
    };
    let payments = pb::Stream {
        name: "payments".into(),
        owner: "acme".into(),
        cluster: "acme".into(),
        topic: "payments".into(),
        schema_format: pb::SchemaFormat::Avro.into(),
        value_schema_json: json!({"type": "record", "name": "Payment", "fields": [
            {"name": "id", "type": "long"}, {"name": "card", "type": "long"}
        ]})
        .to_string(),
        ..Default::default()
    };
    let contract = |id: &str, topic: &str, drop: &[&str]| pb::Contract {
        id: id.into(),
        consumer: "globex".into(),
        destination: Some(pb::ClusterDestination {
            cluster: "globex".into(),
            topic: topic.into(),
        }),
        terms: Some(pb::ContractTerms {
            drop_fields: drop.iter().map(|d| d.to_string()).collect(),
            mask_fields: vec!["/customer/name".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let c1 = contract("c1", "partner.orders", &["/email", "/customer/email"]);
    let mut c2 = contract("c2", "partner.payments", &[]);
    if let Some(terms) = c2.terms.as_mut() {
        terms.hash_fields = vec!["/card".into()];
    }
    // A push contract: read from the portal, no cluster.
    let c3 = pb::Contract {
        id: "c3".into(),
        destination: None,
        delivery: pb::DeliveryKind::Push.into(),
        ..contract("c3", "", &["/email"])
    };
    let globex = cluster("kafka.globex.example:9093", "");
    let document = partner_document(
        "globex",
        &[
            Delivery {
                contract: &c1,
                stream: &orders,
                destination: Some(&globex),
            },
            Delivery {
                contract: &c2,
                stream: &payments,
                destination: Some(&globex),
            },
            Delivery {
                contract: &c3,
                stream: &orders,
                destination: None,
            },
        ],
        Some(Portal {
            host: "portal.example:8443",
            secure: true,
        }),
    );
    let violations = asyncapi_violations(&document);
    assert!(violations.is_empty(), "{violations:#?}\n{document:#}");
    assert_eq!(
        document["servers"]["globex"]["host"],
        "kafka.globex.example:9093"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["clientCertificate"]["type"],
        "X509"
    );
    let channel = &document["channels"]["globex_partner_orders"];
    assert_eq!(channel["address"], "partner.orders");
    assert!(channel["description"]
        .as_str()
        .unwrap()
        .contains("Masked fields: /customer/name"));
    let payload = &document["components"]["messages"]["ordersRecord"]["payload"];
    assert!(
        payload["properties"].get("email").is_none(),
        "dropped field still described: {payload}"
    );
    assert!(payload["properties"]["customer"]["properties"]
        .get("email")
        .is_none());
    assert_eq!(payload["required"], json!(["id"]));
    assert_eq!(
        document["components"]["messages"]["paymentsRecord"]["payload"]["schemaFormat"],
        "application/vnd.apache.avro+json;version=1.9.0"
    );
    // What arrives: a hashed Avro field is a string, as the delivered
    // schema the link writes under says.
    assert_eq!(
        document["components"]["messages"]["paymentsRecord"]["payload"]["schema"]["fields"][1],
        json!({"name": "card", "type": "string"})
    );
    // The push contract's stream, as the portal's SSE and WebSocket feeds.
    assert_eq!(
        (
            &document["servers"]["freeport-sse"]["protocol"],
            &document["servers"]["freeport-websocket"]["protocol"],
            &document["servers"]["freeport-sse"]["host"],
        ),
        (
            &json!("https"),
            &json!("wss"),
            &json!("portal.example:8443")
        )
    );
    for channel in ["sse_orders", "ws_orders"] {
        assert_eq!(
            document["channels"][channel]["address"], "/v1/streams/orders/events",
            "{document:#}"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["apiKey"]["scheme"],
        "bearer"
    );
    let record = &document["components"]["messages"]["ordersEvent"]["payload"];
    assert!(
        record["properties"]["value"]["properties"]
            .get("email")
            .is_none(),
        "{record}"
    );
    assert!(
        record["properties"]["value"]["properties"]
            .get("id")
            .is_some(),
        "{record}"
    );
    assert_eq!(
        document["operations"]["receive_sse_orders"]["bindings"]["http"]["method"],
        "GET"
    );
    // Without the portal's address, push contracts are left out.
    let without = partner_document(
        "globex",
        &[Delivery {
            contract: &c3,
            stream: &orders,
            destination: None,
        }],
        None,
    );
    assert!(without["channels"].as_object().unwrap().is_empty());
    // Nothing received, still a valid document.
    assert!(asyncapi_violations(&partner_document("nobody", &[], None)).is_empty());
}
