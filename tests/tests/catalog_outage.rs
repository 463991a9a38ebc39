//! The data plane rides out a catalog outage: with the catalog killed for
//! 30 s, a portal (a process, on tansu) goes on taking produce requests and
//! pushing records from the view of the catalog it holds; nothing is lost
//! or refused. `/readyz` says the view is stale and since when, and
//! control-plane writes are 503 until the catalog is back.

use std::time::{Duration, Instant};

use freeport_tests::{eventually, json, read_topic, SseReader, TwoOrgs, Value};

const OUTAGE: Duration = Duration::from_secs(30);

/// The portal's `catalog_view` readiness check.
async fn view_check(sandbox: &TwoOrgs) -> Value {
    let readyz: Value = sandbox
        .hub
        .ops_get("portal", "/readyz", false)
        .await
        .json()
        .await
        .expect("readyz JSON");
    readyz["checks"]["catalog_view"].clone()
}

/// A control-plane write: the owner registers stream `later`.
async fn register_later(sandbox: &TwoOrgs) -> (u16, Value) {
    sandbox
        .hub
        .call(
            "POST",
            "/v1/streams",
            &sandbox.owner,
            Some(json!({"name": "later", "cluster": "acme", "topic": "later"})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_push_go_on_while_the_catalog_is_away() {
    let mut sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;
    // A client without a total timeout: the feed outlives the outage.
    let ca = std::fs::read(sandbox.hub.pki().ca_path()).expect("CA");
    let patient = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
        .build()
        .expect("client");
    let response = patient
        .get(format!(
            "{}/v1/streams/orders/events?from=end",
            sandbox.hub.url
        ))
        .bearer_auth(&sandbox.partner)
        .send()
        .await
        .expect("open the feed");
    assert_eq!(response.status(), 200);
    let mut feed = SseReader::new(response);
    let (status, answer) = sandbox
        .hub
        .produce("orders", &sandbox.owner, json!([{"value": {"n": 0}}]))
        .await;
    assert_eq!(status, 200, "{answer}");

    sandbox.hub.catalog.kill();
    let stopped = Instant::now();
    let mut produced = 1;
    let mut saw_stale = false;
    let mut refused_write = false;
    while stopped.elapsed() < OUTAGE {
        let (status, answer) = sandbox
            .hub
            .produce(
                "orders",
                &sandbox.owner,
                json!([{"value": {"n": produced}}]),
            )
            .await;
        assert_eq!(
            status, 200,
            "produce {produced} without the catalog: {answer}"
        );
        produced += 1;
        if !saw_stale {
            let view = view_check(&sandbox).await;
            saw_stale = view["ok"] == false
                && view["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("stale since"));
        }
        if !refused_write {
            let (status, answer) = register_later(&sandbox).await;
            assert_eq!(
                (status, answer["error_code"].as_u64()),
                (503, Some(50301)),
                "{answer}"
            );
            refused_write = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_stale, "/readyz never said the view was stale");

    // The partner's feed delivered every record, in order, during the outage.
    let mut seen = vec![];
    while seen.len() < produced as usize {
        let event = tokio::time::timeout(Duration::from_secs(20), feed.next())
            .await
            .expect("records keep coming")
            .unwrap_or_else(|| {
                panic!(
                    "the feed stays open; {} seen; portal log:\n{}",
                    seen.len(),
                    sandbox.hub.portal.log()
                )
            });
        assert_eq!(event.event, "record", "{}", event.data);
        let record: Value = serde_json::from_str(&event.data).expect("record");
        seen.push(record["value"]["n"].as_u64().expect("n"));
    }
    assert_eq!(seen, (0..produced).collect::<Vec<_>>());

    // Back: the view is current again, control-plane writes go through,
    // and the owner's topic holds every record once.
    sandbox.hub.restart_catalog();
    eventually(
        Duration::from_secs(30),
        "the view to be current",
        || async { (view_check(&sandbox).await["ok"] == true).then_some(()) },
    )
    .await;
    let (status, answer) = register_later(&sandbox).await;
    assert_eq!(status, 201, "{answer}");
    let records = read_topic(
        &sandbox.owner_cluster.bootstrap,
        "orders",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(records.len() as u64, produced);
    println!("{produced} records produced over HTTP while the catalog was away for {OUTAGE:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_stale_beyond_its_bound_refuses_the_data_plane() {
    let logs = tempfile::tempdir().expect("temp dir");
    let owner = freeport_tests::Broker::start("broker-acme", logs.path()).await;
    let partner = freeport_tests::Broker::start("broker-globex", logs.path()).await;
    let hub = freeport_tests::Hub::start_configured(
        &[("acme", owner.cluster()), ("globex", partner.cluster())],
        "view_max_staleness_secs = 3\n",
        "",
    )
    .await;
    let mut sandbox = TwoOrgs::from_parts(owner, partner, hub, logs).await;
    sandbox.stream("orders", 1, json!({})).await;
    let (status, _) = sandbox
        .hub
        .produce("orders", &sandbox.owner, json!([{"value": {"n": 1}}]))
        .await;
    assert_eq!(status, 200);
    sandbox.hub.catalog.kill();
    eventually(Duration::from_secs(30), "produce to be refused", || async {
        let (status, answer) = sandbox
            .hub
            .produce("orders", &sandbox.owner, json!([{"value": {"n": 2}}]))
            .await;
        (status == 503).then_some(answer)
    })
    .await;
    sandbox.hub.restart_catalog();
    eventually(
        Duration::from_secs(30),
        "produce to be taken again",
        || async {
            let (status, _) = sandbox
                .hub
                .produce("orders", &sandbox.owner, json!([{"value": {"n": 3}}]))
                .await;
            (status == 200).then_some(())
        },
    )
    .await;
}
