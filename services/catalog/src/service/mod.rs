//! The catalog's operations and rules, independent of any transport.
//!
//! All writes go through one lock, so each read-check-write is atomic with
//! respect to the others, and events are broadcast in revision order.
//! This file holds what every area shares: the [`Catalog`] itself, the
//! commit path and the caller checks. Each area has its own file:
//! `orgs`, `keys` (credentials), `streams`, `schemas`, `publish` (AsyncAPI),
//! `contracts`, `expiry`, `links` (leases and link status), `ownership`
//! (the report on stores from before ownership) and `watch`. What callers
//! hand in (`NewStream`, `NewContract`, ...) is in [`crate::domain`].

use std::sync::Arc;

use freeport_common::authz::{Authorizer, Who};
use freeport_common::config::Clusters;
use freeport_common::names::OrgName;
use freeport_common::now_ms;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, Mutex};
use tokio_util::sync::CancellationToken;

use crate::asyncapi::AsyncApiValidator;
use crate::audit::AuditRecord;
use crate::domain::{ApiKeyRecord, Change, Event, OrgKind, Organization, Principal, Role};
use crate::error::CatalogError;
use crate::links::LinkShares;
use crate::metrics::CatalogMetrics;
use crate::store::{Commit, Store};

/// Live events kept for slow Watch subscribers before they fall back to
/// reading the change log from the store.
const LIVE_EVENT_BUFFER: usize = 1024;
const CATCH_UP_PAGE: usize = 512;
/// The most characters of a free-text field (a title, a description, a
/// purpose, a reason, a display or contact name), as the OpenAPI document
/// says (`maxLength` counts characters).
const MAX_TEXT_CHARS: usize = 1024;
/// The largest value schema accepted, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;

pub use keys::MAX_ROTATION_OVERLAP_MS;

pub struct Catalog {
    asyncapi: Option<AsyncApiValidator>,
    /// The Cedar policies: who may discover a stream, who may decide on
    /// contracts.
    authz: Authorizer,
    store: Arc<dyn Store>,
    clusters: Clusters,
    write_lock: Mutex<()>,
    events: broadcast::Sender<Event>,
    shutdown: CancellationToken,
    metrics: Option<CatalogMetrics>,
    meter: opentelemetry::metrics::Meter,
    /// Which link process mirrors which contract.
    link_shares: std::sync::Mutex<LinkShares>,
    /// When keys were last used, not yet written ([`keys`]).
    key_use: keys::KeyUse,
    /// The global schema ids, loaded on first use ([`schemas`]).
    schema_ids: std::sync::Mutex<Option<schemas::SchemaIds>>,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A string at a JSON pointer, or empty.
fn text_at(document: &serde_json::Value, pointer: &str) -> String {
    document
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn check_text(field: &str, value: &str, required: bool) -> Result<(), CatalogError> {
    if required && value.trim().is_empty() {
        return Err(CatalogError::InvalidField(format!(
            "{field} must not be empty"
        )));
    }
    let chars = value.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(CatalogError::InvalidField(format!(
            "{field} is {chars} characters; the limit is {MAX_TEXT_CHARS}"
        )));
    }
    Ok(())
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>, clusters: Clusters, shutdown: CancellationToken) -> Catalog {
        let (events, _) = broadcast::channel(LIVE_EVENT_BUFFER);
        Catalog {
            asyncapi: None,
            authz: Authorizer::default(),
            store,
            clusters,
            write_lock: Mutex::new(()),
            events,
            shutdown,
            metrics: None,
            meter: opentelemetry::global::meter("freeport-catalog"),
            link_shares: std::sync::Mutex::new(LinkShares::new(
                crate::links::LEASE,
                std::time::Instant::now(),
                false,
            )),
            key_use: keys::KeyUse::default(),
            schema_ids: std::sync::Mutex::new(None),
        }
    }

    /// Records write latencies and contract counts through `meter`.
    pub fn set_metrics(&mut self, meter: &opentelemetry::metrics::Meter) {
        self.metrics = Some(CatalogMetrics::new(meter, self.store.clone()));
        self.meter = meter.clone();
    }

    /// Where the catalog's instruments record (a no-op one until
    /// [`Catalog::set_metrics`]).
    pub fn meter(&self) -> &opentelemetry::metrics::Meter {
        &self.meter
    }

    /// The revision of the last commit.
    pub fn revision(&self) -> Result<u64, CatalogError> {
        Ok(self.store.revision()?)
    }

    /// Whether the store answers reads: the catalog's readiness.
    pub fn store_readable(&self) -> Result<(), String> {
        self.store.revision().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Decides with these policies instead of the built-in ones.
    pub fn set_policies(&mut self, authz: Authorizer) {
        self.authz = authz;
    }

    /// Enables AsyncAPI publishing, validated against this schema.
    pub fn set_asyncapi_validator(&mut self, validator: AsyncApiValidator) {
        self.asyncapi = Some(validator);
    }

    /// Checks the audit chain: its length, or the first broken entry.
    pub fn verify_audit(&self) -> Result<Result<u64, crate::audit::AuditBreak>, CatalogError> {
        Ok(crate::store::verify_audit(self.store.as_ref())?)
    }

    /// The audit entries about one entity (`contract:<id>`, ...), oldest first.
    pub fn audit_trail(&self, entity: &str) -> Result<Vec<crate::audit::AuditEntry>, CatalogError> {
        let mut trail = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.audit_after(after, CATCH_UP_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            trail.extend(page.into_iter().filter(|e| e.record.entity == entity));
        }
        Ok(trail)
    }

    pub fn clusters(&self) -> &Clusters {
        &self.clusters
    }

    /// Commits and then broadcasts, under the write lock, so subscribers
    /// see events in revision order.
    async fn commit(&self, commit: Commit) -> Result<Vec<Event>, CatalogError> {
        let operation = commit
            .audit
            .first()
            .map_or_else(|| "other".to_string(), |record| record.action.clone());
        let started = std::time::Instant::now();
        let events = if self.store.blocks() {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.commit(commit))
                .await
                .map_err(|e| {
                    CatalogError::Store(crate::store::StoreError::Backend(e.to_string()))
                })??
        } else {
            self.store.commit(commit)?
        };
        if let Some(metrics) = &self.metrics {
            metrics.wrote(&operation, started.elapsed());
        }
        for event in &events {
            // No subscriber is not an error.
            let _ = self.events.send(event.clone());
        }
        Ok(events)
    }

    fn require_admin(actor: &Principal, what: &str) -> Result<(), CatalogError> {
        if actor.is_admin() {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!("only an admin may {what}")))
        }
    }

    fn require_member<'a>(actor: &'a Principal, what: &str) -> Result<&'a OrgName, CatalogError> {
        actor.org().ok_or_else(|| {
            CatalogError::Forbidden(format!(
                "only an organization's key may {what}; admin keys act for no organization"
            ))
        })
    }
}

/// Who a principal is, for the policies: an admin, or a member of an
/// organization of a kind; `None` for a member of an unknown organization.
fn who<'a>(principal: &'a Principal, orgs: &'a [Organization]) -> Option<Who<'a>> {
    match principal.org() {
        None if principal.is_admin() => Some(Who::Admin),
        None => None,
        Some(org) => {
            let kind = orgs.iter().find(|o| &o.name == org)?.kind;
            let kind = match kind {
                OrgKind::Internal => "internal",
                OrgKind::Partner => "partner",
            };
            Some(Who::Org {
                name: org.as_str(),
                kind,
            })
        }
    }
}

mod contracts;
mod expiry;
mod keys;
mod links;
mod orgs;
mod ownership;
mod publish;
mod schemas;
mod streams;
#[cfg(test)]
mod tests;
mod watch;
