//! The order book: limit orders matched by price, then time. An incoming order trades with
//! the best resting orders on the other side while prices cross (at the resting order's
//! price, oldest first), and the rest of it rests. Invariants: the book never crosses after
//! matching; no order is filled beyond its quantity; what rests is what the orders say.
//!
//! CLI commands: `order ID buy|sell PRICE QTY`, `cancel ID`, `depth`.

use crate::codec::{self, emit, number, reply, with_archived};
use ordo_core::machine::{Context, StateMachine};
use rkyv::{Archive, Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Price levels a depth reply shows on each side.
pub const DEPTH_LEVELS: usize = 10;

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Order { id: u64, side: Side, price: u64, quantity: u64 },
    Cancel { id: u64 },
    Depth,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reason {
    ZeroPrice,
    ZeroQuantity,
    IdExists,
    Malformed,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reply {
    /// Accepted: filled this much at once, the rest resting.
    Accepted {
        filled: u64,
        resting: u64,
    },
    Cancelled {
        remaining: u64,
    },
    NotFound,
    Rejected {
        reason: Reason,
    },
    /// (price, total quantity) per level, best first.
    Depth {
        bids: Vec<(u64, u64)>,
        asks: Vec<(u64, u64)>,
    },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Accepted { id: u64, side: Side, price: u64, quantity: u64 },
    Fill { maker: u64, taker: u64, price: u64, quantity: u64 },
    Cancelled { id: u64, remaining: u64 },
    Rejected { id: u64, reason: Reason },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Order {
    side: Side,
    price: u64,
    quantity: u64,
    filled: u64,
}

/// The orders resting at one price, oldest first, and their unfilled quantity in total (so
/// depth is a read per level, not a sum over every order).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct Level {
    orders: VecDeque<u64>,
    total: u64,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    bids: BTreeMap<u64, Level>,
    asks: BTreeMap<u64, Level>,
    /// Every resting order.
    resting: BTreeMap<u64, Order>,
    /// Every id ever accepted (an id is used once).
    ids_used: BTreeMap<u64, ()>,
}

pub fn encode(command: &Command) -> Vec<u8> {
    codec::encode(command)
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    codec::decode(bytes, "book reply")
}

pub fn decode_event(bytes: &[u8]) -> Result<Event, String> {
    codec::decode(bytes, "book event")
}

impl Book {
    pub fn best_bid(&self) -> Option<u64> {
        self.bids.keys().next_back().copied()
    }

    pub fn best_ask(&self) -> Option<u64> {
        self.asks.keys().next().copied()
    }

    /// Matches and rests an order; each event goes to `event` (the state machine encodes
    /// them onto its event stream; the benchmark's native loop just counts them).
    pub fn order(
        &mut self,
        event: &mut dyn FnMut(Event),
        id: u64,
        side: Side,
        price: u64,
        quantity: u64,
    ) -> Result<Reply, Reason> {
        if price == 0 {
            return Err(Reason::ZeroPrice);
        }
        if quantity == 0 {
            return Err(Reason::ZeroQuantity);
        }
        if self.ids_used.contains_key(&id) {
            return Err(Reason::IdExists);
        }
        self.ids_used.insert(id, ());
        event(Event::Accepted { id, side, price, quantity });
        let mut left = quantity;
        while left > 0 {
            let best = match side {
                Side::Buy => self.asks.first_key_value().map(|(&p, _)| p).filter(|&p| p <= price),
                Side::Sell => self.bids.last_key_value().map(|(&p, _)| p).filter(|&p| p >= price),
            };
            let Some(level_price) = best else { break };
            let level = match side {
                Side::Buy => self.asks.get_mut(&level_price),
                Side::Sell => self.bids.get_mut(&level_price),
            }
            .expect("a best level exists");
            let maker_id = *level.orders.front().expect("levels are never empty");
            let maker = self.resting.get_mut(&maker_id).expect("a queued order rests");
            let traded = left.min(maker.quantity - maker.filled);
            maker.filled += traded;
            level.total -= traded;
            left -= traded;
            event(Event::Fill { maker: maker_id, taker: id, price: level_price, quantity: traded });
            if maker.filled == maker.quantity {
                self.resting.remove(&maker_id);
                level.orders.pop_front();
                if level.orders.is_empty() {
                    match side {
                        Side::Buy => self.asks.remove(&level_price),
                        Side::Sell => self.bids.remove(&level_price),
                    };
                }
            }
        }
        if left > 0 {
            let levels = match side {
                Side::Buy => &mut self.bids,
                Side::Sell => &mut self.asks,
            };
            let level = levels.entry(price).or_default();
            level.orders.push_back(id);
            level.total += left;
            self.resting.insert(id, Order { side, price, quantity, filled: quantity - left });
        }
        Ok(Reply::Accepted { filled: quantity - left, resting: left })
    }

    /// Cancels a resting order; its event goes to `event`.
    pub fn cancel(&mut self, event: &mut dyn FnMut(Event), id: u64) -> Reply {
        let Some(order) = self.resting.remove(&id) else { return Reply::NotFound };
        let levels = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels.get_mut(&order.price).expect("a resting order has a level");
        let remaining = order.quantity - order.filled;
        level.orders.retain(|&o| o != id);
        level.total -= remaining;
        if level.orders.is_empty() {
            levels.remove(&order.price);
        }
        event(Event::Cancelled { id, remaining });
        Reply::Cancelled { remaining }
    }

    pub fn depth(&self) -> Reply {
        let bids = self.bids.iter().rev().take(DEPTH_LEVELS).map(|(&p, level)| (p, level.total)).collect();
        let asks = self.asks.iter().take(DEPTH_LEVELS).map(|(&p, level)| (p, level.total)).collect();
        Reply::Depth { bids, asks }
    }
}

impl StateMachine for Book {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let mut scratch = rkyv::util::AlignedVec::<16>::new();
        let decoded = with_archived::<ArchivedCommand, _>(command, &mut scratch, |archived| {
            archived.map(|a| rkyv::deserialize::<Command, rkyv::rancor::Error>(a).expect("validated"))
        });
        let answer = match decoded {
            None => Reply::Rejected { reason: Reason::Malformed },
            Some(Command::Order { id, side, price, quantity }) => {
                let answer = self.order(&mut |event| emit(ctx, &event), id, side, price, quantity);
                answer.unwrap_or_else(|reason| {
                    emit(ctx, &Event::Rejected { id, reason });
                    Reply::Rejected { reason }
                })
            }
            Some(Command::Cancel { id }) => self.cancel(&mut |event| emit(ctx, &event), id),
            Some(Command::Depth) => self.depth(),
        };
        reply(ctx, &answer);
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        codec::snapshot(self, out);
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        codec::restore(bytes, "order book")
    }

    fn check_invariants(&self) -> Result<(), String> {
        if let (Some(bid), Some(ask)) = (self.best_bid(), self.best_ask())
            && bid >= ask
        {
            return Err(format!("the book is crossed: best bid {bid} ≥ best ask {ask}"));
        }
        let mut queued = 0;
        for (levels, side) in [(&self.bids, Side::Buy), (&self.asks, Side::Sell)] {
            for (&price, level) in levels {
                let ids = &level.orders;
                let unfilled: u64 =
                    ids.iter().filter_map(|id| self.resting.get(id)).map(|o| o.quantity - o.filled).sum();
                if unfilled != level.total {
                    return Err(format!("the level at {price} says {} unfilled, its orders {unfilled}", level.total));
                }
                if ids.is_empty() {
                    return Err(format!("an empty level at {price}"));
                }
                for id in ids {
                    let Some(order) = self.resting.get(id) else {
                        return Err(format!("order {id} is queued but does not rest"));
                    };
                    if order.side != side || order.price != price || order.filled >= order.quantity {
                        return Err(format!("order {id} is queued where its terms say it is not"));
                    }
                    queued += 1;
                }
            }
        }
        if queued != self.resting.len() {
            return Err(format!("{} orders rest but {queued} are queued", self.resting.len()));
        }
        Ok(())
    }
}

/// The simulator's book load: orders around a mid price, some cancels, now and then depth.
pub fn workload_command(client: u64, k: u64) -> Vec<u8> {
    let mix = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ client.rotate_left(23);
    let id = (client << 40) | k;
    let command = match mix % 10 {
        0 => Command::Cancel { id: (client << 40) | k.saturating_sub(1 + (mix >> 8) % 20) },
        1 => Command::Depth,
        _ => Command::Order {
            id,
            side: if (mix >> 4).is_multiple_of(2) { Side::Buy } else { Side::Sell },
            price: 95 + (mix >> 8) % 11,
            quantity: 1 + (mix >> 16) % 20,
        },
    };
    encode(&command)
}

/// A command from its words: `order ID buy|sell PRICE QTY`, `cancel ID`, `depth`.
pub fn parse(words: &[&str]) -> Result<Command, String> {
    match words.first().copied() {
        Some("order") => Ok(Command::Order {
            id: number(words.get(1), "the order id")?,
            side: match words.get(2).copied() {
                Some("buy") => Side::Buy,
                Some("sell") => Side::Sell,
                _ => return Err("the side is buy or sell".into()),
            },
            price: number(words.get(3), "the price")?,
            quantity: number(words.get(4), "the quantity")?,
        }),
        Some("cancel") => Ok(Command::Cancel { id: number(words.get(1), "the order id")? }),
        Some("depth") => Ok(Command::Depth),
        _ => Err("a book command is order, cancel or depth".into()),
    }
}

impl Reply {
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

    fn run(book: &mut Book, command: &Command) -> (Reply, Vec<Event>) {
        let applied = crate::testing::apply(book, 1, 0, &encode(command));
        let events = applied.events.iter().map(|e| decode_event(e).unwrap()).collect();
        (decode_reply(&applied.reply).unwrap(), events)
    }

    fn order(id: u64, side: Side, price: u64, quantity: u64) -> Command {
        Command::Order { id, side, price, quantity }
    }

    #[test]
    fn price_then_time_priority_at_the_makers_price() {
        let mut book = Book::default();
        run(&mut book, &order(1, Side::Sell, 101, 5));
        run(&mut book, &order(2, Side::Sell, 100, 5));
        run(&mut book, &order(3, Side::Sell, 100, 5));
        let (answer, events) = run(&mut book, &order(4, Side::Buy, 101, 12));
        assert_eq!(answer, Reply::Accepted { filled: 12, resting: 0 });
        let fills: Vec<_> = events
            .iter()
            .filter_map(|e| {
                if let Event::Fill { maker, price, quantity, .. } = e {
                    Some((*maker, *price, *quantity))
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(fills, [(2, 100, 5), (3, 100, 5), (1, 101, 2)], "best price first, then oldest");
        assert_eq!(run(&mut book, &Command::Depth).0, Reply::Depth { bids: vec![], asks: vec![(101, 3)] });
        assert_eq!(run(&mut book, &Command::Cancel { id: 1 }).0, Reply::Cancelled { remaining: 3 });
        assert_eq!(run(&mut book, &order(4, Side::Buy, 99, 1)).0, Reply::Rejected { reason: Reason::IdExists });
        book.check_invariants().unwrap();
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            4 => (0u64..60, any::<bool>(), 95u64..106, 0u64..15).prop_map(|(id, buy, price, quantity)| {
                Command::Order { id, side: if buy { Side::Buy } else { Side::Sell }, price, quantity }
            }),
            1 => (0u64..60).prop_map(|id| Command::Cancel { id }),
            1 => Just(Command::Depth),
        ]
    }

    proptest! {
        /// The book never crosses, no order fills past its quantity, every fill is at a price
        /// both sides accepted; a snapshot restores to the same book, which goes on alike.
        #[test]
        fn the_book_never_crosses_and_restores_exactly(
            commands in proptest::collection::vec(any_command(), 0..150),
            split in 0usize..150,
        ) {
            let mut book = Book::default();
                        // Each accepted order's terms (an id is accepted once; a rejected order uses none).
            let mut limits: BTreeMap<u64, (Side, u64, u64)> = BTreeMap::new();
            let split = split.min(commands.len());
            let mut filled: BTreeMap<u64, u64> = BTreeMap::new();
            let mut check = |events: &[Event]| -> Result<(), TestCaseError> {
                for event in events {
                    if let Event::Accepted { id, side, price, quantity } = event {
                        prop_assert!(limits.insert(*id, (*side, *price, *quantity)).is_none(), "id {} twice", id);
                    }
                    if let Event::Fill { maker, taker, price, quantity } = event {
                        for id in [maker, taker] {
                            *filled.entry(*id).or_default() += quantity;
                            prop_assert!(filled[id] <= limits[id].2, "order {} overfilled", id);
                        }
                        let (taker_side, taker_price, _) = limits[taker];
                        match taker_side {
                            Side::Buy => prop_assert!(*price <= taker_price),
                            Side::Sell => prop_assert!(*price >= taker_price),
                        }
                        prop_assert_eq!(*price, limits[maker].1, "fills at the maker's price");
                    }
                }
                Ok(())
            };
            for command in &commands[..split] {
                let (_, events) = run(&mut book, command);
                check(&events)?;
                prop_assert!(book.check_invariants().is_ok(), "{:?}", book.check_invariants());
            }
            let mut bytes = Vec::new();
            book.snapshot(&mut bytes);
            let mut restored = Book::restore(&bytes).unwrap();
            for command in &commands[split..] {
                let original = run(&mut book, command);
                check(&original.1)?;
                prop_assert_eq!(run(&mut restored, command), original);
                prop_assert!(book.check_invariants().is_ok());
            }
            prop_assert_eq!(restored, book);
        }
    }
}
