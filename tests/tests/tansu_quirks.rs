//! Pins the known quirks of the test broker (tansu 0.6.0), so we notice when
//! a newer version fixes one and the workaround it forced can go:
//!
//! - after a batch of several records the reported end offset is the batch's
//!   first offset + 1, not its last + 1 (consumers still get every record):
//!   this is why `link::mirror::resume_positions` reads on to the real end
//!   instead of trusting `end - 1`;
//! - topic configs come back empty: treat them as unknown, not as defaults;
//! - a transaction with records cannot commit (no EndTxn): exactly-once in
//!   the link must not depend on destination transactions.

use std::time::Duration;

use freeport_common::kafka::{client_config, ensure_topic};
use freeport_tests::{read_topic, Broker};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

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
    let sends: Vec<_> = (0..5)
        .map(|i| {
            producer
                .send_result(
                    FutureRecord::<str, str>::to("batch")
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
