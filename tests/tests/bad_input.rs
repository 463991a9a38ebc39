//! Every endpoint of the journey answers bad input with a JSON error
//! carrying a stable code and a fitting status, never a 5xx, and writes
//! nothing.

use std::time::Duration;

use freeport_tests::{json, read_topic, Broker, Hub, Value};

struct Refusal<'a> {
    what: &'a str,
    status: u16,
    code: u64,
}

fn check(refusal: Refusal<'_>, got: (u16, Value)) {
    let (status, body) = got;
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (refusal.status, Some(refusal.code)),
        "{}: {body}",
        refusal.what
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}: no message in {body}",
        refusal.what
    );
}

async fn raw(
    hub: &Hub,
    method: &str,
    path: &str,
    key: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let method = freeport_tests::reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = hub
        .http
        .request(method, format!("{}{path}", hub.url))
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_stable_code_and_writes_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let broker = Broker::start("broker", logs.path()).await;
    let hub = Hub::start(&[
        ("acme", broker.bootstrap.as_str()),
        ("globex", broker.bootstrap.as_str()),
    ])
    .await;
    let owner = hub.org("acme", "internal").await;
    let partner = hub.org("globex", "partner").await;
    let admin = hub.admin_key.clone();
    let json_type = Some("application/json");
    let stream = json!({"name": "orders", "cluster": "acme", "topic": "orders", "partitions": 2, "classification": "partner"});

    // Authentication.
    check(
        Refusal {
            what: "no key",
            status: 401,
            code: 40101,
        },
        raw(&hub, "GET", "/v1/streams", None, None, vec![]).await,
    );
    check(
        Refusal {
            what: "unknown key",
            status: 401,
            code: 40101,
        },
        hub.call("GET", "/v1/streams", "fpk_nope", None).await,
    );

    // Stream registration.
    let post = |body: &'static [u8], ct: Option<&'static str>| {
        raw(&hub, "POST", "/v1/streams", Some(&owner), ct, body.to_vec())
    };
    check(
        Refusal {
            what: "malformed JSON",
            status: 400,
            code: 40001,
        },
        post(b"{\"name\": ", json_type).await,
    );
    check(
        Refusal {
            what: "not JSON at all",
            status: 400,
            code: 40001,
        },
        post(b"name=orders", json_type).await,
    );
    check(
        Refusal {
            what: "no content type",
            status: 415,
            code: 41501,
        },
        post(b"{}", None).await,
    );
    check(
        Refusal {
            what: "wrong content type",
            status: 415,
            code: 41501,
        },
        post(b"{}", Some("text/plain")).await,
    );
    check(
        Refusal {
            what: "unknown field",
            status: 422,
            code: 42201,
        },
        post(
            br#"{"name":"orders","cluster":"acme","topic":"orders","colour":"red"}"#,
            json_type,
        )
        .await,
    );
    check(
        Refusal {
            what: "wrong type",
            status: 422,
            code: 42201,
        },
        post(
            br#"{"name":"orders","cluster":"acme","topic":"orders","tags":"sales"}"#,
            json_type,
        )
        .await,
    );
    check(
        Refusal {
            what: "missing field",
            status: 422,
            code: 42201,
        },
        post(br#"{"name":"orders"}"#, json_type).await,
    );
    let (status, body) = post(
        br#"{"name":"Orders!","cluster":"acme","topic":"orders"}"#,
        json_type,
    )
    .await;
    check(
        Refusal {
            what: "invalid name",
            status: 422,
            code: 42201,
        },
        (status, body.clone()),
    );
    assert!(
        body["message"].as_str().unwrap().contains("Orders!"),
        "{body}"
    );
    check(
        Refusal {
            what: "unknown cluster",
            status: 404,
            code: 40412,
        },
        post(
            br#"{"name":"orders","cluster":"mars","topic":"orders"}"#,
            json_type,
        )
        .await,
    );
    check(
        Refusal {
            what: "bad topic",
            status: 422,
            code: 42201,
        },
        post(
            br#"{"name":"orders","cluster":"acme","topic":"a/b"}"#,
            json_type,
        )
        .await,
    );
    check(
        Refusal {
            what: "schema not an object",
            status: 422,
            code: 42201,
        },
        post(
            br#"{"name":"orders","cluster":"acme","topic":"orders","schema":[1]}"#,
            json_type,
        )
        .await,
    );
    let huge = format!(
        r#"{{"name":"orders","cluster":"acme","topic":"orders","description":"{}"}}"#,
        "x".repeat(70_000)
    );
    check(
        Refusal {
            what: "oversized body",
            status: 413,
            code: 41301,
        },
        raw(
            &hub,
            "POST",
            "/v1/streams",
            Some(&owner),
            json_type,
            huge.into_bytes(),
        )
        .await,
    );
    check(
        Refusal {
            what: "admin registering for nobody",
            status: 403,
            code: 40301,
        },
        hub.call("POST", "/v1/streams", &admin, Some(stream.clone()))
            .await,
    );
    let mut for_partner = stream.clone();
    for_partner["owner"] = json!("globex");
    check(
        Refusal {
            what: "admin registering on a cluster the organization does not own",
            status: 403,
            code: 40303,
        },
        hub.call("POST", "/v1/streams", &admin, Some(for_partner))
            .await,
    );
    let mut claim = stream.clone();
    claim["name"] = json!("claim");
    check(
        Refusal {
            what: "partner registering on the owner's cluster",
            status: 403,
            code: 40303,
        },
        hub.call("POST", "/v1/streams", &partner, Some(claim)).await,
    );
    assert_eq!(
        hub.call("POST", "/v1/streams", &owner, Some(stream.clone()))
            .await
            .0,
        201
    );
    check(
        Refusal {
            what: "duplicate stream",
            status: 409,
            code: 40901,
        },
        hub.call("POST", "/v1/streams", &owner, Some(stream.clone()))
            .await,
    );
    check(
        Refusal {
            what: "unknown stream",
            status: 404,
            code: 40410,
        },
        hub.call("GET", "/v1/streams/nope", &partner, None).await,
    );
    check(
        Refusal {
            what: "unknown stream document",
            status: 404,
            code: 40410,
        },
        hub.call("GET", "/v1/streams/nope/asyncapi", &partner, None)
            .await,
    );

    check(
        Refusal {
            what: "unknown classification",
            status: 422,
            code: 42201,
        },
        post(
            br#"{"name":"x","cluster":"acme","topic":"x","classification":"secret"}"#,
            json_type,
        )
        .await,
    );
    // An internal stream does not exist for a partner.
    assert_eq!(
        hub.call(
            "POST",
            "/v1/streams",
            &owner,
            Some(json!({"name": "ledger", "cluster": "acme", "topic": "ledger"}))
        )
        .await
        .0,
        201
    );
    check(
        Refusal {
            what: "internal stream to a partner",
            status: 404,
            code: 40410,
        },
        hub.call("GET", "/v1/streams/ledger", &partner, None).await,
    );
    check(
        Refusal { what: "contract on an internal stream", status: 404, code: 40410 },
        hub.call("POST", "/v1/contracts", &partner, Some(json!({"stream": "ledger", "purpose": "p", "destination": {"cluster": "globex", "topic": "l"}}))).await,
    );

    // Schema versions.
    let v1 =
        json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]});
    let (status, events) = hub
        .call("POST", "/v1/streams", &owner, Some(json!({"name": "events", "cluster": "acme", "topic": "events", "schema": v1, "classification": "partner"})))
        .await;
    assert_eq!(
        (status, events["schema_version"].as_u64()),
        (201, Some(1)),
        "{events}"
    );
    let v2 = json!({"type": "object", "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}}, "required": ["id"]});
    let (status, version) = hub
        .call(
            "POST",
            "/v1/streams/events/schemas",
            &owner,
            Some(json!({"schema": v2})),
        )
        .await;
    assert_eq!(
        (status, version["version"].as_u64()),
        (201, Some(2)),
        "{version}"
    );
    let v3 = json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id", "kind"]});
    let (status, refused) = hub
        .call(
            "POST",
            "/v1/streams/events/schemas",
            &owner,
            Some(json!({"schema": v3})),
        )
        .await;
    check(
        Refusal {
            what: "incompatible schema",
            status: 409,
            code: 40904,
        },
        (status, refused.clone()),
    );
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("/properties/id: type integer is no longer allowed"),
        "{message}"
    );
    assert!(message.contains("'kind' is now required"), "{message}");
    check(
        Refusal {
            what: "schema by a partner",
            status: 403,
            code: 40301,
        },
        hub.call(
            "POST",
            "/v1/streams/events/schemas",
            &partner,
            Some(json!({"schema": {}})),
        )
        .await,
    );
    check(
        Refusal {
            what: "schema for unknown stream",
            status: 404,
            code: 40410,
        },
        hub.call(
            "POST",
            "/v1/streams/nope/schemas",
            &owner,
            Some(json!({"schema": {}})),
        )
        .await,
    );
    check(
        Refusal {
            what: "schema in another format",
            status: 422,
            code: 42201,
        },
        hub.call(
            "POST",
            "/v1/streams/events/schemas",
            &owner,
            Some(json!({"schema": "long", "format": "avro"})),
        )
        .await,
    );
    check(
        Refusal {
            what: "unknown schema format",
            status: 422,
            code: 42201,
        },
        hub.call(
            "POST",
            "/v1/streams/events/schemas",
            &owner,
            Some(json!({"schema": {}, "format": "thrift"})),
        )
        .await,
    );
    check(
        Refusal {
            what: "malformed schema",
            status: 422,
            code: 42201,
        },
        hub.call(
            "POST",
            "/v1/streams/events/schemas",
            &owner,
            Some(json!({"schema": {"type": "text"}})),
        )
        .await,
    );
    check(
        Refusal {
            what: "unknown compatibility",
            status: 422,
            code: 42201,
        },
        hub.call(
            "PUT",
            "/v1/streams/events/compatibility",
            &owner,
            Some(json!({"compatibility": "SOMETIMES"})),
        )
        .await,
    );
    let (status, changed) = hub
        .call(
            "PUT",
            "/v1/streams/events/compatibility",
            &owner,
            Some(json!({"compatibility": "NONE"})),
        )
        .await;
    assert_eq!(
        (status, changed["compatibility"].as_str()),
        (200, Some("NONE")),
        "{changed}"
    );
    let (_, versions) = hub
        .call("GET", "/v1/streams/events/schemas", &partner, None)
        .await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        2,
        "{versions}"
    );

    // Contracts.
    let contract = |stream: &str, topic: &str| json!({"stream": stream, "purpose": "p", "destination": {"cluster": "globex", "topic": topic}});
    check(
        Refusal {
            what: "contract for unknown stream",
            status: 404,
            code: 40410,
        },
        hub.call(
            "POST",
            "/v1/contracts",
            &partner,
            Some(contract("nope", "t")),
        )
        .await,
    );
    check(
        Refusal {
            what: "contract without destination",
            status: 422,
            code: 42201,
        },
        hub.call(
            "POST",
            "/v1/contracts",
            &partner,
            Some(json!({"stream": "orders", "purpose": "p"})),
        )
        .await,
    );
    check(
        Refusal { what: "contract with empty purpose", status: 422, code: 42201 },
        hub.call("POST", "/v1/contracts", &partner, Some(json!({"stream": "orders", "purpose": " ", "destination": {"cluster": "globex", "topic": "t"}}))).await,
    );
    check(
        Refusal { what: "mirror into the owner's cluster", status: 403, code: 40303 },
        hub.call("POST", "/v1/contracts", &partner, Some(json!({"stream": "orders", "purpose": "p", "destination": {"cluster": "acme", "topic": "orders"}}))).await,
    );
    check(
        Refusal { what: "mirror into a topic of the hub's", status: 403, code: 40304 },
        hub.call("POST", "/v1/contracts", &partner, Some(json!({"stream": "orders", "purpose": "p", "destination": {"cluster": "globex", "topic": "freeport.dlq.x"}}))).await,
    );
    check(
        Refusal {
            what: "admin requesting",
            status: 403,
            code: 40301,
        },
        hub.call(
            "POST",
            "/v1/contracts",
            &admin,
            Some(contract("orders", "t")),
        )
        .await,
    );
    check(
        Refusal {
            what: "unknown contract",
            status: 404,
            code: 40411,
        },
        hub.call("GET", "/v1/contracts/nope", &partner, None).await,
    );
    check(
        Refusal {
            what: "approve unknown contract",
            status: 404,
            code: 40411,
        },
        hub.call("POST", "/v1/contracts/nope/approve", &admin, None)
            .await,
    );
    let with_terms = |terms: Value| json!({"stream": "orders", "purpose": "p", "destination": {"cluster": "globex", "topic": "t2"}, "terms": terms});
    for (what, terms) in [
        ("terms with unknown field", json!({"mask": ["/x"]})),
        (
            "terms with unknown operator",
            json!({"row_filter": [{"field": "/x", "op": "like", "value": 1}]}),
        ),
        ("terms with a bad pointer", json!({"drop_fields": ["x"]})),
        ("terms with an end in the past", json!({"end_time_ms": 1})),
        ("terms with zero rate", json!({"max_records_per_second": 0})),
    ] {
        check(
            Refusal {
                what,
                status: 422,
                code: 42201,
            },
            hub.call("POST", "/v1/contracts", &partner, Some(with_terms(terms)))
                .await,
        );
    }
    let stranger = hub.org("initech", "partner").await;
    let (status, created) = hub
        .call(
            "POST",
            "/v1/contracts",
            &partner,
            Some(contract("orders", "copy")),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    check(
        Refusal {
            what: "shared destination",
            status: 409,
            code: 40903,
        },
        hub.call(
            "POST",
            "/v1/contracts",
            &partner,
            Some(contract("orders", "copy")),
        )
        .await,
    );
    check(
        Refusal {
            what: "unknown action",
            status: 404,
            code: 40400,
        },
        hub.call("POST", &format!("/v1/contracts/{id}/explode"), &admin, None)
            .await,
    );
    check(
        Refusal {
            what: "partner approving",
            status: 403,
            code: 40301,
        },
        hub.call(
            "POST",
            &format!("/v1/contracts/{id}/approve"),
            &partner,
            None,
        )
        .await,
    );
    check(
        Refusal {
            what: "decision with unknown field",
            status: 422,
            code: 42201,
        },
        hub.call(
            "POST",
            &format!("/v1/contracts/{id}/reject"),
            &admin,
            Some(json!({"why": "x"})),
        )
        .await,
    );
    check(
        Refusal {
            what: "decision not JSON",
            status: 415,
            code: 41501,
        },
        raw(
            &hub,
            "POST",
            &format!("/v1/contracts/{id}/reject"),
            Some(&admin),
            Some("text/plain"),
            b"because".to_vec(),
        )
        .await,
    );
    check(
        Refusal {
            what: "terms on a rejection",
            status: 422,
            code: 42201,
        },
        hub.call(
            "POST",
            &format!("/v1/contracts/{id}/reject"),
            &admin,
            Some(json!({"terms": {}})),
        )
        .await,
    );
    let (_, still) = hub
        .call("GET", &format!("/v1/contracts/{id}"), &partner, None)
        .await;
    assert_eq!(
        still["state"], "requested",
        "a refused decision changed the contract"
    );
    check(
        Refusal {
            what: "other org's contract",
            status: 404,
            code: 40411,
        },
        hub.call("GET", &format!("/v1/contracts/{id}"), &stranger, None)
            .await,
    );
    let (_, seen) = hub.call("GET", "/v1/contracts", &stranger, None).await;
    assert_eq!(
        seen["contracts"],
        json!([]),
        "a stranger lists no contracts"
    );
    let (_, seen) = hub
        .call(
            "GET",
            "/v1/contracts?stream=orders&state=requested",
            &owner,
            None,
        )
        .await;
    assert_eq!(
        seen["contracts"][0]["id"], id,
        "the stream's owner sees contracts on it"
    );
    assert_eq!(
        hub.call("POST", &format!("/v1/contracts/{id}/revoke"), &admin, None)
            .await
            .0,
        200
    );
    check(
        Refusal {
            what: "approve revoked",
            status: 409,
            code: 40902,
        },
        hub.call("POST", &format!("/v1/contracts/{id}/approve"), &admin, None)
            .await,
    );

    // Kafka REST Proxy produce.
    let v2 = Some("application/vnd.kafka.json.v2+json");
    let binary = Some("application/vnd.kafka.binary.v2+json");
    let produce = |ct: Option<&'static str>, body: Value| {
        raw(
            &hub,
            "POST",
            "/topics/orders",
            Some(owner.as_str()),
            ct,
            body.to_string().into_bytes(),
        )
    };
    check(
        Refusal {
            what: "produce to unknown topic",
            status: 404,
            code: 40401,
        },
        hub.produce("nope", &owner, json!([{"value": 1}])).await,
    );
    check(
        Refusal {
            what: "produce by non-owner",
            status: 403,
            code: 40301,
        },
        hub.produce("orders", &partner, json!([{"value": 1}])).await,
    );
    check(
        Refusal {
            what: "one bad partition",
            status: 404,
            code: 40402,
        },
        hub.produce(
            "orders",
            &owner,
            json!([{"value": 1, "partition": 0}, {"value": 2, "partition": 7}]),
        )
        .await,
    );
    check(
        Refusal {
            what: "no records",
            status: 422,
            code: 42202,
        },
        hub.produce("orders", &owner, json!([])).await,
    );
    check(
        Refusal {
            what: "record unknown field",
            status: 422,
            code: 42201,
        },
        hub.produce("orders", &owner, json!([{"value": 1, "ts": 5}]))
            .await,
    );
    check(
        Refusal {
            what: "bad header base64",
            status: 422,
            code: 42202,
        },
        hub.produce(
            "orders",
            &owner,
            json!([{"value": 1, "headers": [{"name": "h", "value": "%%%"}]}]),
        )
        .await,
    );
    check(
        Refusal {
            what: "binary not base64",
            status: 422,
            code: 42202,
        },
        produce(binary, json!({"records": [{"value": "not base64!"}]})).await,
    );
    check(
        Refusal {
            what: "binary not a string",
            status: 422,
            code: 42202,
        },
        produce(binary, json!({"records": [{"value": {"a": 1}}]})).await,
    );
    check(
        Refusal {
            what: "avro records to a JSON Schema stream",
            status: 422,
            code: 42205,
        },
        produce(
            Some("application/vnd.kafka.avro.v2+json"),
            json!({"value_schema_id": 1, "records": [{"value": 1}]}),
        )
        .await,
    );
    check(
        Refusal {
            what: "protobuf records to a JSON Schema stream",
            status: 422,
            code: 42205,
        },
        produce(
            Some("application/vnd.kafka.protobuf.v2+json"),
            json!({"value_schema_id": 1, "records": [{"value": 1}]}),
        )
        .await,
    );
    check(
        Refusal {
            what: "an embedded format REST Proxy has not",
            status: 415,
            code: 41501,
        },
        produce(
            Some("application/vnd.kafka.thrift.v2+json"),
            json!({"records": [{"value": 1}]}),
        )
        .await,
    );
    check(
        Refusal {
            what: "produce malformed",
            status: 400,
            code: 40001,
        },
        raw(
            &hub,
            "POST",
            "/topics/orders",
            Some(&owner),
            v2,
            b"{\"records\": [".to_vec(),
        )
        .await,
    );

    // A record is an object: serde would read [key, value] as one.
    check(
        Refusal {
            what: "produce a record written as an array",
            status: 422,
            code: 42201,
        },
        raw(
            &hub,
            "POST",
            "/topics/orders",
            Some(&owner),
            v2,
            b"{\"records\": [[null, null]]}".to_vec(),
        )
        .await,
    );
    check(
        Refusal {
            what: "produce a body written as an array",
            status: 422,
            code: 42201,
        },
        raw(
            &hub,
            "POST",
            "/topics/orders",
            Some(&owner),
            v2,
            b"[[{\"value\": 1}]]".to_vec(),
        )
        .await,
    );
    // v3 streams reports per record, but a body that is not JSON from its
    // first byte is an HTTP error: nothing was read.
    check(
        Refusal {
            what: "v3 records, not JSON",
            status: 400,
            code: 40001,
        },
        raw(
            &hub,
            "POST",
            "/v3/clusters/acme/topics/orders/records",
            Some(&owner),
            json_type,
            b"this is not JSON".to_vec(),
        )
        .await,
    );

    check(
        Refusal {
            what: "unknown query parameter",
            status: 422,
            code: 42201,
        },
        hub.call("GET", "/v1/contracts?colour=red", &admin, None)
            .await,
    );
    // A filter names a stream or an organization by the name rules.
    for query in ["stream=", "org=Not%20A%20Name", "owner=-x"] {
        check(
            Refusal {
                what: "filter that is no name",
                status: 422,
                code: 42201,
            },
            hub.call("GET", &format!("/v1/contracts?{query}"), &admin, None)
                .await,
        );
    }

    // Routing.
    check(
        Refusal {
            what: "unknown route",
            status: 404,
            code: 40400,
        },
        hub.call("GET", "/v2/whatever", &owner, None).await,
    );
    check(
        Refusal {
            what: "wrong method",
            status: 405,
            code: 40501,
        },
        hub.call("DELETE", "/v1/streams", &owner, None).await,
    );

    // Nothing was half-written: two streams (one the partner sees), one
    // (revoked) contract, an empty topic.
    let (_, streams) = hub.call("GET", "/v1/streams", &partner, None).await;
    assert_eq!(streams["streams"].as_array().unwrap().len(), 2, "{streams}");
    let (_, streams) = hub.call("GET", "/v1/streams", &admin, None).await;
    assert_eq!(streams["streams"].as_array().unwrap().len(), 3, "{streams}");
    let (_, contracts) = hub.call("GET", "/v1/contracts", &admin, None).await;
    assert_eq!(
        contracts["contracts"].as_array().unwrap().len(),
        1,
        "{contracts}"
    );
    assert!(
        read_topic(&broker.bootstrap, "orders", Duration::from_secs(2))
            .await
            .is_empty()
    );
    // And good input still works afterwards.
    let (status, ok) = hub
        .produce(
            "orders",
            &owner,
            json!([{"value": {"ok": true}, "partition": 1}]),
        )
        .await;
    assert_eq!(
        (status, ok["offsets"][0]["offset"].as_i64()),
        (200, Some(0)),
        "{ok}"
    );
}
