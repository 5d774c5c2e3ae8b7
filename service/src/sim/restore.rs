//! A whole cluster restored from a snapshot ([`Fault::Restore`]): once a seed's cluster has
//! run and passed every checker, the operator stops it, makes every member's folder anew
//! as `ordo init` does, seeds each with one member's newest snapshot through the function
//! `ordo snapshot restore` calls, and starts them. The restored cluster runs as long again,
//! under the same fault classes, with new clients (their command ids unlike the first
//! cluster's), and every checker runs on it from the snapshot: the counter goes on from the
//! snapshot's count, the event feed from the snapshot's event position. What the first
//! cluster committed after the snapshot is gone, by design, so nothing is compared across
//! the restore but what the snapshot holds.

use super::{CLIENTS, Fault, Sim, SimFailure, TICK_NS, folders};
use crate::replica::container::Container;
use crate::replica::snapshot::Snapshot;
use ordo_core::machine::StateMachine;
use ordo_core::{ClusterId, Position};

/// The operator's work between the first cluster's end and the restored one's start.
const RESTORE_GAP_NS: u64 = 1000 * TICK_NS;

/// One cluster's run within a seed: what its draws come from and where it starts. The
/// first cluster's; then, if the seed draws a restore, the restored one's.
pub(super) struct Epoch {
    /// Seeds its draws (rates, network, faults, disks that lie, the hostile client).
    pub(super) seed: u64,
    /// When it starts (true time): the restored cluster's clocks go on from the first's.
    pub(super) start_ns: u64,
    /// The workload's number of its first client.
    pub(super) clients_from: u64,
    /// Where the subscribing client's event feed starts.
    pub(super) events_from: Position,
    /// The counter's count at its start.
    pub(super) count_from: u64,
}

impl Epoch {
    pub(super) fn first(config: &super::SimConfig) -> Epoch {
        Epoch { seed: config.seed, start_ns: 0, clients_from: 0, events_from: Position::ZERO, count_from: 0 }
    }
}

/// The snapshot every member of the restored cluster is seeded with, and whose it was.
pub(super) struct Backup {
    snapshot: Snapshot,
    member: usize,
}

impl<M: StateMachine + Default> Sim<M> {
    /// Whether this seed restores its cluster once the run passed (one in eight, drawn apart
    /// from every other draw, so the first cluster runs as it would without the class), and
    /// from what: the newest snapshot that reads back whole of a member drawn (or the next
    /// one that has one).
    pub(super) fn restore_drawn(&self) -> Option<(Epoch, Backup)> {
        if !self.config.faults.has(Fault::Restore) || self.start_ns != 0 {
            return None;
        }
        let mut rng = fastrand::Rng::with_seed(self.config.seed ^ 0x7265_7374_6F72_6521);
        if rng.u32(..8) != 0 {
            return None;
        }
        let members = self.nodes.len();
        let first = rng.usize(..members);
        let (member, snapshot) = (0..members)
            .map(|k| (first + k) % members)
            .find_map(|member| Some((member, folders::newest_readable_snapshot(&self.nodes[member].dir)?)))?;
        let count_from = match self.count_of {
            Some(count_of) => count_of(Container::<M>::restore(snapshot.body()).ok()?.machine()),
            None => 0,
        };
        let epoch = Epoch {
            seed: rng.u64(..),
            start_ns: self.now_ns + RESTORE_GAP_NS,
            clients_from: CLIENTS as u64,
            events_from: snapshot.info.events.position,
            count_from,
        };
        Some((epoch, Backup { snapshot, member }))
    }

    /// Every member's folder made anew and seeded with `backup`, then every member started.
    pub(super) fn start_restored(&mut self, backup: &Backup) -> Result<(), SimFailure> {
        self.stats.restores += 1;
        let info = &backup.snapshot.info;
        let (position, term) = (info.position(), info.base.term);
        let from = backup.member + 1;
        self.note(format!(
            "the operator restores the whole cluster from member {from}'s snapshot at {position} ({term})"
        ));
        for index in 0..self.nodes.len() {
            let dir = self.nodes[index].dir.clone();
            self.folders.format(index).map_err(|error| self.fail("restore", format!("{}: {error}", dir.display())))?;
            let (_, recovering) = crate::disk::restore_snapshot(&dir, ClusterId(1), &backup.snapshot)
                .map_err(|error| self.fail("restore", format!("member {}: {error}", index + 1)))?;
            if recovering {
                let message = format!("member {} of a new cluster was seeded as one that lost its state", index + 1);
                return Err(self.fail("restore", message));
            }
            self.start(index, 0).map_err(|error| self.fail("start", format!("member {}: {error}", index + 1)))?;
        }
        Ok(())
    }
}
