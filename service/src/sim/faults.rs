//! The simulator's faults, each class switched on by [`Faults`]: crashes (a process killed,
//! or a power cut that loses what was not synced) of one member, several or the whole
//! cluster; lost disks; partitions of any shape; datagrams lost, duplicated, reordered or
//! held for several election timeouts; clocks that drift, start anywhere and step; members
//! frozen; work that takes time. All decided by the run's seed.

use super::folders::{self, PowerCut};
use super::{Disk, ELECTION_TIMEOUT_NS, Life, Sim, TICK_NS};
use crate::replica::effects::Storage;
use crate::simulation::{Fault, SimConfig, SimFailure};
use ordo_core::Position;
use ordo_core::StateMachine;
use ordo_log::Log;
use ordo_transport::FaultConfig;
use std::path::Path;

/// How often each fault strikes in one run, drawn from its seed (swarm testing: a run
/// heavy in one fault and light in another reaches states an even mix does not).
#[derive(Clone, Copy, Debug)]
pub(super) struct Rates {
    /// Chances a tick, in parts per 100,000.
    crash: u32,
    outage: u32,
    partition: u32,
    clock_step: u32,
    pause: u32,
    /// Every datagram's latency, and how much more it may take (a LAN, or one tens of
    /// milliseconds across: candidates then stand at once more often, and votes split).
    latency_ns: u64,
    jitter_ns: u64,
    /// Snapshots each member keeps: with one, the log goes up to the newest, and a member
    /// behind it is sent the leader's snapshot more often.
    pub(super) snapshots_kept: usize,
    /// Commands each client keeps submitted (its session sends them within the real
    /// window): a light load, or one that fills logs and sends lagging members snapshots.
    pub(super) outstanding: usize,
    /// Chances a datagram.
    loss: f64,
    duplicate: f64,
    reorder: f64,
    hold: f64,
    /// How much the log grows between the leader's snapshot requests: often, or seldom.
    pub(super) snapshot_interval_bytes: u64,
}

impl Rates {
    pub(super) fn draw(rng: &mut fastrand::Rng) -> Rates {
        Rates {
            crash: rng.u32(50..=800),
            outage: rng.u32(10..=80),
            partition: rng.u32(50..=600),
            clock_step: rng.u32(20..=300),
            pause: rng.u32(20..=300),
            // From one rack to across a continent: at 60 ms, votes outlive a round's timeout.
            latency_ns: [100_000, 500_000, 2_000_000, 6_000_000, 25_000_000, 60_000_000][rng.usize(..6)],
            jitter_ns: rng.u64(100_000..=6_000_000),
            snapshots_kept: rng.usize(1..=2),
            outstanding: [1, 4, 16][rng.usize(..3)],
            loss: rng.f64() * 0.08,
            duplicate: rng.f64() * 0.04,
            reorder: rng.f64() * 0.1,
            hold: rng.f64() * 0.02,
            snapshot_interval_bytes: [4096, 8192, 16_384, 32_768][rng.usize(..4)],
        }
    }

    /// The members' election timeout: eight times the network's latency, at least the
    /// default (Raft asks for a timeout well above the round trip; at eight latencies, two
    /// candidates of one round still split the vote one time in four or so).
    pub(super) fn election_timeout_ns(&self) -> u64 {
        ELECTION_TIMEOUT_NS.max(8 * self.latency_ns)
    }

    /// What the network does to datagrams while faults are on.
    pub(super) fn network(&self, config: &SimConfig) -> FaultConfig {
        let mut faults = FaultConfig { latency_ns: 100_000, ..FaultConfig::NONE };
        if config.faults.has(Fault::Network) {
            faults = FaultConfig {
                loss: self.loss,
                duplicate: self.duplicate,
                reorder: self.reorder,
                reorder_delay_ns: 5 * TICK_NS,
                latency_ns: self.latency_ns,
                jitter_ns: self.jitter_ns,
                ..faults
            };
        }
        if config.faults.has(Fault::Delay) {
            // Up to four election timeouts late: from a round long over, after the sender
            // crashed, or after a new leader took over.
            faults = FaultConfig { hold: self.hold, hold_ns: 4 * self.election_timeout_ns(), ..faults };
        }
        faults
    }
}

/// How a member goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crash {
    /// The process is killed: the page cache survives, so everything written is kept (a
    /// write cut short leaves a partial entry).
    Kill,
    /// The machine loses power: of what was not synced, some was written back, some torn,
    /// and a disk that lied may flip a bit.
    PowerCut,
}

/// What a disk that lied damaged at rest ([`Fault::Corruption`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Damage {
    /// A bit of a sealed segment (the member's whole-log verification must see it, or the
    /// bit was in bytes no entry holds).
    SealedSegment,
    /// A bit of the log's checkpoint (checksummed: refused).
    Checkpoint,
    /// A bit of the vote file (checksummed: refused, never read as another vote).
    VoteFile,
    /// A bit of a snapshot (checksummed: passed over for an older one).
    Snapshot,
    /// A power cut that wrote pages back out of order: a flipped bit with whole entries
    /// after it (recovery refuses the log as corrupt in the middle).
    OutOfOrder,
}

/// A lie a disk told: what it damaged, and the file (or, out of order, the log's folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Lie {
    pub(super) damage: Damage,
    pub(super) target: std::path::PathBuf,
}

impl Lie {
    /// Whether `error`, a member's refusal to start on its folder, is the refusal this lie
    /// calls for: naming the file damaged (the log's folder or one of its segments for pages
    /// out of order), or for a snapshot, saying that none usable reaches the log.
    fn is_answered_by(&self, error: &str) -> bool {
        let name = self.target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let names_target = error.contains(&name) || error.contains(&*self.target.to_string_lossy());
        match self.damage {
            Damage::Snapshot => names_target || error.contains("holds no usable snapshot"),
            Damage::OutOfOrder => names_target || error.contains(".log"),
            _ => names_target,
        }
    }
}

impl Damage {
    const EVERY: [Damage; 5] =
        [Damage::SealedSegment, Damage::Checkpoint, Damage::VoteFile, Damage::Snapshot, Damage::OutOfOrder];

    /// Whether the member's log may no longer be what it holds (so the checkers do not read
    /// it until the member has started on it or been rebuilt).
    pub(super) fn touches_log(self) -> bool {
        matches!(self, Damage::SealedSegment | Damage::Checkpoint | Damage::OutOfOrder)
    }

    /// Whether the member must refuse to start on it.
    pub(super) fn must_refuse(self) -> bool {
        matches!(self, Damage::VoteFile)
    }
}

impl<M: StateMachine + Default> Sim<M> {
    /// One tick's chance of each fault that is switched on.
    pub(super) fn inject_faults(&mut self) {
        let (faults, rates) = (self.config.faults, self.rates);
        let mut strikes = |per_100k: u32| self.rng.u32(..100_000) < per_100k;
        let crash = faults.has(Fault::Crash) && strikes(rates.crash);
        let outage = faults.has(Fault::Outage) && strikes(rates.outage);
        let partition = faults.has(Fault::Partition) && strikes(rates.partition);
        let clock_step = faults.has(Fault::Clock) && strikes(rates.clock_step);
        let pause = faults.has(Fault::Pause) && strikes(rates.pause);
        if crash {
            self.crash_one();
        }
        if outage {
            self.outage();
        }
        if faults.has(Fault::Partition) {
            match self.heal_at_ns {
                None if partition => self.partition(),
                Some(at) if self.now_ns >= at => {
                    self.net.heal();
                    self.heal_at_ns = None;
                    self.note("heal the network".to_string());
                }
                _ => {}
            }
        }
        if clock_step {
            let index = self.rng.usize(..self.nodes.len());
            let step_ns = self.nodes[index].clocks.step(&mut self.rng);
            self.checks.lock().expect("one thread").unsteady(index);
            self.stats.clock_steps += 1;
            self.note(format!("member {}'s wall clock steps {:+.3} ms", index + 1, step_ns as f64 / 1e6));
        }
        if pause {
            let index = self.rng.usize(..self.nodes.len());
            let node = &mut self.nodes[index];
            if node.replica().is_some() && node.paused_until_ns <= self.now_ns {
                let pause_ns = self.rng.u64(10 * TICK_NS..=4 * rates.election_timeout_ns());
                node.paused_until_ns = self.now_ns + pause_ns;
                self.checks.lock().expect("one thread").unsteady(index);
                self.stats.pauses += 1;
                self.note(format!("member {} freezes for {} ms", index + 1, pause_ns / TICK_NS));
            }
        }
    }

    /// One member crashes, if a majority stays up (so the cluster can go on meanwhile).
    fn crash_one(&mut self) {
        let members = self.config.members as usize;
        let alive = self.nodes.iter().filter(|n| n.replica().is_some()).count();
        let index = self.rng.usize(..members);
        if self.nodes[index].replica().is_some() && alive > members / 2 + 1 {
            let how = if self.rng.bool() { Crash::Kill } else { Crash::PowerCut };
            self.crash(index, how);
        }
    }

    /// Several members lose power at once, now and then every one of them.
    fn outage(&mut self) {
        let members = self.config.members as usize;
        let count = if self.rng.u32(..3) == 0 { members } else { self.rng.usize(2.min(members)..=members) };
        let mut chosen: Vec<usize> = (0..members).collect();
        self.rng.shuffle(&mut chosen);
        self.stats.outages += 1;
        self.note(format!("power cut: {count} of {members} members"));
        for index in chosen.into_iter().take(count) {
            if self.nodes[index].replica().is_some() {
                self.crash(index, Crash::PowerCut);
            }
        }
    }

    /// A partition of some shape: one member isolated, the cluster split in two (both ways
    /// or one way), or one member that hears but is not heard (or is heard but hears
    /// nothing); now and then a client is cut from a member too.
    fn partition(&mut self) {
        let members = self.config.members;
        let mut order: Vec<u16> = (0..members).collect();
        self.rng.shuffle(&mut order);
        let split = self.rng.usize(1..members.max(2) as usize).min(order.len());
        let (side, rest) = order.split_at(split);
        let shape = match self.rng.u8(..4) {
            0 => {
                self.net.isolate(side[0], members);
                format!("isolate member {}", side[0] + 1)
            }
            1 | 2 => {
                let both_ways = self.rng.bool();
                for &a in side {
                    for &b in rest {
                        self.net.cut(a, b);
                        if both_ways {
                            self.net.cut(b, a);
                        }
                    }
                }
                let names = |group: &[u16]| group.iter().map(|m| (m + 1).to_string()).collect::<Vec<_>>().join(",");
                let arrow = if both_ways { "|" } else { "-/->" };
                format!("partition members {} {arrow} {}", names(side), names(rest))
            }
            _ => {
                let mute = self.rng.bool();
                for other in (0..members).filter(|&o| o != side[0]) {
                    if mute {
                        self.net.cut(side[0], other);
                    } else {
                        self.net.cut(other, side[0]);
                    }
                }
                let how = if mute { "hears but is not heard" } else { "is heard but hears nothing" };
                format!("member {} {how}", side[0] + 1)
            }
        };
        let mut shape = shape;
        if self.rng.u32(..4) == 0 {
            let client = members + self.rng.u16(..super::CLIENTS);
            let member = self.rng.u16(..members);
            self.net.cut(client, member);
            self.net.cut(member, client);
            shape += &format!("; client {} cut from member {}", client - members, member + 1);
        }
        self.heal_at_ns = Some(self.now_ns + self.rng.u64(50..800) * TICK_NS);
        self.stats.partitions += 1;
        self.note(shape);
    }

    /// Member `index` died just before carrying out `effect`, in the middle of a duty cycle.
    pub(super) fn crash_inside(&mut self, index: usize, effect: &str) {
        self.stats.crashes_inside += 1;
        self.note(format!("member {} dies before carrying out {effect}", index + 1));
        let how = if self.rng.bool() { Crash::Kill } else { Crash::PowerCut };
        self.crash(index, how);
    }

    /// Member `index` goes down `how`; sometimes it comes back with its disk gone.
    fn crash(&mut self, index: usize, how: Crash) {
        // Fewer than a majority's worth of members may have lost their disks at once (one of
        // three, two of five): with more, the cluster would rightly wait for an operator (a
        // majority may be what lost the data).
        let recovering = self.nodes.iter().filter(|n| n.recovering()).count();
        let members = self.config.members as usize;
        let room = recovering + 1 < members - members / 2;
        let lose_disk = self.config.faults.has(Fault::DiskLoss) && room && self.rng.u32(..5) == 0;
        let corrupt = self.config.faults.has(Fault::Corruption) && room && !lose_disk && self.rng_lies.u32(..6) == 0;
        let damage = corrupt.then(|| Damage::EVERY[self.rng_lies.usize(..Damage::EVERY.len())]);
        // Down a moment, or (one in four) long enough to fall behind the leader's log.
        let down_ms = if self.rng.u32(..4) == 0 { self.rng.u64(500..1500) } else { self.rng.u64(10..500) };
        let restart_at_ns = self.now_ns + down_ms * TICK_NS;
        let node = &mut self.nodes[index];
        let Life::Up(replica) = std::mem::replace(&mut node.life, Life::Down(Disk::closed(restart_at_ns))) else {
            unreachable!("only a running member crashes")
        };
        self.snapshots_before += replica.snapshots_taken();
        node.inbox.clear();
        let dir = node.dir.clone();
        let (storage, events) = replica.into_storage().expect("an inline service hands its state back");
        let mut recovering = storage.recovering();
        let log = (storage.log.position_fsynced(), storage.log.position_append());
        let events_span = (events.position_fsynced(), events.position_append());
        drop((storage, events)); // the process is gone: its mappings with it
        if lose_disk {
            std::fs::remove_dir_all(&dir).expect("the simulator removes a member's folder");
            recovering = true;
            self.checks.lock().expect("one thread").disk_lost(index);
            self.stats.disks_lost += 1;
        }
        let out_of_order = damage == Some(Damage::OutOfOrder);
        let flipped_out_of_order = !lose_disk
            && self.damage(&dir, if out_of_order { Crash::PowerCut } else { how }, log, events_span, out_of_order);
        let damage = damage.and_then(|damage| self.corrupt(index, &dir, damage, flipped_out_of_order));
        // Recovery, as the member will run it when it starts, for the checkers meanwhile (not
        // over a log a disk lied about: the checkers would read what the member may refuse).
        let config = folders::log_config(self.cluster_id);
        let readable = !damage.as_ref().is_some_and(|lie| lie.damage.touches_log());
        let logs = Log::open(&dir.join("log"), config.clone())
            .and_then(|(log, _)| Ok((log, Log::open(&dir.join("events"), config.for_events())?.0)))
            .ok()
            .filter(|_| readable);
        let end = logs.as_ref().map_or(Position::ZERO, |(log, _)| log.position_append());
        // A damaged member counts as one that may have lost its state until it starts.
        let recovering = recovering || damage.is_some();
        self.nodes[index].life = Life::Down(Box::new(Disk { logs, recovering, damage, restart_at_ns }));
        self.checks.lock().expect("one thread").unsteady(index);
        self.stats.crashes += 1;
        let lost = if lose_disk { ", its disk lost" } else { "" };
        let how = match how {
            Crash::Kill => "kill",
            Crash::PowerCut => "power cut on",
        };
        self.note(format!("{how} member {}{lost} (log back to {end})", index + 1));
    }

    /// What the crash did to the files in `dir`: the log's bytes written but not fsynced,
    /// `log` (fsynced, end), and the event log's, `events` (fsynced, end); `out_of_order`, a
    /// power cut that writes pages back out of order. Returns whether that flipped a bit.
    fn damage(
        &mut self,
        dir: &Path,
        how: Crash,
        log: (Position, Position),
        events: (Position, Position),
        out_of_order: bool,
    ) -> bool {
        let cut = match how {
            // A write cut short: a partial entry after everything written.
            Crash::Kill => {
                let partial = self.rng.usize(..2) * 40;
                let torn = self.garbage(partial);
                PowerCut { durable: log.1, end: log.1, keep: 0, flip: None, torn: &torn, out_of_order: false }
                    .apply(&dir.join("log"))
            }
            Crash::PowerCut => {
                let keep = if self.rng.bool() { 0 } else { self.rng.u64(..4096) };
                let flip = (self.rng.u32(..10) < 3).then(|| self.rng.u64(..));
                // Out of order: drawn apart, so the other draws stay as they were.
                let (keep, flip) =
                    if out_of_order { (self.rng_lies.u64(1..4096), Some(self.rng_lies.u64(..))) } else { (keep, flip) };
                let torn_bytes = self.rng.usize(..100);
                let torn = self.garbage(torn_bytes);
                let (durable, end) = log;
                // The page cache may have written back some of what was never fsynced.
                let unsynced = events.1.0 - events.0.0;
                let events_kept = if self.rng.bool() { 0 } else { self.rng.u64(..=unsynced) };
                PowerCut { durable, end, keep, flip, torn: &torn, out_of_order }.apply(&dir.join("log")).and_then(
                    |flipped| {
                        let (durable, end) = events;
                        let cut =
                            PowerCut { durable, end, keep: events_kept, flip: None, torn: &[], out_of_order: false };
                        cut.apply(&dir.join("events")).map(|_| flipped)
                    },
                )
            }
        };
        out_of_order && cut.expect("the simulator damages a member's files")
    }

    /// A disk that lied flips a bit at rest, as `damage` says, in member `index`'s folder
    /// `dir` (out of order: `flipped_out_of_order` says whether the power cut flipped one);
    /// `None` if there was nothing of that kind to damage (no sealed segment yet, no snapshot,
    /// nothing unsynced to write back out of order).
    fn corrupt(&mut self, index: usize, dir: &Path, damage: Damage, flipped_out_of_order: bool) -> Option<Lie> {
        let target = match damage {
            Damage::SealedSegment => {
                let segments = folders::files(&dir.join("log"), ".log");
                let sealed = segments.len().checked_sub(1).filter(|&sealed| sealed > 0)?;
                segments[self.rng_lies.usize(..sealed)].clone()
            }
            Damage::Checkpoint => dir.join("log").join("checkpoint"),
            Damage::VoteFile => dir.join("vote"),
            Damage::Snapshot => {
                let snapshots = folders::files(&dir.join("snapshots"), ".ordosnap");
                snapshots.get(self.rng_lies.usize(..snapshots.len().max(1)))?.clone()
            }
            Damage::OutOfOrder => {
                if !flipped_out_of_order {
                    return None;
                }
                self.stats.corruptions += 1;
                self.note(format!("member {}'s disk lied: pages written back out of order", index + 1));
                return Some(Lie { damage, target: dir.join("log") });
            }
        };
        let offset =
            folders::flip_bit(&target, self.rng_lies.u64(..)).expect("the simulator damages a member's files")?;
        self.stats.corruptions += 1;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.note(format!("member {}'s disk lied: a bit flipped in {name} at byte {offset}", index + 1));
        Some(Lie { damage, target })
    }

    /// Member `index` refused to start on its damaged folder with `error`: the refusal must
    /// name a file in the folder; the operator then moves the folder aside and starts the
    /// member empty, to catch up from its peers as a member that lost its disk does.
    fn rebuild(&mut self, index: usize, lie: &Lie, error: &str) -> Result<(), SimFailure> {
        let dir = self.nodes[index].dir.clone();
        if !lie.is_answered_by(error) {
            let (damage, target) = (lie.damage, lie.target.display());
            let message = format!(
                "member {} refused its folder, damaged ({damage:?} in {target}), with another reason: {error}",
                index + 1
            );
            return Err(self.fail("damage refused clearly", message));
        }
        std::fs::remove_dir_all(&dir).expect("the simulator removes a member's folder");
        self.checks.lock().expect("one thread").disk_lost(index);
        self.stats.rebuilds += 1;
        let seeded = if self.rng_lies.bool() { self.seed_from_a_peer(index) } else { None };
        let how = seeded.map_or("empty".to_string(), |peer| format!("from member {peer}'s newest snapshot"));
        self.note(format!("member {} refuses to start ({error}); the operator rebuilds it {how}", index + 1));
        Ok(())
    }

    /// Seeds member `index`'s emptied folder with the newest snapshot of a running member, as
    /// an operator does with `ordo snapshot restore` (the same function): the member then
    /// starts from it, recovering. Returns the peer, if one had a snapshot.
    fn seed_from_a_peer(&mut self, index: usize) -> Option<usize> {
        let peers: Vec<usize> =
            (0..self.nodes.len()).filter(|&p| p != index && self.nodes[p].replica().is_some()).collect();
        let peer = *peers.get(self.rng_lies.usize(..peers.len().max(1)))?;
        let snapshot = folders::newest_readable_snapshot(&self.nodes[peer].dir)?;
        let dir = &self.nodes[index].dir;
        std::fs::create_dir_all(dir).expect("the simulator makes a member's folder");
        let (_, recovering) = crate::disk::restore_snapshot(dir, self.cluster_id, &snapshot)
            .expect("a snapshot restores into an empty folder");
        debug_assert!(recovering, "a member seeded into a folder it lost recovers first");
        self.stats.reseeds += 1;
        Some(peer + 1)
    }

    fn garbage(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.rng.u8(..)).collect()
    }

    /// What a duty cycle's work cost in virtual time, from the member's counts before and
    /// after it (syncs, applied position, snapshots taken): nothing unless work takes time.
    pub(super) fn work_ns(&mut self, before: (Position, Position, u64), after: (Position, Position, u64)) -> u64 {
        if !self.config.faults.has(Fault::Stall) {
            return 0;
        }
        let stalls = self.now_ns < self.faults_end_ns;
        let mut work_ns = 0;
        // A cycle whose durable position moved did one sync (group commit).
        if after.0 > before.0 {
            // An fdatasync: tens to hundreds of µs, and (while faults last) one in 200 stalls
            // behind the device.
            work_ns += if stalls && self.rng.u32(..200) == 0 {
                self.rng.u64(10 * TICK_NS..=60 * TICK_NS)
            } else {
                self.rng.u64(30_000..=500_000)
            };
        }
        // Applying: about a µs a 500 bytes; a snapshot: encoding and writing, a few ms.
        work_ns += after.1.0.saturating_sub(before.1.0) * 2;
        work_ns += (after.2 - before.2) * self.rng.u64(TICK_NS..=5 * TICK_NS);
        work_ns
    }

    /// Faults stop: the network heals and behaves, members down restart, frozen ones thaw.
    pub(super) fn stop_faults(&mut self) {
        self.net.heal();
        self.net.set_faults(FaultConfig { latency_ns: 100_000, ..FaultConfig::NONE });
        // Datagrams held for several election timeouts would keep a restarted leader's old
        // heartbeats arriving (delaying elections by as long) well into the calm.
        self.net.drop_due_after(self.now_ns + 10 * TICK_NS);
        self.heal_at_ns = None;
        let now = self.now_ns;
        for node in &mut self.nodes {
            node.paused_until_ns = node.paused_until_ns.min(now);
            if let Life::Down(disk) = &mut node.life {
                disk.restart_at_ns = now;
            }
        }
        let mut checks = self.checks.lock().expect("one thread");
        checks.calm_since_ns = Some(now);
        self.commit_at_faults_end = checks.commits.iter().copied().max().unwrap_or_default();
        drop(checks);
        let events_ends =
            self.nodes.iter().filter_map(|n| n.disk()).map(|(_, events, _)| ordo_core::LogSource::log_end(events));
        self.events_at_faults_end = events_ends.max().unwrap_or_default();
        self.note(format!("faults stop; commit at {}", self.commit_at_faults_end));
    }

    pub(super) fn restart_due(&mut self) -> Result<(), SimFailure> {
        for index in 0..self.nodes.len() {
            let Life::Down(disk) = &self.nodes[index].life else { continue };
            if self.now_ns < disk.restart_at_ns {
                continue;
            }
            let end = disk.logs.as_ref().map_or(Position::ZERO, |(log, _)| log.position_append());
            let lie = disk.damage.clone();
            let incarnation = self.stats.crashes;
            let mut started = self.start(index, incarnation);
            if let (Err(error), Some(lie)) = (&started, &lie) {
                if self.checks.lock().expect("one thread").failure.is_none() {
                    self.rebuild(index, lie, &error.to_string())?;
                    started = self.start(index, incarnation);
                }
            } else if let (Ok(()), Some(lie)) = (&started, &lie)
                && lie.damage.must_refuse()
            {
                let message = format!("member {} started on a damaged folder ({:?})", index + 1, lie.damage);
                return Err(self.fail("damage refused", message));
            }
            if let Err(error) = started {
                let found = self.checks.lock().expect("one thread").failure.take();
                return Err(found.unwrap_or_else(|| {
                    self.fail("restart", format!("member {} did not restart: {error}", index + 1))
                }));
            }
            self.note(format!("restart member {} at {end}", index + 1));
        }
        Ok(())
    }
}
