//! The web UI in a real headless Chromium: a partner signs in, searches the
//! catalog, reads a stream's AsyncAPI, requests access; an admin approves
//! it from the approval queue; the partner sees the contract active.

use std::time::Duration;

use freeport_tests::browser::{Browser, Page};
use freeport_tests::{json, TwoOrgs};

const WAIT: Duration = Duration::from_secs(30);

async fn sign_in(page: &mut Page, url: &str, key: &str) {
    page.goto(&format!("{url}/ui/")).await;
    page.wait_for("document.querySelector('#api-key')", WAIT)
        .await;
    page.eval(&format!(
        "document.querySelector('#api-key').value = {key:?};\
         document.querySelector('#sign-in').requestSubmit(); true"
    ))
    .await;
    page.wait_for("!document.querySelector('#nav').hidden", WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_requests_an_admin_approves_and_the_partner_sees_it_active() {
    let sandbox = TwoOrgs::start().await;
    let hub = &sandbox.hub;
    sandbox
        .stream(
            "orders",
            1,
            json!({
                "title": "Orders", "description": "Orders placed in the web shop",
                "tags": ["sales"],
                "schema": {"type": "object", "properties": {
                    "id": {"type": "integer", "description": "the order's number"},
                    "total": {"type": "number"}}},
            }),
        )
        .await;
    // Catalog text is shown as text, never run as markup.
    sandbox
        .stream(
            "sneaky",
            1,
            json!({"description": "<img src=x onerror=\"document.title='owned'\">"}),
        )
        .await;

    // The UI is served with a strict content security policy.
    let response = hub
        .http
        .get(format!("{}/ui/", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");

    let browser = Browser::start(sandbox.logs.path()).await;
    let mut partner = browser.page().await;
    sign_in(&mut partner, &hub.url, &sandbox.partner).await;
    assert_eq!(
        partner
            .eval("document.querySelector('#whoami').textContent")
            .await,
        "globex"
    );

    // Browse and search.
    partner
        .wait_for(
            "document.querySelector('.stream[data-stream=\"orders\"]')",
            WAIT,
        )
        .await;
    assert_eq!(
        partner
            .eval("document.querySelectorAll('img').length")
            .await,
        0
    );
    assert_ne!(partner.eval("document.title").await, "owned");
    partner
        .eval("document.querySelector('#search').value = 'web shop'; document.querySelector('#search-form').requestSubmit(); true")
        .await;
    partner
        .wait_for(
            "document.querySelectorAll('.stream').length === 1 && document.querySelector('.stream[data-stream=\"orders\"]')",
            WAIT,
        )
        .await;

    // The stream page renders its AsyncAPI readably.
    partner
        .eval("document.querySelector('.stream[data-stream=\"orders\"] a').click(); true")
        .await;
    partner
        .wait_for("document.querySelector('#asyncapi .payload')", WAIT)
        .await;
    let shown = partner
        .eval("document.querySelector('#asyncapi').innerText")
        .await;
    let shown = shown.as_str().unwrap();
    for expected in ["AsyncAPI 3.0.0", "the order's number", "total", "kafka"] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }

    // Request access. Push delivery needs no destination: the fields go.
    assert_eq!(
        partner
            .eval(
                "const d = document.querySelector('#delivery'); d.value = 'push';\
                 d.dispatchEvent(new Event('change'));\
                 const hidden = document.querySelector('#destination').hidden;\
                 d.value = 'kafka'; d.dispatchEvent(new Event('change'));\
                 [hidden, document.querySelector('#destination').hidden]"
            )
            .await,
        json!([true, false])
    );
    partner
        .eval(
            "document.querySelector('#purpose').value = 'fraud analytics';\
             document.querySelector('#destination-cluster').value = 'globex';\
             document.querySelector('#destination-topic').value = 'orders-copy';\
             document.querySelector('#request-form').requestSubmit(); true",
        )
        .await;
    partner
        .wait_for(
            "document.querySelector('tr.contract[data-stream=\"orders\"] .contract-state')?.innerText.trim().toLowerCase() === 'requested'",
            WAIT,
        )
        .await;

    // The admin approves from the queue, in another tab.
    let mut admin = browser.page().await;
    sign_in(&mut admin, &hub.url, &hub.admin_key).await;
    assert!(
        !admin
            .eval("document.querySelector('#nav-approvals').hidden")
            .await
            .as_bool()
            .unwrap(),
        "admins see the approval queue"
    );
    admin.eval("location.hash = '#/approvals'; true").await;
    admin
        .wait_for(
            "document.querySelector('#approval-queue button.approve')",
            WAIT,
        )
        .await;
    assert_eq!(
        admin
            .eval("document.querySelector('#approval-queue tr.contract').dataset.stream")
            .await,
        "orders"
    );
    admin
        .eval("document.querySelector('#approval-queue button.approve').click(); true")
        .await;
    admin
        .wait_for(
            "document.querySelector('#approval-queue').innerText.includes('Nothing waits')",
            WAIT,
        )
        .await;

    // The partner's contract page follows the contract to active.
    partner
        .wait_for(
            "document.querySelector('tr.contract[data-stream=\"orders\"] .contract-state')?.innerText.trim().toLowerCase() === 'active'",
            Duration::from_secs(60),
        )
        .await;
    assert!(partner
        .eval("document.querySelector('#error').hidden")
        .await
        .as_bool()
        .unwrap());
    assert_eq!(
        partner
            .eval("document.querySelector('tr.contract[data-stream=\"orders\"] .contract-delivery').innerText")
            .await,
        "kafka: globex / orders-copy"
    );

    // The partner manages its API keys: issues one (shown once), rotates
    // it, revokes the successor.
    partner.eval("location.hash = '#/keys'; true").await;
    partner
        .wait_for("document.querySelector('#keys tr.key')", WAIT)
        .await;
    partner
        .eval("document.querySelector('#key-name').value = 'dashboard'; document.querySelector('#new-key-form').requestSubmit(); true")
        .await;
    partner
        .wait_for(
            "document.querySelector('#new-key')?.innerText.startsWith('fpk_')",
            WAIT,
        )
        .await;
    let issued = partner
        .eval("document.querySelector('#new-key').innerText")
        .await;
    let issued = issued.as_str().unwrap().to_string();
    assert_eq!(hub.call("GET", "/v1/me", &issued, None).await.0, 200);
    let (_, listed) = hub.call("GET", "/v1/me", &issued, None).await;
    let id = listed["key_id"].as_str().unwrap().to_string();
    partner
        .wait_for(
            &format!("document.querySelector('tr.key[data-key=\"{id}\"] button.rotate')"),
            WAIT,
        )
        .await;
    partner
        .eval(&format!(
            "document.querySelector('tr.key[data-key=\"{id}\"] button.rotate').click(); true"
        ))
        .await;
    partner
        .wait_for(
            &format!("document.querySelector('#new-key')?.innerText.startsWith('fpk_') && document.querySelector('#new-key').innerText !== {issued:?}"),
            WAIT,
        )
        .await;
    let successor = partner
        .eval("document.querySelector('#new-key').innerText")
        .await;
    let successor = successor.as_str().unwrap().to_string();
    let (_, who) = hub.call("GET", "/v1/me", &successor, None).await;
    let successor_id = who["key_id"].as_str().unwrap().to_string();
    partner
        .wait_for(
            &format!("document.querySelector('tr.key[data-key=\"{successor_id}\"] button.revoke')"),
            WAIT,
        )
        .await;
    partner
        .eval(&format!("document.querySelector('tr.key[data-key=\"{successor_id}\"] button.revoke').click(); true"))
        .await;
    partner
        .wait_for(
            &format!("document.querySelector('tr.key[data-key=\"{successor_id}\"] .key-state')?.innerText.trim().toLowerCase() === 'revoked'"),
            WAIT,
        )
        .await;
    let (status, refused) = hub.call("GET", "/v1/me", &successor, None).await;
    assert_eq!(
        (status, refused["error_code"].as_u64()),
        (401, Some(40102)),
        "{refused}"
    );
    // The key the partner signed in with cannot be revoked from its own session.
    assert_eq!(
        partner
            .eval("document.querySelectorAll('#keys tr.key button.revoke').length")
            .await,
        1,
        "only the first issued key is still active and revocable"
    );
}
