//! An OTLP/HTTP trace receiver inside the test process: what a collector
//! would get from the hub's services, kept for the test to look at.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;

/// One span as received.
#[derive(Debug, Clone)]
pub struct Span {
    /// The `service.name` of the process that sent it.
    pub service: String,
    pub name: String,
    /// Hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// `opentelemetry_proto`'s `SpanKind` number: 2 server, 3 client, 4
    /// producer, 5 consumer.
    pub kind: i32,
    /// Attributes, their values as text.
    pub attributes: BTreeMap<String, String>,
    /// The status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

pub const SERVER: i32 = 2;
pub const PRODUCER: i32 = 4;
pub const CONSUMER: i32 = 5;

/// Listens on `127.0.0.1`; its [`Receiver::endpoint`] goes in `[telemetry]`.
pub struct Receiver {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    /// Export requests that were not a valid `ExportTraceServiceRequest`.
    malformed: Arc<Mutex<usize>>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Kept {
    spans: Arc<Mutex<Vec<Span>>>,
    malformed: Arc<Mutex<usize>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let kept = Kept {
            spans: Arc::default(),
            malformed: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(kept.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            endpoint,
            spans: kept.spans,
            malformed: kept.malformed,
            _server: server,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans").clone()
    }

    pub fn malformed(&self) -> usize {
        *self.malformed.lock().expect("malformed")
    }
}

async fn export(State(kept): State<Kept>, body: Bytes) -> axum::response::Response {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        *kept.malformed.lock().expect("malformed") += 1;
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    status: span.status.map_or(0, |s| s.code),
                });
            }
        }
    }
    kept.spans.lock().expect("spans").extend(received);
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (pair.key.clone(), value)
        })
        .collect()
}
