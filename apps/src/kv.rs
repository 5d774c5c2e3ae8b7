//! The key-value store: put, get, delete, compare-and-set, over ordered keys (a BTreeMap),
//! so snapshots and any iteration are deterministic. Events: every change.
//!
//! CLI commands: `put KEY VALUE`, `get KEY`, `delete KEY`, `cas KEY OLD NEW` (OLD `-` for
//! "absent").

use crate::codec::{self, emit, reply, with_archived};
use ordo_core::machine::{Context, StateMachine};
use rkyv::with::{AsOwned, Map};
use rkyv::{Archive, Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const KEY_BYTES_MAX: usize = 256;
pub const VALUE_BYTES_MAX: usize = 64 * 1024;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Get {
        key: String,
    },
    Delete {
        key: String,
    },
    /// Sets `new` if the current value is `old` (`None`: absent).
    Cas {
        key: String,
        old: Option<Vec<u8>>,
        new: Vec<u8>,
    },
}

/// Values in replies and keys and values in events borrow from the state or the command
/// while they are encoded (no copy per command), and are owned once decoded.
/// A value as JSON: text when it is UTF-8 (what `ordo client put KEY VALUE` stores), else
/// its bytes.
fn text_or_bytes<S: serde::Serializer>(value: &Option<Cow<'_, [u8]>>, serializer: S) -> Result<S::Ok, S::Error> {
    match value.as_deref().map(std::str::from_utf8) {
        None => serializer.serialize_none(),
        Some(Ok(text)) => serializer.serialize_some(text),
        Some(Err(_)) => serializer.serialize_some(value.as_deref().expect("some")),
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reply<'a> {
    Stored,
    Value {
        #[rkyv(with = Map<AsOwned>)]
        #[serde(serialize_with = "text_or_bytes")]
        value: Option<Cow<'a, [u8]>>,
    },
    Deleted {
        existed: bool,
    },
    /// The compare failed: here is what the value is.
    Mismatch {
        #[rkyv(with = Map<AsOwned>)]
        current: Option<Cow<'a, [u8]>>,
    },
    TooLarge,
    Malformed,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Put {
        #[rkyv(with = AsOwned)]
        key: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        value: Cow<'a, [u8]>,
    },
    Deleted {
        #[rkyv(with = AsOwned)]
        key: Cow<'a, str>,
    },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    entries: BTreeMap<String, Vec<u8>>,
}

pub fn encode(command: &Command) -> Vec<u8> {
    codec::encode(command)
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply<'static>, String> {
    codec::decode(bytes, "kv reply")
}

pub fn decode_event(bytes: &[u8]) -> Result<Event<'static>, String> {
    codec::decode(bytes, "kv event")
}

impl Kv {
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn put(&mut self, ctx: &mut Context<'_>, key: &str, value: &[u8]) -> Reply<'static> {
        if key.len() > KEY_BYTES_MAX || value.len() > VALUE_BYTES_MAX {
            return Reply::TooLarge;
        }
        match self.entries.get_mut(key) {
            // An existing key keeps its allocation when the new value fits.
            Some(stored) => {
                stored.clear();
                stored.extend_from_slice(value);
            }
            None => {
                self.entries.insert(key.to_string(), value.to_vec());
            }
        }
        emit(ctx, &Event::Put { key: Cow::Borrowed(key), value: Cow::Borrowed(value) });
        Reply::Stored
    }
}

impl StateMachine for Kv {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let mut scratch = rkyv::util::AlignedVec::<16>::new();
        with_archived::<ArchivedCommand, _>(command, &mut scratch, |archived| {
            let answer = match archived {
                None => Reply::Malformed,
                Some(ArchivedCommand::Put { key, value }) => self.put(ctx, key, value),
                Some(ArchivedCommand::Get { key }) => {
                    Reply::Value { value: self.entries.get(key.as_str()).map(|v| Cow::Borrowed(v.as_slice())) }
                }
                Some(ArchivedCommand::Delete { key }) => {
                    let existed = self.entries.remove(key.as_str()).is_some();
                    if existed {
                        emit(ctx, &Event::Deleted { key: Cow::Borrowed(key) });
                    }
                    Reply::Deleted { existed }
                }
                Some(ArchivedCommand::Cas { key, old, new }) => {
                    let current = self.entries.get(key.as_str());
                    let matches = match (old.as_ref(), current) {
                        (None, None) => true,
                        (Some(old), Some(current)) => old.as_slice() == current.as_slice(),
                        _ => false,
                    };
                    if matches {
                        self.put(ctx, key, new)
                    } else {
                        let current = self.entries.get(key.as_str()).map(|v| Cow::Borrowed(v.as_slice()));
                        Reply::Mismatch { current }
                    }
                }
            };
            reply(ctx, &answer);
        });
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        codec::snapshot(self, out);
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        codec::restore(bytes, "kv store")
    }

    fn check_invariants(&self) -> Result<(), String> {
        match self.entries.iter().find(|(k, v)| k.len() > KEY_BYTES_MAX || v.len() > VALUE_BYTES_MAX) {
            Some((key, _)) => Err(format!("key {key:?} or its value is larger than allowed")),
            None => Ok(()),
        }
    }
}

/// The simulator's kv load: puts, compare-and-sets, deletes and gets over a few keys.
pub fn workload_command(client: u64, k: u64) -> Vec<u8> {
    let mix = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ client.rotate_left(31);
    let key = format!("k{}", mix % 16);
    let command = match (mix >> 8) % 8 {
        0..=3 => Command::Put { key, value: k.to_le_bytes().to_vec() },
        4 => Command::Cas { key, old: None, new: vec![1] },
        5 => Command::Cas { key, old: Some(vec![1]), new: vec![2] },
        6 => Command::Delete { key },
        _ => Command::Get { key },
    };
    encode(&command)
}

/// A command from its words: `put KEY VALUE`, `get KEY`, `delete KEY`, `cas KEY OLD NEW`
/// (OLD `-` for "absent").
pub fn parse(words: &[&str]) -> Result<Command, String> {
    let word = |i: usize, what: &str| words.get(i).map(|w| w.to_string()).ok_or(format!("{what} is missing"));
    match words.first().copied() {
        Some("put") => Ok(Command::Put { key: word(1, "the key")?, value: word(2, "the value")?.into_bytes() }),
        Some("get") => Ok(Command::Get { key: word(1, "the key")? }),
        Some("delete") => Ok(Command::Delete { key: word(1, "the key")? }),
        Some("cas") => {
            let old = word(2, "the old value")?;
            let old = (old != "-").then(|| old.into_bytes());
            Ok(Command::Cas { key: word(1, "the key")?, old, new: word(3, "the new value")?.into_bytes() })
        }
        _ => Err("a kv command is put, get, delete or cas".into()),
    }
}

impl Reply<'_> {
    /// Why the command changed nothing, if it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Reply::Mismatch { .. } => Some("the current value is another".into()),
            Reply::TooLarge => Some("too large".into()),
            Reply::Malformed => Some("malformed".into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(kv: &mut Kv, command: &Command) -> (Reply<'static>, Vec<Event<'static>>) {
        let applied = crate::testing::apply(kv, 1, 0, &encode(command));
        let events = applied.events.iter().map(|e| decode_event(e).unwrap()).collect();
        (decode_reply(&applied.reply).unwrap(), events)
    }

    fn any_command() -> impl Strategy<Value = Command> {
        let key = (0u8..6).prop_map(|i| format!("k{i}"));
        let value = proptest::collection::vec(0u8..3, 0..3);
        prop_oneof![
            (key.clone(), value.clone()).prop_map(|(key, value)| Command::Put { key, value }),
            key.clone().prop_map(|key| Command::Get { key }),
            key.clone().prop_map(|key| Command::Delete { key }),
            (key, proptest::option::of(value.clone()), value).prop_map(|(key, old, new)| Command::Cas {
                key,
                old,
                new
            }),
        ]
    }

    proptest! {
        /// The store behaves as a plain map; a snapshot restores to the same store, which goes
        /// on exactly as the original.
        #[test]
        fn it_behaves_as_a_map_and_restores_exactly(
            commands in proptest::collection::vec(any_command(), 0..100),
            split in 0usize..100,
        ) {
            let (mut kv, mut model) = (Kv::default(), BTreeMap::<String, Vec<u8>>::new());
            let split = split.min(commands.len());
            for command in &commands[..split] {
                let (answer, _) = run(&mut kv, command);
                let expected = match command {
                    Command::Put { key, value } => { model.insert(key.clone(), value.clone()); Reply::Stored }
                    Command::Get { key } => Reply::Value { value: model.get(key).cloned().map(Cow::Owned) },
                    Command::Delete { key } => Reply::Deleted { existed: model.remove(key).is_some() },
                    Command::Cas { key, old, new } => {
                        if model.get(key) == old.as_ref() {
                            model.insert(key.clone(), new.clone());
                            Reply::Stored
                        } else {
                            Reply::Mismatch { current: model.get(key).cloned().map(Cow::Owned) }
                        }
                    }
                };
                prop_assert_eq!(answer, expected);
            }
            prop_assert_eq!(&kv.entries, &model);
            let mut bytes = Vec::new();
            kv.snapshot(&mut bytes);
            let mut restored = Kv::restore(&bytes).unwrap();
            for command in &commands[split..] {
                prop_assert_eq!(run(&mut restored, command), run(&mut kv, command));
            }
            prop_assert_eq!(restored, kv);
        }
    }

    #[test]
    fn changes_are_events_and_bad_input_changes_nothing() {
        let mut kv = Kv::default();
        let (_, events) = run(&mut kv, &Command::Put { key: "a".into(), value: b"1".to_vec() });
        assert_eq!(events, [Event::Put { key: "a".into(), value: b"1".to_vec().into() }]);
        let huge = Command::Put { key: "b".into(), value: vec![0; VALUE_BYTES_MAX + 1] };
        assert_eq!(run(&mut kv, &huge).0, Reply::TooLarge);
        assert_eq!(run(&mut kv, &Command::Delete { key: "a".into() }).1, [Event::Deleted { key: "a".into() }]);
        assert!(kv.is_empty());
    }
}
