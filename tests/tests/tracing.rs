//! Tracing end to end: the three services export spans over OTLP/HTTP to a
//! receiver inside this test, and one record's path (the HTTP produce,
//! which asks the catalog nothing, the link's copy into the partner's
//! cluster, the partner's push delivery) is one trace whose spans parent each other
//! through the W3C context in the Kafka record headers.

use std::time::Duration;

use base64::Engine;
use freeport_tests::otlp::{self, Receiver, Span};
use freeport_tests::{eventually, json, read_topic, Broker, Hub, SseReader, TwoOrgs, Value};

/// The client's own trace, which the produce call continues.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The spans of `trace` once every span named in `wanted` (service, name)
/// has arrived.
async fn spans_of(receiver: &Receiver, trace: &str, wanted: &[(&str, &str)]) -> Vec<Span> {
    eventually(
        Duration::from_secs(40),
        &format!("spans {wanted:?} of trace {trace}"),
        || {
            let spans: Vec<Span> = receiver
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace)
                .collect();
            let complete = wanted.iter().all(|(service, name)| {
                spans
                    .iter()
                    .any(|s| s.service == *service && s.name == *name)
            });
            async move { complete.then_some(spans) }
        },
    )
    .await
}

fn find<'a>(spans: &'a [Span], service: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one {service} span {name:?} in {spans:#?}");
    found[0]
}

/// The `traceparent` of a record as a push feed shows it.
fn pushed_traceparent(record: &Value) -> String {
    let header = record["headers"]
        .as_array()
        .and_then(|headers| headers.iter().find(|h| h["name"] == "traceparent"))
        .unwrap_or_else(|| panic!("no traceparent in {record}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header["value"].as_str().expect("a value"))
        .expect("base64");
    String::from_utf8(bytes).expect("text")
}

/// The next record event of an SSE feed.
async fn next_record(feed: &mut SseReader) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), feed.next())
            .await
            .expect("a record within 30 s")
            .expect("the feed is open");
        if event.event == "record" {
            return serde_json::from_str(&event.data).expect("record JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_record_from_produce_through_the_link_to_the_partner() {
    let receiver = Receiver::start().await;
    let logs = tempfile::tempdir().expect("temp dir");
    let owner_cluster = Broker::start("broker-acme", logs.path()).await;
    let partner_cluster = Broker::start("broker-globex", logs.path()).await;
    let partner_bootstrap = partner_cluster.bootstrap.clone();
    let hub = Hub::start_configured(
        &[
            ("acme", owner_cluster.cluster()),
            ("globex", partner_cluster.cluster()),
        ],
        "",
        &format!("[telemetry]\nendpoint = {:?}\n", receiver.endpoint),
    )
    .await;
    let sandbox = TwoOrgs::from_parts(owner_cluster, partner_cluster, hub, logs).await;
    let hub = &sandbox.hub;
    sandbox.stream("orders", 1, json!({})).await;
    let contract = sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;
    let mut feed = hub.feed("orders", &sandbox.partner, "?from=end").await;

    // A client that traces its own work produces one record in its trace,
    // with a traceparent header of its own on the record (replaced: the
    // record carries the hub's span).
    let stale = base64::engine::general_purpose::STANDARD.encode(format!(
        "00-{}-{}-01",
        "1".repeat(32),
        "2".repeat(16)
    ));
    let response = hub
        .http
        .post(format!("{}/topics/orders", hub.url))
        .bearer_auth(&sandbox.owner)
        .header("content-type", "application/vnd.kafka.json.v2+json")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .body(
            json!({"records": [{"key": "k1", "value": {"n": 1},
                "headers": [{"name": "traceparent", "value": stale}]}]})
            .to_string(),
        )
        .send()
        .await
        .expect("produce");
    assert_eq!(response.status(), 200);
    let pushed = next_record(&mut feed).await;

    let spans = spans_of(
        &receiver,
        CLIENT_TRACE,
        &[
            ("freeport-portal", "POST /topics/{topic}"),
            ("freeport-portal", "send orders"),
            ("freeport-link", "mirror orders"),
            ("freeport-portal", "deliver orders"),
        ],
    )
    .await;
    let call = find(&spans, "freeport-portal", "POST /topics/{topic}");
    assert_eq!(call.kind, otlp::SERVER);
    assert_eq!(
        call.parent_span_id, CLIENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(call.attribute("http.response.status_code"), Some("200"));
    let send = find(&spans, "freeport-portal", "send orders");
    assert_eq!(send.kind, otlp::PRODUCER);
    assert_eq!(send.parent_span_id, call.span_id);
    assert_eq!(send.attribute("messaging.destination.name"), Some("orders"));
    // The portal decided from its own view of the catalog: the call asked
    // the catalog nothing.
    let asked: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service == "freeport-catalog")
        .collect();
    assert!(asked.is_empty(), "{asked:#?}");
    let mirror = find(&spans, "freeport-link", "mirror orders");
    assert_eq!(mirror.kind, otlp::CONSUMER);
    assert_eq!(
        mirror.parent_span_id, send.span_id,
        "the link continues the record's trace"
    );
    assert_eq!(
        mirror.attribute("freeport.contract.id"),
        Some(contract.as_str())
    );
    assert_eq!(
        mirror.attribute("freeport.destination.topic"),
        Some("orders-copy")
    );
    let deliver = find(&spans, "freeport-portal", "deliver orders");
    assert_eq!(deliver.kind, otlp::CONSUMER);
    assert_eq!(deliver.parent_span_id, send.span_id);
    assert_eq!(deliver.attribute("freeport.transport"), Some("sse"));
    assert_eq!(deliver.attribute("freeport.consumer"), Some("globex"));
    for span in &spans {
        assert_ne!(span.status, 2, "no span failed: {span:?}");
    }

    // What the partner gets carries the trace on: the pushed record the
    // produce's span, the copy in its cluster the link's.
    assert_eq!(
        pushed_traceparent(&pushed),
        format!("00-{CLIENT_TRACE}-{}-01", send.span_id)
    );
    let copy = read_topic(&partner_bootstrap, "orders-copy", Duration::from_secs(2)).await;
    assert_eq!(copy.len(), 1, "{copy:?}");
    assert_eq!(
        copy[0].header("traceparent"),
        Some(format!("00-{CLIENT_TRACE}-{}-01", mirror.span_id).as_str())
    );
    assert_eq!(copy[0].header("freeport.source.topic"), Some("orders"));

    // A streaming produce without a trace of its own starts one at the
    // portal: a send span per record, each continued by the link and by a
    // WebSocket delivery.
    let mut socket = hub
        .websocket("/v1/streams/orders/events?from=end", &sandbox.partner, &[])
        .await
        .expect("upgrade");
    let body = [2, 3]
        .iter()
        .map(|n| json!({"value": {"type": "JSON", "data": {"n": n}}}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let response = hub
        .http
        .post(format!(
            "{}/v3/clusters/acme/topics/orders/records",
            hub.url
        ))
        .bearer_auth(&sandbox.owner)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("streaming produce");
    assert_eq!(response.status(), 200);
    let reports = response.text().await.expect("reports");
    assert_eq!(reports.lines().count(), 2, "{reports}");
    assert!(
        reports.lines().all(|r| r.contains("\"error_code\":200")),
        "{reports}"
    );
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        use futures::StreamExt;
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message within 30 s")
            .expect("the socket is open")
            .expect("a message");
        let message: Value = serde_json::from_str(message.to_text().expect("text")).expect("JSON");
        if message["type"] == "record" {
            delivered.push(message["record"].clone());
        }
    }
    let trace = pushed_traceparent(&delivered[0])[3..35].to_string();
    assert_ne!(trace, CLIENT_TRACE);
    let spans = spans_of(
        &receiver,
        &trace,
        &[
            (
                "freeport-portal",
                "POST /v3/clusters/{cluster}/topics/{topic}/records",
            ),
            ("freeport-link", "mirror orders"),
        ],
    )
    .await;
    let call = find(
        &spans,
        "freeport-portal",
        "POST /v3/clusters/{cluster}/topics/{topic}/records",
    );
    assert!(call.parent_span_id.is_empty(), "the call starts the trace");
    let sends: Vec<&Span> = spans.iter().filter(|s| s.name == "send orders").collect();
    assert_eq!(sends.len(), 2, "one send span per record: {spans:#?}");
    for send in &sends {
        assert_eq!(send.parent_span_id, call.span_id);
        assert!(
            send.attribute("messaging.kafka.offset").is_some(),
            "{send:?}"
        );
    }
    let delivered_from: Vec<String> = delivered
        .iter()
        .map(|r| pushed_traceparent(r)[36..52].to_string())
        .collect();
    let send_ids: Vec<&str> = sends.iter().map(|s| s.span_id.as_str()).collect();
    for id in &delivered_from {
        assert!(send_ids.contains(&id.as_str()), "{id} among {send_ids:?}");
    }
    let delivering = spans_of(&receiver, &trace, &[("freeport-portal", "deliver orders")]).await;
    let websocket = delivering
        .iter()
        .filter(|s| s.name == "deliver orders")
        .find(|s| s.attribute("freeport.transport") == Some("websocket"))
        .unwrap_or_else(|| panic!("a WebSocket delivery span: {delivering:#?}"));
    assert!(send_ids.contains(&websocket.parent_span_id.as_str()));
    assert_eq!(
        receiver.malformed(),
        0,
        "every export was a valid OTLP request"
    );
}
