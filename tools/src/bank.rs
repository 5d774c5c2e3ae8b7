//! `ordo bank`: the Jepsen-style bank test against real member processes. Accounts are
//! funded, then a client streams transfers with unique ids between random accounts while
//! members are SIGKILLed and restarted (the leader, a follower, all three at once) and, with
//! `--partitions` (root), cut off from each other in network namespaces. Afterwards every
//! member's folder is checked offline:
//!
//! - `log verify` passes (every checksum and the chain);
//! - the replayed ledger conserves money, and every member's state hash is the same;
//! - every acknowledged transfer is there exactly once, with what was sent, and every
//!   refused one is absent (nothing acknowledged lost, nothing applied twice);
//! - the replies are linearizable: the acknowledged transfers, applied to a model in the log
//!   order their positions give, reproduce every reply (a refusal for want of funds happened
//!   when the model lacked them).

use crate::Failure;
use crate::children::Members;
use crate::netns::Network;
use ordo_apps::ledger::{self, Command, Ledger, Reason, Reply};
use ordo_core::{NodeConfig, Position};
use ordo_service::machinery::replay::{ReplayOptions, replay};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Bank {
    pub seconds: u64,
    pub accounts: u32,
    pub rate_per_s: u64,
    /// Seconds between faults.
    pub fault_interval_s: f64,
    /// Also partition members from each other (network namespaces; needs root).
    pub partitions: bool,
    /// Every member loses, duplicates and reorders datagrams (`[transport.faults]`).
    pub lossy: bool,
    /// Keep the cluster folder here (default: a temporary one).
    pub dir: Option<PathBuf>,
    pub seed: u64,
}

/// What the run did and what the checks found; the last five must be 0.
#[derive(Debug, Default, serde::Serialize)]
pub struct BankReport {
    pub seconds: f64,
    pub transfers: u64,
    pub acknowledged: u64,
    pub posted: u64,
    pub refused: u64,
    pub kills: u64,
    pub partitions: u64,
    pub failovers: u64,
    /// Acknowledged transfers missing from a member's state, or different there.
    pub lost: u64,
    /// Transfers in a member's state that no reply accounts for (applied but refused, or
    /// never sent).
    pub unexplained: u64,
    /// Members whose state hash differs from member 1's.
    pub divergences: u64,
    /// Replies a model applying the transfers in log order does not reproduce.
    pub not_linearizable: u64,
    /// Members whose log fails `log verify`, or whose ledger does not conserve money.
    pub corrupt: u64,
    /// Leaders cut off from the others that still led when the cut healed, or whose
    /// majority had not elected another by then.
    pub stale_leaders: u64,
}

impl BankReport {
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.unexplained == 0
            && self.divergences == 0
            && self.not_linearizable == 0
            && self.corrupt == 0
            && self.stale_leaders == 0
            && self.acknowledged == self.transfers
    }
}

const INITIAL_BALANCE: u64 = 1_000;

fn account(index: u64) -> String {
    format!("acct-{index}")
}

/// A transfer as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    from: String,
    to: String,
    amount: u64,
}

/// A fault the schedule injects.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    KillFollower,
    KillAll,
    IsolateLeader,
    IsolateFollower,
    OneWayFromLeader,
}

pub fn run(bank: &Bank, stop: &AtomicBool) -> Result<BankReport, Failure> {
    let temp = match &bank.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("ordo-bank-").tempdir()?),
    };
    let dir = bank.dir.clone().unwrap_or_else(|| temp.as_ref().expect("made above").path().to_path_buf());
    let network = if bank.partitions { Some(Network::create(3)?) } else { None };
    let (configs, nodes) = configure(bank, &dir, network.as_ref())?;
    let data_dirs: Vec<PathBuf> = nodes.iter().map(|n| n.data_dir.clone()).collect();
    let wrappers: Vec<Vec<String>> = match &network {
        Some(network) => (0..3).map(|i| network.exec_prefix(i)).collect(),
        None => vec![Vec::new(); 3],
    };
    let mut members = Members::start_wrapped(&configs, &data_dirs, &dir, &wrappers)?;
    members.wait_for_leader(Duration::from_secs(30))?;
    if let Some(network) = &network {
        network.enter_hub()?; // the client talks to the members from the hub namespace
    }
    let mut client = crate::target::Target::of_node(&nodes[0], None)?.client()?;
    fund(&mut client, bank.accounts)?;

    // Transfers at a steady rate while the faults come.
    let mut report = BankReport::default();
    let mut random = fastrand::Rng::with_seed(bank.seed);
    let mut load = Load::default();
    let mut faults = Faults::new(bank, &members);
    let started = Instant::now();
    let run = Duration::from_secs(bank.seconds);
    while started.elapsed() < run || client.outstanding() > 0 {
        if stop.load(Ordering::Acquire) {
            return Err(Failure("interrupted".into()));
        }
        let sending = started.elapsed() < run;
        if sending {
            load.send_due(bank, started.elapsed(), &mut client, &mut random);
        }
        client.poll(client.now_ns())?;
        load.take_replies(&mut client)?;
        faults.heal_if_due(&mut members, network.as_ref(), &mut report)?;
        if sending {
            faults.inject_if_due(&mut members, network.as_ref(), &mut report, &mut random)?;
        }
        faults.note_leader(&members, &mut report);
        if let Some((index, status)) = members.exited() {
            return Err(members.died(index, status));
        }
        if !sending && started.elapsed() > run + Duration::from_secs(60) {
            let unanswered = client.outstanding();
            return Err(Failure(format!("{unanswered} transfers still unanswered 60 s after the load stopped")));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    if let Some(network) = &network {
        network.heal()?;
    }
    for index in 0..3 {
        if !members.is_running(index) {
            members.spawn(index)?;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.transfers = load.sent.len() as u64;
    report.acknowledged = load.answers.len() as u64;
    let last = load.answers.values().map(|(position, _)| *position).max().unwrap_or(Position::ZERO);
    members.settle(last, Duration::from_secs(60))?;
    check(&nodes, &load.sent, &load.answers, bank.accounts, &mut report)?;
    drop(network);
    Ok(report)
}

/// Writes the three members' folders and `ordo.toml`s for the run: the members' addresses in
/// their namespaces if there are any, snapshots often, lossy links if asked.
fn configure(bank: &Bank, dir: &Path, network: Option<&Network>) -> Result<(Vec<PathBuf>, Vec<NodeConfig>), Failure> {
    let base_port = match network {
        Some(_) => 9000,
        None => crate::init::free_base_port()?,
    };
    let settings = crate::init::Init {
        dir: dir.to_path_buf(),
        members: 3,
        base_port,
        app: "ledger".into(),
        durability: ordo_core::Durability::Fsync,
        hosts: Vec::new(),
    };
    let configs = crate::init::init(&settings)?;
    let mut nodes = Vec::new();
    for (index, path) in configs.iter().enumerate() {
        let mut node = NodeConfig::load(path)?;
        if let Some(network) = network {
            for member in &mut node.members {
                member.address = network.address(member.id.0 as usize - 1, member.address.port());
            }
        }
        node.snapshot.interval_bytes = 256 << 10; // snapshots and log deletion during the run
        node.runtime.idle = ordo_core::IdleStrategy::Backoff;
        if bank.lossy {
            node.transport.faults = Some(ordo_core::NetFaults {
                loss_per_mille: 50,
                duplicate_per_mille: 20,
                reorder_per_mille: 50,
                reorder_delay_us: 2_000,
                jitter_us: 300,
                seed: bank.seed,
            });
        }
        std::fs::write(path, node.to_toml()).map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
        nodes.push(NodeConfig::load(path)?);
        debug_assert_eq!(nodes[index].member_id.0 as usize, index + 1);
    }
    Ok((configs, nodes))
}

/// Opens and funds every account.
fn fund(client: &mut ordo_service::Client, accounts: u32) -> Result<(), Failure> {
    let setup: Vec<Vec<u8>> = (0..u64::from(accounts))
        .flat_map(|i| {
            [
                ledger::encode(&Command::Open { account: account(i), limit: 0 }),
                ledger::encode(&Command::Deposit { account: account(i), amount: INITIAL_BALANCE }),
            ]
        })
        .collect();
    let replies = client.call_all(setup.iter().map(Vec::as_slice), Duration::from_secs(60))?;
    if replies.iter().any(|r| !r.status.is_ok()) {
        return Err(Failure("the accounts could not be opened and funded".into()));
    }
    Ok(())
}

/// The transfers: what was sent, and the answers.
#[derive(Default)]
struct Load {
    /// By transfer id.
    sent: BTreeMap<u64, Sent>,
    /// Client ticket → transfer id.
    by_ticket: BTreeMap<u64, u64>,
    /// By transfer id.
    answers: BTreeMap<u64, (Position, Reply<'static>)>,
    /// The last transfer id used.
    last_id: u64,
}

impl Load {
    /// Submits the transfers due by `elapsed` at the bank's rate, between random accounts.
    fn send_due(
        &mut self,
        bank: &Bank,
        elapsed: Duration,
        client: &mut ordo_service::Client,
        random: &mut fastrand::Rng,
    ) {
        let send_interval_ns = 1_000_000_000 / bank.rate_per_s.max(1);
        let accounts = u64::from(bank.accounts);
        while self.last_id * send_interval_ns <= elapsed.as_nanos() as u64 {
            let id = self.last_id + 1;
            let from = random.u64(..accounts);
            let to = (from + 1 + random.u64(..accounts - 1)) % accounts;
            let transfer = Sent { from: account(from), to: account(to), amount: 1 + random.u64(..INITIAL_BALANCE / 2) };
            let (from, to, amount) = (transfer.from.clone(), transfer.to.clone(), transfer.amount);
            let command = ledger::encode(&Command::Transfer { id, from, to, amount });
            self.by_ticket.insert(client.submit(&command), id);
            self.sent.insert(id, transfer);
            self.last_id = id;
        }
    }

    fn take_replies(&mut self, client: &mut ordo_service::Client) -> Result<(), Failure> {
        while let Some(reply) = client.take_reply() {
            let Some(id) = self.by_ticket.remove(&reply.ticket) else { continue };
            let decoded = ledger::decode_reply(&reply.reply)
                .map_err(|e| Failure(format!("transfer {id}: an undecodable reply: {e}")))?;
            self.answers.insert(id, (reply.position, decoded));
        }
        Ok(())
    }
}

/// The fault schedule, each fault healed (restarted, reconnected) before the next.
struct Faults {
    schedule: &'static [Fault],
    interval: Duration,
    next_fault: Instant,
    /// When to heal, and the members to restart then.
    heal_at: Option<(Instant, Vec<usize>)>,
    /// A leader cut off, which must have stepped down by the heal.
    cut_leader: Option<usize>,
    injected: usize,
    leader_seen: Option<usize>,
}

impl Faults {
    fn new(bank: &Bank, members: &Members) -> Faults {
        let schedule: &'static [Fault] = if bank.partitions {
            &[Fault::IsolateLeader, Fault::KillLeader, Fault::IsolateFollower, Fault::OneWayFromLeader, Fault::KillAll]
        } else {
            &[Fault::KillLeader, Fault::KillFollower, Fault::KillAll]
        };
        let interval = Duration::from_secs_f64(bank.fault_interval_s.max(0.5));
        let next_fault = Instant::now() + interval;
        let leader_seen = members.leader();
        Faults { schedule, interval, next_fault, heal_at: None, cut_leader: None, injected: 0, leader_seen }
    }

    fn heal_if_due(
        &mut self,
        members: &mut Members,
        network: Option<&Network>,
        report: &mut BankReport,
    ) -> Result<(), Failure> {
        let Some((at, down)) = &self.heal_at else { return Ok(()) };
        if Instant::now() < *at {
            return Ok(());
        }
        // A leader cut off from its majority must have stepped down, and the majority
        // elected another, before the cut heals.
        if let Some(old) = self.cut_leader.take() {
            let new_elected = (0..3).any(|i| i != old && members.role(i) == Some(2));
            if members.role(old) == Some(2) || !new_elected {
                tracing::error!("member {} still leads, or no other does, after being cut off", old + 1);
                report.stale_leaders += 1;
            }
        }
        for &index in down {
            if !members.is_running(index) {
                members.spawn(index)?;
            }
        }
        if let Some(network) = network {
            network.heal()?;
        }
        self.heal_at = None;
        Ok(())
    }

    fn inject_if_due(
        &mut self,
        members: &mut Members,
        network: Option<&Network>,
        report: &mut BankReport,
        random: &mut fastrand::Rng,
    ) -> Result<(), Failure> {
        if self.heal_at.is_some() || Instant::now() < self.next_fault {
            return Ok(());
        }
        let fault = self.schedule[self.injected % self.schedule.len()];
        self.injected += 1;
        let leader = members.leader();
        let follower = leader.map(|l| (l + 1 + random.usize(..2)) % 3);
        let mut down = Vec::new();
        match (fault, leader, follower, network) {
            (Fault::KillLeader, Some(l), _, _) => down.push(l),
            (Fault::KillFollower, _, Some(f), _) => down.push(f),
            (Fault::KillAll, _, _, _) => down.extend(0..3),
            (Fault::IsolateLeader, Some(l), _, Some(network)) => {
                network.isolate(l)?;
                self.cut_leader = Some(l);
                report.partitions += 1;
            }
            (Fault::IsolateFollower, _, Some(f), Some(network)) => {
                network.isolate(f)?;
                report.partitions += 1;
            }
            (Fault::OneWayFromLeader, Some(l), _, Some(network)) => {
                network.drop_outgoing(l)?;
                self.cut_leader = Some(l);
                report.partitions += 1;
            }
            _ => {} // no leader just now: the next fault
        }
        for &index in &down {
            members.kill(index);
            report.kills += 1;
        }
        tracing::info!("fault {fault:?} on {down:?}");
        self.heal_at = Some((Instant::now() + self.interval / 2, down));
        self.next_fault = Instant::now() + self.interval;
        Ok(())
    }

    /// Counts a failover each time another member is seen leading.
    fn note_leader(&mut self, members: &Members, report: &mut BankReport) {
        let leader_now = members.leader();
        if leader_now.is_some() && leader_now != self.leader_seen {
            report.failovers += u64::from(self.leader_seen.is_some());
            self.leader_seen = leader_now;
        }
    }
}

/// The offline checks over every member's folder.
fn check(
    nodes: &[NodeConfig],
    sent: &BTreeMap<u64, Sent>,
    answers: &BTreeMap<u64, (Position, Reply<'static>)>,
    accounts: u32,
    report: &mut BankReport,
) -> Result<(), Failure> {
    for (_, reply) in answers.values() {
        match reply {
            Reply::Posted { .. } | Reply::Exists { .. } => report.posted += 1,
            _ => report.refused += 1,
        }
    }
    let mut hashes = Vec::new();
    for node in nodes {
        let member = node.member_id.0;
        if let Err(error) = ordo_log::verify(&node.data_dir.join("log"), &node.log) {
            tracing::error!("member {member}: log verify failed: {error}");
            report.corrupt += 1;
        }
        let (container, replayed) =
            replay(&node.data_dir, &node.log, Ledger::default(), &ReplayOptions::default(), &mut |_| {})?;
        let ledger = container.machine();
        if let Err(error) = ordo_core::machine::StateMachine::check_invariants(ledger) {
            tracing::error!("member {member}: {error}");
            report.corrupt += 1;
        }
        hashes.push(replayed.state_hash);
        for (id, transfer) in sent {
            let found = ledger.posted(*id);
            let expected = (transfer.from.as_str(), transfer.to.as_str(), transfer.amount);
            match answers.get(id).map(|(_, reply)| reply) {
                Some(Reply::Posted { .. } | Reply::Exists { .. }) if found != Some(expected) => {
                    tracing::error!("member {member}: acknowledged transfer {id} is {found:?}, not {expected:?}");
                    report.lost += 1;
                }
                Some(Reply::Rejected { .. }) | None if found.is_some() => {
                    tracing::error!("member {member}: transfer {id} was not acknowledged as posted but is there");
                    report.unexplained += 1;
                }
                _ => {}
            }
        }
        if ledger.transfers() as u64 > report.posted {
            report.unexplained += ledger.transfers() as u64 - report.posted;
        }
    }
    report.divergences = hashes.iter().filter(|&&h| h != hashes[0]).count() as u64;
    match linearizability_violations(nodes, sent, answers, accounts)? {
        Some(violations) => report.not_linearizable = violations,
        None => tracing::warn!("no member's event log starts at 0: the linearizability check was skipped"),
    }
    Ok(())
}

/// A transfer's outcome in the event log, at the position of the entry that decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Posted,
    Refused(Reason),
}

/// Transfers' outcomes in apply order: (the deciding entry's position, transfer id, outcome).
type Outcomes = Vec<(Position, u64, Outcome)>;

/// The transfers' outcomes in apply order, from a member's event log; `None` if its event
/// log does not start at the beginning (it was seeded from a snapshot).
fn outcomes(node: &NodeConfig) -> Result<Option<Outcomes>, Failure> {
    let config = ordo_core::LogConfig { durability: ordo_core::Durability::Replicated, ..node.log.clone() };
    let reader = ordo_log::LogReader::open(&node.data_dir.join("events"), &config)?;
    if reader.position_start() != Position::ZERO {
        return Ok(None);
    }
    let mut found = Vec::new();
    for entry in reader.entries(Position::ZERO) {
        let entry = entry?;
        if entry.kind() != ordo_core::EntryKind::Event {
            continue;
        }
        let source = Position(entry.header.correlation_id.get());
        match ledger::decode_event(entry.payload)? {
            ledger::Event::TransferPosted { id, .. } => found.push((source, id, Outcome::Posted)),
            ledger::Event::TransferRejected { id, reason } => found.push((source, id, Outcome::Refused(reason))),
            _ => {}
        }
    }
    Ok(Some(found))
}

/// Linearizability of the transfers: the outcomes in the event log, applied to a model in
/// log order, must each be what the model says (posted only with the funds there, refused
/// for want of funds only without them), and each reply the client got must be the outcome
/// the log holds for its transfer (posted exactly once if acknowledged as posted; never
/// posted if acknowledged as refused). Returns the violations, or `None` when no member's
/// event log starts at the beginning.
fn linearizability_violations(
    nodes: &[NodeConfig],
    sent: &BTreeMap<u64, Sent>,
    answers: &BTreeMap<u64, (Position, Reply<'static>)>,
    accounts: u32,
) -> Result<Option<u64>, Failure> {
    let mut log = None;
    for node in nodes {
        if let Some(found) = outcomes(node)? {
            log = Some(found);
            break;
        }
    }
    let Some(log) = log else { return Ok(None) };
    Ok(Some(judge(&log, sent, answers, accounts)))
}

/// The linearizability check proper, over the outcomes in log order.
fn judge(
    log: &[(Position, u64, Outcome)],
    sent: &BTreeMap<u64, Sent>,
    answers: &BTreeMap<u64, (Position, Reply<'static>)>,
    accounts: u32,
) -> u64 {
    let mut balances: BTreeMap<&str, u64> =
        sent.values().flat_map(|t| [t.from.as_str(), t.to.as_str()]).map(|a| (a, INITIAL_BALANCE)).collect();
    debug_assert!(balances.len() <= accounts as usize);
    let mut posted: BTreeMap<u64, u32> = BTreeMap::new();
    let mut violations = 0;
    for &(position, id, outcome) in log {
        let Some(transfer) = sent.get(&id) else {
            tracing::error!("the event log decides transfer {id} at {position}, which was never sent");
            violations += 1;
            continue;
        };
        let funds = balances[transfer.from.as_str()];
        let agrees = match outcome {
            Outcome::Posted if funds >= transfer.amount => {
                *balances.get_mut(transfer.from.as_str()).expect("an account") -= transfer.amount;
                *balances.get_mut(transfer.to.as_str()).expect("an account") += transfer.amount;
                *posted.entry(id).or_default() += 1;
                true
            }
            Outcome::Refused(Reason::InsufficientFunds) => funds < transfer.amount,
            _ => false,
        };
        if !agrees {
            tracing::error!("transfer {id} at {position}: {outcome:?} with {funds} in {}", transfer.from);
            violations += 1;
        }
    }
    for (id, (_, reply)) in answers {
        let times = posted.get(id).copied().unwrap_or(0);
        let agrees = match reply {
            Reply::Posted { .. } | Reply::Exists { .. } => times == 1,
            Reply::Rejected { .. } => times == 0,
            _ => false,
        };
        if !agrees {
            tracing::error!("transfer {id}: the client was told {reply:?}, the log posted it {times} times");
            violations += 1;
        }
    }
    violations
}

/// The report as the command prints it.
pub fn print(report: &BankReport) {
    println!(
        "  {} transfers in {:.0} s, {} acknowledged ({} posted, {} refused for want of funds)",
        report.transfers, report.seconds, report.acknowledged, report.posted, report.refused
    );
    println!(
        "  faults: {} kills (SIGKILL), {} partitions; {} leader changes seen",
        report.kills, report.partitions, report.failovers
    );
    println!(
        "  checks: lost {}, unexplained {}, divergences {}, not linearizable {}, corrupt {}, stale leaders {}: {}",
        report.lost,
        report.unexplained,
        report.divergences,
        report.not_linearizable,
        report.corrupt,
        report.stale_leaders,
        if report.passed() { "passed" } else { "FAILED" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(from: u64, to: u64, amount: u64) -> Sent {
        Sent { from: account(from), to: account(to), amount }
    }

    #[test]
    fn the_judge_accepts_a_consistent_history_and_counts_each_kind_of_violation() {
        let sent: BTreeMap<u64, Sent> =
            [(1, transfer(0, 1, 600)), (2, transfer(0, 1, 600)), (3, transfer(1, 0, 100))].into_iter().collect();
        let at = |p: u64| Position(p * 64);
        let good_log = [(at(1), 1, Outcome::Posted), (at(2), 2, Outcome::Refused(Reason::InsufficientFunds))];
        let posted = |id| Reply::Posted { id };
        let refused = Reply::Rejected { reason: Reason::InsufficientFunds };
        let answers: BTreeMap<u64, (Position, Reply<'static>)> =
            [(1, (at(1), posted(1))), (2, (at(2), refused.clone()))].into_iter().collect();
        assert_eq!(judge(&good_log, &sent, &answers, 2), 0);
        // A retry told "exists" is fine when the log posted it once.
        let retried: BTreeMap<_, _> = [(1, (at(5), Reply::Exists { id: 1 }))].into_iter().collect();
        assert_eq!(judge(&good_log[..1], &sent, &retried, 2), 0);

        // Posted without the funds (the second 600 from 1 000 - 600).
        let overdrawn = [(at(1), 1, Outcome::Posted), (at(2), 2, Outcome::Posted)];
        assert_eq!(judge(&overdrawn, &sent, &BTreeMap::new(), 2), 1);
        // Refused with the funds there.
        let wrongly_refused = [(at(1), 3, Outcome::Refused(Reason::InsufficientFunds))];
        assert_eq!(judge(&wrongly_refused, &sent, &BTreeMap::new(), 2), 1);
        // The client was told "posted" but the log never posted it; told "refused" but posted.
        let told: BTreeMap<_, _> = [(3, (at(3), posted(3))), (1, (at(1), refused))].into_iter().collect();
        assert_eq!(judge(&good_log[..1], &sent, &told, 2), 2);
        // Posted twice.
        let twice = [(at(1), 3, Outcome::Posted), (at(2), 3, Outcome::Posted)];
        let once: BTreeMap<_, _> = [(3, (at(1), posted(3)))].into_iter().collect();
        assert_eq!(judge(&twice, &sent, &once, 2), 1);
    }
}
