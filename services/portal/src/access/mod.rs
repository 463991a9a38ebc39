//! Every access decision of the portal, answered from a live, indexed view
//! of the catalog: organizations, API keys (by hash), streams (by name, by
//! topic, by owner, their schema versions by global id) and contracts
//! (active ones by consumer and stream).
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

mod follow;
mod index;
mod registry;

pub use registry::{Holder, SubjectStream};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use freeport_common::authz::Authorizer;
use freeport_common::error::ErrorCode;
use freeport_common::names::{is_reserved_topic, ClusterName};
use freeport_common::proto::catalog::v1 as pb;
use sha2::Digest;

use crate::catalog_client::CatalogClient;
use crate::error::{ApiError, ApiResult};

use index::{as_subject, past_end, Index};

/// The readiness check that says whether the view is current.
pub const VIEW_CHECK: &str = "catalog_view";
/// How often key uses are reported to the catalog.
const KEY_USE_REPORT: Duration = Duration::from_secs(60);
/// How long to wait before following the catalog again after losing it.
const RECONNECT: Duration = Duration::from_secs(1);

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

    /// The contracts that can concern `org`, each with its stream's owner,
    /// in id order: those it requested and those on its streams (every one
    /// for `None`, an admin); only those on `stream` when given, whoever's
    /// they are. Which of them a caller may see is the REST API's rule
    /// (`rest::contracts::visible`), applied by the caller. The work is the
    /// contracts listed, not the catalog's size. Caught up first, as a
    /// listing is: a contract just requested is listed.
    pub async fn contracts_concerning(
        &self,
        org: Option<&str>,
        stream: Option<&str>,
    ) -> ApiResult<Vec<(Arc<pb::Contract>, Option<String>)>> {
        self.caught_up().await;
        self.current()?;
        let index = self.read();
        let on = |stream: &str| index.by_stream.get(stream).into_iter().flatten();
        let ids: BTreeSet<&String> = match (org, stream) {
            (_, Some(stream)) => on(stream).collect(),
            (None, None) => index.contracts.keys().collect(),
            (Some(org), None) => {
                let requested = index.by_consumer.get(org).into_iter().flatten();
                let on_own = index
                    .by_owner
                    .get(org)
                    .into_iter()
                    .flatten()
                    .flat_map(|stream| on(stream));
                requested.chain(on_own).collect()
            }
        };
        Ok(ids
            .into_iter()
            .filter_map(|id| index.contracts.get(id))
            .map(|contract| {
                let owner = index.streams.get(&contract.stream).map(|s| s.owner.clone());
                (contract.clone(), owner)
            })
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
