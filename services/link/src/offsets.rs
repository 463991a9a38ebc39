//! Consumer-group offset translation.
//!
//! The owner's consumer groups named in a contract commit offsets on the
//! source; the partner's consumers of the same group names read the
//! destination, where offsets differ (filtered records, an earlier start,
//! other writers). [`OffsetMap`] remembers where each acknowledged record
//! landed, and [`sync`] commits each group's source position, translated,
//! on the destination. A translated offset is one past the last record the
//! destination acknowledged before the group's position: never ahead of
//! what has been mirrored, so a consumer that takes over on the
//! destination may see a record again but never misses one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freeport_common::config::ClusterConfig;
use freeport_common::kafka::client_config;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// Runs remembered per partition; the oldest are forgotten first. A group
/// whose position is older than everything remembered is left alone.
const MAX_RUNS: usize = 4096;
/// How often committed offsets are translated.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Consecutive source offsets that landed on consecutive destination offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    source: i64,
    destination: i64,
    len: i64,
}

/// Where acknowledged records landed on the destination, per partition.
#[derive(Debug, Default)]
pub struct OffsetMap {
    partitions: HashMap<i32, VecDeque<Run>>,
}

impl OffsetMap {
    /// The record at `source` in `partition` is at `destination` now.
    /// Calls come in source order per partition.
    pub fn record(&mut self, partition: i32, source: i64, destination: i64) {
        let runs = self.partitions.entry(partition).or_default();
        if let Some(last) = runs.back_mut() {
            if source == last.source + last.len && destination == last.destination + last.len {
                last.len += 1;
                return;
            }
            if source < last.source + last.len {
                return; // out of order: keep what is known
            }
        }
        if runs.len() == MAX_RUNS {
            runs.pop_front();
        }
        runs.push_back(Run {
            source,
            destination,
            len: 1,
        });
    }

    /// The destination offset for a group whose next source offset in
    /// `partition` is `committed`: one past the last mirrored record before
    /// it. `None` when no mirrored record before it is known.
    pub fn translate(&self, partition: i32, committed: i64) -> Option<i64> {
        let runs = self.partitions.get(&partition)?;
        let run = runs.iter().rev().find(|run| run.source < committed)?;
        let last = (committed - 1).min(run.source + run.len - 1);
        Some(run.destination + (last - run.source) + 1)
    }
}

/// One group's clients: one on each side, never joining the group.
struct GroupClients {
    group: String,
    source: BaseConsumer,
    destination: BaseConsumer,
}

fn group_client(cluster: &ClusterConfig, group: &str) -> Result<BaseConsumer, KafkaError> {
    client_config(cluster, "freeport-link-offsets")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
}

/// What to translate: the mirror's topics and partitions.
#[derive(Debug, Clone)]
pub struct Topics {
    pub source: String,
    pub destination: String,
    pub partitions: usize,
}

/// Translates `groups` every [`SYNC_INTERVAL`] until `stop` fires.
pub async fn sync(
    source: ClusterConfig,
    destination: ClusterConfig,
    topics: Topics,
    groups: Vec<String>,
    map: Arc<Mutex<OffsetMap>>,
    stop: CancellationToken,
) {
    let mut clients = Vec::new();
    for group in groups {
        match (
            group_client(&source, &group),
            group_client(&destination, &group),
        ) {
            (Ok(source), Ok(destination)) => clients.push(Arc::new(GroupClients {
                group,
                source,
                destination,
            })),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(%group, error = %e, "cannot translate offsets for this group")
            }
        }
    }
    let mut last_problem: HashMap<String, String> = HashMap::new();
    let mut ticks = tokio::time::interval(SYNC_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for group in &clients {
            let (group, topics, map) = (group.clone(), topics.clone(), map.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                let outcome = sync_group(&group, &topics, &map);
                (group, outcome)
            })
            .await;
            let Ok((group, outcome)) = outcome else {
                continue;
            };
            match outcome {
                Ok(committed) if !committed.is_empty() => {
                    tracing::debug!(group = %group.group, ?committed, "offsets translated");
                    last_problem.remove(&group.group);
                }
                Ok(_) => {}
                Err(e) => {
                    // Once per distinct problem, not every interval.
                    let problem = e.to_string();
                    if last_problem.get(&group.group) != Some(&problem) {
                        tracing::warn!(group = %group.group, error = %problem, "cannot translate offsets");
                        last_problem.insert(group.group.clone(), problem);
                    }
                }
            }
        }
    }
}

/// One round for one group; returns what was committed on the destination.
fn sync_group(
    clients: &GroupClients,
    topics: &Topics,
    map: &Mutex<OffsetMap>,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let partitions = 0..i32::try_from(topics.partitions).unwrap_or(i32::MAX);
    let mut wanted = TopicPartitionList::new();
    let mut existing = TopicPartitionList::new();
    for partition in partitions {
        wanted.add_partition(&topics.source, partition);
        existing.add_partition(&topics.destination, partition);
    }
    let committed = clients.source.committed_offsets(wanted, SYNC_TIMEOUT)?;
    let existing = clients
        .destination
        .committed_offsets(existing, SYNC_TIMEOUT)?;
    let mut commit = TopicPartitionList::new();
    let mut done = Vec::new();
    for element in committed.elements() {
        let Offset::Offset(position) = element.offset() else {
            continue; // the group has no position in this partition
        };
        let translated = match map.lock() {
            Ok(map) => map.translate(element.partition(), position),
            Err(_) => None,
        };
        let Some(translated) = translated else {
            continue;
        };
        let current = existing
            .find_partition(&topics.destination, element.partition())
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        // Never moves a group backwards: consumers on the destination may
        // have gone further by themselves.
        if current.is_none_or(|current| translated > current) {
            commit.add_partition_offset(
                &topics.destination,
                element.partition(),
                Offset::Offset(translated),
            )?;
            done.push((element.partition(), translated));
        }
    }
    if commit.count() > 0 {
        clients.destination.commit(&commit, CommitMode::Sync)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn translates_to_one_past_the_last_mirrored_record_before_the_position() {
        let mut map = OffsetMap::default();
        // Source 0..=4 mirrored to 10..=14; 5 and 6 filtered; 7, 8 to 15, 16.
        for source in 0..5 {
            map.record(0, source, 10 + source);
        }
        map.record(0, 7, 15);
        map.record(0, 8, 16);
        assert_eq!(map.translate(0, 0), None, "nothing before offset 0");
        assert_eq!(map.translate(0, 1), Some(11));
        assert_eq!(map.translate(0, 5), Some(15));
        assert_eq!(
            map.translate(0, 7),
            Some(15),
            "filtered records are skipped"
        );
        assert_eq!(map.translate(0, 8), Some(16));
        assert_eq!(map.translate(0, 9), Some(17));
        assert_eq!(
            map.translate(0, 1_000),
            Some(17),
            "never past what was mirrored"
        );
        assert_eq!(map.translate(1, 5), None, "unknown partition");
        assert_eq!(map.partitions[&0].len(), 2, "runs merge");
    }

    proptest! {
        /// Against a plain list of (source, destination) pairs: the
        /// translation is one past the last pair before the position, and
        /// never past the last destination offset + 1.
        #[test]
        fn translation_matches_the_mirrored_records(
            steps in proptest::collection::vec((1i64..4, any::<bool>()), 1..200),
            positions in proptest::collection::vec(0i64..800, 1..20),
        ) {
            let mut map = OffsetMap::default();
            let mut pairs = Vec::new();
            let (mut source, mut destination) = (0i64, 100i64);
            for (gap, kept) in steps {
                source += gap;
                if kept {
                    map.record(0, source, destination);
                    pairs.push((source, destination));
                    destination += 1;
                }
            }
            for position in positions {
                let expected = pairs
                    .iter()
                    .rev()
                    .find(|(s, _)| *s < position)
                    .map(|(_, d)| d + 1);
                prop_assert_eq!(map.translate(0, position), expected);
                if let Some(t) = map.translate(0, position) {
                    prop_assert!(t <= destination);
                }
            }
        }
    }
}
