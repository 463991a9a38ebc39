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
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
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

/// rustls server settings that present `tls`'s certificate and require a
/// client certificate signed by its CA.
fn mutual_tls(tls: &TlsMaterial) -> Result<rustls::ServerConfig, MetricsError> {
    let invalid = |e: &dyn std::fmt::Display| MetricsError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&tls.ca_pem) {
        roots
            .add(ca.map_err(|e| invalid(&e))?)
            .map_err(|e| invalid(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
        .build()
        .map_err(|e| invalid(&e))?;
    let chain = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| invalid(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `GET /metrics` on `addr` over mutual TLS until `shutdown` fires.
pub async fn serve(
    addr: SocketAddr,
    tls: TlsMaterial,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), MetricsError> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(mutual_tls(&tls)?));
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
