//! The Schema Registry API under `/registry`: the catalog's schema versions
//! as subjects, with global ids, Confluent's answers and codes, and the
//! data plane's rule for who sees what. `registry_clients.rs` drives it
//! with confluent-kafka's own serializers.

use freeport_tests::TwoOrgs;
use serde_json::{json, Value};

fn avro(fields: Value) -> String {
    json!({"type": "record", "name": "Order", "namespace": "acme", "fields": fields}).to_string()
}

/// A call the way registry clients make it: the registry's media types,
/// the API key as the Basic password.
async fn registry(
    sandbox: &TwoOrgs,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = sandbox
        .hub
        .http
        .request(method, format!("{}/registry{path}", sandbox.hub.url))
        .basic_auth("whoever", Some(key))
        .header(
            "accept",
            "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json",
        );
    if let Some(body) = body {
        request = request
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status != 204 {
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.schemaregistry.v1+json",
            "{path}"
        );
    }
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_serves_each_caller_the_subjects_it_may_read() {
    let sandbox = TwoOrgs::start().await;
    let outsider = sandbox.hub.org("initech", "partner").await;
    let v1 = avro(json!([{"name": "id", "type": "long"}]));
    sandbox
        .stream(
            "orders",
            1,
            json!({"schema_format": "avro", "schema": serde_json::from_str::<Value>(&v1).unwrap()}),
        )
        .await;
    let owner = sandbox.owner.as_str();
    let partner = sandbox.partner.as_str();

    // The owner sees its stream's subject, with version 1 and its id.
    assert_eq!(
        registry(&sandbox, "GET", "/subjects", owner, None).await,
        (200, json!(["orders-value"]))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions",
            owner,
            None
        )
        .await,
        (200, json!([1]))
    );
    let (status, latest) = registry(
        &sandbox,
        "GET",
        "/subjects/orders-value/versions/latest",
        owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["subject"], "orders-value");
    assert_eq!(latest["version"], 1);
    assert!(
        latest.get("schemaType").is_none(),
        "AVRO is left out: {latest}"
    );
    let v1_id = latest["id"].as_u64().expect("a global id");
    let stored: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored, serde_json::from_str::<Value>(&v1).unwrap());

    // A compatible version (a field with a default) registers; the same
    // schema again answers the same id and adds no version.
    let v2 = avro(json!([
        {"name": "id", "type": "long"},
        {"name": "note", "type": "string", "default": ""}
    ]));
    let (status, registered) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-value/versions",
        owner,
        Some(json!({"schema": v2, "schemaType": "AVRO", "references": []})),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let v2_id = registered["id"].as_u64().unwrap();
    assert_ne!(v2_id, v1_id);
    let again = registry(
        &sandbox,
        "POST",
        "/subjects/orders-value/versions",
        owner,
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!(
        again,
        (200, json!({"id": v1_id})),
        "an earlier version's schema is that version"
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions",
            owner,
            None
        )
        .await,
        (200, json!([1, 2]))
    );
    let (status, found) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-value",
        owner,
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!(
        (status, &found["version"], &found["id"]),
        (200, &json!(1), &json!(v1_id))
    );

    // Incompatible under BACKWARD: a new field without a default.
    let breaking = avro(json!([
        {"name": "id", "type": "long"},
        {"name": "note", "type": "string", "default": ""},
        {"name": "total", "type": "double"}
    ]));
    let (status, check) = registry(
        &sandbox,
        "POST",
        "/compatibility/subjects/orders-value/versions/latest?verbose=true",
        owner,
        Some(json!({"schema": breaking})),
    )
    .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["is_compatible"], false);
    assert!(
        check["messages"][0].as_str().unwrap().contains("total"),
        "names what broke: {check}"
    );
    let (status, refused) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-value/versions",
        owner,
        Some(json!({"schema": breaking})),
    )
    .await;
    assert_eq!(
        (status, &refused["error_code"]),
        (409, &json!(409)),
        "{refused}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("total"),
        "{refused}"
    );

    // Levels are each stream's; the _TRANSITIVE ones too.
    assert_eq!(
        registry(&sandbox, "GET", "/config/orders-value", owner, None).await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        registry(
            &sandbox,
            "PUT",
            "/config/orders-value",
            owner,
            Some(json!({"compatibility": "FULL_TRANSITIVE"}))
        )
        .await,
        (200, json!({"compatibility": "FULL_TRANSITIVE"}))
    );
    let (status, bad_level) = registry(
        &sandbox,
        "PUT",
        "/config/orders-value",
        owner,
        Some(json!({"compatibility": "SIDEWAYS"})),
    )
    .await;
    assert_eq!((status, &bad_level["error_code"]), (422, &json!(42203)));

    // Before a contract, the partner sees nothing, not even the id.
    assert_eq!(
        registry(&sandbox, "GET", "/subjects", partner, None).await,
        (200, json!([]))
    );
    let (status, hidden) = registry(
        &sandbox,
        "GET",
        &format!("/schemas/ids/{v1_id}"),
        partner,
        None,
    )
    .await;
    assert_eq!(
        (status, &hidden["error_code"]),
        (404, &json!(40403)),
        "{hidden}"
    );

    // With an active contract, the schemas travel with it: the partner
    // reads them under the topic it receives the stream in.
    sandbox
        .active_contract("orders", "orders-copy", json!(null))
        .await;
    assert_eq!(
        registry(&sandbox, "GET", "/subjects", partner, None).await,
        (200, json!(["orders-copy-value"]))
    );
    let (status, by_id) = registry(
        &sandbox,
        "GET",
        &format!("/schemas/ids/{v2_id}"),
        partner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{by_id}");
    assert_eq!(
        serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(&v2).unwrap()
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            &format!("/schemas/ids/{v2_id}/versions"),
            partner,
            None
        )
        .await,
        (200, json!([{"subject": "orders-copy-value", "version": 2}]))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            &format!("/schemas/ids/{v1_id}/subjects"),
            owner,
            None
        )
        .await,
        (200, json!(["orders-value"]))
    );
    let (status, raw) = registry(
        &sandbox,
        "GET",
        "/subjects/orders-copy-value/versions/1/schema",
        partner,
        None,
    )
    .await;
    assert_eq!(
        (status, raw),
        (200, serde_json::from_str::<Value>(&v1).unwrap())
    );
    // Reading is not writing.
    let (status, denied) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-copy-value/versions",
        partner,
        Some(json!({"schema": v2})),
    )
    .await;
    assert_eq!(
        (status, &denied["error_code"]),
        (403, &json!(40301)),
        "{denied}"
    );
    // An organization without a contract still sees nothing.
    let (status, hidden) = registry(
        &sandbox,
        "GET",
        &format!("/schemas/ids/{v1_id}"),
        &outsider,
        None,
    )
    .await;
    assert_eq!((status, &hidden["error_code"]), (404, &json!(40403)));
    let (status, hidden) = registry(
        &sandbox,
        "GET",
        "/subjects/orders-value/versions",
        &outsider,
        None,
    )
    .await;
    assert_eq!((status, &hidden["error_code"]), (404, &json!(40401)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_refuses_in_confluent_s_words() {
    let sandbox = TwoOrgs::start().await;
    sandbox
        .stream(
            "events",
            1,
            json!({"schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}),
        )
        .await;
    let owner = sandbox.owner.as_str();
    let code = |answer: (u16, Value)| (answer.0, answer.1["error_code"].clone());

    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                "/subjects/nothing-value/versions",
                owner,
                None
            )
            .await
        ),
        (404, json!(40401))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                "/subjects/events-value/versions/7",
                owner,
                None
            )
            .await
        ),
        (404, json!(40402))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                "/subjects/events-value/versions/x",
                owner,
                None
            )
            .await
        ),
        (422, json!(42202))
    );
    assert_eq!(
        code(registry(&sandbox, "GET", "/schemas/ids/999999", owner, None).await),
        (404, json!(40403))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "POST",
                "/subjects/events-value/versions",
                owner,
                Some(json!({"schema": "{not json", "schemaType": "JSON"}))
            )
            .await
        ),
        (422, json!(42201))
    );
    let (status, protobuf) = registry(
        &sandbox,
        "POST",
        "/subjects/events-value/versions",
        owner,
        Some(json!({"schema": "syntax = \"proto3\"; message {", "schemaType": "PROTOBUF"})),
    )
    .await;
    assert_eq!(
        (status, &protobuf["error_code"]),
        (422, &json!(42201)),
        "{protobuf}"
    );
    assert!(
        protobuf["message"].as_str().unwrap().contains(".proto"),
        "{protobuf}"
    );
    let (status, protobuf) = registry(
        &sandbox,
        "POST",
        "/subjects/events-value/versions",
        owner,
        Some(json!({"schema": "syntax = \"proto3\"; message E { int64 id = 1; }", "schemaType": "PROTOBUF"})),
    )
    .await;
    assert_eq!(
        (status, &protobuf["error_code"]),
        (422, &json!(42201)),
        "{protobuf}"
    );
    assert!(
        protobuf["message"]
            .as_str()
            .unwrap()
            .contains("json_schema"),
        "a stream keeps its format: {protobuf}"
    );
    // A JSON Schema version on a JSON Schema stream registers, typed.
    let (status, registered) = registry(
        &sandbox,
        "POST",
        "/subjects/events-value/versions",
        owner,
        Some(json!({
            "schema": json!({"type": "object", "properties": {"id": {"type": "integer"}, "at": {"type": "string"}}}).to_string(),
            "schemaType": "JSON",
        })),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let (_, latest) = registry(
        &sandbox,
        "GET",
        "/subjects/events-value/versions/latest",
        owner,
        None,
    )
    .await;
    assert_eq!(
        (&latest["schemaType"], &latest["id"]),
        (&json!("JSON"), &registered["id"])
    );
    assert_eq!(
        registry(&sandbox, "GET", "/schemas/types", owner, None).await,
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );
    assert_eq!(
        code(registry(&sandbox, "GET", "/subjects", "not-a-key", None).await),
        (401, json!(401))
    );
    let (status, _) = registry(
        &sandbox,
        "PUT",
        "/config",
        owner,
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(status, 403);

    // Accept that admits none of the registry's types: 406, Confluent's code.
    let refused = sandbox
        .hub
        .http
        .get(format!("{}/registry/subjects", sandbox.hub.url))
        .bearer_auth(owner)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_subject_starts_with_its_first_version_and_travels_with_the_contract() {
    let sandbox = TwoOrgs::start().await;
    sandbox
        .stream(
            "orders",
            1,
            json!({"schema_format": "avro", "schema": serde_json::from_str::<Value>(&avro(json!([{"name": "id", "type": "long"}]))).unwrap()}),
        )
        .await;
    let owner = sandbox.owner.as_str();
    let partner = sandbox.partner.as_str();
    let code = |answer: (u16, Value)| (answer.0, answer.1["error_code"].clone());

    // No key subject until its first version; its level is there already.
    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                "/subjects/orders-key/versions",
                owner,
                None
            )
            .await
        ),
        (404, json!(40401))
    );
    assert_eq!(
        registry(&sandbox, "GET", "/config/orders-key", owner, None).await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let key_v1 =
        json!({"type": "record", "name": "OrderKey", "fields": [{"name": "id", "type": "long"}]})
            .to_string();
    assert_eq!(
        code(
            registry(
                &sandbox,
                "POST",
                "/subjects/orders-key/versions",
                partner,
                Some(json!({"schema": key_v1}))
            )
            .await
        ),
        (404, json!(40401)),
        "a partner without a contract does not see the stream"
    );
    let (status, registered) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-key/versions",
        owner,
        Some(json!({"schema": key_v1})),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let key_id = registered["id"].clone();
    assert_eq!(
        registry(&sandbox, "GET", "/subjects", owner, None).await,
        (200, json!(["orders-key", "orders-value"]))
    );
    let (_, latest) = registry(
        &sandbox,
        "GET",
        "/subjects/orders-key/versions/latest",
        owner,
        None,
    )
    .await;
    assert_eq!(
        (&latest["subject"], &latest["version"], &latest["id"]),
        (&json!("orders-key"), &json!(1), &key_id)
    );
    assert_ne!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions/1",
            owner,
            None
        )
        .await
        .1["id"],
        key_id
    );

    // The key's level is its own.
    let key_v2 = json!({"type": "record", "name": "OrderKey", "fields": [{"name": "id", "type": "long"}, {"name": "region", "type": "string"}]}).to_string();
    let (_, answer) = registry(
        &sandbox,
        "POST",
        "/compatibility/subjects/orders-key/versions/latest?verbose=true",
        owner,
        Some(json!({"schema": key_v2})),
    )
    .await;
    assert_eq!(answer["is_compatible"], false, "{answer}");
    assert!(
        answer["messages"][0].as_str().unwrap().contains("region"),
        "{answer}"
    );
    assert_eq!(
        registry(
            &sandbox,
            "PUT",
            "/config/orders-key",
            owner,
            Some(json!({"compatibility": "NONE"}))
        )
        .await,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        registry(&sandbox, "GET", "/config/orders-value", owner, None).await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let (status, _) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-key/versions",
        owner,
        Some(json!({"schema": key_v2})),
    )
    .await;
    assert_eq!(status, 200);

    // The partner sees the key subject under its own topic, and the id.
    sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/id"]}))
        .await;
    assert_eq!(
        registry(&sandbox, "GET", "/subjects", partner, None).await,
        (200, json!(["orders-copy-key", "orders-copy-value"]))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-copy-key/versions",
            partner,
            None
        )
        .await,
        (200, json!([1, 2])),
        "terms reshape values, never keys"
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            &format!("/schemas/ids/{key_id}/versions"),
            partner,
            None
        )
        .await,
        (200, json!([{"subject": "orders-copy-key", "version": 1}]))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "PUT",
                "/config/orders-copy-key",
                partner,
                Some(json!({"compatibility": "FULL"}))
            )
            .await
        ),
        (403, json!(40301)),
        "a partner reads, the owner writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_soft_deleted_then_removed_in_confluent_s_words() {
    let sandbox = TwoOrgs::start().await;
    let field = |name: &str| json!({"name": name, "type": "string", "default": ""});
    let v1 = avro(json!([{"name": "id", "type": "long"}]));
    sandbox
        .stream(
            "orders",
            1,
            json!({"schema_format": "avro", "schema": serde_json::from_str::<Value>(&v1).unwrap()}),
        )
        .await;
    let owner = sandbox.owner.as_str();
    let code = |answer: (u16, Value)| (answer.0, answer.1["error_code"].clone());
    let mut ids = vec![];
    for extra in ["a", "b"] {
        let schema = avro(json!([{"name": "id", "type": "long"}, field(extra)]));
        let (status, answer) = registry(
            &sandbox,
            "POST",
            "/subjects/orders-value/versions",
            owner,
            Some(json!({"schema": schema})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["id"].clone());
    }

    // Permanently only after softly; a partner never.
    assert_eq!(
        code(
            registry(
                &sandbox,
                "DELETE",
                "/subjects/orders-value/versions/3?permanent=true",
                owner,
                None
            )
            .await
        ),
        (404, json!(40407))
    );
    assert_eq!(
        registry(
            &sandbox,
            "DELETE",
            "/subjects/orders-value/versions/latest",
            owner,
            None
        )
        .await,
        (200, json!(3))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "DELETE",
                "/subjects/orders-value/versions/3",
                owner,
                None
            )
            .await
        ),
        (404, json!(40406))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions",
            owner,
            None
        )
        .await,
        (200, json!([1, 2]))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions?deleted=true",
            owner,
            None
        )
        .await,
        (200, json!([1, 2, 3]))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions/latest",
            owner,
            None
        )
        .await
        .1["version"],
        2
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                "/subjects/orders-value/versions/3",
                owner,
                None
            )
            .await
        ),
        (404, json!(40402))
    );
    let (status, by_id) = registry(
        &sandbox,
        "GET",
        &format!("/schemas/ids/{}", ids[1]),
        owner,
        None,
    )
    .await;
    assert_eq!(
        status, 200,
        "a soft-deleted schema is still read by its id: {by_id}"
    );
    // The stream's latest schema is version 2's again.
    let (_, stream) = sandbox
        .hub
        .call("GET", "/v1/streams/orders", owner, None)
        .await;
    assert_eq!(stream["schema_version"], 2, "{stream}");

    // A value subject keeps one live version.
    let (status, kept) = registry(&sandbox, "DELETE", "/subjects/orders-value", owner, None).await;
    assert_eq!(
        (status, &kept["error_code"]),
        (409, &json!(40901)),
        "{kept}"
    );
    assert!(kept["message"]
        .as_str()
        .unwrap()
        .contains("keeps one live version"));

    assert_eq!(
        registry(
            &sandbox,
            "DELETE",
            "/subjects/orders-value/versions/3?permanent=true",
            owner,
            None
        )
        .await,
        (200, json!(3))
    );
    assert_eq!(
        registry(
            &sandbox,
            "GET",
            "/subjects/orders-value/versions?deleted=true",
            owner,
            None
        )
        .await,
        (200, json!([1, 2]))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                &format!("/schemas/ids/{}", ids[1]),
                owner,
                None
            )
            .await
        ),
        (404, json!(40403)),
        "gone for good"
    );

    // A key subject may go entirely, and is then listed only as deleted.
    let key = json!({"type": "record", "name": "K", "fields": [{"name": "id", "type": "long"}]})
        .to_string();
    let (status, _) = registry(
        &sandbox,
        "POST",
        "/subjects/orders-key/versions",
        owner,
        Some(json!({"schema": key})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        code(
            registry(
                &sandbox,
                "DELETE",
                "/subjects/orders-key?permanent=true",
                owner,
                None
            )
            .await
        ),
        (404, json!(40405))
    );
    sandbox
        .active_contract("orders", "orders-copy", json!(null))
        .await;
    assert_eq!(
        code(
            registry(
                &sandbox,
                "DELETE",
                "/subjects/orders-copy-key",
                &sandbox.partner,
                None
            )
            .await
        ),
        (403, json!(40301)),
        "the partner reads, the owner deletes"
    );
    assert_eq!(
        registry(&sandbox, "DELETE", "/subjects/orders-key", owner, None).await,
        (200, json!([1]))
    );
    assert_eq!(
        registry(&sandbox, "GET", "/subjects", owner, None).await,
        (200, json!(["orders-value"]))
    );
    assert_eq!(
        registry(&sandbox, "GET", "/subjects?deleted=true", owner, None).await,
        (200, json!(["orders-key", "orders-value"]))
    );
    assert_eq!(
        code(registry(&sandbox, "DELETE", "/subjects/orders-key", owner, None).await),
        (404, json!(40404))
    );
    assert_eq!(
        registry(
            &sandbox,
            "DELETE",
            "/subjects/orders-key?permanent=true",
            owner,
            None
        )
        .await,
        (200, json!([1]))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "GET",
                "/subjects/orders-key/versions?deleted=true",
                owner,
                None
            )
            .await
        ),
        (404, json!(40401))
    );

    // Modes: READWRITE is what there is.
    assert_eq!(
        registry(&sandbox, "GET", "/mode", owner, None).await,
        (200, json!({"mode": "READWRITE"}))
    );
    assert_eq!(
        registry(&sandbox, "GET", "/mode/orders-value", owner, None).await,
        (200, json!({"mode": "READWRITE"}))
    );
    assert_eq!(
        registry(
            &sandbox,
            "PUT",
            "/mode/orders-value",
            owner,
            Some(json!({"mode": "READWRITE"}))
        )
        .await,
        (200, json!({"mode": "READWRITE"}))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "PUT",
                "/mode",
                owner,
                Some(json!({"mode": "IMPORT"}))
            )
            .await
        ),
        (422, json!(42204))
    );
    assert_eq!(
        code(
            registry(
                &sandbox,
                "PUT",
                "/mode/orders-copy-value",
                &sandbox.partner,
                Some(json!({"mode": "READWRITE"}))
            )
            .await
        ),
        (403, json!(40301)),
        "a partner reads a subject's mode, the owner sets it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_and_protobuf_schemas_refer_to_other_subjects() {
    let sandbox = TwoOrgs::start().await;
    let owner = sandbox.owner.clone();
    let address =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    sandbox
        .stream("addresses", 1, json!({"schema": address}))
        .await;
    sandbox
        .stream(
            "parcels",
            1,
            json!({"schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}),
        )
        .await;
    let parcel = json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "to": {"$ref": "address.json"}
    }})
    .to_string();
    let referring = |schema: &str, name: &str, subject: &str| {
        json!({"schemaType": "JSON", "schema": schema,
            "references": [{"name": name, "subject": subject, "version": 1}]})
    };
    let (status, unknown) = registry(
        &sandbox,
        "POST",
        "/subjects/parcels-value/versions",
        &owner,
        Some(referring(&parcel, "address.json", "nope-value")),
    )
    .await;
    assert_eq!(
        (status, &unknown["error_code"]),
        (422, &json!(42201)),
        "{unknown}"
    );
    let (status, registered) = registry(
        &sandbox,
        "POST",
        "/subjects/parcels-value/versions",
        &owner,
        Some(referring(&parcel, "address.json", "addresses-value")),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let (_, latest) = registry(
        &sandbox,
        "GET",
        "/subjects/parcels-value/versions/latest",
        &owner,
        None,
    )
    .await;
    assert_eq!(latest["id"], registered["id"]);
    assert_eq!(
        latest["references"],
        json!([{"name": "address.json", "subject": "addresses-value", "version": 1}])
    );
    let (_, versions) = sandbox
        .hub
        .call("GET", "/v1/streams/parcels/schemas", &owner, None)
        .await;
    assert_eq!(
        versions["versions"][1]["references"],
        json!([{"name": "address.json", "stream": "addresses", "part": "value", "version": 1}]),
        "{versions}"
    );
    // Looked up with its references it is found; the same text without
    // them is another schema.
    let (status, found) = registry(
        &sandbox,
        "POST",
        "/subjects/parcels-value",
        &owner,
        Some(referring(&parcel, "address.json", "addresses-value")),
    )
    .await;
    assert_eq!((status, &found["version"]), (200, &json!(2)), "{found}");
    let (status, _) = registry(
        &sandbox,
        "POST",
        "/subjects/parcels-value",
        &owner,
        Some(json!({"schemaType": "JSON", "schema": parcel})),
    )
    .await;
    assert_eq!(status, 404);

    // Produce checks records through the reference.
    let (status, refused) = sandbox
        .hub
        .produce(
            "parcels",
            &owner,
            json!([{"value": {"id": 1, "to": {"city": 5}}}]),
        )
        .await;
    assert_eq!(
        (status, &refused["error_code"]),
        (422, &json!(42203)),
        "{refused}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("/to/city"),
        "{refused}"
    );
    let (status, written) = sandbox
        .hub
        .produce(
            "parcels",
            &owner,
            json!([{"value": {"id": 1, "to": {"city": "Lyon"}}}]),
        )
        .await;
    assert_eq!(status, 200, "{written}");

    // A referenced version is kept while a live version refers to it.
    let (status, refused) = registry(
        &sandbox,
        "DELETE",
        "/subjects/addresses-value/versions/1",
        &owner,
        None,
    )
    .await;
    assert_eq!(
        (status, &refused["error_code"]),
        (422, &json!(42206)),
        "{refused}"
    );
    let (status, referrers) = registry(
        &sandbox,
        "GET",
        "/subjects/addresses-value/versions/1/referencedby",
        &owner,
        None,
    )
    .await;
    assert_eq!((status, referrers), (200, json!([registered["id"]])));

    // Protobuf: an import is a reference, by its path.
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
    let visit = "syntax = \"proto3\";\npackage acme;\nimport \"acme/place.proto\";\nmessage Visit {\n  int64 id = 1;\n  acme.Place at = 2;\n}\n";
    let (status, missing) = registry(
        &sandbox,
        "POST",
        "/subjects/visits-value/versions",
        &owner,
        Some(json!({"schemaType": "PROTOBUF", "schema": visit})),
    )
    .await;
    assert_eq!(
        (status, &missing["error_code"]),
        (422, &json!(42201)),
        "{missing}"
    );
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("acme/place.proto"),
        "{missing}"
    );
    let mut with_import = referring(visit, "acme/place.proto", "places-value");
    with_import["schemaType"] = json!("PROTOBUF");
    let (status, registered) = registry(
        &sandbox,
        "POST",
        "/subjects/visits-value/versions",
        &owner,
        Some(with_import),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let (status, by_id) = registry(
        &sandbox,
        "GET",
        &format!("/schemas/ids/{}", registered["id"]),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_id["schemaType"], "PROTOBUF");
    assert_eq!(by_id["references"][0]["subject"], "places-value");
    assert!(by_id["schema"]
        .as_str()
        .unwrap()
        .contains("import \"acme/place.proto\";"));

    // References to two parts of one stream, each at version 1: a lookup
    // resolves each to its own part's file.
    let (status, key) = registry(
        &sandbox,
        "POST",
        "/subjects/places-key/versions",
        &owner,
        Some(json!({"schemaType": "PROTOBUF",
            "schema": "syntax = \"proto3\";\npackage acme;\nmessage PlaceKey {\n  string id = 1;\n}\n"})),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let both = json!({"schemaType": "PROTOBUF",
    "schema": "syntax = \"proto3\";\npackage acme;\nimport \"acme/place.proto\";\nimport \"acme/place_key.proto\";\nmessage Visit {\n  int64 id = 1;\n  acme.Place at = 2;\n  acme.PlaceKey place = 3;\n}\n",
    "references": [
        {"name": "acme/place.proto", "subject": "places-value", "version": 1},
        {"name": "acme/place_key.proto", "subject": "places-key", "version": 1},
    ]});
    let (status, registered) = registry(
        &sandbox,
        "POST",
        "/subjects/visits-value/versions",
        &owner,
        Some(both.clone()),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let (status, found) = registry(
        &sandbox,
        "POST",
        "/subjects/visits-value",
        &owner,
        Some(both),
    )
    .await;
    assert_eq!((status, &found["id"]), (200, &registered["id"]), "{found}");
}
