//! The operations listener every service runs beside its API (`ops_listen`
//! in its section of the configuration):
//!
//! - `GET /livez`: 200 while the process serves requests at all.
//! - `GET /readyz`: 200 when every readiness check passes, else 503; the
//!   JSON body names each check and why it fails. `?exclude=a,b` leaves
//!   checks out (a probe that should not take a portal out of its load
//!   balancer because one partner's cluster is down, say).
//! - `GET /metrics`: Prometheus text format.
//!
//! It speaks HTTPS with the service's certificate. `/metrics` requires a
//! client certificate signed by the hub's CA (Prometheus:
//! `tls_config { ca_file, cert_file, key_file }`); the probes do not, since
//! Kubernetes' kubelet shows none. In development mode it is plain HTTP.
//!
//! Readiness checks run in the background ([`Readiness::probe`]) every
//! [`PROBE_INTERVAL`], so a probe request never waits on a broker; their
//! results are also the `freeport_check_up{check}` gauge.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures::future::BoxFuture;
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterConfig, Clusters};
use crate::http_server::{ConnectionLimits, PeerCertificate};
use crate::kafka::{explain_failure, metadata_consumer, ErrorRecorder};
use crate::metrics::Metrics;
use crate::tls::TlsMaterial;

/// How often each readiness check runs.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one check may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A topic name no one uses: the cluster probe asks for its metadata, which
/// needs a live broker but not the metadata of every topic.
const PROBE_TOPIC: &str = "__freeport_readiness_probe";

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("invalid TLS material for the operations listener: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot serve operations endpoints on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckState {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The readiness checks of one service and their latest outcomes.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<BTreeMap<String, CheckState>>>,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ready: bool,
    pub checks: BTreeMap<String, CheckState>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Records the outcome of check `name`.
    pub fn set(&self, name: &str, outcome: Result<(), String>) {
        let state = match outcome {
            Ok(()) => CheckState {
                ok: true,
                error: None,
            },
            Err(error) => CheckState {
                ok: false,
                error: Some(error),
            },
        };
        if let Ok(mut checks) = self.checks.write() {
            if checks.get(name) != Some(&state) {
                match &state.error {
                    None => tracing::info!(check = name, "readiness check passes"),
                    Some(error) => tracing::warn!(check = name, %error, "readiness check fails"),
                }
            }
            checks.insert(name.to_string(), state);
        }
    }

    /// Runs `probe` now and every [`PROBE_INTERVAL`] until `shutdown`,
    /// recording its outcome as check `name`. Failing until it first passes.
    pub fn probe<F, Fut>(&self, name: impl Into<String>, shutdown: CancellationToken, mut probe: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let name = name.into();
        self.set(&name, Err("not checked yet".to_string()));
        let readiness = self.clone();
        tokio::spawn(async move {
            loop {
                let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!(
                        "no answer within {} s",
                        PROBE_TIMEOUT.as_secs_f64()
                    )),
                };
                readiness.set(&name, outcome);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(PROBE_INTERVAL) => {}
                }
            }
        });
    }

    /// Every check but those in `exclude`; ready when all of them pass.
    pub fn report(&self, exclude: &[&str]) -> Report {
        let checks: BTreeMap<String, CheckState> = self
            .checks
            .read()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|(name, _)| !exclude.contains(&name.as_str()))
                    .map(|(name, state)| (name.clone(), state.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Report {
            ready: checks.values().all(|check| check.ok),
            checks,
        }
    }

    /// `freeport_check_up{check}`: 1 while the check passes, 0 otherwise.
    pub fn register_gauge(&self, meter: &Meter) {
        let readiness = self.clone();
        meter
            .u64_observable_gauge("freeport_check_up")
            .with_description("1 while the readiness check passes, 0 while it fails")
            .with_callback(move |observer| {
                for (name, state) in readiness.report(&[]).checks {
                    observer.observe(u64::from(state.ok), &[KeyValue::new("check", name)]);
                }
            })
            .build();
    }
}

/// The readiness check name of a cluster.
pub fn cluster_check(name: &str) -> String {
    format!("cluster:{name}")
}

/// A probe that passes while a broker of `cluster` answers a metadata
/// request. It keeps one client, so a passing probe opens no connection.
pub fn cluster_probe(
    cluster: ClusterConfig,
) -> impl FnMut() -> BoxFuture<'static, Result<(), String>> + Send + 'static {
    let mut client: Option<Arc<BaseConsumer<ErrorRecorder>>> = None;
    move || {
        let consumer = match &client {
            Some(consumer) => Ok(consumer.clone()),
            None => metadata_consumer(&cluster).map(Arc::new),
        };
        let consumer = match consumer {
            Ok(consumer) => {
                client = Some(consumer.clone());
                consumer
            }
            Err(e) => {
                let error = format!("cannot create a Kafka client: {e}");
                return Box::pin(async move { Err(error) });
            }
        };
        let cluster = cluster.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                consumer.context().clear();
                match consumer.fetch_metadata(Some(PROBE_TOPIC), PROBE_TIMEOUT) {
                    Ok(metadata) if metadata.brokers().is_empty() => {
                        Err("the cluster names no brokers".to_string())
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(explain_failure(&consumer, &cluster, e).to_string()),
                }
            })
            .await
            .unwrap_or_else(|e| Err(format!("probe failed: {e}")))
        })
    }
}

/// The readiness check name of the catalog, for the services that use it.
pub const CATALOG_CHECK: &str = "catalog";

/// The gRPC health service name of the catalog's API.
pub const CATALOG_SERVICE: &str = "freeport.catalog.v1.CatalogService";

/// A probe that passes while the catalog answers gRPC health checks with
/// SERVING.
pub fn catalog_probe(
    channel: tonic::transport::Channel,
) -> impl FnMut() -> BoxFuture<'static, Result<(), String>> + Send + 'static {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    move || {
        let mut client = HealthClient::new(channel.clone());
        Box::pin(async move {
            let answer = client
                .check(HealthCheckRequest {
                    service: CATALOG_SERVICE.to_string(),
                })
                .await
                .map_err(|status| format!("unreachable: {}", status.message()))?;
            match answer.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(format!("answers {}", other.as_str_name())),
            }
        })
    }
}

/// What the operations endpoints read.
#[derive(Clone)]
pub struct Ops {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// Whether `/metrics` wants a client certificate (not in development mode).
    require_client_certificate: bool,
}

impl Ops {
    pub fn new(metrics: Arc<Metrics>, readiness: Readiness) -> Ops {
        readiness.register_gauge(&metrics.meter());
        Ops {
            metrics,
            readiness,
            require_client_certificate: true,
        }
    }

    /// What every service watches: the expiry of its certificate, its CA and
    /// its cluster client certificates; the reachability of the catalog
    /// (for the services that call it) and of every configured cluster.
    pub fn for_service(
        metrics: Arc<Metrics>,
        tls: &TlsMaterial,
        catalog: Option<tonic::transport::Channel>,
        clusters: &Clusters,
        shutdown: &CancellationToken,
    ) -> Ops {
        let mut certificates = vec![
            ("service".to_string(), tls.cert_pem.clone()),
            ("ca".to_string(), tls.ca_pem.clone()),
        ];
        for (name, cluster) in clusters {
            if let Some(pem) = cluster
                .tls
                .as_ref()
                .and_then(|t| std::fs::read(&t.cert).ok())
            {
                certificates.push((cluster_check(name.as_str()), pem));
            }
        }
        metrics.certificate_expiry(certificates);
        let readiness = Readiness::new();
        if let Some(channel) = catalog {
            readiness.probe(CATALOG_CHECK, shutdown.clone(), catalog_probe(channel));
        }
        for (name, cluster) in clusters {
            readiness.probe(
                cluster_check(name.as_str()),
                shutdown.clone(),
                cluster_probe(cluster.clone()),
            );
        }
        Ops::new(metrics, readiness)
    }
}

/// The operations routes, for a listener of the caller's choosing.
pub fn router(ops: Ops) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .with_state(ops)
}

async fn readyz(State(ops): State<Ops>, Query(query): Query<HashMap<String, String>>) -> Response {
    let exclude: Vec<&str> = query
        .get("exclude")
        .map(|names| names.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let report = ops.readiness.report(&exclude);
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn scrape(State(ops): State<Ops>, peer: Option<Extension<PeerCertificate>>) -> Response {
    let certified = peer.is_some_and(|Extension(PeerCertificate(cert))| cert.is_some());
    if ops.require_client_certificate && !certified {
        return (
            StatusCode::UNAUTHORIZED,
            "/metrics needs a client certificate signed by the hub's CA\n",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
        .into_response()
}

/// Binds `addr` and serves the operations endpoints there until `shutdown`
/// fires: over HTTPS with `tls` (client certificates checked against its
/// CA), or plain HTTP without it (development mode only). Returns the bound
/// address once listening: a service whose operator asked for the endpoints
/// should not start without them.
pub fn start(
    addr: SocketAddr,
    tls: Option<&TlsMaterial>,
    limits: &ConnectionLimits,
    mut ops: Ops,
    shutdown: CancellationToken,
) -> Result<SocketAddr, OpsError> {
    let serve_error = |source| OpsError::Serve { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(serve_error)?;
    listener.set_nonblocking(true).map_err(serve_error)?;
    let bound = listener.local_addr().map_err(serve_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(serve_error)?;
    let tls = match tls {
        Some(tls) => Some(tls.rustls_https_config(Some(&tls.ca_pem))?),
        None => {
            ops.require_client_certificate = false;
            None
        }
    };
    if tls.is_some() {
        tracing::info!(addr = %bound, "operations endpoints on https://{bound} (/livez, /readyz, /metrics)");
    } else {
        tracing::warn!(addr = %bound, "operations endpoints on plain HTTP (development mode)");
    }
    let app = router(ops);
    let limits = limits.clone();
    tokio::spawn(async move {
        crate::http_server::serve(listener, tls, app, &limits, shutdown, Duration::ZERO).await;
    });
    Ok(bound)
}
