//! Divergence detection: at each snapshot point every member tells the others its state
//! hash. Members that applied the same log must agree; when a majority agrees on one hash, a
//! member with another is the faulty replica (three replicas expose the faulty one) and is
//! reported loudly: an error log line, and a record kept for `describe` and the counters.
//! Deterministic and sans-I/O: the member and the simulator feed it the hashes they see.

use ordo_core::{MemberId, Position};
use std::collections::BTreeMap;

/// Snapshot points remembered (older ones are forgotten as new ones come).
const POSITIONS_KEPT: usize = 16;
/// Divergences remembered (the first ones matter most; the error log has them all).
const DIVERGENCES_KEPT: usize = 64;

/// A member whose state hash disagreed with the majority's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub position: Position,
    pub member: MemberId,
    pub state_hash: u64,
    pub majority_hash: u64,
}

#[derive(Clone, Debug)]
pub struct StateHashes {
    members: usize,
    /// For each snapshot point, the hash each member reported.
    hashes: BTreeMap<Position, Vec<(MemberId, u64)>>,
    divergences: Vec<Divergence>,
    divergences_seen: u64,
}

impl StateHashes {
    pub fn new(members: usize) -> Self {
        StateHashes { members, hashes: BTreeMap::new(), divergences: Vec::new(), divergences_seen: 0 }
    }

    /// `member` had `state_hash` after applying everything below `position`.
    pub fn record(&mut self, member: MemberId, position: Position, state_hash: u64) {
        let row = self.hashes.entry(position).or_default();
        if row.iter().any(|&(m, _)| m == member) {
            return; // a repeat
        }
        row.push((member, state_hash));
        let row = row.clone();
        while self.hashes.len() > POSITIONS_KEPT {
            self.hashes.pop_first();
        }
        let majority = self.members / 2 + 1;
        let Some(majority_hash) =
            row.iter().map(|&(_, h)| h).find(|&h| row.iter().filter(|&&(_, other)| other == h).count() >= majority)
        else {
            return;
        };
        for &(member, state_hash) in &row {
            let known = self.divergences.iter().any(|d| d.position == position && d.member == member);
            if state_hash != majority_hash && !known {
                tracing::error!(
                    "member {} diverged: state hash {state_hash:#018x} after applying to {position}, the majority has {majority_hash:#018x}; stop it, and rebuild it from a snapshot of a healthy member",
                    member.0
                );
                self.divergences_seen += 1;
                if self.divergences.len() < DIVERGENCES_KEPT {
                    self.divergences.push(Divergence { position, member, state_hash, majority_hash });
                }
            }
        }
    }

    pub fn divergences(&self) -> &[Divergence] {
        &self.divergences
    }

    /// Every divergence found (the counter: it keeps counting past the ones kept).
    pub fn divergences_seen(&self) -> u64 {
        self.divergences_seen
    }

    /// The hashes reported at `position`, by member.
    #[cfg(test)]
    pub fn at(&self, position: Position) -> &[(MemberId, u64)] {
        self.hashes.get(&position).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_outvoted_by_the_other_two_is_named_once() {
        let mut hashes = StateHashes::new(3);
        hashes.record(MemberId(1), Position(100), 7);
        hashes.record(MemberId(3), Position(100), 9);
        assert!(hashes.divergences().is_empty(), "one against one: nobody is outvoted yet");
        hashes.record(MemberId(2), Position(100), 7);
        hashes.record(MemberId(2), Position(100), 7);
        let expected = Divergence { position: Position(100), member: MemberId(3), state_hash: 9, majority_hash: 7 };
        assert_eq!(hashes.divergences(), [expected]);
        hashes.record(MemberId(3), Position(100), 9);
        assert_eq!(hashes.divergences_seen(), 1, "reported once");
        for position in 1..=20 {
            for member in 1..=3 {
                hashes.record(MemberId(member), Position(1000 * position), position);
            }
        }
        assert_eq!(hashes.divergences().len(), 1, "agreement reports nothing");
        assert!(hashes.at(Position(100)).is_empty(), "old snapshot points are forgotten");
    }
}
