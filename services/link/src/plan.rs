//! What to mirror: a pure function from the catalog's contracts and streams
//! to the set of mirrors that should run.

use freeport_common::contract::ContractState;
use std::collections::{BTreeMap, HashMap};

use freeport_common::proto::catalog::v1 as pb;

/// One mirror: a source topic copied to a destination topic for a contract.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorSpec {
    pub contract_id: String,
    /// The stream's owner and the contract's consumer: the source must be a
    /// cluster of the one, the destination a cluster of the other.
    pub owner: String,
    pub consumer: String,
    pub source_cluster: String,
    pub source_topic: String,
    pub destination_cluster: String,
    pub destination_topic: String,
    /// What the partner receives of each record.
    pub terms: pb::ContractTerms,
    /// The retention the owner declared for the stream, in milliseconds; 0
    /// when not declared. Used when the source does not report its own.
    pub retention_ms: i64,
}

/// The link's view of the catalog, kept current from the Watch stream.
#[derive(Debug, Default)]
pub struct CatalogView {
    pub contracts: HashMap<String, pb::Contract>,
    pub streams: HashMap<String, pb::Stream>,
}

impl CatalogView {
    pub fn apply(&mut self, change: pb::watch_event::Change) {
        match change {
            pb::watch_event::Change::Contract(c) => {
                self.contracts.insert(c.id.clone(), c);
            }
            pb::watch_event::Change::Stream(s) => {
                self.streams.insert(s.name.clone(), s);
            }
            pb::watch_event::Change::Organization(_)
            | pb::watch_event::Change::Document(_)
            | pb::watch_event::Change::ApiKey(_) => {}
        }
    }

    /// Mirrors for every contract in a flowing state whose stream is known.
    pub fn desired(&self) -> BTreeMap<String, MirrorSpec> {
        self.contracts
            .values()
            .filter(|c| ContractState::from_pb(c.state).is_some_and(ContractState::is_flowing))
            .filter_map(|c| {
                let stream = self.streams.get(&c.stream)?;
                let destination = c.destination.as_ref()?;

                Some((
                    c.id.clone(),
                    MirrorSpec {
                        contract_id: c.id.clone(),
                        owner: stream.owner.clone(),
                        consumer: c.consumer.clone(),
                        source_cluster: stream.cluster.clone(),
                        source_topic: stream.topic.clone(),
                        destination_cluster: destination.cluster.clone(),
                        destination_topic: destination.topic.clone(),
                        terms: c.terms.clone().unwrap_or_default(),
                        retention_ms: stream.retention_ms,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(id: &str, state: pb::ContractState) -> pb::Contract {
        pb::Contract {
            id: id.into(),
            stream: "orders".into(),
            destination: Some(pb::ClusterDestination {
                cluster: "b".into(),
                topic: format!("copy-{id}"),
            }),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_flowing_contracts_with_known_streams_are_mirrored() {
        let mut view = CatalogView::default();
        view.apply(pb::watch_event::Change::Contract(contract(
            "1",
            pb::ContractState::Approved,
        )));
        assert!(view.desired().is_empty(), "stream not known yet");
        view.apply(pb::watch_event::Change::Stream(pb::Stream {
            name: "orders".into(),
            cluster: "a".into(),
            topic: "orders".into(),
            ..Default::default()
        }));
        for (id, state) in [
            ("2", pb::ContractState::Active),
            ("3", pb::ContractState::Requested),
            ("4", pb::ContractState::Revoked),
            ("5", pb::ContractState::Rejected),
        ] {
            view.apply(pb::watch_event::Change::Contract(contract(id, state)));
        }
        let desired = view.desired();
        assert_eq!(desired.keys().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(desired["1"].source_topic, "orders");
        assert_eq!(desired["1"].destination_topic, "copy-1");
        view.apply(pb::watch_event::Change::Contract(contract(
            "1",
            pb::ContractState::Revoked,
        )));
        assert_eq!(view.desired().keys().collect::<Vec<_>>(), ["2"]);
    }
}
