//! `ordo demo`: the first thing a new user runs. A local 3-member cluster as child
//! processes, a client load at a fixed rate with a progress bar, the leader killed (SIGKILL)
//! half way and the failover shown, the killed member restarted to catch up, then a
//! summary: commands committed, latency percentiles (from each command's intended send time
//! to its reply: coordinated omission corrected), and every member's state rebuilt offline
//! from its own folder and compared. Its processes are cleaned up on every exit path.

use crate::Failure;
use crate::children::Members;
use crate::init::{Init, config_path, init};
use indicatif::{ProgressBar, ProgressStyle};
use ordo_core::{Durability, NodeConfig};
use ordo_load::latency::LatencyReport;
use ordo_load::open_loop::OpenLoop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Demo {
    /// The cluster folder (a temporary one, removed at the end, if `None`).
    pub dir: Option<PathBuf>,
    pub app: String,
    pub seconds: u64,
    pub rate_per_s: u64,
    pub command_bytes: usize,
}

pub struct Summary {
    pub sent: u64,
    pub latency: LatencyReport,
    pub failover_ms: Option<f64>,
    /// From the SIGKILL to the client's first reply committed by the next leader.
    pub first_commit_ms: Option<f64>,
    /// Commands the cluster had applied before this run (a reused cluster folder).
    pub applied_before: u64,
    /// Each member's state, rebuilt offline from its folder.
    pub states: Vec<crate::apps::Replayed>,
}

impl Summary {
    pub fn states_equal(&self) -> bool {
        self.states.windows(2).all(|w| w[0] == w[1])
    }

    /// Every command sent was applied exactly once on every member (where the app counts
    /// them), and the app's invariants hold on every member.
    pub fn applied_once(&self) -> bool {
        self.states.iter().all(|s| {
            s.invariants_hold && s.commands_applied.is_none_or(|count| count == self.applied_before + self.sent)
        })
    }
}

/// The cluster's folder, made unless `dir` holds one already (then the app's load goes on
/// from the commands its log holds); the configs and how many commands were applied before.
fn prepare(demo: &Demo, dir: &Path) -> Result<(Vec<PathBuf>, Vec<NodeConfig>, u64), Failure> {
    let reused = config_path(dir, 1).exists();
    let configs: Vec<PathBuf> = if reused {
        (1..=3).map(|id| config_path(dir, id)).collect()
    } else {
        let base_port = crate::init::free_base_port()?;
        let settings = Init {
            dir: dir.to_path_buf(),
            members: 3,
            base_port,
            app: demo.app.clone(),
            durability: Durability::Fsync,
            hosts: Vec::new(),
        };
        init(&settings)?
    };
    let nodes: Vec<NodeConfig> = configs.iter().map(|p| NodeConfig::load(p)).collect::<Result<_, _>>()?;
    let applied_before = if reused && nodes[0].data_dir.join("log").is_dir() {
        crate::apps::replay_state(&nodes[0])?.commands_applied.unwrap_or(0)
    } else {
        0
    };
    Ok((configs, nodes, applied_before))
}

pub fn run(demo: &Demo, stop: &AtomicBool) -> Result<Summary, Failure> {
    let temp = match &demo.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("ordo-demo-").tempdir()?),
    };
    let dir = demo.dir.clone().unwrap_or_else(|| temp.as_ref().expect("made above").path().to_path_buf());
    let (configs, nodes, applied_before) = prepare(demo, &dir)?;
    let data_dirs: Vec<PathBuf> = nodes.iter().map(|n| n.data_dir.clone()).collect();
    println!("ordo demo: a 3-member cluster in {} (app {}, durability fsync)", dir.display(), nodes[0].app);
    let mut members = Members::start(&configs, &data_dirs, &dir)?;
    let leader = members.wait_for_leader(Duration::from_secs(20))?;
    println!("  members on {}", nodes[0].members.iter().map(|m| m.address.to_string()).collect::<Vec<_>>().join(", "));
    println!("  member {} was elected leader", leader + 1);

    let mut client = crate::target::Target::of_node(&nodes[0], None)?.client()?;
    let bar = ProgressBar::new(demo.seconds * 10);
    bar.set_style(
        ProgressStyle::with_template("  [{bar:40}] {elapsed:>3} {msg}")
            .map_err(|e| Failure(e.to_string()))?
            .progress_chars("=> "),
    );
    let mut load = OpenLoop::new(demo.rate_per_s, Duration::ZERO, Duration::from_secs(demo.seconds));
    let run_ns = load.end_ns();
    let app = crate::apps::app(&nodes[0].app)?;
    let mut fill = |k: u64, command: &mut Vec<u8>| app.workload_into(applied_before + k, demo.command_bytes, command);
    let mut failover = Failover::default();

    // Progress lines: above the bar on a terminal, plain lines otherwise.
    let say = |bar: &ProgressBar, line: String| if bar.is_hidden() { println!("{line}") } else { bar.println(line) };
    loop {
        if stop.load(Ordering::Acquire) {
            bar.abandon_with_message("interrupted");
            members.stop_all(Duration::from_secs(10));
            return Err(Failure("interrupted; the members were stopped".into()));
        }
        let answered_before = load.answered();
        load.step(&mut client, &mut fill)?;
        let now_ns = load.elapsed_ns();
        if let Some((index, status)) = members.exited() {
            bar.abandon();
            return Err(members.died(index, status));
        }
        let replied = load.answered() > answered_before;
        failover.step(&mut members, now_ns >= run_ns / 2, replied, &mut |line| say(&bar, line))?;
        bar.set_position((now_ns / 100_000_000).min(demo.seconds * 10));
        bar.set_message(format!("{} committed", load.answered()));
        if !load.sending() && client.outstanding() == 0 {
            break;
        }
        if now_ns > run_ns + 20_000_000_000 {
            bar.abandon();
            return Err(Failure(format!(
                "{} commands still unanswered 20 s after the load stopped",
                client.outstanding()
            )));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    bar.finish_with_message(format!("{} committed", load.answered()));
    let last_position = load.last_position();

    // Every member applies everything, then stops cleanly; each folder is replayed offline.
    members.settle(last_position, Duration::from_secs(30))?;
    let states = nodes.iter().map(crate::apps::replay_state).collect::<Result<Vec<_>, _>>()?;
    let Failover { failover_ms, first_commit_ms, .. } = failover;
    Ok(Summary { sent: load.sent(), latency: load.report(), failover_ms, first_commit_ms, applied_before, states })
}

/// The demo's failover: the leader killed half way, restarted once another leads, and the
/// times to the new leader and to the client's first reply from it.
#[derive(Default)]
struct Failover {
    /// The member killed, and when.
    killed: Option<(usize, Instant)>,
    failover_ms: Option<f64>,
    first_commit_ms: Option<f64>,
}

impl Failover {
    /// One step of the run: `half_way` once half the load is sent, `replied` if a reply came
    /// since the last step; `say` prints a progress line.
    fn step(
        &mut self,
        members: &mut Members,
        half_way: bool,
        replied: bool,
        say: &mut dyn FnMut(String),
    ) -> Result<(), Failure> {
        // The first reply once another member leads: the next leader's first commit.
        if let (Some((_, at)), Some(_), None) = (self.killed, self.failover_ms, self.first_commit_ms)
            && replied
        {
            let ms = at.elapsed().as_secs_f64() * 1e3;
            self.first_commit_ms = Some(ms);
            say(format!("  the client's first reply from the new leader came {ms:.0} ms after the kill"));
        }
        if self.killed.is_none() && half_way {
            if let Some(leader) = members.leader() {
                members.kill(leader);
                say(format!("  killed the leader, member {} (SIGKILL), with commands in flight", leader + 1));
                self.killed = Some((leader, Instant::now()));
            }
        } else if let Some((old, at)) = self.killed
            && self.failover_ms.is_none()
            && let Some(new) = members.leader()
            && new != old
        {
            let ms = at.elapsed().as_secs_f64() * 1e3;
            self.failover_ms = Some(ms);
            say(format!("  member {} leads after {ms:.0} ms; the client followed it", new + 1));
            members.spawn(old)?;
            say(format!("  member {} restarted: it recovers its log and catches up", old + 1));
        }
        Ok(())
    }
}

/// Prints the summary the way `ordo demo` shows it.
pub fn print(summary: &Summary) {
    let l = &summary.latency;
    let counted = summary.states.iter().all(|s| s.commands_applied.is_some());
    let applied = match (summary.applied_once(), counted) {
        (true, true) => "each applied exactly once on every member",
        (true, false) => "the app's invariants hold on every member",
        (false, _) => "BUT THE MEMBERS' STATES ARE WRONG",
    };
    println!("  {} commands sent, {} committed and answered, {applied}", summary.sent, l.completed);
    println!(
        "  latency from intended send to reply: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
        l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
    );
    if let Some(ms) = summary.failover_ms {
        let commit = summary.first_commit_ms.map_or(String::new(), |c| format!(", its first commit seen at {c:.0} ms"));
        println!("  failover: a new leader {ms:.0} ms after the old one was killed{commit}");
    }
    for (i, state) in summary.states.iter().enumerate() {
        println!(
            "  member {}: replayed from its own folder to {}: {}, state hash {:#018x}",
            i + 1,
            state.position,
            state.summary,
            state.state_hash
        );
    }
    if summary.states_equal() {
        println!("  state hashes equal on all members");
    } else {
        println!("  STATE HASHES DIFFER");
    }
}
