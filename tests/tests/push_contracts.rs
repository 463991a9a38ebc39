//! A partner without Kafka: an organization with no cluster asks for a
//! `push` contract (no destination), which is active as soon as an admin
//! approves it (no link involved, nothing mirrored); it reads the stream
//! over SSE (resuming on a second portal), a WebSocket and a REST Proxy
//! consumer instance, reshaped by its terms, and sees the stream's schema
//! under the stream's own subject. A revocation closes its feed.

use std::time::Duration;

use freeport_tests::{event_numbers, eventually, json, SseReader, TwoOrgs, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_without_a_cluster_reads_a_push_contract_over_http() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let mut sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 2, json!({})).await;
    let app = sandbox.hub.org("initech", "partner").await;
    let hub = &sandbox.hub;

    // A kafka contract needs a destination; a push one takes none.
    for (body, says) in [
        (
            json!({"stream": "orders", "purpose": "app"}),
            "delivery \\\"push\\\"",
        ),
        (
            json!({"stream": "orders", "purpose": "app", "delivery": "push",
                "destination": {"cluster": "globex", "topic": "x"}}),
            "mirrors nowhere",
        ),
        (
            json!({"stream": "orders", "purpose": "app", "delivery": "mail"}),
            "unknown variant",
        ),
    ] {
        let (status, refused) = hub.call("POST", "/v1/contracts", &app, Some(body)).await;
        assert_eq!(
            (status, &refused["error_code"]),
            (422, &json!(42201)),
            "{refused}"
        );
        assert!(refused.to_string().contains(says), "{says}: {refused}");
    }
    let (status, requested) = hub
        .call(
            "POST",
            "/v1/contracts",
            &app,
            Some(
                json!({"stream": "orders", "purpose": "mobile app", "delivery": "push",
                "terms": {"mask_fields": ["/card"]}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{requested}");
    assert_eq!(requested["delivery"], "push");
    assert!(requested.get("destination").is_none(), "{requested}");
    let id = requested["id"].as_str().unwrap().to_string();

    // Approval is activation: no link is waited for.
    let (status, approved) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/approve"),
            &hub.admin_key,
            Some(json!({"reason": "ok"})),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "active", "{approved}");
    let activated = approved["history"].as_array().unwrap().last().unwrap();
    assert_eq!(activated["actor"], "system:push", "{approved}");

    let records_of = |numbers: std::ops::Range<u64>| -> Value {
        numbers
            .map(|n| json!({"key": format!("k{n}"), "value": {"n": n, "card": "4111-1111"}}))
            .collect()
    };
    let (status, _) = hub
        .produce("orders", &sandbox.owner, records_of(0..6))
        .await;
    assert_eq!(status, 200);

    // SSE, masked as the contract says; resumed on a second portal.
    let mut reader = hub.feed("orders", &app, "").await;
    let first = reader.records(4).await;
    let record: Value = serde_json::from_str(&first[0].data).unwrap();
    assert_eq!(record["value"]["card"], "****", "{record}");
    let resume_at = first[3].id.clone().expect("an id");
    drop(reader);
    let other = sandbox.hub.spawn_another("portal", "portal-2");
    let hub = &sandbox.hub;
    let second = format!(
        "https://localhost:{}/v1/streams/orders/events",
        other.listen
    );
    let response = eventually(Duration::from_secs(30), "the second portal", || {
        let request = hub
            .http
            .get(&second)
            .bearer_auth(&app)
            .header("Last-Event-ID", &resume_at);
        async move { request.send().await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    let mut reader = SseReader::new(response);
    let rest = reader.records(2).await;
    let mut seen = event_numbers(&first);
    seen.extend(event_numbers(&rest));
    seen.sort_unstable();
    assert_eq!(seen, (0..6).collect::<Vec<_>>(), "every record once");

    // A WebSocket.
    let mut socket = hub
        .websocket("/v1/streams/orders/events", &app, &[])
        .await
        .expect("upgrade");
    let mut numbers = Vec::new();
    while numbers.len() < 6 {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message")
            .expect("the socket is open")
            .expect("a WebSocket message");
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(message["record"]["value"]["card"], "****", "{message}");
            numbers.push(message["record"]["value"]["n"].as_u64().unwrap());
        }
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (0..6).collect::<Vec<_>>());
    drop(socket);

    // A REST Proxy consumer instance, on the stream's own topic.
    let v2 = |method: &str, path: &str, body: Option<Value>| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = hub
            .http
            .request(method, format!("{}{path}", hub.url))
            .bearer_auth(&app)
            .header(
                "accept",
                "application/vnd.kafka.json.v2+json, application/vnd.kafka.v2+json",
            );
        if let Some(body) = body {
            request = request
                .header("content-type", "application/vnd.kafka.v2+json")
                .body(body.to_string());
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = v2(
        "POST",
        "/consumers/app",
        Some(json!({"name": "r1", "format": "json", "auto.offset.reset": "earliest"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let (status, _) = v2(
        "POST",
        "/consumers/app/instances/r1/subscription",
        Some(json!({"topics": ["orders"]})),
    )
    .await;
    assert_eq!(status, 204);
    let mut read = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read.len() < 6 && std::time::Instant::now() < deadline {
        let (status, batch) = v2(
            "GET",
            "/consumers/app/instances/r1/records?timeout=1000",
            None,
        )
        .await;
        assert_eq!(status, 200, "{batch}");
        read.extend(batch.as_array().unwrap().iter().cloned());
    }
    assert_eq!(read.len(), 6, "{read:?}");
    assert!(
        read.iter().all(|r| r["value"]["card"] == "****"),
        "{read:?}"
    );

    // The schema travels with the contract, under the stream's topic.
    let (status, _) = {
        let response = hub
            .http
            .get(format!(
                "{}/registry/subjects/orders-value/versions/latest",
                hub.url
            ))
            .basic_auth("app", Some(&app))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 200);

    // The partner's AsyncAPI document describes the feeds, on this portal.
    let response = hub
        .http
        .get(format!("{}/v1/partners/initech/asyncapi", hub.url))
        .bearer_auth(&app)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    let violations = freeport_tests::asyncapi_violations(&document);
    assert!(violations.is_empty(), "{violations:#?}\n{document:#}");
    assert_eq!(
        document["servers"]["freeport-sse"]["host"],
        hub.url.trim_start_matches("https://"),
        "{document:#}"
    );
    assert_eq!(
        document["channels"]["ws_orders"]["address"],
        "/v1/streams/orders/events"
    );

    // Revocation closes the open feed.
    let (status, _) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/revoke"),
            &hub.admin_key,
            Some(json!({"reason": "done"})),
        )
        .await;
    assert_eq!(status, 200);
    let closed = loop {
        let event = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .expect("the feed to close")
            .expect("a closing event");
        if event.event != "record" {
            break event;
        }
    };
    assert_eq!(closed.event, "closed", "{closed:?}");
}
