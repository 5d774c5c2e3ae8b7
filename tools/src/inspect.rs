//! The commands that look at a member's folder without touching the member: `stat` (its
//! live counters), `log verify`, `log dump`, `replay`, and `sim` (the simulator's front end).
//! They map files read-only and take no lock, so they run beside a live member.

use crate::Failure;
use ordo_core::{NodeConfig, Position};
use ordo_log::counters::CountersReader;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The member a `--dir` names: a member folder holding `ordo.toml` (what `init` writes).
pub fn member_config(dir: &Path) -> Result<NodeConfig, Failure> {
    let path = dir.join("ordo.toml");
    if !path.exists() {
        return Err(Failure(format!(
            "{} holds no ordo.toml; pass a member's folder, such as DIR/node-1 of a cluster `ordo init` made",
            dir.display()
        )));
    }
    Ok(NodeConfig::load(&path)?)
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// `ordo stat`: the member's live counters.
pub fn stat(dir: &Path, json: bool, watch: Option<&AtomicBool>) -> Result<(), Failure> {
    let node = member_config(dir)?;
    let path = node.data_dir.join("counters");
    let counters = CountersReader::open(&path)
        .map_err(|e| Failure(format!("{e}; has member {} run since its folder was made?", node.member_id.0)))?;
    let mut previous: Option<(std::time::Instant, Vec<u64>)> = None;
    loop {
        let values: Vec<(&str, u64)> = counters.all();
        let now = std::time::Instant::now();
        if json {
            let mut object = serde_json::json!({"member": node.member_id.0, "pid": counters.pid()});
            for (name, value) in &values {
                object[*name] = (*value).into();
            }
            println!("{object}");
        } else {
            let running = Path::new(&format!("/proc/{}", counters.pid())).exists();
            let state = if running { "running" } else { "not running: the last values it wrote" };
            println!("member {} (pid {}, {state}), {}", node.member_id.0, counters.pid(), path.display());
            for (index, (name, value)) in values.iter().enumerate() {
                // Watching: the change a second beside each running total.
                let rate = previous.as_ref().filter(|_| is_total(name)).map(|(at, before)| {
                    let seconds = now.duration_since(*at).as_secs_f64().max(1e-9);
                    format!("  ({:+.0}/s)", value.saturating_sub(before[index]) as f64 / seconds)
                });
                println!("  {name:<22} {value}{}", rate.unwrap_or_default());
            }
        }
        let Some(stop) = watch else { return Ok(()) };
        previous = Some((now, values.iter().map(|(_, v)| *v).collect()));
        let until = now + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < until {
            if stop.load(std::sync::atomic::Ordering::Acquire) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !json {
            println!();
        }
    }
}

fn is_total(name: &str) -> bool {
    ordo_service::machinery::counters::Counter::ALL.iter().any(|c| c.name() == name && c.is_total())
}

/// `ordo log verify`: every checksum and the chain; exit 1 naming the first bad entry.
pub fn log_verify(dir: &Path, json: bool) -> Result<(), Failure> {
    let node = member_config(dir)?;
    let log_dir = node.data_dir.join("log");
    let verified = ordo_log::verify(&log_dir, &node.log)?;
    let torn = verified.torn_tail.as_ref().map(|t| format!("a torn tail at {} ({})", t.position, t.reason));
    if json {
        println!(
            "{{\"start\": {}, \"end\": {}, \"entries\": {}, \"segments\": {}, \"torn_tail\": {}}}",
            verified.position_start.0,
            verified.position_end.0,
            verified.entries,
            verified.segments,
            torn.as_deref().map_or("null".to_string(), json_string)
        );
    } else {
        println!(
            "{}: intact, {} entries from {} to {} in {} segments{}",
            log_dir.display(),
            verified.entries,
            verified.position_start,
            verified.position_end,
            verified.segments,
            torn.map_or(String::new(), |t| format!("; {t}, which the next open cuts"))
        );
    }
    Ok(())
}

/// `ordo log dump`: one entry a line.
pub fn log_dump(dir: &Path, from: Option<u64>, to: Option<u64>, json: bool) -> Result<(), Failure> {
    let node = member_config(dir)?;
    let reader = ordo_log::LogReader::open(&node.data_dir.join("log"), &node.log)?;
    let from = from.map_or(reader.position_start(), Position);
    let to = to.map_or(Position(u64::MAX), Position);
    // Lines go out through a locked stdout; a reader that stops reading (`| head`) ends the
    // dump quietly.
    let mut out = std::io::stdout().lock();
    for entry in reader.entries(from) {
        let entry = entry?;
        if entry.position() >= to {
            break;
        }
        let header = entry.header;
        let kind = entry.kind();
        let command = (kind == ordo_core::EntryKind::Command)
            .then(|| crate::apps::app(&node.app).ok()?.describe_command(entry.payload))
            .flatten();
        let (position, term, time) = (entry.position().0, header.term().0, header.timestamp().0);
        let (session, correlation) = (header.session().0, header.correlation_id.get());
        let (length, checksum, kind) = (header.length_bytes(), entry.checksum(), kind.name());
        let written = if json {
            let command = command.as_deref().map_or("null".to_string(), json_string);
            writeln!(
                out,
                "{{\"position\": {position}, \"term\": {term}, \"kind\": \"{kind}\", \"time\": {time}, \"session\": {session}, \"correlation\": {correlation}, \"length\": {length}, \"checksum\": {checksum}, \"command\": {command}}}"
            )
        } else {
            let command = command.map_or(String::new(), |c| format!("  {c}"));
            writeln!(
                out,
                "{position:>12} term {term:<3} {kind:<20} time {time} session {session} correlation {correlation} length {length} checksum {checksum:#010x}{command}"
            )
        };
        if written.is_err() {
            return Ok(()); // the reader went away
        }
    }
    Ok(())
}

/// `ordo replay`: the state rebuilt offline from the newest snapshot and the log.
pub fn replay(dir: &Path, to: Option<u64>, no_snapshot: bool, json: bool) -> Result<(), Failure> {
    let node = member_config(dir)?;
    let options = ordo_service::machinery::replay::ReplayOptions { to: to.map(Position), no_snapshot };
    let report = crate::apps::replay_report(&node, &options)?;
    if json {
        println!(
            "{{\"position\": {}, \"entries\": {}, \"seconds\": {:.6}, \"entries_per_sec\": {:.0}, \"state_hash\": \"{:#018x}\"}}",
            report.position.0, report.entries, report.seconds, report.entries_per_sec, report.state_hash
        );
    } else {
        let from = report
            .snapshot
            .as_ref()
            .map_or("the log's start".to_string(), |s| format!("the snapshot at {}", s.position()));
        println!(
            "replayed {} entries from {from} to {} in {:.3} s ({:.0} entries/s): state hash {:#018x}",
            report.entries, report.position, report.seconds, report.entries_per_sec, report.state_hash
        );
    }
    for rejected in &report.rejected {
        eprintln!("ordo: passed over a snapshot: {rejected}");
    }
    Ok(())
}

/// `ordo sim`: seeds of the deterministic simulator with an app and its invariants.
pub struct Sim {
    pub seeds: u64,
    pub first: u64,
    pub members: u16,
    pub app: String,
    pub faults: ordo_service::machinery::sim::Faults,
    pub json: bool,
}

pub fn sim(settings: &Sim) -> Result<bool, Failure> {
    use ordo_service::machinery::sim::{Faults, SimConfig};
    let app = crate::apps::app(&settings.app)?;
    let faults = settings.faults;
    let started = std::time::Instant::now();
    let (mut failures, mut ticks, mut commits) = (0u64, 0u64, 0u64);
    for seed in settings.first..settings.first + settings.seeds {
        let config = SimConfig { members: settings.members, faults, ..SimConfig::new(seed) };
        let result = app.simulate(config);
        match result {
            Ok(stats) => {
                ticks += stats.ticks;
                commits += stats.acked;
            }
            Err(mut failure) => {
                failures += 1;
                let mut reproduce = format!("ordo sim --seed {seed} --app {}", settings.app);
                if settings.members != 3 {
                    reproduce += &format!(" --members {}", settings.members);
                }
                if faults != Faults::ALL {
                    reproduce += &format!(" --faults {faults}");
                }
                failure.reproduce = reproduce;
                eprintln!("{failure}\n");
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if settings.json {
        println!(
            "{{\"seeds\": {}, \"failures\": {failures}, \"ticks\": {ticks}, \"commits\": {commits}, \"seconds\": {seconds:.3}}}",
            settings.seeds
        );
    } else {
        println!(
            "{} seeds from {} ({}): {failures} failed; {ticks} ticks, {commits} commands acknowledged, {seconds:.1} s",
            settings.seeds, settings.first, settings.app
        );
    }
    Ok(failures == 0)
}

/// A member folder's data folder, for messages.
pub fn data_dir(dir: &Path) -> Result<PathBuf, Failure> {
    Ok(member_config(dir)?.data_dir)
}

/// `ordo describe`: each member of a cluster, from its counters file (`--dir`: also says
/// which are stopped) or from its answer to a status request (`--cluster`).
pub fn describe(target: &crate::target::Target, json: bool) -> Result<(), Failure> {
    const FIELDS: [&str; 6] =
        ["term", "leader", "append_position", "commit_position", "applied_position", "snapshot_position"];
    let role_name = |role: Option<u64>| match role {
        Some(0) => "follower",
        Some(1) => "candidate",
        Some(2) => "leader",
        _ => "unknown",
    };
    // (id, address, role, the FIELDS' values)
    let mut rows: Vec<(u16, std::net::SocketAddr, &str, [Option<u64>; 6])> = Vec::new();
    if let Some(dir) = &target.dir {
        // From each member's counters file: also says which are stopped.
        let cluster = crate::target::cluster_config(dir)?;
        for member in &cluster.members {
            let node = member_config(&dir.join(format!("node-{}", member.id.0))).ok();
            let counters = node.as_ref().and_then(|n| CountersReader::open(&n.data_dir.join("counters")).ok());
            let running = counters.as_ref().is_some_and(|c| Path::new(&format!("/proc/{}", c.pid())).exists());
            let value = |name: &str| counters.as_ref().and_then(|c| c.value(name));
            let role = if running { role_name(value("role")) } else { "stopped" };
            rows.push((member.id.0, member.address, role, FIELDS.map(value)));
        }
    } else {
        // Over the network: each member answers a status request, or is unreachable.
        let mut client = target.client()?;
        for (index, &address) in target.addresses().iter().enumerate() {
            match client.status_of(index, std::time::Duration::from_secs(1))? {
                Some(s) => {
                    let values = [
                        s.term.0,
                        s.leader.map_or(0, |m| u64::from(m.0)),
                        s.append_position.0,
                        s.commit_position.0,
                        s.applied_position.0,
                        s.snapshot_position.0,
                    ];
                    rows.push((s.member.0, address, role_name(Some(u64::from(s.role))), values.map(Some)));
                }
                None => rows.push((index as u16 + 1, address, "unreachable", [None; 6])),
            }
        }
    }
    for (id, address, role, values) in rows {
        if json {
            let mut object = serde_json::json!({"id": id, "address": address.to_string(), "role": role});
            for (name, value) in FIELDS.iter().zip(values) {
                object[*name] = value.map_or(serde_json::Value::Null, Into::into);
            }
            println!("{object}");
        } else {
            let shown: Vec<String> = FIELDS
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name} {}", value.map_or("-".into(), |v| v.to_string())))
                .collect();
            println!("member {id} at {address}: {role}, {}", shown.join(", "));
        }
    }
    Ok(())
}

/// `ordo snapshot list|inspect|verify`: a member's snapshots, offline.
pub fn snapshot(dir: &Path, action: &str, position: Option<u64>, json: bool) -> Result<bool, Failure> {
    let node = member_config(dir)?;
    let store =
        ordo_service::machinery::snapshots::SnapshotStore::open(&node.data_dir.join("snapshots"), node.cluster_id())?;
    let files = store.list()?;
    let chosen: Vec<_> = match position {
        Some(p) => files.into_iter().filter(|(at, _)| at.0 == p).collect(),
        None if action == "list" => files,
        None => files.into_iter().last().into_iter().collect(),
    };
    if chosen.is_empty() {
        return Err(Failure(format!(
            "{} holds no such snapshot; `ordo snapshot list` shows them",
            node.data_dir.display()
        )));
    }
    let mut all_good = true;
    for (at, path) in chosen {
        let snapshot = match store.read(&path) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                all_good = false;
                println!(
                    "{}",
                    if json {
                        serde_json::json!({"position": at.0, "error": error.to_string()}).to_string()
                    } else {
                        format!("{at}: {error}")
                    }
                );
                continue;
            }
        };
        let info = &snapshot.info;
        let mut object = serde_json::json!({
            "position": info.position().0,
            "term": info.base.term.0,
            "app": info.app,
            "state_hash": format!("{:#018x}", info.state_hash),
            "body_bytes": info.body_bytes,
            "events_position": info.events.position.0,
            "path": path.display().to_string(),
        });
        if action == "verify" {
            // Its state hash must be what replaying the log to its position gives.
            let options =
                ordo_service::machinery::replay::ReplayOptions { to: Some(info.position()), no_snapshot: true };
            let verdict = match crate::apps::replay_report(&node, &options) {
                Ok(report) if report.position == info.position() && report.state_hash == info.state_hash => {
                    "matches a replay".to_string()
                }
                Ok(report) => {
                    all_good = false;
                    format!("DIFFERS from a replay to {}: {:#018x}", report.position, report.state_hash)
                }
                Err(error) => format!("checksums good; not replayed ({})", error.0),
            };
            object["verify"] = verdict.into();
        }
        if json {
            println!("{object}");
        } else {
            let verify = object.get("verify").and_then(|v| v.as_str()).map_or(String::new(), |v| format!(", {v}"));
            println!(
                "{at}: term {}, app {}, state hash {:#018x}, {} bytes, events at {}{verify}",
                info.base.term.0, info.app, info.state_hash, info.body_bytes, info.events.position
            );
        }
    }
    Ok(all_good)
}

/// `ordo events tail`: the event stream of a member's folder from a position, following it.
pub fn events_tail(
    dir: &Path,
    from: Option<u64>,
    json: bool,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), Failure> {
    let node = member_config(dir)?;
    let events_config = node.log.for_events();
    let mut reader = ordo_log::LogReader::open(&node.data_dir.join("events"), &events_config)?;
    let mut position = from.map_or(reader.position_start(), Position);
    let mut out = std::io::stdout().lock();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let mut progressed = false;
        for entry in reader.entries(position) {
            let Ok(entry) = entry else { break }; // being written: read again shortly
            position = entry.next_position();
            progressed = true;
            if entry.kind() != ordo_core::EntryKind::Event {
                continue;
            }
            let header = entry.header;
            let text = crate::apps::describe_event(&node.app, entry.payload);
            let line = if json {
                serde_json::json!({
                    "position": entry.position().0,
                    "source": header.correlation_id.get(),
                    "session": header.session().0,
                    "time": header.timestamp().0,
                    "event": text,
                })
                .to_string()
            } else {
                format!(
                    "{:>12} from {} session {}: {text}",
                    entry.position().0,
                    header.correlation_id.get(),
                    header.session().0
                )
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(());
            }
        }
        let _ = out.flush();
        if !progressed {
            reader.refresh()?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Ok(())
}

/// `ordo snapshot restore --from FILE --dir NEW-DIR`: seeds a fresh member (every member of
/// a fresh cluster, one by one) from a snapshot file. The snapshot is checked, taken into
/// the member's cluster (its header says which cluster it belongs to; the state does not
/// depend on it) and stored; the member starts from it: its log begins at the snapshot's
/// position, its state is the snapshot's.
pub fn snapshot_restore(from: &Path, dir: &Path) -> Result<(), Failure> {
    use ordo_service::machinery::snapshot::Snapshot;
    let node = member_config(dir)?;
    let bytes = std::fs::read(from).map_err(|e| Failure(format!("cannot read {}: {e}", from.display())))?;
    let snapshot = Snapshot::from_bytes(bytes, &from.display().to_string())?;
    let info = &snapshot.info;
    if !info.app.is_empty() && info.app != node.app {
        return Err(Failure(format!(
            "{} is a snapshot of app {:?}, but {} runs {:?}; restore it into a member of that app",
            from.display(),
            info.app,
            dir.display(),
            node.app
        )));
    }
    let log_dir = node.data_dir.join("log");
    if log_dir.is_dir() && ordo_log::verify(&log_dir, &node.log).is_ok_and(|v| v.entries > 0) {
        return Err(Failure(format!(
            "{} already has a log: restore only into a fresh member (delete its data folder first)",
            dir.display()
        )));
    }
    let (path, lost_state) =
        ordo_service::machinery::disk::restore_snapshot(&node.data_dir, node.cluster_id(), &snapshot)
            .map_err(|e| Failure(e.to_string()))?;
    let votes = if lost_state {
        "it catches up from the running members before it votes (its folder was not a new cluster's)"
    } else {
        "it votes from the start (a new cluster's folder)"
    };
    println!(
        "{}: member {} starts from the snapshot at {} (state hash {:#018x}); {votes}",
        path.display(),
        node.member_id.0,
        info.position(),
        info.state_hash
    );
    Ok(())
}
