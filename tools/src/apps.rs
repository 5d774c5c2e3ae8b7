//! The state machines this `ordo` carries, by the name `ordo.toml` gives them: one registry
//! ([`APPS`]) of [`Builtin`]s. Every app of `ordo-apps` enters through its
//! [`ordo_apps::App`] impl; echo (the benchmarks' machine, whose load has a size) has its own.

use crate::Failure;
use ordo_apps::App;
use ordo_core::NodeConfig;
use ordo_core::machine::StateMachine;
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::member::{Member, Opened};
use ordo_service::machinery::node;
use ordo_service::machinery::replay::{ReplayOptions, ReplayReport, replay};
use ordo_service::simulation::{SimConfig, SimFailure, SimStats};
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;

/// Everything the program does that depends on which app a cluster runs.
pub trait Builtin: Sync {
    fn name(&self) -> &'static str;
    /// Runs the member `node` describes until `stop` is set.
    fn run(&self, node: &NodeConfig, stop: &AtomicBool) -> Result<(), Failure>;
    /// Rebuilds a member's state offline from its folder.
    fn replay_state(&self, node: &NodeConfig) -> Result<Replayed, Failure>;
    /// Replays a member's folder: the report.
    fn replay_report(&self, node: &NodeConfig, options: &ReplayOptions) -> Result<ReplayReport, Failure>;
    /// Runs one seed of the simulator with this app and its load.
    fn simulate(&self, config: SimConfig) -> Result<SimStats, SimFailure>;
    /// Writes command `k` of the demo's and the benchmark's load into `command`, of `bytes`
    /// where the app lets the size vary.
    fn workload_into(&self, k: u64, bytes: usize, command: &mut Vec<u8>);
    /// A command from its command-line words, encoded.
    fn encode_words(&self, words: &[&str]) -> Result<Vec<u8>, String>;
    /// A command, decoded, as text; `None` if it does not decode.
    fn describe_command(&self, bytes: &[u8]) -> Option<String>;
    /// A reply as JSON, and why the command changed nothing if it did not.
    fn render_reply(&self, bytes: &[u8]) -> (serde_json::Value, Option<String>);
    /// An event, decoded, as text.
    fn describe_event(&self, bytes: &[u8]) -> String;
}

/// An app of `ordo-apps`, through its `App` impl.
struct Entry<M>(PhantomData<fn() -> M>);

/// Echo: replies with what it was sent, counts what it applied; its load has a size.
struct EchoEntry;

/// The apps built in; the first is the default.
pub static APPS: &[&dyn Builtin] = &[
    &Entry::<ordo_apps::ledger::Ledger>(PhantomData),
    &Entry::<ordo_apps::kv::Kv>(PhantomData),
    &Entry::<ordo_apps::mutex::Mutex>(PhantomData),
    &Entry::<ordo_apps::airlock::Airlock>(PhantomData),
    &Entry::<ordo_apps::book::Book>(PhantomData),
    &EchoEntry,
];

/// The app called `name`, or a sentence saying which there are.
pub fn app(name: &str) -> Result<&'static dyn Builtin, Failure> {
    APPS.iter().copied().find(|app| app.name() == name).ok_or_else(|| {
        let names: Vec<&str> = APPS.iter().map(|app| app.name()).collect();
        Failure(format!(
            "app \"{name}\" is not built into this ordo (it has: {}); set app in ordo.toml",
            names.join(", ")
        ))
    })
}

/// Checks `name` is an app this program has.
pub fn check(name: &str) -> Result<(), Failure> {
    app(name).map(drop)
}

/// Runs the member `node` describes, with its app, until `stop` is set.
pub fn run_node(node: &NodeConfig, stop: &AtomicBool) -> Result<(), Failure> {
    app(&node.app)?.run(node, stop)
}

/// Rebuilds a member's state offline from its folder.
pub fn replay_state(node: &NodeConfig) -> Result<Replayed, Failure> {
    app(&node.app)?.replay_state(node)
}

/// Replays a member's folder with its app: the report.
pub fn replay_report(node: &NodeConfig, options: &ReplayOptions) -> Result<ReplayReport, Failure> {
    app(&node.app)?.replay_report(node, options)
}

/// An event of `app` as text (`ordo events tail`): decoded if the app is built in, else (a
/// service of a user's own, as `ordo init` allows) its bytes as text.
pub fn describe_event(app_name: &str, bytes: &[u8]) -> String {
    match app(app_name) {
        Ok(app) => app.describe_event(bytes),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
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

fn replay_with<M: StateMachine>(node: &NodeConfig, options: &ReplayOptions, empty: M) -> Result<ReplayReport, Failure> {
    Ok(replay(&node.data_dir, &node.log, empty, options, &mut |_| {})?.1)
}

impl<M: App> Builtin for Entry<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }
    fn run(&self, node: &NodeConfig, stop: &AtomicBool) -> Result<(), Failure> {
        run_with(node, M::default(), stop)
    }
    fn replay_state(&self, node: &NodeConfig) -> Result<Replayed, Failure> {
        let (container, report) =
            replay(&node.data_dir, &node.log, M::default(), &ReplayOptions::default(), &mut |_| {})?;
        let invariants = container.machine().check_invariants();
        Ok(Replayed {
            position: report.position,
            state_hash: report.state_hash,
            commands_applied: None,
            summary: invariants.as_ref().map_or_else(|e| e.clone(), |()| container.machine().summary()),
            invariants_hold: invariants.is_ok(),
        })
    }
    fn replay_report(&self, node: &NodeConfig, options: &ReplayOptions) -> Result<ReplayReport, Failure> {
        replay_with(node, options, M::default())
    }
    fn simulate(&self, config: SimConfig) -> Result<SimStats, SimFailure> {
        ordo_service::machinery::sim::run_app::<M>(config, M::workload_command)
    }
    fn workload_into(&self, k: u64, _bytes: usize, command: &mut Vec<u8>) {
        *command = M::workload_command(0, k);
    }
    fn encode_words(&self, words: &[&str]) -> Result<Vec<u8>, String> {
        M::parse_words(words)
    }
    fn describe_command(&self, bytes: &[u8]) -> Option<String> {
        M::describe_command(bytes)
    }
    fn render_reply(&self, bytes: &[u8]) -> (serde_json::Value, Option<String>) {
        match M::decode_reply(bytes) {
            Ok(reply) => (serde_json::to_value(&reply).unwrap_or(serde_json::Value::Null), M::reply_error(&reply)),
            Err(error) => (serde_json::Value::Null, Some(error)),
        }
    }
    fn describe_event(&self, bytes: &[u8]) -> String {
        M::describe_event(bytes).unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
    }
}

impl Builtin for EchoEntry {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn run(&self, node: &NodeConfig, stop: &AtomicBool) -> Result<(), Failure> {
        run_with(node, Echo::default(), stop)
    }
    fn replay_state(&self, node: &NodeConfig) -> Result<Replayed, Failure> {
        let (container, report) =
            replay(&node.data_dir, &node.log, Echo::default(), &ReplayOptions::default(), &mut |_| {})?;
        let count = container.machine().count;
        Ok(Replayed {
            position: report.position,
            state_hash: report.state_hash,
            commands_applied: Some(count),
            summary: format!("{count} commands echoed"),
            invariants_hold: true,
        })
    }
    fn replay_report(&self, node: &NodeConfig, options: &ReplayOptions) -> Result<ReplayReport, Failure> {
        replay_with(node, options, Echo::default())
    }
    fn simulate(&self, config: SimConfig) -> Result<SimStats, SimFailure> {
        ordo_service::machinery::sim::run(config)
    }
    /// `k`, then zeros up to `bytes`.
    fn workload_into(&self, k: u64, bytes: usize, command: &mut Vec<u8>) {
        command.clear();
        command.resize(bytes.max(8), 0);
        command[..8].copy_from_slice(&k.to_le_bytes());
    }
    fn encode_words(&self, words: &[&str]) -> Result<Vec<u8>, String> {
        Ok(words.join(" ").into_bytes())
    }
    fn describe_command(&self, _bytes: &[u8]) -> Option<String> {
        None
    }
    fn render_reply(&self, bytes: &[u8]) -> (serde_json::Value, Option<String>) {
        (serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()), None)
    }
    fn describe_event(&self, bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_is_found_by_its_name_and_an_unknown_one_is_named_in_the_error() {
        for app in APPS {
            assert_eq!(super::app(app.name()).map(|a| a.name()).ok(), Some(app.name()));
        }
        let Err(Failure(message)) = super::app("auction") else { panic!("auction is not built in") };
        assert!(message.contains("\"auction\" is not built into this ordo") && message.contains("ledger"), "{message}");
    }

    #[test]
    fn the_events_of_an_app_not_built_in_are_printed_as_text() {
        // `ordo init --app auction` is allowed (its members run the auction program); `ordo
        // events tail` on such a folder once refused to print anything.
        assert_eq!(describe_event("auction", b"sold lamp to bob for 120"), "sold lamp to bob for 120");
        assert_eq!(describe_event("echo", b"hello"), "hello");
        assert!(!describe_event("ledger", b"not a ledger event").is_empty());
    }
}
