//! Credentials can be withdrawn: an API key rotated or revoked, a client
//! certificate revoked by an admin or listed in the portal's CRL file. A
//! withdrawn credential's open push feed closes and its next request is
//! refused (40102) within about a second, on real brokers and the three
//! services as processes.

use std::time::{Duration, Instant};

use freeport_tests::{eventually, json, Hub, SseEvent, SseReader, TwoOrgs, Value};

/// Waits for the feed's `closed` event (records before it are skipped);
/// returns it and how long it took.
async fn closed(feed: &mut SseReader, since: Instant) -> (SseEvent, Duration) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), feed.next())
            .await
            .expect("the feed to close within 20 s")
            .expect("a closed event before the end");
        if event.event == "closed" {
            return (event, since.elapsed());
        }
    }
}

/// GET `path` on `url` with `client`, optionally as `key`.
async fn get(client: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn withdrawn(answer: &(u16, Value), what: &str) {
    assert_eq!(
        (answer.0, answer.1["error_code"].as_u64()),
        (401, Some(40102)),
        "{what}: {}",
        answer.1
    );
}

async fn open_feed(client: &reqwest::Client, base: &str, key: Option<&str>) -> SseReader {
    let mut request = client.get(format!("{base}/v1/streams/orders/events?from=end"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("open the feed");
    assert_eq!(response.status(), 200, "open the feed");
    SseReader::new(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_keys_and_certificates_close_their_feeds_and_are_refused() {
    let mut sandbox = TwoOrgs::start().await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;
    let partner = sandbox.partner.clone();
    let hub = &sandbox.hub;

    // A key of the partner's own, named and listed without its secret.
    let (status, issued) = hub
        .call(
            "POST",
            "/v1/orgs/globex/keys",
            &partner,
            Some(json!({"name": "ci", "expires_in_secs": 3600})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let ci = issued["api_key"]
        .as_str()
        .expect("the key, once")
        .to_string();
    let ci_id = issued["key_id"].as_str().unwrap().to_string();
    let (status, listed) = hub
        .call("GET", "/v1/orgs/globex/keys", &partner, None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == ci_id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(
        (entry["name"].as_str(), entry["state"].as_str()),
        (Some("ci"), Some("active"))
    );
    assert!(entry.get("api_key").is_none() && !listed.to_string().contains(&ci));
    // Another organization's keys are not the owner's business.
    let (status, _) = hub
        .call("GET", "/v1/orgs/globex/keys", &sandbox.owner, None)
        .await;
    assert_eq!(status, 403);

    // Rotation: both keys work during the overlap.
    let (status, rotated) = hub
        .call(
            "POST",
            &format!("/v1/orgs/globex/keys/{ci_id}/rotate"),
            &partner,
            Some(json!({"overlap_secs": 600})),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let next = rotated["api_key"].as_str().unwrap().to_string();
    let next_id = rotated["key_id"].as_str().unwrap().to_string();
    assert_eq!(rotated["key"]["replaces"], ci_id.as_str());
    assert!(rotated["replaced"]["expires_at_ms"].as_i64().is_some());
    for key in [&ci, &next] {
        assert_eq!(hub.call("GET", "/v1/me", key, None).await.0, 200);
    }

    // Revoking the new key closes the feed it opened, and refuses it next.
    let mut feed = open_feed(&hub.http, &hub.url, Some(&next)).await;
    let revoked_at = Instant::now();
    let (status, revoked) = hub
        .call(
            "DELETE",
            &format!("/v1/orgs/globex/keys/{next_id}"),
            &partner,
            Some(json!({"reason": "leaked"})),
        )
        .await;
    assert_eq!(
        (status, revoked["state"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    let (event, took) = closed(&mut feed, revoked_at).await;
    assert!(event.data.contains("was revoked"), "{}", event.data);
    println!("a revoked key's feed closed {took:?} after the revocation");
    withdrawn(
        &hub.call("GET", "/v1/me", &next, None).await,
        "the revoked key",
    );
    // A key sent as HTTP Basic's password (as Schema Registry and REST Proxy
    // clients send `basic.auth.user.info`) is the same key: it works while
    // the key does, and is withdrawn with it.
    let basic = |key: &str| {
        let client = hub.http.clone();
        let url = format!("{}/v1/me", hub.url);
        let key = key.to_string();
        async move {
            let response = client
                .get(url)
                .basic_auth("globex", Some(key))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, me) = basic(&ci).await;
    assert_eq!(
        (status, me["organization"].as_str()),
        (200, Some("globex")),
        "{me}"
    );
    withdrawn(&basic(&next).await, "the revoked key as a Basic password");
    let (status, again) = hub
        .call(
            "DELETE",
            &format!("/v1/orgs/globex/keys/{next_id}"),
            &partner,
            None,
        )
        .await;
    assert_eq!(
        (status, again["error_code"].as_u64()),
        (409, Some(40902)),
        "{again}"
    );
    let (status, unknown) = hub
        .call(
            "DELETE",
            "/v1/orgs/globex/keys/key-000000000000",
            &partner,
            None,
        )
        .await;
    assert_eq!(
        (status, unknown["error_code"].as_u64()),
        (404, Some(40414)),
        "{unknown}"
    );

    // A consumer instance closes with the key that created it.
    let v2 = |method: &str, path: &str, key: &str, body: Option<Value>| {
        let mut request = hub
            .http
            .request(method.parse().unwrap(), format!("{}{path}", hub.url))
            .bearer_auth(key)
            .header("accept", "application/vnd.kafka.v2+json");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/vnd.kafka.v2+json")
                .body(body.to_string());
        }
        async move { request.send().await.expect("an answer").status().as_u16() }
    };
    let status = v2(
        "POST",
        "/consumers/ci",
        &ci,
        Some(json!({"name": "reader", "format": "json"})),
    )
    .await;
    assert_eq!(status, 200);
    let subscription = "/consumers/ci/instances/reader/subscription";
    assert_eq!(
        v2(
            "POST",
            subscription,
            &ci,
            Some(json!({"topics": ["orders"]}))
        )
        .await,
        204
    );
    hub.call(
        "DELETE",
        &format!("/v1/orgs/globex/keys/{ci_id}"),
        &hub.admin_key,
        None,
    )
    .await;
    eventually(Duration::from_secs(10), "the instance to close", || async {
        (v2("GET", subscription, &partner, None).await == 404).then_some(())
    })
    .await;

    // A client certificate an admin revokes.
    let pki = hub.pki();
    let certificate = pki.issue_partner("globex", None).expect("certificate");
    let by_certificate = hub.client_with_certificate(&certificate.cert, &certificate.key);
    assert_eq!(
        get(&by_certificate, &format!("{}/v1/me", hub.url), None)
            .await
            .0,
        200
    );
    let mut feed = open_feed(&by_certificate, &hub.url, None).await;
    let fingerprint = fingerprint(&certificate.cert);
    let revoked_at = Instant::now();
    let (status, revoked) = hub
        .call(
            "POST",
            "/v1/orgs/globex/revoked-certificates",
            &hub.admin_key,
            Some(json!({"fingerprint": fingerprint, "reason": "lost laptop"})),
        )
        .await;
    assert_eq!(status, 201, "{revoked}");
    let (event, took) = closed(&mut feed, revoked_at).await;
    assert!(event.data.contains("was revoked"), "{}", event.data);
    println!("a revoked certificate's feed closed {took:?} after the revocation");
    withdrawn(
        &get(&by_certificate, &format!("{}/v1/me", hub.url), None).await,
        "the revoked certificate",
    );

    // A certificate the portal's CRL file lists, read again as it changes.
    let crl = pki.revoke(&[], 7).expect("an empty CRL");
    let crl_text = crl.display().to_string();
    let second = sandbox.hub.spawn_another_with(
        "portal",
        "portal-crl",
        &[("FREEPORT_PORTAL__CLIENT_CRL", &crl_text)],
    );
    let base = format!("https://localhost:{}", second.listen);
    let hub: &Hub = &sandbox.hub;
    let laptop = pki.issue_partner("globex", None).expect("certificate");
    let by_laptop = hub.client_with_certificate(&laptop.cert, &laptop.key);
    eventually(
        Duration::from_secs(30),
        "the second portal to answer",
        || async {
            let answer = by_laptop.get(format!("{base}/v1/me")).send().await.ok()?;
            (answer.status() == 200).then_some(())
        },
    )
    .await;
    let mut feed = open_feed(&by_laptop, &base, None).await;
    let listed_at = Instant::now();
    pki.revoke(std::slice::from_ref(&laptop.cert), 7)
        .expect("a CRL listing it");
    let (event, took) = closed(&mut feed, listed_at).await;
    assert!(event.data.contains("was revoked"), "{}", event.data);
    println!("a certificate's feed closed {took:?} after the CRL listed it");
    withdrawn(
        &get(&by_laptop, &format!("{base}/v1/me"), None).await,
        "a certificate the CRL lists",
    );
    // A CRL that no longer parses changes nothing: still refused.
    std::fs::write(&crl, "not a CRL").expect("write");
    tokio::time::sleep(Duration::from_secs(2)).await;
    withdrawn(
        &get(&by_laptop, &format!("{base}/v1/me"), None).await,
        "after a broken CRL",
    );
    drop(second);
}

/// The SHA-256 fingerprint of the certificate in a PEM file.
fn fingerprint(path: &std::path::Path) -> String {
    use sha2::Digest;
    let pem = std::fs::read(path).expect("certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    hex::encode(sha2::Sha256::digest(&pem.contents))
}
