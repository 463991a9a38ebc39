//! Metrics: OpenTelemetry instruments, read by Prometheus.
//!
//! Each service records through an OpenTelemetry [`Meter`]; a Prometheus
//! exporter collects the instruments when `/metrics` is scraped (served by
//! [`crate::ops`]). Besides each service's own instruments (its
//! `metrics.rs`), every service has the ones here: per-route HTTP and
//! per-method gRPC latency histograms (whose counts are the request rates
//! and, by status, the error rates) and the expiry of the certificates it
//! loaded. Label values are bounded: routes are the router's patterns, never
//! the raw path.

use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::future::BoxFuture;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

/// Latency histogram buckets, in seconds: 1 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot set up the metrics exporter: {0}")]
    Exporter(String),
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

    /// A gauge of the expiry time (Unix seconds) of each named PEM
    /// certificate, `freeport_certificate_expiry_timestamp_seconds{certificate}`.
    /// Read once: services load their certificates at start, so a renewed
    /// file counts from the restart that loads it.
    pub fn certificate_expiry(&self, certificates: Vec<(String, Vec<u8>)>) {
        let expiries: Vec<(KeyValue, f64)> = certificates
            .into_iter()
            .filter_map(|(name, pem)| {
                let not_after = crate::tls::certificate_not_after(&pem)?;
                // i64 seconds fit f64 exactly until the year 285 million.
                #[allow(clippy::cast_precision_loss)]
                Some((KeyValue::new("certificate", name), not_after as f64))
            })
            .collect();
        self.meter()
            .f64_observable_gauge("freeport_certificate_expiry_timestamp")
            .with_unit("s")
            .with_description("When the certificate stops being valid (Unix time)")
            .with_callback(move |observer| {
                for (label, at) in &expiries {
                    observer.observe(*at, std::slice::from_ref(label));
                }
            })
            .build();
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

/// A latency histogram in seconds with [`LATENCY_BUCKETS`].
pub fn latency(meter: &Meter, name: &'static str, description: &'static str) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(LATENCY_BUCKETS.to_vec())
        .build()
}

/// Per-route HTTP metrics: `freeport_http_server_request_duration_seconds`
/// by `route` (the router's pattern), `method` and `status`, measured until
/// the answer's head is ready (a stream's lifetime is not a latency).
#[derive(Clone)]
pub struct HttpMetrics {
    duration: Histogram<f64>,
}

impl HttpMetrics {
    pub fn new(meter: &Meter) -> HttpMetrics {
        HttpMetrics {
            duration: latency(
                meter,
                "freeport_http_server_request_duration",
                "Time to answer an HTTP request, by route, method and status",
            ),
        }
    }

    /// The axum middleware (`axum::middleware::from_fn_with_state`); put it
    /// on the router with `layer` so every route, matched or not, is counted.
    pub async fn record(
        State(metrics): State<HttpMetrics>,
        request: Request,
        next: Next,
    ) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
        let method = http_method(request.method());
        let started = Instant::now();
        let response = next.run(request).await;
        metrics.duration.record(
            started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("route", route),
                KeyValue::new("method", method),
                KeyValue::new("status", i64::from(response.status().as_u16())),
            ],
        );
        response
    }
}

/// The method as a label: the standard ones by name, anything a client
/// invents as `OTHER`, so labels stay bounded.
fn http_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Per-method gRPC metrics for a tonic server (`Server::builder().layer`):
/// `freeport_grpc_server_request_duration_seconds` by `method` (the full
/// gRPC path of a method the server has) and `code` (the gRPC status name).
/// A call that comes with a trace context (a portal call made while
/// serving a request) also gets a server span in that trace; calls from
/// outside any trace (watches, leases, health checks) start none.
#[derive(Clone)]
pub struct GrpcTelemetryLayer {
    duration: Histogram<f64>,
}

impl GrpcTelemetryLayer {
    pub fn new(meter: &Meter) -> GrpcTelemetryLayer {
        GrpcTelemetryLayer {
            duration: latency(
                meter,
                "freeport_grpc_server_request_duration",
                "Time to answer a gRPC call (to the first message of a stream), by method and code",
            ),
        }
    }
}

impl<S> tower::Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> GrpcTelemetry<S> {
        GrpcTelemetry {
            inner,
            duration: self.duration.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
    duration: Histogram<f64>,
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for GrpcTelemetry<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let started = Instant::now();
        let traced = crate::telemetry::enabled()
            .then(|| crate::telemetry::http_context(request.headers()))
            .filter(|parent| parent.span().span_context().is_valid())
            .map(|parent| {
                let span = crate::telemetry::span(
                    method.trim_start_matches('/').to_string(),
                    SpanKind::Server,
                    &parent,
                    || vec![KeyValue::new("rpc.system", "grpc")],
                );
                parent.with_span(span)
            });
        let answer = match &traced {
            // The handler may start its work before its future is polled.
            Some(cx) => {
                let _entered = cx.clone().attach();
                self.inner.call(request)
            }
            None => self.inner.call(request),
        };
        let duration = self.duration.clone();
        Box::pin(async move {
            let result = match &traced {
                Some(cx) => crate::telemetry::in_context(cx.clone(), answer).await,
                None => answer.await,
            };
            // A failed call answers with its status in the head; a
            // successful one only in the trailers, so no status here is OK.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unavailable,
            };
            // A path the server does not serve is the caller's invention.
            let method = if code == tonic::Code::Unimplemented {
                "unknown".to_string()
            } else {
                method
            };
            if let Some(cx) = &traced {
                cx.span()
                    .set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
                let failed = (code != tonic::Code::Ok).then(|| grpc_code_name(code).to_string());
                crate::telemetry::end(cx, failed);
            }
            duration.record(
                started.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("method", method),
                    KeyValue::new("code", grpc_code_name(code)),
                ],
            );
            result
        })
    }
}

fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
