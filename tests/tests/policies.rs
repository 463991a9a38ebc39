//! The Cedar policies are loaded at start from the file the config names:
//! a policy added there changes what the running hub allows, and a file
//! that does not parse stops the service from starting, saying why.

use std::process::Command;

use freeport_tests::{freeport_bin, json, Broker, Hub, TwoOrgs, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_decides_with_the_policies_its_config_names() {
    let logs = tempfile::tempdir().unwrap();
    // The built-in policies, plus: no records of partner-class streams
    // leave through the portal.
    let policies = logs.path().join("strict.cedar");
    let mut text = freeport_common::authz::DEFAULT_POLICIES.to_string();
    text.push_str(
        "\nforbid (principal, action == Freeport::Action::\"read_records\", resource)\nwhen { resource.classification == \"partner\" };\n",
    );
    std::fs::write(&policies, text).unwrap();
    let owner_cluster = Broker::start("broker-acme", logs.path()).await;
    let partner_cluster = Broker::start("broker-globex", logs.path()).await;
    let hub = Hub::start_configured(
        &[
            ("acme", owner_cluster.cluster()),
            ("globex", partner_cluster.cluster()),
        ],
        &format!("policies = {policies:?}\n"),
        "",
    )
    .await;
    let sandbox = TwoOrgs::from_parts(owner_cluster, partner_cluster, hub, logs).await;
    sandbox.stream("orders", 1, json!({})).await;
    sandbox
        .stream("ledger", 1, json!({"classification": "public"}))
        .await;
    sandbox
        .active_contract("orders", "orders-copy", Value::Null)
        .await;
    sandbox
        .active_contract("ledger", "ledger-copy", Value::Null)
        .await;

    let feed = |stream: &str| {
        sandbox
            .hub
            .http
            .get(format!("{}/v1/streams/{stream}/events", sandbox.hub.url))
            .bearer_auth(&sandbox.partner)
            .send()
    };
    let refused = feed("orders").await.unwrap();
    assert_eq!(refused.status(), 403, "the added forbid wins");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], 40302, "{body}");
    let allowed = feed("ledger").await.unwrap();
    assert_eq!(
        allowed.status(),
        200,
        "the rest of the policies still permit"
    );
}

#[test]
fn a_policy_file_that_does_not_parse_stops_the_service_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = freeport_common::tls::DevPki::ensure(&dir.path().join("certs")).unwrap();
    let broken = dir.path().join("broken.cedar");
    std::fs::write(&broken, "permit (principal, action, resource) when {").unwrap();
    let files = pki.files_for("portal");
    let config = dir.path().join("freeport.toml");
    std::fs::write(
        &config,
        format!(
            "[portal]\nlisten = \"127.0.0.1:0\"\ncatalog_url = \"https://127.0.0.1:1\"\npolicies = {broken:?}\ntls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n",
            files.ca, files.cert, files.key
        ),
    )
    .unwrap();
    let output = Command::new(freeport_bin())
        .args(["portal", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the portal started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid Cedar policies in") && stderr.contains("broken.cedar"),
        "{stderr}"
    );
}
