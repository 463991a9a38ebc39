//! The link against the raw hop, on two tansu brokers, in one run:
//!
//! (a) raw hop: produce N records of 1 KiB to broker A and consume them back
//!     from A with rdkafka: the baseline;
//! (b) the link's mirrored throughput: the same N records copied from A to
//!     B by a `freeport link` process, from approval to the last record;
//! (c) end-to-end delay p50/p99 (produce at A to consume at B) at half the
//!     link's rate and at 1,000 records/s, and the link process's CPU use;
//! (d) (b) again on a second hub that traces every record (`[telemetry]`,
//!     sample_ratio 1, spans to an OTLP receiver in this process): the
//!     price of tracing on the link.
//!
//! Run: `cargo build -p freeport && cargo bench -p freeport-tests --bench link`
//! (`-- --records N` to change N, default 50,000).

use std::time::{Duration, Instant};

use freeport_common::kafka::{client_config, ensure_topic};
use freeport_tests::bench::{consume, percentile, rate};
use freeport_tests::otlp::Receiver;
use freeport_tests::{json, Broker, Hub};
use rdkafka::producer::{FutureProducer, FutureRecord};

const VALUE_BYTES: usize = 1024;
const PARTITIONS: usize = 3;

fn producer(bootstrap: &str) -> FutureProducer {
    let cluster = freeport_common::config::ClusterConfig::plaintext(bootstrap);
    client_config(&cluster, "bench-producer")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .create()
        .expect("producer")
}

/// Produces `count` records of 1 KiB round robin over the partitions.
async fn produce(bootstrap: &str, topic: &str, count: usize) -> Duration {
    let producer = producer(bootstrap);
    let value = vec![b'x'; VALUE_BYTES];
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..count {
        let key = i.to_string();
        let mut record = FutureRecord::to(topic)
            .partition((i % PARTITIONS) as i32)
            .key(&key)
            .payload(&value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                // The queue is full: wait for room and try the same record again.
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        if pending.len() == 10_000 {
            for d in pending.drain(..) {
                d.await
                    .expect("delivery")
                    .map_err(|(e, _)| e)
                    .expect("produce");
            }
        }
    }
    for d in pending {
        d.await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("produce");
    }
    started.elapsed()
}

/// The process's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// API keys of the organizations that own the two clusters: `a`, the data
/// owner's, and `b`, the partner's (a sandbox's clusters belong to the
/// organizations of their names).
struct Keys {
    owner: String,
    partner: String,
}

impl Keys {
    async fn create(hub: &Hub) -> Keys {
        Keys {
            owner: hub.org("a", "internal").await,
            partner: hub.org("b", "partner").await,
        }
    }
}

async fn approve(hub: &Hub, keys: &Keys, stream: &str, destination: &str) -> String {
    let (_, contract) = hub
        .call(
            "POST",
            "/v1/contracts",
            &keys.partner,
            Some(json!({"stream": stream, "purpose": "bench", "destination": {"cluster": "b", "topic": destination}})),
        )
        .await;
    let id = contract["id"].as_str().expect("contract id").to_string();
    let (status, _) = hub
        .call(
            "POST",
            &format!("/v1/contracts/{id}/approve"),
            &hub.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 200);
    id
}

/// Registers `stream` (topic of the same name on cluster A) for `owner`.
async fn register(hub: &Hub, owner: &str, stream: &str) {
    let (status, _) = hub
        .call(
            "POST",
            "/v1/streams",
            owner,
            Some(json!({"name": stream, "cluster": "a", "topic": stream, "partitions": PARTITIONS, "classification": "partner"})),
        )
        .await;
    assert_eq!(status, 201);
}

/// Registers `stream` on cluster A for a new owner, produces `count`
/// records to it, then approves a contract into `<stream>-copy` on B and
/// times the copy: (first to last record, approval to last record).
async fn mirror(
    hub: &Hub,
    keys: &Keys,
    (a, b): (&Broker, &Broker),
    stream: &str,
    count: usize,
) -> (Duration, Duration) {
    register(hub, &keys.owner, stream).await;
    produce(&a.bootstrap, stream, count).await;
    // The reader waits on the destination before the link starts, so it
    // sees records as they arrive; it reads three times faster than the
    // link copies, so the link is what it measures.
    let copy = format!("{stream}-copy");
    ensure_topic(&b.cluster(), &copy, PARTITIONS)
        .await
        .expect("topic");
    let bootstrap = b.bootstrap.clone();
    let reading = copy.clone();
    let reader = tokio::task::spawn_blocking(move || {
        consume(&bootstrap, &reading, PARTITIONS, count, false)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    approve(hub, keys, stream, &copy).await;
    let (steady, _) = reader.await.expect("consume");
    (steady, started.elapsed())
}

/// Produces at `per_second` for about ten seconds through the link and
/// reports the delay from produce at A to consume at B, and the link's CPU.
async fn delay(
    hub: &Hub,
    keys: &Keys,
    (a, b): (&Broker, &Broker),
    stream: &str,
    per_second: f64,
    most: usize,
) {
    let id = approve(hub, keys, stream, &format!("{stream}-copy")).await;
    // Measure a running mirror, not its start.
    hub.until_contract(&id, "state", "active").await;
    let total = ((per_second * 10.0) as usize).clamp(1_000, most);
    let bootstrap = b.bootstrap.clone();
    let topic = format!("{stream}-copy");
    let reader =
        tokio::task::spawn_blocking(move || consume(&bootstrap, &topic, PARTITIONS, total, true));
    let link_pid = hub.link.pid();
    let cpu_before = cpu_time(link_pid);
    let started = Instant::now();
    let producer = producer(&a.bootstrap);
    let value = vec![b'x'; VALUE_BYTES];
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let mut next = Instant::now();
    for i in 0..total {
        let key = i.to_string();
        let record = FutureRecord::to(stream)
            .partition((i % PARTITIONS) as i32)
            .key(&key)
            .payload(&value);
        let _ = producer.send_result(record);
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    let (_, mut delays) = reader.await.expect("reader");
    let wall = started.elapsed();
    let cpu = cpu_time(link_pid).saturating_sub(cpu_before);
    delays.sort();
    println!(
        "delay     at {:>6.0} records/s: p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}   link CPU {:>3.0}% of one core",
        per_second,
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1],
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let logs = tempfile::tempdir().expect("temp dir");
        let a = Broker::start("broker-a", logs.path()).await;
        let b = Broker::start("broker-b", logs.path()).await;
        println!("command: cargo bench -p freeport-tests --bench link -- --records {count}");
        println!("{count} records of {VALUE_BYTES} bytes over {PARTITIONS} partitions, two tansu brokers, 2 cores");

        // (a) the raw hop.
        ensure_topic(&a.cluster(), "raw", PARTITIONS).await.expect("topic");
        let produced = produce(&a.bootstrap, "raw", count).await;
        let bootstrap = a.bootstrap.clone();
        let (consumed, _) = tokio::task::spawn_blocking(move || consume(&bootstrap, "raw", PARTITIONS, count, false))
            .await
            .expect("consume");
        // A hop is a produce and a consume: it goes as fast as the slower.
        let raw = rate(count, produced).min(rate(count, consumed));
        println!(
            "raw hop   produce to A {:>8.0} records/s   consume from A {:>8.0} records/s   hop {:>8.0} records/s ({:.1} MiB/s)",
            rate(count, produced),
            rate(count, consumed),
            raw,
            raw * VALUE_BYTES as f64 / 1048576.0
        );

        // (b) the link's mirrored throughput, from approval to the last record.
        let hub = Hub::start(&[("a", a.bootstrap.as_str()), ("b", b.bootstrap.as_str())]).await;
        let keys = Keys::create(&hub).await;
        for stream in ["live", "calm"] {
            register(&hub, &keys.owner, stream).await;
        }
        for topic in ["live-copy", "calm-copy"] {
            ensure_topic(&b.cluster(), topic, PARTITIONS).await.expect("topic");
        }
        let (steady, total) = mirror(&hub, &keys, (&a, &b), "bulk", count).await;
        let linked = rate(count, steady);
        println!(
            "link      mirrored A -> B {:>8.0} records/s ({:.1} MiB/s), first to last record; {:.2?} from approval to the first   link/raw = {:.2}",
            linked,
            linked * VALUE_BYTES as f64 / 1048576.0,
            total.saturating_sub(steady),
            linked / raw
        );

        // (c) delay at half the link's rate, and at a calm 1,000 records/s.
        for (stream, per_second) in [("live", (linked / 2.0).max(1.0)), ("calm", 1_000.0)] {
            delay(&hub, &keys, (&a, &b), stream, per_second, count).await;
        }
        drop(hub);

        // (d) the same copy traced: every record sampled, then one in a
        // hundred (what a busy hub would run with).
        for (stream, ratio) in [("traced", 1.0), ("sampled", 0.01)] {
            let receiver = Receiver::start().await;
            let traced_hub = Hub::start_configured(
                &[("a", a.cluster()), ("b", b.cluster())],
                "",
                &format!("[telemetry]\nendpoint = {:?}\nsample_ratio = {ratio}\n", receiver.endpoint),
            )
            .await;
            let keys = Keys::create(&traced_hub).await;
            let (steady, _) = mirror(&traced_hub, &keys, (&a, &b), stream, count).await;
            let traced = rate(count, steady);
            // Spans leave in batches every 5 s: wait for the last ones.
            tokio::time::sleep(Duration::from_secs(6)).await;
            let name = format!("mirror {stream}");
            let spans = receiver.spans().iter().filter(|s| s.name == name).count();
            println!(
                "traced    mirrored A -> B {:>8.0} records/s ({:.1} MiB/s), sample_ratio {ratio}   traced/untraced = {:.2}; {spans} spans of {count} records reached the collector",
                traced,
                traced * VALUE_BYTES as f64 / 1048576.0,
                traced / linked
            );
        }
    });
}
