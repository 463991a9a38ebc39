//! What link processes tell the catalog and ask of it: which contracts
//! each mirrors (leases) and how each mirror is doing.

use serde_json::json;

use super::Catalog;
use crate::audit::AuditRecord;
use crate::domain::{Change, Contract, ContractAction, ContractState, LinkStatus, RecordPart};
use crate::error::CatalogError;
use crate::links::{LinkShares, Share};
use crate::store::Commit;

impl Catalog {
    /// Grants links `lease`; `fresh` when no link can be holding anything
    /// from before this catalog started.
    pub fn set_link_lease(&mut self, lease: std::time::Duration, fresh: bool) {
        self.link_shares =
            std::sync::Mutex::new(LinkShares::new(lease, std::time::Instant::now(), fresh));
    }

    /// A link process's call: what it may mirror, and for how long.
    pub fn share_links(
        &self,
        member: &str,
        wanted: &std::collections::BTreeSet<String>,
        held: &std::collections::BTreeSet<String>,
    ) -> Result<(Share, std::time::Duration), CatalogError> {
        if member.is_empty() || member.len() > 200 {
            return Err(CatalogError::InvalidField(
                "member must be 1 to 200 characters".into(),
            ));
        }
        let mut shares = self
            .link_shares
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let share = shares.share(member, wanted, held, std::time::Instant::now());
        Ok((share, shares.lease()))
    }

    /// Records what the link says about a contract. The first `Running` on an
    /// approved contract makes it active; `Running` on a contract that no
    /// longer flows is ignored (the link may be behind the Watch stream),
    /// while `Stopped` is kept, so callers can see the flow has ended.
    pub async fn report_link_status(
        &self,
        id: &str,
        status: LinkStatus,
        detail: &str,
    ) -> Result<Contract, CatalogError> {
        let text = match status {
            LinkStatus::Running => "running".to_string(),
            LinkStatus::Stopped => "stopped".to_string(),
            LinkStatus::Error => format!("error: {}", detail.chars().take(512).collect::<String>()),
            LinkStatus::Stalled => {
                format!("stalled: {}", detail.chars().take(512).collect::<String>())
            }
        };
        let _guard = self.write_lock.lock().await;
        let mut contract = self.get_contract(id)?;
        if !contract.state.is_flowing() && status == LinkStatus::Running {
            // A late report from before the link saw the contract end.
            return Ok(contract);
        }
        let before = contract.clone();
        if status == LinkStatus::Running && contract.state == ContractState::Approved {
            super::contracts::transition(
                &mut contract,
                ContractAction::Activate,
                "service:link".into(),
                String::new(),
            )?;
        }
        contract.link_status = text;
        if contract == before {
            return Ok(contract);
        }
        let activated = contract.state != before.state;
        let action = if activated {
            "contract.activate"
        } else {
            "contract.link_status"
        };
        let mut audit = vec![AuditRecord::new(
            "service:link",
            action,
            format!("contract:{id}"),
            json!({"state": contract.state, "link_status": contract.link_status}),
        )];
        if activated {
            audit.extend(self.deliver_latest_schema(&mut contract)?);
        }
        self.commit(Commit::audited(
            vec![Change::Contract(contract.clone())],
            audit,
        ))
        .await?;
        Ok(contract)
    }

    /// On activation, the schema a reshaping contract delivers the
    /// stream's latest value version under, derived now so that the
    /// partner's subject has it before the first record; its audit entry.
    /// Terms that cannot reshape it derive nothing (the link dead-letters
    /// such values, as without this).
    pub(super) fn deliver_latest_schema(
        &self,
        contract: &mut Contract,
    ) -> Result<Option<AuditRecord>, CatalogError> {
        if !freeport_common::schema::reshape::reshapes(&contract.terms) {
            return Ok(None);
        }
        let stream = self.get_stream(&contract.stream)?;
        let Some(latest) = stream.latest_live(RecordPart::Value) else {
            return Ok(None);
        };
        if contract
            .delivered_schemas
            .iter()
            .any(|d| d.version == latest.version)
        {
            return Ok(None);
        }
        Ok(self
            .derive_delivered(contract, latest)
            .ok()
            .map(|(_, audit)| audit))
    }
}
