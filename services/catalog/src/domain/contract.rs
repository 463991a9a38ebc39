//! A contract as the catalog stores it; its states and the machine
//! between them are shared ([`freeport_common::contract`]).
//!
//! ```text
//! requested --approve--> approved --activate (link)--> active
//!     (a push contract, which no link delivers, is activated with its approval)
//!     |                     |  ^                        |  ^
//!     reject                suspend/resume              suspend/resume
//!     v                     v  |                        v  |
//! rejected               suspended <-------------------+  |
//!                            +-- resume returns to the state it was suspended from
//! any live state --revoke--> revoked      any live state --expire (timer)--> expired
//! ```

use freeport_common::names::{OrgName, StreamName};
use serde::{Deserialize, Serialize};

use super::{
    next_state, ClusterDestination, ContractAction, ContractState, ContractTerms, Delivery,
    Transition,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub id: String,
    pub stream: StreamName,
    pub consumer: OrgName,
    pub purpose: String,
    /// How the partner receives the stream (`kafka` for contracts from
    /// before kinds).
    #[serde(default)]
    pub delivery: Delivery,
    /// Where a `kafka` contract mirrors to; `None` for any other kind.
    #[serde(default)]
    pub destination: Option<ClusterDestination>,
    #[serde(default)]
    pub terms: ContractTerms,
    pub state: ContractState,
    pub history: Vec<Transition>,
    pub created_at_ms: i64,
    /// Last status the link reported ("running", "error: ..."), if any.
    pub link_status: String,
    /// The schemas reshaped values were delivered under, one per version
    /// of the stream's schema met so far (`version` is that version's).
    #[serde(default)]
    pub delivered_schemas: Vec<crate::domain::SchemaVersion>,
}

impl Contract {
    /// Applies `action`, recording who, when and why. Leaves the contract
    /// untouched when the state machine refuses.
    pub fn apply(
        &mut self,
        action: ContractAction,
        actor: String,
        reason: String,
        at_ms: i64,
    ) -> Result<(), (ContractState, ContractAction)> {
        let mut to = next_state(self.state, action).ok_or((self.state, action))?;
        if action == ContractAction::Resume {
            // Back to where the last suspension found it.
            to = self
                .history
                .iter()
                .rev()
                .find(|t| t.to == ContractState::Suspended)
                .map_or(ContractState::Approved, |t| t.from);
        }
        self.history.push(Transition {
            from: self.state,
            to,
            actor,
            reason,
            at_ms,
        });
        self.state = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use freeport_common::names::{ClusterName, TopicName};

    use super::*;
    use ContractAction as A;
    use ContractState as S;

    fn contract(state: S) -> Contract {
        Contract {
            id: "c".into(),
            stream: StreamName::parse("s").unwrap(),
            consumer: OrgName::parse("o").unwrap(),
            purpose: "p".into(),
            delivery: Delivery::Kafka,
            destination: Some(ClusterDestination {
                cluster: ClusterName::parse("b").unwrap(),
                topic: TopicName::parse("t").unwrap(),
            }),
            terms: ContractTerms::default(),
            state,
            history: vec![],
            created_at_ms: 0,
            link_status: String::new(),
            delivered_schemas: vec![],
        }
    }

    #[test]
    fn terminal_states_allow_nothing() {
        for action in ContractAction::ALL {
            for terminal in [S::Revoked, S::Rejected, S::Expired] {
                assert_eq!(
                    next_state(terminal, action),
                    None,
                    "{terminal:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn every_allowed_transition_is_listed() {
        let allowed: Vec<_> = S::ALL
            .iter()
            .flat_map(|&s| A::ALL.iter().map(move |&a| (s, a)))
            .filter_map(|(s, a)| next_state(s, a).map(|t| (s, a, t)))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (S::Requested, A::Approve, S::Approved),
                (S::Requested, A::Reject, S::Rejected),
                (S::Requested, A::Revoke, S::Revoked),
                (S::Requested, A::Expire, S::Expired),
                (S::Approved, A::Suspend, S::Suspended),
                (S::Approved, A::Revoke, S::Revoked),
                (S::Approved, A::Activate, S::Active),
                (S::Approved, A::Expire, S::Expired),
                (S::Active, A::Suspend, S::Suspended),
                (S::Active, A::Revoke, S::Revoked),
                (S::Active, A::Expire, S::Expired),
                (S::Suspended, A::Resume, S::Approved),
                (S::Suspended, A::Revoke, S::Revoked),
                (S::Suspended, A::Expire, S::Expired),
            ]
        );
    }

    #[test]
    fn resume_returns_to_the_state_before_the_suspension() {
        for before in [S::Approved, S::Active] {
            let mut c = contract(before);
            c.apply(A::Suspend, "admin:a".into(), "incident".into(), 1)
                .unwrap();
            assert_eq!(c.state, S::Suspended);
            c.apply(A::Resume, "admin:a".into(), String::new(), 2)
                .unwrap();
            assert_eq!(c.state, before);
            assert_eq!(c.history.len(), 2);
        }
    }

    #[test]
    fn refused_action_leaves_the_contract_untouched() {
        let mut c = contract(S::Revoked);
        let before = c.clone();
        assert_eq!(
            c.apply(A::Approve, "admin:x".into(), String::new(), 1),
            Err((S::Revoked, A::Approve))
        );
        assert_eq!(c, before);
    }
}
