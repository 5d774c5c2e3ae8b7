//! Testing a state machine in the deterministic simulator: whole clusters of it, with
//! clients, on a virtual clock and a simulated network, on the member's real storage,
//! through the faults of [`Fault`] (crashes of one member or all, power cuts, lost disks,
//! partitions of any shape, loss, duplication, long delays, clocks that drift and step,
//! frozen members, slow disks), all decided by one seed. It checks that no two leaders share
//! a term, that committed entries are never lost or changed, that every command is applied
//! exactly once, that members at the same position have the same state hash, that
//! snapshots restore to the same state, that a connected majority elects a leader, and your
//! machine's [`StateMachine::check_invariants`] on every member.
//!
//! ```
//! use ordo_service::simulation::{self, SimConfig};
//! use ordo_service::{Context, StateMachine};
//!
//! /// Adds each command's number; never goes below zero.
//! #[derive(Default)]
//! struct Total(u64);
//!
//! impl StateMachine for Total {
//!     fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
//!         self.0 += u64::from(command.first().copied().unwrap_or(0));
//!         ctx.reply(&self.0.to_le_bytes());
//!     }
//!     fn snapshot(&self, out: &mut Vec<u8>) {
//!         out.extend_from_slice(&self.0.to_le_bytes());
//!     }
//!     fn restore(bytes: &[u8]) -> Result<Self, String> {
//!         Ok(Total(u64::from_le_bytes(bytes.try_into().map_err(|_| "8 bytes expected")?)))
//!     }
//! }
//!
//! // Command `sequence` of client `client`: the same bytes each time it is asked for.
//! fn workload(client: u64, sequence: u64) -> Vec<u8> {
//!     vec![(client + sequence) as u8 % 10]
//! }
//!
//! for seed in 0..3 {
//!     if let Err(failure) = simulation::run::<Total>(SimConfig::new(seed), workload) {
//!         panic!("{failure}"); // names the seed, the checker and the last events
//!     }
//! }
//! ```

use crate::deliberate::DeliberateBug;
use ordo_core::StateMachine;
use std::fmt;

/// Runs one seed of a simulated cluster of `M`, each client sending `workload(client,
/// sequence)` (clients 0 and 1, and 2 and 3 in a cluster restored from a snapshot:
/// [`Fault::Restore`]); `Ok` with what happened, or the first check that failed.
pub fn run<M: StateMachine + Default>(
    config: SimConfig,
    workload: fn(u64, u64) -> Vec<u8>,
) -> Result<SimStats, SimFailure> {
    crate::sim::run_app::<M>(config, workload).map_err(|mut failure| {
        failure.reproduce = format!("run seed {} again with the same SimConfig and workload", failure.seed);
        failure
    })
}

/// One class of fault the simulator can inject; `ordo sim --faults` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A member crashes and restarts: its unsynced tail lost, partly kept, torn or bit-flipped.
    Crash,
    /// Several members crash at once, now and then the whole cluster (a power cut).
    Outage,
    /// With crashes: a member comes back with its disk gone (no vote, log, snapshot or event
    /// log), one at a time.
    DiskLoss,
    /// Partitions of any shape: a member isolated, 2|3 of five, one-way cuts, a member that
    /// hears but is not heard.
    Partition,
    /// Loss, duplication, reordering and jitter.
    Network,
    /// Now and then a datagram is held and delivered up to several election timeouts late.
    Delay,
    /// Members' clocks: monotonic clocks that run up to 2% fast or slow from an origin of their
    /// own, new at every restart; wall clocks off by up to a few hundred ms, stepped forward
    /// and back (an NTP correction).
    Clock,
    /// A member frozen for up to several election timeouts (a stop-the-world stall) while the
    /// others go on; what is sent to it waits in its socket buffer.
    Pause,
    /// Work takes time: syncs, snapshots and applies cost virtual time, and now and then a
    /// sync stalls for tens of milliseconds.
    Stall,
    /// With crashes: a disk that lied, one member at a time. A bit flips at rest in a
    /// sealed segment, the log's checkpoint, the vote file or a snapshot, or a power cut
    /// writes pages back out of order (damage followed by whole entries). The member must
    /// refuse what it cannot trust, naming the file; the operator then rebuilds it (its
    /// folder moved aside, it starts empty and catches up from its peers).
    Corruption,
    /// A hostile client: with its client key it forges members' frames (heartbeats, votes,
    /// appends, acknowledgements, snapshot chunks) claiming to be any member, in the
    /// cluster's term and the next few, and sends datagrams that are no frame.
    Hostile,
    /// One run in eight, once it has passed, the operator restores the whole cluster from
    /// one member's newest snapshot: a new cluster made (`ordo init`: a new cluster id and
    /// key, every folder formatted) and each member seeded with it (the function `ordo
    /// snapshot restore` calls), one to ten seconds later. The restored cluster runs as long
    /// again under the same fault classes (rates drawn anew), with new clients (the
    /// workload's clients 2 and 3), every checker on it; what was committed after the
    /// snapshot is gone, by design.
    Restore,
}

impl Fault {
    /// Every class, in the order `ordo sim --faults` lists them.
    pub const EVERY: [Fault; 12] = [
        Fault::Crash,
        Fault::Outage,
        Fault::DiskLoss,
        Fault::Partition,
        Fault::Network,
        Fault::Delay,
        Fault::Clock,
        Fault::Pause,
        Fault::Stall,
        Fault::Corruption,
        Fault::Hostile,
        Fault::Restore,
    ];

    /// Its name in `--faults` lists.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Outage => "outage",
            Fault::DiskLoss => "disk-loss",
            Fault::Partition => "partition",
            Fault::Network => "network",
            Fault::Delay => "delay",
            Fault::Clock => "clock",
            Fault::Pause => "pause",
            Fault::Stall => "stall",
            Fault::Corruption => "corruption",
            Fault::Hostile => "hostile",
            Fault::Restore => "restore",
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Which faults a run injects: a set of [`Fault`] classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    bits: u32,
}

impl Faults {
    /// Every fault.
    pub const ALL: Faults = Faults { bits: (1 << Fault::EVERY.len()) - 1 };
    /// No faults: a healthy cluster.
    pub const NONE: Faults = Faults { bits: 0 };

    /// Whether the run injects `fault`.
    pub fn has(self, fault: Fault) -> bool {
        self.bits & fault.bit() != 0
    }

    /// These faults and `fault`.
    pub fn with(self, fault: Fault) -> Faults {
        Faults { bits: self.bits | fault.bit() }
    }

    /// These faults but `fault`.
    pub fn without(self, fault: Fault) -> Faults {
        Faults { bits: self.bits & !fault.bit() }
    }

    /// `all`, `none`, or a comma-separated list of class names (`crash,partition,clock`);
    /// the error names the word it did not know and the names it knows.
    pub fn parse(list: &str) -> Result<Faults, String> {
        match list {
            "all" => return Ok(Faults::ALL),
            "none" => return Ok(Faults::NONE),
            _ => {}
        }
        list.split(',').map(str::trim).try_fold(Faults::NONE, |faults, word| {
            match Fault::EVERY.iter().find(|f| f.name() == word) {
                Some(&fault) => Ok(faults.with(fault)),
                None => Err(format!("{word:?} is not a fault class: use all, none, or a list of {}", Faults::ALL)),
            }
        })
    }
}

impl fmt::Display for Faults {
    /// The names of its classes, comma-separated (`none` for none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Faults::NONE {
            return f.write_str("none");
        }
        let names: Vec<&str> = Fault::EVERY.iter().filter(|&&c| self.has(c)).map(|c| c.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// One simulated run: its seed decides everything (elections, faults, timing), so a seed that
/// fails fails again the same way.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// The run's seed.
    pub seed: u64,
    /// Cluster size: 1, 3 or 5.
    pub members: u16,
    /// Virtual time the run lasts; faults stop at 70% of it (a run whose drawn network is
    /// slow, with long election timeouts, goes on until eight of them have passed since).
    pub duration_ns: u64,
    /// Which faults it injects.
    pub faults: Faults,
    /// Clients send (and resend) this often.
    pub client_interval_ns: u64,
    /// A consensus rule broken on purpose (the simulator's own tests).
    #[doc(hidden)]
    pub deliberate_bug: Option<DeliberateBug>,
}

impl SimConfig {
    /// Seed `seed`: 3 members, 4 s of virtual time, every fault.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            members: 3,
            duration_ns: 4_000_000_000,
            faults: Faults::ALL,
            client_interval_ns: 2_000_000,
            deliberate_bug: None,
        }
    }
}

/// What a run that passed did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Virtual clock ticks.
    pub ticks: u64,
    /// Datagrams sent.
    pub messages: u64,
    /// Elections won.
    pub elections: u64,
    /// Members crashed (and restarted).
    pub crashes: u64,
    /// Of those, members that came back with their disk gone.
    pub disks_lost: u64,
    /// The commit position at the end.
    pub commit_position: u64,
    /// Client commands acknowledged.
    pub acked: u64,
    /// Client commands answered "outcome unknown" (their session expired in flight).
    pub outcomes_unknown: u64,
    /// Sessions still open at the end on the member that applied the most.
    pub sessions_open: u64,
    /// Timers fired (on the member that applied the most).
    pub timers_fired: u64,
    /// Snapshots taken (all members) and installed from a leader.
    pub snapshots: u64,
    /// Bytes in the longest event log at the end.
    pub events_bytes: u64,
    /// Snapshots a follower installed from its leader.
    pub snapshots_installed: u64,
    /// Power cuts of several members at once.
    pub outages: u64,
    /// Partitions (of any shape).
    pub partitions: u64,
    /// Members frozen.
    pub pauses: u64,
    /// Wall clocks stepped.
    pub clock_steps: u64,
    /// Crashes between two effects of one duty cycle (a vote stored, not yet sent; entries
    /// appended, not yet synced; a snapshot installed, nothing after it).
    pub crashes_inside: u64,
    /// Members damaged at rest (a bit flipped, pages written back out of order).
    pub corruptions: u64,
    /// Of those, members that refused to start and were rebuilt by the operator.
    pub rebuilds: u64,
    /// Of those, members the operator seeded from a running member's newest snapshot (the
    /// others start empty).
    pub reseeds: u64,
    /// Events the subscribing client received (the event feed, from the start, and in a
    /// restored cluster from the snapshot's). This and the other counts add up both clusters
    /// of a seed that restores; the positions and sizes are the restored cluster's.
    pub events_received: u64,
    /// Of those, events no member's event log held at the end to compare with (each starts
    /// anew at a snapshot installed or a lost disk).
    pub events_unchecked: u64,
    /// Gaps the subscriber was told of: events no member held any more (every event log
    /// began anew past them).
    pub events_gaps: u64,
    /// Commands answered "reply too large" (applied; their reply over a response frame).
    pub replies_too_large: u64,
    /// Frames forged, and datagrams that are no frame, sent by the hostile client.
    pub forgeries: u64,
    /// Whole clusters restored from a snapshot (and run again).
    pub restores: u64,
    /// Commands in the histories checked for linearizability (answered, or applied).
    pub linearizable_checked: u64,
    /// Histories whose linearizability search went past its bound (neither passed nor failed).
    pub linearizability_undecided: u64,
}

/// A checker failed: which, why, and the last events before it.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The seed that failed.
    pub seed: u64,
    /// The checker that failed (`state hash`, `invariants`, `snapshot`, `election`, …).
    pub checker: &'static str,
    /// What it found.
    pub message: String,
    /// The last things that happened before it, oldest first.
    pub trace: Vec<String>,
    /// A command that runs this seed again (set by whoever knows the workload).
    pub reproduce: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation failed: seed {} — {}: {}", self.seed, self.checker, self.message)?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "reproduce: {}", self.reproduce)
    }
}
