//! A contract's states and the machine that moves between them.
//!
//! ```text
//! requested --approve--> approved --activate (link)--> active
//!     |                     |  ^                        |  ^
//!     reject                suspend/resume              suspend/resume
//!     v                     v  |                        v  |
//! rejected               suspended <-------------------+  |
//!                            +-- resume returns to the state it was suspended from
//! any live state --revoke--> revoked      any live state --expire (timer)--> expired
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractState {
    Requested,
    Approved,
    /// Approved and reported running by the link.
    Active,
    /// Paused by an admin; resuming returns to the state before.
    Suspended,
    Rejected,
    Revoked,
    /// Its end time passed.
    Expired,
}

impl ContractState {
    pub const ALL: [ContractState; 7] = [
        ContractState::Requested,
        ContractState::Approved,
        ContractState::Active,
        ContractState::Suspended,
        ContractState::Rejected,
        ContractState::Revoked,
        ContractState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContractState::Requested => "requested",
            ContractState::Approved => "approved",
            ContractState::Active => "active",
            ContractState::Suspended => "suspended",
            ContractState::Rejected => "rejected",
            ContractState::Revoked => "revoked",
            ContractState::Expired => "expired",
        }
    }

    /// The state a name (as [`ContractState::as_str`] writes it) names.
    pub fn parse(name: &str) -> Option<ContractState> {
        ContractState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// States from which the contract may still carry data, now or later.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ContractState::Requested
                | ContractState::Approved
                | ContractState::Active
                | ContractState::Suspended
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
    Suspend,
    Resume,
    Revoke,
    /// The link reports the mirror running for the first time.
    Activate,
    /// The contract's end time passed.
    Expire,
}

impl ContractAction {
    pub const ALL: [ContractAction; 7] = [
        ContractAction::Approve,
        ContractAction::Reject,
        ContractAction::Suspend,
        ContractAction::Resume,
        ContractAction::Revoke,
        ContractAction::Activate,
        ContractAction::Expire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContractAction::Approve => "approve",
            ContractAction::Reject => "reject",
            ContractAction::Suspend => "suspend",
            ContractAction::Resume => "resume",
            ContractAction::Revoke => "revoke",
            ContractAction::Activate => "activate",
            ContractAction::Expire => "expire",
        }
    }
}

/// The state machine, for every action but `Resume`, whose target depends
/// on the contract's history (the catalog's `Contract::apply` resolves it). `None` means the
/// action is not allowed from `from`.
pub fn next_state(from: ContractState, action: ContractAction) -> Option<ContractState> {
    use ContractAction as A;
    use ContractState as S;
    match (from, action) {
        (S::Requested, A::Approve) => Some(S::Approved),
        (S::Requested, A::Reject) => Some(S::Rejected),
        (S::Approved, A::Activate) => Some(S::Active),
        (S::Approved | S::Active, A::Suspend) => Some(S::Suspended),
        (S::Suspended, A::Resume) => Some(S::Approved),
        (state, A::Revoke) if state.is_live() => Some(S::Revoked),
        (state, A::Expire) if state.is_live() => Some(S::Expired),
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
