//! `freeport up`: the whole hub in one process, for development.
//!
//! Embedded defaults: sled in the data folder, a development CA and service
//! certificates generated there on first start, and, unless clusters are
//! given, two in-process librdkafka mock clusters standing in for the
//! owner's cluster (`local-a`) and the partner's (`local-b`). The services
//! still talk gRPC over mutual TLS to each other, as in production.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use freeport_catalog::domain::OrgDetails;
use freeport_catalog::domain::{OrgKind, Principal, Role};
use freeport_catalog::{Catalog, CatalogConfig};
use freeport_common::config::{ClusterConfig, Clusters, Secret};
use freeport_common::kafka::register_topic_creator;
use freeport_common::names::{ClusterName, OrgName};
use freeport_common::proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use freeport_common::telemetry::{Telemetry, TelemetryConfig};
use freeport_common::tls::{catalog_channel, write_file, DevPki};
use freeport_portal::PortalConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const OWNER_ORG: &str = "local-a";
pub const PARTNER_ORG: &str = "local-b";
const CREDENTIALS_FILE: &str = "dev-credentials.json";

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the catalog's data, certificates and dev credentials live.
    #[arg(long, default_value = "freeport-data")]
    data_dir: PathBuf,
    /// Address of the portal's HTTP listener (plain HTTP: development mode).
    #[arg(long, default_value = "127.0.0.1:8080")]
    portal_addr: SocketAddr,
    /// A real Kafka cluster as NAME=BOOTSTRAP, repeatable, owned by the
    /// organization of the same name (local-a and local-b exist). Without
    /// any, two in-process mock clusters named local-a and local-b are
    /// started.
    #[arg(long = "cluster", value_name = "NAME=BOOTSTRAP")]
    clusters: Vec<String>,
    /// Where to serve the portal's `/livez`, `/readyz` and `/metrics`
    /// (plain HTTP). None when absent.
    #[arg(long)]
    ops_addr: Option<SocketAddr>,
    /// An OTLP/HTTP collector (`http://localhost:4318`, say) to send the
    /// hub's spans to. None recorded when absent.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The official AsyncAPI 3.0 JSON Schema (`schemas/3.0.0-without-$id.json`
    /// of the `@asyncapi/specs` npm package); enables `POST /v1/asyncapi`.
    #[arg(long, env = "FREEPORT_ASYNCAPI_SCHEMA")]
    asyncapi_schema: Option<PathBuf>,
}

fn clusters(args: &UpArgs) -> anyhow::Result<Clusters> {
    if args.clusters.is_empty() {
        return start_mock_clusters();
    }
    let mut clusters = Clusters::new();
    for spec in &args.clusters {
        let (name, bootstrap) = spec
            .split_once('=')
            .with_context(|| format!("--cluster {spec:?}: expected NAME=BOOTSTRAP"))?;
        clusters.insert(
            ClusterName::parse(name)?,
            ClusterConfig::owned_by(OrgName::parse(name)?, bootstrap),
        );
    }
    Ok(clusters)
}

/// A request to the thread that owns the mock clusters.
type CreateTopic = (
    String,
    String,
    i32,
    std::sync::mpsc::Sender<Result<(), String>>,
);

/// Starts the two mock clusters on a thread of their own (a librdkafka mock
/// cluster cannot move between threads) that lives as long as the process,
/// and routes topic creation on them to that thread.
fn start_mock_clusters() -> anyhow::Result<Clusters> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (create_tx, create_rx) = std::sync::mpsc::channel::<CreateTopic>();
    std::thread::Builder::new()
        .name("mock-clusters".into())
        .spawn(move || {
            let mut mocks = Vec::new();
            for _ in 0..2 {
                match MockCluster::<DefaultProducerContext>::new(1) {
                    Ok(mock) => mocks.push(mock),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
            let _ = ready_tx.send(Ok(mocks
                .iter()
                .map(MockCluster::bootstrap_servers)
                .collect::<Vec<_>>()));
            for (bootstrap, topic, partitions, reply) in create_rx {
                let result = match mocks.iter().find(|m| m.bootstrap_servers() == bootstrap) {
                    Some(mock) => mock
                        .create_topic(&topic, partitions, 1)
                        .map_err(|e| e.to_string()),
                    None => Err(format!("no mock cluster at {bootstrap}")),
                };
                let _ = reply.send(result);
            }
        })?;
    let bootstraps = ready_rx
        .recv()?
        .map_err(|e| anyhow::anyhow!("cannot start a librdkafka mock cluster: {e}"))?;
    let create_tx = std::sync::Mutex::new(create_tx);
    let create_tx = std::sync::Arc::new(create_tx);
    let mut clusters = Clusters::new();
    for ((name, role), bootstrap) in [
        (OWNER_ORG, "the owner's cluster"),
        (PARTNER_ORG, "the partner's cluster"),
    ]
    .into_iter()
    .zip(bootstraps)
    {
        let sender = create_tx.clone();
        let at = bootstrap.clone();
        register_topic_creator(
            &bootstrap,
            std::sync::Arc::new(move |topic: &str, partitions: i32| {
                let (reply_tx, reply_rx) = std::sync::mpsc::channel();
                sender
                    .lock()
                    .map_err(|_| "mock cluster thread is gone".to_string())?
                    .send((at.clone(), topic.to_string(), partitions, reply_tx))
                    .map_err(|_| "mock cluster thread is gone".to_string())?;
                reply_rx
                    .recv()
                    .map_err(|_| "mock cluster thread is gone".to_string())?
            }),
        );
        clusters.insert(
            ClusterName::parse(name)?,
            ClusterConfig {
                description: format!(
                    "in-process librdkafka MOCK cluster standing in for {role}; data lives in memory only"
                ),
                ..ClusterConfig::owned_by(OrgName::parse(name)?, bootstrap)
            },
        );
    }
    Ok(clusters)
}

/// Creates the development organizations and keys on first start and writes
/// the keys to `dev-credentials.json`; later starts reuse the file.
/// Waits (up to 30 s) until the portal at `addr` answers an admin's
/// `GET /v1/me` with 200, which it does once it has loaded the catalog.
async fn portal_answers(addr: SocketAddr, credentials: &Path) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = std::fs::read(credentials)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c["admin"].as_str().map(str::to_string))
        .unwrap_or_default();
    let request = format!(
        "GET /v1/me HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let answer = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await.ok()?;
            Some(head)
        };
        if answer.await.is_some_and(|head| head.ends_with(b" 200")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tracing::warn!(%addr, "the portal does not answer yet; carrying on");
}

async fn ensure_credentials(catalog: &Catalog, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(CREDENTIALS_FILE);
    if path.exists() {
        return Ok(path);
    }
    let setup = Principal::Admin {
        key_id: "freeport-up".into(),
    };
    let known = catalog.list_organizations()?;
    for (name, display) in [
        (OWNER_ORG, "Local A (data owner)"),
        (PARTNER_ORG, "Local B (partner)"),
    ] {
        let org = OrgName::parse(name)?;
        if !known.iter().any(|o| o.name == org) {
            let kind = if name == OWNER_ORG {
                OrgKind::Internal
            } else {
                OrgKind::Partner
            };
            catalog
                .create_organization(
                    &setup,
                    org,
                    kind,
                    OrgDetails {
                        display_name: display.into(),
                        ..Default::default()
                    },
                )
                .await?;
        }
    }
    let (_, admin) = catalog
        .create_api_key(&setup, Role::Admin, None, Default::default())
        .await?;
    let (_, owner) = catalog
        .create_api_key(
            &setup,
            Role::Member,
            Some(OrgName::parse(OWNER_ORG)?),
            Default::default(),
        )
        .await?;
    let (_, partner) = catalog
        .create_api_key(
            &setup,
            Role::Member,
            Some(OrgName::parse(PARTNER_ORG)?),
            Default::default(),
        )
        .await?;
    let credentials = serde_json::json!({"admin": admin, "owner": owner, "partner": partner});
    let text = serde_json::to_string_pretty(&credentials)?;
    write_file(&path, text.as_bytes(), true)?;
    Ok(path)
}

/// The link's key for hashed fields, created once and kept in the data
/// folder (readable by its owner only), so hashes stay stable across restarts.
fn ensure_hash_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("link-hash-key");
    if !path.exists() {
        let key = hex::encode(rand::random::<[u8; 32]>());
        write_file(&path, key.as_bytes(), true)?;
    }
    Ok(std::fs::read(&path)?)
}

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let pki = DevPki::ensure(&data_dir.join("certs"))?;
    let clusters = clusters(&args)?;
    let telemetry = args
        .otlp_endpoint
        .as_ref()
        .map(TelemetryConfig::for_endpoint);
    if let Some(config) = &telemetry {
        let mut problems = freeport_common::config::Problems::default();
        config.validate(&mut problems);
        if !problems.is_empty() {
            anyhow::bail!("--otlp-endpoint: {}", problems.0.join("; "));
        }
    }
    let telemetry = Telemetry::start(telemetry.as_ref(), "freeport")?;

    let catalog_listener = TcpListener::bind("127.0.0.1:0").await?;
    let catalog_addr = catalog_listener.local_addr()?;
    let catalog_url = format!("https://{catalog_addr}");
    let catalog_config = CatalogConfig {
        policies: None,
        listen: catalog_addr,
        store: format!("sled://{}", data_dir.join("catalog").display()),
        tls: pki.files_for("catalog"),
        asyncapi_schema: args.asyncapi_schema.clone(),
        ops_listen: None,
        ops_connections: Default::default(),
        link_lease_secs: 10,
    };
    let mut catalog = freeport_catalog::build(&catalog_config, clusters.clone(), shutdown.clone())?;
    // The only link is this process's own, started below: nothing can hold
    // a contract from before, so there is no first lease to wait out.
    catalog.set_link_lease(std::time::Duration::from_secs(10), true);
    let catalog = std::sync::Arc::new(catalog);
    let credentials = ensure_credentials(&catalog, &data_dir).await?;

    let portal_listener = TcpListener::bind(args.portal_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.portal_addr))?;
    let portal_config = PortalConfig {
        listen: args.portal_addr,
        catalog_url: catalog_url.clone(),
        tls: pki.files_for("portal"),
        dev_mode: true,
        hash_key: Some(Secret::new(String::from_utf8_lossy(&ensure_hash_key(
            &data_dir,
        )?))),
        max_body_bytes: 1024 * 1024,
        consumer_idle_secs: 300,
        contract_requests_per_second: 50,
        request_timeout_secs: 30,
        policies: None,
        client_ca: None,
        client_crl: None,
        view_max_staleness_secs: 300,
        ops_listen: args.ops_addr,
        ops_connections: Default::default(),
        connections: Default::default(),
    };

    let mut tasks = tokio::task::JoinSet::new();
    let catalog_tls = catalog_config.tls.load()?;
    let token = shutdown.clone();
    tasks.spawn(async move {
        freeport_catalog::serve(catalog, catalog_listener, catalog_tls, token)
            .await
            .context("catalog")
    });
    let link_tls = pki.files_for("link").load()?;
    let link = freeport_link::Link::new(
        CatalogServiceClient::new(catalog_channel(&catalog_url, &link_tls)?)
            .max_decoding_message_size(freeport_common::tls::CATALOG_ANSWER_BYTES),
        clusters.clone(),
        Some(ensure_hash_key(&data_dir)?),
    );
    let token = shutdown.clone();
    tasks.spawn(async move {
        link.run(token).await;
        Ok(())
    });
    let portal_tls = portal_config.tls.load()?;
    let token = shutdown.clone();
    let portal_clusters = clusters.clone();
    tasks.spawn(async move {
        freeport_portal::serve(
            &portal_config,
            portal_clusters,
            portal_listener,
            portal_tls,
            token,
        )
        .await
        .context("portal")
    });

    // "Up" means the portal answers from the catalog: a command pasted
    // right after this line must not meet its "loading the catalog" 503.
    portal_answers(args.portal_addr, &credentials).await;
    println!("Freeport is up (development mode: plain HTTP on loopback, generated certificates).");
    println!("  portal:      http://{}", args.portal_addr);
    println!("  catalog:     {catalog_url} (gRPC, mutual TLS)");
    for (name, cluster) in &clusters {
        let note = if cluster.description.is_empty() {
            String::new()
        } else {
            format!("  [{}]", cluster.description)
        };
        println!("  cluster {name}: {}{note}", cluster.bootstrap);
    }
    println!(
        "  credentials: {} (admin; owner = org {OWNER_ORG}; partner = org {PARTNER_ORG})",
        credentials.display()
    );
    if let Some(addr) = args.ops_addr {
        println!("  operations:  http://{addr}/readyz, http://{addr}/metrics (portal)");
    }
    if let Some(endpoint) = &args.otlp_endpoint {
        println!("  traces:      OTLP/HTTP to {endpoint}");
    }
    println!("  data:        {}", data_dir.display());

    // The first service to fail takes the others down with it.
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "service failed; stopping");
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
        shutdown.cancel();
    }
    telemetry.shutdown().await;
    outcome
}
