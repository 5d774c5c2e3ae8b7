//! Idle strategies (Agrona's): what a duty-cycle loop does when a cycle found no work.
//! Busy-spinning gives the lowest latency and burns a core; on a 2-core machine running
//! three members it destroys tail latency, so tests and the demo use `Backoff`.
//!
//! Waiting only: no I/O, no clocks other than the sleep the strategy asks for.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Configured by name in `ordo.toml` (`idle = "backoff"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IdleStrategy {
    /// Spin with the CPU's pause hint: lowest latency, one core at 100%.
    BusySpin,
    /// `sched_yield` every idle cycle.
    Yield,
    /// Spin a little, then yield a little, then sleep with exponential growth up to a cap.
    #[default]
    Backoff,
    /// Sleep a fixed 1 ms every idle cycle: least CPU, most latency.
    Sleep,
    /// Spin a little, then block in the kernel on the loop's socket until a datagram
    /// arrives or at most [`BLOCK_MAX`] passes (timers are due at millisecond grain): little
    /// CPU, and a wake-up in microseconds rather than a back-off sleep's tens of them. For
    /// loops with a socket (a member in `shared` threading, a client); others back off.
    Block,
}

/// The longest a blocking loop waits on its socket before running its timers.
pub const BLOCK_MAX: Duration = Duration::from_millis(1);

const BLOCK_SPINS: u32 = 100;

impl IdleStrategy {
    /// Every strategy, in the order `--help` lists them.
    pub const ALL: [IdleStrategy; 5] =
        [IdleStrategy::BusySpin, IdleStrategy::Yield, IdleStrategy::Backoff, IdleStrategy::Sleep, IdleStrategy::Block];

    /// Its name in `ordo.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IdleStrategy::BusySpin => "busy-spin",
            IdleStrategy::Yield => "yield",
            IdleStrategy::Backoff => "backoff",
            IdleStrategy::Sleep => "sleep",
            IdleStrategy::Block => "block",
        }
    }

    /// The strategy of this name, if there is one.
    pub fn parse(name: &str) -> Option<IdleStrategy> {
        IdleStrategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

const BACKOFF_SPINS: u32 = 100;
const BACKOFF_YIELDS: u32 = 50;
const BACKOFF_SLEEP_NS_MIN: u64 = 1_000;
const BACKOFF_SLEEP_NS_MAX: u64 = 1_000_000;

/// The state of one loop's idling.
#[derive(Clone, Debug)]
pub struct Idler {
    strategy: IdleStrategy,
    idle_cycles: u32,
    sleep_ns: u64,
}

impl Idler {
    /// A loop about to start, idling as `strategy` says.
    pub fn new(strategy: IdleStrategy) -> Self {
        Idler { strategy, idle_cycles: 0, sleep_ns: BACKOFF_SLEEP_NS_MIN }
    }

    /// Its strategy.
    pub fn strategy(&self) -> IdleStrategy {
        self.strategy
    }

    /// Call once per duty cycle with the work it did: work resets the backoff, no work idles.
    #[inline]
    pub fn idle(&mut self, work_count: usize) {
        if work_count > 0 {
            self.reset();
        } else {
            self.idle_once(None);
        }
    }

    /// Idles once, never sleeping past `deadline` from now when one is given (a loop that
    /// must act at a set time, like an open-loop load generator).
    #[inline]
    pub fn idle_once(&mut self, deadline: Option<Duration>) {
        let cap = |ns: u64| deadline.map_or(ns, |d| ns.min(d.as_nanos() as u64));
        match self.strategy {
            IdleStrategy::BusySpin => std::hint::spin_loop(),
            IdleStrategy::Yield => std::thread::yield_now(),
            IdleStrategy::Sleep => std::thread::sleep(Duration::from_nanos(cap(1_000_000))),
            IdleStrategy::Backoff | IdleStrategy::Block => {
                self.idle_cycles = self.idle_cycles.saturating_add(1);
                if self.idle_cycles <= BACKOFF_SPINS {
                    std::hint::spin_loop();
                } else if self.idle_cycles <= BACKOFF_SPINS + BACKOFF_YIELDS {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_nanos(cap(self.sleep_ns)));
                    self.sleep_ns = (self.sleep_ns * 2).min(BACKOFF_SLEEP_NS_MAX);
                }
            }
        }
    }

    /// For a loop that can block on a socket: after a cycle with `work_count`, either idles
    /// as its strategy says and returns false, or (`Block`, past a short spin) returns true:
    /// the caller should now wait on its socket for at most [`BLOCK_MAX`].
    #[inline]
    pub fn idle_or_block(&mut self, work_count: usize) -> bool {
        if work_count > 0 {
            self.reset();
            return false;
        }
        if self.strategy == IdleStrategy::Block {
            self.idle_cycles = self.idle_cycles.saturating_add(1);
            if self.idle_cycles > BLOCK_SPINS {
                return true;
            }
            std::hint::spin_loop();
            return false;
        }
        self.idle_once(None);
        false
    }

    /// Work was done: the next idle starts from the shortest wait again.
    #[inline]
    pub fn reset(&mut self) {
        self.idle_cycles = 0;
        self.sleep_ns = BACKOFF_SLEEP_NS_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for strategy in IdleStrategy::ALL {
            assert_eq!(IdleStrategy::parse(strategy.name()), Some(strategy));
        }
        assert_eq!(IdleStrategy::parse("nap"), None);
    }

    #[test]
    fn backoff_grows_its_sleep_to_a_cap_and_work_resets_it() {
        let mut idler = Idler::new(IdleStrategy::Backoff);
        for _ in 0..BACKOFF_SPINS + BACKOFF_YIELDS + 20 {
            idler.idle(0);
        }
        assert_eq!(idler.sleep_ns, BACKOFF_SLEEP_NS_MAX);
        idler.idle(1);
        assert_eq!((idler.idle_cycles, idler.sleep_ns), (0, BACKOFF_SLEEP_NS_MIN));
    }

    #[test]
    fn block_spins_then_asks_its_loop_to_block_and_others_never_do() {
        let mut idler = Idler::new(IdleStrategy::Block);
        let asked = (0..BLOCK_SPINS + 5).filter(|_| idler.idle_or_block(0)).count();
        assert_eq!(asked, 5, "every idle cycle after the spins blocks");
        assert!(!idler.idle_or_block(1), "work resets it");
        assert!(!idler.idle_or_block(0));
        let mut backoff = Idler::new(IdleStrategy::Backoff);
        assert!((0..BLOCK_SPINS + 5).all(|_| !backoff.idle_or_block(0)));
    }
}
