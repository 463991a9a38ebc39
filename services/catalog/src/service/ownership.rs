//! The ownership report: what a store written before ownership existed
//! holds that breaks the rules now.

use freeport_common::ownership;

use super::Catalog;
use crate::domain::OwnershipReport;
use crate::error::CatalogError;

impl Catalog {
    /// Streams and live contracts that break the ownership rules, as
    /// (entity, problem): written before the rules existed, they are
    /// reported for an admin to settle, never changed here. Returns how
    /// many streams and contracts were checked too.
    pub fn ownership_problems(&self) -> Result<OwnershipReport, CatalogError> {
        let streams = self.store.list_streams()?;
        let contracts = self.store.list_contracts()?;
        let mut problems = Vec::new();
        for stream in &streams {
            if let Err(refusal) = ownership::check_stream_home(
                &self.clusters,
                &stream.cluster,
                stream.topic.as_str(),
                stream.owner.as_str(),
            ) {
                problems.push((format!("stream:{}", stream.name), refusal.to_string()));
            }
        }
        let live = contracts.iter().filter(|c| c.state.is_live());
        for (contract, destination) in live.filter_map(|c| Some((c, c.destination.as_ref()?))) {
            if let Err(refusal) = ownership::check_destination(
                &self.clusters,
                &destination.cluster,
                destination.topic.as_str(),
                contract.consumer.as_str(),
            ) {
                problems.push((format!("contract:{}", contract.id), refusal.to_string()));
            }
        }
        Ok(OwnershipReport {
            problems,
            streams: streams.len(),
            contracts: contracts.len(),
        })
    }
}
