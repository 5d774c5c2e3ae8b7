//! An auction house as an ordo state machine: items open with a reserve price and a closing
//! time, bids must beat the best one, and each item closes on a log timer — so it closes at
//! the same log position on every member, and a replay closes it exactly again.
//!
//! Commands and replies are text lines (an app picks its own codec; the built-in apps use
//! rkyv): `open ITEM RESERVE SECONDS`, `bid ITEM AMOUNT`, `show ITEM`. Events:
//! `sold ITEM to SESSION for AMOUNT`, `unsold ITEM`.
//!
//! Deterministic by construction: the only clock is the context's cluster time, the items
//! live in a `BTreeMap`, nothing is random.

use ordo_core::machine::{Context, StateMachine};
use std::collections::BTreeMap;

/// One item on sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub reserve: u64,
    /// Cluster time (ns) it closes at.
    pub closes_at_ns: u64,
    /// The best bid: (session, amount).
    pub best: Option<(u64, u64)>,
    pub closed: bool,
    /// The timer that closes it.
    pub timer_id: u64,
}

/// The auction house's whole state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auction {
    items: BTreeMap<String, Item>,
    next_timer_id: u64,
}

impl Auction {
    pub fn item(&self, name: &str) -> Option<&Item> {
        self.items.get(name)
    }

    fn open(&mut self, ctx: &mut Context<'_>, name: &str, reserve: u64, seconds: u64) -> String {
        if self.items.contains_key(name) {
            return format!("refused: {name} is already on sale");
        }
        let closes_at_ns = ctx.time().0.saturating_add(seconds.saturating_mul(1_000_000_000));
        self.next_timer_id += 1;
        let timer_id = self.next_timer_id;
        ctx.schedule_timer(timer_id, closes_at_ns);
        self.items.insert(name.to_string(), Item { reserve, closes_at_ns, best: None, closed: false, timer_id });
        format!("opened {name}, reserve {reserve}, closes in {seconds} s")
    }

    fn bid(&mut self, ctx: &mut Context<'_>, name: &str, amount: u64) -> String {
        let session = ctx.session().0;
        let Some(item) = self.items.get_mut(name) else { return format!("refused: no item {name}") };
        if item.closed {
            return format!("refused: {name} is closed");
        }
        let floor = item.best.map_or(item.reserve, |(_, best)| best + 1);
        if amount < floor {
            return format!("refused: a bid on {name} must be at least {floor}");
        }
        item.best = Some((session, amount));
        format!("leading {name} at {amount}")
    }

    fn show(&self, name: &str) -> String {
        match self.items.get(name) {
            None => format!("no item {name}"),
            Some(item) => {
                let state = if item.closed { "closed" } else { "open" };
                match item.best {
                    Some((session, amount)) => format!("{name}: {state}, best {amount} by session {session}"),
                    None => format!("{name}: {state}, no bid at or above the reserve {}", item.reserve),
                }
            }
        }
    }
}

/// Parses a command line into its words and numbers; `Err` says what is wrong.
fn words(command: &[u8]) -> Result<Vec<&str>, String> {
    let text = std::str::from_utf8(command).map_err(|_| "a command is a line of text".to_string())?;
    Ok(text.split_whitespace().collect())
}

fn number(word: Option<&&str>, what: &str) -> Result<u64, String> {
    word.ok_or(format!("{what} is missing"))?.parse().map_err(|_| format!("{what} must be a whole number"))
}

impl StateMachine for Auction {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let reply = match words(command) {
            Err(error) => format!("refused: {error}"),
            Ok(words) => match words.as_slice() {
                ["open", name, ..] => {
                    match (number(words.get(2), "the reserve"), number(words.get(3), "the seconds")) {
                        (Ok(reserve), Ok(seconds)) => self.open(ctx, name, reserve, seconds),
                        (Err(error), _) | (_, Err(error)) => format!("refused: {error}"),
                    }
                }
                ["bid", name, ..] => match number(words.get(2), "the amount") {
                    Ok(amount) => self.bid(ctx, name, amount),
                    Err(error) => format!("refused: {error}"),
                },
                ["show", name] => self.show(name),
                _ => "refused: the commands are open ITEM RESERVE SECONDS, bid ITEM AMOUNT, show ITEM".to_string(),
            },
        };
        ctx.reply(reply.as_bytes());
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer_id: u64) {
        let Some((name, item)) = self.items.iter_mut().find(|(_, item)| item.timer_id == timer_id && !item.closed)
        else {
            return;
        };
        item.closed = true;
        let event = match item.best {
            Some((session, amount)) => format!("sold {name} to session {session} for {amount}"),
            None => format!("unsold {name}"),
        };
        ctx.emit(event.as_bytes());
    }

    /// One line an item: name, reserve, closing time, best session, best amount (0 0 for
    /// none), closed (0/1), timer id; then a last line with the next timer id.
    fn snapshot(&self, out: &mut Vec<u8>) {
        use std::fmt::Write;
        let mut text = String::new();
        for (name, item) in &self.items {
            let (session, amount) = item.best.unwrap_or((0, 0));
            let best = u8::from(item.best.is_some());
            let _ = writeln!(
                text,
                "{name} {} {} {best} {session} {amount} {} {}",
                item.reserve,
                item.closes_at_ns,
                u8::from(item.closed),
                item.timer_id
            );
        }
        let _ = writeln!(text, "next {}", self.next_timer_id);
        out.extend_from_slice(text.as_bytes());
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "an auction snapshot is text".to_string())?;
        let mut auction = Auction::default();
        for (index, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split(' ').collect();
            let bad = || format!("line {} of the auction snapshot is malformed: {line:?}", index + 1);
            let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(bad);
            match fields.as_slice() {
                ["next", _] => auction.next_timer_id = n(1)?,
                [name, _, _, _, _, _, _, _] => {
                    let best = (n(3)? == 1).then_some((n(4)?, n(5)?));
                    let item = Item { reserve: n(1)?, closes_at_ns: n(2)?, best, closed: n(6)? == 1, timer_id: n(7)? };
                    auction.items.insert(name.to_string(), item);
                }
                _ => return Err(bad()),
            }
        }
        Ok(auction)
    }

    fn check_invariants(&self) -> Result<(), String> {
        for (name, item) in &self.items {
            if let Some((_, amount)) = item.best
                && amount < item.reserve
            {
                return Err(format!("{name}'s best bid {amount} is below its reserve {}", item.reserve));
            }
            if item.timer_id > self.next_timer_id {
                return Err(format!("{name}'s timer {} was never handed out", item.timer_id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterTimeNs, Position, SessionId};

    fn apply(auction: &mut Auction, session: u64, time_s: u64, command: &str) -> String {
        let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
        let time = ClusterTimeNs(time_s * 1_000_000_000);
        let mut ctx = Context::new(Position(0), time, SessionId(session), &mut reply, &mut events, &mut timers);
        auction.apply(&mut ctx, command.as_bytes());
        auction.check_invariants().unwrap();
        String::from_utf8(reply).unwrap()
    }

    fn close(auction: &mut Auction, timer_id: u64) -> String {
        let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
        let mut ctx = Context::new(Position(0), ClusterTimeNs(0), SessionId(0), &mut reply, &mut events, &mut timers);
        auction.on_timer(&mut ctx, timer_id);
        ordo_core::machine::events(&events).map(|e| String::from_utf8(e.to_vec()).unwrap()).collect()
    }

    #[test]
    fn bids_must_beat_the_best_and_the_timer_sells_to_it() {
        let mut auction = Auction::default();
        assert_eq!(apply(&mut auction, 1, 0, "open lamp 10 60"), "opened lamp, reserve 10, closes in 60 s");
        assert!(apply(&mut auction, 2, 1, "bid lamp 5").starts_with("refused: a bid on lamp must be at least 10"));
        assert_eq!(apply(&mut auction, 2, 2, "bid lamp 12"), "leading lamp at 12");
        assert!(apply(&mut auction, 3, 3, "bid lamp 12").contains("at least 13"));
        assert_eq!(apply(&mut auction, 3, 4, "bid lamp 20"), "leading lamp at 20");
        let item = auction.item("lamp").unwrap().clone();
        assert_eq!(item.closes_at_ns, 60_000_000_000);
        assert_eq!(close(&mut auction, item.timer_id), "sold lamp to session 3 for 20");
        assert!(apply(&mut auction, 2, 61, "bid lamp 30").contains("closed"));
        assert_eq!(apply(&mut auction, 1, 0, "open vase 10 1"), "opened vase, reserve 10, closes in 1 s");
        assert_eq!(close(&mut auction, 2), "unsold vase");
        assert!(apply(&mut auction, 1, 0, "fly").starts_with("refused: the commands are"));
    }

    #[test]
    fn a_snapshot_restores_the_same_auction() {
        let mut auction = Auction::default();
        apply(&mut auction, 1, 0, "open lamp 10 60");
        apply(&mut auction, 2, 1, "bid lamp 15");
        apply(&mut auction, 1, 2, "open vase 3 5");
        close(&mut auction, 2);
        let mut bytes = Vec::new();
        auction.snapshot(&mut bytes);
        assert_eq!(Auction::restore(&bytes).unwrap(), auction);
        assert!(Auction::restore(b"lamp 1 2\n").unwrap_err().contains("line 1"));
    }
}
