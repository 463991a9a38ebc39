//! Contracts: requests, admins' decisions and the state machine's
//! transitions, each audited.

use freeport_common::names::{ClusterName, TopicName};
use freeport_common::now_ms;
use freeport_common::ownership;
use serde_json::json;

use super::{check_text, who, Catalog};
use crate::audit::AuditRecord;
use crate::domain::{
    Change, Contract, ContractAction, ContractState, ContractTerms, Delivery, NewContract,
    Principal,
};
use crate::error::CatalogError;
use crate::store::Commit;

/// Applies `action` to `contract` now, by `actor`, for `reason`; the state
/// machine's refusal as the catalog's error (nothing changed then).
pub(super) fn transition(
    contract: &mut Contract,
    action: ContractAction,
    actor: String,
    reason: String,
) -> Result<(), CatalogError> {
    contract
        .apply(action, actor, reason, now_ms())
        .map_err(|(state, action)| CatalogError::IllegalTransition {
            id: contract.id.clone(),
            state,
            action,
        })
}

impl Catalog {
    /// A live contract already writing into (cluster, topic) makes it taken:
    /// two mirrors into one topic would interleave, and resuming from the
    /// destination's tail would read the other's position.
    pub(super) fn check_destination_free(
        &self,
        cluster: &ClusterName,
        topic: &TopicName,
        except: Option<&str>,
    ) -> Result<(), CatalogError> {
        let taken = self.store.list_contracts()?.into_iter().find(|c| {
            c.state.is_live()
                && Some(c.id.as_str()) != except
                && c.destination
                    .as_ref()
                    .is_some_and(|d| &d.cluster == cluster && &d.topic == topic)
        });
        match taken {
            Some(c) => Err(CatalogError::DestinationInUse {
                cluster: cluster.to_string(),
                topic: topic.to_string(),
                used_by: format!("contract {}", c.id),
            }),
            None => Ok(()),
        }
    }

    pub async fn request_contract(
        &self,
        actor: &Principal,
        new: NewContract,
    ) -> Result<Contract, CatalogError> {
        let consumer = Self::require_member(actor, "request contracts")?.clone();
        check_text("purpose", &new.purpose, true)?;
        match (new.delivery, &new.destination) {
            (Delivery::Kafka, None) => {
                return Err(CatalogError::InvalidField(
                    "destination: a kafka contract mirrors into a topic on one of your clusters; name it, or ask for delivery \"push\" to read the stream over HTTP (SSE, WebSocket, REST Proxy consumers)".into(),
                ))
            }
            (Delivery::Push, Some(_)) => {
                return Err(CatalogError::InvalidField(
                    "destination: a push contract is read over HTTP and mirrors nowhere; leave the destination out, or ask for delivery \"kafka\"".into(),
                ))
            }
            (Delivery::Kafka, Some(destination)) => ownership::check_destination(
                &self.clusters,
                &destination.cluster,
                destination.topic.as_str(),
                consumer.as_str(),
            )?,
            (Delivery::Push, None) => {}
        }

        let _guard = self.write_lock.lock().await;
        let stream = self.get_stream_for(&new.stream, actor)?;
        new.terms
            .validate(&stream.value_schema, now_ms())
            .map_err(|e| CatalogError::InvalidField(e.to_string()))?;
        if let Some(destination) = &new.destination {
            if let Some(source) = self
                .store
                .list_streams()?
                .into_iter()
                .find(|s| s.cluster == destination.cluster && s.topic == destination.topic)
            {
                return Err(CatalogError::DestinationInUse {
                    cluster: destination.cluster.to_string(),
                    topic: destination.topic.to_string(),
                    used_by: format!("stream {}", source.name),
                });
            }
            self.check_destination_free(&destination.cluster, &destination.topic, None)?;
        }
        let contract = Contract {
            id: uuid::Uuid::now_v7().to_string(),
            stream: stream.name,
            consumer,
            purpose: new.purpose,
            delivery: new.delivery,
            destination: new.destination,
            terms: new.terms,
            state: ContractState::Requested,
            history: vec![],
            created_at_ms: now_ms(),
            link_status: String::new(),
            delivered_schemas: vec![],
        };
        self.commit(Commit::one(
            Change::Contract(contract.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "contract.request",
                format!("contract:{}", contract.id),
                json!({
                    "stream": contract.stream,
                    "consumer": contract.consumer,
                    "purpose": contract.purpose,
                    "delivery": contract.delivery,
                    "destination": contract.destination,
                    "terms": contract.terms,
                }),
            ),
        ))
        .await?;
        Ok(contract)
    }

    pub fn get_contract(&self, id: &str) -> Result<Contract, CatalogError> {
        self.store
            .get_contract(id)?
            .ok_or_else(|| CatalogError::ContractNotFound(id.chars().take(80).collect()))
    }

    /// All contracts and the revision they are consistent with. Taken under
    /// the write lock so no commit lands between the two reads.
    pub async fn list_contracts(&self) -> Result<(Vec<Contract>, u64), CatalogError> {
        let _guard = self.write_lock.lock().await;
        Ok((self.store.list_contracts()?, self.store.revision()?))
    }

    /// An admin's decision. Approval may replace the requested terms.
    pub async fn transition_contract(
        &self,
        actor: &Principal,
        id: &str,
        action: ContractAction,
        reason: String,
        terms: Option<ContractTerms>,
    ) -> Result<Contract, CatalogError> {
        match action {
            ContractAction::Activate => {
                return Err(CatalogError::Forbidden(
                    "only the link activates a contract".into(),
                ))
            }
            ContractAction::Expire => {
                return Err(CatalogError::Forbidden(
                    "contracts expire at their end time; revoke to end one now".into(),
                ))
            }
            _ => {}
        }
        let orgs = self.store.list_orgs()?;
        let allowed = who(actor, &orgs).is_some_and(|who| self.authz.may_decide(&who, id));
        if !allowed {
            return Err(CatalogError::Forbidden(format!(
                "only an admin may {} contracts",
                action.as_str()
            )));
        }
        check_text("reason", &reason, false)?;
        if terms.is_some() && action != ContractAction::Approve {
            return Err(CatalogError::InvalidField(format!(
                "terms can be set when approving, not on {}",
                action.as_str()
            )));
        }
        let _guard = self.write_lock.lock().await;
        let contract = self.get_contract(id)?;
        if let Some(terms) = &terms {
            let stream = self.get_stream(&contract.stream)?;
            terms
                .validate(&stream.value_schema, now_ms())
                .map_err(|e| CatalogError::InvalidField(e.to_string()))?;
        }
        self.apply_locked(contract, action, actor.audit_name(), reason, terms)
            .await
    }

    /// Applies `action` to a contract read under the write lock, which the
    /// caller holds, with `imposed` terms replacing its own (checked by the
    /// caller); commits the change with its audit entry.
    pub(super) async fn apply_locked(
        &self,
        mut contract: Contract,
        action: ContractAction,
        actor: String,
        reason: String,
        imposed: Option<ContractTerms>,
    ) -> Result<Contract, CatalogError> {
        let id = contract.id.clone();
        let terms_before = contract.terms.clone();
        if let Some(terms) = imposed {
            contract.terms = terms;
        }
        let from = contract.state;
        transition(&mut contract, action, actor.clone(), reason.clone())?;
        let mut detail = json!({"from": from, "to": contract.state, "reason": reason});
        if contract.terms != terms_before {
            detail["terms"] = json!(contract.terms);
        }
        let mut audit = vec![AuditRecord::new(
            actor,
            format!("contract.{}", action.as_str()),
            format!("contract:{id}"),
            detail,
        )];
        // No link delivers a push contract: approving it is what makes it
        // flow, in the same commit.
        if action == ContractAction::Approve && !contract.delivery.by_link() {
            let by = "system:push".to_string();
            transition(
                &mut contract,
                ContractAction::Activate,
                by.clone(),
                String::new(),
            )?;
            audit.push(AuditRecord::new(
                by,
                "contract.activate",
                format!("contract:{id}"),
                json!({"state": contract.state, "delivery": contract.delivery}),
            ));
            audit.extend(self.deliver_latest_schema(&mut contract)?);
        }
        self.commit(Commit::audited(
            vec![Change::Contract(contract.clone())],
            audit,
        ))
        .await?;
        Ok(contract)
    }
}
