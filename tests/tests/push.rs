//! Push consumption over Server-Sent Events, on a real tansu broker: a
//! partner with an active contract reads the stream as it is produced,
//! reshaped by the contract's terms; a reconnect with `Last-Event-ID`
//! resumes exactly after the last event (no server-side state); strangers
//! are refused; a revocation closes the open feed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use freeport_tests::{event_numbers, json, SseEvent, SseReader, TwoOrgs};
use serde_json::Value;

/// Opens the stream's feed for `key`, with `last_event_id` when given.
async fn open(
    sandbox: &TwoOrgs,
    key: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = sandbox
        .hub
        .http
        .get(format!(
            "{}/v1/streams/orders/events{query}",
            sandbox.hub.url
        ))
        .bearer_auth(key);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.expect("open the feed")
}

/// The next `count` record events (panics on anything else or a stall).
async fn records(reader: &mut SseReader, count: usize) -> Vec<SseEvent> {
    let mut found = vec![];
    while found.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .unwrap_or_else(|_| panic!("no event after {} of {count}", found.len()))
            .unwrap_or_else(|| panic!("the feed ended after {} of {count}", found.len()));
        assert_eq!(event.event, "record", "{event:?}");
        found.push(event);
    }
    found
}

async fn produce(sandbox: &TwoOrgs, numbers: std::ops::Range<u64>) {
    let records: Vec<Value> = numbers
        .map(|n| json!({"key": format!("k{n}"), "value": {"n": n, "card": "4111-1111"}}))
        .collect();
    let (status, answer) = sandbox
        .hub
        .produce("orders", &sandbox.owner, Value::Array(records))
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_reads_resumes_and_is_cut_off_by_revocation() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 2, json!({})).await;
    let contract = sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/card"]}))
        .await;
    produce(&sandbox, 0..6).await;

    // Reads what is there, masked as the contract says.
    let response = open(&sandbox, &sandbox.partner, "", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut reader = SseReader::new(response);
    let first = records(&mut reader, 4).await;
    let record: Value = serde_json::from_str(&first[0].data).unwrap();
    assert_eq!(record["value"]["card"], "****", "{record}");
    assert!(record["key"].as_str().unwrap().starts_with('k'), "{record}");
    let resume_at = first[3].id.clone().expect("an id");
    drop(reader);

    // More arrive while disconnected; the reconnect gets exactly the rest.
    produce(&sandbox, 6..9).await;
    let response = open(&sandbox, &sandbox.partner, "", Some(&resume_at)).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let rest = records(&mut reader, 5).await;
    let mut seen: Vec<u64> = event_numbers(&first);
    seen.extend(event_numbers(&rest));
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        (0..9).collect::<BTreeSet<_>>(),
        "every record once: {seen:?}"
    );
    assert_eq!(seen.len(), 9, "no record twice: {seen:?}");

    // Pushed as produced, not polled.
    produce(&sandbox, 9..10).await;
    assert_eq!(event_numbers(&records(&mut reader, 1).await), [9]);

    // The same position given as a query parameter, from another "instance"
    // (nothing is kept server-side): the same records.
    let response = open(
        &sandbox,
        &sandbox.partner,
        &format!(
            "?last_event_id={}",
            resume_at.replace(',', "%2C").replace(':', "%3A")
        ),
        None,
    )
    .await;
    let mut again = SseReader::new(response);
    assert_eq!(event_numbers(&records(&mut again, 6).await).len(), 6);
    drop(again);

    // from=end: only what is produced after the feed opened, though tansu
    // reports an end inside the last batch.
    let response = open(&sandbox, &sandbox.partner, "?from=end", None).await;
    let mut tail = SseReader::new(response);
    produce(&sandbox, 10..11).await;
    assert_eq!(event_numbers(&records(&mut tail, 1).await), [10]);
    drop(tail);
    assert_eq!(event_numbers(&records(&mut reader, 1).await), [10]);

    // Strangers and bad positions are refused with stable codes.
    let stranger = sandbox.hub.org("initech", "partner").await;
    let refused = open(&sandbox, &stranger, "", None).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], 40302, "{body}");
    for (query, id) in [
        ("", Some("0:1,7:2")),
        ("", Some("zero")),
        ("?from=middle", None),
    ] {
        let refused = open(&sandbox, &sandbox.partner, query, id).await;
        assert_eq!(refused.status(), 422, "{query} {id:?}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error_code"], 42201, "{body}");
    }

    // Revocation closes the open feed, saying why.
    let revoked_at = Instant::now();
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
    let closed = tokio::time::timeout(Duration::from_secs(30), reader.next())
        .await
        .expect("the feed to close")
        .expect("a closing event");
    println!(
        "feed closed {:?} after the revocation",
        revoked_at.elapsed()
    );
    assert_eq!(closed.event, "closed", "{closed:?}");
    assert!(closed.data.contains("revoked"), "{}", closed.data);
    assert!(reader.next().await.is_none(), "nothing after closed");
    let refused = open(&sandbox, &sandbox.partner, "", None).await;
    assert_eq!(refused.status(), 403);
}

/// The next `count` WebSocket messages, parsed (panics on a stall or an end).
async fn messages(socket: &mut freeport_tests::WebSocket, count: usize) -> Vec<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut found = vec![];
    while found.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .unwrap_or_else(|_| panic!("no message after {} of {count}", found.len()))
            .unwrap_or_else(|| panic!("the socket ended after {} of {count}", found.len()))
            .expect("a WebSocket message");
        match message {
            Message::Text(text) => found.push(serde_json::from_str(&text).expect("JSON text")),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?} after {found:?}"),
        }
    }
    found
}

fn record_numbers(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            assert_eq!(m["type"], "record", "{m}");
            m["record"]["value"]["n"].as_u64().expect("n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_feed_over_a_websocket_resumes_and_closes_on_revocation() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Error, Message};

    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 2, json!({})).await;
    let contract = sandbox
        .active_contract("orders", "orders-copy", json!({"mask_fields": ["/card"]}))
        .await;
    produce(&sandbox, 0..6).await;
    let hub = &sandbox.hub;

    let mut socket = hub
        .websocket("/v1/streams/orders/events", &sandbox.partner, &[])
        .await
        .expect("upgrade");
    let first = messages(&mut socket, 4).await;
    assert_eq!(first[0]["record"]["value"]["card"], "****", "{}", first[0]);
    let resume_at = first[3]["id"].as_str().expect("an id").to_string();
    socket.close(None).await.expect("close");

    // Resumed from the id with Last-Event-ID, like SSE: exactly the rest.
    produce(&sandbox, 6..9).await;
    let mut socket = hub
        .websocket(
            "/v1/streams/orders/events",
            &sandbox.partner,
            &[("last-event-id", &resume_at)],
        )
        .await
        .expect("upgrade");
    let rest = messages(&mut socket, 5).await;
    let mut seen = record_numbers(&first);
    seen.extend(record_numbers(&rest));
    seen.sort_unstable();
    assert_eq!(seen, (0..9).collect::<Vec<_>>(), "every record once");

    // Refusals come back as HTTP answers before any upgrade.
    let stranger = hub.org("initech", "partner").await;
    for (key, path, status) in [
        (stranger.as_str(), "/v1/streams/orders/events", 403),
        (
            sandbox.partner.as_str(),
            "/v1/streams/orders/events?last_event_id=zero",
            422,
        ),
        (
            sandbox.partner.as_str(),
            "/v1/streams/orders/events?last_event_id=,,,",
            422,
        ),
        // Past the partition's end: records that were never written.
        (
            sandbox.partner.as_str(),
            "/v1/streams/orders/events?last_event_id=0:9223372036854775807",
            422,
        ),
        ("not-a-key", "/v1/streams/orders/events", 401),
    ] {
        match hub.websocket(path, key, &[]).await {
            Err(Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{path}");
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("an error body");
                assert!(body["error_code"].is_u64(), "{body}");
            }
            Ok(_) => panic!("{path} was upgraded"),
            Err(other) => panic!("{path}: {other}"),
        }
    }

    // Revocation: a `closed` message with the reason, then a policy close.
    let (status, answer) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{contract}/revoke"),
            &hub.admin_key,
            Some(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let closed = messages(&mut socket, 1).await.remove(0);
    assert_eq!(closed["type"], "closed", "{closed}");
    assert!(
        closed["reason"].as_str().unwrap().contains("revoked"),
        "{closed}"
    );
    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a close frame")
        .expect("a message")
        .expect("not an error");
    match frame {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Policy),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_is_paced_to_the_contract_s_record_rate() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .active_contract(
            "orders",
            "orders-copy",
            json!({"max_records_per_second": 2}),
        )
        .await;
    produce(&sandbox, 0..8).await;
    let response = open(&sandbox, &sandbox.partner, "", None).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let started = Instant::now();
    let got = event_numbers(&records(&mut reader, 6).await);
    let took = started.elapsed();
    assert_eq!(got, (0..6).collect::<Vec<_>>());
    // Two at once (the burst), then two a second: at least two seconds for
    // the other four. Never faster, however fast the machine.
    assert!(took >= Duration::from_millis(1900), "6 records in {took:?}");
}
