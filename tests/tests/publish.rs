//! Publishing AsyncAPI 3.0 documents: the streams they describe appear,
//! validated against the official schema and our own rules, all or nothing.

use std::sync::Arc;
use std::time::Duration;

use freeport_catalog::asyncapi::AsyncApiValidator;
use freeport_catalog::domain::OrgDetails;
use freeport_catalog::domain::{OrgKind, Principal, Role, SchemaFormat};
use freeport_catalog::store::MemoryStore;
use freeport_catalog::Catalog;
use freeport_common::config::{ClusterConfig, Clusters};
use freeport_common::names::{ClusterName, OrgName, StreamName};
use freeport_tests::{asyncapi_schema_path, json, Broker, Hub};
use tokio_util::sync::CancellationToken;

const DOCUMENT: &str = r##"
asyncapi: 3.0.0
info:
  title: Shop events
  version: 1.0.0
  description: What the web shop publishes.
servers:
  acme:
    host: kafka.acme.internal:9092
    protocol: kafka
channels:
  orders:
    address: shop.orders
    title: Orders
    x-freeport-classification: partner
    servers:
      - $ref: '#/servers/acme'
    messages:
      order:
        $ref: '#/components/messages/order'
    bindings:
      kafka:
        partitions: 3
  payments:
    address: shop.payments
    messages:
      payment:
        payload:
          schemaFormat: application/vnd.apache.avro+json;version=1.9.0
          schema:
            type: record
            name: Payment
            fields:
              - name: id
                type: long
operations:
  receiveOrders:
    action: receive
    channel:
      $ref: '#/channels/orders'
components:
  messages:
    order:
      payload:
        type: object
        required: [id]
        properties:
          id: {type: integer}
          total: {type: number}
"##;

async fn catalog() -> (Arc<Catalog>, Principal, Principal) {
    let clusters: Clusters = [(
        ClusterName::parse("acme").unwrap(),
        ClusterConfig::owned_by(OrgName::parse("acme").unwrap(), "kafka.acme.internal:9092"),
    )]
    .into();
    let mut catalog = Catalog::new(
        Arc::new(MemoryStore::default()),
        clusters,
        CancellationToken::new(),
    );
    catalog.set_asyncapi_validator(AsyncApiValidator::load(&asyncapi_schema_path()).unwrap());
    let catalog = Arc::new(catalog);
    let admin = Principal::Admin { key_id: "t".into() };
    let mut members = vec![];
    for name in ["acme", "rival"] {
        let org = OrgName::parse(name).unwrap();
        catalog
            .create_organization(
                &admin,
                org.clone(),
                OrgKind::Internal,
                OrgDetails::default(),
            )
            .await
            .unwrap();
        let (_, key) = catalog
            .create_api_key(&admin, Role::Member, Some(org), Default::default())
            .await
            .unwrap();
        members.push(catalog.authenticate(&key).unwrap());
    }
    let rival = members.pop().unwrap();
    (catalog, members.pop().unwrap(), rival)
}

fn pointers(problems: &[freeport_catalog::asyncapi::Problem]) -> Vec<String> {
    problems.iter().map(|p| format!("{p}")).collect()
}

#[tokio::test]
async fn a_document_registers_its_streams_and_evolves_them() {
    let (catalog, owner, rival) = catalog().await;
    let created = catalog
        .publish_asyncapi(&owner, DOCUMENT, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.len(), 2);
    let orders = catalog
        .get_stream(&StreamName::parse("orders").unwrap())
        .unwrap();
    assert_eq!(
        (
            orders.topic.as_str(),
            orders.partitions,
            orders.title.as_str()
        ),
        ("shop.orders", 3, "Orders")
    );
    assert_eq!(orders.classification.as_str(), "partner");
    assert_eq!(orders.value_schema["required"], json!(["id"]));
    let payments = catalog
        .get_stream(&StreamName::parse("payments").unwrap())
        .unwrap();
    assert_eq!(payments.schema_format, SchemaFormat::Avro);
    assert_eq!(payments.description, "What the web shop publishes.");

    // The same document again changes nothing.
    assert!(catalog
        .publish_asyncapi(&owner, DOCUMENT, false)
        .await
        .unwrap()
        .unwrap()
        .is_empty());

    // A compatible change is a new schema version.
    let evolved = DOCUMENT.replace(
        "total: {type: number}",
        "total: {type: number}\n          note: {type: string}",
    );
    let changed = catalog
        .publish_asyncapi(&owner, &evolved, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].schema_versions.len(), 2);

    // An incompatible one is refused where it is, and nothing is written.
    let breaking = evolved.replace("required: [id]", "required: [id, note]");
    let problems = catalog
        .publish_asyncapi(&owner, &breaking, false)
        .await
        .unwrap()
        .unwrap_err();
    let said = pointers(&problems);
    assert!(
        said.iter().any(
            |p| p.starts_with("/channels/orders: payload is not BACKWARD compatible")
                && p.contains("'note' is now required")
        ),
        "{said:#?}"
    );
    // Someone else's streams cannot be taken over.
    let problems = catalog
        .publish_asyncapi(&rival, DOCUMENT, false)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        pointers(&problems),
        [
            "/channels/orders: stream orders belongs to acme",
            "/channels/payments: stream payments belongs to acme"
        ]
    );
    assert_eq!(
        catalog
            .get_stream(&StreamName::parse("orders").unwrap())
            .unwrap()
            .schema_versions
            .len(),
        2
    );
    // Nor can a new channel claim a topic on a cluster of someone else's.
    let claim = DOCUMENT
        .replace("orders", "claimed")
        .replace("payments", "claimed-too");
    let problems = catalog
        .publish_asyncapi(&rival, &claim, false)
        .await
        .unwrap()
        .unwrap_err();
    let said = pointers(&problems);
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said.iter().all(|p| p.contains(
            "cluster: cluster \"acme\" belongs to organization \"acme\"; \"rival\" may register streams only on its own clusters, and it owns none"
        )),
        "{said:#?}"
    );
    assert!(catalog
        .get_stream(&StreamName::parse("claimed").unwrap())
        .is_err());
}

#[tokio::test]
async fn every_problem_comes_back_at_once_with_its_pointer() {
    let (catalog, owner, _) = catalog().await;
    let (_, revision) = catalog.list_contracts().await.unwrap();

    let problems = catalog
        .publish_asyncapi(&owner, "asyncapi: [3.0.0\ninfo:", false)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        pointers(&problems)[0].starts_with("/: malformed YAML"),
        "{problems:?}"
    );
    let problems = catalog
        .publish_asyncapi(&owner, "{\"asyncapi\": ", false)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        pointers(&problems)[0].starts_with("/: malformed JSON"),
        "{problems:?}"
    );

    // Not AsyncAPI 3.0 per the official schema.
    let invalid = DOCUMENT
        .replace("action: receive", "action: consume")
        .replace("  title: Shop events\n", "");
    let problems = catalog
        .publish_asyncapi(&owner, &invalid, false)
        .await
        .unwrap()
        .unwrap_err();
    let said = pointers(&problems);
    assert!(said.iter().any(|p| p.starts_with("/info")), "{said:#?}");
    assert!(
        said.iter()
            .any(|p| p.starts_with("/operations/receiveOrders/action")),
        "{said:#?}"
    );

    // Valid AsyncAPI, but not something this hub can offer.
    let ours_wrong = DOCUMENT
        .replace("  acme:\n    host", "  mars:\n    host")
        .replace("'#/servers/acme'", "'#/servers/mars'")
        .replace("address: shop.payments", "address: shop/payments")
        .replace("id: {type: integer}", "id: {type: integr}")
        .replace("type: long", "type: lnog");
    let problems = catalog
        .publish_asyncapi(&owner, &ours_wrong, false)
        .await
        .unwrap()
        .unwrap_err();
    let said = pointers(&problems);
    for expected in [
        "/servers/mars: server \"mars\" is not a cluster this hub knows",
        "/channels/orders/messages/order/payload/properties/id/type: \"integr\" is not a JSON Schema type",
        "/channels/payments/address: invalid topic \"shop/payments\"",
        "/channels/payments/messages/payment/payload/schema/fields/0/type: unknown type \"lnog\"",
    ] {
        assert!(said.iter().any(|p| p.starts_with(expected)), "missing {expected:?} in {said:#?}");
    }
    let oversized = format!("{DOCUMENT}\nx-padding: \"{}\"", "x".repeat(1024 * 1024));
    let problems = catalog
        .publish_asyncapi(&owner, &oversized, false)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        pointers(&problems)[0].contains("the limit is"),
        "{problems:?}"
    );

    assert!(
        catalog.list_streams().unwrap().is_empty(),
        "a refused document wrote something"
    );
    assert_eq!(catalog.list_contracts().await.unwrap().1, revision);
}

#[tokio::test]
async fn publishing_without_the_official_schema_is_not_configured_not_unchecked() {
    let catalog = Catalog::new(
        Arc::new(MemoryStore::default()),
        Clusters::new(),
        CancellationToken::new(),
    );
    let owner = Principal::Member {
        org: OrgName::parse("acme").unwrap(),
        key_id: "k".into(),
    };
    let err = catalog
        .publish_asyncapi(&owner, DOCUMENT, false)
        .await
        .unwrap_err();
    // A setup problem, not an outage: trying again does not help.
    assert_eq!(err.code(), freeport_common::error::ErrorCode::NotConfigured);
    assert_eq!(err.code().http_status(), 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_the_portal_creates_streams_and_topics() {
    let logs = tempfile::tempdir().unwrap();
    let broker = Broker::start("broker", logs.path()).await;
    let hub = Hub::start(&[("acme", broker.bootstrap.as_str())]).await;
    let owner = hub.org("acme", "internal").await;
    let post = |content_type: &'static str, body: String| {
        hub.http
            .post(format!("{}/v1/asyncapi", hub.url))
            .bearer_auth(&owner)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let document = DOCUMENT.replace("kafka.acme.internal:9092", &broker.bootstrap);
    let answer = post("application/yaml", document.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["streams"].as_array().unwrap().len(), 2, "{body}");
    let partitions = freeport_common::kafka::partition_count(&broker.cluster(), "shop.orders")
        .await
        .unwrap();
    assert_eq!(
        partitions,
        Some(3),
        "the topic was created with the binding's partitions"
    );

    let refused = post(
        "application/yaml",
        document.replace("action: receive", "action: consume"),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], 42203);
    assert_eq!(
        body["problems"][0]["pointer"], "/operations/receiveOrders/action",
        "{body}"
    );
    let unsupported = post("text/plain", document.clone()).await.unwrap();
    assert_eq!(unsupported.status(), 415);
    let (_, listed) = hub.call("GET", "/v1/asyncapi", &owner, None).await;
    let id = listed["documents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(id, "acme:Shop events");
    let text = hub
        .http
        .get(format!(
            "{}/v1/asyncapi/{}",
            hub.url,
            id.replace(' ', "%20")
        ))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, document, "the document comes back as published");

    // Hundreds of problems come back as one 422 listing them all: they
    // once travelled in a gRPC status, overflowed HTTP/2's header limit
    // and reset the portal's connection to the catalog (Watch included).
    let channels: serde_json::Map<String, serde_json::Value> = (0..300)
        .map(|i| {
            (
                format!("c{i}"),
                serde_json::json!({"address": format!("shop/c{i}"), "servers": [{"$ref": "#/servers/acme"}]}),
            )
        })
        .collect();
    let many = serde_json::json!({
        "asyncapi": "3.0.0",
        "info": {"title": "Many", "version": "1.0.0"},
        "servers": {"acme": {"host": broker.bootstrap, "protocol": "kafka"}},
        "channels": channels,
    });
    let answer = post("application/json", many.to_string()).await.unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error_code"], 42203, "{body}");
    assert!(
        body["problems"].as_array().unwrap().len() >= 300,
        "{}",
        body["problems"].as_array().unwrap().len()
    );
    let (status, _) = hub.call("GET", "/v1/streams", &owner, None).await;
    assert_eq!(status, 200, "the portal still talks to the catalog");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
