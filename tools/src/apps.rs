//! The state machines this `ordo` carries, by the name `ordo.toml` gives them. The apps
//! crate's machines (ledger, mutex, kv, airlock, book) join with issue #7.

use crate::Failure;
use ordo_core::NodeConfig;
use ordo_service::echo::Echo;
use ordo_service::member::{Member, Opened};
use ordo_service::node;
use std::sync::atomic::AtomicBool;

/// The apps built in, by name.
pub const APPS: &[&str] = &["echo"];

fn unknown(name: &str) -> Failure {
    Failure(format!("app \"{name}\" is not built into this ordo (it has: {}); set app in ordo.toml", APPS.join(", ")))
}

/// Checks `name` is an app this program has.
pub fn check(name: &str) -> Result<(), Failure> {
    if APPS.contains(&name) { Ok(()) } else { Err(unknown(name)) }
}

/// Runs the member `node` describes, with its app, until `stop` is set.
pub fn run_node(node: &NodeConfig, stop: &AtomicBool) -> Result<(), Failure> {
    let member_id = node.member_id.0;
    let ready = |member: &dyn ReadyMember, opened: &Opened| {
        let snapshot = opened.snapshot.as_ref().map_or("none".to_string(), |s| s.position().to_string());
        tracing::info!(
            "member {member_id} listening on {}: log {}..{}, snapshot {snapshot}{}",
            member.address(),
            opened.recovery.position_start,
            opened.recovery.position_end,
            if opened.recovery.torn_tail.is_some() { ", a torn tail was cut" } else { "" },
        );
    };
    match node.app.as_str() {
        "echo" => node::run(node, Echo::default(), stop, &mut |m: &Member<Echo>, o| ready(m, o))?,
        other => return Err(unknown(other)),
    }
    Ok(())
}

/// What `ready` needs of a member, whatever its app.
trait ReadyMember {
    fn address(&self) -> std::net::SocketAddr;
}

impl<M: ordo_core::machine::StateMachine> ReadyMember for Member<M> {
    fn address(&self) -> std::net::SocketAddr {
        self.local_addr()
    }
}

/// A member's state rebuilt offline from its folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub position: ordo_core::Position,
    pub state_hash: u64,
    /// Client commands the app applied (each (session, sequence) once).
    pub commands_applied: u64,
}

/// Rebuilds a member's state offline from its folder.
pub fn replay_state(node: &NodeConfig) -> Result<Replayed, Failure> {
    let options = ordo_service::replay::ReplayOptions::default();
    match node.app.as_str() {
        "echo" => {
            let (container, report) =
                ordo_service::replay::replay(&node.data_dir, &node.log, Echo::default(), &options, &mut |_| {})?;
            let commands_applied = container.machine().count;
            Ok(Replayed { position: report.position, state_hash: report.state_hash, commands_applied })
        }
        other => Err(unknown(other)),
    }
}
