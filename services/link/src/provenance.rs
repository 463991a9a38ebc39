//! The provenance and resume protocol, free of I/O.
//!
//! Every record a mirror writes carries headers naming the contract and the
//! source partition and offset it came from. On start, the mirror reads the
//! tail of each destination partition ([`Tail`]) and resumes each source
//! partition right after the last offset this contract wrote there
//! ([`ResumePoint`]); records before that point are dropped ([`Floors`]).
//! The destination producer is idempotent, so within one run nothing is
//! duplicated or reordered, and whatever a crash left unacknowledged is
//! either in the tail (and skipped) or not (and copied again).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

pub const HEADER_SOURCE_CLUSTER: &str = "freeport.source.cluster";
pub const HEADER_SOURCE_TOPIC: &str = "freeport.source.topic";
pub const HEADER_SOURCE_PARTITION: &str = "freeport.source.partition";
pub const HEADER_SOURCE_OFFSET: &str = "freeport.source.offset";
pub const HEADER_CONTRACT: &str = "freeport.contract";
/// Why a record went to the dead-letter topic.
pub const HEADER_DEAD_LETTER_REASON: &str = "freeport.dead_letter.reason";

/// Reading a destination tail ends after this long without a record.
pub const TAIL_IDLE: Duration = Duration::from_millis(1500);
/// A tail that shows no record of a partition holding data by then is
/// unreadable.
pub const TAIL_DEADLINE: Duration = Duration::from_secs(20);

/// The dead-letter topic of a contract, on the source (owner's) cluster: a
/// record that could not be reshaped must not reach the partner.
pub fn dead_letter_topic(contract_id: &str) -> String {
    format!("freeport.dlq.{contract_id}")
}

/// Where a mirror copies from, as its provenance headers name it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub cluster: &'a str,
    pub topic: &'a str,
    pub contract_id: &'a str,
}

impl<'a> Origin<'a> {
    /// The provenance headers of the record at `partition` and `offset`
    /// (their decimal text), appended after the record's own headers.
    pub fn headers(&self, partition: &'a str, offset: &'a str) -> [(&'static str, &'a str); 5] {
        [
            (HEADER_SOURCE_CLUSTER, self.cluster),
            (HEADER_SOURCE_TOPIC, self.topic),
            (HEADER_SOURCE_PARTITION, partition),
            (HEADER_SOURCE_OFFSET, offset),
            (HEADER_CONTRACT, self.contract_id),
        ]
    }
}

/// The source offset a destination record came from, if `contract_id`
/// wrote it. `headers` in the record's order: a mirror appends its headers
/// last, and a record mirrored twice carries the earlier hop's too, so they
/// are read from the end.
pub fn source_offset<'h>(
    headers: impl DoubleEndedIterator<Item = (&'h str, Option<&'h [u8]>)>,
    contract_id: &str,
) -> Option<i64> {
    let mut contract = None;
    let mut offset = None;
    for (key, value) in headers.rev() {
        match key {
            HEADER_CONTRACT if contract.is_none() => contract = value,
            HEADER_SOURCE_OFFSET if offset.is_none() => offset = value,
            _ => {}
        }
    }
    if contract? != contract_id.as_bytes() {
        return None;
    }
    std::str::from_utf8(offset?).ok()?.parse().ok()
}

/// Where a mirror resumes in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// The next source offset to copy: one past the last this contract
    /// wrote.
    pub next: i64,
    /// Where that last record is on the destination.
    pub landed_at: i64,
}

/// What reading the destination's tail has found so far.
#[derive(Debug, PartialEq, Eq)]
pub enum TailState {
    /// Keep reading.
    Reading,
    /// Where to resume, per partition; a partition without a record of this
    /// contract's is absent (copy it from the beginning).
    Settled(HashMap<i32, ResumePoint>),
    /// These partitions hold data but showed none before the deadline:
    /// guessing would lose or duplicate records.
    Unreadable(Vec<i32>),
}

/// Reading the tail of each destination partition, from just before its
/// reported end, until each partition reports its end or nothing arrives
/// for [`TAIL_IDLE`]: some brokers report an end offset inside the last
/// batch rather than after it. Every partition holding data must show at
/// least one record first.
#[derive(Debug)]
pub struct Tail {
    unread: HashSet<i32>,
    assigned: usize,
    /// Partitions that reported their end (a partition may report it again
    /// when more arrives; it counts once).
    at_end: HashSet<i32>,
    positions: HashMap<i32, ResumePoint>,
    deadline: Instant,
    last_record: Instant,
}

impl Tail {
    /// A tail of the partitions that hold data, read from `now` on.
    pub fn new(holding_data: impl IntoIterator<Item = i32>, now: Instant) -> Tail {
        let unread: HashSet<i32> = holding_data.into_iter().collect();
        Tail {
            assigned: unread.len(),
            unread,
            at_end: HashSet::new(),
            positions: HashMap::new(),
            deadline: now + TAIL_DEADLINE,
            last_record: now,
        }
    }

    /// A record at `offset` of destination `partition`, and the source
    /// offset it came from if this contract wrote it.
    pub fn record(&mut self, partition: i32, offset: i64, source: Option<i64>, now: Instant) {
        self.last_record = now;
        self.unread.remove(&partition);
        if let Some(source) = source {
            let point = self.positions.entry(partition).or_insert(ResumePoint {
                next: 0,
                landed_at: -1,
            });
            if source + 1 > point.next {
                *point = ResumePoint {
                    next: source + 1,
                    landed_at: offset,
                };
            }
        }
    }

    /// `partition` reported its end.
    pub fn end_of(&mut self, partition: i32) {
        self.at_end.insert(partition);
        self.unread.remove(&partition);
    }

    /// Whether to go on reading, at `now`.
    pub fn state(&mut self, now: Instant) -> TailState {
        let settled = self.unread.is_empty()
            && (self.at_end.len() >= self.assigned || now >= self.last_record + TAIL_IDLE);
        if settled {
            return TailState::Settled(std::mem::take(&mut self.positions));
        }
        if now >= self.deadline {
            let mut unread: Vec<i32> = self.unread.iter().copied().collect();
            unread.sort_unstable();
            return TailState::Unreadable(unread);
        }
        TailState::Reading
    }
}

/// Per source partition, the first offset not yet mirrored: records before
/// it arrived in an earlier run.
#[derive(Debug, Clone)]
pub struct Floors(Vec<i64>);

impl Floors {
    pub fn new(partitions: usize, resume: &HashMap<i32, ResumePoint>) -> Floors {
        Floors(
            (0..i32::try_from(partitions).unwrap_or(i32::MAX))
                .map(|p| resume.get(&p).map_or(i64::MIN, |point| point.next))
                .collect(),
        )
    }

    /// Whether the record at `offset` of `partition` was mirrored before.
    pub fn copied_before(&self, partition: i32, offset: i64) -> bool {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.0.get(p))
            .is_some_and(|&floor| offset < floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        cluster: "a",
        topic: "orders",
        contract_id: "c1",
    };

    fn written(origin: &Origin<'_>, offset: i64) -> Vec<(&'static str, Option<Vec<u8>>)> {
        let offset = offset.to_string();
        origin
            .headers("0", &offset)
            .into_iter()
            .map(|(k, v)| (k, Some(v.as_bytes().to_vec())))
            .collect()
    }

    fn read(headers: &[(&'static str, Option<Vec<u8>>)], contract: &str) -> Option<i64> {
        source_offset(headers.iter().map(|(k, v)| (*k, v.as_deref())), contract)
    }

    #[test]
    fn provenance_written_is_read_back() {
        assert_eq!(read(&written(&ORIGIN, 41), "c1"), Some(41));
    }

    #[test]
    fn another_contracts_records_do_not_count() {
        assert_eq!(read(&written(&ORIGIN, 41), "c2"), None);
        assert_eq!(read(&[("trace", Some(b"x".to_vec()))], "c1"), None);
    }

    #[test]
    fn the_last_hop_decides() {
        // Mirrored by c0 first (offset 7), then by c1 (offset 3).
        let first = Origin {
            contract_id: "c0",
            ..ORIGIN
        };
        let mut headers = written(&first, 7);
        headers.extend(written(&ORIGIN, 3));
        assert_eq!(read(&headers, "c1"), Some(3));
        // c0 wrote the first hop, but the record's last hop is c1's.
        assert_eq!(read(&headers, "c0"), None);
    }

    #[test]
    fn a_malformed_offset_is_no_provenance() {
        let mut headers = written(&ORIGIN, 1);
        headers[3].1 = Some(b"one".to_vec());
        assert_eq!(read(&headers, "c1"), None);
        headers[3].1 = None;
        assert_eq!(read(&headers, "c1"), None);
    }

    #[test]
    fn the_tail_resumes_after_the_highest_offset_seen() {
        let start = Instant::now();
        let mut tail = Tail::new([0, 1], start);
        assert_eq!(tail.state(start), TailState::Reading);
        tail.record(0, 10, Some(5), start);
        tail.record(0, 11, Some(4), start); // reordered by an earlier crash
        tail.record(1, 3, None, start); // someone else's record
        tail.end_of(0);
        tail.end_of(1);
        let TailState::Settled(points) = tail.state(start) else {
            panic!("settled")
        };
        assert_eq!(
            points,
            HashMap::from([(
                0,
                ResumePoint {
                    next: 6,
                    landed_at: 10
                }
            )])
        );
    }

    #[test]
    fn a_tail_that_reports_no_end_settles_once_idle() {
        let start = Instant::now();
        let mut tail = Tail::new([0], start);
        tail.record(0, 0, Some(0), start);
        assert_eq!(tail.state(start + TAIL_IDLE / 2), TailState::Reading);
        assert!(matches!(
            tail.state(start + TAIL_IDLE),
            TailState::Settled(points) if points[&0].next == 1
        ));
    }

    #[test]
    fn an_unread_partition_is_never_guessed() {
        let start = Instant::now();
        let mut tail = Tail::new([0, 2], start);
        tail.record(0, 0, Some(0), start);
        // Idle, but partition 2 has shown nothing: not settled.
        assert_eq!(tail.state(start + TAIL_IDLE * 2), TailState::Reading);
        assert_eq!(
            tail.state(start + TAIL_DEADLINE),
            TailState::Unreadable(vec![2])
        );
    }

    #[test]
    fn one_partition_reporting_its_end_twice_does_not_end_another() {
        let start = Instant::now();
        let mut tail = Tail::new([0, 1], start);
        tail.record(0, 0, Some(0), start);
        tail.record(1, 0, Some(0), start);
        tail.end_of(0);
        tail.record(0, 1, Some(1), start);
        tail.end_of(0);
        assert_eq!(tail.state(start), TailState::Reading);
        tail.end_of(1);
        assert!(matches!(tail.state(start), TailState::Settled(_)));
    }

    #[test]
    fn an_empty_destination_settles_at_once() {
        let start = Instant::now();
        assert_eq!(
            Tail::new([], start).state(start),
            TailState::Settled(HashMap::new())
        );
    }

    #[test]
    fn floors_drop_what_was_copied_before() {
        let resume = HashMap::from([(
            1,
            ResumePoint {
                next: 5,
                landed_at: 9,
            },
        )]);
        let floors = Floors::new(2, &resume);
        assert!(!floors.copied_before(0, 0));
        assert!(floors.copied_before(1, 4));
        assert!(!floors.copied_before(1, 5));
        assert!(!floors.copied_before(7, 0)); // a partition added since
    }
}
