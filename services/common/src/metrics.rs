//! Metrics: OpenTelemetry instruments, read by Prometheus.
//!
//! Each service records through an OpenTelemetry [`Meter`]; a Prometheus
//! exporter collects the instruments when `/metrics` is scraped. The
//! endpoint speaks HTTPS and requires a client certificate signed by the
//! hub's CA, like every other listener outside development mode; Prometheus
//! scrapes it with `tls_config { ca_file, cert_file, key_file }`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};
use tokio_util::sync::CancellationToken;

use crate::tls::TlsMaterial;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot set up the metrics exporter: {0}")]
    Exporter(String),
    #[error("invalid TLS material for the metrics endpoint: {0}")]
    Tls(String),
    #[error("cannot serve metrics on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The instruments of one service and the registry Prometheus reads them from.
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    service: &'static str,
}

impl Metrics {
    pub fn new(service: &'static str) -> Result<Metrics, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        Ok(Metrics {
            registry,
            provider,
            service,
        })
    }

    pub fn meter(&self) -> Meter {
        self.provider.meter(self.service)
    }

    /// Every instrument in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// Serves `GET /metrics` on `addr` over mutual TLS until `shutdown` fires.
pub async fn serve(
    addr: SocketAddr,
    tls: TlsMaterial,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), MetricsError> {
    let mut server = tls
        .rustls_server_config()
        .map_err(|e| MetricsError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server));
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| MetricsError::Serve { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| MetricsError::Serve { addr, source })?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.shutdown();
    });
    tracing::info!(%addr, "metrics on https://{addr}/metrics (client certificate required)");
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(|source| MetricsError::Serve { addr, source })
}
