//! The link's instruments, per contract: records and bytes mirrored (totals
//! and the rate over the last sampling interval), lag in records and in
//! milliseconds, and the mirror's state.

use opentelemetry::metrics::{Counter, Gauge, Meter};
use opentelemetry::KeyValue;

/// The states a mirror reports; the `freeport_link_state` gauge is 1 for
/// the current one and 0 for the others.
pub const STATES: [&str; 4] = ["running", "stalled", "error", "stopped"];

#[derive(Clone)]
pub struct LinkMetrics {
    records: Counter<u64>,
    bytes: Counter<u64>,
    records_per_second: Gauge<f64>,
    bytes_per_second: Gauge<f64>,
    lag_records: Gauge<u64>,
    lag_milliseconds: Gauge<u64>,
    state: Gauge<u64>,
}

/// One sample of a mirror's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub records_per_second: f64,
    pub bytes_per_second: f64,
    pub lag_records: u64,
    pub lag_milliseconds: u64,
}

impl LinkMetrics {
    pub fn new(meter: &Meter) -> LinkMetrics {
        LinkMetrics {
            records: meter
                .u64_counter("freeport_link_records")
                .with_description("Records the destination acknowledged")
                .build(),
            bytes: meter
                .u64_counter("freeport_link_bytes")
                .with_description("Key and value bytes the destination acknowledged")
                .build(),
            records_per_second: meter
                .f64_gauge("freeport_link_records_per_second")
                .with_description("Records acknowledged per second over the last sample")
                .build(),
            bytes_per_second: meter
                .f64_gauge("freeport_link_bytes_per_second")
                .with_description("Bytes acknowledged per second over the last sample")
                .build(),
            lag_records: meter
                .u64_gauge("freeport_link_lag_records")
                .with_description("Source records not yet acknowledged by the destination")
                .build(),
            lag_milliseconds: meter
                .u64_gauge("freeport_link_lag_milliseconds")
                .with_description(
                    "Age of the oldest source record not yet acknowledged; 0 when caught up",
                )
                .build(),
            state: meter
                .u64_gauge("freeport_link_state")
                .with_description("1 for the mirror's current state, 0 for the others")
                .build(),
        }
    }

    pub fn acknowledged(&self, contract: &str, records: u64, bytes: u64) {
        let labels = [KeyValue::new("contract", contract.to_string())];
        self.records.add(records, &labels);
        self.bytes.add(bytes, &labels);
    }

    pub fn sample(&self, contract: &str, sample: Sample) {
        let labels = [KeyValue::new("contract", contract.to_string())];
        self.records_per_second
            .record(sample.records_per_second, &labels);
        self.bytes_per_second
            .record(sample.bytes_per_second, &labels);
        self.lag_records.record(sample.lag_records, &labels);
        self.lag_milliseconds
            .record(sample.lag_milliseconds, &labels);
    }

    pub fn state(&self, contract: &str, current: &str) {
        for state in STATES {
            self.state.record(
                u64::from(state == current),
                &[
                    KeyValue::new("contract", contract.to_string()),
                    KeyValue::new("state", state),
                ],
            );
        }
    }
}
