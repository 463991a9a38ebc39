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
    let (status, body, content_type) = sandbox.hub.call_v2(method, path, key, body).await;
    if status == 200 {
        assert_eq!(
            content_type.as_deref(),
            Some("application/vnd.kafka.v2+json"),
            "{path}"
        );
    }
    (status, body)
}

/// Calls and checks the refusal: its status and error code.
async fn expect_refusal(
    sandbox: &TwoOrgs,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
    status: u16,
    code: u64,
) {
    let (got, answer) = call_v2(sandbox, method, path, key, body).await;
    assert_eq!(
        (got, answer["error_code"].as_u64()),
        (status, Some(code)),
        "{method} {path}: {answer}"
    );
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
        expect_refusal(&sandbox, "GET", path, partner, None, 403, 40302).await;
    }
    sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;
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

/// Reads an instance's records until `count` have arrived (30 s at most).
async fn consume(sandbox: &TwoOrgs, key: &str, instance: &str, count: usize) -> Vec<Value> {
    let mut found = vec![];
    let started = std::time::Instant::now();
    while found.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} of {count} records: {found:?}",
            found.len()
        );
        let response = sandbox
            .hub
            .http
            .get(format!(
                "{}/consumers/readers/instances/{instance}/records?timeout=1000",
                sandbox.hub.url
            ))
            .bearer_auth(key)
            .header("accept", "application/vnd.kafka.json.v2+json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.kafka.json.v2+json"
        );
        let batch: Vec<Value> = response.json().await.unwrap();
        found.extend(batch);
    }
    found
}

fn ns(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["value"]["n"].as_u64().expect("n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_consumer_instances_read_commit_resume_seek_and_expire() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    let contract = sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/card"]}))
        .await;
    let records: Vec<Value> = (0..10)
        .map(|n| json!({"key": format!("k{n}"), "value": {"n": n, "card": "4111"}}))
        .collect();
    let (status, answer) = sandbox
        .hub
        .produce("orders", &sandbox.owner, Value::Array(records))
        .await;
    assert_eq!(status, 200, "{answer}");
    let partner = sandbox.partner.as_str();
    let instance =
        |name: &str, suffix: &str| format!("/consumers/readers/instances/{name}{suffix}");
    let create = json!({"name": "r1", "format": "json", "auto.offset.reset": "earliest", "auto.commit.enable": "false"});

    // Create, in REST Proxy's shape; a second of the same name is 40902.
    let (status, created) = call_v2(
        &sandbox,
        "POST",
        "/consumers/readers",
        partner,
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["instance_id"], "r1");
    assert!(
        created["base_uri"]
            .as_str()
            .unwrap()
            .ends_with("/consumers/readers/instances/r1"),
        "{created}"
    );
    expect_refusal(
        &sandbox,
        "POST",
        "/consumers/readers",
        partner,
        Some(create.clone()),
        409,
        40902,
    )
    .await;
    for bad in [
        json!({"format": "thrift"}),
        json!({"auto.offset.reset": "middle"}),
        json!({"consumer.request.timeout.ms": "soon"}),
        json!({"name": "no spaces"}),
    ] {
        expect_refusal(
            &sandbox,
            "POST",
            "/consumers/readers",
            partner,
            Some(bad.clone()),
            422,
            42204,
        )
        .await;
    }

    // Subscribe and read: masked by the contract, headers included.
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        &instance("r1", "/subscription"),
        partner,
        Some(json!({"topics": ["orders"]})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, subscription) = call_v2(
        &sandbox,
        "GET",
        &instance("r1", "/subscription"),
        partner,
        None,
    )
    .await;
    assert_eq!(subscription, json!({"topics": ["orders"]}));
    expect_refusal(
        &sandbox,
        "POST",
        &instance("r1", "/assignments"),
        partner,
        Some(json!({"partitions": [{"topic": "orders", "partition": 0}]})),
        409,
        40901,
    )
    .await;
    let read = consume(&sandbox, partner, "r1", 10).await;
    assert_eq!(ns(&read), (0..10).collect::<Vec<_>>());
    assert_eq!(read[0]["value"]["card"], "****", "{}", read[0]);
    assert_eq!(read[0]["key"], "k0");
    assert_eq!(read[0]["topic"], "orders");
    assert!(read[0]["headers"].is_array(), "{}", read[0]);
    let wrong_format = sandbox
        .hub
        .http
        .get(format!("{}{}", sandbox.hub.url, instance("r1", "/records")))
        .bearer_auth(partner)
        .header("accept", "application/vnd.kafka.binary.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_format.status(), 406);

    // Commit inside the batch (after record 2), leave, and a new instance of
    // the group resumes right after it: nothing skipped, nothing twice.
    let (status, answer) = call_v2(
        &sandbox,
        "POST",
        &instance("r1", "/offsets"),
        partner,
        Some(json!({"offsets": [{"topic": "orders", "partition": 0, "offset": 2}]})),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let (status, committed) = call_v2(
        &sandbox,
        "GET",
        &instance("r1", "/offsets"),
        partner,
        Some(json!({"partitions": [{"topic": "orders", "partition": 0}]})),
    )
    .await;
    assert_eq!(status, 200, "{committed}");
    assert_eq!(committed["offsets"][0]["offset"], 3, "{committed}");
    let (status, _) = call_v2(&sandbox, "DELETE", &instance("r1", ""), partner, None).await;
    assert_eq!(status, 204);
    expect_refusal(
        &sandbox,
        "GET",
        &instance("r1", "/subscription"),
        partner,
        None,
        404,
        40403,
    )
    .await;

    let r2 = json!({"name": "r2", "format": "json", "auto.offset.reset": "earliest", "auto.commit.enable": "false"});
    call_v2(&sandbox, "POST", "/consumers/readers", partner, Some(r2)).await;
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        &instance("r2", "/subscription"),
        partner,
        Some(json!({"topics": ["orders"]})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        ns(&consume(&sandbox, partner, "r2", 7).await),
        (3..10).collect::<Vec<_>>()
    );
    let (_, held) = call_v2(
        &sandbox,
        "GET",
        &instance("r2", "/assignments"),
        partner,
        None,
    )
    .await;
    assert_eq!(
        held,
        json!({"partitions": [{"topic": "orders", "partition": 0}]})
    );

    // Seek to an offset inside the batch, then to the beginning.
    let (status, answer) = call_v2(
        &sandbox,
        "POST",
        &instance("r2", "/positions"),
        partner,
        Some(json!({"offsets": [{"topic": "orders", "partition": 0, "offset": 5}]})),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(
        ns(&consume(&sandbox, partner, "r2", 5).await),
        (5..10).collect::<Vec<_>>()
    );
    let (status, answer) = call_v2(
        &sandbox,
        "POST",
        &instance("r2", "/positions/beginning"),
        partner,
        Some(json!({"partitions": [{"topic": "orders", "partition": 0}]})),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(
        ns(&consume(&sandbox, partner, "r2", 10).await),
        (0..10).collect::<Vec<_>>()
    );
    // With no body, a commit takes everything read so far: without a
    // content type, and with REST Proxy's (as its clients send it).
    for content_type in [None, Some("application/vnd.kafka.v2+json")] {
        let mut request = sandbox
            .hub
            .http
            .post(format!("{}{}", sandbox.hub.url, instance("r2", "/offsets")))
            .bearer_auth(partner);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 204, "{content_type:?}");
    }
    let (_, committed) = call_v2(
        &sandbox,
        "GET",
        &instance("r2", "/offsets"),
        partner,
        Some(json!({"partitions": [{"topic": "orders", "partition": 0}]})),
    )
    .await;
    assert_eq!(committed["offsets"][0]["offset"], 10, "{committed}");
    expect_refusal(
        &sandbox,
        "POST",
        &instance("r2", "/positions"),
        partner,
        Some(json!({"offsets": [{"topic": "orders", "partition": 3, "offset": 0}]})),
        409,
        40903,
    )
    .await;

    // A pattern subscription takes the matching topics the caller may read.
    let p1 = json!({"name": "p1", "format": "json", "auto.offset.reset": "earliest"});
    call_v2(&sandbox, "POST", "/consumers/patterns", partner, Some(p1)).await;
    let subscription = "/consumers/patterns/instances/p1/subscription";
    for (body, status, code) in [
        (json!({"topic_pattern": "ord(ers"}), 422, 42204),
        (json!({"topic_pattern": "nothing.*"}), 404, 40401),
        (
            json!({"topic_pattern": "ord.*", "topics": ["orders"]}),
            409,
            40903,
        ),
    ] {
        expect_refusal(
            &sandbox,
            "POST",
            subscription,
            partner,
            Some(body),
            status,
            code,
        )
        .await;
    }
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        subscription,
        partner,
        Some(json!({"topic_pattern": "ord.*"})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, subscribed) = call_v2(&sandbox, "GET", subscription, partner, None).await;
    assert_eq!(subscribed, json!({"topics": ["orders"]}));

    // A stranger without a contract cannot subscribe to the topic.
    let stranger = sandbox.hub.org("initech", "partner").await;
    call_v2(
        &sandbox,
        "POST",
        "/consumers/readers",
        &stranger,
        Some(json!({"name": "s1"})),
    )
    .await;
    expect_refusal(
        &sandbox,
        "POST",
        "/consumers/readers/instances/s1/subscription",
        &stranger,
        Some(json!({"topics": ["orders"]})),
        403,
        40302,
    )
    .await;

    // Another organization cannot touch the partner's instance.
    expect_refusal(
        &sandbox,
        "GET",
        &instance("r2", "/assignments"),
        &sandbox.owner,
        None,
        404,
        40403,
    )
    .await;

    // Revocation: the next records request is refused.
    let r3 = json!({"name": "r3", "format": "json", "auto.offset.reset": "earliest"});
    call_v2(&sandbox, "POST", "/consumers/readers", partner, Some(r3)).await;
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        &instance("r3", "/assignments"),
        partner,
        Some(json!({"partitions": [{"topic": "orders", "partition": 0}]})),
    )
    .await;
    assert_eq!(status, 204);
    // Assigned partitions start at the group's committed offset too (10,
    // from r2's commit): only what comes next.
    let more: Vec<Value> = (10..12)
        .map(|n| json!({"value": {"n": n, "card": "4111"}}))
        .collect();
    let (status, answer) = sandbox
        .hub
        .produce("orders", &sandbox.owner, Value::Array(more))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ns(&consume(&sandbox, partner, "r3", 2).await), [10, 11]);
    let (status, answer) = sandbox
        .hub
        .call(
            "POST",
            &format!("/v1/contracts/{contract}/revoke"),
            &sandbox.hub.admin_key,
            Some(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Records are asked for in their embedded format (a bare v2 Accept is 406).
    let response = sandbox
        .hub
        .http
        .get(format!("{}{}", sandbox.hub.url, instance("r3", "/records")))
        .bearer_auth(partner)
        .header("accept", "application/vnd.kafka.json.v2+json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let refused: Value = response.json().await.unwrap();
    assert_eq!(
        (status, &refused["error_code"]),
        (403, &json!(40302)),
        "{refused}"
    );

    // Idle instances expire (the test hub's timeout is 4 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    expect_refusal(
        &sandbox,
        "GET",
        &instance("r2", "/assignments"),
        partner,
        None,
        404,
        40403,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_s_record_rate_is_enforced_with_429_and_retry_after() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .active_contract(
            "orders",
            "orders-copy",
            json!({"max_records_per_second": 1}),
        )
        .await;
    let records: Vec<Value> = (0..10).map(|n| json!({"value": {"n": n}})).collect();
    let (status, answer) = sandbox
        .hub
        .produce("orders", &sandbox.owner, Value::Array(records))
        .await;
    assert_eq!(status, 200, "{answer}");
    let partner = sandbox.partner.as_str();
    let create = json!({"name": "slow", "format": "json", "auto.offset.reset": "earliest"});
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        "/consumers/readers",
        partner,
        Some(create),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call_v2(
        &sandbox,
        "POST",
        "/consumers/readers/instances/slow/subscription",
        partner,
        Some(json!({"topics": ["orders"]})),
    )
    .await;
    assert_eq!(status, 204);

    // Read as fast as the portal lets us: never more than the contract's
    // rate (plus its one-second burst), and told when to come back.
    let started = std::time::Instant::now();
    let mut read = 0;
    let mut refusals = 0;
    while read < 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "read {read}");
        let response = sandbox
            .hub
            .http
            .get(format!(
                "{}/consumers/readers/instances/slow/records?timeout=500",
                sandbox.hub.url
            ))
            .bearer_auth(partner)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => read += response.json::<Vec<Value>>().await.unwrap().len(),
            429 => {
                refusals += 1;
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1, "{retry}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error_code"], 42901, "{body}");
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
        let allowed = 1.0 + started.elapsed().as_secs_f64();
        assert!(
            read as f64 <= allowed + 1.0,
            "{read} records in {:?}",
            started.elapsed()
        );
    }
    assert!(refusals > 0, "asking faster than the rate is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_lets_open_streams_finish() {
    let mut sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;

    // A streaming produce with records reported, and a push feed, open.
    let (feed, body) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    feed.send(Ok(Bytes::from(
        json!({"value": {"data": {"n": 0}}}).to_string(),
    )))
    .await
    .unwrap();
    let response = sandbox
        .hub
        .http
        .post(records_url(&sandbox, "acme", "orders"))
        .bearer_auth(&sandbox.owner)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(body),
        ))
        .send()
        .await
        .unwrap();
    let mut reports = Reports::new(response);
    assert_eq!(reports.next().await.unwrap()["error_code"], 200);
    let events = sandbox
        .hub
        .http
        .get(format!("{}/v1/streams/orders/events", sandbox.hub.url))
        .bearer_auth(&sandbox.partner)
        .send()
        .await
        .unwrap();
    let mut events = freeport_tests::SseReader::new(events);
    assert_eq!(events.next().await.unwrap().event, "record");

    // SIGTERM: the feed says why it ends, the produce stream reports what it
    // read and says to send the rest again, and the portal exits cleanly.
    sandbox.hub.portal.terminate();
    let closed = events.next().await.expect("a closing event");
    assert_eq!(closed.event, "closed", "{closed:?}");
    assert!(closed.data.contains("shutting down"), "{}", closed.data);
    let last = reports.next().await.expect("a last report");
    assert_eq!(last["error_code"], 50301, "{last}");
    assert!(reports.next().await.is_none());
    drop(feed);
    let status = sandbox
        .hub
        .portal
        .exited(Duration::from_secs(30))
        .await
        .expect("the portal exits");
    assert!(status.success(), "{status}: {}", sandbox.hub.portal.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_catalog_cannot_answer_times_out_with_504() {
    let sandbox = TwoOrgs::start().await;
    let catalog = sandbox.hub.catalog.pid();
    freeport_tests::signal(catalog, "-STOP");
    let (status, answer) = sandbox
        .hub
        .call("GET", "/v1/streams", &sandbox.owner, None)
        .await;
    freeport_tests::signal(catalog, "-CONT");
    // The test hub's request timeout is 8 s, under the client's 30 s.
    assert_eq!(
        (status, &answer["error_code"]),
        (504, &json!(50401)),
        "{answer}"
    );
    let (status, answer) = sandbox
        .hub
        .call("GET", "/v1/streams", &sandbox.owner, None)
        .await;
    assert_eq!(status, 200, "answers again once the catalog does: {answer}");
}

/// The partitions an instance holds now.
async fn held(sandbox: &TwoOrgs, key: &str, instance: &str) -> usize {
    let (status, held) = call_v2(
        sandbox,
        "GET",
        &format!("/consumers/pair/instances/{instance}/assignments"),
        key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{held}");
    held["partitions"].as_array().unwrap().len()
}

/// Polls an instance's records once (which also keeps it alive and lets
/// the group rebalance).
async fn poll(sandbox: &TwoOrgs, key: &str, instance: &str) {
    let response = sandbox
        .hub
        .http
        .get(format!(
            "{}/consumers/pair/instances/{instance}/records?timeout=500",
            sandbox.hub.url
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_releases_its_partitions_to_the_rest_of_its_group() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 2, json!({})).await;
    sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;
    let partner = sandbox.partner.as_str();
    for name in ["a", "b"] {
        let (status, _) = call_v2(
            &sandbox,
            "POST",
            "/consumers/pair",
            partner,
            Some(json!({"name": name, "format": "json"})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call_v2(
            &sandbox,
            "POST",
            &format!("/consumers/pair/instances/{name}/subscription"),
            partner,
            Some(json!({"topics": ["orders"]})),
        )
        .await;
        assert_eq!(status, 204);
    }
    // Both poll until the group has shared the two partitions between them.
    let started = std::time::Instant::now();
    loop {
        poll(&sandbox, partner, "a").await;
        poll(&sandbox, partner, "b").await;
        let (a, b) = (
            held(&sandbox, partner, "a").await,
            held(&sandbox, partner, "b").await,
        );
        if a == 1 && b == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never shared: a {a}, b {b}"
        );
    }
    // `a` goes quiet; once it expires (4 s here) `b` holds both.
    let started = std::time::Instant::now();
    loop {
        poll(&sandbox, partner, "b").await;
        if held(&sandbox, partner, "b").await == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "b never got a's partition"
        );
    }
    expect_refusal(
        &sandbox,
        "GET",
        "/consumers/pair/instances/a/assignments",
        partner,
        None,
        404,
        40403,
    )
    .await;
}

/// What existing REST Proxy clients send, as Confluent's REST Proxy takes
/// it: the readiness probe's `GET /brokers`, paths with a trailing `/`,
/// consumer settings Freeport does not use, and a commit without a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_proxy_client_s_own_spellings_are_understood() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .active_contract("orders", "orders-copy", json!({}))
        .await;
    let (status, answer) = sandbox
        .hub
        .produce(
            "orders",
            &sandbox.owner,
            json!([{"value": {"n": 0}}, {"value": {"n": 1}}]),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let partner = sandbox.partner.as_str();

    // The probe: every caller sees the brokers behind its topics.
    for key in [partner, sandbox.owner.as_str()] {
        for path in ["/brokers", "/brokers/"] {
            let (status, brokers) = call_v2(&sandbox, "GET", path, key, None).await;
            assert_eq!(status, 200, "{path}: {brokers}");
            let ids = brokers["brokers"].as_array().expect("a list of broker ids");
            assert!(
                !ids.is_empty() && ids.iter().all(Value::is_i64),
                "{path}: {brokers}"
            );
        }
    }

    // Content negotiation: an Accept that admits nothing the route answers
    // in is 406, before anything happens; wildcards and JSON are fine.
    let get = |path: &str, accept: &str| {
        sandbox
            .hub
            .http
            .get(format!("{}{path}", sandbox.hub.url))
            .bearer_auth(partner)
            .header("accept", accept.to_string())
            .send()
    };
    for (path, accept, status) in [
        ("/topics", "text/html", 406),
        ("/brokers", "application/xml, text/plain", 406),
        ("/topics", "application/json;q=0", 406),
        ("/topics", "*/*", 200),
        ("/topics", "application/json", 200),
        ("/topics", "application/vnd.kafka+json", 200),
    ] {
        let response = get(path, accept).await.unwrap();
        assert_eq!(response.status(), status, "{path} with {accept}");
        if status == 406 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error_code"], 40600, "{body}");
        }
    }

    // Trailing slashes reach the same routes; a query survives the trim.
    let (_, topics) = call_v2(&sandbox, "GET", "/topics", partner, None).await;
    let (status, slashed) = call_v2(&sandbox, "GET", "/topics/", partner, None).await;
    assert_eq!((status, &slashed), (200, &topics));
    let (status, created) = call_v2(
        &sandbox,
        "POST",
        "/consumers/probers/",
        partner,
        Some(json!({
            "name": "p1",
            "format": "json",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": "30000",
            "max.poll.records": 5
        })),
    )
    .await;
    assert_eq!(status, 200, "unknown settings are ignored: {created}");
    let base = "/consumers/probers/instances/p1";
    let (status, answer) = call_v2(
        &sandbox,
        "POST",
        &format!("{base}/subscription/"),
        partner,
        Some(json!({"topics": ["orders"]})),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let mut read = 0;
    let started = std::time::Instant::now();
    while read < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "read {read} of 2"
        );
        let response = sandbox
            .hub
            .http
            .get(format!("{}{base}/records/?timeout=1000", sandbox.hub.url))
            .bearer_auth(partner)
            .header("accept", "application/vnd.kafka.json.v2+json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        read += response.json::<Vec<Value>>().await.unwrap().len();
    }
    // Records come only in the embedded formats.
    let response = get(&format!("{base}/records"), "application/vnd.kafka.v2+json")
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
    let response = sandbox
        .hub
        .http
        .post(format!("{}{base}/offsets/", sandbox.hub.url))
        .bearer_auth(partner)
        .header("content-type", "application/vnd.kafka.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "a commit without a body");
    let (status, answer) = call_v2(&sandbox, "DELETE", &format!("{base}/"), partner, None).await;
    assert_eq!(status, 204, "{answer}");
    // The web UI keeps its own address.
    let ui = sandbox
        .hub
        .http
        .get(format!("{}/ui/", sandbox.hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
}
