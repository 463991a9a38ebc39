//! The catalog's domain: pure types and rules, no I/O.

use freeport_common::names::{ClusterName, OrgName, StreamName, TopicName};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// A business unit of the organization that runs the hub.
    Internal,
    /// An outside organization.
    Partner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub name: OrgName,
    pub kind: OrgKind,
    pub display_name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Hub administrator: approves contracts, manages organizations.
    Admin,
    /// Acts for one organization.
    Member,
}

/// Who is acting: resolved from a credential, never taken from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin { key_id: String },
    Member { org: OrgName, key_id: String },
}

impl Principal {
    pub fn org(&self) -> Option<&OrgName> {
        match self {
            Principal::Admin { .. } => None,
            Principal::Member { org, .. } => Some(org),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    /// How this principal appears in a contract's history.
    pub fn audit_name(&self) -> String {
        match self {
            Principal::Admin { key_id } => format!("admin:{key_id}"),
            Principal::Member { org, .. } => format!("org:{org}"),
        }
    }
}

/// A credential as stored: only the SHA-256 of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub key_sha256: String,
    pub role: Role,
    pub org: Option<OrgName>,
    pub created_at_ms: i64,
}

/// A Kafka topic on a named cluster, offered in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub name: StreamName,
    pub owner: OrgName,
    pub cluster: ClusterName,
    pub topic: TopicName,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// JSON Schema of the record value.
    pub value_schema: serde_json::Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Where a contract's records go: a topic on a cluster the hub knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDestination {
    pub cluster: ClusterName,
    pub topic: TopicName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractState {
    Requested,
    Approved,
    /// Approved and reported running by the link.
    Active,
    Rejected,
    Revoked,
}

impl ContractState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContractState::Requested => "requested",
            ContractState::Approved => "approved",
            ContractState::Active => "active",
            ContractState::Rejected => "rejected",
            ContractState::Revoked => "revoked",
        }
    }

    /// States in which the contract may still carry data now or later.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ContractState::Requested | ContractState::Approved | ContractState::Active
        )
    }

    /// States in which records flow to the destination.
    pub fn is_flowing(self) -> bool {
        matches!(self, ContractState::Approved | ContractState::Active)
    }
}

/// What someone asks to do to a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractAction {
    Approve,
    Reject,
    Revoke,
    /// The link reports the mirror running for the first time.
    Activate,
}

impl ContractAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ContractAction::Approve => "approve",
            ContractAction::Reject => "reject",
            ContractAction::Revoke => "revoke",
            ContractAction::Activate => "activate",
        }
    }
}

/// The state machine. `None` means the action is not allowed from `from`.
pub fn next_state(from: ContractState, action: ContractAction) -> Option<ContractState> {
    use ContractAction as A;
    use ContractState as S;
    match (from, action) {
        (S::Requested, A::Approve) => Some(S::Approved),
        (S::Requested, A::Reject) => Some(S::Rejected),
        (S::Approved, A::Activate) => Some(S::Active),
        (S::Requested | S::Approved | S::Active, A::Revoke) => Some(S::Revoked),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: ContractState,
    pub to: ContractState,
    pub actor: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub id: String,
    pub stream: StreamName,
    pub consumer: OrgName,
    pub purpose: String,
    pub destination: ClusterDestination,
    pub state: ContractState,
    pub history: Vec<Transition>,
    pub created_at_ms: i64,
    /// Last status the link reported ("running", "error: ..."), if any.
    pub link_status: String,
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
        let to = next_state(self.state, action).ok_or((self.state, action))?;
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

/// One committed change, as kept in the change log and sent on Watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    Organization(Organization),
    Stream(Stream),
    Contract(Contract),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub revision: u64,
    pub change: Change,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContractAction as A;
    use ContractState as S;

    const STATES: [S; 5] = [
        S::Requested,
        S::Approved,
        S::Active,
        S::Rejected,
        S::Revoked,
    ];
    const ACTIONS: [A; 4] = [A::Approve, A::Reject, A::Revoke, A::Activate];

    #[test]
    fn terminal_states_allow_nothing() {
        for action in ACTIONS {
            assert_eq!(next_state(S::Revoked, action), None);
            assert_eq!(next_state(S::Rejected, action), None);
        }
    }

    #[test]
    fn every_allowed_transition_is_listed() {
        let allowed: Vec<_> = STATES
            .iter()
            .flat_map(|&s| ACTIONS.iter().map(move |&a| (s, a)))
            .filter_map(|(s, a)| next_state(s, a).map(|t| (s, a, t)))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (S::Requested, A::Approve, S::Approved),
                (S::Requested, A::Reject, S::Rejected),
                (S::Requested, A::Revoke, S::Revoked),
                (S::Approved, A::Revoke, S::Revoked),
                (S::Approved, A::Activate, S::Active),
                (S::Active, A::Revoke, S::Revoked),
            ]
        );
    }

    #[test]
    fn refused_action_leaves_the_contract_untouched() {
        let mut c = Contract {
            id: "c".into(),
            stream: StreamName::parse("s").unwrap(),
            consumer: OrgName::parse("o").unwrap(),
            purpose: "p".into(),
            destination: ClusterDestination {
                cluster: ClusterName::parse("b").unwrap(),
                topic: TopicName::parse("t").unwrap(),
            },
            state: S::Revoked,
            history: vec![],
            created_at_ms: 0,
            link_status: String::new(),
        };
        let before = c.clone();
        assert_eq!(
            c.apply(A::Approve, "admin:x".into(), String::new(), 1),
            Err((S::Revoked, A::Approve))
        );
        assert_eq!(c, before);
    }
}
