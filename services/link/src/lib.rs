//! Freeport's link: the replicator.
//!
//! - [`plan`]: which mirrors should run, derived from the catalog's contracts.
//! - [`mirror`]: one mirror, source topic to destination topic, exactly once.
//! - [`status`]: reports each mirror's state back to the catalog.
//! - [`terms`]: a contract's terms applied to each record.
//!
//! The link never polls: it takes a snapshot of the catalog, then follows
//! the Watch stream, starting a mirror when a contract is approved and
//! stopping it when the contract is revoked.

pub mod config;
pub mod metrics;
pub mod mirror;
pub mod offsets;
pub mod plan;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use freeport_common::config::Clusters;
use freeport_common::names::ClusterName;
use freeport_common::proto::catalog::v1 as pb;
use pb::catalog_service_client::CatalogServiceClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use config::LinkConfig;

use crate::metrics::LinkMetrics;
use crate::mirror::Mirror;
use crate::plan::{CatalogView, MirrorSpec};
use crate::status::StatusReporter;
use freeport_common::metrics::Metrics;
use freeport_common::ops::Ops;

const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] freeport_common::tls::TlsError),
    #[error("invalid catalog_url: {0}")]
    CatalogUrl(#[from] tonic::transport::Error),
    #[error("link.hash_key must be at least 32 characters")]
    HashKey,
    #[error(transparent)]
    Metrics(#[from] freeport_common::metrics::MetricsError),
    #[error(transparent)]
    Ops(#[from] freeport_common::ops::OpsError),
}

/// Runs the link from its config until `shutdown` fires.
pub async fn run(
    config: LinkConfig,
    clusters: Clusters,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let tls = config.tls.load()?;
    let channel = freeport_common::tls::catalog_channel(&config.catalog_url, &tls)?;
    let hash_key = match &config.hash_key {
        Some(key) => Some(key.hash_key().ok_or(StartError::HashKey)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new("freeport-link")?);
    let link_metrics = LinkMetrics::new(&metrics.meter());
    if let Some(addr) = config.ops_listen {
        let ops = Ops::for_service(metrics, &tls, Some(channel.clone()), &clusters, &shutdown);
        freeport_common::ops::start(addr, Some(&tls), ops, shutdown.clone())?;
    }
    Link::new(CatalogServiceClient::new(channel), clusters, hash_key)
        .with_metrics(link_metrics)
        .run(shutdown)
        .await;
    Ok(())
}

struct Running {
    spec: MirrorSpec,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Link {
    catalog: CatalogServiceClient<Channel>,
    clusters: Clusters,
    hash_key: Option<Vec<u8>>,
    running: HashMap<String, Running>,
    metrics: LinkMetrics,
}

impl Link {
    pub fn new(
        catalog: CatalogServiceClient<Channel>,
        clusters: Clusters,
        hash_key: Option<Vec<u8>>,
    ) -> Link {
        let meter = opentelemetry::global::meter("freeport-link");
        Link {
            catalog,
            clusters,
            hash_key,
            running: HashMap::new(),
            metrics: LinkMetrics::new(&meter),
        }
    }

    /// Records into `metrics` instead of the global (no-op) meter.
    pub fn with_metrics(mut self, metrics: LinkMetrics) -> Link {
        self.metrics = metrics;
        self
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!("link started");
        loop {
            match self.follow(&shutdown).await {
                Ok(()) => break,
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = %status.message(), "lost the catalog; reconnecting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RECONNECT_BACKOFF) => {}
            }
        }
        let stopping: Vec<_> = self.running.drain().map(|(_, r)| r).collect();
        for mirror in &stopping {
            mirror.cancel.cancel();
        }
        for mirror in stopping {
            let _ = mirror.task.await;
        }
        tracing::info!("link stopped");
    }

    /// Snapshot, then Watch from the snapshot's revision. Returns `Ok` on
    /// shutdown and the error when the catalog connection is lost.
    async fn follow(&mut self, shutdown: &CancellationToken) -> Result<(), tonic::Status> {
        let snapshot = self
            .catalog
            .list_contracts(pb::ListContractsRequest {})
            .await?
            .into_inner();
        let streams = self
            .catalog
            .list_streams(pb::ListStreamsRequest { viewer: None })
            .await?
            .into_inner();
        let mut view = CatalogView::default();
        for stream in streams.streams {
            view.apply(pb::watch_event::Change::Stream(stream));
        }
        for contract in snapshot.contracts {
            view.apply(pb::watch_event::Change::Contract(contract));
        }
        self.reconcile(&view);
        let mut watch = self
            .catalog
            .watch(pb::WatchRequest {
                after_revision: snapshot.revision,
            })
            .await?
            .into_inner();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                event = watch.message() => event?,
            };
            let Some(event) = event else {
                return Err(tonic::Status::unavailable(
                    "catalog closed the watch stream",
                ));
            };
            if let Some(change) = event.change {
                view.apply(change);
                self.reconcile(&view);
            }
        }
    }

    /// Starts the mirrors that should run and stops the ones that should not.
    fn reconcile(&mut self, view: &CatalogView) {
        let desired = view.desired();
        self.running.retain(|id, running| {
            let keep = desired.get(id) == Some(&running.spec);
            if !keep {
                tracing::info!(contract = %id, "stopping mirror");
                running.cancel.cancel();
            }
            keep
        });
        for (id, spec) in desired {
            if self.running.contains_key(&id) {
                continue;
            }
            let status =
                StatusReporter::new(self.catalog.clone(), id.clone(), self.metrics.clone());
            let reshaper = match freeport_common::terms::Reshaper::new(
                &spec.terms,
                self.hash_key.as_deref(),
            ) {
                Ok(reshaper) => reshaper,
                Err(refusal) => {
                    // Copying data the terms cannot be applied to would leak it.
                    let refusal = format!(
                        "cannot apply the contract's terms: {refusal}; nothing is mirrored"
                    );
                    tracing::warn!(contract = %id, "{refusal}");
                    tokio::spawn(async move { status.error(&refusal).await });
                    continue;
                }
            };
            let (Some(source), Some(destination)) = (
                self.cluster(&spec.source_cluster),
                self.cluster(&spec.destination_cluster),
            ) else {
                let missing = format!(
                    "cluster {:?} or {:?} is not configured on this link",
                    spec.source_cluster, spec.destination_cluster
                );
                tracing::warn!(contract = %id, "{missing}");
                tokio::spawn(async move { status.error(&missing).await });
                continue;
            };
            tracing::info!(contract = %id, "starting mirror");
            let cancel = CancellationToken::new();
            let mirror = Mirror {
                rate: std::num::NonZeroU32::new(spec.terms.max_records_per_second),
                spec: spec.clone(),
                source,
                destination,
                reshaper,
            };
            let task = tokio::spawn(mirror.run(status, cancel.clone()));
            self.running.insert(id, Running { spec, cancel, task });
        }
    }

    fn cluster(&self, name: &str) -> Option<freeport_common::config::ClusterConfig> {
        let name = ClusterName::parse(name).ok()?;
        self.clusters.get(&name).cloned()
    }
}
