//! Organizations. Their credentials are in [`super::keys`].

use freeport_common::names::OrgName;
use freeport_common::now_ms;
use serde_json::json;

use super::{check_text, keys, Catalog};
use crate::audit::AuditRecord;
use crate::domain::{Change, OrgDetails, OrgKind, Organization, Principal};
use crate::error::CatalogError;
use crate::store::Commit;

impl Catalog {
    pub async fn create_organization(
        &self,
        actor: &Principal,
        name: OrgName,
        kind: OrgKind,
        details: OrgDetails,
    ) -> Result<Organization, CatalogError> {
        Self::require_admin(actor, "create organizations")?;
        check_text("display_name", &details.display_name, false)?;
        if details.contacts.len() > 20 {
            return Err(CatalogError::InvalidField("contacts: at most 20".into()));
        }
        for (i, contact) in details.contacts.iter().enumerate() {
            check_text(&format!("contacts[{i}].name"), &contact.name, true)?;
            let email = contact.email.as_str();
            let plausible = email.len() <= 254
                && !email.chars().any(char::is_whitespace)
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !plausible {
                return Err(CatalogError::InvalidField(format!(
                    "contacts[{i}].email {email:?} is not an email address"
                )));
            }
        }
        let mut fingerprints = Vec::with_capacity(details.trusted_cert_fingerprints.len());
        for (i, raw) in details.trusted_cert_fingerprints.iter().enumerate() {
            fingerprints.push(keys::fingerprint(
                &format!("trusted_cert_fingerprints[{i}]"),
                raw,
            )?);
        }
        let display_name = details.display_name;
        let _guard = self.write_lock.lock().await;
        if self.store.get_org(&name)?.is_some() {
            return Err(CatalogError::AlreadyExists(format!(
                "organization {:?} already exists",
                name.as_str()
            )));
        }
        let org = Organization {
            name,
            kind,
            display_name,
            created_at_ms: now_ms(),
            contacts: details.contacts,
            trusted_cert_fingerprints: fingerprints,
            revoked_certificates: vec![],
        };
        self.commit(Commit::one(
            Change::Organization(org.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "organization.create",
                format!("organization:{}", org.name),
                json!({"kind": org.kind, "display_name": org.display_name}),
            ),
        ))
        .await?;
        Ok(org)
    }

    pub fn list_organizations(&self) -> Result<Vec<Organization>, CatalogError> {
        Ok(self.store.list_orgs()?)
    }
}
