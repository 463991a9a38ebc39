//! Exactly once across crashes: records produced continuously while the
//! link is killed with SIGKILL at random moments all arrive at the partner's
//! broker once each, in order per partition. Two real brokers, no broker
//! transactions (tansu has none).
//!
//! `FREEPORT_KILLS` sets the number of kills (10 by default; the soak script
//! tests/bench/soak-exactly-once.sh runs many more), `FREEPORT_SEED` the
//! random seed (printed, so a failure can be replayed).

use std::time::Duration;

use freeport_tests::{
    assert_exactly_once, eventually, json, produce_sequence, read_topic, TwoOrgs,
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
    sandbox
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

    let copied = eventually(
        Duration::from_secs(120),
        "every record to arrive",
        || async {
            let found = read_topic(
                &sandbox.partner_cluster.bootstrap,
                "copy",
                Duration::from_millis(800),
            )
            .await;
            (found.len() as u64 >= produced).then_some(found)
        },
    )
    .await;
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
