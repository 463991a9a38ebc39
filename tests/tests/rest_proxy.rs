//! The portal's Kafka REST Proxy-style data plane on a real tansu broker.
//!
//! Streaming produce (`POST /v3/clusters/{cluster}/topics/{topic}/records`):
//! a client keeps one chunked request open and sends records as it has
//! them; each delivery report comes back, in order, while the request is
//! still open. Bad records get an error report and the stream goes on.

use std::time::Duration;

use bytes::Bytes;
use freeport_tests::{json, read_topic, TwoOrgs};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

/// Reads newline-separated JSON reports from a streaming response.
struct Reports {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl Reports {
    fn new(response: reqwest::Response) -> Reports {
        Reports {
            body: Box::pin(response.bytes_stream()),
            buffer: vec![],
        }
    }

    /// The next report, or `None` when the answer ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON report"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("a report within 30 s")?
                .expect("the answer's bytes");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

fn records_url(sandbox: &TwoOrgs, cluster: &str, topic: &str) -> String {
    format!(
        "{}/v3/clusters/{cluster}/topics/{topic}/records",
        sandbox.hub.url
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_produce_reports_each_record_while_the_request_is_open() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 2, json!({})).await;

    // One chunked request, fed record by record.
    let (feed, body) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let response = sandbox
        .hub
        .http
        .post(records_url(&sandbox, "acme", "orders"))
        .bearer_auth(&sandbox.owner)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(body),
        ));
    let send = |text: String| {
        let feed = feed.clone();
        async move { feed.send(Ok(Bytes::from(text))).await.expect("feed") }
    };
    send(json!({"key": {"type": "STRING", "data": "k0"}, "value": {"data": {"n": 0}}}).to_string())
        .await;
    let response = response.send().await.expect("the answer starts");
    assert_eq!(response.status(), 200);
    let mut reports = Reports::new(response);
    let first = reports.next().await.expect("a report");
    assert_eq!(first["error_code"], 200, "{first}");
    assert_eq!(first["cluster_id"], "acme");
    assert_eq!(first["topic_name"], "orders");
    assert_eq!(first["key"], json!({"type": "STRING", "size": 2}));
    assert_eq!(first["value"]["type"], "JSON");

    // Reports arrive while the request is still open: each before the next
    // record is sent. A record split across chunks is put back together.
    let second = json!({
        "partition_id": 1,
        "headers": [{"name": "trace", "value": "dHJhY2UtMQ=="}],
        "key": {"type": "BINARY", "data": "azE="},
        "value": {"type": "JSON", "data": {"n": 1}},
        "timestamp": "2026-11-24T10:00:00Z",
    })
    .to_string();
    let (head, tail) = second.split_at(20);
    send(head.to_string()).await;
    send(tail.to_string()).await;
    let report = reports.next().await.expect("a report");
    assert_eq!(report["error_code"], 200, "{report}");
    assert_eq!(report["partition_id"], 1);
    assert_eq!(report["timestamp"], "2026-11-24T10:00:00Z");

    // A bad record is reported and the stream goes on.
    for (bad, code) in [
        (json!({"value": {"type": "AVRO", "data": {}}}), 42202),
        (
            json!({"value": {"type": "BINARY", "data": "not base64!"}}),
            42202,
        ),
        (json!({"value": {"type": "STRING", "data": 7}}), 42202),
        (json!({"partition_id": "one"}), 42202),
        (json!({"velue": {}}), 42202),
        (json!({"timestamp": "yesterday"}), 42202),
        (json!([1, 2]), 42202),
        (json!({"partition_id": 7}), 40402),
    ] {
        send(bad.to_string()).await;
        let report = reports.next().await.expect("a report");
        assert_eq!(report["error_code"], code, "{bad} -> {report}");
        assert!(
            report["message"].as_str().unwrap().contains("records["),
            "{report}"
        );
    }
    // Many records in one chunk, concatenated without separators.
    let batch: String = (2..102)
        .map(|n| json!({"value": {"data": {"n": n}}}).to_string())
        .collect();
    send(batch).await;
    let mut last = [-1i64; 2];
    for _ in 2..102 {
        let report = reports.next().await.expect("a report");
        assert_eq!(report["error_code"], 200, "{report}");
        let partition = report["partition_id"].as_u64().unwrap() as usize;
        let offset = report["offset"].as_i64().unwrap();
        assert!(offset > last[partition], "in order: {report}");
        last[partition] = offset;
    }

    // Broken JSON ends the stream with a last report.
    send(r#"{"value": ]"#.to_string()).await;
    let report = reports.next().await.expect("a report");
    assert_eq!(report["error_code"], 40001, "{report}");
    drop(feed);
    assert!(reports.next().await.is_none(), "nothing after the end");

    // What landed on the broker is what was sent.
    let copied = read_topic(
        &sandbox.owner_cluster.bootstrap,
        "orders",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(copied.len(), 102, "two single records and a batch of 100");
    let with_header = copied
        .iter()
        .find(|r| r.header("trace").is_some())
        .expect("the record with a header");
    assert_eq!(with_header.header("trace"), Some("trace-1"));
    assert_eq!(with_header.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(with_header.timestamp, Some(1_795_514_400_000));
    assert_eq!(with_header.partition, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_produce_is_refused_before_it_starts_for_the_wrong_caller_or_place() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    let record = json!({"value": {"data": {"n": 0}}}).to_string();
    for (key, cluster, topic, content_type, status, code) in [
        (
            &sandbox.partner,
            "acme",
            "orders",
            "application/json",
            403,
            40301,
        ),
        (
            &sandbox.owner,
            "globex",
            "orders",
            "application/json",
            404,
            40401,
        ),
        (
            &sandbox.owner,
            "acme",
            "nothing",
            "application/json",
            404,
            40401,
        ),
        (&sandbox.owner, "acme", "orders", "text/plain", 415, 41501),
    ] {
        let response = sandbox
            .hub
            .http
            .post(records_url(&sandbox, cluster, topic))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(record.clone())
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            response.status(),
            status,
            "{cluster}/{topic} {content_type}"
        );
        let body: Value = response.json().await.expect("an error body");
        assert_eq!(body["error_code"], code, "{body}");
    }
    // A record larger than the body limit (64 KiB here) ends the stream
    // with a 41301 report; what came before it still goes through.
    let huge = json!({"value": {"type": "STRING", "data": "x".repeat(70_000)}}).to_string();
    let response = sandbox
        .hub
        .http
        .post(records_url(&sandbox, "acme", "orders"))
        .bearer_auth(&sandbox.owner)
        .header("content-type", "application/json")
        .body(format!("{record}\n{huge}\n{record}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let mut reports = Reports::new(response);
    assert_eq!(reports.next().await.unwrap()["error_code"], 200);
    assert_eq!(reports.next().await.unwrap()["error_code"], 41301);
    assert!(reports.next().await.is_none(), "nothing after the end");

    let copied = read_topic(
        &sandbox.owner_cluster.bootstrap,
        "orders",
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(copied.len(), 1, "only the record before the oversized one");
}

/// `call` with REST Proxy's v2 content type.
async fn call_v2(
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
        .request(method, format!("{}{path}", sandbox.hub.url))
        .bearer_auth(key)
        .header("accept", "application/vnd.kafka.v2+json");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.kafka.v2+json",
            "{path}"
        );
    }
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_partition_produce_and_topic_metadata_follow_ownership_and_contracts() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 2, json!({})).await;
    let owner = sandbox.owner.as_str();
    let partner = sandbox.partner.as_str();

    // Produce to one partition.
    let records = json!({"records": [{"key": "a", "value": {"n": 1}}, {"value": {"n": 2}}]});
    let (status, answer) = call_v2(
        &sandbox,
        "POST",
        "/topics/orders/partitions/1",
        owner,
        Some(records.clone()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let offsets = answer["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 2);
    assert!(offsets.iter().all(|o| o["partition"] == 1), "{answer}");
    for (path, body, status, code) in [
        ("/topics/orders/partitions/7", records.clone(), 404, 40402),
        (
            "/topics/orders/partitions/1",
            json!({"records": [{"value": 1, "partition": 0}]}),
            422,
            42202,
        ),
        ("/topics/nothing/partitions/0", records.clone(), 404, 40401),
    ] {
        let (got, answer) = call_v2(&sandbox, "POST", path, owner, Some(body)).await;
        assert_eq!(
            (got, answer["error_code"].as_u64()),
            (status, Some(code)),
            "{path}: {answer}"
        );
    }
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        "/topics/orders/partitions/0",
        partner,
        Some(records.clone()),
    )
    .await;
    assert_eq!(status, 403, "only the owner produces");

    // Metadata: the owner sees its topic, in REST Proxy's shapes.
    let (status, topics) = call_v2(&sandbox, "GET", "/topics", owner, None).await;
    assert_eq!((status, topics), (200, json!(["orders"])));
    let (status, topic) = call_v2(&sandbox, "GET", "/topics/orders", owner, None).await;
    assert_eq!(status, 200, "{topic}");
    assert_eq!(topic["name"], "orders");
    assert!(topic["configs"].is_object(), "{topic}");
    let partitions = topic["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{topic}");
    for partition in partitions {
        let replicas = partition["replicas"].as_array().unwrap();
        assert!(
            replicas
                .iter()
                .any(|r| r["leader"] == true && r["broker"] == partition["leader"]),
            "{partition}"
        );
    }
    let (status, one) = call_v2(&sandbox, "GET", "/topics/orders/partitions/1", owner, None).await;
    assert_eq!((status, &one["partition"]), (200, &json!(1)), "{one}");
    let (status, listed) = call_v2(&sandbox, "GET", "/topics/orders/partitions", owner, None).await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(2)));
    let (status, offsets) = call_v2(
        &sandbox,
        "GET",
        "/topics/orders/partitions/1/offsets",
        owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{offsets}");
    assert_eq!(offsets["beginning_offset"], 0, "{offsets}");
    // The true end, though tansu reports one inside the last batch.
    assert_eq!(offsets["end_offset"], 2, "{offsets}");

    // A partner sees nothing until it holds an active contract.
    let (status, topics) = call_v2(&sandbox, "GET", "/topics", partner, None).await;
    assert_eq!((status, topics), (200, json!([])));
    for path in [
        "/topics/orders",
        "/topics/orders/partitions",
        "/topics/orders/partitions/0/offsets",
    ] {
        let (status, refused) = call_v2(&sandbox, "GET", path, partner, None).await;
        assert_eq!(
            (status, &refused["error_code"]),
            (403, &json!(40302)),
            "{path}: {refused}"
        );
    }
    let contract = sandbox
        .approved_contract("orders", "orders-copy", Value::Null)
        .await;
    sandbox.until_active(&contract).await;
    let (status, topics) = call_v2(&sandbox, "GET", "/topics", partner, None).await;
    assert_eq!((status, topics), (200, json!(["orders"])));
    let (status, topic) = call_v2(&sandbox, "GET", "/topics/orders", partner, None).await;
    assert_eq!(status, 200, "{topic}");

    // Unknown topics and partitions.
    for (path, status, code) in [
        ("/topics/nothing", 404, 40401),
        ("/topics/orders/partitions/9", 404, 40402),
        ("/topics/orders/partitions/9/offsets", 404, 40402),
    ] {
        let (got, answer) = call_v2(&sandbox, "GET", path, owner, None).await;
        assert_eq!(
            (got, answer["error_code"].as_u64()),
            (status, Some(code)),
            "{path}: {answer}"
        );
    }
}
