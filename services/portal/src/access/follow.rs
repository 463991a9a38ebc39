//! Following the catalog: its snapshot, then its Watch stream, readiness
//! while it is away, catching up for read-your-writes, and the key uses
//! reported back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freeport_common::error::ErrorCode;
use freeport_common::ops::Readiness;
use freeport_common::proto::catalog::v1 as pb;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{AccessView, Index, KEY_USE_REPORT, RECONNECT, VIEW_CHECK};
use crate::catalog_client::CatalogClient;
use crate::credentials::Change;
use crate::error::{ApiError, ApiResult};

impl AccessView {
    /// Takes the catalog's snapshot, then follows its Watch stream, until
    /// `shutdown`; after losing the catalog, follows on from the last
    /// revision it saw. Announces contract changes and withdrawn
    /// credentials on `changes`, and how current it is as readiness check
    /// [`VIEW_CHECK`].
    pub async fn follow(
        self: Arc<Self>,
        changes: broadcast::Sender<Change>,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) {
        readiness.set(VIEW_CHECK, Err("loading the catalog".into()));
        let catalog = self.catalog.clone();
        let reporter = tokio::spawn(
            self.clone()
                .report_key_use(catalog.clone(), shutdown.clone()),
        );
        loop {
            let followed = self.follow_once(&catalog, &changes, &readiness);
            let lost = tokio::select! {
                _ = shutdown.cancelled() => break,
                lost = followed => lost,
            };
            tracing::warn!(error = %lost.message, "lost the catalog's Watch stream; serving from the last view");
            self.went_stale(&readiness);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RECONNECT) => {}
            }
        }
        let _ = reporter.await;
    }

    async fn follow_once(
        &self,
        catalog: &CatalogClient,
        changes: &broadcast::Sender<Change>,
        readiness: &Readiness,
    ) -> ApiError {
        let mut revision = self.read().revision;
        if !self.is_loaded() {
            match self.snapshot(catalog).await {
                Ok(index) => {
                    revision = index.revision;
                    *self
                        .index
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = index;
                    self.revision.send_replace(revision);
                }
                Err(e) => return e,
            }
        }
        let mut watch = match catalog.watch(revision).await {
            Ok(watch) => watch,
            Err(e) => return e,
        };
        self.became_current(readiness);
        loop {
            let event = match watch.message().await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return ApiError::new(
                        ErrorCode::Unavailable,
                        "the catalog ended the Watch stream",
                    )
                }
                Err(status) => return status.into(),
            };
            let Some(change) = event.change else { continue };
            let announced = {
                let mut index = self
                    .index
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                index.revision = event.revision;
                index.apply(change)
            };
            self.revision.send_replace(event.revision);
            for change in announced {
                // No receivers is fine: nobody is reading.
                let _ = changes.send(change);
            }
        }
    }

    /// `decide` on the view; when it answers that something does not exist
    /// or is not allowed, the view may only be behind a write just made
    /// (a key just issued, a stream just registered, a contract just
    /// activated): wait until it has caught up with the catalog's current
    /// revision (one small call, only on such answers) and decide again.
    pub(super) async fn settled<T>(&self, decide: impl Fn(&Self) -> ApiResult<T>) -> ApiResult<T> {
        let refused = match decide(self) {
            Ok(decided) => return Ok(decided),
            Err(refused) => refused,
        };
        let retry = matches!(
            refused.code,
            ErrorCode::Unauthenticated
                | ErrorCode::TopicNotFound
                | ErrorCode::StreamNotFound
                | ErrorCode::NoActiveContract
                | ErrorCode::Forbidden
        );
        if !retry || !self.caught_up().await {
            return Err(refused);
        }
        decide(self)
    }

    /// Waits (at most 2 s) until the view reflects the catalog's current
    /// revision; false when it could not (the catalog is away: the view is
    /// all there is).
    pub async fn caught_up(&self) -> bool {
        const CATCH_UP: Duration = Duration::from_secs(2);
        let Ok(latest) = self.catalog.current_revision().await else {
            return false;
        };
        let mut revision = self.revision.subscribe();
        let caught_up = tokio::time::timeout(CATCH_UP, revision.wait_for(|r| *r >= latest)).await;
        matches!(caught_up, Ok(Ok(_)))
    }

    /// Everything, consistent with (or newer than) the revision the keys
    /// were listed at; Watch replays whatever came after it.
    async fn snapshot(&self, catalog: &CatalogClient) -> ApiResult<Index> {
        let (keys, revision) = catalog.service_keys().await?;
        let orgs = catalog.list_organizations().await?;
        let streams = catalog.list_streams().await?;
        let contracts = catalog.list_contracts().await?;
        let mut index = Index {
            revision,
            ..Index::default()
        };
        for org in orgs {
            index.apply(pb::watch_event::Change::Organization(org));
        }
        for key in keys {
            index.apply(pb::watch_event::Change::ApiKey(key));
        }
        for stream in streams {
            index.apply(pb::watch_event::Change::Stream(stream));
        }
        for contract in contracts {
            index.apply(pb::watch_event::Change::Contract(contract));
        }
        Ok(index)
    }

    fn is_loaded(&self) -> bool {
        self.health.lock().is_ok_and(|h| h.loaded)
    }

    fn became_current(&self, readiness: &Readiness) {
        if let Ok(mut health) = self.health.lock() {
            health.loaded = true;
            health.stale_since = None;
        }
        readiness.set(VIEW_CHECK, Ok(()));
    }

    fn went_stale(&self, readiness: &Readiness) {
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        if !health.loaded {
            readiness.set(VIEW_CHECK, Err("cannot load the catalog".into()));
            return;
        }
        let (_, at_ms) = *health
            .stale_since
            .get_or_insert((Instant::now(), freeport_common::now_ms()));
        readiness.set(
            VIEW_CHECK,
            Err(format!(
                "stale since {at_ms} ms: the catalog is unreachable; the data plane serves from the last view for up to {} s",
                self.max_staleness.as_secs()
            )),
        );
    }

    /// Tells the catalog when keys were last used, about once a minute and
    /// at shutdown.
    async fn report_key_use(self: Arc<Self>, catalog: CatalogClient, shutdown: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tokio::time::sleep(KEY_USE_REPORT) => false,
            };
            let uses = self
                .key_use
                .lock()
                .map(|mut used| std::mem::take(&mut *used))
                .unwrap_or_default();
            if !uses.is_empty() {
                if let Err(e) = catalog.record_key_use(uses.clone()).await {
                    tracing::warn!(error = %e.message, "cannot tell the catalog when keys were used; keeping them for the next report");
                    if let Ok(mut used) = self.key_use.lock() {
                        for (hash, at) in uses {
                            let last = used.entry(hash).or_insert(at);
                            *last = (*last).max(at);
                        }
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}
