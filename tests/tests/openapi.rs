//! The OpenAPI document at `/openapi.json` is generated from the code; this
//! checks it against the running portal: every operation it lists is
//! routed (no "no such route", no "method not allowed"), and a sample of
//! real answers, good and bad, match the schema and media type it gives.

use freeport_tests::{json, TwoOrgs, Value};

/// The documented schema for `status` of `method path` with `content_type`
/// (`4XX` covers 422), made standalone with the document's components.
fn documented(doc: &Value, method: &str, path: &str, status: u16, content_type: &str) -> Value {
    let responses = &doc["paths"][path][method]["responses"];
    assert!(responses.is_object(), "{method} {path} is not documented");
    let response = [status.to_string(), format!("{}XX", status / 100)]
        .iter()
        .map(|s| &responses[s])
        .find(|r| r.is_object())
        .unwrap_or_else(|| panic!("{method} {path} documents no {status}: {responses}"));
    let content = &response["content"];
    let schema = content[content_type]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {path} {status} documents no {content_type}: {content}"
    );
    json!({"components": doc["components"], "allOf": [schema]})
}

async fn check(
    sandbox: &TwoOrgs,
    doc: &Value,
    (method, path, concrete): (&str, &str, &str),
    key: &str,
    body: Option<Value>,
    expected_status: u16,
) -> Value {
    let mut request = sandbox
        .hub
        .http
        .request(
            method.to_uppercase().parse().unwrap(),
            format!("{}{concrete}", sandbox.hub.url),
        )
        .bearer_auth(key);
    if let Some(body) = body {
        let content_type = if concrete.starts_with("/topics") {
            "application/vnd.kafka.json.v2+json"
        } else {
            "application/json"
        };
        request = request
            .header("content-type", content_type)
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, expected_status, "{method} {concrete}: {answer}");
    let schema = documented(doc, method, path, status, &content_type);
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&answer)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {concrete} {status} does not match its documented schema: {errors:?}\n{answer}"
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_what_the_portal_does() {
    let sandbox = TwoOrgs::start().await;
    sandbox
        .stream("orders", 2, json!({"tags": ["sales"]}))
        .await;
    let hub = &sandbox.hub;

    let response = hub
        .http
        .get(format!("{}/openapi.json", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "served without credentials");
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    // Every documented operation is routed.
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{partition}", "0")
            .replace("{cluster}", "acme")
            .replace("{action}", "approve")
            .replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let mut request = hub
                .http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", hub.url),
                )
                .bearer_auth(&hub.admin_key);
            if method != "get" && method != "delete" {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                answer["message"] != "no such route" && answer["error_code"] != 40501,
                "{method} {path} is documented but not routed: {status} {text}"
            );
        }
    }
    println!("{operations} documented operations, all routed");

    // A sample of answers match their documented schemas and media types.
    let (owner, partner, admin) = (&sandbox.owner, &sandbox.partner, &hub.admin_key);
    let list = ("get", "/v1/streams", "/v1/streams?tag=sales");
    let streams = check(&sandbox, &doc, list, owner, None, 200).await;
    assert_eq!(streams["streams"][0]["name"], "orders");
    let one = ("get", "/v1/streams/{name}", "/v1/streams/orders");
    check(&sandbox, &doc, one, partner, None, 200).await;
    let missing = ("get", "/v1/streams/{name}", "/v1/streams/nothing");
    check(&sandbox, &doc, missing, partner, None, 404).await;
    let request = ("post", "/v1/contracts", "/v1/contracts");
    let body = json!({"stream": "orders", "purpose": "p", "destination": {"cluster": "globex", "topic": "copy"}});
    check(&sandbox, &doc, request, partner, Some(body), 201).await;
    check(
        &sandbox,
        &doc,
        request,
        partner,
        Some(json!({"stream": 1})),
        422,
    )
    .await;
    check(
        &sandbox,
        &doc,
        ("get", "/v1/contracts", "/v1/contracts"),
        admin,
        None,
        200,
    )
    .await;
    check(
        &sandbox,
        &doc,
        ("get", "/v1/orgs", "/v1/orgs"),
        admin,
        None,
        200,
    )
    .await;
    check(
        &sandbox,
        &doc,
        ("get", "/v1/clusters", "/v1/clusters"),
        admin,
        None,
        200,
    )
    .await;
    let produce = ("post", "/topics/{topic}", "/topics/orders");
    let records = json!({"records": [{"key": "k", "value": {"n": 1}}]});
    check(&sandbox, &doc, produce, owner, Some(records), 200).await;
    check(
        &sandbox,
        &doc,
        ("get", "/topics", "/topics"),
        owner,
        None,
        200,
    )
    .await;
    check(
        &sandbox,
        &doc,
        ("get", "/topics/{topic}", "/topics/orders"),
        owner,
        None,
        200,
    )
    .await;
    let offsets = (
        "get",
        "/topics/{topic}/partitions/{partition}/offsets",
        "/topics/orders/partitions/0/offsets",
    );
    check(&sandbox, &doc, offsets, owner, None, 200).await;
    let create = ("post", "/consumers/{group}", "/consumers/readers");
    let created = check(
        &sandbox,
        &doc,
        create,
        owner,
        Some(json!({"name": "c1", "format": "json"})),
        200,
    )
    .await;
    assert_eq!(created["instance_id"], "c1");
}
