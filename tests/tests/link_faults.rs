//! The partner's broker goes away for 30 seconds under load: the link keeps
//! its memory bounded while it cannot deliver, reports the mirror stalled
//! (in the catalog and in its metrics, with the lag growing), and afterwards
//! every record arrives once, in order, and the mirror is running again.
//! The broker is frozen (SIGSTOP), not killed: the test broker keeps its data
//! in memory.

use std::time::{Duration, Instant};

use freeport_tests::{
    assert_exactly_once, eventually, json, metric, produce_sequence, read_topic, signal, TwoOrgs,
};

const PARTITIONS: i32 = 3;
const OUTAGE: Duration = Duration::from_secs(30);
/// Far above what a link holding at most 10,000 small records in flight
/// needs, far below what an unbounded buffer reaches in 30 s.
const MEMORY_BOUND_KIB: u64 = 512 * 1024;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_destination_outage_loses_and_doubles_nothing() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("sequence", PARTITIONS, json!({})).await;
    let id = sandbox
        .approved_contract("sequence", "copy", json!(null))
        .await;
    sandbox.until_active(&id).await;
    let (hub, partner_cluster) = (&sandbox.hub, &sandbox.partner_cluster);

    let producing = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(produce_sequence(
        sandbox.owner_cluster.cluster(),
        "sequence".into(),
        PARTITIONS,
        producing.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The partner's broker stops answering, while records keep coming.
    let broker = partner_cluster.process.pid();
    let link = hub.link.pid();
    signal(broker, "-STOP");
    let started = Instant::now();
    let mut peak = rss_kib(link);
    let contract = format!("contract=\"{id}\"");
    let (mut stalled, mut peak_lag, mut peak_lag_ms) = (None, 0f64, 0f64);
    while started.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        peak = peak.max(rss_kib(link));
        let (_, c) = hub
            .call("GET", &format!("/v1/contracts/{id}"), &hub.admin_key, None)
            .await;
        if let Some(status) = c["link_status"]
            .as_str()
            .filter(|s| s.starts_with("stalled:"))
        {
            stalled.get_or_insert(status.to_string());
        }
        let metrics = hub.link_metrics().await;
        let read = |name| metric(&metrics, name, &[&contract]).unwrap_or(0.0);
        peak_lag = peak_lag.max(read("freeport_link_lag_records"));
        peak_lag_ms = peak_lag_ms.max(read("freeport_link_lag_milliseconds"));
    }
    signal(broker, "-CONT");
    println!("during the outage: {stalled:?}; lag peaked at {peak_lag} records, {peak_lag_ms} ms");
    let stalled = stalled.expect("the mirror was never reported stalled during the outage");
    assert!(stalled.contains("records waiting"), "{stalled}");
    assert!(peak_lag > 0.0, "no lag in records during the outage");
    assert!(
        peak_lag_ms >= 10_000.0,
        "lag in milliseconds never reached the stall time: {peak_lag_ms}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.cancel();
    let produced = writer.await.unwrap();
    println!(
        "produced {produced} records; link resident memory peaked at {peak} KiB during the outage"
    );
    assert!(peak > 0, "could not read the link's memory");
    assert!(
        peak < MEMORY_BOUND_KIB,
        "link memory grew to {peak} KiB during the outage"
    );

    let copied = eventually(
        Duration::from_secs(120),
        "every record to arrive after the outage",
        || async {
            let found = read_topic(
                &partner_cluster.bootstrap,
                "copy",
                Duration::from_millis(800),
            )
            .await;
            (found.len() as u64 >= produced).then_some(found)
        },
    )
    .await;
    let settled = read_topic(&partner_cluster.bootstrap, "copy", Duration::from_secs(3)).await;
    assert_eq!(
        settled.len(),
        copied.len(),
        "records still arriving after all were there"
    );
    assert_exactly_once(&settled, produced, PARTITIONS);
    let (_, c) = hub
        .call("GET", &format!("/v1/contracts/{id}"), &hub.admin_key, None)
        .await;
    assert_eq!(
        c["link_status"], "running",
        "the link is back to running: {c}"
    );
    // Caught up: no lag, the state gauge says running, and every record the
    // destination acknowledged was counted (a crash-free run counts each once).
    let metrics = eventually(Duration::from_secs(30), "the lag to drain", || async {
        let metrics = hub.link_metrics().await;
        (metric(&metrics, "freeport_link_lag_records", &[&contract]) == Some(0.0))
            .then_some(metrics)
    })
    .await;
    let state = |s: &str| {
        metric(
            &metrics,
            "freeport_link_state",
            &[&contract, &format!("state=\"{s}\"")],
        )
    };
    assert_eq!(state("running"), Some(1.0), "{metrics}");
    assert_eq!(state("stalled"), Some(0.0), "{metrics}");
    let records = metric(&metrics, "freeport_link_records_total", &[&contract]).unwrap_or(0.0);
    let bytes = metric(&metrics, "freeport_link_bytes_total", &[&contract]).unwrap_or(0.0);
    println!("metrics after the outage: {records} records, {bytes} bytes acknowledged");
    assert!(
        records > 0.0 && records <= produced as f64,
        "{records} of {produced}"
    );
    assert!(bytes > records, "{bytes} bytes for {records} records");
}
