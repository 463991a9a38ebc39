//! The catalog's instruments: how long its atomic writes take, by
//! operation, and how many contracts are in each state (read from the store
//! when Prometheus scrapes).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::KeyValue;

use crate::domain::ContractState;
use crate::store::Store;

#[derive(Clone)]
pub struct CatalogMetrics {
    write_duration: Histogram<f64>,
}

impl CatalogMetrics {
    /// The instruments, with the contract gauge reading `store`.
    pub fn new(meter: &Meter, store: Arc<dyn Store>) -> CatalogMetrics {
        meter
            .u64_observable_gauge("freeport_catalog_contracts")
            .with_description("Contracts in each state")
            .with_callback(move |observer| {
                let contracts = match store.list_contracts() {
                    Ok(contracts) => contracts,
                    Err(error) => {
                        tracing::warn!(%error, "cannot count contracts for the metrics");
                        return;
                    }
                };
                for state in ContractState::ALL {
                    let count = contracts.iter().filter(|c| c.state == state).count();
                    observer.observe(
                        u64::try_from(count).unwrap_or(u64::MAX),
                        &[KeyValue::new("state", state.as_str())],
                    );
                }
            })
            .build();
        CatalogMetrics {
            write_duration: freeport_common::metrics::latency(
                meter,
                "freeport_catalog_write_duration",
                "Time to commit one change (data, events and audit entry) to the store, by operation",
            ),
        }
    }

    /// One commit of `operation` (an audit action such as `contract.approve`).
    pub fn wrote(&self, operation: &str, took: Duration) {
        self.write_duration.record(
            took.as_secs_f64(),
            &[KeyValue::new("operation", operation.to_string())],
        );
    }
}
