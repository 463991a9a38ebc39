//! Pins the known quirks of the test broker (tansu 0.6.0), so we notice when
//! a newer version fixes one and the workaround it forced can go:
//!
//! - after a batch of several records the reported end offset is the batch's
//!   first offset + 1, not its last + 1 (consumers still get every record):
//!   this is why `link::mirror::resume_positions` reads on to the real end
//!   instead of trusting `end - 1`, and why `kafka::partition_ends` exists;
//! - topic configs come back empty: treat them as unknown, not as defaults;
//! - a transaction with records cannot commit (no EndTxn): exactly-once in
//!   the link must not depend on destination transactions;
//! - a fetch from an offset inside a batch answers with the batches after it,
//!   skipping the rest of that batch: every reader that resumes mid-partition
//!   starts where `kafka::read_starts` says and drops what comes before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::{client_config, ensure_topic, partition_ends, read_starts, Resume};
use freeport_tests::{read_topic, Broker};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_0_6_quirks_still_hold() {
    let logs = tempfile::tempdir().unwrap();
    let broker = Broker::start("broker", logs.path()).await;
    let cluster = broker.cluster();
    ensure_topic(&cluster, "batch", 1).await.unwrap();

    // One batch of five records.
    let producer: FutureProducer = client_config(&cluster, "quirks")
        .set("linger.ms", "200")
        .create()
        .unwrap();
    let offsets = one_batch(&producer, "batch", 5).await;
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    let consumer: BaseConsumer = client_config(&cluster, "quirks")
        .set("group.id", "quirks")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks("batch", 0, Duration::from_secs(10))
        .unwrap();
    // The records went out in one or a few batches; the reported end falls
    // inside the last one instead of after it.
    assert_eq!(low, 0);
    assert!(
        high < 5,
        "end offset quirk fixed? it now says {high} after records 0..=4; resume_positions may simplify"
    );
    let records = read_topic(&broker.bootstrap, "batch", Duration::from_secs(1)).await;
    assert_eq!(records.len(), 5, "consumers still receive every record");
    // `partition_ends` reads the true end from the records.
    let ends = partition_ends(&cluster, "batch", vec![0]).await.unwrap();
    assert_eq!(ends[&0], (0, 5));

    let admin: AdminClient<DefaultClientContext> =
        client_config(&cluster, "quirks").create().unwrap();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic("batch")], &AdminOptions::new())
        .await
        .unwrap();
    let entries = &described[0].as_ref().unwrap().entries;
    assert!(
        entries.is_empty(),
        "topic configs quirk fixed? got {entries:?}"
    );

    let transactional: FutureProducer = client_config(&cluster, "quirks")
        .set("transactional.id", "quirks-tx")
        .create()
        .unwrap();
    let committed = tokio::task::spawn_blocking(move || {
        transactional.init_transactions(Duration::from_secs(10))?;
        transactional.begin_transaction()?;
        transactional
            .send_result(FutureRecord::<str, str>::to("batch").payload("tx"))
            .map_err(|(e, _)| e)?;
        transactional.flush(Duration::from_secs(10))?;
        transactional.commit_transaction(Duration::from_secs(10))
    })
    .await
    .unwrap();
    let error = committed
        .expect_err("transactions quirk fixed? a transaction committed")
        .to_string();
    assert!(error.contains("EndTxn"), "{error}");
}

/// Sends `count` records to partition 0 of `topic` in one batch; returns
/// their offsets.
async fn one_batch(producer: &FutureProducer, topic: &str, count: usize) -> Vec<i64> {
    let sends: Vec<_> = (0..count)
        .map(|i| {
            producer
                .send_result(
                    FutureRecord::<str, str>::to(topic)
                        .partition(0)
                        .payload("x")
                        .key(&i.to_string()),
                )
                .unwrap()
        })
        .collect();
    let mut offsets = vec![];
    for send in sends {
        offsets.push(send.await.unwrap().unwrap().offset);
    }
    offsets
}

/// The offsets partition 0 of `topic` delivers when read from `start`.
async fn offsets_from(cluster: &ClusterConfig, topic: &str, start: i64) -> Vec<i64> {
    let consumer: BaseConsumer = client_config(cluster, "quirks")
        .set("group.id", "quirks")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Offset(start))
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut offsets = vec![];
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_secs(2) {
            if let Some(message) = consumer.poll(Duration::from_millis(50)) {
                offsets.push(message.unwrap().offset());
                last = Instant::now();
            }
        }
        offsets
    })
    .await
    .unwrap()
}

/// tansu 0.6 answers a fetch from an offset inside a batch with the batches
/// after it: the rest of that batch is skipped. `read_starts` finds where to
/// start instead (a Kafka broker would need no step back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_inside_a_batch_skips_the_rest_of_it_unless_read_starts_says_where_to_begin() {
    let logs = tempfile::tempdir().unwrap();
    let broker = Broker::start("broker", logs.path()).await;
    let cluster = broker.cluster();
    ensure_topic(&cluster, "mid", 1).await.unwrap();
    let producer: FutureProducer = client_config(&cluster, "quirks")
        .set("linger.ms", "200")
        .create()
        .unwrap();
    assert_eq!(
        one_batch(&producer, "mid", 10).await,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(one_batch(&producer, "mid", 1).await, [10]);

    // From inside the batch: 5..=9 skipped, and the next batch delivered
    // over and over (the client keeps asking for 5).
    let from_inside = offsets_from(&cluster, "mid", 5).await;
    assert!(
        !from_inside.is_empty() && from_inside.iter().all(|&offset| offset == 10),
        "fetch-inside-a-batch quirk fixed? reading from 5 gave {from_inside:?}; kafka::read_starts may go"
    );

    let starts = read_starts(&cluster, "mid", HashMap::from([(0, Resume::At(5))]))
        .await
        .unwrap();
    assert_eq!(starts[&0].next, 5);
    let start = starts[&0].fetch_from;
    assert_eq!(start, 0, "the batch's first offset");
    let delivered: Vec<i64> = offsets_from(&cluster, "mid", start)
        .await
        .into_iter()
        .filter(|&offset| offset >= 5)
        .collect();
    assert_eq!(delivered, (5..=10).collect::<Vec<_>>());

    // Resuming right after the last record, or at the very start, needs no
    // probing beyond the partition's bounds.
    assert_eq!(
        read_starts(&cluster, "mid", HashMap::from([(0, Resume::At(0))]))
            .await
            .unwrap()[&0]
            .fetch_from,
        0
    );
    let at_end = read_starts(&cluster, "mid", HashMap::from([(0, Resume::At(11))]))
        .await
        .unwrap()[&0]
        .fetch_from;
    assert!(at_end <= 10, "{at_end}");
    // The end resolves to the partition's end (after the one-record batch).
    let end = read_starts(&cluster, "mid", HashMap::from([(0, Resume::End)]))
        .await
        .unwrap()[&0];
    assert_eq!(end.next, 11);
    assert!(end.fetch_from <= 10, "{end:?}");
}
