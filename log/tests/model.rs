//! Property test: any sequence of appends, truncations, deletions, syncs and crashes
//! leaves the log equal to a plain in-memory model of it.

mod common;

use common::*;
use ordo_core::{ClusterTimeNs, EntryKind, EntryMeta, Position, SessionId, Term};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Append this many commands of this payload length (0 = length_for(k)).
    Append {
        count: u8,
        length: u16,
    },
    /// Start a new term.
    NewTerm,
    /// Truncate to the n-th (mod count) retained command.
    Truncate {
        nth: u16,
    },
    /// Delete segments below the n-th (mod count) command.
    DeleteBelow {
        nth: u16,
    },
    Sync,
    /// Drop without close and reopen.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..40, prop_oneof![Just(0u16), 0u16..4000]).prop_map(|(count, length)| Op::Append { count, length }),
        1 => Just(Op::NewTerm),
        2 => any::<u16>().prop_map(|nth| Op::Truncate { nth }),
        1 => any::<u16>().prop_map(|nth| Op::DeleteBelow { nth }),
        1 => Just(Op::Sync),
        2 => Just(Op::Crash),
    ]
}

/// What the model knows of one command.
#[derive(Clone, Debug, PartialEq)]
struct Command {
    position: Position,
    term: Term,
    payload: Vec<u8>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_a_model_under_any_operations(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        let mut model: Vec<Command> = Vec::new();
        let mut term = 1u64;
        let mut k = 0u64;
        for op in ops {
            match op {
                Op::Append { count, length } => {
                    for _ in 0..count {
                        let length = if length == 0 { length_for(k) } else { length as usize };
                        let payload = payload_for(k, length);
                        let meta = EntryMeta::command(Term(term), ClusterTimeNs(k), SessionId(3), k);
                        let position = log.append(&meta, &payload).unwrap();
                        prop_assert!(model.last().is_none_or(|c| c.position < position));
                        model.push(Command { position, term: Term(term), payload });
                        k += 1;
                    }
                }
                Op::NewTerm => term += 1,
                Op::Truncate { nth } if !model.is_empty() => {
                    let index = nth as usize % model.len();
                    log.truncate_to(model[index].position).unwrap();
                    model.truncate(index);
                }
                Op::DeleteBelow { nth } if !model.is_empty() => {
                    let index = nth as usize % model.len();
                    log.delete_below(model[index].position).unwrap();
                    let start = log.position_start();
                    prop_assert!(start <= model[index].position);
                    model.retain(|c| c.position >= start);
                }
                Op::Sync => {
                    let durable = log.sync().unwrap();
                    prop_assert_eq!(durable, log.position_append());
                }
                Op::Crash => {
                    let (end, checksum) = (log.position_append(), log.checksum_last());
                    drop(log);
                    let (reopened, recovery) = open(dir.path());
                    log = reopened;
                    prop_assert_eq!(recovery.torn_tail, None);
                    prop_assert_eq!(log.position_append(), end);
                    prop_assert_eq!(log.checksum_last(), checksum);
                }
                Op::Truncate { .. } | Op::DeleteBelow { .. } => {}
            }
            let actual: Vec<Command> = log
                .entries(log.position_start())
                .map(|e| e.unwrap())
                .filter(|e| e.kind() == EntryKind::Command)
                .map(|e| Command { position: e.position(), term: e.header.term(), payload: e.payload.to_vec() })
                .collect();
            prop_assert_eq!(&actual, &model);
            if let Some(last) = model.last() {
                prop_assert_eq!(log.terms().term_at(last.position), Some(last.term));
                prop_assert!(log.position_append() > last.position);
            }
        }
        let verified = ordo_log::verify(dir.path(), log.config()).unwrap();
        prop_assert_eq!(verified.position_end, log.position_append());
    }
}
