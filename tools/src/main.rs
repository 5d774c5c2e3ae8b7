//! `ordo`: the command-line program. See `shared/CLI.md` for the contract.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use ordo_core::{Durability, IdleStrategy, NodeConfig, Threading, TransportBackend};
use ordo_tools::target::TargetArgs;
use ordo_tools::{Failure, bench, demo, init, inspect};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Parser)]
#[command(name = "ordo", version, about = "A command-sourced cluster service in the style of Aeron Cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Fsync,
    Replicated,
}

impl From<DurabilityArg> for Durability {
    fn from(value: DurabilityArg) -> Self {
        match value {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::Replicated => Durability::Replicated,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Writes DIR/node-1 … node-N, each with ordo.toml and the cluster key.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        members: u16,
        #[arg(long, default_value_t = 9000)]
        base_port: u16,
        #[arg(long, default_value = "ledger")]
        app: String,
        #[arg(long, value_enum, default_value = "fsync")]
        durability: DurabilityArg,
        /// Member I's IP address is the I-th (e.g. 10.0.0.1,10.0.0.2,10.0.0.3); then copy
        /// node-I to host I. Without it every member is on loopback.
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<std::net::IpAddr>,
    },
    /// Runs one member in the foreground; SIGINT/SIGTERM stop it cleanly.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Sends one app command (or one a line from stdin, pipelined) and prints each reply as
    /// a JSON line once it is committed and applied.
    Client {
        #[command(flatten)]
        target: TargetArgs,
        /// The cluster's app, with --cluster (with --dir it is read from the members' config).
        #[arg(long, default_value = "ledger")]
        app: String,
        /// Read one command a line from stdin.
        #[arg(long)]
        stdin: bool,
        /// The app command, e.g. `transfer 7 alice bob 100`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Each member of a cluster folder: address, role, term, leader, positions, snapshot.
    Describe {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Runs every member of a cluster folder (made by `init` if empty) as child processes
    /// until Ctrl-C.
    Cluster {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        members: u16,
        #[arg(long, default_value = "ledger")]
        app: String,
        #[arg(long, default_value_t = 9000)]
        base_port: u16,
    },
    /// A member's snapshots: list them, inspect one, verify one (checksums, and its state
    /// hash against a replay of the log to its position).
    Snapshot {
        /// take (a running cluster), or list, inspect, verify or restore (a member's folder).
        action: String,
        #[arg(long)]
        dir: PathBuf,
        /// The snapshot file to restore from.
        #[arg(long)]
        from: Option<PathBuf>,
        /// The snapshot's position (default: the newest).
        position: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The event stream of a member's folder from a position, following it live.
    Events {
        /// tail
        action: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Live counters of a running member, read from its counters file.
    Stat {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Print them again every second (with each running total's rate) until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// A member's log: verify it, or dump its entries.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Rebuilds a member's state offline from its newest snapshot and its log.
    Replay {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        no_snapshot: bool,
        #[arg(long)]
        json: bool,
    },
    /// The deterministic simulator: the real consensus and service code, seeded faults.
    Sim {
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// Run this one seed.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 0)]
        first: u64,
        #[arg(long, default_value_t = 3)]
        members: u16,
        #[arg(long, default_value = "ledger")]
        app: String,
        /// `all`, `none`, or a comma-separated list of fault classes: crash, outage,
        /// disk-loss, partition, network, delay, clock, pause, stall, corruption, hostile,
        /// restore.
        #[arg(long, default_value = "all")]
        faults: String,
        #[arg(long)]
        json: bool,
    },
    /// Open-loop latency and throughput: a running cluster, one started for the run
    /// (--members 3), or the UDP ping-pong floor (--baseline udp).
    Bench(Box<BenchArgs>),
    /// The Jepsen-style bank test: transfers under SIGKILLs (and, as root, partitions), then
    /// every member's folder checked: nothing acknowledged lost, nothing applied twice, the
    /// same state everywhere, replies linearizable.
    Bank {
        /// Seconds of load (or --minutes).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long)]
        minutes: Option<u64>,
        /// Transfers a second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        #[arg(long, default_value_t = 8)]
        accounts: u32,
        /// Seconds between faults.
        #[arg(long, default_value_t = 2.0)]
        fault_interval: f64,
        /// Also partition members in network namespaces (needs root).
        #[arg(long)]
        partitions: bool,
        /// Members lose 5%, duplicate 2% and reorder 5% of their datagrams (no root needed).
        #[arg(long)]
        lossy: bool,
        /// Keep the cluster's folders here (default: a temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// A local 3-member cluster under load, its leader killed half way, then a summary.
    Demo {
        /// The cluster folder (default: a temporary one, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value = "ledger")]
        app: String,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Commands per second the client sends.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
    },
}

/// `ordo bench`'s flags.
#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Start a local cluster of this many members for the run (instead of --dir).
    #[arg(long, conflicts_with_all = ["dir", "cluster"])]
    members: Option<u16>,
    /// `udp`: measure a plain UDP ping-pong through the same harness, the floor.
    #[arg(long, conflicts_with_all = ["dir", "cluster", "members"])]
    baseline: Option<String>,
    /// `etcd` or `nats`: start that peer's 3-member cluster on loopback and measure it through
    /// the same harness (needs Debian's etcd-server or nats-server).
    #[arg(long, conflicts_with_all = ["dir", "cluster", "members", "baseline"])]
    peer: Option<String>,
    /// The app of a cluster started with --members, or of one named by --cluster.
    #[arg(long, default_value = "echo")]
    app: String,
    /// Commands a second, sent at their due times whatever is unanswered.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// A sweep: these rates in increasing order (instead of --rate).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<u64>,
    /// In a sweep, stop at the first rate whose p99 is over this and report the last under it.
    #[arg(long)]
    p99_max_us: Option<f64>,
    /// Command size in bytes (echo and the baseline; the other apps' commands are their own).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Durability of a cluster started with --members.
    #[arg(long, value_enum, default_value = "fsync")]
    durability: DurabilityArg,
    /// Idle strategy of the load generator (and of members started with --members):
    /// busy-spin, yield, backoff or sleep.
    #[arg(long, default_value = "backoff")]
    idle: String,
    /// Threading of members started with --members: shared or dedicated.
    #[arg(long, default_value = "shared")]
    threading: String,
    /// UDP backend of members started with --members, and of the baseline: std or io_uring.
    #[arg(long, default_value = "std")]
    backend: String,
    #[arg(long)]
    json: bool,
    /// Write the latency distribution (HdrHistogram's .hgrm text; one file a rate in a sweep).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw latency by percentile as SVG: this run's rates, or the --inputs files.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// What to call this run in the JSON ("bench") and on the chart.
    #[arg(long)]
    label: Option<String>,
    /// Saved .hgrm files to draw on one --plot chart, without running anything.
    #[arg(long, value_delimiter = ',', requires = "plot")]
    inputs: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum LogCommand {
    /// Checks every checksum and the chain; exit 1 naming the first bad entry.
    Verify {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// One entry a line, the command decoded when the app is known.
    Dump {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

/// SIGINT and SIGTERM set the returned flag.
fn stop_flag() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Failure(format!("cannot handle signal {signal}: {e}")))?;
    }
    Ok(stop)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init { dir, members, base_port, app, durability, hosts } => {
            if ordo_tools::apps::check(&app).is_err() {
                eprintln!("note: app {app:?} is not built into ordo: run its members with your own program");
            }
            let settings = init::Init { dir, members, base_port, app, durability: durability.into(), hosts };
            for path in init::init(&settings)? {
                println!("{}", path.display());
            }
        }
        Command::Node { config } => {
            let node = NodeConfig::load(&config)?;
            let stop = stop_flag()?;
            ordo_tools::apps::run_node(&node, &stop)?;
            tracing::info!("member {} stopped cleanly", node.member_id.0);
        }
        Command::Client { target, app, stdin, command } => {
            if !stdin && command.is_empty() {
                return Err(Failure("give an app command, or --stdin to read one a line".into()));
            }
            let target = ordo_tools::target::resolve(&target)?;
            let app = target.app.clone().unwrap_or(app);
            if !ordo_tools::client::run(&target, &app, &command, stdin)? {
                return Err(Failure("a command was refused or failed: see its line's error".into()));
            }
        }
        Command::Stat { dir, json, watch } => {
            let stop = if watch { Some(stop_flag()?) } else { None };
            inspect::stat(&dir, json, stop.as_deref())?
        }
        Command::Describe { target, json } => inspect::describe(&ordo_tools::target::resolve(&target)?, json)?,
        Command::Snapshot { action, dir, from, position, json } => snapshot(&action, &dir, from, position, json)?,
        Command::Events { action, dir, from, json } => {
            if action != "tail" {
                return Err(Failure(format!("events takes tail, not {action:?}")));
            }
            let stop = stop_flag()?;
            inspect::events_tail(&dir, from, json, &stop)?;
        }
        Command::Cluster { dir, members, app, base_port } => cluster(&dir, members, app, base_port)?,
        Command::Log { command: LogCommand::Verify { dir, json } } => inspect::log_verify(&dir, json)?,
        Command::Log { command: LogCommand::Dump { dir, from, to, json } } => inspect::log_dump(&dir, from, to, json)?,
        Command::Replay { dir, to, no_snapshot, json } => inspect::replay(&dir, to, no_snapshot, json)?,
        Command::Sim { seeds, seed, first, members, app, faults, json } => {
            let faults = ordo_service::machinery::sim::Faults::parse(&faults)
                .map_err(|error| Failure(format!("--faults: {error}")))?;
            sim(inspect::Sim { seeds, first: seed.unwrap_or(first), members, app, faults, json }, seed.is_some())?
        }
        Command::Bench(args) => bench_command(*args)?,
        Command::Bank { seconds, minutes, rate, accounts, fault_interval, partitions, lossy, dir, seed, json } => {
            let seconds = minutes.map_or(seconds, |m| m * 60);
            let settings = ordo_tools::bank::Bank {
                seconds,
                accounts,
                rate_per_s: rate,
                fault_interval_s: fault_interval,
                partitions,
                lossy,
                dir,
                seed,
            };
            bank(settings, json)?
        }
        Command::Demo { dir, app, seconds, rate } => {
            let stop = stop_flag()?;
            let settings = demo::Demo { dir, app, seconds: seconds.max(2), rate_per_s: rate, command_bytes: 64 };
            let summary = demo::run(&settings, &stop)?;
            demo::print(&summary);
            if !summary.states_equal() || !summary.applied_once() {
                return Err(Failure("the members' states differ, or a command was not applied once: a bug".into()));
            }
        }
    }
    Ok(())
}

/// `ordo snapshot take|restore|list|inspect|verify`.
fn snapshot(action: &str, dir: &Path, from: Option<PathBuf>, position: Option<u64>, json: bool) -> Result<(), Failure> {
    match action {
        "take" => ordo_tools::client::snapshot_take(dir, json),
        "restore" => {
            let from = from.ok_or_else(|| Failure("snapshot restore needs --from FILE".into()))?;
            inspect::snapshot_restore(&from, dir)
        }
        "list" | "inspect" | "verify" => match inspect::snapshot(dir, action, position, json)? {
            true => Ok(()),
            false => Err(Failure("a snapshot is corrupt or differs from a replay: see above".into())),
        },
        other => Err(Failure(format!("snapshot takes list, inspect, verify or restore, not {other:?}"))),
    }
}

/// `ordo cluster`: `init` if the folder is empty, every member a child process, until
/// SIGINT or SIGTERM stops them all.
fn cluster(dir: &Path, members: u16, app: String, base_port: u16) -> Result<(), Failure> {
    let stop = stop_flag()?;
    let configs: Vec<PathBuf> = if init::config_path(dir, 1).exists() {
        (1..).map(|id| init::config_path(dir, id)).take_while(|p| p.exists()).collect()
    } else {
        let settings = init::Init {
            dir: dir.to_path_buf(),
            members,
            base_port,
            app,
            durability: Durability::Fsync,
            hosts: Vec::new(),
        };
        init::init(&settings)?
    };
    let nodes: Vec<NodeConfig> = configs.iter().map(|p| NodeConfig::load(p)).collect::<Result<_, _>>()?;
    let data_dirs: Vec<PathBuf> = nodes.iter().map(|n| n.data_dir.clone()).collect();
    let mut children = ordo_tools::children::Members::start(&configs, &data_dirs, dir)?;
    for node in &nodes {
        let address = node.members.iter().find(|m| m.id == node.member_id).map(|m| m.address);
        println!("member {} listens on {}", node.member_id.0, address.map_or("?".into(), |a| a.to_string()));
    }
    println!("logs in {}; Ctrl-C stops them all", dir.display());
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        if let Some((index, status)) = children.exited() {
            children.stop_all(std::time::Duration::from_secs(10));
            return Err(children.died(index, status));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !children.stop_all(std::time::Duration::from_secs(10)) {
        return Err(Failure("a member did not stop cleanly on SIGTERM".into()));
    }
    Ok(())
}

/// `ordo sim`.
fn sim(mut settings: inspect::Sim, one_seed: bool) -> Result<(), Failure> {
    if one_seed {
        settings.seeds = 1;
    }
    if !inspect::sim(&settings)? {
        return Err(Failure("the simulation failed: see the seeds and the command to reproduce each above".into()));
    }
    Ok(())
}

/// `ordo bank`, the Jepsen-style bank test.
fn bank(settings: ordo_tools::bank::Bank, json: bool) -> Result<(), Failure> {
    if settings.accounts < 2 {
        return Err(Failure("--accounts must be at least 2: a transfer needs two".into()));
    }
    let stop = stop_flag()?;
    let report = ordo_tools::bank::run(&settings, &stop)?;
    if json {
        println!("{}", serde_json::to_string(&report).map_err(|e| Failure(e.to_string()))?);
    } else {
        ordo_tools::bank::print(&report);
    }
    if !report.passed() {
        return Err(Failure("the bank test failed: see the checks above and the errors logged".into()));
    }
    Ok(())
}

/// The runtime flags of `ordo bench`: `--idle`, `--backend`, `--threading`.
fn runtime_flags(
    idle: &str,
    backend: &str,
    threading: &str,
) -> Result<(IdleStrategy, TransportBackend, Threading), Failure> {
    let idle = IdleStrategy::parse(idle)
        .ok_or_else(|| Failure(format!("--idle is busy-spin, yield, backoff or sleep, not {idle:?}")))?;
    let backend = match backend {
        "std" => TransportBackend::Std,
        "io_uring" => TransportBackend::IoUring,
        other => return Err(Failure(format!("--backend is std or io_uring, not {other:?}"))),
    };
    let threading = match threading {
        "shared" => Threading::Shared,
        "dedicated" => Threading::Dedicated,
        other => return Err(Failure(format!("--threading is shared or dedicated, not {other:?}"))),
    };
    Ok((idle, backend, threading))
}

/// `ordo bench`.
fn bench_command(args: BenchArgs) -> Result<(), Failure> {
    let BenchArgs {
        target,
        members,
        baseline,
        peer,
        app,
        rate,
        rates,
        p99_max_us,
        size,
        duration,
        warmup,
        durability,
        idle,
        threading,
        backend,
        json,
        out,
        plot,
        label,
        inputs,
    } = args;
    if let Some(plot) = plot.as_ref().filter(|_| !inputs.is_empty()) {
        return bench::plot_files(plot, &inputs, size);
    }
    let (idle, backend, threading) = runtime_flags(&idle, &backend, &threading)?;
    let seconds = |name: &str, value: f64| {
        (value.is_finite() && value >= 0.0)
            .then(|| std::time::Duration::from_secs_f64(value))
            .ok_or_else(|| Failure(format!("--{name} takes seconds, not {value}")))
    };
    let subject = match (baseline.as_deref(), members) {
        _ if peer.is_some() => match peer.as_deref() {
            Some("etcd") => bench::Subject::Peer(bench::Peer::Etcd),
            Some("nats") => bench::Subject::Peer(bench::Peer::Nats),
            other => return Err(Failure(format!("--peer takes etcd or nats, not {other:?}"))),
        },
        (Some("udp"), _) => bench::Subject::Udp { backend },
        (Some(other), _) => return Err(Failure(format!("--baseline takes udp, not {other:?}"))),
        (None, Some(members)) => bench::Subject::Spawned(bench::Spawned {
            members,
            app,
            durability: durability.into(),
            idle,
            threading,
            backend,
        }),
        (None, None) => {
            let mut resolved = ordo_tools::target::resolve(&target)?;
            resolved.app.get_or_insert(app);
            bench::Subject::Cluster(resolved)
        }
    };
    let settings = bench::Bench {
        subject,
        rates: if rates.is_empty() { vec![rate] } else { rates },
        p99_max_us,
        size_bytes: size,
        warmup: seconds("warmup", warmup)?,
        duration: seconds("duration", duration)?.max(std::time::Duration::from_millis(100)),
        idle,
        json,
        out,
        plot,
        label,
    };
    let stop = stop_flag()?;
    let runs = bench::run(&settings, &stop)?;
    if runs.iter().any(|r| r.report.completed < r.report.sent) {
        return Err(Failure("some commands were not answered within 10 s of the end: see completed < sent".into()));
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    // The simulator's members log as real ones do, thousands of lines a seed: only
    // warnings, unless ORDO_LOG asks for more.
    let level = if matches!(cli.command, Command::Sim { .. }) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORDO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    if let Err(Failure(message)) = run(cli) {
        eprintln!("ordo: {message}");
        std::process::exit(1);
    }
}
