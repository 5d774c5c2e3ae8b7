//! A whole cluster restored from a snapshot ([`Fault::Restore`]): once a seed's cluster has
//! run and passed every checker, the operator stops it, makes a new cluster as `ordo init`
//! does (a new cluster id and cluster key, every member's folder formatted), seeds each
//! member with one member's newest snapshot through the function `ordo snapshot restore`
//! calls, and starts them a while later. The restored cluster runs as long again, under the
//! same fault classes (their rates drawn anew), with new clients (their command ids unlike
//! the first cluster's), and every checker runs on it from the snapshot: the counter goes on
//! from the snapshot's count, the event feed from the snapshot's event position. What the
//! first cluster committed after the snapshot is gone, by design; what the snapshot holds is
//! checked against what the first cluster applied below it.

use super::{CLIENTS, Fault, Sim, SimFailure, TICK_NS, folders};
use crate::replica::container::Container;
use crate::replica::snapshot::Snapshot;
use ordo_core::machine::StateMachine;
use ordo_core::{ClusterId, Position};

/// One cluster's run within a seed: what its draws come from and where it starts. The
/// first cluster's; then, if the seed draws a restore, the restored one's.
pub(super) struct Epoch {
    /// Seeds its draws (rates, network, faults, elections, disks that lie, the hostile client).
    pub(super) seed: u64,
    pub(super) cluster_id: ClusterId,
    pub(super) cluster_key: [u8; 32],
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
        Epoch {
            seed: config.seed,
            cluster_id: ClusterId(1),
            cluster_key: [5; 32],
            start_ns: 0,
            clients_from: 0,
            events_from: Position::ZERO,
            count_from: 0,
        }
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
    /// one that has one). The snapshot must hold what the cluster applied below it: the
    /// state hash a member had there, and for a counter, one count a command applied.
    pub(super) fn restore_drawn(&self) -> Result<Option<(Epoch, Backup)>, SimFailure> {
        if !self.config.faults.has(Fault::Restore) || self.start_ns != 0 {
            return Ok(None);
        }
        let mut rng = fastrand::Rng::with_seed(self.config.seed ^ 0x7265_7374_6F72_6521);
        if rng.u32(..8) != 0 {
            return Ok(None);
        }
        let members = self.nodes.len();
        let first = rng.usize(..members);
        let Some((member, snapshot)) = (0..members)
            .map(|k| (first + k) % members)
            .find_map(|member| Some((member, folders::newest_readable_snapshot(&self.nodes[member].dir)?)))
        else {
            return Err(self.fail("restore", "no member holds a snapshot that reads back whole".into()));
        };
        let position = snapshot.info.position();
        let container = Container::<M>::restore(snapshot.body()).map_err(|error| {
            self.fail("restore", format!("member {}'s snapshot does not restore: {error}", member + 1))
        })?;
        let checks = self.checks.lock().expect("one thread");
        let hash = checks.hashes.get(&position).copied();
        if hash.is_some_and(|hash| hash != snapshot.info.state_hash) {
            let message =
                format!("member {}'s snapshot at {position} holds another state than was applied there", member + 1);
            return Err(checks.fail("restore", message));
        }
        let count_from = self.count_of.map_or(0, |count_of| count_of(container.machine()));
        let applied_below = checks.applied_ids.values().filter(|(at, _)| *at < position).count() as u64;
        if self.count_of.is_some() && checks.id_of.is_some() && count_from != applied_below {
            let message = format!(
                "member {}'s snapshot at {position} counts {count_from}, where {applied_below} commands were applied below it",
                member + 1
            );
            return Err(checks.fail("restore", message));
        }
        drop(checks);
        let epoch = Epoch {
            seed: rng.u64(..),
            cluster_id: ClusterId(2),
            cluster_key: [7; 32],
            // The operator's work: a second to ten (every old session expires meanwhile).
            start_ns: self.now_ns + rng.u64(1000..=10_000) * TICK_NS,
            clients_from: CLIENTS as u64,
            events_from: snapshot.info.events.position,
            count_from,
        };
        Ok(Some((epoch, Backup { snapshot, member })))
    }

    /// Member `index`'s new folder seeded with `backup`, as `ordo snapshot restore` does.
    pub(super) fn seed_restored(&mut self, index: usize, backup: &Backup) -> Result<(), SimFailure> {
        if index == 0 {
            let info = &backup.snapshot.info;
            let (position, term, from) = (info.position(), info.base.term, backup.member + 1);
            self.note(format!(
                "the operator restores the whole cluster from member {from}'s snapshot at {position} ({term})"
            ));
        }
        let dir = &self.nodes[index].dir;
        let (_, recovering) = crate::disk::restore_snapshot(dir, self.cluster_id, &backup.snapshot)
            .map_err(|error| self.fail("restore", format!("member {}: {error}", index + 1)))?;
        if recovering {
            let message = format!("member {} of a new cluster was seeded as one that lost its state", index + 1);
            return Err(self.fail("restore", message));
        }
        Ok(())
    }
}
