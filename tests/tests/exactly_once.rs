//! Exactly once across crashes: records produced continuously while the
//! link is killed with SIGKILL at random moments all arrive at the partner's
//! broker once each, in order per partition. Two real brokers, no broker
//! transactions (tansu has none).
//!
//! `FREEPORT_KILLS` sets the number of kills (10 by default; the soak script
//! tests/bench/soak-exactly-once.sh runs many more), `FREEPORT_SEED` the
//! random seed (printed, so a failure can be replayed).

use std::collections::BTreeMap;
use std::time::Duration;

use freeport_common::kafka::client_config;
use freeport_tests::{eventually, json, read_topic, Broker, Hub};
use rdkafka::producer::{FutureProducer, FutureRecord};

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

    let logs = tempfile::tempdir().unwrap();
    let owner_cluster = Broker::start("broker-acme", logs.path()).await;
    let partner_cluster = Broker::start("broker-globex", logs.path()).await;
    let mut hub = Hub::start(&[
        ("acme", owner_cluster.bootstrap.as_str()),
        ("globex", partner_cluster.bootstrap.as_str()),
    ])
    .await;
    let owner = hub.org("acme", "internal").await;
    let partner = hub.org("globex", "partner").await;
    let admin = hub.admin_key.clone();
    let (status, _) = hub
        .call(
            "POST",
            "/v1/streams",
            &owner,
            Some(json!({"name": "sequence", "cluster": "acme", "topic": "sequence", "partitions": PARTITIONS, "classification": "partner"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, contract) = hub
        .call(
            "POST",
            "/v1/contracts",
            &partner,
            Some(json!({"stream": "sequence", "purpose": "crash test", "destination": {"cluster": "globex", "topic": "copy"}})),
        )
        .await;
    let id = contract["id"].as_str().unwrap().to_string();
    let (status, _) = hub
        .call("POST", &format!("/v1/contracts/{id}/approve"), &admin, None)
        .await;
    assert_eq!(status, 200);

    // The producer: a numbered sequence, round robin over the partitions,
    // in small batches, for as long as the kills go on.
    let producing = tokio_util::sync::CancellationToken::new();
    let producer: FutureProducer = client_config(&owner_cluster.cluster(), "exactly-once-test")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let stop = producing.clone();
    let writer = tokio::spawn(async move {
        let mut n: u64 = 0;
        while !stop.is_cancelled() {
            let mut batch = Vec::new();
            for _ in 0..20 {
                let value = n.to_string();
                let key = format!("k{n}");
                let record = FutureRecord::to("sequence")
                    .partition((n % PARTITIONS as u64) as i32)
                    .key(&key)
                    .payload(&value);
                batch.push(
                    producer
                        .send_result(record)
                        .map_err(|(e, _)| e)
                        .expect("queue"),
                );
                n += 1;
            }
            for delivery in batch {
                delivery
                    .await
                    .expect("delivery")
                    .map_err(|(e, _)| e)
                    .expect("produce");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n
    });

    for kill in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + random.next(1300))).await;
        hub.link.kill();
        tokio::time::sleep(Duration::from_millis(random.next(300))).await;
        hub.restart_link();
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
                &partner_cluster.bootstrap,
                "copy",
                Duration::from_millis(800),
            )
            .await;
            (found.len() as u64 >= produced).then_some(found)
        },
    )
    .await;
    // Nothing more trickles in afterwards.
    let settled = read_topic(&partner_cluster.bootstrap, "copy", Duration::from_secs(3)).await;
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

    let mut per_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for record in &settled {
        let offset: i64 = record
            .header("freeport.source.offset")
            .unwrap()
            .parse()
            .unwrap();
        let value: u64 = std::str::from_utf8(record.value.as_deref().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            value % PARTITIONS as u64,
            record.partition as u64,
            "record {value} in the wrong partition"
        );
        per_partition
            .entry(record.partition)
            .or_default()
            .push((offset, value));
    }
    for (partition, records) in &per_partition {
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition}: every source offset once, in order"
        );
        let values: Vec<u64> = records.iter().map(|(_, v)| *v).collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "partition {partition}: values out of order"
        );
    }
    hub.catalog.assert_running();
}
