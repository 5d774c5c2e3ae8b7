//! Defects the simulator's own tests switch back on, one at a time, to show that its
//! checkers find each: consensus rules broken on purpose, and the defects of the safety
//! issue (16) reintroduced where each lived. Only [`crate::simulation::SimConfig`] sets one;
//! a real member never does.

/// One defect, switched back on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliberateBug {
    /// Commit by count alone, even entries of older terms (Raft's figure 8).
    CommitOlderTermByCount,
    /// Grant votes without comparing logs.
    VoteWithoutLogCheck,
    /// Commit what the leader alone has made durable.
    CommitWithoutMajority,
    /// A member that lost its disk votes at once, without catching up first (issue 16, #11).
    RecoveringVotes,
    /// The leader stamps entries with its process's uptime, not the wall clock (#2).
    ClockIsUptime,
    /// A client whose session expired resends its unanswered commands under a new one (#3).
    ResendAfterExpiry,
    /// A session-close entry takes effect even if the session was active since (#3).
    CloseIgnoresActivity,
    /// A late vote of an old round is counted with the pre-votes of the next (#4).
    LateVoteCounted,
    /// A follower installs a snapshot at or below its commit (#9).
    SnapshotBelowCommit,
    /// A candidate refused a pre-vote by a member of a newer term does not adopt that term
    /// (#5: with the third member down, the longer log and the newer term refuse each other
    /// forever).
    RefusalTermIgnored,
    /// A client matches a reply to its command by sequence alone, not by session too: a late
    /// reply to a command of its expired session answers the new session's command of that
    /// sequence (found by the linearizability checker: two commands answered one count).
    ReplyMatchedBySequence,
    /// A member takes members' frames under a client key (#10: any client could act as a
    /// member, forging votes and appends).
    ClientFramesAdmitted,
    /// A reply is sent however long it is, as if a response frame held any (#1: its send
    /// fails; that stopped the member, and the next leader too, answering the retry).
    ReplyLimitUnchecked,
    /// The applied position after an entry ending 32 bytes short of a segment's end is that
    /// end, not where the log puts the next entry (#7: a snapshot there did not match the
    /// log, and the member refused to restart).
    AppliedUnnormalised,
    /// A subscriber takes events from any frame of the feed, not only one that continues
    /// where it is: a duplicated or late frame delivers events twice.
    EventsTakenFromAnywhere,
}

impl DeliberateBug {
    /// Every defect the simulator can switch back on.
    pub const EVERY: [DeliberateBug; 15] = [
        DeliberateBug::CommitOlderTermByCount,
        DeliberateBug::VoteWithoutLogCheck,
        DeliberateBug::CommitWithoutMajority,
        DeliberateBug::RecoveringVotes,
        DeliberateBug::ClockIsUptime,
        DeliberateBug::ResendAfterExpiry,
        DeliberateBug::CloseIgnoresActivity,
        DeliberateBug::LateVoteCounted,
        DeliberateBug::SnapshotBelowCommit,
        DeliberateBug::RefusalTermIgnored,
        DeliberateBug::ReplyMatchedBySequence,
        DeliberateBug::ClientFramesAdmitted,
        DeliberateBug::ReplyLimitUnchecked,
        DeliberateBug::AppliedUnnormalised,
        DeliberateBug::EventsTakenFromAnywhere,
    ];

    /// Its name for `ordo-sim --deliberate-bug`.
    pub fn name(self) -> &'static str {
        match self {
            DeliberateBug::CommitOlderTermByCount => "commit-by-count",
            DeliberateBug::VoteWithoutLogCheck => "vote-without-log-check",
            DeliberateBug::CommitWithoutMajority => "commit-without-majority",
            DeliberateBug::RecoveringVotes => "recovering-votes",
            DeliberateBug::ClockIsUptime => "clock-is-uptime",
            DeliberateBug::ResendAfterExpiry => "resend-after-expiry",
            DeliberateBug::CloseIgnoresActivity => "close-ignores-activity",
            DeliberateBug::LateVoteCounted => "late-vote-counted",
            DeliberateBug::SnapshotBelowCommit => "snapshot-below-commit",
            DeliberateBug::RefusalTermIgnored => "refusal-term-ignored",
            DeliberateBug::ReplyMatchedBySequence => "reply-matched-by-sequence",
            DeliberateBug::ClientFramesAdmitted => "client-frames-admitted",
            DeliberateBug::ReplyLimitUnchecked => "reply-limit-unchecked",
            DeliberateBug::AppliedUnnormalised => "applied-unnormalised",
            DeliberateBug::EventsTakenFromAnywhere => "events-taken-from-anywhere",
        }
    }

    /// The defect named `name`.
    pub fn parse(name: &str) -> Result<DeliberateBug, String> {
        DeliberateBug::EVERY.iter().copied().find(|bug| bug.name() == name).ok_or_else(|| {
            let names: Vec<&str> = DeliberateBug::EVERY.iter().map(|bug| bug.name()).collect();
            format!("{name:?} is not a deliberate bug: use one of {}", names.join(", "))
        })
    }
}
