//! Exactly once across crashes: records produced continuously while the
//! link is killed with SIGKILL at random moments all arrive at the partner's
//! broker once each, in order per partition. Two real brokers, no broker
//! transactions (tansu has none).
//!
//! `FREEPORT_KILLS` sets the number of kills (10 by default; the soak script
//! tests/bench/soak-exactly-once.sh runs many more), `FREEPORT_SEED` the
//! random seed (printed, so a failure can be replayed).

use std::time::{Duration, Instant};

use freeport_tests::{
    assert_exactly_once, json, produce_sequence, read_topic, sequence_report, TwoOrgs,
};

const PARTITIONS: i32 = 3;

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_arrives_once_and_in_order_across_link_crashes() {
    let kills = env_number("FREEPORT_KILLS", 10);
    let seed = env_number("FREEPORT_SEED", freeport_common::now_ms() as u64);
    println!("exactly-once: {kills} kills, seed {seed} (FREEPORT_SEED={seed} replays it)");
    let mut random = Lcg(seed);

    let mut sandbox = TwoOrgs::start().await;
    sandbox.stream("sequence", PARTITIONS, json!({})).await;
    let contract = sandbox
        .approved_contract("sequence", "copy", json!(null))
        .await;

    // The producer: a numbered sequence, round robin over the partitions,
    // for as long as the kills go on.
    let producing = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(produce_sequence(
        sandbox.owner_cluster.cluster(),
        "sequence".into(),
        PARTITIONS,
        producing.clone(),
    ));

    for kill in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + random.next(1300))).await;
        sandbox.hub.link.kill();
        tokio::time::sleep(Duration::from_millis(random.next(300))).await;
        sandbox.hub.restart_link();
        println!("kill {} of {kills} done", kill + 1);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    producing.cancel();
    let produced = writer.await.unwrap();
    println!("produced {produced} records");

    let deadline = Instant::now() + Duration::from_secs(120);
    let copied = loop {
        let found = read_copy(&sandbox).await;
        if found.len() as u64 >= produced {
            break found;
        }
        if Instant::now() >= deadline {
            let (_, status) = sandbox
                .hub
                .call(
                    "GET",
                    &format!("/v1/contracts/{contract}"),
                    &sandbox.hub.admin_key,
                    None,
                )
                .await;
            let notable = |log: String| -> String {
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("resume"))
                    .collect();
                lines[lines.len().saturating_sub(80)..].join("\n")
            };
            panic!(
                "after 120s {} of {produced} records arrived\n{}contract: {status}\nlink log:\n{}\npartner broker log:\n{}",
                found.len(),
                sequence_report(&found, PARTITIONS),
                notable(sandbox.hub.link.log()),
                notable(sandbox.partner_cluster.process.log()),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Nothing more trickles in afterwards.
    let settled = read_topic(
        &sandbox.partner_cluster.bootstrap,
        "copy",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        settled.len(),
        copied.len(),
        "records still arriving after all were there"
    );
    assert_eq!(
        settled.len() as u64,
        produced,
        "{} copied, {produced} produced",
        settled.len()
    );

    assert_exactly_once(&settled, produced, PARTITIONS);
    sandbox.hub.catalog.assert_running();
}

/// Everything in the partner's `copy` topic now.
async fn read_copy(sandbox: &TwoOrgs) -> Vec<freeport_tests::Record> {
    read_topic(
        &sandbox.partner_cluster.bootstrap,
        "copy",
        Duration::from_millis(800),
    )
    .await
}

/// Sends `values` to partition 0 of `topic` in one batch, each with `headers`
/// plus the provenance of source offset = its position.
async fn one_batch(
    cluster: &freeport_common::config::ClusterConfig,
    topic: &str,
    values: std::ops::Range<u64>,
    contract: Option<&str>,
) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = freeport_common::kafka::client_config(cluster, "batch")
        .set("linger.ms", "200")
        .create()
        .expect("producer");
    let mut sends = vec![];
    for n in values {
        let value = n.to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(contract) = contract {
            headers = headers
                .insert(Header {
                    key: "freeport.contract",
                    value: Some(contract),
                })
                .insert(Header {
                    key: "freeport.source.offset",
                    value: Some(&value),
                });
        }
        let record = FutureRecord::<str, str>::to(topic)
            .partition(0)
            .payload(&value)
            .headers(headers);
        sends.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queue"),
        );
    }
    for send in sends {
        send.await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// The link restarts after copying half of a source batch: it must copy the
/// other half, although a fetch from inside a batch makes tansu skip the rest
/// of it (tests/tansu_quirks.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_inside_a_source_batch_copies_the_rest_of_it() {
    let mut sandbox = TwoOrgs::start().await;
    sandbox.stream("batched", 1, json!({})).await;
    one_batch(&sandbox.owner_cluster.cluster(), "batched", 0..10, None).await;
    let contract = sandbox
        .requested_contract("batched", "copy", json!(null))
        .await;
    // As if a mirror of this contract had copied records 0..=4 and crashed.
    let partner = sandbox.partner_cluster.cluster();
    freeport_common::kafka::ensure_topic(&partner, "copy", 1)
        .await
        .expect("destination topic");
    one_batch(&partner, "copy", 0..5, Some(&contract)).await;

    sandbox.approve(&contract).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let copied = loop {
        let found = read_copy(&sandbox).await;
        if found.len() >= 10 || Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let values: Vec<String> = copied
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    assert_eq!(values, expected, "each source record once, in order");
    sandbox.hub.catalog.assert_running();
}
