//! Tells the catalog what a mirror is doing.

use freeport_common::proto::catalog::v1 as pb;
use pb::catalog_service_client::CatalogServiceClient;
use tonic::transport::Channel;

use crate::metrics::LinkMetrics;

/// Reports a mirror's state to the catalog and to the state metric.
#[derive(Clone)]
pub struct StatusReporter {
    client: CatalogServiceClient<Channel>,
    contract_id: String,
    metrics: LinkMetrics,
}

impl StatusReporter {
    pub fn new(
        client: CatalogServiceClient<Channel>,
        contract_id: String,
        metrics: LinkMetrics,
    ) -> StatusReporter {
        StatusReporter {
            client,
            contract_id,
            metrics,
        }
    }

    pub fn contract_id(&self) -> &str {
        &self.contract_id
    }

    pub fn metrics(&self) -> &LinkMetrics {
        &self.metrics
    }

    pub async fn running(&self) {
        self.report(pb::LinkStatus::Running, "").await;
    }

    pub async fn stopped(&self) {
        self.report(pb::LinkStatus::Stopped, "").await;
    }

    pub async fn error(&self, detail: &str) {
        self.report(pb::LinkStatus::Error, detail).await;
    }

    pub async fn stalled(&self, detail: &str) {
        self.report(pb::LinkStatus::Stalled, detail).await;
    }

    async fn report(&self, status: pb::LinkStatus, detail: &str) {
        let state = match status {
            pb::LinkStatus::Running => "running",
            pb::LinkStatus::Stalled => "stalled",
            pb::LinkStatus::Error => "error",
            pb::LinkStatus::Stopped | pb::LinkStatus::Unspecified => "stopped",
        };
        self.metrics.state(&self.contract_id, state);
        let request = pb::ReportLinkStatusRequest {
            contract_id: self.contract_id.clone(),
            status: status.into(),
            detail: detail.to_string(),
        };
        if let Err(e) = self.client.clone().report_link_status(request).await {
            // The mirror goes on; the next report carries the truth.
            tracing::warn!(contract = %self.contract_id, error = %e.message(), "cannot report link status");
        }
    }
}
