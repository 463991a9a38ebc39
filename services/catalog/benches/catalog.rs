//! Catalog throughput and Watch fan-out, in one run:
//!
//! - unary writes and reads per second through gRPC with mutual TLS, beside
//!   the same operations called in process (the baseline: what the catalog
//!   itself costs, without transport);
//! - how long a committed change takes to reach 1,000 Watch subscribers.
//!
//! Run: `cargo bench -p freeport-catalog --bench catalog`
//! (`-- --quick` for a smaller run). Timings depend on the machine; compare
//! the ratios, not the absolute numbers, across machines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freeport_catalog::domain::OrgDetails;
use freeport_catalog::domain::{OrgKind, Principal};
use freeport_catalog::store::{MemoryStore, SledStore, Store};
use freeport_catalog::Catalog;
use freeport_common::config::Clusters;
use freeport_common::names::OrgName;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::tls::{catalog_channel, DevPki};
use pb::catalog_service_client::CatalogServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const CONCURRENCY: usize = 16;

struct Sizes {
    writes: usize,
    reads: usize,
    subscribers: usize,
    fanout_events: usize,
}

fn admin() -> Principal {
    Principal::Admin {
        key_id: "bench".into(),
    }
}

fn admin_pb() -> Option<pb::Principal> {
    Some(pb::Principal {
        role: pb::Role::Admin.into(),
        organization: String::new(),
        key_id: "bench".into(),
        ..Default::default()
    })
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Runs `total` operations split over `CONCURRENCY` tasks.
async fn concurrently<F, Fut>(total: usize, op: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (worker..total).step_by(CONCURRENCY) {
                    op(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("worker");
    }
    started.elapsed()
}

async fn serve(
    store: Arc<dyn Store>,
    pki: &DevPki,
) -> (
    Arc<Catalog>,
    CatalogServiceClient<Channel>,
    CancellationToken,
) {
    let shutdown = CancellationToken::new();
    let catalog = Arc::new(Catalog::new(store, Clusters::new(), shutdown.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls = pki.files_for("catalog").load().expect("tls");
    tokio::spawn(freeport_catalog::serve(
        catalog.clone(),
        listener,
        tls,
        shutdown.clone(),
    ));
    let client_tls = pki.files_for("portal").load().expect("tls");
    let channel = catalog_channel(&format!("https://{addr}"), &client_tls).expect("channel");
    let mut client = CatalogServiceClient::new(channel);
    // Wait for the server to answer.
    while client
        .list_organizations(pb::ListOrganizationsRequest {})
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (catalog, client, shutdown)
}

async fn unary(
    label: &str,
    store: Arc<dyn Store>,
    baseline_store: Arc<dyn Store>,
    pki: &DevPki,
    sizes: &Sizes,
) {
    let (_, client, shutdown) = serve(store, pki).await;
    let baseline = Arc::new(Catalog::new(
        baseline_store,
        Clusters::new(),
        CancellationToken::new(),
    ));

    let direct = {
        let catalog = baseline.clone();
        concurrently(sizes.writes, move |i| {
            let catalog = catalog.clone();
            async move {
                let name = OrgName::parse(format!("org-{i}")).expect("name");
                catalog
                    .create_organization(&admin(), name, OrgKind::Partner, OrgDetails::default())
                    .await
                    .expect("write");
            }
        })
        .await
    };
    let grpc = {
        let client = client.clone();
        concurrently(sizes.writes, move |i| {
            let mut client = client.clone();
            async move {
                client
                    .create_organization(pb::CreateOrganizationRequest {
                        actor: admin_pb(),
                        name: format!("org-{i}"),
                        kind: pb::OrganizationKind::Partner.into(),
                        ..Default::default()
                    })
                    .await
                    .expect("write");
            }
        })
        .await
    };
    println!(
        "{label:<7} writes  in process {:>9.0}/s   gRPC+mTLS {:>9.0}/s   ratio {:.2}",
        per_second(sizes.writes, direct),
        per_second(sizes.writes, grpc),
        direct.as_secs_f64() / grpc.as_secs_f64()
    );

    let direct = {
        let catalog = baseline.clone();
        concurrently(sizes.reads, move |_| {
            let catalog = catalog.clone();
            async move {
                catalog
                    .authenticate("fpk_unknown")
                    .expect_err("unknown key");
            }
        })
        .await
    };
    let grpc = {
        let client = client.clone();
        concurrently(sizes.reads, move |_| {
            let mut client = client.clone();
            async move {
                client
                    .authenticate(pb::AuthenticateRequest {
                        api_key: "fpk_unknown".into(),
                    })
                    .await
                    .expect_err("unknown key");
            }
        })
        .await
    };
    println!(
        "{label:<7} reads   in process {:>9.0}/s   gRPC+mTLS {:>9.0}/s   ratio {:.2}   (Authenticate: one keyed lookup)",
        per_second(sizes.reads, direct),
        per_second(sizes.reads, grpc),
        direct.as_secs_f64() / grpc.as_secs_f64()
    );
    shutdown.cancel();
}

async fn fanout(pki: &DevPki, sizes: &Sizes) {
    let (catalog, client, shutdown) = serve(Arc::new(MemoryStore::default()), pki).await;
    let revision = client
        .clone()
        .list_contracts(pb::ListContractsRequest {})
        .await
        .expect("snapshot")
        .into_inner()
        .revision;
    // Subscribers spread over several connections, as separate portal and
    // link processes would be.
    let channels: Vec<_> = (0..10).map(|_| client.clone()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let mut ready = Vec::new();
    for i in 0..sizes.subscribers {
        let mut client = channels[i % channels.len()].clone();
        let tx = tx.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        tokio::spawn(async move {
            let mut watch = client
                .watch(pb::WatchRequest {
                    after_revision: revision,
                })
                .await
                .expect("watch")
                .into_inner();
            let _ = ready_tx.send(());
            while let Ok(Some(event)) = watch.message().await {
                let _ = tx.send((event.revision, Instant::now()));
            }
        });
    }
    for r in ready {
        r.await.expect("subscriber ready");
    }
    let mut delays = Vec::new();
    for i in 0..sizes.fanout_events {
        let committed = Instant::now();
        let name = OrgName::parse(format!("fan-{i}")).expect("name");
        catalog
            .create_organization(&admin(), name, OrgKind::Partner, OrgDetails::default())
            .await
            .expect("write");
        for _ in 0..sizes.subscribers {
            let (_, at) = rx.recv().await.expect("event");
            delays.push(at - committed);
        }
    }
    delays.sort();
    println!(
        "watch   fan-out to {} subscribers over {} events: p50 {:.2?}  p99 {:.2?}  max {:.2?} (commit to receipt)",
        sizes.subscribers,
        sizes.fanout_events,
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
    shutdown.cancel();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            writes: 500,
            reads: 5_000,
            subscribers: 1_000,
            fanout_events: 5,
        }
    } else {
        Sizes {
            writes: 5_000,
            reads: 50_000,
            subscribers: 1_000,
            fanout_events: 20,
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = DevPki::ensure(&dir.path().join("certs")).expect("pki");
        println!(
            "command: cargo bench -p freeport-catalog --bench catalog{}",
            if quick { " -- --quick" } else { "" }
        );
        println!(
            "concurrency: {CONCURRENCY} clients; machine: {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        unary(
            "memory",
            Arc::new(MemoryStore::default()),
            Arc::new(MemoryStore::default()),
            &pki,
            &sizes,
        )
        .await;
        let sled = |name: &str| -> Arc<dyn Store> {
            Arc::new(SledStore::open(dir.path().join(name)).expect("sled"))
        };
        unary("sled", sled("served"), sled("baseline"), &pki, &sizes).await;
        fanout(&pki, &sizes).await;
    });
}
