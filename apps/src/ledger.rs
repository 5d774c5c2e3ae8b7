//! The ledger: accounts and transfers, the reference app (think TigerBeetle's). Money comes
//! in by deposits and moves only by transfers, so the sum of all balances always equals the
//! sum of all deposits (conservation, checked as an invariant). An account may go below zero
//! down to its overdraft limit, never further. A transfer carries a client-chosen unique id:
//! a repeated id is answered `Exists` and never applied twice, whatever the session. A
//! rejected transfer changes nothing and says why.
//!
//! Commands and replies are rkyv archives, read in place (validated first: a malformed
//! command is answered `Malformed` and changes nothing). Accounts are named (up to 64
//! bytes); state lives in ordered maps, so snapshots and iteration are deterministic.
//!
//! CLI commands (`ordo client --dir DIR ledger …`, see `shared/CLI.md`): `open ACCOUNT
//! [--limit L]`, `deposit ACCOUNT AMOUNT`, `transfer ID FROM TO AMOUNT`, `balance ACCOUNT`,
//! `lookup ID`, `total`.

use crate::codec::{self, emit, number, reply, with_archived};
use ordo_core::machine::{Context, StateMachine};
use rkyv::with::AsOwned;
use rkyv::{Archive, Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const ACCOUNT_NAME_BYTES_MAX: usize = 64;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Opens an account with balance 0 that may go down to `-limit`.
    Open {
        account: String,
        limit: u64,
    },
    /// Money in from outside the ledger.
    Deposit {
        account: String,
        amount: u64,
    },
    Transfer {
        id: u64,
        from: String,
        to: String,
        amount: u64,
    },
    Balance {
        account: String,
    },
    Lookup {
        id: u64,
    },
    Total,
}

/// Why a command changed nothing.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reason {
    UnknownAccount,
    AccountExists,
    InsufficientFunds,
    SameAccount,
    ZeroAmount,
    NameTooLong,
    Overflow,
    Malformed,
}

/// Names in replies and events borrow from the command or the state while they are encoded
/// (no allocation per command), and are owned once decoded.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reply<'a> {
    Opened,
    Deposited {
        balance: i64,
    },
    Posted {
        id: u64,
    },
    /// A transfer with this id was posted before: not again.
    Exists {
        id: u64,
    },
    Rejected {
        reason: Reason,
    },
    Balance {
        balance: i64,
        limit: u64,
    },
    Transfer {
        id: u64,
        #[rkyv(with = AsOwned)]
        from: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        to: Cow<'a, str>,
        amount: u64,
    },
    NotFound,
    Total {
        total: i64,
        deposits: i64,
    },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    AccountOpened {
        #[rkyv(with = AsOwned)]
        account: Cow<'a, str>,
        limit: u64,
    },
    Deposited {
        #[rkyv(with = AsOwned)]
        account: Cow<'a, str>,
        amount: u64,
    },
    TransferPosted {
        id: u64,
        #[rkyv(with = AsOwned)]
        from: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        to: Cow<'a, str>,
        amount: u64,
    },
    TransferRejected {
        id: u64,
        reason: Reason,
    },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct Account {
    balance: i64,
    limit: u64,
    /// Its index in `Ledger::names` (a transfer records indices, not names).
    index: u32,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Posted {
    from: u32,
    to: u32,
    amount: u64,
}

/// The ledger's whole state.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    accounts: BTreeMap<String, Account>,
    /// Account names by index, in the order they were opened.
    names: Vec<String>,
    transfers: BTreeMap<u64, Posted>,
    /// Everything deposited: the sum of the balances, always.
    deposits: i64,
}

/// Encodes a command (what a client sends).
pub fn encode(command: &Command) -> Vec<u8> {
    codec::encode(command)
}

/// Decodes a reply (what a client gets).
pub fn decode_reply(bytes: &[u8]) -> Result<Reply<'static>, String> {
    codec::decode(bytes, "ledger reply")
}

/// Decodes an event from the event log.
pub fn decode_event(bytes: &[u8]) -> Result<Event<'static>, String> {
    codec::decode(bytes, "ledger event")
}

impl Ledger {
    pub fn balance(&self, account: &str) -> Option<i64> {
        self.accounts.get(account).map(|a| a.balance)
    }

    pub fn total(&self) -> i64 {
        self.accounts.values().map(|a| a.balance).sum()
    }

    pub fn deposits(&self) -> i64 {
        self.deposits
    }

    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    pub fn transfers(&self) -> usize {
        self.transfers.len()
    }

    /// A posted transfer: (from, to, amount).
    pub fn posted(&self, id: u64) -> Option<(&str, &str, u64)> {
        let posted = self.transfers.get(&id)?;
        let name = |index: u32| self.names[index as usize].as_str();
        Some((name(posted.from), name(posted.to), posted.amount))
    }

    fn open(&mut self, account: &str, limit: u64) -> Result<Reply<'static>, Reason> {
        if account.len() > ACCOUNT_NAME_BYTES_MAX {
            return Err(Reason::NameTooLong);
        }
        if self.accounts.contains_key(account) {
            return Err(Reason::AccountExists);
        }
        if limit > i64::MAX as u64 {
            return Err(Reason::Overflow);
        }
        let index = u32::try_from(self.names.len()).map_err(|_| Reason::Overflow)?;
        self.accounts.insert(account.to_string(), Account { balance: 0, limit, index });
        self.names.push(account.to_string());
        Ok(Reply::Opened)
    }

    fn deposit(&mut self, account: &str, amount: u64) -> Result<Reply<'static>, Reason> {
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        let amount = i64::try_from(amount).map_err(|_| Reason::Overflow)?;
        let deposits = self.deposits.checked_add(amount).ok_or(Reason::Overflow)?;
        let entry = self.accounts.get_mut(account).ok_or(Reason::UnknownAccount)?;
        entry.balance = entry.balance.checked_add(amount).ok_or(Reason::Overflow)?;
        self.deposits = deposits;
        Ok(Reply::Deposited { balance: entry.balance })
    }

    fn transfer(&mut self, id: u64, from: &str, to: &str, amount: u64) -> Result<Reply<'static>, Reason> {
        if amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        if from == to {
            return Err(Reason::SameAccount);
        }
        let amount_signed = i64::try_from(amount).map_err(|_| Reason::Overflow)?;
        let (Some(source), Some(target)) = (self.accounts.get(from), self.accounts.get(to)) else {
            return Err(Reason::UnknownAccount);
        };
        let after = source.balance.checked_sub(amount_signed).ok_or(Reason::Overflow)?;
        if after < -(source.limit as i64) {
            return Err(Reason::InsufficientFunds);
        }
        let target_after = target.balance.checked_add(amount_signed).ok_or(Reason::Overflow)?;
        let (from_index, to_index) = (source.index, target.index);
        self.accounts.get_mut(from).expect("looked up").balance = after;
        self.accounts.get_mut(to).expect("looked up").balance = target_after;
        self.transfers.insert(id, Posted { from: from_index, to: to_index, amount });
        Ok(Reply::Posted { id })
    }
}

impl StateMachine for Ledger {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let mut scratch = rkyv::util::AlignedVec::<16>::new();
        with_archived::<ArchivedCommand, _>(command, &mut scratch, |archived| {
            let Some(archived) = archived else {
                return reply(ctx, &Reply::Rejected { reason: Reason::Malformed });
            };
            let answer = match archived {
                ArchivedCommand::Open { account, limit } => {
                    let answer = self.open(account, limit.to_native());
                    if answer.is_ok() {
                        emit(ctx, &Event::AccountOpened { account: Cow::Borrowed(account), limit: limit.to_native() });
                    }
                    answer
                }
                ArchivedCommand::Deposit { account, amount } => {
                    let answer = self.deposit(account, amount.to_native());
                    if answer.is_ok() {
                        emit(ctx, &Event::Deposited { account: Cow::Borrowed(account), amount: amount.to_native() });
                    }
                    answer
                }
                ArchivedCommand::Transfer { id, from, to, amount } => {
                    let (id, amount) = (id.to_native(), amount.to_native());
                    if self.transfers.contains_key(&id) {
                        Ok(Reply::Exists { id })
                    } else {
                        let answer = self.transfer(id, from, to, amount);
                        match answer {
                            Ok(_) => emit(
                                ctx,
                                &Event::TransferPosted { id, from: Cow::Borrowed(from), to: Cow::Borrowed(to), amount },
                            ),
                            Err(reason) => emit(ctx, &Event::TransferRejected { id, reason }),
                        }
                        answer
                    }
                }
                ArchivedCommand::Balance { account } => match self.accounts.get(account.as_str()) {
                    Some(a) => Ok(Reply::Balance { balance: a.balance, limit: a.limit }),
                    None => Err(Reason::UnknownAccount),
                },
                ArchivedCommand::Lookup { id } => Ok(match self.transfers.get(&id.to_native()) {
                    Some(p) => {
                        let name = |index: u32| Cow::Borrowed(self.names[index as usize].as_str());
                        Reply::Transfer { id: id.to_native(), from: name(p.from), to: name(p.to), amount: p.amount }
                    }
                    None => Reply::NotFound,
                }),
                ArchivedCommand::Total => Ok(Reply::Total { total: self.total(), deposits: self.deposits }),
            };
            reply(ctx, &answer.unwrap_or_else(|reason| Reply::Rejected { reason }));
        });
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        codec::snapshot(self, out);
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        codec::restore(bytes, "ledger")
    }

    fn check_invariants(&self) -> Result<(), String> {
        let total = self.total();
        if total != self.deposits {
            return Err(format!("money not conserved: balances sum to {total}, deposits to {}", self.deposits));
        }
        if let Some((name, account)) = self.accounts.iter().find(|(_, a)| a.balance < -(a.limit as i64)) {
            return Err(format!("account {name} is at {} below its limit {}", account.balance, account.limit));
        }
        Ok(())
    }
}

/// A ledger with a bug put in on purpose: every 50th command it applies creates a unit of
/// money from nothing. Only for showing that the simulator's invariant checker catches a
/// broken app.
#[doc(hidden)]
#[derive(Default)]
pub struct LeakyLedger {
    ledger: Ledger,
    applied: u64,
}

impl StateMachine for LeakyLedger {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        self.ledger.apply(ctx, command);
        self.applied += 1;
        if self.applied.is_multiple_of(50)
            && let Some(account) = self.ledger.accounts.values_mut().next()
        {
            account.balance += 1;
        }
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        self.ledger.snapshot(out);
    }
    fn restore(bytes: &[u8]) -> Result<Self, String> {
        Ok(LeakyLedger { ledger: Ledger::restore(bytes)?, applied: 0 })
    }
    fn check_invariants(&self) -> Result<(), String> {
        self.ledger.check_invariants()
    }
}

/// The simulator's and the demo's ledger load: command `k` of client `client` over a few
/// accounts. The first commands open the accounts and fund them; then transfers with
/// unique ids (some rejected: insufficient funds, same account) and now and then a deposit.
pub fn workload_command(client: u64, k: u64) -> Vec<u8> {
    const ACCOUNTS: u64 = 8;
    let name = |i: u64| format!("acct-{}", i % ACCOUNTS);
    let mix = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ client.rotate_left(29);
    let command = match k {
        0..ACCOUNTS => Command::Open { account: name(k + client), limit: (k % 3) * 100 },
        ACCOUNTS..16 => Command::Deposit { account: name(k + client), amount: 1_000 },
        _ if mix.is_multiple_of(17) => Command::Deposit { account: name(mix >> 8), amount: mix % 500 + 1 },
        _ => Command::Transfer {
            id: (client << 40) | k,
            from: name(mix >> 8),
            to: name(mix >> 16),
            amount: (mix >> 24) % 700 + 1,
        },
    };
    encode(&command)
}

/// A command from its words on the command line (`shared/CLI.md`): `open ACCOUNT [--limit
/// L]`, `deposit ACCOUNT AMOUNT`, `transfer ID FROM TO AMOUNT`, `balance ACCOUNT`,
/// `lookup ID`, `total`.
pub fn parse(words: &[&str]) -> Result<Command, String> {
    let name = |i: usize| words.get(i).map(|w| w.to_string()).ok_or("an account name is missing".to_string());
    match words.first().copied() {
        Some("open") => {
            let limit = match words.get(2).copied() {
                Some("--limit") => number(words.get(3), "the limit")?,
                Some(other) => return Err(format!("open takes ACCOUNT [--limit L], not {other:?}")),
                None => 0,
            };
            Ok(Command::Open { account: name(1)?, limit })
        }
        Some("deposit") => Ok(Command::Deposit { account: name(1)?, amount: number(words.get(2), "the amount")? }),
        Some("transfer") => Ok(Command::Transfer {
            id: number(words.get(1), "the transfer id")?,
            from: name(2)?,
            to: name(3)?,
            amount: number(words.get(4), "the amount")?,
        }),
        Some("balance") => Ok(Command::Balance { account: name(1)? }),
        Some("lookup") => Ok(Command::Lookup { id: number(words.get(1), "the transfer id")? }),
        Some("total") => Ok(Command::Total),
        _ => Err("a ledger command is open, deposit, transfer, balance, lookup or total".into()),
    }
}

impl Reply<'_> {
    /// Why the command changed nothing, if it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Reply::Rejected { reason } => Some(format!("{reason:?}")),
            Reply::NotFound => Some("not found".into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Applies `command`, returns the decoded reply and the decoded events.
    fn run(ledger: &mut Ledger, command: &Command) -> (Reply<'static>, Vec<Event<'static>>) {
        let applied = crate::testing::apply(ledger, 1, 0, &encode(command));
        let events = applied.events.iter().map(|e| decode_event(e).unwrap()).collect();
        (decode_reply(&applied.reply).unwrap(), events)
    }

    fn open(name: &str, limit: u64) -> Command {
        Command::Open { account: name.into(), limit }
    }
    fn deposit(name: &str, amount: u64) -> Command {
        Command::Deposit { account: name.into(), amount }
    }
    fn transfer(id: u64, from: &str, to: &str, amount: u64) -> Command {
        Command::Transfer { id, from: from.into(), to: to.into(), amount }
    }

    #[test]
    fn transfers_move_money_once_and_rejections_change_nothing() {
        let mut ledger = Ledger::default();
        assert_eq!(run(&mut ledger, &open("alice", 0)).0, Reply::Opened);
        assert_eq!(run(&mut ledger, &open("bob", 50)).0, Reply::Opened);
        assert_eq!(run(&mut ledger, &open("bob", 0)).0, Reply::Rejected { reason: Reason::AccountExists });
        assert_eq!(run(&mut ledger, &deposit("alice", 100)).0, Reply::Deposited { balance: 100 });
        let (posted, events) = run(&mut ledger, &transfer(1, "alice", "bob", 70));
        assert_eq!(posted, Reply::Posted { id: 1 });
        assert_eq!(events, [Event::TransferPosted { id: 1, from: "alice".into(), to: "bob".into(), amount: 70 }]);
        assert_eq!(run(&mut ledger, &transfer(1, "alice", "bob", 70)).0, Reply::Exists { id: 1 }, "never twice");
        assert_eq!(ledger.balance("alice"), Some(30));
        let before = ledger.clone();
        for (command, reason) in [
            (transfer(2, "alice", "bob", 31), Reason::InsufficientFunds),
            (transfer(3, "alice", "alice", 1), Reason::SameAccount),
            (transfer(4, "alice", "carol", 1), Reason::UnknownAccount),
            (transfer(5, "alice", "bob", 0), Reason::ZeroAmount),
        ] {
            let (answer, events) = run(&mut ledger, &command);
            assert_eq!(answer, Reply::Rejected { reason });
            assert!(matches!(events[..], [Event::TransferRejected { reason: r, .. }] if r == reason));
        }
        assert_eq!(ledger, before, "rejected transfers changed nothing");
        // Bob may overdraw down to his limit of 50, no further.
        assert_eq!(run(&mut ledger, &transfer(6, "bob", "alice", 120)).0, Reply::Posted { id: 6 });
        assert_eq!(ledger.balance("bob"), Some(-50));
        assert_eq!(
            run(&mut ledger, &transfer(7, "bob", "alice", 1)).0,
            Reply::Rejected { reason: Reason::InsufficientFunds }
        );
        assert_eq!(run(&mut ledger, &Command::Total).0, Reply::Total { total: 100, deposits: 100 });
        assert_eq!(
            run(&mut ledger, &Command::Lookup { id: 6 }).0,
            Reply::Transfer { id: 6, from: "bob".into(), to: "alice".into(), amount: 120 }
        );
        assert_eq!(run(&mut ledger, &Command::Lookup { id: 99 }).0, Reply::NotFound);
        ledger.check_invariants().unwrap();
    }

    #[test]
    fn a_malformed_command_is_answered_and_changes_nothing() {
        let mut ledger = Ledger::default();
        let applied = crate::testing::apply(&mut ledger, 1, 0, b"not an archive at all, certainly");
        assert_eq!(decode_reply(&applied.reply).unwrap(), Reply::Rejected { reason: Reason::Malformed });
        assert_eq!(ledger, Ledger::default());
    }

    fn any_command() -> impl Strategy<Value = Command> {
        let name = (0u8..5).prop_map(|i| format!("a{i}"));
        prop_oneof![
            (name.clone(), 0u64..200).prop_map(|(account, limit)| Command::Open { account, limit }),
            (name.clone(), 0u64..1000).prop_map(|(account, amount)| Command::Deposit { account, amount }),
            (0u64..40, name.clone(), name.clone(), 0u64..800).prop_map(|(id, from, to, amount)| Command::Transfer {
                id,
                from,
                to,
                amount
            }),
            name.prop_map(|account| Command::Balance { account }),
            (0u64..40).prop_map(|id| Command::Lookup { id }),
            Just(Command::Total),
        ]
    }

    proptest! {
        /// Money is conserved and no account passes its limit, whatever the commands; a
        /// snapshot restores to the same state, which goes on exactly as the original; the
        /// same commands from scratch give the same replies and events.
        #[test]
        fn invariants_hold_and_snapshots_restore_exactly(
            commands in proptest::collection::vec(any_command(), 0..120),
            split in 0usize..120,
        ) {
            let mut ledger = Ledger::default();
            let mut outputs = Vec::new();
            let split = split.min(commands.len());
            for command in &commands[..split] {
                outputs.push(run(&mut ledger, command));
                prop_assert!(ledger.check_invariants().is_ok(), "{:?}", ledger.check_invariants());
            }
            let mut bytes = Vec::new();
            ledger.snapshot(&mut bytes);
            let mut restored = Ledger::restore(&bytes).unwrap();
            prop_assert_eq!(&restored, &ledger);
            for command in &commands[split..] {
                let original = run(&mut ledger, command);
                prop_assert_eq!(&run(&mut restored, command), &original);
                outputs.push(original);
                prop_assert!(ledger.check_invariants().is_ok());
            }
            let mut again = Ledger::default();
            let replayed: Vec<_> = commands.iter().map(|c| run(&mut again, c)).collect();
            prop_assert_eq!(replayed, outputs);
            prop_assert_eq!(again, ledger);
        }
    }

    #[test]
    fn a_snapshot_that_is_not_a_ledger_or_breaks_its_invariants_is_refused() {
        // (A snapshot file's checksum catches corruption first; this is the app's own check.)
        assert!(Ledger::restore(b"abc").unwrap_err().contains("not a ledger"));
        let mut unbalanced = Ledger::default();
        unbalanced.accounts.insert("alice".into(), Account { balance: 5, limit: 0, index: 0 });
        unbalanced.names.push("alice".into());
        let mut bytes = Vec::new();
        unbalanced.snapshot(&mut bytes);
        assert!(Ledger::restore(&bytes).unwrap_err().contains("money not conserved"));
    }

    #[test]
    fn the_workload_opens_funds_and_transfers() {
        let mut ledger = Ledger::default();
        for k in 0..2000 {
            crate::testing::apply(&mut ledger, 1, 0, &workload_command(k % 2, k / 2));
        }
        assert_eq!(ledger.accounts(), 8);
        assert!(ledger.transfers() > 500, "{} transfers posted", ledger.transfers());
        ledger.check_invariants().unwrap();
    }
}
