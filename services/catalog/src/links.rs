//! Which link process mirrors which contract.
//!
//! Several link processes share the active links. Each calls in about every
//! second ([`LinkShares::share`]) with the contracts it would mirror and the
//! ones it holds (a mirror running or still stopping), and learns which it
//! may mirror. The rules keep every contract with at most one holder:
//!
//! - A contract goes to a new holder only when nobody holds it: its holder
//!   said it stopped holding it, or the holder's lease ran out. A link that
//!   cannot renew its lease stops its mirrors before the lease runs out
//!   (counted from when it sent the call, so before the catalog's count).
//! - After the catalog starts, it hands out nothing for one lease: a link
//!   that holds a contract reports it within that time and keeps it.
//! - Loads are balanced: a link takes unheld contracts up to its fair share
//!   (the contracts over the live links, rounded up) and gives back what it
//!   holds beyond that, which the others then take.
//!
//! The table lives in memory: the links' own reports rebuild it after a
//! restart. Free of I/O; time is passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a grant lasts unless configured (`catalog.link_lease_secs`).
pub const LEASE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LinkShares {
    lease: Duration,
    /// Nothing is handed out before this (one lease after start).
    quiet_until: Instant,
    /// Live members and when their lease ends.
    members: BTreeMap<String, Instant>,
    /// Each held contract's holder.
    holders: BTreeMap<String, String>,
}

/// The answer to one member's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub assigned: Vec<String>,
    pub members: Vec<String>,
}

impl LinkShares {
    /// A table for grants of `lease`. `fresh` says no link can hold a
    /// contract yet (the links start with this catalog, as in `freeport
    /// up`), so there is no first lease to wait out.
    pub fn new(lease: Duration, now: Instant, fresh: bool) -> LinkShares {
        LinkShares {
            lease,
            quiet_until: if fresh { now } else { now + lease },
            members: BTreeMap::new(),
            holders: BTreeMap::new(),
        }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// `member` would mirror `wanted` and holds `held`: what may it mirror?
    pub fn share(
        &mut self,
        member: &str,
        wanted: &BTreeSet<String>,
        held: &BTreeSet<String>,
        now: Instant,
    ) -> Share {
        self.members.insert(member.to_string(), now + self.lease);
        self.members.retain(|name, until| {
            let alive = *until > now;
            if !alive {
                tracing::warn!(member = %name, "link lease ran out; its contracts go to the others");
            }
            alive
        });
        let members = &self.members;
        self.holders
            .retain(|_, holder| members.contains_key(holder));
        // What it says it holds is its own, unless another holds it (which
        // the rules prevent; then it must stop).
        for contract in held {
            self.holders
                .entry(contract.clone())
                .or_insert_with(|| member.to_string());
        }
        // What it no longer holds is free.
        self.holders
            .retain(|contract, holder| holder != member || held.contains(contract));

        let live = self.members.len();
        let total = self
            .holders
            .keys()
            .chain(wanted.iter())
            .collect::<BTreeSet<_>>()
            .len();
        let fair = total.div_ceil(live.max(1));
        let mut mine: Vec<String> = self
            .holders
            .iter()
            .filter(|(contract, holder)| *holder == member && wanted.contains(*contract))
            .map(|(contract, _)| contract.clone())
            .collect();
        if now >= self.quiet_until {
            for contract in wanted {
                if mine.len() >= fair {
                    break;
                }
                if !self.holders.contains_key(contract) {
                    self.holders.insert(contract.clone(), member.to_string());
                    mine.push(contract.clone());
                }
            }
        }
        // Beyond its share, and only when another link has room: give back.
        let others_have_room = self
            .members
            .keys()
            .filter(|other| *other != member)
            .any(|other| self.load(other) < fair);
        if others_have_room && mine.len() > fair {
            mine.sort();
            mine.truncate(fair);
        }
        mine.sort();
        Share {
            assigned: mine,
            members: self.members.keys().cloned().collect(),
        }
    }

    fn load(&self, member: &str) -> usize {
        self.holders.values().filter(|h| *h == member).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// A table past its quiet start.
    fn table() -> (LinkShares, Instant) {
        let start = Instant::now();
        (LinkShares::new(LEASE, start, false), start + LEASE)
    }

    #[test]
    fn nothing_is_handed_out_during_the_first_lease_but_held_contracts_are_kept() {
        let start = Instant::now();
        let mut shares = LinkShares::new(LEASE, start, false);
        let wanted = set(&["c1", "c2"]);
        let first = shares.share("a", &wanted, &set(&["c1"]), start);
        assert_eq!(first.assigned, ["c1"]);
        let later = shares.share("a", &wanted, &set(&["c1"]), start + LEASE);
        assert_eq!(later.assigned, ["c1", "c2"]);
    }

    #[test]
    fn contracts_spread_over_the_links_and_none_is_held_twice() {
        let (mut shares, now) = table();
        let wanted = set(&["c1", "c2", "c3", "c4", "c5", "c6"]);
        let mut held: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for member in ["a", "b", "c"] {
            held.insert(member, BTreeSet::new());
        }
        // A few rounds of everyone calling in and doing what it was told.
        for round in 0..4u64 {
            for member in ["a", "b", "c"] {
                let share = shares.share(
                    member,
                    &wanted,
                    &held[member],
                    now + Duration::from_secs(round),
                );
                held.insert(member, share.assigned.into_iter().collect());
            }
        }
        let mut seen = BTreeSet::new();
        for (member, contracts) in &held {
            assert_eq!(contracts.len(), 2, "{member} holds its share: {held:?}");
            for c in contracts {
                assert!(seen.insert(c.clone()), "{c} held twice: {held:?}");
            }
        }
        assert_eq!(seen, wanted);
    }

    #[test]
    fn a_dead_links_contracts_go_to_the_others_only_after_its_lease() {
        let (mut shares, now) = table();
        let wanted = set(&["c1", "c2"]);
        let a = shares.share("a", &wanted, &set(&[]), now);
        assert_eq!(a.assigned, ["c1", "c2"]);
        let a_held: BTreeSet<String> = a.assigned.into_iter().collect();
        shares.share("a", &wanted, &a_held, now);
        // b arrives: a gives one back, b takes it once a stopped holding it.
        let b = shares.share("b", &wanted, &set(&[]), now);
        assert!(b.assigned.is_empty(), "a still holds both");
        let a = shares.share("a", &wanted, &a_held, now + Duration::from_secs(1));
        assert_eq!(a.assigned, ["c1"], "a gives c2 back");
        let a_held = set(&["c1"]);
        shares.share("a", &wanted, &a_held, now + Duration::from_secs(2));
        let b = shares.share("b", &wanted, &set(&[]), now + Duration::from_secs(2));
        assert_eq!(b.assigned, ["c2"]);
        let b_held = set(&["c2"]);
        // a dies (stops calling). Within its lease, b does not get c1.
        let t = now + Duration::from_secs(2) + LEASE - Duration::from_millis(1);
        assert_eq!(shares.share("b", &wanted, &b_held, t).assigned, ["c2"]);
        let t = now + Duration::from_secs(2) + LEASE + Duration::from_millis(1);
        let b = shares.share("b", &wanted, &b_held, t);
        assert_eq!(b.assigned, ["c1", "c2"]);
        assert_eq!(b.members, ["b"]);
    }

    #[test]
    fn a_contract_no_longer_wanted_is_not_assigned_and_is_freed_once_stopped() {
        let (mut shares, now) = table();
        let a = shares.share("a", &set(&["c1"]), &set(&[]), now);
        assert_eq!(a.assigned, ["c1"]);
        // Revoked: no longer wanted; a still stopping it.
        let a = shares.share("a", &set(&[]), &set(&["c1"]), now);
        assert!(a.assigned.is_empty());
        let b = shares.share("b", &set(&["c1"]), &set(&[]), now);
        assert!(b.assigned.is_empty(), "a still holds c1 while it stops");
        shares.share("a", &set(&[]), &set(&[]), now);
        let b = shares.share("b", &set(&["c1"]), &set(&[]), now);
        assert_eq!(b.assigned, ["c1"]);
    }
}
