//! Consumer-group offset translation between two real brokers. The contract
//! filters records, so source and destination offsets differ; the owner's
//! group `analytics`, named in the contract, commits on the source, and the
//! link commits the translated positions for `analytics` on the partner's
//! cluster: one past the last mirrored record before the group's position,
//! never ahead of what was mirrored, never backwards. A group the contract
//! does not name is left alone.

use std::collections::BTreeMap;
use std::time::Duration;

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::client_config;
use freeport_tests::{eventually, json, read_topic, Record, TwoOrgs};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 2;
const RECORDS: i64 = 40;
/// The link's `offsets::SYNC_INTERVAL`.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);

fn group_client(cluster: &ClusterConfig, group: &str) -> BaseConsumer {
    client_config(cluster, "offset-test")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Commits `positions` (partition → next offset) for `group` on `topic`.
async fn commit(cluster: &ClusterConfig, group: &str, topic: &str, positions: &[(i32, i64)]) {
    let consumer = group_client(cluster, group);
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in positions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync).unwrap())
        .await
        .unwrap();
}

/// The committed positions of `group` on `topic`, by partition.
async fn committed(cluster: &ClusterConfig, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer = group_client(cluster, group);
    let mut tpl = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        tpl.add_partition(topic, partition);
    }
    let found = tokio::task::spawn_blocking(move || {
        consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
    })
    .await
    .unwrap();
    found
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// What the group's positions should read on the destination: one past the
/// last copied record whose source offset is below the position.
fn expected(copied: &[Record], positions: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    positions
        .iter()
        .filter_map(|&(partition, position)| {
            copied
                .iter()
                .filter(|r| r.partition == partition)
                .filter(|r| {
                    let source: i64 = r.header("freeport.source.offset").unwrap().parse().unwrap();
                    source < position
                })
                .map(|r| r.offset + 1)
                .max()
                .map(|offset| (partition, offset))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_follow_to_the_destination_translated() {
    let sandbox = TwoOrgs::start().await;
    sandbox.stream("events", PARTITIONS, json!({})).await;
    let (owner, partner) = (
        sandbox.owner_cluster.cluster(),
        sandbox.partner_cluster.cluster(),
    );
    let producer: FutureProducer = client_config(&owner, "offset-test").create().unwrap();
    for n in 0..RECORDS {
        let value = json!({"n": n, "keep": n % 3 != 0}).to_string();
        producer
            .send(
                FutureRecord::<str, str>::to("events")
                    .partition((n % PARTITIONS as i64) as i32)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let kept = (0..RECORDS).filter(|n| n % 3 != 0).count();
    let id = sandbox
        .approved_contract(
            "events",
            "events-copy",
            json!({
                "row_filter": [{"field": "/keep", "op": "eq", "value": true}],
                "consumer_groups": ["analytics"],
            }),
        )
        .await;
    sandbox.until_active(&id).await;
    let bootstrap = sandbox.partner_cluster.bootstrap.clone();
    let copied = eventually(Duration::from_secs(30), "the kept records", || {
        let bootstrap = bootstrap.clone();
        async move {
            let copied = read_topic(&bootstrap, "events-copy", Duration::from_secs(1)).await;
            (copied.len() == kept).then_some(copied)
        }
    })
    .await;

    // The owner's groups read part of each partition.
    let first = [(0, 12), (1, 7)];
    commit(&owner, "analytics", "events", &first).await;
    commit(&owner, "unnamed", "events", &first).await;
    let want = expected(&copied, &first);
    assert_ne!(
        want,
        first.into_iter().collect::<BTreeMap<_, _>>(),
        "the filter should make destination offsets differ"
    );
    eventually(Duration::from_secs(30), "translated positions", || async {
        (committed(&partner, "analytics", "events-copy").await == want).then_some(())
    })
    .await;
    println!("source positions {first:?} became {want:?} on the destination");
    assert!(
        committed(&partner, "unnamed", "events-copy")
            .await
            .is_empty(),
        "a group the contract does not name was translated"
    );

    // At the end of the source: the end of what was mirrored, not beyond.
    let end = [(0, RECORDS / 2), (1, RECORDS / 2)];
    commit(&owner, "analytics", "events", &end).await;
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| {
            let last = copied
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset)
                .max();
            (p, last.unwrap() + 1)
        })
        .collect();
    eventually(Duration::from_secs(30), "positions at the end", || async {
        (committed(&partner, "analytics", "events-copy").await == ends).then_some(())
    })
    .await;

    // A consumer on the destination went further by itself: not rewound.
    let ahead = [(0, ends[&0] + 5)];
    commit(&partner, "analytics", "events-copy", &ahead).await;
    commit(&owner, "analytics", "events", &first).await;
    tokio::time::sleep(SYNC_INTERVAL * 3).await;
    assert_eq!(
        committed(&partner, "analytics", "events-copy").await[&0],
        ends[&0] + 5,
        "the link moved a group backwards"
    );
}
