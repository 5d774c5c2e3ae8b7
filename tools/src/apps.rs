//! The state machines this `ordo` carries, by the name `ordo.toml` gives them: the ledger
//! (the default) and echo. The rest of the apps crate (mutex, kv, airlock, book) joins with
//! issue #7.

use crate::Failure;
use ordo_apps::ledger::{self, Ledger};
use ordo_core::NodeConfig;
use ordo_core::machine::StateMachine;
use ordo_service::echo::Echo;
use ordo_service::member::{Member, Opened};
use ordo_service::node;
use ordo_service::replay::{ReplayOptions, replay};
use std::sync::atomic::AtomicBool;

/// The apps built in, by name.
pub const APPS: &[&str] = &["ledger", "kv", "mutex", "airlock", "book", "echo"];

fn unknown(name: &str) -> Failure {
    Failure(format!("app \"{name}\" is not built into this ordo (it has: {}); set app in ordo.toml", APPS.join(", ")))
}

/// Checks `name` is an app this program has.
pub fn check(name: &str) -> Result<(), Failure> {
    if APPS.contains(&name) { Ok(()) } else { Err(unknown(name)) }
}

/// Runs the member `node` describes, with its app, until `stop` is set.
pub fn run_node(node: &NodeConfig, stop: &AtomicBool) -> Result<(), Failure> {
    match node.app.as_str() {
        "ledger" => run_with(node, Ledger::default(), stop),
        "kv" => run_with(node, ordo_apps::kv::Kv::default(), stop),
        "mutex" => run_with(node, ordo_apps::mutex::Mutex::default(), stop),
        "airlock" => run_with(node, ordo_apps::airlock::Airlock::default(), stop),
        "book" => run_with(node, ordo_apps::book::Book::default(), stop),
        "echo" => run_with(node, Echo::default(), stop),
        other => Err(unknown(other)),
    }
}

fn run_with<M: StateMachine>(node: &NodeConfig, machine: M, stop: &AtomicBool) -> Result<(), Failure> {
    let member_id = node.member_id.0;
    node::run(node, machine, stop, &mut |member: &Member<M>, opened: &Opened| {
        let snapshot = opened.snapshot.as_ref().map_or("none".to_string(), |s| s.position().to_string());
        tracing::info!(
            "member {member_id} listening on {}: log {}..{}, snapshot {snapshot}{}",
            member.local_addr(),
            opened.recovery.position_start,
            opened.recovery.position_end,
            if opened.recovery.torn_tail.is_some() { ", a torn tail was cut" } else { "" },
        );
    })?;
    Ok(())
}

/// Writes command `k` of the demo's and the benchmark's load for `app` into `command`, of
/// `bytes` where the app lets the size vary (echo: `k`, then zeros).
pub fn workload_into(app: &str, k: u64, bytes: usize, command: &mut Vec<u8>) {
    let made = match app {
        "ledger" => ledger::workload_command(0, k),
        "kv" => ordo_apps::kv::workload_command(0, k),
        "mutex" => ordo_apps::mutex::workload_command(0, k),
        "airlock" => ordo_apps::airlock::workload_command(0, k),
        "book" => ordo_apps::book::workload_command(0, k),
        _ => {
            command.clear();
            command.resize(bytes.max(8), 0);
            command[..8].copy_from_slice(&k.to_le_bytes());
            return;
        }
    };
    *command = made;
}

/// A member's state rebuilt offline from its folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub position: ordo_core::Position,
    pub state_hash: u64,
    /// Client commands the app applied, where it counts them (echo).
    pub commands_applied: Option<u64>,
    /// The app's own account of its state (the ledger: money conserved).
    pub summary: String,
    /// The app's invariants hold.
    pub invariants_hold: bool,
}

/// Rebuilds a member's state offline from its folder.
pub fn replay_state(node: &NodeConfig) -> Result<Replayed, Failure> {
    let options = ReplayOptions::default();
    let (dir, log) = (&node.data_dir, &node.log);
    match node.app.as_str() {
        "ledger" => {
            let (container, report) = replay(dir, log, Ledger::default(), &options, &mut |_| {})?;
            let ledger = container.machine();
            let invariants = ledger.check_invariants();
            let summary = match &invariants {
                Ok(()) => format!(
                    "money conserved: balances sum to {} = deposits {}, {} transfers posted",
                    ledger.total(),
                    ledger.deposits(),
                    ledger.transfers()
                ),
                Err(message) => message.clone(),
            };
            let (position, state_hash) = (report.position, report.state_hash);
            Ok(Replayed { position, state_hash, commands_applied: None, summary, invariants_hold: invariants.is_ok() })
        }
        "kv" => {
            let (container, report) = replay(dir, log, ordo_apps::kv::Kv::default(), &options, &mut |_| {})?;
            Ok(generic(report, container.machine().check_invariants(), format!("{} keys", container.machine().len())))
        }
        "mutex" => {
            let (container, report) = replay(dir, log, ordo_apps::mutex::Mutex::default(), &options, &mut |_| {})?;
            Ok(generic(report, container.machine().check_invariants(), "one holder per lock".to_string()))
        }
        "airlock" => {
            let (container, report) = replay(dir, log, ordo_apps::airlock::Airlock::default(), &options, &mut |_| {})?;
            let status = container.machine().status();
            let summary = format!("airlocks {:?}, bay {}: safe", status.locks, status.bay);
            Ok(generic(report, container.machine().check_invariants(), summary))
        }
        "book" => {
            let (container, report) = replay(dir, log, ordo_apps::book::Book::default(), &options, &mut |_| {})?;
            let book = container.machine();
            let summary = format!("best bid {:?}, best ask {:?}: not crossed", book.best_bid(), book.best_ask());
            Ok(generic(report, book.check_invariants(), summary))
        }
        "echo" => {
            let (container, report) = replay(dir, log, Echo::default(), &options, &mut |_| {})?;
            let count = container.machine().count;
            Ok(Replayed {
                position: report.position,
                state_hash: report.state_hash,
                commands_applied: Some(count),
                summary: format!("{count} commands echoed"),
                invariants_hold: true,
            })
        }
        other => Err(unknown(other)),
    }
}

/// A replayed state for an app that does not count its commands.
fn generic(report: ordo_service::replay::ReplayReport, invariants: Result<(), String>, summary: String) -> Replayed {
    Replayed {
        position: report.position,
        state_hash: report.state_hash,
        commands_applied: None,
        summary: invariants.as_ref().map_or_else(|e| e.clone(), |()| summary),
        invariants_hold: invariants.is_ok(),
    }
}

/// A command of `app`, decoded, as text (`ordo log dump`); `None` if it does not decode.
pub fn describe_command(app: &str, bytes: &[u8]) -> Option<String> {
    use ordo_apps::codec::decode;
    match app {
        "ledger" => decode::<ordo_apps::ledger::Command>(bytes, "ledger command").ok().map(|c| format!("{c:?}")),
        "kv" => decode::<ordo_apps::kv::Command>(bytes, "kv command").ok().map(|c| format!("{c:?}")),
        "mutex" => decode::<ordo_apps::mutex::Command>(bytes, "mutex command").ok().map(|c| format!("{c:?}")),
        "airlock" => decode::<ordo_apps::airlock::Command>(bytes, "airlock command").ok().map(|c| format!("{c:?}")),
        "book" => decode::<ordo_apps::book::Command>(bytes, "book command").ok().map(|c| format!("{c:?}")),
        _ => None,
    }
}

/// Replays a member's folder with its app: the report.
pub fn replay_report(
    node: &NodeConfig,
    options: &ReplayOptions,
) -> Result<ordo_service::replay::ReplayReport, Failure> {
    fn with<M: StateMachine>(
        node: &NodeConfig,
        options: &ReplayOptions,
        empty: M,
    ) -> Result<ordo_service::replay::ReplayReport, Failure> {
        Ok(replay(&node.data_dir, &node.log, empty, options, &mut |_| {})?.1)
    }
    match node.app.as_str() {
        "ledger" => with(node, options, Ledger::default()),
        "kv" => with(node, options, ordo_apps::kv::Kv::default()),
        "mutex" => with(node, options, ordo_apps::mutex::Mutex::default()),
        "airlock" => with(node, options, ordo_apps::airlock::Airlock::default()),
        "book" => with(node, options, ordo_apps::book::Book::default()),
        "echo" => with(node, options, Echo::default()),
        other => Err(unknown(other)),
    }
}

/// An app command from its command-line words, encoded.
pub fn encode_words(app: &str, words: &[&str]) -> Result<Vec<u8>, String> {
    use ordo_apps::codec::encode;
    match app {
        "ledger" => ordo_apps::ledger::parse(words).map(|c| encode(&c)),
        "kv" => ordo_apps::kv::parse(words).map(|c| encode(&c)),
        "mutex" => ordo_apps::mutex::parse(words).map(|c| encode(&c)),
        "airlock" => ordo_apps::airlock::parse(words).map(|c| encode(&c)),
        "book" => ordo_apps::book::parse(words).map(|c| encode(&c)),
        "echo" => Ok(words.join(" ").into_bytes()),
        other => Err(format!("app \"{other}\" has no command-line commands")),
    }
}

/// An app's reply as JSON, and why the command changed nothing if it did not.
pub fn render_reply(app: &str, bytes: &[u8]) -> (serde_json::Value, Option<String>) {
    fn json<T: serde::Serialize>(reply: &T, error: Option<String>) -> (serde_json::Value, Option<String>) {
        (serde_json::to_value(reply).unwrap_or(serde_json::Value::Null), error)
    }
    let undecodable = |e: String| (serde_json::Value::Null, Some(e));
    match app {
        "ledger" => ordo_apps::ledger::decode_reply(bytes).map_or_else(undecodable, |r| json(&r, r.error())),
        "kv" => ordo_apps::kv::decode_reply(bytes).map_or_else(undecodable, |r| json(&r, r.error())),
        "mutex" => ordo_apps::mutex::decode_reply(bytes).map_or_else(undecodable, |r| json(&r, r.error())),
        "airlock" => ordo_apps::airlock::decode_reply(bytes).map_or_else(undecodable, |r| json(&r, r.error())),
        "book" => ordo_apps::book::decode_reply(bytes).map_or_else(undecodable, |r| json(&r, r.error())),
        _ => (serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()), None),
    }
}

/// An event of `app`, decoded, as text (`ordo events tail`).
pub fn describe_event(app: &str, bytes: &[u8]) -> String {
    let text = match app {
        "ledger" => ordo_apps::ledger::decode_event(bytes).map(|e| format!("{e:?}")),
        "kv" => ordo_apps::kv::decode_event(bytes).map(|e| format!("{e:?}")),
        "mutex" => ordo_apps::mutex::decode_event(bytes).map(|e| format!("{e:?}")),
        "book" => ordo_apps::book::decode_event(bytes).map(|e| format!("{e:?}")),
        "airlock" => ordo_apps::airlock::decode_event(bytes).map(|e| format!("{e:?}")),
        _ => Err(String::new()),
    };
    text.unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
}
