//! The open-loop load `ordo demo` and `ordo bench` put on a cluster, and the peer runner on
//! etcd and NATS: request `k` is due at `start + k / rate` and is sent when due, however
//! many are still unanswered; its latency runs from that due time to its answer, so a stall
//! counts against every request due during it (coordinated omission corrected). Requests due
//! in the warm-up are sent but not measured.

use crate::latency::{LatencyReport, histogram};
use hdrhistogram::Histogram;
use ordo_core::Position;
use ordo_service::Client;
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// Something that takes requests and answers them: ordo's client, or a peer's.
pub trait Requests {
    /// Queues or sends one request; returns its id (ids are consecutive).
    fn send(&mut self, request: &[u8]) -> io::Result<u64>;
    /// Does the I/O due; calls `answered(id, position)` for each request answered (position:
    /// where the service put it in its log, 0 where it says nothing). Returns the work done.
    fn poll(&mut self, answered: &mut dyn FnMut(u64, Position)) -> io::Result<usize>;
    /// Requests sent and not yet answered.
    fn outstanding(&self) -> usize;
    /// Waits on the socket up to `timeout` (the `block` idle strategy); false if it has no
    /// one socket to wait on, and the caller should idle its own way.
    fn block(&mut self, timeout: Duration) -> io::Result<bool> {
        let _ = timeout;
        Ok(false)
    }
}

impl Requests for Client {
    fn send(&mut self, request: &[u8]) -> io::Result<u64> {
        Ok(self.submit(request))
    }

    fn poll(&mut self, answered: &mut dyn FnMut(u64, Position)) -> io::Result<usize> {
        let mut work = Client::poll(self, self.now_ns())?;
        while let Some(reply) = self.take_reply() {
            answered(reply.ticket, reply.position);
            work += 1;
        }
        Ok(work)
    }

    fn outstanding(&self) -> usize {
        Client::outstanding(self)
    }

    fn block(&mut self, timeout: Duration) -> io::Result<bool> {
        self.wait_readable(timeout)?;
        Ok(true)
    }
}

pub struct OpenLoop {
    started: Instant,
    interval_ns: u64,
    warmup_ns: u64,
    end_ns: u64,
    sent: u64,
    sent_measured: u64,
    answered: u64,
    /// The ticket of `pending[0]`.
    first_pending_ticket: Option<u64>,
    /// (due time, answered) of each command from the oldest unanswered one on.
    pending: VecDeque<(u64, bool)>,
    latencies: Histogram<u64>,
    last_position: Position,
    command: Vec<u8>,
}

impl OpenLoop {
    pub fn new(rate_per_s: u64, warmup: Duration, duration: Duration) -> OpenLoop {
        let warmup_ns = warmup.as_nanos() as u64;
        OpenLoop {
            started: Instant::now(),
            interval_ns: 1_000_000_000 / rate_per_s.max(1),
            warmup_ns,
            end_ns: warmup_ns + duration.as_nanos() as u64,
            sent: 0,
            sent_measured: 0,
            answered: 0,
            first_pending_ticket: None,
            pending: VecDeque::new(),
            latencies: histogram(),
            last_position: Position::ZERO,
            command: Vec::new(),
        }
    }

    /// Nanoseconds since the load started.
    pub fn elapsed_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Nanoseconds from the start to the end of sending (warm-up included).
    pub fn end_ns(&self) -> u64 {
        self.end_ns
    }

    pub fn sending(&self) -> bool {
        self.elapsed_ns() < self.end_ns
    }

    /// Commands sent, warm-up included.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// The highest log position a reply carried.
    pub fn last_position(&self) -> Position {
        self.last_position
    }

    /// How long until the next command is due (zero if one is due, or sending is over).
    pub fn until_next_due(&self) -> Duration {
        let due = self.sent * self.interval_ns;
        Duration::from_nanos(due.saturating_sub(self.elapsed_ns()))
    }

    /// One turn: sends every request now due (`fill(k, buffer)` writes request `k`), lets
    /// the service's client do its I/O, and records each answer's latency. Returns the work
    /// done.
    pub fn step(&mut self, service: &mut dyn Requests, fill: &mut dyn FnMut(u64, &mut Vec<u8>)) -> io::Result<usize> {
        let mut work = 0;
        let now_ns = self.elapsed_ns();
        while now_ns < self.end_ns && self.sent * self.interval_ns <= now_ns {
            let due_ns = self.sent * self.interval_ns;
            fill(self.sent, &mut self.command);
            let ticket = service.send(&self.command)?;
            let first = *self.first_pending_ticket.get_or_insert(ticket);
            debug_assert_eq!(ticket, first + self.pending.len() as u64, "tickets are consecutive");
            self.pending.push_back((due_ns, false));
            self.sent += 1;
            self.sent_measured += u64::from(due_ns >= self.warmup_ns);
            work += 1;
        }
        let OpenLoop { started, first_pending_ticket, pending, answered, last_position, latencies, warmup_ns, .. } =
            self;
        work += service.poll(&mut |ticket, position| {
            let now_ns = started.elapsed().as_nanos() as u64;
            let first = first_pending_ticket.expect("an answer to a request sent");
            let Some((due_ns, done)) = ticket.checked_sub(first).and_then(|i| pending.get_mut(i as usize)) else {
                return; // a second answer to a request already answered
            };
            if !*done {
                *done = true;
                *answered += 1;
                *last_position = (*last_position).max(position);
                if *due_ns >= *warmup_ns {
                    let _ = latencies.record(now_ns.saturating_sub(*due_ns).max(1));
                }
            }
        })?;
        while self.pending.front().is_some_and(|&(_, answered)| answered) {
            self.pending.pop_front();
            *self.first_pending_ticket.as_mut().expect("pending commands have tickets") += 1;
        }
        Ok(work)
    }

    /// The latencies of the measured commands (nanoseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.latencies
    }

    /// The measured commands' figures: sent after the warm-up, answered, percentiles.
    pub fn report(&self) -> LatencyReport {
        LatencyReport::from_histogram(&self.latencies, self.sent_measured)
    }
}
