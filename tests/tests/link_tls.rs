//! The partner's cluster speaks only mutual TLS: a TLS front that requires a
//! client certificate signed by the partner's CA stands before its broker.
//! With the right certificate the link mirrors through it; with a wrong one
//! it reports a clear error, stays up and retries with backoff, not in a
//! busy loop; given the right files back it recovers by itself, and every
//! record arrives once.

use std::time::Duration;

use freeport_common::tls::DevPki;
use freeport_tests::{assert_exactly_once, eventually, json, read_cluster_topic, Broker, TwoOrgs};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 2;
/// A window to count the link's connection attempts in while it is refused.
const REFUSED_WINDOW: Duration = Duration::from_secs(15);
/// Far above what a retry with backoff makes in the window (librdkafka's own
/// reconnect backoff plus the mirror's doubling restarts: a few dozen), far
/// below a busy retry (thousands).
const MAX_HANDSHAKES_IN_WINDOW: usize = 150;

async fn produce(sandbox: &TwoOrgs, from: u64, to: u64) {
    let producer: FutureProducer =
        freeport_common::kafka::client_config(&sandbox.owner_cluster.cluster(), "tls-test")
            .create()
            .unwrap();
    for n in from..to {
        let value = n.to_string();
        producer
            .send(
                FutureRecord::<str, str>::to("orders")
                    .partition((n % PARTITIONS as u64) as i32)
                    .key(&value)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_mirrors_over_mutual_tls_and_names_a_refused_certificate() {
    let logs = tempfile::tempdir().unwrap();
    let partner_pki = DevPki::ensure(&logs.path().join("partner-pki")).unwrap();
    let stranger_pki = DevPki::ensure(&logs.path().join("stranger-pki")).unwrap();
    let partner = Broker::start_behind_tls("broker-globex", logs.path(), &partner_pki).await;
    let partner_config = partner.cluster();
    let mut sandbox = TwoOrgs::start_with(partner, logs).await;

    // The right certificate: records flow through the TLS front.
    sandbox.stream("orders", PARTITIONS, json!({})).await;
    produce(&sandbox, 0, 50).await;
    let id = sandbox
        .approved_contract("orders", "orders-copy", json!(null))
        .await;
    sandbox.until_active(&id).await;
    let copied = eventually(Duration::from_secs(30), "50 records over TLS", || {
        let partner_config = partner_config.clone();
        async move {
            let copied =
                read_cluster_topic(&partner_config, "orders-copy", Duration::from_secs(1)).await;
            (copied.len() == 50).then_some(copied)
        }
    })
    .await;
    assert_exactly_once(&copied, 50, PARTITIONS);
    let front = sandbox.partner_cluster.front.as_ref().unwrap();
    assert_eq!(front.refused(), 0, "the right certificate was refused");

    // A certificate the partner's CA never signed, in place of the link's.
    let link_files = partner_pki.files_for("link");
    let right_cert = std::fs::read(&link_files.cert).unwrap();
    let right_key = std::fs::read(&link_files.key).unwrap();
    let stranger = stranger_pki.files_for("link");
    std::fs::copy(&stranger.cert, &link_files.cert).unwrap();
    std::fs::copy(&stranger.key, &link_files.key).unwrap();
    sandbox.hub.link.kill();
    sandbox.hub.restart_link();
    let hub_ref = &sandbox.hub;
    produce(&sandbox, 50, 80).await;

    let status = eventually(
        Duration::from_secs(60),
        "the link to report the refusal",
        || async {
            let (_, contract) = hub_ref
                .call(
                    "GET",
                    &format!("/v1/contracts/{id}"),
                    &hub_ref.admin_key,
                    None,
                )
                .await;
            let status = contract["link_status"].as_str().unwrap_or("").to_string();
            status.starts_with("error:").then_some(status)
        },
    )
    .await;
    println!("link status with a wrong certificate: {status}");
    assert!(
        status.contains("cannot reach cluster at localhost:"),
        "the error names the cluster: {status}"
    );
    let front = sandbox.partner_cluster.front.as_ref().unwrap();
    assert!(front.refused() > 0, "the front never refused a handshake");

    // Refused, the link stays up and does not hammer the cluster.
    let before = front.handshakes();
    tokio::time::sleep(REFUSED_WINDOW).await;
    let attempts = front.handshakes() - before;
    println!("handshakes in {REFUSED_WINDOW:?} while refused: {attempts}");
    sandbox.hub.link.assert_running();
    assert!(
        attempts <= MAX_HANDSHAKES_IN_WINDOW,
        "{attempts} handshakes in {REFUSED_WINDOW:?}: a busy retry"
    );

    // The right files again: the link recovers without a restart.
    std::fs::write(&link_files.cert, right_cert).unwrap();
    std::fs::write(&link_files.key, right_key).unwrap();
    sandbox
        .hub
        .until_contract(&id, "link_status", "running")
        .await;
    let copied = eventually(Duration::from_secs(60), "all 80 records over TLS", || {
        let partner_config = partner_config.clone();
        async move {
            let copied =
                read_cluster_topic(&partner_config, "orders-copy", Duration::from_secs(1)).await;
            (copied.len() >= 80).then_some(copied)
        }
    })
    .await;
    assert_exactly_once(&copied, 80, PARTITIONS);
}
