//! Writes the seed corpora under `seeds/TARGET/`: valid inputs of each kind (every frame
//! type, entries, log patches, snapshots of every app, an `ordo.toml`, every app's
//! commands), for the fuzzer to mutate from. `cargo run --bin seeds` in `fuzz/`.

use ordo_core::entry::{EntryMeta, encode_entry, entry_span_bytes};
use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterTimeNs, MemberId, NodeConfig, Position, Security, SessionId, Term};
use ordo_log::LogBase;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn state<M: StateMachine + Default>(workload: fn(u64, u64) -> Vec<u8>) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut machine = M::default();
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    let commands: Vec<Vec<u8>> = (0..20).map(|k| workload(0, k)).collect();
    for (k, command) in commands.iter().enumerate() {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(command);
        let mut ctx =
            Context::new(Position(k as u64 * 64), ClusterTimeNs(0), SessionId(1), &mut reply, &mut events, &mut timers);
        machine.apply(&mut ctx, &aligned);
    }
    let mut body = Vec::new();
    machine.snapshot(&mut body);
    (commands, body)
}

fn main() {
    let bytes = b"a command, or a reply";
    let bodies = ordo_transport::frame::example_bodies(bytes);
    for security in [Security::Mac, Security::Aead] {
        let mut codec = ordo_fuzz::codec(security, 1);
        for (i, body) in bodies.iter().enumerate() {
            let mut out = vec![0u8; 1408];
            let length = codec.encode(&mut out, Term(2), body).unwrap();
            write("frame_decode", &format!("{security:?}-{i}"), &out[..length]);
        }
    }

    let meta = EntryMeta::command(Term(3), ClusterTimeNs(5), SessionId(1), 7);
    let payload = b"payload of an entry";
    let mut entry = vec![0u8; 8 + entry_span_bytes(payload.len()) as usize];
    entry[..8].copy_from_slice(&4096u64.to_le_bytes());
    encode_entry(&mut entry[8..], Position(4096), 0xABCD, &meta, payload).unwrap();
    write("entry_decode", "command", &entry);

    write("log_recovery", "flip", &[0, 0x10, 0x04, 0x10]);
    write("log_recovery", "zeros", &[1, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 0]);
    write("log_recovery", "torn-tail", &[1, 0xff, 0x3f, 0xde, 0xad, 0xbe, 0xef]);

    let base = LogBase {
        position: Position(4096),
        term: Term(1),
        entry_position: Position(4032),
        checksum: 1,
        time_max: ClusterTimeNs(9),
    };
    let apps: [(&str, (Vec<Vec<u8>>, Vec<u8>)); 5] = [
        ("ledger", state::<ordo_apps::ledger::Ledger>(ordo_apps::ledger::workload_command)),
        ("kv", state::<ordo_apps::kv::Kv>(ordo_apps::kv::workload_command)),
        ("mutex", state::<ordo_apps::mutex::Mutex>(ordo_apps::mutex::workload_command)),
        ("airlock", state::<ordo_apps::airlock::Airlock>(ordo_apps::airlock::workload_command)),
        ("book", state::<ordo_apps::book::Book>(ordo_apps::book::workload_command)),
    ];
    for (index, (app, (commands, body))) in apps.iter().enumerate() {
        let mut file = Vec::new();
        ordo_service::machinery::snapshot::Snapshot::encode(ordo_fuzz::CLUSTER, &base, &base, app, body, &mut file);
        write("snapshot_read", &format!("{app}-file"), &file);
        write("snapshot_read", &format!("{app}-body"), &[&[index as u8][..], body].concat());
        let mut input = vec![index as u8];
        for command in commands {
            input.push(command.len().min(255) as u8);
            input.extend_from_slice(&command[..command.len().min(255)]);
        }
        write("app_commands", app, &input);
    }

    let addresses: Vec<std::net::SocketAddr> = (1..=3).map(|i| ([127, 0, 0, 1], 9000 + i).into()).collect();
    let config = NodeConfig::new(
        MemberId(1),
        "data".into(),
        "ledger",
        NodeConfig::members_at(&addresses),
        ordo_fuzz::log_config(),
    );
    write("config_load", "ordo.toml", config.to_toml().as_bytes());
    println!("wrote the seed corpora under seeds/");
}
