//! What a tool needs to know of an app besides its state machine: its name, its load, and
//! how to read and write its commands, replies and events. The `ordo` program keeps one
//! registry of the apps it carries, each through this trait, instead of a `match` on the
//! name wherever it needs one.

use ordo_core::machine::StateMachine;

/// An app built into the `ordo` program.
pub trait App: StateMachine + Default {
    /// The name `ordo.toml` gives it.
    const NAME: &'static str;
    /// Its replies, decoded.
    type Reply: serde::Serialize;

    /// Command `k` of client `client` of the demo's, the benchmark's and the simulator's
    /// load: the same bytes each time it is asked for.
    fn workload_command(client: u64, k: u64) -> Vec<u8>;
    /// A command from command-line words (`ordo client`), encoded.
    fn parse_words(words: &[&str]) -> Result<Vec<u8>, String>;
    /// A command, decoded, as text (`ordo log dump`); `None` if it does not decode.
    fn describe_command(bytes: &[u8]) -> Option<String>;
    /// A reply, decoded.
    fn decode_reply(bytes: &[u8]) -> Result<Self::Reply, String>;
    /// Why the command a reply answers changed nothing, if it did not.
    fn reply_error(reply: &Self::Reply) -> Option<String>;
    /// An event, decoded, as text (`ordo events tail`).
    fn describe_event(bytes: &[u8]) -> Result<String, String>;
    /// The app's own account of its state, once its invariants hold (`ordo replay`).
    fn summary(&self) -> String;
}

/// Implements [`App`] for an app module that has the usual functions: `workload_command`,
/// `parse`, `encode`, `decode_reply`, `decode_event`, `Command`, and `Reply::error`.
macro_rules! app {
    ($machine:ty, $module:ident, $name:literal, $reply:ty, |$state:ident| $summary:expr) => {
        impl App for $machine {
            const NAME: &'static str = $name;
            type Reply = $reply;

            fn workload_command(client: u64, k: u64) -> Vec<u8> {
                crate::$module::workload_command(client, k)
            }
            fn parse_words(words: &[&str]) -> Result<Vec<u8>, String> {
                crate::$module::parse(words).map(|command| crate::$module::encode(&command))
            }
            fn describe_command(bytes: &[u8]) -> Option<String> {
                let what = concat!($name, " command");
                let command = crate::codec::decode::<crate::$module::Command>(bytes, what).ok()?;
                Some(format!("{command:?}"))
            }
            fn decode_reply(bytes: &[u8]) -> Result<Self::Reply, String> {
                crate::$module::decode_reply(bytes)
            }
            fn reply_error(reply: &Self::Reply) -> Option<String> {
                reply.error()
            }
            fn describe_event(bytes: &[u8]) -> Result<String, String> {
                crate::$module::decode_event(bytes).map(|event| format!("{event:?}"))
            }
            fn summary(&self) -> String {
                let $state = self;
                $summary
            }
        }
    };
}

app!(crate::ledger::Ledger, ledger, "ledger", crate::ledger::Reply<'static>, |ledger| format!(
    "money conserved: balances sum to {} = deposits {}, {} transfers posted",
    ledger.total(),
    ledger.deposits(),
    ledger.transfers()
));
app!(crate::kv::Kv, kv, "kv", crate::kv::Reply<'static>, |kv| format!("{} keys", kv.len()));
app!(crate::mutex::Mutex, mutex, "mutex", crate::mutex::Reply, |_mutex| "one holder per lock".to_string());
app!(crate::airlock::Airlock, airlock, "airlock", crate::airlock::Reply, |airlock| {
    let status = airlock.status();
    format!("airlocks {:?}, bay {}: safe", status.locks, status.bay)
});
app!(crate::book::Book, book, "book", crate::book::Reply, |book| format!(
    "best bid {:?}, best ask {:?}: not crossed",
    book.best_bid(),
    book.best_ask()
));

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<A: App>(words: &[&str]) {
        let command = A::parse_words(words).unwrap();
        let text = A::describe_command(&command).expect("its own command decodes");
        assert!(!text.is_empty());
        assert!(A::describe_command(b"not a command").is_none(), "{}: garbage is not a command", A::NAME);
        assert!(A::decode_reply(b"not a reply").is_err());
        assert!(!A::workload_command(0, 1).is_empty());
    }

    #[test]
    fn every_app_parses_what_it_describes_and_refuses_garbage() {
        round_trip::<crate::ledger::Ledger>(&["deposit", "alice", "100"]);
        round_trip::<crate::kv::Kv>(&["put", "a", "1"]);
        round_trip::<crate::mutex::Mutex>(&["acquire", "door"]);
        round_trip::<crate::airlock::Airlock>(&["open", "A", "inner"]);
        round_trip::<crate::book::Book>(&["order", "1", "buy", "100", "5"]);
    }
}
