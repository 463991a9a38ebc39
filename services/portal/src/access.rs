//! Every access decision of the portal, answered from a live, indexed view
//! of the catalog: organizations, API keys (by hash), streams (by name, by
//! topic, by owner) and contracts (active ones by consumer and stream).
//!
//! The view is built from the catalog's snapshot and kept current by its
//! Watch stream ([`AccessView::follow`]); a request never lists the
//! catalog, so its cost depends on what it touches, not on how many
//! streams, contracts or organizations exist. The Cedar policies still
//! decide who may read; they are evaluated against the view.
//!
//! While the catalog is away the view keeps answering from what it holds,
//! for at most `portal.view_max_staleness_secs`: a revocation committed
//! just before the catalog went away, or a contract's end time reached
//! while it is away, is then not yet known here, and the bound caps how
//! long that can last. Beyond it, data-plane calls are refused (503) until
//! the view is current again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use freeport_common::authz::{Authorizer, StreamFacts, Who};
use freeport_common::error::ErrorCode;
use freeport_common::names::{is_reserved_topic, ClusterName};
use freeport_common::ops::Readiness;
use freeport_common::proto::catalog::v1 as pb;
use sha2::Digest;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::catalog_client::CatalogClient;
use crate::credentials::{organization_changes, Change};
use crate::error::{ApiError, ApiResult};

/// The readiness check that says whether the view is current.
pub const VIEW_CHECK: &str = "catalog_view";
/// How often key uses are reported to the catalog.
const KEY_USE_REPORT: Duration = Duration::from_secs(60);
/// How long to wait before following the catalog again after losing it.
const RECONNECT: Duration = Duration::from_secs(1);

/// The catalog as this portal last heard it.
#[derive(Debug, Default)]
struct Index {
    revision: u64,
    orgs: HashMap<String, pb::Organization>,
    /// Trusted certificate fingerprint -> organization.
    trusted: HashMap<String, String>,
    keys: HashMap<String, pb::ApiKey>,
    streams: HashMap<String, Arc<pb::Stream>>,
    /// Topic -> the streams on it (one per cluster at most).
    by_topic: HashMap<String, BTreeSet<String>>,
    /// Owner -> its streams.
    by_owner: HashMap<String, BTreeSet<String>>,
    contracts: HashMap<String, Arc<pb::Contract>>,
    /// (consumer, stream) -> its active contract.
    active: HashMap<(String, String), String>,
    /// Consumer -> its active contracts.
    active_by_consumer: HashMap<String, BTreeSet<String>>,
}

impl Index {
    fn apply(&mut self, change: pb::watch_event::Change) -> Vec<Change> {
        match change {
            pb::watch_event::Change::Organization(org) => {
                let changes = organization_changes(&org);
                self.trusted.retain(|_, owner| *owner != org.name);
                for fingerprint in &org.trusted_cert_fingerprints {
                    self.trusted.insert(fingerprint.clone(), org.name.clone());
                }
                self.orgs.insert(org.name.clone(), org);
                changes
            }
            pb::watch_event::Change::ApiKey(key) => {
                let revoked = key.revoked_at_ms != 0;
                let id = key.key_id.clone();
                if !key.key_sha256.is_empty() {
                    self.keys.insert(key.key_sha256.clone(), key);
                }
                if revoked {
                    vec![Change::KeyRevoked(id)]
                } else {
                    vec![]
                }
            }
            pb::watch_event::Change::Stream(stream) => {
                if let Some(old) = self.streams.get(&stream.name) {
                    if let Some(names) = self.by_topic.get_mut(&old.topic) {
                        names.remove(&old.name);
                    }
                }
                self.by_topic
                    .entry(stream.topic.clone())
                    .or_default()
                    .insert(stream.name.clone());
                self.by_owner
                    .entry(stream.owner.clone())
                    .or_default()
                    .insert(stream.name.clone());
                self.streams.insert(stream.name.clone(), Arc::new(stream));
                vec![]
            }
            pb::watch_event::Change::Contract(contract) => {
                let key = (contract.consumer.clone(), contract.stream.clone());
                if crate::push::is_active(&contract) {
                    self.active.insert(key, contract.id.clone());
                    self.active_by_consumer
                        .entry(contract.consumer.clone())
                        .or_default()
                        .insert(contract.id.clone());
                } else {
                    if self.active.get(&key) == Some(&contract.id) {
                        self.active.remove(&key);
                    }
                    if let Some(ids) = self.active_by_consumer.get_mut(&contract.consumer) {
                        ids.remove(&contract.id);
                    }
                }
                let announced = Change::Contract(Box::new(contract.clone()));
                self.contracts
                    .insert(contract.id.clone(), Arc::new(contract));
                vec![announced]
            }
            pb::watch_event::Change::Document(_) => vec![],
        }
    }

    /// `org`'s active contract on `stream`, unless its end time passed (the
    /// catalog expires it then, but may be away).
    fn active_contract(&self, org: &str, stream: &str) -> Option<Arc<pb::Contract>> {
        let id = self.active.get(&(org.to_string(), stream.to_string()))?;
        let contract = self.contracts.get(id)?;
        (!past_end(contract)).then(|| contract.clone())
    }
}

/// Whether `contract`'s end time has passed (the catalog expires it then,
/// but may be away).
fn past_end(contract: &pb::Contract) -> bool {
    let end = contract.terms.as_ref().map_or(0, |t| t.end_time_ms);
    end != 0 && end <= freeport_common::now_ms()
}

/// Runs `decide` with the policies' facts about `org` (an admin for
/// `None`) and `stream`; false for an organization the view does not know.
fn as_subject(
    index: &Index,
    org: Option<&str>,
    stream: &pb::Stream,
    decide: impl FnOnce(&Who<'_>, &StreamFacts<'_>) -> bool,
) -> bool {
    let classification = crate::rest::classification_name(stream.classification);
    let facts = StreamFacts {
        name: &stream.name,
        owner: &stream.owner,
        classification: &classification,
    };
    match org {
        None => decide(&Who::Admin, &facts),
        Some(name) => {
            let Some(org) = index.orgs.get(name) else {
                return false;
            };
            let kind = crate::rest::org_kind_name(org.kind);
            decide(&Who::Org { name, kind: &kind }, &facts)
        }
    }
}

/// How current the view is.
#[derive(Debug)]
struct Health {
    /// Set once the first snapshot is in.
    loaded: bool,
    /// Since when the catalog's Watch stream is lost, if it is.
    stale_since: Option<(Instant, i64)>,
}

/// The portal's view of the catalog, and every decision taken from it.
pub struct AccessView {
    index: RwLock<Index>,
    /// The revision the index reflects, for callers waiting to catch up.
    revision: tokio::sync::watch::Sender<u64>,
    catalog: CatalogClient,
    health: Mutex<Health>,
    max_staleness: Duration,
    authz: Authorizer,
    /// Keys used since the last report to the catalog, by hash.
    key_use: Mutex<HashMap<String, i64>>,
}

/// A stream the caller may read, and the contract it reads under (none for
/// its own streams and for admins).
pub struct Readable {
    pub stream: Arc<pb::Stream>,
    pub contract: Option<Arc<pb::Contract>>,
}

impl Readable {
    pub fn cluster(&self) -> ApiResult<ClusterName> {
        ClusterName::parse(self.stream.cluster.clone())
            .map_err(|e| ApiError::internal("stream names an invalid cluster", e))
    }
}

impl AccessView {
    pub fn new(authz: Authorizer, max_staleness: Duration, catalog: CatalogClient) -> AccessView {
        AccessView {
            index: RwLock::new(Index::default()),
            revision: tokio::sync::watch::channel(0).0,
            catalog,
            health: Mutex::new(Health {
                loaded: false,
                stale_since: None,
            }),
            max_staleness,
            authz,
            key_use: Mutex::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The data plane may act on the view: it is loaded and not stale
    /// beyond the bound.
    pub fn current(&self) -> ApiResult<()> {
        let health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !health.loaded {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the portal has not loaded the catalog yet; try again",
            ));
        }
        match health.stale_since {
            Some((since, at_ms)) if since.elapsed() > self.max_staleness => {
                Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the catalog has been unreachable since {at_ms} ms, longer than this portal may act on what it last heard ({} s); try again",
                        self.max_staleness.as_secs()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    // ---- following the catalog ----

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
    async fn settled<T>(&self, decide: impl Fn(&Self) -> ApiResult<T>) -> ApiResult<T> {
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
    async fn caught_up(&self) -> bool {
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

    // ---- who is calling ----

    /// The principal an API key stands for. A key that does not exist is
    /// 40101; one revoked or past its expiry is 40102.
    pub async fn authenticate(&self, api_key: &str) -> ApiResult<pb::Principal> {
        self.settled(|view| view.authenticate_now(api_key)).await
    }

    /// The organization a client certificate speaks for: the one its
    /// `urn:freeport:org:` URI names, or the one trusting its fingerprint;
    /// refused when that organization revoked it.
    pub async fn certificate_org(&self, der: &[u8], fingerprint: &str) -> ApiResult<String> {
        self.settled(|view| view.certificate_org_now(der, fingerprint))
            .await
    }

    /// The stream on `topic` that `org` owns and may produce to. 40304 for
    /// the hub's own topics, 40401 when no stream has it, 40301 when it is
    /// another organization's.
    pub async fn producible(&self, org: &str, topic: &str) -> ApiResult<Arc<pb::Stream>> {
        self.settled(|view| view.producible_now(org, topic)).await
    }

    /// How the caller may read `topic`: as its owner (or an admin), or
    /// under its active contract. 40304 for the hub's own topics, 40401
    /// when no stream has it, 40302 without an active contract.
    pub async fn readable_topic(&self, org: Option<&str>, topic: &str) -> ApiResult<Readable> {
        self.settled(|view| view.readable_topic_now(org, topic))
            .await
    }

    /// The stream `name` for a feed of `org`'s and the active contract it
    /// reads under; a stream `org` may not discover is not found, one it
    /// holds no active contract on is 40302.
    pub async fn feed_stream(
        &self,
        org: &str,
        name: &str,
    ) -> ApiResult<(Arc<pb::Stream>, Arc<pb::Contract>)> {
        self.settled(|view| view.feed_stream_now(org, name)).await
    }

    /// Contract `id` while it is active (and before its end time); why not
    /// otherwise (40302).
    pub async fn active(&self, id: &str) -> ApiResult<Arc<pb::Contract>> {
        self.settled(|view| view.active_now(id)).await
    }

    /// The principal an API key stands for. A key that does not exist is
    /// 40101; one revoked or past its expiry is 40102.
    fn authenticate_now(&self, api_key: &str) -> ApiResult<pb::Principal> {
        let unauthenticated =
            || ApiError::new(ErrorCode::Unauthenticated, "unknown or missing credentials");
        if api_key.is_empty() || api_key.len() > 256 {
            return Err(unauthenticated());
        }
        self.current()?;
        let hash = hex::encode(sha2::Sha256::digest(api_key.as_bytes()));
        let key = self
            .read()
            .keys
            .get(&hash)
            .cloned()
            .ok_or_else(unauthenticated)?;
        let now = freeport_common::now_ms();
        if key.revoked_at_ms != 0 {
            return Err(ApiError::new(
                ErrorCode::CredentialWithdrawn,
                format!(
                    "API key {} was revoked at {} ms",
                    key.key_id, key.revoked_at_ms
                ),
            ));
        }
        if key.expires_at_ms != 0 && key.expires_at_ms <= now {
            return Err(ApiError::new(
                ErrorCode::CredentialWithdrawn,
                format!("API key {} expired at {} ms", key.key_id, key.expires_at_ms),
            ));
        }
        if let Ok(mut used) = self.key_use.lock() {
            used.insert(hash, now);
        }
        let member = key.role == i32::from(pb::Role::Member);
        if member && key.organization.is_empty() {
            return Err(unauthenticated());
        }
        Ok(pb::Principal {
            role: key.role,
            organization: if member {
                key.organization
            } else {
                String::new()
            },
            key_id: key.key_id,
            expires_at_ms: key.expires_at_ms,
        })
    }

    /// The organization a client certificate speaks for: the one its
    /// `urn:freeport:org:` URI names, or the one trusting its fingerprint;
    /// refused when that organization revoked it.
    fn certificate_org_now(&self, der: &[u8], fingerprint: &str) -> ApiResult<String> {
        self.current()?;
        let index = self.read();
        let org = match freeport_common::tls::certificate_org(der) {
            Some(name) => index.orgs.get(&name).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    format!("the client certificate names organization {name:?}, which does not exist"),
                )
            })?,
            None => index
                .trusted
                .get(fingerprint)
                .and_then(|name| index.orgs.get(name))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::Unauthenticated,
                        format!("the client certificate names no organization (no urn:freeport:org: URI) and no organization trusts its fingerprint {fingerprint}; send an API key"),
                    )
                })?,
        };
        if let Some(revoked) = org
            .revoked_certificates
            .iter()
            .find(|c| c.fingerprint == fingerprint)
        {
            return Err(ApiError::new(
                ErrorCode::CredentialWithdrawn,
                format!(
                    "the client certificate {fingerprint} of {} was revoked at {} ms",
                    org.name, revoked.revoked_at_ms
                ),
            ));
        }
        Ok(org.name.clone())
    }

    // ---- what it may do ----

    /// Whether the policies let `org` (or an admin, for `None`) read
    /// `stream`, holding an active contract on it or not.
    fn may_read(
        &self,
        index: &Index,
        org: Option<&str>,
        stream: &pb::Stream,
        active: bool,
    ) -> bool {
        as_subject(index, org, stream, |who, facts| {
            self.authz.may_read_records(who, facts, active)
        })
    }

    /// The topic `org` may produce to: the stream on it that `org` owns.
    /// 40304 for the hub's own topics, 40401 when no stream has it, 40301
    /// when it is another organization's.
    fn producible_now(&self, org: &str, topic: &str) -> ApiResult<Arc<pb::Stream>> {
        freeport_common::ownership::check_topic("topic", topic)?;
        self.current()?;
        let index = self.read();
        let names = index.by_topic.get(topic).filter(|n| !n.is_empty());
        let Some(names) = names else {
            return Err(ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic {topic:?} not found"),
            ));
        };
        names
            .iter()
            .filter_map(|name| index.streams.get(name))
            .find(|s| s.owner == org)
            .cloned()
            .ok_or_else(|| {
                ApiError::forbidden(format!(
                    "only the owner of topic {topic:?} may produce to it"
                ))
            })
    }

    /// How the caller may read `topic`: as its owner (or an admin), or
    /// under its active contract. 40304 for the hub's own topics, 40401
    /// when no stream has it, 40302 without an active contract.
    fn readable_topic_now(&self, org: Option<&str>, topic: &str) -> ApiResult<Readable> {
        freeport_common::ownership::check_topic("topic", topic)?;
        self.current()?;
        let index = self.read();
        let streams: Vec<&Arc<pb::Stream>> = index
            .by_topic
            .get(topic)
            .into_iter()
            .flatten()
            .filter_map(|name| index.streams.get(name))
            .collect();
        if streams.is_empty() {
            return Err(ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic {topic:?} not found"),
            ));
        }
        // Own streams first: an owner reads its own topic without a contract.
        let mut candidates: Vec<Readable> = streams
            .into_iter()
            .filter_map(|stream| self.readable(&index, org, stream))
            .collect();
        candidates.sort_by_key(|r| r.contract.is_some());
        candidates.into_iter().next().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoActiveContract,
                format!(
                    "no active contract for topic {topic:?}; request one with POST /v1/contracts"
                ),
            )
        })
    }

    /// `stream` as the caller may read it, if it may.
    fn readable(
        &self,
        index: &Index,
        org: Option<&str>,
        stream: &Arc<pb::Stream>,
    ) -> Option<Readable> {
        if is_reserved_topic(&stream.topic) {
            return None;
        }
        let contract = org.and_then(|org| index.active_contract(org, &stream.name));
        if !self.may_read(index, org, stream, contract.is_some()) {
            return None;
        }
        let own = org.is_none() || org == Some(stream.owner.as_str());
        Some(Readable {
            stream: stream.clone(),
            contract: if own { None } else { contract },
        })
    }

    /// Every stream the caller may read: for an organization its own and
    /// those it holds an active contract on; for an admin every one.
    /// A listing has no refusal to settle on, so it first catches up with
    /// the catalog's current revision (one small call): a contract just
    /// activated is listed.
    pub async fn readable_streams(&self, org: Option<&str>) -> ApiResult<Vec<Readable>> {
        self.caught_up().await;
        self.readable_streams_now(org)
    }

    fn readable_streams_now(&self, org: Option<&str>) -> ApiResult<Vec<Readable>> {
        self.current()?;
        let index = self.read();
        let names: BTreeSet<&String> = match org {
            None => index.streams.keys().collect(),
            Some(org) => {
                let own = index.by_owner.get(org).into_iter().flatten();
                let contracted = index
                    .active_by_consumer
                    .get(org)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| index.contracts.get(id))
                    .map(|c| &c.stream);
                own.chain(contracted).collect()
            }
        };
        Ok(names
            .into_iter()
            .filter_map(|name| index.streams.get(name))
            .filter_map(|stream| self.readable(&index, org, stream))
            .collect())
    }

    /// The stream `name` for a feed of `org`'s, and the active contract it
    /// reads under. A stream the policies do not let `org` discover is not
    /// found, as in discovery; one it sees but holds no active contract on
    /// (or may not read under it) is 40302.
    fn feed_stream_now(
        &self,
        org: &str,
        name: &str,
    ) -> ApiResult<(Arc<pb::Stream>, Arc<pb::Contract>)> {
        self.current()?;
        let not_found = || {
            ApiError::new(
                ErrorCode::StreamNotFound,
                format!(
                    "stream {:?} not found",
                    name.chars().take(80).collect::<String>()
                ),
            )
        };
        let index = self.read();
        let stream = index.streams.get(name).cloned().ok_or_else(not_found)?;
        let contract = index.active_contract(org, name);
        let live = contract.is_some();
        if !as_subject(&index, Some(org), &stream, |who, facts| {
            self.authz.may_view_stream(who, facts, live)
        }) {
            return Err(not_found());
        }
        freeport_common::ownership::check_topic("topic", &stream.topic)?;
        let allowed = self.may_read(&index, Some(org), &stream, live);
        let contract = contract.filter(|_| allowed).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoActiveContract,
                format!(
                    "organization {org:?} has no active contract for stream {:?}; request one with POST /v1/contracts",
                    stream.name
                ),
            )
        })?;
        Ok((stream, contract))
    }

    /// Contract `id` while it is active (and before its end time); why not
    /// otherwise (40302).
    fn active_now(&self, id: &str) -> ApiResult<Arc<pb::Contract>> {
        self.current()?;
        if let Some(reason) = self.inactive_reason(id) {
            return Err(ApiError::new(ErrorCode::NoActiveContract, reason));
        }
        self.read().contracts.get(id).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoActiveContract,
                format!("contract {id} is gone"),
            )
        })
    }

    /// `None` while contract `id` is active; why not otherwise.
    pub fn inactive_reason(&self, id: &str) -> Option<String> {
        let index = self.read();
        match index.contracts.get(id) {
            None => Some(format!("contract {id} is gone")),
            Some(c) if !crate::push::is_active(c) => Some(format!(
                "contract {id} is {}",
                crate::rest::contract_state_name(c.state)
            )),
            Some(c) => past_end(c).then(|| format!("contract {id} reached its end time")),
        }
    }
}
