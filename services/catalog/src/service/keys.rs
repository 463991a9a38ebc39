//! Credentials: API keys issued (shown once, stored as their SHA-256),
//! listed, rotated with an overlap, revoked, and expiring. Every change is
//! audited and is a change-log entity, so Watch tells every portal about a
//! withdrawn key as soon as it is committed. When a key was last used is
//! kept in memory and written to the store about once a minute: an
//! authentication is a read, never a write.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::domain::NewKey;
use crate::domain::{KeyState, RevokedCertificate, Withdrawal};

/// The longest name a key may have.
const MAX_KEY_NAME_CHARS: usize = 100;
/// The longest a rotated key may go on working beside its successor.
pub const MAX_ROTATION_OVERLAP_MS: i64 = 30 * 86_400_000;
/// How often last-used times reach the store.
const KEY_USE_FLUSH: Duration = Duration::from_secs(60);

/// When each key (by hash) last authenticated a call, not yet written.
#[derive(Debug, Default)]
pub(crate) struct KeyUse(std::sync::Mutex<HashMap<String, i64>>);

impl KeyUse {
    fn note(&self, key_sha256: &str, at_ms: i64) {
        if let Ok(mut used) = self.0.lock() {
            used.insert(key_sha256.to_string(), at_ms);
        }
    }

    /// Notes `at_ms` unless a later use is noted already.
    fn note_at_most(&self, key_sha256: &str, at_ms: i64) {
        if key_sha256.len() != 64 {
            return;
        }
        if let Ok(mut used) = self.0.lock() {
            let last = used.entry(key_sha256.to_string()).or_insert(at_ms);
            *last = (*last).max(at_ms);
        }
    }

    fn get(&self, key_sha256: &str) -> Option<i64> {
        self.0.lock().ok()?.get(key_sha256).copied()
    }

    fn take(&self) -> HashMap<String, i64> {
        self.0
            .lock()
            .map(|mut used| std::mem::take(&mut *used))
            .unwrap_or_default()
    }
}

/// A SHA-256 fingerprint as lowercase hex; the common "AB:CD:..." form is
/// accepted too.
pub(crate) fn fingerprint(field: &str, raw: &str) -> Result<String, CatalogError> {
    let hex: String = raw
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CatalogError::InvalidField(format!(
            "{field} {:?} is not a SHA-256 fingerprint (64 hex digits)",
            raw.chars().take(100).collect::<String>()
        )));
    }
    Ok(hex)
}

impl NewKey {
    fn check(&self, now: i64) -> Result<(), CatalogError> {
        let name = self.name.as_str();
        if name.chars().count() > MAX_KEY_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(CatalogError::InvalidField(format!(
                "name must be at most {MAX_KEY_NAME_CHARS} printable characters"
            )));
        }
        if self.expires_at_ms.is_some_and(|end| end <= now) {
            return Err(CatalogError::InvalidField(
                "expires_at_ms must be in the future".into(),
            ));
        }
        Ok(())
    }
}

impl Catalog {
    /// The principal a presented key stands for. A key that does not exist
    /// is `Unauthenticated`; one revoked or past its expiry is
    /// `CredentialWithdrawn`, saying which and since when.
    pub fn authenticate(&self, api_key: &str) -> Result<Principal, CatalogError> {
        self.authenticate_key(api_key)
            .map(|(principal, _)| principal)
    }

    /// [`Catalog::authenticate`], with when the key expires.
    pub fn authenticate_key(
        &self,
        api_key: &str,
    ) -> Result<(Principal, Option<i64>), CatalogError> {
        if api_key.is_empty() || api_key.len() > 256 {
            return Err(CatalogError::Unauthenticated);
        }
        let record = self
            .store
            .get_api_key(&sha256_hex(api_key))?
            .ok_or(CatalogError::Unauthenticated)?;
        let now = now_ms();
        match record.state(now) {
            KeyState::Active => {}
            KeyState::Revoked => {
                return Err(CatalogError::CredentialWithdrawn(format!(
                    "API key {} was revoked at {} ms",
                    record.key_id,
                    record.revoked.as_ref().map_or(0, |r| r.at_ms)
                )))
            }
            KeyState::Expired => {
                return Err(CatalogError::CredentialWithdrawn(format!(
                    "API key {} expired at {} ms",
                    record.key_id,
                    record.expires_at_ms.unwrap_or_default()
                )))
            }
        }
        self.key_use.note(&record.key_sha256, now);
        let principal = match (record.role, record.org) {
            (Role::Admin, _) => Principal::Admin {
                key_id: record.key_id,
            },
            (Role::Member, Some(org)) => Principal::Member {
                org,
                key_id: record.key_id,
            },
            (Role::Member, None) => return Err(CatalogError::Unauthenticated),
        };
        Ok((principal, record.expires_at_ms))
    }

    /// An admin manages every organization's keys; a member its own.
    fn require_key_manager(actor: &Principal, org: &OrgName) -> Result<(), CatalogError> {
        if actor.is_admin() || actor.org() == Some(org) {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!(
                "only an admin or a member of {org} may manage its API keys"
            )))
        }
    }

    /// Issues an API key; returns its record and the key itself, which is
    /// not kept anywhere and cannot be shown again. Admins issue admin keys
    /// and keys of any organization; a member, keys of its own.
    pub async fn create_api_key(
        &self,
        actor: &Principal,
        role: Role,
        org: Option<OrgName>,
        new: NewKey,
    ) -> Result<(ApiKeyRecord, String), CatalogError> {
        match (&org, role) {
            (Some(org), Role::Member) => Self::require_key_manager(actor, org)?,
            _ => Self::require_admin(actor, "issue admin keys")?,
        }
        let _guard = self.write_lock.lock().await;
        self.issue_locked(actor.audit_name(), role, org, new, None)
            .await
    }

    /// Issues the first admin key of an empty catalog; `None` when an admin
    /// key exists already.
    pub async fn bootstrap_admin_key(&self) -> Result<Option<(String, String)>, CatalogError> {
        let _guard = self.write_lock.lock().await;
        if self
            .store
            .list_api_keys()?
            .iter()
            .any(|k| k.role == Role::Admin)
        {
            return Ok(None);
        }
        let (record, key) = self
            .issue_locked(
                "system:bootstrap".into(),
                Role::Admin,
                None,
                NewKey::default(),
                None,
            )
            .await?;
        Ok(Some((record.key_id, key)))
    }

    /// Issues a key under the write lock, which the caller holds.
    async fn issue_locked(
        &self,
        actor: String,
        role: Role,
        org: Option<OrgName>,
        new: NewKey,
        replaces: Option<ApiKeyRecord>,
    ) -> Result<(ApiKeyRecord, String), CatalogError> {
        let now = now_ms();
        new.check(now)?;
        match (role, &org) {
            (Role::Admin, Some(_)) => {
                return Err(CatalogError::InvalidField(
                    "an admin key belongs to no organization".into(),
                ))
            }
            (Role::Member, None) => {
                return Err(CatalogError::InvalidField(
                    "a member key needs an organization".into(),
                ))
            }
            _ => {}
        }
        if let Some(org) = &org {
            if self.store.get_org(org)?.is_none() {
                return Err(CatalogError::OrganizationNotFound(org.to_string()));
            }
        }
        let key = format!("fpk_{}", hex::encode(rand::random::<[u8; 32]>()));
        let record = ApiKeyRecord {
            key_id: format!("key-{}", hex::encode(rand::random::<[u8; 6]>())),
            key_sha256: sha256_hex(&key),
            role,
            org,
            created_at_ms: now,
            name: new.name,
            expires_at_ms: new.expires_at_ms,
            revoked: None,
            last_used_ms: None,
            replaces: replaces.as_ref().map(|old| old.key_id.clone()),
        };
        let mut changes = vec![Change::ApiKey(record.clone())];
        let mut audit = vec![AuditRecord::new(
            actor.clone(),
            if replaces.is_some() {
                "api_key.rotate"
            } else {
                "api_key.issue"
            },
            format!("api_key:{}", record.key_id),
            json!({
                "role": record.role,
                "organization": record.org,
                "name": record.name,
                "expires_at_ms": record.expires_at_ms,
                "replaces": record.replaces,
            }),
        )];
        if let Some(old) = replaces {
            audit.push(AuditRecord::new(
                actor,
                "api_key.retire",
                format!("api_key:{}", old.key_id),
                json!({"expires_at_ms": old.expires_at_ms, "replaced_by": record.key_id}),
            ));
            changes.push(Change::ApiKey(old));
        }
        self.commit(Commit::audited(changes, audit)).await?;
        Ok((record, key))
    }

    /// `org`'s keys, oldest first, without their hashes' use: id, name,
    /// dates and state.
    pub fn list_api_keys(
        &self,
        actor: &Principal,
        org: &OrgName,
    ) -> Result<Vec<ApiKeyRecord>, CatalogError> {
        Self::require_key_manager(actor, org)?;
        if self.store.get_org(org)?.is_none() {
            return Err(CatalogError::OrganizationNotFound(org.to_string()));
        }
        let mut keys: Vec<ApiKeyRecord> = self
            .store
            .list_api_keys()?
            .into_iter()
            .filter(|k| k.org.as_ref() == Some(org))
            .map(|mut k| {
                if let Some(used) = self.key_use.get(&k.key_sha256) {
                    k.last_used_ms = Some(used);
                }
                k
            })
            .collect();
        keys.sort_by(|a, b| (a.created_at_ms, &a.key_id).cmp(&(b.created_at_ms, &b.key_id)));
        Ok(keys)
    }

    /// Every key record and the revision they are consistent with, for
    /// the services' view of the catalog (followed on by Watch).
    pub async fn all_api_keys(&self) -> Result<(Vec<ApiKeyRecord>, u64), CatalogError> {
        let _guard = self.write_lock.lock().await;
        Ok((self.store.list_api_keys()?, self.store.revision()?))
    }

    /// `org`'s key `key_id`, read under the write lock.
    fn org_key(&self, org: &OrgName, key_id: &str) -> Result<ApiKeyRecord, CatalogError> {
        self.store
            .list_api_keys()?
            .into_iter()
            .find(|k| k.key_id == key_id && k.org.as_ref() == Some(org))
            .ok_or_else(|| CatalogError::KeyNotFound {
                org: org.to_string(),
                key_id: key_id.chars().take(80).collect(),
            })
    }

    /// Withdraws a key at once. Revoking it again is refused and changes
    /// nothing.
    pub async fn revoke_api_key(
        &self,
        actor: &Principal,
        org: &OrgName,
        key_id: &str,
        reason: String,
    ) -> Result<ApiKeyRecord, CatalogError> {
        Self::require_key_manager(actor, org)?;
        check_text("reason", &reason, false)?;
        let _guard = self.write_lock.lock().await;
        let mut record = self.org_key(org, key_id)?;
        if let Some(revoked) = &record.revoked {
            return Err(CatalogError::Conflict(format!(
                "API key {key_id} was revoked already, at {} ms",
                revoked.at_ms
            )));
        }
        record.revoked = Some(Withdrawal {
            at_ms: now_ms(),
            by: actor.audit_name(),
            reason: reason.clone(),
        });
        self.commit(Commit::one(
            Change::ApiKey(record.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "api_key.revoke",
                format!("api_key:{key_id}"),
                json!({"organization": org, "reason": reason}),
            ),
        ))
        .await?;
        Ok(record)
    }

    /// Issues a successor to an active key and lets the old one go on
    /// working for `overlap_ms` (at most [`MAX_ROTATION_OVERLAP_MS`], and
    /// never past its own expiry), so its holder can switch without a gap.
    /// Returns the new key's record and secret, and the old key's record.
    pub async fn rotate_api_key(
        &self,
        actor: &Principal,
        org: &OrgName,
        key_id: &str,
        overlap_ms: i64,
        new: NewKey,
    ) -> Result<(ApiKeyRecord, String, ApiKeyRecord), CatalogError> {
        Self::require_key_manager(actor, org)?;
        if !(0..=MAX_ROTATION_OVERLAP_MS).contains(&overlap_ms) {
            return Err(CatalogError::InvalidField(format!(
                "overlap must be between 0 and {} seconds",
                MAX_ROTATION_OVERLAP_MS / 1000
            )));
        }
        let _guard = self.write_lock.lock().await;
        let mut old = self.org_key(org, key_id)?;
        let now = now_ms();
        let state = old.state(now);
        if state != KeyState::Active {
            return Err(CatalogError::Conflict(format!(
                "API key {key_id} is {}; only an active key can be rotated",
                state.as_str()
            )));
        }
        let until = now.saturating_add(overlap_ms);
        old.expires_at_ms = Some(old.expires_at_ms.map_or(until, |end| end.min(until)));
        let new = NewKey {
            name: if new.name.is_empty() {
                old.name.clone()
            } else {
                new.name
            },
            ..new
        };
        let (record, key) = self
            .issue_locked(
                actor.audit_name(),
                old.role,
                old.org.clone(),
                new,
                Some(old.clone()),
            )
            .await?;
        Ok((record, key, old))
    }

    /// An admin withdraws one of `org`'s client certificates: it no longer
    /// identifies the organization, whether by its `urn:freeport:org:` name
    /// or by a trusted fingerprint (which is dropped). Revoking it again is
    /// refused and changes nothing.
    pub async fn revoke_certificate(
        &self,
        actor: &Principal,
        org: &OrgName,
        raw_fingerprint: &str,
        reason: String,
    ) -> Result<Organization, CatalogError> {
        Self::require_admin(actor, "revoke client certificates")?;
        let fingerprint = fingerprint("fingerprint", raw_fingerprint)?;
        check_text("reason", &reason, false)?;
        let _guard = self.write_lock.lock().await;
        let mut organization = self
            .store
            .get_org(org)?
            .ok_or_else(|| CatalogError::OrganizationNotFound(org.to_string()))?;
        if let Some(done) = organization
            .revoked_certificates
            .iter()
            .find(|c| c.fingerprint == fingerprint)
        {
            return Err(CatalogError::Conflict(format!(
                "certificate {fingerprint} of {org} was revoked already, at {} ms",
                done.withdrawal.at_ms
            )));
        }
        organization
            .trusted_cert_fingerprints
            .retain(|f| *f != fingerprint);
        organization.revoked_certificates.push(RevokedCertificate {
            fingerprint: fingerprint.clone(),
            withdrawal: Withdrawal {
                at_ms: now_ms(),
                by: actor.audit_name(),
                reason: reason.clone(),
            },
        });
        self.commit(Commit::one(
            Change::Organization(organization.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "certificate.revoke",
                format!("organization:{org}"),
                json!({"fingerprint": fingerprint, "reason": reason}),
            ),
        ))
        .await?;
        Ok(organization)
    }

    /// When keys were used, as a portal that authenticated callers itself
    /// saw it; written with the next flush. Unknown hashes are ignored.
    pub fn record_key_use(&self, uses: impl IntoIterator<Item = (String, i64)>) {
        let now = now_ms();
        for (hash, at) in uses {
            // A clock ahead of ours does not make a key look used later.
            self.key_use.note_at_most(&hash, at.min(now));
        }
    }

    /// Writes the last-used times noted since the last call.
    pub async fn flush_key_use(&self) -> Result<(), CatalogError> {
        let used = self.key_use.take();
        if used.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        let mut records = Vec::with_capacity(used.len());
        for (hash, at) in &used {
            // Read under the lock: a revocation since then is kept.
            if let Some(mut record) = self.store.get_api_key(hash)? {
                if record.last_used_ms < Some(*at) {
                    record.last_used_ms = Some(*at);
                    records.push(record);
                }
            }
        }
        // Not an event and not audited: nothing about the key changed.
        self.commit(Commit {
            api_keys: records,
            ..Commit::default()
        })
        .await?;
        Ok(())
    }

    /// Writes last-used times about once a minute, and once more at
    /// shutdown.
    pub async fn run_key_use_flush(self: Arc<Self>) {
        loop {
            let stopping = tokio::select! {
                _ = self.shutdown.cancelled() => true,
                _ = tokio::time::sleep(KEY_USE_FLUSH) => false,
            };
            if let Err(e) = self.flush_key_use().await {
                tracing::warn!(error = %e, "cannot record when API keys were last used");
            }
            if stopping {
                return;
            }
        }
    }
}
