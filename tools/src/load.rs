//! The open-loop load `ordo demo` and `ordo bench` put on a cluster. Command `k` is due at
//! `start + k / rate` and is submitted when due, however many are still unanswered; its
//! latency runs from that due time to its reply, so a stall counts against every command due
//! during it (coordinated omission corrected). Commands due in the warm-up are sent but not
//! measured.

use hdrhistogram::Histogram;
use ordo_bench::latency::{LatencyReport, histogram};
use ordo_core::Position;
use ordo_service::client::Client;
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

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

    /// One turn: submits every command now due (`fill(k, buffer)` writes command `k`), lets
    /// the client send and receive, and records each reply's latency. Returns the work done.
    pub fn step(&mut self, client: &mut Client, fill: &mut dyn FnMut(u64, &mut Vec<u8>)) -> io::Result<usize> {
        let mut work = 0;
        let now_ns = self.elapsed_ns();
        while now_ns < self.end_ns && self.sent * self.interval_ns <= now_ns {
            let due_ns = self.sent * self.interval_ns;
            fill(self.sent, &mut self.command);
            let ticket = client.submit(&self.command);
            let first = *self.first_pending_ticket.get_or_insert(ticket);
            debug_assert_eq!(ticket, first + self.pending.len() as u64, "tickets are consecutive");
            self.pending.push_back((due_ns, false));
            self.sent += 1;
            self.sent_measured += u64::from(due_ns >= self.warmup_ns);
            work += 1;
        }
        work += client.poll(client.now_ns())?;
        let now_ns = self.elapsed_ns();
        while let Some(reply) = client.take_reply() {
            let first = self.first_pending_ticket.expect("a reply to a command sent");
            let Some((due_ns, answered)) =
                reply.ticket.checked_sub(first).and_then(|i| self.pending.get_mut(i as usize))
            else {
                continue; // a second reply to a command already answered
            };
            if !*answered {
                *answered = true;
                self.answered += 1;
                self.last_position = self.last_position.max(reply.position);
                if *due_ns >= self.warmup_ns {
                    let _ = self.latencies.record(now_ns.saturating_sub(*due_ns).max(1));
                }
                work += 1;
            }
        }
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
