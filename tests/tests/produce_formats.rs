//! REST Proxy produce in every embedded format, checked against the
//! stream's schema before anything reaches the broker (a real tansu):
//! `json` and `binary` against a JSON Schema stream, `avro` and
//! `jsonschema` written in the Confluent wire format under the stream's
//! global schema ids, refusals with Confluent's codes that write nothing,
//! the owner's switch to turn checking off, keys under a key schema, v1
//! media types, the
//! streaming v3 produce reporting per record, consumer instances of the
//! `avro` format reading the values back as JSON, and an HTTP-only
//! partner reading an Avro stream as JSON masked by its contract (SSE and
//! a REST consumer instance).

use std::time::Duration;

use freeport_tests::{read_topic, TwoOrgs};
use serde_json::{json, Value};

/// A v2 produce in `content_type`; the status and the answer.
async fn produce(sandbox: &TwoOrgs, topic: &str, content_type: &str, body: Value) -> (u16, Value) {
    let response = sandbox
        .hub
        .http
        .post(format!("{}/topics/{topic}", sandbox.hub.url))
        .bearer_auth(&sandbox.owner)
        .header("content-type", content_type)
        .header("accept", "application/vnd.kafka.v2+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Each produce of `refusals` to `orders` in `content_type` (a body, the
/// Confluent code it gets, and what its message says) is refused with 422.
async fn refused_all<const N: usize>(
    sandbox: &TwoOrgs,
    content_type: &str,
    refusals: [(Value, u32, &str); N],
) {
    for (body, code, says) in refusals {
        let (status, answer) = produce(sandbox, "orders", content_type, body).await;
        assert_eq!(
            (status, &answer["error_code"]),
            (422, &json!(code)),
            "{says}: {answer}"
        );
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{says}: {answer}"
        );
    }
}

async fn records_on(sandbox: &TwoOrgs, topic: &str) -> Vec<freeport_tests::Record> {
    read_topic(
        &sandbox.owner_cluster.bootstrap,
        topic,
        Duration::from_secs(2),
    )
    .await
}

/// The first `count` values a new consumer instance of `group` in
/// `format` reads of `orders` from the beginning, as `key`.
async fn read_values(
    sandbox: &TwoOrgs,
    key: &str,
    group: &str,
    format: &str,
    count: usize,
) -> Vec<Value> {
    read_records(sandbox, key, group, format, count)
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect()
}

/// The first `count` records a new consumer instance of `group` in
/// `format` reads of `orders` from the beginning, as `key`.
async fn read_records(
    sandbox: &TwoOrgs,
    key: &str,
    group: &str,
    format: &str,
    count: usize,
) -> Vec<Value> {
    let (status, created, _) = sandbox
        .hub
        .call_v2(
            "POST",
            &format!("/consumers/{group}"),
            key,
            Some(json!({"name": "r1", "format": format, "auto.offset.reset": "earliest"})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let instance = format!("/consumers/{group}/instances/r1");
    let (status, _, _) = sandbox
        .hub
        .call_v2(
            "POST",
            &format!("{instance}/subscription"),
            key,
            Some(json!({"topics": ["orders"]})),
        )
        .await;
    assert_eq!(status, 204);
    let accept = format!("application/vnd.kafka.{format}.v2+json");
    freeport_tests::eventually(Duration::from_secs(20), "the records", || async {
        let response = sandbox
            .hub
            .http
            .get(format!(
                "{}{instance}/records?timeout=1000",
                sandbox.hub.url
            ))
            .bearer_auth(key)
            .header("accept", &accept)
            .send()
            .await
            .unwrap();
        let records: Value = response.json().await.unwrap_or(Value::Null);
        let records = records.as_array()?;
        (records.len() >= count).then(|| records.clone())
    })
    .await
}

const JSON: &str = "application/vnd.kafka.json.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";
const AVRO: &str = "application/vnd.kafka.avro.v2+json";
const JSONSCHEMA: &str = "application/vnd.kafka.jsonschema.v2+json";
const PROTOBUF: &str = "application/vnd.kafka.protobuf.v2+json";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_streams_take_only_records_that_fit() {
    let sandbox = TwoOrgs::start().await;
    let stream = sandbox
        .stream(
            "events",
            1,
            json!({"schema": {"type": "object", "required": ["id"],
                "properties": {"id": {"type": "integer"}, "total": {"type": "number"}}}}),
        )
        .await;
    assert_eq!(
        stream["validation"], true,
        "on unless the owner says otherwise"
    );

    let (status, answer) = produce(
        &sandbox,
        "events",
        JSON,
        json!({"records": [{"value": {"id": 1, "total": 2.5}}, {"value": {"id": 2, "total": "lots"}}]}),
    )
    .await;
    assert_eq!(
        (status, &answer["error_code"]),
        (422, &json!(42203)),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("records[1].value: /total:"),
        "names the record and the field: {answer}"
    );
    let (status, _) = produce(
        &sandbox,
        "events",
        BINARY,
        json!({"records": [{"value": base64(b"{\"id\": \"seven\"}")}]}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        records_on(&sandbox, "events").await.is_empty(),
        "nothing half-written"
    );

    // v1's media type takes the same body.
    let (status, answer) = produce(
        &sandbox,
        "events",
        "application/vnd.kafka.json.v1+json",
        json!({"records": [{"value": {"id": 1, "total": 2.5}}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // jsonschema: written in the Confluent wire format under the stream's id.
    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/events/schemas", &sandbox.owner, None)
        .await;
    let id = versions["versions"][0]["id"].as_u64().unwrap() as u32;
    let (status, answer) = produce(
        &sandbox,
        "events",
        JSONSCHEMA,
        json!({"value_schema_id": id, "records": [{"value": {"id": 3}}]}),
    )
    .await;
    assert_eq!(
        (status, &answer["value_schema_id"]),
        (200, &json!(id)),
        "{answer}"
    );
    let (status, refused) = produce(
        &sandbox,
        "events",
        JSONSCHEMA,
        json!({"value_schema_id": id, "records": [{"value": {"total": 1}}]}),
    )
    .await;
    assert_eq!(
        (status, &refused["error_code"]),
        (422, &json!(42203)),
        "{refused}"
    );
    let written = records_on(&sandbox, "events").await;
    assert_eq!(written.len(), 2);
    let wire = written[1].value.clone().unwrap();
    assert_eq!(wire[0], 0, "the magic byte");
    assert_eq!(u32::from_be_bytes(wire[1..5].try_into().unwrap()), id);
    assert_eq!(
        serde_json::from_slice::<Value>(&wire[5..]).unwrap(),
        json!({"id": 3})
    );
    // Binary bytes in the wire format with the stream's id are checked too.
    let mut bad_wire = wire[..5].to_vec();
    bad_wire.extend_from_slice(b"{\"id\": []}");
    let (status, _) = produce(
        &sandbox,
        "events",
        BINARY,
        json!({"records": [{"value": base64(&bad_wire)}]}),
    )
    .await;
    assert_eq!(status, 422);

    // The streaming v3 produce reports each record: the bad one refused,
    // the others written.
    let response = sandbox
        .hub
        .http
        .post(format!(
            "{}/v3/clusters/acme/topics/events/records",
            sandbox.hub.url
        ))
        .bearer_auth(&sandbox.owner)
        .header("content-type", "application/json")
        .body(
            [
                json!({"value": {"type": "JSON", "data": {"id": 10}}}),
                json!({"value": {"type": "JSON", "data": {"id": "x"}}}),
                json!({"value": {"type": "BINARY", "data": base64(b"{\"id\": 12}")}}),
            ]
            .map(|r| r.to_string())
            .join("\n"),
        )
        .send()
        .await
        .unwrap();
    let reports: Vec<Value> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes: Vec<&Value> = reports.iter().map(|r| &r["error_code"]).collect();
    assert_eq!(
        codes,
        [&json!(200), &json!(42203), &json!(200)],
        "{reports:?}"
    );

    // The owner turns checking off: anything goes, and the trail says who.
    let (status, view) = sandbox
        .hub
        .call(
            "PUT",
            "/v1/streams/events/validation",
            &sandbox.owner,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (status, &view["validation"]),
        (200, &json!(false)),
        "{view}"
    );
    let (status, _) = sandbox
        .hub
        .call(
            "PUT",
            "/v1/streams/events/validation",
            &sandbox.partner,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 403, "only the owner may");
    let (status, answer) = freeport_tests::eventually(
        Duration::from_secs(10),
        "the portal to hear that checking is off",
        || async {
            let answer = produce(
                &sandbox,
                "events",
                JSON,
                json!({"records": [{"value": {"id": "not a number"}}]}),
            )
            .await;
            (answer.0 == 200).then_some(answer)
        },
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // (The catalog's audit entry, `stream.validation`, is shown by
    // `only_the_owner_turns_record_validation_off_and_it_is_audited`.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_streams_take_avro_under_their_ids_and_read_back_as_json() {
    let sandbox = TwoOrgs::start().await;
    let v1 = json!({"type": "record", "name": "Order", "namespace": "acme", "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": null}
    ]});
    sandbox
        .stream("orders", 1, json!({"schema_format": "avro", "schema": v1}))
        .await;
    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/orders/schemas", &sandbox.owner, None)
        .await;
    let v1_id = versions["versions"][0]["id"].as_u64().unwrap();

    let (status, answer) = produce(
        &sandbox,
        "orders",
        AVRO,
        json!({"value_schema_id": v1_id, "records": [
            {"value": {"id": 1, "note": {"string": "first"}}},
            {"value": {"id": 2}}
        ]}),
    )
    .await;
    assert_eq!(
        (status, &answer["value_schema_id"]),
        (200, &json!(v1_id)),
        "{answer}"
    );
    assert_eq!(answer["offsets"].as_array().unwrap().len(), 2);

    // A new schema given as value_schema becomes the stream's version 2.
    let v2 = json!({"type": "record", "name": "Order", "namespace": "acme", "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "total", "type": "double", "default": 0.0}
    ]});
    let (status, answer) = produce(
        &sandbox,
        "orders",
        AVRO,
        json!({"value_schema": v2.to_string(), "records": [{"value": {"id": 3, "total": 9.5}}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let v2_id = answer["value_schema_id"].as_u64().unwrap();
    assert_ne!(v2_id, v1_id);

    // Refusals, each with Confluent's code, none writing anything.
    let refusals = [
        (
            json!({"records": [{"value": {"id": 4}}]}),
            42202,
            "does not include value schema",
        ),
        (
            json!({"value_schema_id": v1_id, "records": [{"key": "k", "value": {"id": 4}}]}),
            42201,
            "does not include key schema",
        ),
        (
            json!({"value_schema_id": v1_id, "records": [{"value": {"id": 4}}, {"value": {"id": "four"}}]}),
            42203,
            "records[1].value",
        ),
        (
            json!({"value_schema_id": 999_999, "records": [{"value": {"id": 4}}]}),
            42205,
            "schema id 999999",
        ),
        (
            json!({"value_schema": "{\"type\": \"record\"", "records": [{"value": {"id": 4}}]}),
            42205,
            "not JSON",
        ),
    ];
    refused_all(&sandbox, AVRO, refusals).await;
    // Plain JSON on an Avro stream.
    let plain = json!({"records": [{"value": {"id": 4}}]});
    refused_all(&sandbox, JSON, [(plain, 42203, "vnd.kafka.avro.v2+json")]).await;
    let (status, answer) = produce(
        &sandbox,
        "orders",
        PROTOBUF,
        json!({"value_schema_id": v1_id, "records": [{"value": {"id": 4}}]}),
    )
    .await;
    assert_eq!(
        (status, &answer["error_code"]),
        (422, &json!(42205)),
        "Protobuf on an Avro stream: {answer}"
    );

    let written = records_on(&sandbox, "orders").await;
    assert_eq!(written.len(), 3, "only the accepted requests' records");
    let first = written[0].value.clone().unwrap();
    assert_eq!(first[0], 0);
    assert_eq!(
        u64::from(u32::from_be_bytes(first[1..5].try_into().unwrap())),
        v1_id
    );

    // Binary bytes in the wire format are decoded under their id to be
    // checked: the broker's own record goes in again, a truncated one not.
    let (status, _) = produce(
        &sandbox,
        "orders",
        BINARY,
        json!({"records": [{"value": base64(&first)}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = produce(
        &sandbox,
        "orders",
        BINARY,
        json!({"records": [{"value": base64(&first[..first.len() - 1])}]}),
    )
    .await;
    assert_eq!(
        (status, &answer["error_code"]),
        (422, &json!(42203)),
        "{answer}"
    );

    // A consumer instance of the avro format shows the values as JSON.
    let owner = sandbox.owner.as_str();
    let values = read_values(&sandbox, owner, "readers", "avro", 4).await;
    assert_eq!(
        values,
        [
            json!({"id": 1, "note": {"string": "first"}}),
            json!({"id": 2, "note": null}),
            json!({"id": 3, "note": null, "total": 9.5}),
            json!({"id": 1, "note": {"string": "first"}}),
        ]
    );

    // An HTTP-only partner reads the Avro stream as JSON, reshaped by its
    // contract's terms: over SSE and through a REST consumer instance.
    sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/note"]}))
        .await;
    let mut feed = sandbox.hub.feed("orders", &sandbox.partner, "").await;
    let mut pushed = vec![];
    while pushed.len() < 4 {
        let event = feed.next().await.expect("an event");
        assert_eq!(event.event, "record", "{event:?}");
        let record: Value = serde_json::from_str(&event.data).unwrap();
        pushed.push(record["value"].clone());
    }
    assert_eq!(
        pushed,
        [
            json!({"id": 1, "note": "****"}),
            json!({"id": 2, "note": "****"}),
            json!({"id": 3, "note": "****", "total": 9.5}),
            json!({"id": 1, "note": "****"}),
        ]
    );
    let read = read_values(&sandbox, &sandbox.partner, "partners", "json", 4).await;
    assert_eq!(read, pushed, "the same values, reshaped the same way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_under_a_key_schema_are_checked_written_and_read_decoded() {
    let sandbox = TwoOrgs::start().await;
    let value = json!({"type": "record", "name": "Order", "namespace": "acme", "fields": [
        {"name": "id", "type": "long"}
    ]});
    let key = json!({"type": "record", "name": "OrderKey", "namespace": "acme", "fields": [
        {"name": "region", "type": "string"}, {"name": "n", "type": "int"}
    ]});
    sandbox
        .stream(
            "orders",
            1,
            json!({"schema_format": "avro", "schema": value}),
        )
        .await;
    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/orders/schemas", &sandbox.owner, None)
        .await;
    let value_id = versions["versions"][0]["id"].as_u64().unwrap();

    // key_schema registers the stream's first key version.
    let (status, answer) = produce(
        &sandbox,
        "orders",
        AVRO,
        json!({"key_schema": key.to_string(), "value_schema_id": value_id, "records": [
            {"key": {"region": "eu", "n": 1}, "value": {"id": 1}},
            {"key": {"region": "us", "n": 2}, "value": {"id": 2}}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value_schema_id"], json!(value_id));
    let key_id = answer["key_schema_id"].as_u64().expect("the key's id");
    assert_ne!(key_id, value_id);
    let (_, stream) = sandbox
        .hub
        .call("GET", "/v1/streams/orders", &sandbox.owner, None)
        .await;
    assert_eq!(
        (
            &stream["key_schema"]["schema_id"],
            &stream["key_schema"]["schema_format"]
        ),
        (&json!(key_id), &json!("avro")),
        "{stream}"
    );

    // Every refusal names the key; none writes anything.
    let refusals = [
        (
            AVRO,
            json!({"key_schema_id": key_id, "value_schema_id": value_id, "records": [
                {"key": {"region": "eu", "n": 3}, "value": {"id": 3}},
                {"key": {"region": "eu"}, "value": {"id": 4}}
            ]}),
            42203,
            "records[1].key",
        ),
        (
            AVRO,
            json!({"key_schema_id": value_id, "value_schema_id": value_id, "records": [{"key": {"id": 3}, "value": {"id": 3}}]}),
            42205,
            "key schema versions",
        ),
        (
            AVRO,
            json!({"value_schema_id": value_id, "records": [{"key": {"region": "eu", "n": 3}, "value": {"id": 3}}]}),
            42201,
            "records[0].key",
        ),
        (
            JSONSCHEMA,
            json!({"key_schema": "{\"type\": \"string\"}", "value_schema": "{}", "records": [{"key": "k", "value": {}}]}),
            42205,
            "key schema is not jsonschema",
        ),
        (
            BINARY,
            json!({"records": [{"key": base64(b"plain"), "value": base64(b"x")}]}),
            42203,
            "records[0].key",
        ),
    ];
    for (format, body, code, says) in refusals {
        refused_all(&sandbox, format, [(body, code, says)]).await;
    }

    let written = records_on(&sandbox, "orders").await;
    assert_eq!(written.len(), 2, "only the accepted request's records");
    let first_key = written[0].key.clone().unwrap();
    assert_eq!(first_key[0], 0);
    assert_eq!(
        u64::from(u32::from_be_bytes(first_key[1..5].try_into().unwrap())),
        key_id
    );
    assert_eq!(&first_key[5..], b"\x04eu\x02", "region \"eu\", n zigzag 1");

    // Readers in a schema-registry format, and push readers, see the key
    // decoded, as JSON.
    let owner = sandbox.owner.as_str();
    let records = read_records(&sandbox, owner, "readers", "avro", 2).await;
    assert_eq!(
        records[0]["key"],
        json!({"region": "eu", "n": 1}),
        "{records:?}"
    );
    assert_eq!(records[1]["value"], json!({"id": 2}));
    sandbox
        .active_contract("orders", "orders-copy", json!(null))
        .await;
    let mut feed = sandbox.hub.feed("orders", &sandbox.partner, "").await;
    let event = feed.next().await.expect("an event");
    let record: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(record["key"], json!({"region": "eu", "n": 1}), "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_streams_take_their_first_message_and_read_back_as_json() {
    let sandbox = TwoOrgs::start().await;
    let v1 = "syntax = \"proto3\";\npackage acme;\nmessage Order {\n  int64 id = 1;\n  string note = 2;\n  repeated string tags = 3;\n}\n";
    sandbox
        .stream(
            "orders",
            1,
            json!({"schema_format": "protobuf", "schema": v1}),
        )
        .await;
    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/orders/schemas", &sandbox.owner, None)
        .await;
    let v1_id = versions["versions"][0]["id"].as_u64().unwrap();
    let stored = versions["versions"][0]["schema"].as_str().unwrap();
    assert!(
        stored.contains("message Order {"),
        "kept as .proto text: {stored}"
    );

    let (status, answer) = produce(
        &sandbox,
        "orders",
        PROTOBUF,
        json!({"value_schema_id": v1_id, "records": [
            {"value": {"id": 1, "note": "first", "tags": ["a", "b"]}},
            {"value": {"id": "2"}}
        ]}),
    )
    .await;
    assert_eq!(
        (status, &answer["value_schema_id"]),
        (200, &json!(v1_id)),
        "{answer}"
    );

    // A compatible new version given as value_schema (.proto text): a field
    // added. An incompatible one (id's wire type changed) is refused.
    let v2 = v1.replace(
        "repeated string tags = 3;",
        "repeated string tags = 3;\n  double total = 4;",
    );
    let (status, answer) = produce(
        &sandbox,
        "orders",
        PROTOBUF,
        json!({"value_schema": v2, "records": [{"value": {"id": 3, "total": 9.5}}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let v2_id = answer["value_schema_id"].as_u64().unwrap();
    assert_ne!(v2_id, v1_id);
    let breaking = v1.replace("int64 id = 1;", "string id = 1;");
    let (status, answer) = produce(
        &sandbox,
        "orders",
        PROTOBUF,
        json!({"value_schema": breaking, "records": [{"value": {"id": "x"}}]}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("FIELD_SCALAR_KIND_CHANGED"),
        "{answer}"
    );

    let refusals = [
        (
            json!({"value_schema_id": v1_id, "records": [{"value": {"id": 4}}, {"value": {"id": "four"}}]}),
            42203,
            "records[1].value",
        ),
        (
            json!({"value_schema_id": v1_id, "records": [{"value": {"nope": 1}}]}),
            42203,
            "records[0].value",
        ),
        (
            json!({"value_schema": "message {", "records": [{"value": {"id": 4}}]}),
            42205,
            ".proto",
        ),
    ];
    refused_all(&sandbox, PROTOBUF, refusals).await;
    // Plain JSON on a Protobuf stream.
    let plain = json!({"records": [{"value": {"id": 4}}]});
    refused_all(
        &sandbox,
        JSON,
        [(plain, 42203, "vnd.kafka.protobuf.v2+json")],
    )
    .await;

    let written = records_on(&sandbox, "orders").await;
    assert_eq!(written.len(), 3, "only the accepted requests' records");
    let first = written[0].value.clone().unwrap();
    assert_eq!(
        (
            first[0],
            u64::from(u32::from_be_bytes(first[1..5].try_into().unwrap())),
            first[5]
        ),
        (0, v1_id, 0),
        "magic byte, the schema id, message index [0]"
    );
    // Binary wire-format bytes are decoded to be checked.
    let (status, _) = produce(
        &sandbox,
        "orders",
        BINARY,
        json!({"records": [{"value": base64(&first)}]}),
    )
    .await;
    assert_eq!(status, 200);
    let mut broken = first.clone();
    broken.push(0xff);
    let (status, answer) = produce(
        &sandbox,
        "orders",
        BINARY,
        json!({"records": [{"value": base64(&broken)}]}),
    )
    .await;
    assert_eq!(
        (status, &answer["error_code"]),
        (422, &json!(42203)),
        "{answer}"
    );

    // A consumer instance of the protobuf format shows the values as JSON
    // (proto field names, int64 as strings, defaults shown).
    let owner = sandbox.owner.as_str();
    let values = read_values(&sandbox, owner, "readers", "protobuf", 4).await;
    assert_eq!(
        values,
        [
            json!({"id": "1", "note": "first", "tags": ["a", "b"]}),
            json!({"id": "2", "note": "", "tags": []}),
            json!({"id": "3", "note": "", "tags": [], "total": 9.5}),
            json!({"id": "1", "note": "first", "tags": ["a", "b"]}),
        ]
    );

    // An HTTP-only partner reads the Protobuf stream as JSON, masked.
    sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/note"]}))
        .await;
    let mut feed = sandbox.hub.feed("orders", &sandbox.partner, "").await;
    let event = feed.next().await.expect("an event");
    let record: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        record["value"],
        json!({"id": "1", "note": "****", "tags": ["a", "b"]}),
        "{record}"
    );
}
