//! A member's counters: the live numbers `ordo stat` reads from the member's counters file
//! (see `ordo_log::counters`) while the member runs, without asking it anything. The member
//! publishes them once a duty cycle: a dozen plain stores, no allocation, no syscall.

use ordo_log::counters::CountersWriter;

/// The counters, in slot order; `name` is what the file and `ordo stat` call each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// 0 follower, 1 candidate, 2 leader.
    Role,
    Term,
    /// The leader's member id, 0 when none is known.
    Leader,
    LogStartPosition,
    AppendPosition,
    DurablePosition,
    CommitPosition,
    AppliedPosition,
    SnapshotPosition,
    EventsPosition,
    FramesSent,
    FramesReceived,
    /// Datagrams dropped: not ordo frames, another cluster's, malformed, or failing their MAC.
    FramesDropped,
    MacFailures,
    /// Times this member changed role (elections it saw).
    RoleChanges,
    /// Replicas whose state hash disagreed with the majority's.
    Divergences,
    /// Entries applied, and the time spent applying them (their ratio: ns per entry).
    AppliedEntries,
    ApplyNsTotal,
    /// The longest time one duty cycle spent applying.
    ApplyBatchNsMax,
    /// Median and 99th percentile time to apply one entry (HdrHistogram).
    ApplyNsP50,
    ApplyNsP99,
    /// Replies withheld from clients as too large for a response frame (answered
    /// `ReplyTooLarge`: the command took effect).
    RepliesTooLarge,
    /// Responses to clients that could not be queued or sent (dropped; the client retries).
    ClientSendsFailed,
    /// Frames refused for the key they came under: a member's frame not under the cluster
    /// key or not from a member, a client's under the cluster key.
    FramesRefused,
}

impl Counter {
    pub const ALL: [Counter; 24] = [
        Counter::Role,
        Counter::Term,
        Counter::Leader,
        Counter::LogStartPosition,
        Counter::AppendPosition,
        Counter::DurablePosition,
        Counter::CommitPosition,
        Counter::AppliedPosition,
        Counter::SnapshotPosition,
        Counter::EventsPosition,
        Counter::FramesSent,
        Counter::FramesReceived,
        Counter::FramesDropped,
        Counter::MacFailures,
        Counter::RoleChanges,
        Counter::Divergences,
        Counter::AppliedEntries,
        Counter::ApplyNsTotal,
        Counter::ApplyBatchNsMax,
        Counter::ApplyNsP50,
        Counter::ApplyNsP99,
        Counter::RepliesTooLarge,
        Counter::ClientSendsFailed,
        Counter::FramesRefused,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Counter::Role => "role",
            Counter::Term => "term",
            Counter::Leader => "leader",
            Counter::LogStartPosition => "log_start_position",
            Counter::AppendPosition => "append_position",
            Counter::DurablePosition => "durable_position",
            Counter::CommitPosition => "commit_position",
            Counter::AppliedPosition => "applied_position",
            Counter::SnapshotPosition => "snapshot_position",
            Counter::EventsPosition => "events_position",
            Counter::FramesSent => "frames_sent",
            Counter::FramesReceived => "frames_received",
            Counter::FramesDropped => "frames_dropped",
            Counter::MacFailures => "mac_failures",
            Counter::RoleChanges => "role_changes",
            Counter::Divergences => "divergences",
            Counter::AppliedEntries => "applied_entries",
            Counter::ApplyNsTotal => "apply_ns_total",
            Counter::ApplyBatchNsMax => "apply_batch_ns_max",
            Counter::ApplyNsP50 => "apply_ns_p50",
            Counter::ApplyNsP99 => "apply_ns_p99",
            Counter::RepliesTooLarge => "replies_too_large",
            Counter::ClientSendsFailed => "client_sends_failed",
            Counter::FramesRefused => "frames_refused",
        }
    }

    /// A running total (a Prometheus counter), not a level (a gauge).
    pub const fn is_total(self) -> bool {
        matches!(
            self,
            Counter::FramesSent
                | Counter::FramesReceived
                | Counter::FramesDropped
                | Counter::MacFailures
                | Counter::RoleChanges
                | Counter::Divergences
                | Counter::AppliedEntries
                | Counter::ApplyNsTotal
                | Counter::RepliesTooLarge
                | Counter::ClientSendsFailed
                | Counter::FramesRefused
        )
    }

    pub fn names() -> Vec<&'static str> {
        Counter::ALL.iter().map(|c| c.name()).collect()
    }
}

/// The member's counters file.
pub struct Counters(CountersWriter);

impl Counters {
    pub fn create(path: &std::path::Path) -> Result<Counters, ordo_log::LogError> {
        CountersWriter::create(path, &Counter::names()).map(Counters)
    }

    #[inline]
    pub fn set(&self, counter: Counter, value: u64) {
        self.0.set(counter as usize, value);
    }

    #[inline]
    pub fn get(&self, counter: Counter) -> u64 {
        self.0.get(counter as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_slot_and_a_unique_name() {
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, i);
        }
        let mut names = Counter::names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }
}
