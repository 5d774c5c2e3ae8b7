//! `ordo bench`: open-loop latency at a fixed rate and command size, measured from each
//! command's intended send time to its committed reply (coordinated omission corrected),
//! in an HdrHistogram, warm-up excluded. The subject is a running cluster (`--dir`, or
//! `--cluster … --key-file`), a cluster this command starts and stops (`--members 3`), or
//! the floor: a plain UDP ping-pong through the same harness (`--baseline udp`). With
//! several `--rates` it sweeps them upward and, given `--p99-max-us`, reports the highest
//! rate whose p99 stayed under it (Aeron's way of stating a sustainable rate).

use crate::Failure;
use crate::children::Members;
use crate::target::{self, Target, TargetArgs};
use hdrhistogram::Histogram;
use ordo_bench::pingpong::{self, Load, PingPong, Wait};
use ordo_core::idle::Idler;
use ordo_core::{Durability, IdleStrategy, NodeConfig, Threading, TransportBackend};
use ordo_load::hgrm;
use ordo_load::latency::LatencyReport;
use ordo_load::open_loop::{OpenLoop, Requests};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What is measured.
pub enum Subject {
    /// The floor: a UDP ping-pong on loopback through the same open-loop harness.
    Udp { backend: TransportBackend },
    /// A running cluster.
    Cluster(Target),
    /// A local cluster started for the run (child processes) and stopped after it.
    Spawned(Spawned),
    /// A peer's 3-member cluster started on loopback for the run (`ordo_bench::peers`).
    Peer(Peer),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// etcd puts (fsync'd before acknowledged).
    Etcd,
    /// NATS JetStream publishes to an R3 file stream (acknowledged when replicated).
    Nats,
}

/// How `--members N` starts its cluster.
#[derive(Clone, Debug)]
pub struct Spawned {
    pub members: u16,
    pub app: String,
    pub durability: Durability,
    pub idle: IdleStrategy,
    pub threading: Threading,
    pub backend: TransportBackend,
}

pub struct Bench {
    pub subject: Subject,
    /// One rate, or several for a sweep (run in increasing order).
    pub rates: Vec<u64>,
    /// In a sweep: stop at the first rate whose p99 exceeds this, and report the last one
    /// under it.
    pub p99_max_us: Option<f64>,
    pub size_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// How the load generator waits between sends.
    pub idle: IdleStrategy,
    pub json: bool,
    pub out: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// What to call the runs in the output and the chart (default: what was measured).
    pub label: Option<String>,
}

/// One measured rate.
pub struct Run {
    pub label: String,
    pub rate: u64,
    pub report: LatencyReport,
    /// Commands answered per second over the measured span.
    pub throughput: f64,
    pub histogram: Histogram<u64>,
}

/// How long replies may trail the end of sending before the run stops waiting for them.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs the benchmark, printing each rate's figures as it finishes; writes `--out` and
/// `--plot` at the end.
pub fn run(bench: &Bench, stop: &AtomicBool) -> Result<Vec<Run>, Failure> {
    if bench.rates.is_empty() || bench.rates.contains(&0) {
        return Err(Failure("--rate and --rates take rates above 0 commands a second".into()));
    }
    let mut rates = bench.rates.clone();
    rates.sort_unstable();
    let mut runs = Vec::new();
    match &bench.subject {
        Subject::Udp { backend } => {
            for &rate in &rates {
                let run = udp_run(bench, *backend, rate)?;
                if report(bench, run, &mut runs) {
                    break;
                }
            }
        }
        Subject::Cluster(target) => cluster_runs(bench, target, &rates, stop, &mut runs)?,
        Subject::Peer(peer) => peer_runs(bench, *peer, &rates, stop, &mut runs)?,
        Subject::Spawned(spawned) => {
            let dir = tempfile::Builder::new().prefix("ordo-bench-").tempdir()?;
            let configs = init_cluster(dir.path(), spawned)?;
            let data_dirs: Vec<PathBuf> = configs.iter().map(|c| c.1.data_dir.clone()).collect();
            let paths: Vec<PathBuf> = configs.into_iter().map(|c| c.0).collect();
            let mut members = Members::start(&paths, &data_dirs, dir.path())?;
            members.wait_for_leader(Duration::from_secs(20))?;
            let target = target::resolve(&TargetArgs { dir: Some(dir.path().into()), ..Default::default() })?;
            let result = cluster_runs(bench, &target, &rates, stop, &mut runs);
            let stopped = members.stop_all(Duration::from_secs(10));
            result?;
            if !stopped {
                return Err(Failure("a member did not stop cleanly on SIGTERM after the run".into()));
            }
        }
    }
    if let (Some(limit), true) = (bench.p99_max_us, rates.len() > 1) {
        let best = runs.iter().filter(|r| under(r, limit)).map(|r| r.rate).max();
        if bench.json {
            let label = runs.first().map(|r| r.label.clone());
            println!("{}", serde_json::json!({"bench": label, "max_rate": best, "p99_max_us": limit}));
        } else {
            match best {
                Some(rate) => println!("highest rate with p99 under {limit} µs and every command answered: {rate}/s"),
                None => println!("no rate kept p99 under {limit} µs with every command answered"),
            }
        }
    }
    if let Some(out) = &bench.out {
        for run in &runs {
            let path = if runs.len() == 1 { out.clone() } else { with_rate(out, run.rate) };
            let mut file =
                std::fs::File::create(&path).map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
            hgrm::write(&run.histogram, &mut file)
                .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    if let Some(plot) = &bench.plot {
        let lines: Vec<(String, Vec<hgrm::Point>)> = runs
            .iter()
            .map(|run| {
                let mut text = Vec::new();
                hgrm::write(&run.histogram, &mut text).expect("writing to memory");
                let points = hgrm::read(&String::from_utf8_lossy(&text)).unwrap_or_default();
                (format!("{} {}/s", run.label, run.rate), points)
            })
            .collect();
        ordo_bench::plot::draw(plot, &title(bench.size_bytes), &lines).map_err(Failure)?;
    }
    Ok(runs)
}

fn title(size_bytes: usize) -> String {
    format!("ordo bench: latency by percentile, {size_bytes} B commands, open loop")
}

/// Draws saved `.hgrm` files on one chart (`ordo bench --plot FILE.svg --inputs A,B`).
pub fn plot_files(plot: &Path, inputs: &[PathBuf], size_bytes: usize) -> Result<(), Failure> {
    let mut lines = Vec::new();
    for input in inputs {
        let text =
            std::fs::read_to_string(input).map_err(|e| Failure(format!("cannot read {}: {e}", input.display())))?;
        let points = hgrm::read(&text).map_err(|e| Failure(format!("{}: {e}", input.display())))?;
        let label = input.file_stem().map_or_else(|| input.display().to_string(), |s| s.to_string_lossy().into());
        lines.push((label, points));
    }
    ordo_bench::plot::draw(plot, &title(size_bytes), &lines).map_err(Failure)
}

fn with_rate(path: &Path, rate: u64) -> PathBuf {
    let stem = path.file_stem().map_or("bench".into(), |s| s.to_string_lossy().into_owned());
    let extension = path.extension().map_or("hgrm".into(), |e| e.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-{rate}.{extension}"))
}

fn under(run: &Run, p99_max_us: f64) -> bool {
    run.report.p99_us <= p99_max_us && run.report.completed == run.report.sent
}

/// Prints a run and keeps it; returns whether a sweep should stop (p99 over the limit).
fn report(bench: &Bench, mut run: Run, runs: &mut Vec<Run>) -> bool {
    if let Some(label) = &bench.label {
        run.label.clone_from(label);
    }
    let r = &run.report;
    if bench.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": run.label, "rate": run.rate, "size": bench.size_bytes, "sent": r.sent,
                "completed": r.completed, "p50_us": r.p50_us, "p90_us": r.p90_us, "p99_us": r.p99_us,
                "p999_us": r.p999_us, "p9999_us": r.p9999_us, "max_us": r.max_us,
                "throughput": (run.throughput * 10.0).round() / 10.0,
            })
        );
    } else {
        println!(
            "{}, {} B at {}/s: p50 {:.1} µs, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, p99.99 {:.1}, max {:.1}; {}/{} answered, {:.0}/s",
            run.label,
            bench.size_bytes,
            run.rate,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.p999_us,
            r.p9999_us,
            r.max_us,
            r.completed,
            r.sent,
            run.throughput
        );
    }
    let over = bench.p99_max_us.is_some_and(|limit| !under(&run, limit));
    runs.push(run);
    over
}

fn udp_run(bench: &Bench, backend: TransportBackend, rate: u64) -> Result<Run, Failure> {
    let (histogram, sent) = pingpong::run_recorded(PingPong {
        backend,
        wait: if bench.idle == IdleStrategy::Block { Wait::Blocking } else { Wait::Idle(bench.idle) },
        load: Load::OpenLoop { rate_per_s: rate },
        size_bytes: bench.size_bytes,
        warmup: bench.warmup,
        duration: bench.duration,
    })
    .map_err(|e| Failure(format!("the UDP ping-pong failed: {e}")))?;
    let report = LatencyReport::from_histogram(&histogram, sent);
    let label = format!("udp ping-pong ({})", backend_name(backend));
    Ok(Run { label, rate, throughput: report.completed as f64 / bench.duration.as_secs_f64(), report, histogram })
}

fn backend_name(backend: TransportBackend) -> &'static str {
    match backend {
        TransportBackend::Std => "std",
        TransportBackend::IoUring => "io_uring",
    }
}

fn cluster_runs(
    bench: &Bench,
    target: &Target,
    rates: &[u64],
    stop: &AtomicBool,
    runs: &mut Vec<Run>,
) -> Result<(), Failure> {
    let app = target.app.clone().unwrap_or_else(|| "echo".into());
    crate::apps::check(&app)?;
    let durability = match &target.dir {
        Some(dir) => Some(crate::target::cluster_config(dir)?.log.durability.name()),
        None => None,
    };
    let label = match durability {
        Some(durability) => format!("ordo {app} {durability}"),
        None => format!("ordo {app}"),
    };
    for &rate in rates {
        let run = cluster_run(bench, target, &app, &label, rate, stop)?;
        if report(bench, run, runs) {
            break;
        }
    }
    Ok(())
}

fn cluster_run(
    bench: &Bench,
    target: &Target,
    app: &str,
    label: &str,
    rate: u64,
    stop: &AtomicBool,
) -> Result<Run, Failure> {
    let mut client = target.client()?;
    let app = crate::apps::app(app)?;
    let mut fill = |k: u64, command: &mut Vec<u8>| app.workload_into(k, bench.size_bytes, command);
    let run = open_loop_run(bench, &mut client, label, rate, &mut fill, stop)?;
    if run.report.completed == 0 {
        return Err(Failure(format!(
            "no command was answered by the cluster at {}; is it running, and is the key file its own?",
            target.addresses().iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")
        )));
    }
    Ok(run)
}

fn peer_runs(bench: &Bench, peer: Peer, rates: &[u64], stop: &AtomicBool, runs: &mut Vec<Run>) -> Result<(), Failure> {
    use ordo_bench::peers::{etcd, nats};
    let dir = tempfile::Builder::new().prefix("ordo-bench-peer-").tempdir()?;
    let base_port = crate::init::free_base_port()?;
    let failed = |what: &str, e: std::io::Error| Failure(format!("{what}: {e} (logs in {})", dir.path().display()));
    let mut fill = |_: u64, value: &mut Vec<u8>| {
        value.clear();
        value.resize(bench.size_bytes, b'x');
    };
    match peer {
        Peer::Etcd => {
            let cluster = etcd::EtcdCluster::start(dir.path().into(), base_port)
                .map_err(|e| failed("the etcd cluster did not start", e))?;
            for &rate in rates {
                let leader = cluster.leader().map_err(|e| failed("etcd", e))?;
                let mut puts = etcd::EtcdPuts::connect(leader, ETCD_CONNECTIONS).map_err(|e| failed("etcd", e))?;
                let run = open_loop_run(bench, &mut puts, "etcd put", rate, &mut fill, stop)?;
                if report(bench, run, runs) {
                    break;
                }
            }
        }
        Peer::Nats => {
            let cluster = nats::NatsCluster::start(dir.path().into(), base_port)
                .map_err(|e| failed("the NATS cluster did not start", e))?;
            for &rate in rates {
                let leader = cluster.stream_leader().map_err(|e| failed("NATS", e))?;
                let mut publishes = nats::NatsPublishes::connect(leader).map_err(|e| failed("NATS", e))?;
                let run = open_loop_run(bench, &mut publishes, "nats jetstream R3", rate, &mut fill, stop)?;
                if report(bench, run, runs) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Connections etcd's puts are spread over: it answers one request a connection at a time.
const ETCD_CONNECTIONS: usize = 64;

/// One rate of open-loop load on `service`, until every request is answered or
/// [`DRAIN_LIMIT`] after the last was sent.
fn open_loop_run(
    bench: &Bench,
    service: &mut dyn Requests,
    label: &str,
    rate: u64,
    fill: &mut dyn FnMut(u64, &mut Vec<u8>),
    stop: &AtomicBool,
) -> Result<Run, Failure> {
    ordo_service::machinery::runtime::prepare_thread(bench.idle);
    let mut load = OpenLoop::new(rate, bench.warmup, bench.duration);
    let mut idler = Idler::new(bench.idle);
    let drain_end_ns = load.end_ns() + DRAIN_LIMIT.as_nanos() as u64;
    loop {
        if stop.load(Ordering::Acquire) {
            return Err(Failure("interrupted".into()));
        }
        let work = load.step(service, fill)?;
        if !load.sending() && (service.outstanding() == 0 || load.elapsed_ns() > drain_end_ns) {
            break;
        }
        let until = if load.sending() { load.until_next_due() } else { Duration::from_millis(1) };
        if work > 0 {
            idler.reset();
        } else if bench.idle != IdleStrategy::Block {
            idler.idle_once(Some(until)); // never past the next send
        } else if idler.idle_or_block(0) && !service.block(until.min(ordo_core::idle::BLOCK_MAX))? {
            idler.idle_once(Some(until));
        }
    }
    let report = load.report();
    let throughput = report.completed as f64 / bench.duration.as_secs_f64();
    Ok(Run { label: label.to_string(), rate, report, throughput, histogram: load.histogram().clone() })
}

/// `ordo init` in `dir`, then each member's runtime settings as asked.
fn init_cluster(dir: &Path, spawned: &Spawned) -> Result<Vec<(PathBuf, NodeConfig)>, Failure> {
    let settings = crate::init::Init {
        dir: dir.to_path_buf(),
        members: spawned.members,
        base_port: crate::init::free_base_port()?,
        app: spawned.app.clone(),
        durability: spawned.durability,
        hosts: Vec::new(),
    };
    let mut configs = Vec::new();
    for path in crate::init::init(&settings)? {
        let mut node = NodeConfig::load(&path)?;
        node.runtime.idle = spawned.idle;
        node.runtime.threading = spawned.threading;
        node.transport.backend = spawned.backend;
        std::fs::write(&path, node.to_toml()).map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
        configs.push((path.clone(), NodeConfig::load(&path)?));
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_writes_one_distribution_a_rate_and_a_chart() {
        let dir = tempfile::tempdir().unwrap();
        let bench = Bench {
            subject: Subject::Udp { backend: TransportBackend::Std },
            rates: vec![2000, 1000],
            p99_max_us: Some(1.0e6),
            size_bytes: 64,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
            idle: IdleStrategy::Backoff,
            json: true,
            out: Some(dir.path().join("udp.hgrm")),
            plot: Some(dir.path().join("udp.svg")),
            label: None,
        };
        let runs = run(&bench, &AtomicBool::new(false)).unwrap();
        assert_eq!(runs.iter().map(|r| r.rate).collect::<Vec<_>>(), [1000, 2000], "in increasing order");
        for run in &runs {
            assert!(run.report.sent > 0 && run.report.completed == run.report.sent, "loopback loses nothing");
            let text = std::fs::read_to_string(dir.path().join(format!("udp-{}.hgrm", run.rate))).unwrap();
            assert_eq!(hgrm::read(&text).unwrap().last().unwrap().percentile, 100.0);
        }
        let svg = std::fs::read_to_string(dir.path().join("udp.svg")).unwrap();
        assert!(svg.contains("udp ping-pong (std) 1000/s") && svg.contains("udp ping-pong (std) 2000/s"));
        assert!(plot_files(&dir.path().join("again.svg"), &[dir.path().join("udp-1000.hgrm")], 64).is_ok());
        let missing = plot_files(&dir.path().join("x.svg"), &[dir.path().join("nope.hgrm")], 64).unwrap_err();
        assert!(missing.0.contains("nope.hgrm"), "{}", missing.0);
    }
}
