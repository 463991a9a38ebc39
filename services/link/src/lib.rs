//! Freeport's link: the replicator.
//!
//! - [`plan`]: which mirrors should run, derived from the catalog's contracts.
//! - [`mirror`]: one mirror, source topic to destination topic, exactly once,
//!   as a few steps (destination, resume, copy, progress).
//! - [`provenance`]: the exactly-once protocol, free of I/O: provenance
//!   headers, reading the destination's tail, where to resume.
//! - [`offsets`]: consumer groups' offsets translated to the destination.
//! - [`status`]: reports each mirror's state back to the catalog.
//! - [`share`]: this link's lease on the contracts it mirrors, when several
//!   link processes share them.
//! - [`config`], [`error`], [`metrics`]: as in every service crate.
//!
//! A contract's terms are applied to each record by
//! [`freeport_common::terms`], which the portal shares.
//!
//! The link never polls for contracts: it takes a snapshot of the catalog,
//! then follows the Watch stream, starting a mirror when a contract is
//! approved and stopping it when the contract is revoked. It mirrors only
//! the contracts the catalog assigns it (`ShareLinks`, renewed several times
//! a lease), so several link processes share the work and none mirrors a
//! contract another one does.

pub mod config;
pub mod error;
pub mod metrics;
pub mod mirror;
pub mod offsets;
pub mod plan;
pub mod provenance;
pub mod share;
pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use freeport_common::config::Clusters;
use freeport_common::contract::ContractTerms;
use freeport_common::names::ClusterName;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::terms::Reshaper;
use pb::catalog_service_client::CatalogServiceClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use config::LinkConfig;
pub use error::StartError;

use crate::metrics::LinkMetrics;
use crate::mirror::Mirror;
use crate::plan::{CatalogView, MirrorSpec};
use crate::share::Lease;
use crate::status::StatusReporter;
use freeport_common::metrics::Metrics;
use freeport_common::ops::Ops;

const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

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
        freeport_common::ops::start(
            addr,
            Some(&tls),
            &config.ops_connections,
            ops,
            shutdown.clone(),
        )?;
    }
    let client = CatalogServiceClient::new(channel)
        .max_decoding_message_size(freeport_common::tls::CATALOG_ANSWER_BYTES);
    Link::new(client, clusters, hash_key)
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
    /// Mirrors told to stop whose tasks have not finished: still held.
    stopping: Vec<(String, JoinHandle<()>)>,
    /// Assigned contracts that cannot be mirrored here (terms or clusters);
    /// held, so they are not handed round, and reported once.
    refused: BTreeSet<String>,
    metrics: LinkMetrics,
    /// This process, to the catalog.
    member: String,
    /// What the catalog assigned on the last call.
    assigned: BTreeSet<String>,
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
            stopping: Vec::new(),
            refused: BTreeSet::new(),
            metrics: LinkMetrics::new(&meter),
            member: member_name(),
            assigned: BTreeSet::new(),
        }
    }

    /// Records into `metrics` instead of the global (no-op) meter.
    pub fn with_metrics(mut self, metrics: LinkMetrics) -> Link {
        self.metrics = metrics;
        self
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(member = %self.member, "link started");
        let lease = Lease::new(shutdown.clone());
        loop {
            match self.follow(&lease, &shutdown).await {
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
        for (_, task) in self.stopping.drain(..) {
            let _ = task.await;
        }
        tracing::info!("link stopped");
    }

    /// Snapshot, then Watch from the snapshot's revision. Returns `Ok` on
    /// shutdown and the error when the catalog connection is lost.
    async fn follow(
        &mut self,
        lease: &Lease,
        shutdown: &CancellationToken,
    ) -> Result<(), tonic::Status> {
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
        self.share(&view, lease).await;
        self.reconcile(&view, lease);
        let mut watch = self
            .catalog
            .watch(pb::WatchRequest {
                after_revision: snapshot.revision,
            })
            .await?
            .into_inner();
        let mut renewal = tokio::time::interval(lease.renewal_interval());
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                event = watch.message() => event?,
                _ = renewal.tick() => {
                    self.share(&view, lease).await;
                    self.reconcile(&view, lease);
                    if renewal.period() != lease.renewal_interval() {
                        renewal = tokio::time::interval(lease.renewal_interval());
                        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                    continue;
                }
            };
            let Some(event) = event else {
                return Err(tonic::Status::unavailable(
                    "catalog closed the watch stream",
                ));
            };
            if let Some(change) = event.change {
                let wanted_before: BTreeSet<String> = view.desired().into_keys().collect();
                view.apply(change);
                // A contract to start: ask for it now rather than at the
                // next renewal, so it starts within about a second.
                if view.desired().keys().any(|id| !wanted_before.contains(id)) {
                    self.share(&view, lease).await;
                }
                self.reconcile(&view, lease);
            }
        }
    }

    /// Tells the catalog what this link would mirror and holds, and takes
    /// what it assigns. A failed call leaves the grant to run out.
    async fn share(&mut self, view: &CatalogView, lease: &Lease) {
        self.reap();
        let held: BTreeSet<String> = self
            .running
            .keys()
            .cloned()
            .chain(self.stopping.iter().map(|(id, _)| id.clone()))
            .chain(self.refused.iter().cloned())
            .collect();
        let sent = tokio::time::Instant::now();
        let answer = self
            .catalog
            .share_links(pb::ShareLinksRequest {
                member: self.member.clone(),
                wanted: view.desired().into_keys().collect(),
                held: held.into_iter().collect(),
            })
            .await;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                lease.renewed(sent, Duration::from_millis(u64::from(answer.lease_ms)));
                let assigned: BTreeSet<String> = answer.assigned.into_iter().collect();
                if assigned != self.assigned {
                    tracing::info!(
                        member = %self.member,
                        assigned = ?assigned,
                        members = answer.members.len(),
                        "contracts assigned to this link"
                    );
                }
                self.assigned = assigned;
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = %status.message(), "cannot renew the lease on this link's contracts");
            }
        }
    }

    /// Forgets stopped mirrors whose tasks have finished.
    fn reap(&mut self) {
        self.stopping.retain(|(_, task)| !task.is_finished());
    }

    /// Starts the mirrors that should run here and stops the others: a
    /// mirror runs for a contract the catalog wants mirrored and assigned to
    /// this link, while the lease holds.
    fn reconcile(&mut self, view: &CatalogView, lease: &Lease) {
        let mut desired = view.desired();
        let valid = lease.valid();
        desired.retain(|id, _| valid && self.assigned.contains(id));
        for (id, running) in std::mem::take(&mut self.running) {
            if desired.get(&id) == Some(&running.spec) && !running.cancel.is_cancelled() {
                self.running.insert(id, running);
            } else {
                // Held until its task ends: it may still be writing.
                tracing::info!(contract = %id, "stopping mirror");
                running.cancel.cancel();
                self.stopping.push((id, running.task));
            }
        }
        self.reap();
        self.refused.retain(|id| desired.contains_key(id));
        for (id, spec) in desired {
            // A mirror of it still stopping must finish first: it writes.
            if self.running.contains_key(&id)
                || self.refused.contains(&id)
                || self.stopping.iter().any(|(stopping, _)| *stopping == id)
            {
                continue;
            }
            let status =
                StatusReporter::new(self.catalog.clone(), id.clone(), self.metrics.clone());
            let reshaper = match ContractTerms::from_pb(Some(&spec.terms))
                .and_then(|terms| Reshaper::new(&terms, self.hash_key.as_deref()))
            {
                Ok(reshaper) => reshaper,
                Err(refusal) => {
                    // Copying data the terms cannot be applied to would leak it.
                    let refusal = format!(
                        "cannot apply the contract's terms: {refusal}; nothing is mirrored"
                    );
                    tracing::warn!(contract = %id, "{refusal}");
                    tokio::spawn(async move { status.error(&refusal).await });
                    self.refused.insert(id);
                    continue;
                }
            };
            if let Err(refusal) = self.check_ownership(&spec) {
                // Written before clusters had owners: never copy across them.
                let refusal = format!("{refusal}; nothing is mirrored");
                tracing::warn!(contract = %id, "{refusal}");
                tokio::spawn(async move { status.error(&refusal).await });
                self.refused.insert(id);
                continue;
            }
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
                self.refused.insert(id);
                continue;
            };
            tracing::info!(contract = %id, member = %self.member, "starting mirror");
            let cancel = lease.mirror_token();
            let mirror = Mirror {
                rate: std::num::NonZeroU32::new(spec.terms.max_records_per_second),
                spec: spec.clone(),
                source,
                destination,
                reshaper,
                catalog: self.catalog.clone(),
            };
            let task = tokio::spawn(mirror.run(status, cancel.clone()));
            self.running.insert(id, Running { spec, cancel, task });
        }
    }

    /// The source must be a cluster of the stream's owner and the
    /// destination one of the consumer's, neither on a reserved topic.
    fn check_ownership(&self, spec: &MirrorSpec) -> Result<(), String> {
        use freeport_common::ownership::{check_destination, check_stream_home};
        let parse = |name: &str| ClusterName::parse(name).map_err(|e| e.to_string());
        check_stream_home(
            &self.clusters,
            &parse(&spec.source_cluster)?,
            &spec.source_topic,
            &spec.owner,
        )
        .map_err(|e| format!("source {e}"))?;
        check_destination(
            &self.clusters,
            &parse(&spec.destination_cluster)?,
            &spec.destination_topic,
            &spec.consumer,
        )
        .map_err(|e| e.to_string())
    }

    fn cluster(&self, name: &str) -> Option<freeport_common::config::ClusterConfig> {
        let name = ClusterName::parse(name).ok()?;
        self.clusters.get(&name).cloned()
    }
}

/// A name unique to this process: the host's (a pod's name on Kubernetes)
/// and a random suffix, so a restarted process is a new member.
fn member_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "link".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}
