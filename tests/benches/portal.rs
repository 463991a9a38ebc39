//! The portal's data plane against raw rdkafka, on tansu, in one run:
//!
//! (a) produce, the baseline: rdkafka sending 1 record and awaiting its
//!     delivery, and sending 100 and awaiting them all, from CLIENTS
//!     concurrent tasks, with the portal's producer settings;
//! (b) the same through the portal's REST Proxy v2 produce (HTTPS, JSON):
//!     1 and 100 records per request from CLIENTS concurrent clients;
//!     records per second and the latency of each request, p50/p99;
//! (e) schemas: 100-record v2 produce to a JSON Schema stream with the
//!     portal checking each record, then with the owner's checking turned
//!     off (validation on/off), and the same records as Avro
//!     (`application/vnd.kafka.avro.v2+json`) and as Protobuf
//!     (`application/vnd.kafka.protobuf.v2+json`), each encoded by the
//!     portal into the Confluent wire format, against them as checked JSON;
//! (c) push: a partner reads every record over SSE from the beginning,
//!     against rdkafka consuming the same topic;
//! (d) the catalog's size: 1-record produce from CATALOG_CLIENTS
//!     connections with the streams registered so far, then again once
//!     10,000 more streams and 1,000 contracts exist (registered over the
//!     catalog's gRPC API); the ratio of the two rates. The same for the
//!     partner listing one stream's contracts (`GET /v1/contracts?stream=`),
//!     whose answer is one contract however many the catalog holds.
//!
//! With `-- --against URL --key KEY --topic TOPIC` it only measures (d)'s
//! 1-record produce against a hub that is already running (`freeport up`,
//! say; `tests/bench/produce-rate.sh` compares two builds that way).
//!
//! Run: `cargo build --release -p freeport && FREEPORT_BIN=target/release/freeport
//! cargo bench -p freeport-tests --bench portal` (`-- --requests N` sets the
//! 1-record requests per client; the 100-record runs make a tenth as many;
//! default 500). Without `FREEPORT_BIN` it runs the debug build, several
//! times slower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freeport_common::kafka::{client_config, ensure_topic};
use freeport_tests::bench::{consume, percentile, rate};
use freeport_tests::{json, TwoOrgs, Value};
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};

const CLIENTS: usize = 8;
/// Connections of the catalog-size runs (d).
const CATALOG_CLIENTS: usize = 32;
const MORE_STREAMS: usize = 10_000;
const MORE_CONTRACTS: usize = 1_000;
/// Idle time before each catalog-size measurement.
const SETTLE: Duration = Duration::from_secs(5);
const PARTITIONS: usize = 3;
const PAD: usize = 200;

/// A record's value: about a quarter of a KiB of JSON.
fn value(n: usize) -> Value {
    json!({"n": n, "pad": "x".repeat(PAD)})
}

/// Runs `per_client` calls of `call` on each of CLIENTS concurrent tasks,
/// after a few unmeasured ones (connections, producer ids, metadata);
/// the whole time and each call's latency, sorted.
async fn clients<F, Fut>(per_client: usize, call: F) -> (Duration, Vec<Duration>)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    clients_of(CLIENTS, per_client, call).await
}

/// [`clients`] on `count` concurrent tasks.
async fn clients_of<F, Fut>(count: usize, per_client: usize, call: F) -> (Duration, Vec<Duration>)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    join_all((0..count).map(|client| {
        let call = call.clone();
        async move {
            for i in 0..3 {
                call(client, i).await;
            }
        }
    }))
    .await;
    let started = Instant::now();
    let tasks = (0..count).map(|client| {
        let call = call.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let at = Instant::now();
                call(client, i).await;
                latencies.push(at.elapsed());
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|l| l.expect("client"))
        .collect();
    let took = started.elapsed();
    latencies.sort();
    (took, latencies)
}

fn report(what: &str, records: usize, took: Duration, latencies: &[Duration]) -> f64 {
    let per_second = rate(records, took);
    println!(
        "{what:<34} {per_second:>9.0} records/s   latency p50 {:>8.2?}  p99 {:>8.2?}",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    );
    per_second
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let batches = (requests / 10).max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(url) = flag("--against") {
        let key = flag("--key").expect("--key KEY");
        let topic = flag("--topic").unwrap_or_else(|| "orders".into());
        runtime.block_on(async move {
            let http = reqwest::Client::new();
            let produce = format!("{url}/topics/{topic}");
            let (took, latencies) = produce_to(
                &http,
                &produce,
                &key,
                one_record(),
                CATALOG_CLIENTS,
                requests,
            )
            .await;
            let produced = report(
                &format!("{produce}, 1 record per request, {CATALOG_CLIENTS} connections"),
                CATALOG_CLIENTS * requests,
                took,
                &latencies,
            );
            // The ceiling, in the same run: an authenticated request that
            // touches no cluster, on the same connections.
            let me = format!("{url}/v1/me");
            let (took, latencies) = get_from(&http, &me, &key, CATALOG_CLIENTS, requests).await;
            let ceiling = report(
                &format!("{me}, {CATALOG_CLIENTS} connections"),
                CATALOG_CLIENTS * requests,
                took,
                &latencies,
            );
            println!("produce / GET /v1/me: {:.2}", produced / ceiling);
        });
        return;
    }
    runtime.block_on(async move {
        let sandbox = TwoOrgs::start().await;
        println!(
            "command: FREEPORT_BIN={} cargo bench -p freeport-tests --bench portal -- --requests {requests}",
            freeport_tests::freeport_bin().display()
        );
        println!(
            "{CLIENTS} concurrent clients; values of ~{} bytes of JSON over {PARTITIONS} partitions; tansu; 2 cores",
            value(0).to_string().len()
        );

        // (a) raw rdkafka, with the portal's producer settings.
        let cluster = sandbox.owner_cluster.cluster();
        ensure_topic(&cluster, "raw", PARTITIONS).await.expect("topic");
        let producer: FutureProducer = client_config(&cluster, "bench-raw")
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .create()
            .expect("producer");
        let payload = Arc::new(value(0).to_string());
        let (p, v) = (producer.clone(), payload.clone());
        let (took, latencies) = clients(requests, move |_, _| {
            let (p, v) = (p.clone(), v.clone());
            async move {
                p.send(FutureRecord::<(), str>::to("raw").payload(v.as_str()), Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| e)
                    .expect("produce");
            }
        })
        .await;
        let raw_one = report("rdkafka, 1 record per send", CLIENTS * requests, took, &latencies);
        let (p, v) = (producer.clone(), payload.clone());
        let (took, latencies) = clients(batches, move |_, _| {
            let (p, v) = (p.clone(), v.clone());
            async move {
                let sent: Vec<_> = (0..100)
                    .map(|_| {
                        p.send_result(FutureRecord::<(), str>::to("raw").payload(v.as_str()))
                            .map_err(|(e, _)| e)
                            .expect("enqueue")
                    })
                    .collect();
                for delivery in sent {
                    delivery.await.expect("delivery").map_err(|(e, _)| e).expect("produce");
                }
            }
        })
        .await;
        let raw_hundred = report("rdkafka, 100 records per send", CLIENTS * batches * 100, took, &latencies);

        // (b) the portal's REST Proxy v2 produce.
        sandbox.stream("bench", PARTITIONS as i32, json!({})).await;
        let url = format!("{}/topics/bench", sandbox.hub.url);
        let mut results = vec![];
        for (per_request, count) in [(1usize, requests), (100, batches)] {
            let body: Arc<String> = Arc::new(
                json!({"records": (0..per_request).map(|n| json!({"value": value(n)})).collect::<Vec<_>>()})
                    .to_string(),
            );
            let (took, latencies) =
                produce_to(&sandbox.hub.http, &url, &sandbox.owner, body, CLIENTS, count).await;
            let what = format!("portal HTTP, {per_request} record(s) per request");
            results.push(report(&what, CLIENTS * count * per_request, took, &latencies));
        }
        println!(
            "portal/rdkafka: 1 per request {:.2}, 100 per request {:.2}",
            results[0] / raw_one,
            results[1] / raw_hundred
        );

        // (e) checking records against the stream's schema, and Avro.
        let records = |n: usize| (0..n).map(|n| json!({"value": value(n)})).collect::<Vec<_>>();
        sandbox
            .stream(
                "bench-json",
                PARTITIONS as i32,
                json!({"schema": {"type": "object", "required": ["n", "pad"], "properties": {
                    "n": {"type": "integer", "minimum": 0}, "pad": {"type": "string", "maxLength": 1000}
                }}}),
            )
            .await;
        let avro = sandbox
            .stream(
                "bench-avro",
                PARTITIONS as i32,
                json!({"schema_format": "avro", "schema": {"type": "record", "name": "Bench", "fields": [
                    {"name": "n", "type": "long"}, {"name": "pad", "type": "string"}
                ]}}),
            )
            .await;
        let proto = sandbox
            .stream(
                "bench-proto",
                PARTITIONS as i32,
                json!({"schema_format": "protobuf", "schema": "syntax = \"proto3\";\nmessage Bench {\n  int64 n = 1;\n  string pad = 2;\n}\n"}),
            )
            .await;
        let first_id = |stream: Value| {
            let hub = &sandbox.hub;
            let owner = &sandbox.owner;
            async move {
                let path = format!("/v1/streams/{}/schemas", stream["name"].as_str().unwrap());
                let (_, versions) = hub.call("GET", &path, owner, None).await;
                versions["versions"][0]["id"].clone()
            }
        };
        let avro_id = first_id(avro).await;
        let proto_id = first_id(proto).await;
        let proto_body = Arc::new(json!({"value_schema_id": proto_id, "records": records(100)}).to_string());
        let proto_url = format!("{}/topics/bench-proto", sandbox.hub.url);
        let json_body = Arc::new(json!({"records": records(100)}).to_string());
        let avro_body = Arc::new(json!({"value_schema_id": avro_id, "records": records(100)}).to_string());
        let json_url = format!("{}/topics/bench-json", sandbox.hub.url);
        let avro_url = format!("{}/topics/bench-avro", sandbox.hub.url);
        let run = |what: String, url: String, body: Arc<String>, content_type: &'static str| {
            let http = sandbox.hub.http.clone();
            let key = sandbox.owner.clone();
            async move {
                let (took, latencies) =
                    produce_as(&http, &url, &key, body, content_type, CLIENTS, batches).await;
                report(&what, CLIENTS * batches * 100, took, &latencies)
            }
        };
        let checked = run("portal HTTP, 100 JSON records per request, checked against a JSON Schema".into(), json_url.clone(), json_body.clone(), JSON_V2).await;
        let avro_rate = run("portal HTTP, 100 Avro records per request, encoded under the stream's schema".into(), avro_url, avro_body, AVRO_V2).await;
        let proto_rate = run("portal HTTP, 100 Protobuf records per request, encoded under the stream's schema".into(), proto_url, proto_body, PROTOBUF_V2).await;
        let (status, _) = sandbox
            .hub
            .call("PUT", "/v1/streams/bench-json/validation", &sandbox.owner, Some(json!({"enabled": false})))
            .await;
        assert_eq!(status, 200);
        // The portal hears of it from the catalog's Watch stream.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let unchecked = run("portal HTTP, 100 JSON records per request, checking off".into(), json_url, json_body, JSON_V2).await;
        println!(
            "schemas: validation on/off {:.2}, Avro/JSON (both checked) {:.2}, Protobuf/JSON {:.2}, checked/rdkafka {:.2}",
            checked / unchecked,
            avro_rate / checked,
            proto_rate / checked,
            checked / raw_hundred
        );

        // (c) push over SSE, once the link has mirrored everything (so it
        // is idle), against rdkafka reading the same topic.
        // Each run also made 3 unmeasured calls per client.
        let total = CLIENTS * (requests + 3 + (batches + 3) * 100);
        sandbox.active_contract("bench", "bench-copy", Value::Null).await;
        let partner = sandbox.partner_cluster.bootstrap.clone();
        tokio::task::spawn_blocking(move || consume(&partner, "bench-copy", PARTITIONS, total, false))
            .await
            .expect("mirrored");
        let owner = sandbox.owner_cluster.bootstrap.clone();
        let (raw_read, _) = tokio::task::spawn_blocking(move || consume(&owner, "bench", PARTITIONS, total, false))
            .await
            .expect("consume");
        let mut reader = sandbox.hub.feed("bench", &sandbox.partner, "").await;
        let mut first = None;
        for _ in 0..total {
            let event = reader.next().await.expect("an event");
            assert_eq!(event.event, "record", "{event:?}");
            first.get_or_insert_with(Instant::now);
        }
        let sse = first.map_or(Duration::ZERO, |f| f.elapsed());
        println!(
            "push: SSE {:>9.0} records/s   rdkafka consume {:>9.0} records/s   SSE/rdkafka {:.2}   ({total} records)",
            rate(total, sse),
            rate(total, raw_read),
            rate(total, sse) / rate(total, raw_read)
        );

        // (d) what a produce costs as the catalog grows. Each measurement
        // starts after the hub has been idle for a few seconds, so the
        // catalog's flushes after a burst of writes are not measured.
        tokio::time::sleep(SETTLE).await;
        let small = produce_rate(&sandbox, requests).await;
        let report_small = format!("portal HTTP, 1 record per request, {CATALOG_CLIENTS} connections, few streams");
        report(&report_small, CATALOG_CLIENTS * requests, small.0, &small.1);
        let listing_small = contracts_of_stream(&sandbox, requests).await;
        report(
            &format!("GET /v1/contracts?stream=bench as the partner, {CATALOG_CLIENTS} connections, few streams"),
            CATALOG_CLIENTS * requests,
            listing_small.0,
            &listing_small.1,
        );
        let registered = Instant::now();
        grow_catalog(&sandbox).await;
        println!(
            "registered {MORE_STREAMS} more streams and {MORE_CONTRACTS} contracts in {:.1?}",
            registered.elapsed()
        );
        tokio::time::sleep(SETTLE).await;
        let large = produce_rate(&sandbox, requests).await;
        let report_large = format!("portal HTTP, 1 record per request, {CATALOG_CLIENTS} connections, {MORE_STREAMS} more streams");
        report(&report_large, CATALOG_CLIENTS * requests, large.0, &large.1);
        println!(
            "catalog size: {:.0} records/s with few streams, {:.0} with {MORE_STREAMS} more and {MORE_CONTRACTS} contracts; large/small = {:.2}",
            rate(CATALOG_CLIENTS * requests, small.0),
            rate(CATALOG_CLIENTS * requests, large.0),
            small.0.as_secs_f64() / large.0.as_secs_f64()
        );
        let listing_large = contracts_of_stream(&sandbox, requests).await;
        report(
            &format!("GET /v1/contracts?stream=bench as the partner, {CATALOG_CLIENTS} connections, {MORE_STREAMS} more streams"),
            CATALOG_CLIENTS * requests,
            listing_large.0,
            &listing_large.1,
        );
        println!(
            "catalog size, listing one stream's contracts: large/small = {:.2}",
            listing_small.0.as_secs_f64() / listing_large.0.as_secs_f64()
        );
    });
}

/// `GET /v1/contracts?stream=bench` as the partner (one contract, however
/// many others the catalog holds) from CATALOG_CLIENTS connections.
async fn contracts_of_stream(sandbox: &TwoOrgs, requests: usize) -> (Duration, Vec<Duration>) {
    let url = format!("{}/v1/contracts?stream=bench", sandbox.hub.url);
    get_from(
        &sandbox.hub.http,
        &url,
        &sandbox.partner,
        CATALOG_CLIENTS,
        requests,
    )
    .await
}

/// The body of a 1-record produce request.
fn one_record() -> Arc<String> {
    Arc::new(json!({"records": [{"value": value(0)}]}).to_string())
}

/// 1-record produce requests to `bench` from CATALOG_CLIENTS connections.
async fn produce_rate(sandbox: &TwoOrgs, requests: usize) -> (Duration, Vec<Duration>) {
    let url = format!("{}/topics/bench", sandbox.hub.url);
    produce_to(
        &sandbox.hub.http,
        &url,
        &sandbox.owner,
        one_record(),
        CATALOG_CLIENTS,
        requests,
    )
    .await
}

const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
const AVRO_V2: &str = "application/vnd.kafka.avro.v2+json";
const PROTOBUF_V2: &str = "application/vnd.kafka.protobuf.v2+json";

/// `requests` REST Proxy v2 produce requests of `body` (JSON records) to
/// `url` as `key` from each of `connections` concurrent clients; every
/// record must land.
async fn produce_to(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: Arc<String>,
    connections: usize,
    requests: usize,
) -> (Duration, Vec<Duration>) {
    produce_as(http, url, key, body, JSON_V2, connections, requests).await
}

/// [`produce_to`] with records in the embedded format `content_type` says.
async fn produce_as(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: Arc<String>,
    content_type: &'static str,
    connections: usize,
    requests: usize,
) -> (Duration, Vec<Duration>) {
    let (http, url) = (http.clone(), url.to_string());
    let post = move || {
        http.post(&url)
            .header("content-type", content_type)
            .body(body.as_str().to_owned())
    };
    timed(post, key, connections, requests).await
}

/// `requests` authenticated GETs of `url` on each of `connections` clients.
async fn get_from(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    connections: usize,
    requests: usize,
) -> (Duration, Vec<Duration>) {
    let (http, url) = (http.clone(), url.to_string());
    timed(move || http.get(&url), key, connections, requests).await
}

/// `requests` requests built by `build`, as `key`, on each of `connections`
/// clients: each must be a 200 whose answer reports no server error.
async fn timed(
    build: impl Fn() -> reqwest::RequestBuilder + Send + Sync + 'static,
    key: &str,
    connections: usize,
    requests: usize,
) -> (Duration, Vec<Duration>) {
    let key = key.to_string();
    clients_of(connections, requests, move |_, _| {
        let request = build().bearer_auth(&key);
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200);
            let answer = response.text().await.expect("answer");
            assert!(!answer.contains("\"error_code\":5"), "{answer}");
        }
    })
    .await
}

/// MORE_STREAMS streams of the owner's (their topics need not exist) and
/// MORE_CONTRACTS requested contracts of the partner's, over the catalog's
/// gRPC API, 16 calls at a time.
async fn grow_catalog(sandbox: &TwoOrgs) {
    use freeport_common::proto::catalog::v1 as pb;
    use futures::StreamExt;
    let tls = sandbox
        .hub
        .pki()
        .files_for("portal")
        .load()
        .expect("portal identity");
    let channel =
        freeport_common::tls::catalog_channel(&sandbox.hub.catalog_url, &tls).expect("channel");
    let client = pb::catalog_service_client::CatalogServiceClient::new(channel);
    let member = |org: &str| pb::Principal {
        role: pb::Role::Member.into(),
        organization: org.into(),
        key_id: "bench".into(),
        ..Default::default()
    };
    futures::stream::iter(0..MORE_STREAMS)
        .for_each_concurrent(16, |n| {
            let mut client = client.clone();
            let actor = member("acme");
            async move {
                client
                    .register_stream(pb::RegisterStreamRequest {
                        actor: Some(actor),
                        stream: Some(pb::Stream {
                            name: format!("grown-{n}"),
                            cluster: "acme".into(),
                            topic: format!("grown-{n}"),
                            partitions: 1,
                            classification: pb::Classification::Partner.into(),
                            ..Default::default()
                        }),
                    })
                    .await
                    .expect("register");
            }
        })
        .await;
    futures::stream::iter(0..MORE_CONTRACTS)
        .for_each_concurrent(16, |n| {
            let mut client = client.clone();
            let actor = member("globex");
            async move {
                client
                    .request_contract(pb::RequestContractRequest {
                        actor: Some(actor),
                        stream: format!("grown-{n}"),
                        purpose: "bench".into(),
                        delivery: pb::DeliveryKind::Kafka.into(),
                        destination: Some(pb::ClusterDestination {
                            cluster: "globex".into(),
                            topic: format!("grown-{n}-copy"),
                        }),
                        terms: None,
                    })
                    .await
                    .expect("request");
            }
        })
        .await;
}
