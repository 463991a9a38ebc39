//! How a contract's partner receives the stream.

use serde::{Deserialize, Serialize};

/// How a contract's partner receives the stream: one kind per contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Mirrored by the link into a topic on one of the partner's clusters
    /// (the contract's destination); active once the link runs it.
    #[default]
    Kafka,
    /// Read over HTTP from the portal (SSE, WebSocket, REST Proxy
    /// consumers); nothing is mirrored and there is no destination, so the
    /// contract is active as soon as it is approved.
    Push,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Kafka => "kafka",
            Delivery::Push => "push",
        }
    }

    /// Whether the link delivers it (and so makes it active).
    pub fn by_link(self) -> bool {
        self == Delivery::Kafka
    }
}
