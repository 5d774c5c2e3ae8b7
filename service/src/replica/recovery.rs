//! How a member that lost its state (no vote, log or snapshot, in a cluster that has run)
//! knows it holds again everything it may have acknowledged before the loss, and which terms
//! it may have voted in, so that it may vote and count in a quorum again.
//!
//! It asks every other member what it holds (a query under a nonce of this incarnation: an
//! answer to it was made after the loss, never a datagram from before it) and waits until
//! every other member has answered, at least `members - majority + 1` of them not
//! recovering themselves, and its own durable log is at least as up to date (Raft's
//! comparison: last term, then length) as each of theirs.
//!
//! - Entries: every entry committed before the loss is held durably by a majority, so by at
//!   least `majority - 1` others, one of which answered (unless a majority lost its state:
//!   then the cluster rightly waits for an operator); a log at least as up to date as one
//!   holding a committed entry holds it too (log matching in the same term, leader
//!   completeness in a later one).
//! - Votes: any vote it gave before the loss went to a candidate that had stored that term,
//!   and every other member answers; so the highest term reported bounds them (a candidate
//!   that lost its state too forgot its candidacy with it). The member takes that term and
//!   counts as having voted in it. The one vote it may give twice is its own, for a
//!   candidacy the loss ended.
//!
//! A leader's word alone is not enough: a datagram held from before the loss, or a leader
//! since deposed, reports a commit older than what this member acknowledged (simulator seed
//! 796); and answers from a bare majority miss the term of a candidate outside it. The
//! price: a member that lost its state waits until every other member has answered.

use ordo_core::{MemberId, Position, Term};

/// What one other member reported holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Report {
    member: MemberId,
    term: Term,
    last_term: Term,
    log_end: Position,
    /// It lost its state too: what it holds vouches for nothing.
    recovering: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Recovery {
    nonce: u64,
    /// The first answer of each member: any answer made after the loss will do, and a fixed
    /// target is one the member surely reaches.
    reports: Vec<Report>,
    query_due_ns: u64,
}

impl Recovery {
    /// `nonce`: this incarnation's, never an earlier one's (random in a real member).
    pub(crate) fn new(nonce: u64) -> Recovery {
        Recovery { nonce, reports: Vec::new(), query_due_ns: 0 }
    }

    pub(crate) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Whether to ask the others again at `now_ns` (every `interval_ns`).
    pub(crate) fn query_due(&mut self, now_ns: u64, interval_ns: u64) -> bool {
        if now_ns < self.query_due_ns {
            return false;
        }
        self.query_due_ns = now_ns + interval_ns;
        true
    }

    /// `member` answered `nonce`: it is in `term`, its log ends at `log_end` in `last_term`.
    pub(crate) fn on_report(
        &mut self,
        member: MemberId,
        nonce: u64,
        (term, last_term, log_end): (Term, Term, Position),
        recovering: bool,
    ) {
        if nonce != self.nonce || self.reports.iter().any(|r| r.member == member) {
            return;
        }
        self.reports.push(Report { member, term, last_term, log_end, recovering });
    }

    /// If all `others` answered, at least `holding` of them not recovering, and this member's
    /// durable log (`mine`: its last term and end) is at least as up to date as each of
    /// theirs: the highest term any reported (it may have voted there before the loss).
    pub(crate) fn covered(&self, mine: (Term, Position), others: usize, holding: usize) -> Option<Term> {
        let mut live = self.reports.iter().filter(|r| !r.recovering);
        let enough = self.reports.len() >= others && live.clone().count() >= holding;
        (enough && live.all(|r| mine >= (r.last_term, r.log_end)))
            .then(|| self.reports.iter().map(|r| r.term).max().unwrap_or(Term::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_other_member_must_answer_this_incarnation_and_every_one_holding_must_be_covered() {
        let mut recovery = Recovery::new(7);
        let holds = |end: u64| (Term(2), Term(2), Position(end));
        recovery.on_report(MemberId(2), 6, holds(100), false); // an earlier incarnation's
        assert_eq!(recovery.covered((Term(9), Position(0)), 2, 2), None, "no answer yet");
        recovery.on_report(MemberId(2), 7, holds(100), false);
        recovery.on_report(MemberId(2), 7, holds(900), false); // its first answer stands
        assert_eq!(recovery.covered((Term(2), Position(100)), 2, 2), None, "member 3 has not answered");
        recovery.on_report(MemberId(3), 7, (Term(4), Term(1), Position(300)), true);
        assert_eq!(recovery.covered((Term(2), Position(100)), 2, 2), None, "member 3 holds nothing that counts");
        assert_eq!(recovery.covered((Term(2), Position(96)), 2, 1), None, "shorter in the same term");
        assert_eq!(recovery.covered((Term(2), Position(100)), 2, 1), Some(Term(4)), "the highest term reported");
        assert_eq!(recovery.covered((Term(3), Position(32)), 2, 1), Some(Term(4)), "a later term covers");
    }
}
