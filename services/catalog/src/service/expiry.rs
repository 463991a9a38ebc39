//! Contracts end at their end time: a timer set for the earliest one,
//! reset by every change.

use std::sync::Arc;

use freeport_common::now_ms;
use tokio::sync::broadcast;

use super::Catalog;
use crate::domain::{Contract, ContractAction};
use crate::error::CatalogError;

impl Catalog {
    /// The earliest end time among live contracts.
    fn next_expiry(&self) -> Result<Option<i64>, CatalogError> {
        Ok(self
            .store
            .list_contracts()?
            .iter()
            .filter(|c| c.state.is_live())
            .filter_map(|c| c.terms.end_time_ms)
            .min())
    }

    /// Expires every live contract whose end time is at or before `now_ms`.
    pub async fn expire_due(&self, now_ms: i64) -> Result<Vec<Contract>, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let due: Vec<_> = self
            .store
            .list_contracts()?
            .into_iter()
            .filter(|c| c.state.is_live() && c.terms.end_time_ms.is_some_and(|end| end <= now_ms))
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for contract in due {
            let end = contract.terms.end_time_ms.unwrap_or_default();
            let contract = self
                .apply_locked(
                    contract,
                    ContractAction::Expire,
                    "system:expiry".into(),
                    format!("end time {end} ms reached"),
                    None,
                )
                .await?;
            expired.push(contract);
        }
        Ok(expired)
    }

    /// Expires contracts at their end time, woken by a timer set for the
    /// earliest one and reset by every change; never by polling. Runs until
    /// shutdown.
    pub async fn run_expiry(self: Arc<Self>) {
        let mut changes = self.events.subscribe();
        loop {
            let next = match self.next_expiry() {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read contracts for expiry");
                    None
                }
            };
            // Sleep until the earliest end time; with none, until a change.
            let wait = next.map(|end| {
                std::time::Duration::from_millis(u64::try_from(end - now_ms()).unwrap_or(0))
            });
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = async {
                    match wait {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => std::future::pending().await,
                    }
                } => {
                    match self.expire_due(now_ms()).await {
                        Ok(expired) => for c in expired {
                            tracing::info!(contract = %c.id, "contract expired");
                        },
                        Err(e) => {
                            tracing::error!(error = %e, "cannot expire contracts");
                            // Do not spin on a failing store.
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
                changed = changes.recv() => {
                    if matches!(changed, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
            }
        }
    }
}
