//! The portal's instruments: per-route HTTP latency (whose counts are the
//! request and error rates), and what it holds open for partners: push
//! feeds and REST Proxy consumer instances, read when Prometheus scrapes.

use std::sync::Arc;

use freeport_common::metrics::HttpMetrics;
use opentelemetry::metrics::Meter;

use crate::consumers::Consumers;
use crate::limits::ContractLimits;

/// Registers the gauges and returns the HTTP middleware's instruments.
pub fn register(
    meter: &Meter,
    limits: Arc<ContractLimits>,
    consumers: Arc<Consumers>,
) -> HttpMetrics {
    meter
        .u64_observable_gauge("freeport_portal_push_feeds")
        .with_description("Push feeds (SSE and WebSocket) open on this portal")
        .with_callback(move |observer| observer.observe(count(limits.open_feeds()), &[]))
        .build();
    meter
        .u64_observable_gauge("freeport_portal_consumer_instances")
        .with_description("REST Proxy consumer instances held by this portal")
        .with_callback(move |observer| observer.observe(count(consumers.len()), &[]))
        .build();
    HttpMetrics::new(meter)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
