//! A contract's vocabulary, defined once for the catalog, the link and the
//! portal: its states and the machine between them ([`state`]), its terms
//! and their rules ([`terms`]), and their wire form ([`proto`]).

pub mod delivery;
pub mod proto;
pub mod state;
pub mod terms;

pub use delivery::Delivery;
pub use state::{next_state, ContractAction, ContractState, Transition};
pub use terms::{ContractTerms, FilterOp, RowCondition, TermsError, MAX_CONSUMER_GROUPS, MAX_RATE};
