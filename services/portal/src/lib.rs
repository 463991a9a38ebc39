//! Freeport's portal: what partners and admins touch.
//!
//! - [`access`]: every access decision (who is calling, what it may
//!   produce to and read, under which contract), answered from a live,
//!   indexed view of the catalog kept current by its Watch stream.
//! - [`produce`]: the produce path behind both produce APIs: where records
//!   go, checking and encoding them, sending, delivery reports.
//! - [`rest`]: the REST API (discovery, contracts, administration) and the
//!   Kafka REST Proxy v2-compatible produce endpoint.
//! - [`catalog_client`]: the mutual-TLS gRPC client to the catalog, which
//!   holds every rule; the portal only authenticates callers and shapes
//!   requests and answers.
//! - [`extract`]: request extractors that turn malformed input into stable
//!   error codes.

pub mod access;
pub mod catalog_client;
pub mod config;
pub mod consumers;
pub mod credentials;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod produce;
pub mod push;
pub mod rest;
pub mod strict;
pub mod ui;
pub mod validate;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use freeport_common::authz::Authorizer;
use freeport_common::config::{ClusterConfig, Clusters};
use freeport_common::error::ErrorCode;
use freeport_common::kafka::{client_config, partition_count};
use freeport_common::names::ClusterName;
use freeport_common::ops::Ops;
use freeport_common::tls::TlsMaterial;
use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::PortalConfig;

use crate::catalog_client::CatalogClient;
use crate::error::{ApiError, ApiResult};

/// How long a topic's partition count is trusted before asking again.
const PARTITION_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long open requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] freeport_common::tls::TlsError),
    #[error("invalid catalog_url: {0}")]
    CatalogUrl(#[from] tonic::transport::Error),
    #[error("cannot create a Kafka producer for cluster {cluster}: {source}")]
    Producer {
        cluster: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Policies(#[from] freeport_common::authz::PolicyError),
    #[error(transparent)]
    Metrics(#[from] freeport_common::metrics::MetricsError),
    #[error(transparent)]
    Ops(#[from] freeport_common::ops::OpsError),
    #[error(
        "portal.hash_key must be at least {} characters",
        freeport_common::config::MIN_HASH_KEY_CHARS
    )]
    HashKey,
    #[error("portal.client_crl: {0}")]
    Crl(String),
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: CatalogClient,
    clusters: Clusters,
    producers: HashMap<ClusterName, FutureProducer>,
    partitions: Mutex<HashMap<(ClusterName, String), (usize, Instant)>>,
    hash_key: Option<Vec<u8>>,
    /// The largest request body; for streamed bodies, the largest record.
    max_body_bytes: usize,
    /// Every contract change and withdrawn credential the catalog
    /// announces ([`access::AccessView::follow`]), and CRL reloads.
    changes: tokio::sync::broadcast::Sender<credentials::Change>,
    /// The client CRL, as last read.
    crl: credentials::Crl,
    /// Fires when the portal shuts down: open push feeds end.
    shutdown: CancellationToken,
    /// REST Proxy consumer instances.
    consumers: Arc<consumers::Consumers>,
    /// `https`, or `http` in development mode: for the URLs handed out.
    scheme: &'static str,
    limits: Arc<limits::ContractLimits>,
    request_timeout: Duration,
    http_metrics: freeport_common::metrics::HttpMetrics,
    /// The catalog as this portal last heard it, and every access decision.
    view: Arc<access::AccessView>,
    /// Schemas compiled to check and encode produced records.
    record_schemas: Arc<validate::RecordSchemas>,
}

/// How a portal behaves, beyond what it connects to.
#[derive(Debug)]
pub struct Settings {
    pub hash_key: Option<Vec<u8>>,
    pub max_body_bytes: usize,
    pub consumer_idle_timeout: Duration,
    pub dev_mode: bool,
    pub contract_requests_per_second: u32,
    pub request_timeout: Duration,
    pub authz: Authorizer,
    /// Where the portal's instruments record.
    pub meter: opentelemetry::metrics::Meter,
    /// Client certificates revoked by the operator's CRL file.
    pub crl: credentials::Crl,
    /// How long the data plane may act on a view of the catalog it cannot
    /// bring up to date.
    pub view_max_staleness: Duration,
}

impl AppState {
    pub fn new(
        catalog: CatalogClient,
        clusters: Clusters,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<AppState, StartError> {
        let producers = clusters
            .iter()
            .map(|(name, cluster)| {
                let producer = client_config(cluster, "freeport-portal")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "1")
                    .set("message.timeout.ms", "15000")
                    .create()
                    .map_err(|source| StartError::Producer {
                        cluster: name.to_string(),
                        source,
                    })?;
                Ok((name.clone(), producer))
            })
            .collect::<Result<_, StartError>>()?;
        let limits = Arc::new(limits::ContractLimits::new(
            settings.contract_requests_per_second,
        ));
        let consumers = Arc::new(consumers::Consumers::new(settings.consumer_idle_timeout));
        let http_metrics = metrics::register(&settings.meter, limits.clone(), consumers.clone());
        Ok(AppState {
            inner: Arc::new(Inner {
                catalog: catalog.clone(),
                clusters,
                producers,
                partitions: Mutex::new(HashMap::new()),
                hash_key: settings.hash_key,
                max_body_bytes: settings.max_body_bytes,
                consumers,
                http_metrics,
                scheme: if settings.dev_mode { "http" } else { "https" },
                limits,
                request_timeout: settings.request_timeout,
                view: Arc::new(access::AccessView::new(
                    settings.authz,
                    settings.view_max_staleness,
                    catalog.clone(),
                )),
                changes: tokio::sync::broadcast::channel(push::CONTRACT_CHANGES).0,
                crl: settings.crl,
                shutdown,
                record_schemas: Arc::new(validate::RecordSchemas::default()),
            }),
        })
    }

    pub fn consumers(&self) -> &consumers::Consumers {
        &self.inner.consumers
    }

    /// Every access decision, from the portal's view of the catalog.
    pub fn view(&self) -> &Arc<access::AccessView> {
        &self.inner.view
    }

    /// Schemas compiled to check and encode produced records.
    pub fn record_schemas(&self) -> &Arc<validate::RecordSchemas> {
        &self.inner.record_schemas
    }

    pub fn limits(&self) -> &Arc<limits::ContractLimits> {
        &self.inner.limits
    }

    pub fn scheme(&self) -> &'static str {
        self.inner.scheme
    }

    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    pub fn hash_key(&self) -> Option<&[u8]> {
        self.inner.hash_key.as_deref()
    }

    /// Contract changes and withdrawn credentials from now on.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<credentials::Change> {
        self.inner.changes.subscribe()
    }

    /// The client CRL, as last read.
    pub fn crl(&self) -> &credentials::Crl {
        &self.inner.crl
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub fn catalog(&self) -> &CatalogClient {
        &self.inner.catalog
    }

    pub fn clusters(&self) -> &Clusters {
        &self.inner.clusters
    }

    /// The clusters `caller` may use as its own: every one for admins, an
    /// organization's own for its members (where it registers streams and
    /// receives contracts).
    pub fn clusters_of<'a>(
        &'a self,
        caller: &'a extract::Caller,
    ) -> impl Iterator<Item = (&'a ClusterName, &'a ClusterConfig)> + 'a {
        self.clusters().iter().filter(|(_, c)| {
            caller.is_admin() || caller.org().is_some_and(|org| c.is_owned_by(org))
        })
    }

    pub fn cluster(&self, name: &ClusterName) -> ApiResult<&ClusterConfig> {
        self.inner
            .clusters
            .get(name)
            .ok_or_else(|| ApiError::invalid(format!("unknown cluster {:?}", name.as_str())))
    }

    pub fn producer(&self, name: &ClusterName) -> ApiResult<&FutureProducer> {
        self.inner.producers.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ClusterNotFound,
                format!("unknown cluster {:?}", name.as_str()),
            )
        })
    }

    /// The topic's partition count, cached briefly; `None` if it does not exist.
    pub async fn partitions(&self, cluster: &ClusterName, topic: &str) -> ApiResult<Option<usize>> {
        let key = (cluster.clone(), topic.to_string());
        if let Ok(cache) = self.inner.partitions.lock() {
            if let Some((count, at)) = cache.get(&key) {
                if at.elapsed() < PARTITION_CACHE_TTL {
                    return Ok(Some(*count));
                }
            }
        }
        let count = partition_count(self.cluster(cluster)?, topic)
            .await
            .map_err(|e| ApiError::kafka(&format!("cannot read metadata of {topic}"), e))?;
        if let (Some(count), Ok(mut cache)) = (count, self.inner.partitions.lock()) {
            cache.insert(key, (count, Instant::now()));
        }
        Ok(count)
    }
}

/// The whole HTTP application, with body limits and panic containment.
pub fn app(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes();
    let timeout = state.inner.request_timeout;
    let http_metrics = state.inner.http_metrics.clone();
    let app = rest::router(state)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                answer_within(timeout, request, next)
            },
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                axum::response::IntoResponse::into_response(ApiError::new(
                    ErrorCode::Internal,
                    "internal error",
                ))
            },
        ))
        .layer(axum::middleware::from_fn(
            freeport_common::telemetry::http_spans,
        ))
        // Outermost, so refusals by the layers above count too.
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            freeport_common::metrics::HttpMetrics::record,
        ));
    rest::trimming_trailing_slashes(app)
}

/// The handler's answer, or 504 when it takes longer than `timeout`. Only
/// the answer's start is timed: a stream, once started, runs on.
async fn answer_within(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::new(
            ErrorCode::Timeout,
            format!(
                "the request took longer than {} s; try again",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// Runs the portal from its config until `shutdown` fires.
pub async fn run(
    config: PortalConfig,
    clusters: Clusters,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let tls = config.tls.load()?;
    serve(&config, clusters, listener, tls, shutdown).await
}

/// Serves on `listener`: HTTPS with the portal's certificate, or plain HTTP
/// in development mode only.
pub async fn serve(
    config: &PortalConfig,
    clusters: Clusters,
    listener: TcpListener,
    tls: TlsMaterial,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let channel = freeport_common::tls::catalog_channel(&config.catalog_url, &tls)?;
    let hash_key = match &config.hash_key {
        Some(key) => Some(key.hash_key().ok_or(StartError::HashKey)?),
        None => None,
    };
    let catalog = CatalogClient::new(channel.clone());
    let metrics = Arc::new(freeport_common::metrics::Metrics::new("freeport-portal")?);
    let settings = Settings {
        meter: metrics.meter(),
        hash_key,
        max_body_bytes: config.max_body_bytes,
        consumer_idle_timeout: Duration::from_secs(config.consumer_idle_secs),
        dev_mode: config.dev_mode,
        contract_requests_per_second: config.contract_requests_per_second,
        request_timeout: Duration::from_secs(config.request_timeout_secs),
        authz: Authorizer::load(config.policies.as_deref())?,
        crl: credentials::Crl::load(config.client_crl.clone()).map_err(StartError::Crl)?,
        view_max_staleness: Duration::from_secs(config.view_max_staleness_secs),
    };
    let ops = Ops::for_service(metrics, &tls, Some(channel), &clusters, &shutdown);
    let readiness = ops.readiness.clone();
    if let Some(addr) = config.ops_listen {
        let tls = (!config.dev_mode).then_some(&tls);
        freeport_common::ops::start(addr, tls, &config.ops_connections, ops, shutdown.clone())?;
    }
    let state = AppState::new(catalog.clone(), clusters, settings, shutdown.clone())?;
    // Closes every consumer instance at shutdown; awaited before returning
    // so they leave their groups instead of timing out of them.
    let consumers = tokio::spawn(state.inner.consumers.clone().expire_idle(shutdown.clone()));
    tokio::spawn(state.inner.view.clone().follow(
        state.inner.changes.clone(),
        readiness,
        shutdown.clone(),
    ));
    tokio::spawn(
        state
            .inner
            .crl
            .clone()
            .follow(state.inner.changes.clone(), shutdown.clone()),
    );
    tokio::spawn(state.inner.consumers.clone().close_withdrawn(
        state.changes(),
        state.inner.crl.clone(),
        shutdown.clone(),
    ));
    let app = app(state);
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let rustls = if config.dev_mode {
        tracing::warn!(%addr, "portal listening on plain HTTP (development mode)");
        None
    } else {
        let client_ca = match &config.client_ca {
            Some(path) => Some(std::fs::read(path).map_err(|source| {
                freeport_common::tls::TlsError::Read {
                    path: path.clone(),
                    source,
                }
            })?),
            None => None,
        };
        tracing::info!(%addr, "portal listening on HTTPS");
        Some(tls.rustls_https_config(client_ca.as_deref())?)
    };
    freeport_common::http_server::serve(
        listener,
        rustls,
        app,
        &config.connections,
        shutdown,
        SHUTDOWN_GRACE,
    )
    .await;
    let _ = consumers.await;
    Ok(())
}
