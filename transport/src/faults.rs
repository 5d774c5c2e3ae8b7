//! Networks that misbehave on purpose, from a seed: [`FaultyNet`] wraps a real backend (for
//! tests and the demo), [`SimNet`] is an in-memory network on a virtual clock (for the
//! simulator). Both take their fate for each datagram from the same [`FaultDice`].

use crate::backend::{BATCH_DATAGRAMS_MAX, Datagrams, Outgoing};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Probabilities (0.0–1.0) and delays of the faults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultConfig {
    pub loss: f64,
    pub duplicate: f64,
    /// A reordered datagram is held back by up to `reorder_delay_ns`, so later ones pass it.
    pub reorder: f64,
    pub reorder_delay_ns: u64,
    /// Every datagram takes `latency_ns` plus up to `jitter_ns` (SimNet; FaultyNet adds only
    /// the jitter, the real network supplies the latency).
    pub latency_ns: u64,
    pub jitter_ns: u64,
    /// A held datagram is delivered up to `hold_ns` late (a queue in a switch, a route that
    /// flapped): long enough, in the simulator, to arrive from an earlier round.
    pub hold: f64,
    pub hold_ns: u64,
}

impl FaultConfig {
    pub const NONE: FaultConfig = FaultConfig {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay_ns: 0,
        latency_ns: 0,
        jitter_ns: 0,
        hold: 0.0,
        hold_ns: 0,
    };
}

/// What happens to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Drop,
    /// Deliver `copies` copies (1 or 2), each after its own delay.
    Deliver {
        copies: u8,
        delays_ns: [u64; 2],
    },
}

/// The seeded source of every fault decision: same seed, same fates.
#[derive(Clone, Debug)]
pub struct FaultDice {
    rng: fastrand::Rng,
    pub config: FaultConfig,
}

impl FaultDice {
    pub fn new(seed: u64, config: FaultConfig) -> Self {
        FaultDice { rng: fastrand::Rng::with_seed(seed), config }
    }

    pub fn roll(&mut self) -> Fate {
        let c = self.config;
        if self.rng.f64() < c.loss {
            return Fate::Drop;
        }
        let copies = if self.rng.f64() < c.duplicate { 2 } else { 1 };
        let mut delays_ns = [0u64; 2];
        for delay in &mut delays_ns[..copies as usize] {
            *delay = c.latency_ns + if c.jitter_ns > 0 { self.rng.u64(0..=c.jitter_ns) } else { 0 };
            if self.rng.f64() < c.reorder && c.reorder_delay_ns > 0 {
                *delay += self.rng.u64(1..=c.reorder_delay_ns);
            }
            if c.hold > 0.0 && self.rng.f64() < c.hold && c.hold_ns > 0 {
                *delay += self.rng.u64(1..=c.hold_ns);
            }
        }
        Fate::Deliver { copies, delays_ns }
    }
}

/// A datagram held back until it is due: (due, sequence for ties, destination, bytes).
type Held = Reverse<(Instant, u64, SocketAddr, Vec<u8>)>;
/// A datagram in flight in SimNet: (due ns, sequence for ties, from, to, bytes).
type InFlight = Reverse<(u64, u64, u16, u16, Vec<u8>)>;

/// A real backend behind seeded loss, duplication, delay, reordering and partitions.
pub struct FaultyNet {
    inner: Box<dyn Datagrams>,
    dice: FaultDice,
    /// Datagrams held back: (due, sequence, destination, bytes).
    held: BinaryHeap<Held>,
    held_sequence: u64,
    blocked: BTreeSet<SocketAddr>,
    pub dropped: u64,
    pub duplicated: u64,
}

impl FaultyNet {
    pub fn new(inner: Box<dyn Datagrams>, seed: u64, config: FaultConfig) -> Self {
        FaultyNet {
            inner,
            dice: FaultDice::new(seed, config),
            held: BinaryHeap::new(),
            held_sequence: 0,
            blocked: BTreeSet::new(),
            dropped: 0,
            duplicated: 0,
        }
    }

    /// Cuts this endpoint off from `peer`, both ways.
    pub fn partition(&mut self, peer: SocketAddr) {
        self.blocked.insert(peer);
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    pub fn set_faults(&mut self, config: FaultConfig) {
        self.dice.config = config;
    }

    /// Sends the held datagrams that are due.
    fn release_due(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let mut due = Vec::new();
        while due.len() < BATCH_DATAGRAMS_MAX && self.held.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
            let Reverse((_, _, to, bytes)) = self.held.pop().expect("peeked");
            due.push((to, bytes));
        }
        if !due.is_empty() {
            let batch: Vec<Outgoing> = due.iter().map(|(to, bytes)| Outgoing { to: *to, bytes }).collect();
            self.inner.send_batch(&batch)?;
        }
        Ok(())
    }
}

impl Datagrams for FaultyNet {
    fn send_batch(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize> {
        self.release_due()?;
        let count = batch.len().min(BATCH_DATAGRAMS_MAX);
        let mut now_batch = Vec::with_capacity(count * 2);
        for datagram in &batch[..count] {
            if self.blocked.contains(&datagram.to) {
                self.dropped += 1;
                continue;
            }
            match self.dice.roll() {
                Fate::Drop => self.dropped += 1,
                Fate::Deliver { copies, delays_ns } => {
                    self.duplicated += (copies - 1) as u64;
                    for &delay_ns in &delays_ns[..copies as usize] {
                        if delay_ns == 0 {
                            now_batch.push(*datagram);
                        } else {
                            self.held_sequence += 1;
                            let due = Instant::now() + Duration::from_nanos(delay_ns);
                            self.held.push(Reverse((due, self.held_sequence, datagram.to, datagram.bytes.to_vec())));
                        }
                    }
                }
            }
        }
        for part in now_batch.chunks(BATCH_DATAGRAMS_MAX) {
            self.inner.send_batch(part)?;
        }
        Ok(count) // what a lossy network says: everything was sent
    }

    fn recv_batch(&mut self, on_datagram: &mut dyn FnMut(SocketAddr, &mut [u8])) -> io::Result<usize> {
        self.release_due()?;
        let blocked = &self.blocked;
        let mut delivered = 0;
        self.inner.recv_batch(&mut |source, bytes| {
            if !blocked.contains(&source) {
                delivered += 1;
                on_datagram(source, bytes);
            }
        })?;
        Ok(delivered)
    }

    fn wait_readable(&mut self, timeout: Duration) -> io::Result<()> {
        // Held datagrams must go out on time: never wait past the next one's due time.
        let now = Instant::now();
        let timeout =
            self.held.peek().map_or(timeout, |Reverse((due, ..))| timeout.min(due.saturating_duration_since(now)));
        self.inner.wait_readable(timeout)
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// An in-memory network between nodes `0..nodes`, on a virtual clock the caller advances.
/// Deterministic: the same seed and the same sends give the same deliveries, in the same
/// order (ties broken by send order).
#[derive(Debug)]
pub struct SimNet {
    now_ns: u64,
    dice: FaultDice,
    in_flight: BinaryHeap<InFlight>,
    sequence: u64,
    /// Directed links that are cut: (from, to).
    cut: BTreeSet<(u16, u16)>,
    pub sent: u64,
    pub dropped: u64,
}

impl SimNet {
    pub fn new(seed: u64, config: FaultConfig) -> Self {
        SimNet {
            now_ns: 0,
            dice: FaultDice::new(seed, config),
            in_flight: BinaryHeap::new(),
            sequence: 0,
            cut: BTreeSet::new(),
            sent: 0,
            dropped: 0,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    pub fn set_faults(&mut self, config: FaultConfig) {
        self.dice.config = config;
    }

    pub fn send(&mut self, from: u16, to: u16, bytes: &[u8]) {
        self.send_after(from, to, bytes, 0);
    }

    /// Sends a datagram that leaves `depart_ns` from now (its sender was busy until then).
    pub fn send_after(&mut self, from: u16, to: u16, bytes: &[u8], depart_ns: u64) {
        self.sent += 1;
        if self.cut.contains(&(from, to)) {
            self.dropped += 1;
            return;
        }
        match self.dice.roll() {
            Fate::Drop => self.dropped += 1,
            Fate::Deliver { copies, delays_ns } => {
                for &delay_ns in &delays_ns[..copies as usize] {
                    self.sequence += 1;
                    let due_ns = self.now_ns + depart_ns + delay_ns;
                    self.in_flight.push(Reverse((due_ns, self.sequence, from, to, bytes.to_vec())));
                }
            }
        }
    }

    /// When the next datagram is due, if any is in flight.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.in_flight.peek().map(|Reverse((due, ..))| *due)
    }

    /// Moves the clock forward (never back).
    pub fn advance_to(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
    }

    /// The next datagram due by now, as (from, to, bytes). A link cut while the datagram
    /// was in flight drops it.
    pub fn deliver(&mut self) -> Option<(u16, u16, Vec<u8>)> {
        while self.in_flight.peek().is_some_and(|Reverse((due, ..))| *due <= self.now_ns) {
            let Reverse((_, _, from, to, bytes)) = self.in_flight.pop().expect("peeked");
            if self.cut.contains(&(from, to)) {
                self.dropped += 1;
                continue;
            }
            return Some((from, to, bytes));
        }
        None
    }

    /// Cuts the link from `from` to `to` (one way: asymmetric partitions).
    pub fn cut(&mut self, from: u16, to: u16) {
        self.cut.insert((from, to));
    }

    /// Cuts `node` off from every other node of `0..nodes`, both ways.
    pub fn isolate(&mut self, node: u16, nodes: u16) {
        for other in (0..nodes).filter(|&o| o != node) {
            self.cut(node, other);
            self.cut(other, node);
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Drops every datagram in flight that is due after `due_ns`: what a healed network's
    /// queues held longer is gone.
    pub fn drop_due_after(&mut self, due_ns: u64) {
        let before = self.in_flight.len();
        self.in_flight.retain(|Reverse((due, ..))| *due <= due_ns);
        self.dropped += (before - self.in_flight.len()) as u64;
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_cut(&self, from: u16, to: u16) -> bool {
        self.cut.contains(&(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy() -> FaultConfig {
        FaultConfig {
            loss: 0.2,
            duplicate: 0.2,
            reorder: 0.3,
            reorder_delay_ns: 5_000,
            latency_ns: 1_000,
            jitter_ns: 500,
            hold: 0.0,
            hold_ns: 0,
        }
    }

    fn run(seed: u64) -> Vec<(u64, u16, u16, Vec<u8>)> {
        let mut net = SimNet::new(seed, lossy());
        let mut delivered = Vec::new();
        for step in 0..200u64 {
            net.send((step % 3) as u16, ((step + 1) % 3) as u16, &step.to_le_bytes());
            net.advance_to(step * 700);
            while let Some((from, to, bytes)) = net.deliver() {
                delivered.push((net.now_ns(), from, to, bytes));
            }
        }
        delivered
    }

    #[test]
    fn simnet_is_deterministic_per_seed() {
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn simnet_loses_duplicates_and_reorders_at_about_the_asked_rates() {
        let delivered = run(3);
        let sent = 200.0;
        let unique: BTreeSet<_> = delivered.iter().map(|d| d.3.clone()).collect();
        let lost = 1.0 - unique.len() as f64 / sent;
        assert!((0.1..0.3).contains(&lost), "lost {lost}");
        assert!(delivered.len() > unique.len(), "some were duplicated");
        let order: Vec<u64> = delivered.iter().map(|d| u64::from_le_bytes(d.3[..8].try_into().unwrap())).collect();
        assert!(order.windows(2).any(|w| w[0] > w[1]), "some were reordered");
    }

    #[test]
    fn a_cut_link_delivers_nothing_until_healed() {
        let mut net = SimNet::new(1, FaultConfig::NONE);
        net.isolate(0, 3);
        net.send(0, 1, b"a");
        net.send(1, 0, b"b");
        net.send(1, 2, b"c");
        net.advance_to(1);
        assert_eq!(net.deliver(), Some((1, 2, b"c".to_vec())));
        assert_eq!(net.deliver(), None);
        net.heal();
        net.send(0, 1, b"d");
        assert_eq!(net.deliver(), Some((0, 1, b"d".to_vec())));
    }
}
