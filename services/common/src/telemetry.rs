//! Logs and traces: set up once per process, the same way in every service.
//!
//! Logs go to stderr ([`init`]). Traces are OpenTelemetry spans exported
//! over OTLP/HTTP to the collector `[telemetry]` names ([`Telemetry::start`]);
//! without that section nothing is recorded and no header is touched.
//!
//! A record's path is one trace. W3C trace context (`traceparent`,
//! `tracestate`) arrives with an HTTP call, is written into the headers of
//! every Kafka record the portal produces, is read back by the link, which
//! writes its own span's context into the copy it mirrors, and by the
//! portal's push feeds, whose delivery spans continue it. The helpers here
//! carry context between those places: [`http_context`],
//! [`record_context`], [`trace_headers`], [`CatalogCalls`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use rdkafka::message::{BorrowedHeaders, Headers};
use schemars::JsonSchema;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use crate::config::{Problems, Secret};

/// Logs go to stderr, filtered by `FREEPORT_LOG` (same syntax as
/// `RUST_LOG`), `info` by default. Safe to call more than once.
pub fn init() {
    let filter = EnvFilter::try_from_env("FREEPORT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,h2=warn,tower=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}

/// The W3C trace-context headers, in HTTP and in Kafka records.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Where every service sends its spans (OpenTelemetry over OTLP/HTTP).
/// Absent, no span is recorded and trace headers pass through untouched.
#[derive(Debug, Clone, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP (protobuf) collector, `http://` or `https://`, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: spans are posted to
    /// `<endpoint>/v1/traces`.
    #[schemars(url)]
    pub endpoint: String,
    /// Fraction of the traces that start here (a call without
    /// `traceparent`) that are recorded, 0 to 1. A trace started upstream
    /// follows the decision its caller made.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Headers sent with every export (a collector's API key, say); never
    /// logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// A CA certificate (PEM) to trust for an `https` collector besides the
    /// public roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long one export may take before it is given up.
    #[serde(default = "default_export_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_export_timeout_secs() -> u64 {
    10
}

impl TelemetryConfig {
    /// Spans to `endpoint`, every other setting at its default.
    pub fn for_endpoint(endpoint: impl Into<String>) -> TelemetryConfig {
        TelemetryConfig {
            endpoint: endpoint.into(),
            sample_ratio: default_sample_ratio(),
            headers: BTreeMap::new(),
            ca: None,
            timeout_secs: default_export_timeout_secs(),
        }
    }

    pub fn validate(&self, problems: &mut Problems) {
        match self.endpoint.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() =>
            {
                if uri.query().is_some() {
                    problems.add(
                        "telemetry.endpoint",
                        "must not have a query: /v1/traces is appended to it",
                    );
                }
                if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                    problems.add(
                        "telemetry.endpoint",
                        "must not hold credentials (they would be logged); put them in telemetry.headers",
                    );
                }
            }
            _ => problems.add(
                "telemetry.endpoint",
                format!("{:?} is not an http:// or https:// URL", self.endpoint),
            ),
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.add(
                "telemetry.sample_ratio",
                format!("{} is not between 0 and 1", self.sample_ratio),
            );
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.add(
                    "telemetry.headers",
                    format!("{name:?} is not a header name"),
                );
            } else if http::HeaderValue::from_str(value.expose()).is_err() {
                problems.add(
                    "telemetry.headers",
                    format!("the value of {name:?} is not a valid header value"),
                );
            }
        }
        if let Some(path) = &self.ca {
            problems.certificate("telemetry.ca", path);
        }
        problems.at_least("telemetry.timeout_secs", self.timeout_secs, 1);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.ca: {0}")]
    Ca(String),
    #[error("cannot set up the trace exporter: {0}")]
    Exporter(String),
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are recorded in this process. When not, record headers
/// pass through untouched.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The tracer every Freeport span comes from (a no-op one when tracing is
/// off).
pub fn tracer() -> BoxedTracer {
    opentelemetry::global::tracer("freeport")
}

/// The trace pipeline of a process; [`Telemetry::shutdown`] sends what is
/// still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Starts exporting spans of `service` (`freeport-portal`, say) as
    /// `config` says; nothing when `config` is `None`. Needs a Tokio
    /// runtime: exports are sent from it.
    pub fn start(
        config: Option<&TelemetryConfig>,
        service: &'static str,
    ) -> Result<Telemetry, TelemetryError> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};

        let Some(config) = config else {
            return Ok(Telemetry { provider: None });
        };
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let mut client = reqwest::Client::builder().timeout(timeout);
        if let Some(path) = &config.ca {
            let pem = std::fs::read(path)
                .map_err(|e| TelemetryError::Ca(format!("cannot read {}: {e}", path.display())))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| TelemetryError::Ca(format!("{}: {e}", path.display())))?;
            client = client.add_root_certificate(ca);
        }
        let client = client
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_string()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Exporting {
                client,
                runtime: tokio::runtime::Handle::current(),
            })
            .with_endpoint(traces_url(&config.endpoint))
            .with_timeout(timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", uuid::Uuid::now_v7().to_string()),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        ENABLED.store(true, Ordering::Relaxed);
        tracing::info!(
            endpoint = %config.endpoint,
            sample_ratio = config.sample_ratio,
            "exporting traces"
        );
        Ok(Telemetry {
            provider: Some(provider),
        })
    }

    /// Runs `service` (its name, `freeport-link` say) with spans exported as
    /// `config` says, then sends the spans still queued.
    pub async fn around<T>(
        config: Option<&TelemetryConfig>,
        service: &'static str,
        run: impl std::future::Future<Output = T>,
    ) -> Result<T, TelemetryError> {
        let telemetry = Telemetry::start(config, service)?;
        let ran = run.await;
        telemetry.shutdown().await;
        Ok(ran)
    }

    /// Sends the spans still queued and stops exporting.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        ENABLED.store(false, Ordering::Relaxed);
        // Blocks until the exporter's thread is done; its exports run on
        // this runtime, so wait on another thread.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "could not send the last spans");
        }
    }
}

/// `<endpoint>/v1/traces`, with or without a slash at the end of the
/// endpoint.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// The exporter's HTTP client. The SDK exports from its own thread and
/// blocks on the future; the request itself runs on the service's runtime,
/// with the client's timeout.
#[derive(Debug)]
struct Exporting {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporting {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let mut answer = http::Response::builder().status(response.status());
                if let Some(headers) = answer.headers_mut() {
                    headers.extend(response.headers().clone());
                }
                let body = response.bytes().await?;
                Ok(answer.body(body)?)
            })
            .await?
    }
}

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// The context an HTTP request carries (empty without `traceparent`).
pub fn http_context(headers: &http::HeaderMap) -> Context {
    propagator().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The context a Kafka record's headers carry (empty without
/// `traceparent`).
pub fn record_context(headers: Option<&BorrowedHeaders>) -> Context {
    match headers {
        Some(headers) => propagator().extract(&RecordHeaders(headers)),
        None => Context::new(),
    }
}

/// The W3C headers that carry `cx` on: `traceparent` and, when there is
/// one, `tracestate`. Empty when `cx` holds no valid span.
pub fn trace_headers(cx: &Context) -> Vec<(&'static str, String)> {
    let mut carrier = Carrier(Vec::with_capacity(2));
    propagator().inject_context(cx, &mut carrier);
    carrier.0
}

/// Whether `name` is a W3C trace-context header (replaced, not copied,
/// where a span continues the trace).
pub fn is_trace_header(name: &str) -> bool {
    TRACE_HEADERS
        .iter()
        .any(|header| header.eq_ignore_ascii_case(name))
}

/// A new span of `kind` named `name`, the child of `parent`'s span (or the
/// root of a new trace). `attributes` are only made when the span is
/// sampled: an unsampled one costs little more than its context.
pub fn span(
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> BoxedSpan {
    use opentelemetry::trace::Span as _;
    let tracer = tracer();
    let mut span = tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(&tracer, parent);
    if span.is_recording() {
        span.set_attributes(attributes());
    }
    span
}

struct RecordHeaders<'a>(&'a BorrowedHeaders);

impl Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // The last one wins, as a Kafka header map would have it.
        self.0
            .iter()
            .filter(|h| h.key.eq_ignore_ascii_case(key))
            .last()
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

struct Carrier(Vec<(&'static str, String)>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        if let Some(name) = TRACE_HEADERS.iter().find(|h| **h == key) {
            self.0.push((name, value));
        }
    }
}

/// A tonic interceptor for calls to the catalog: the caller's current
/// trace context goes along in the metadata, so the catalog's span of the
/// call joins the caller's trace. Calls made outside any span (background
/// watches, health checks) carry nothing and start no trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogCalls;

impl tonic::service::Interceptor for CatalogCalls {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if enabled() {
            let cx = Context::current();
            if cx.has_active_span() {
                for (name, value) in trace_headers(&cx) {
                    if let Ok(value) = value.parse() {
                        request.metadata_mut().insert(name, value);
                    }
                }
            }
        }
        Ok(request)
    }
}

/// The axum middleware giving every HTTP request a server span (named by
/// method and route pattern), the child of the caller's `traceparent` when
/// it sent one. The handler runs in the span's context, so what it starts
/// (a produce, a call to the catalog) belongs to the same trace. The span
/// ends when the answer's head is ready.
pub async fn http_spans(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !enabled() {
        return next.run(request).await;
    }
    let parent = http_context(request.headers());
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_string());
    let mut attributes = vec![KeyValue::new("http.request.method", method.clone())];
    let name = match route {
        Some(route) => {
            let name = format!("{method} {route}");
            attributes.push(KeyValue::new("http.route", route));
            name
        }
        None => method,
    };
    let cx = parent.with_span(span(name, SpanKind::Server, &parent, || attributes));
    let response = in_context(cx.clone(), next.run(request)).await;
    let span = cx.span();
    let status = response.status();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(opentelemetry::trace::Status::error(status.to_string()));
    }
    span.end();
    response
}

/// Ends the span `cx` holds, as failed with `error` when there is one.
pub fn end(cx: &Context, error: Option<String>) {
    let span = cx.span();
    if let Some(error) = error {
        span.set_status(opentelemetry::trace::Status::error(error));
    }
    span.end();
}

/// Runs `future` in `cx`, so spans and catalog calls inside it are its
/// children.
pub fn in_context<F: std::future::Future>(
    cx: Context,
    future: F,
) -> opentelemetry::trace::WithContext<F> {
    opentelemetry::trace::FutureExt::with_context(future, cx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use rdkafka::message::{Header, OwnedHeaders};

    fn remote(trace: u128, span: u64) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "x")]).expect("trace state"),
        ))
    }

    #[test]
    fn context_goes_into_record_headers_and_comes_back() {
        let cx = remote(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331);
        let headers = trace_headers(&cx);
        assert_eq!(
            headers[0],
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string()
            )
        );
        assert_eq!(headers[1], ("tracestate", "vendor=x".to_string()));

        let mut owned = OwnedHeaders::new().insert(Header {
            key: "other",
            value: Some("1"),
        });
        for (name, value) in &headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_str()),
            });
        }
        let back = record_context(Some(owned.as_borrowed()));
        let span = back.span().span_context().clone();
        assert_eq!(
            span.trace_id(),
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c)
        );
        assert_eq!(span.span_id(), SpanId::from(0xb7ad6b7169203331));
        assert!(span.is_remote() && span.is_sampled());
    }

    #[test]
    fn no_or_malformed_context_is_an_empty_one() {
        assert!(trace_headers(&Context::new()).is_empty());
        assert!(!record_context(None).span().span_context().is_valid());
        let bad = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some("00-not-a-trace"),
        });
        assert!(!record_context(Some(bad.as_borrowed()))
            .span()
            .span_context()
            .is_valid());
        let mut http = http::HeaderMap::new();
        http.insert("traceparent", "garbage".parse().expect("header"));
        assert!(!http_context(&http).span().span_context().is_valid());
    }

    #[test]
    fn the_trace_headers_are_recognised_in_any_case() {
        assert!(is_trace_header("traceparent") && is_trace_header("TraceState"));
        assert!(!is_trace_header("trace") && !is_trace_header("freeport.source.topic"));
    }

    #[test]
    fn a_bad_section_names_every_problem() {
        let config = TelemetryConfig {
            endpoint: "collector:4318".into(),
            sample_ratio: 1.5,
            headers: BTreeMap::from([("bad name".into(), Secret::new("x"))]),
            ca: Some("/nonexistent/ca.pem".into()),
            timeout_secs: 0,
        };
        let mut problems = Problems::default();
        config.validate(&mut problems);
        let all = problems.0.join("\n");
        for key in [
            "telemetry.endpoint",
            "telemetry.sample_ratio",
            "telemetry.headers",
            "telemetry.ca",
            "telemetry.timeout_secs",
        ] {
            assert!(all.contains(key), "{key} missing from:\n{all}");
        }
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");

        let mut problems = Problems::default();
        TelemetryConfig {
            endpoint: "https://user:password@collector:4318".into(),
            ..config
        }
        .validate(&mut problems);
        assert!(
            problems.0.iter().any(|p| p.contains("credentials")),
            "{problems:?}"
        );
    }
}
