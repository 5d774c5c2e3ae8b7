//! The UDP ping-pong: a client sends datagrams to an echo thread and measures each round
//! trip; the floor any replicated command's latency sits on.
//!
//! Open loop: datagram `i` is due at `start + i / rate` and its latency is counted from that
//! due time, not from when it actually went (coordinated omission corrected: a stall delays
//! every datagram due during it, and all of them count the stall). Closed loop: one datagram
//! at a time, the classic RTT.

use crate::latency::{LatencyReport, histogram};
use hdrhistogram::Histogram;
use ordo_core::{IdleStrategy, Idler};
use ordo_transport::backend::{self, BackendKind, Datagrams, Outgoing};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How a loop waits when it found nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    Idle(IdleStrategy),
    /// Block in the kernel until a datagram arrives (poll / io_uring wait).
    Blocking,
}

impl Wait {
    pub fn name(self) -> &'static str {
        match self {
            Wait::Idle(strategy) => strategy.name(),
            Wait::Blocking => "blocking",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    OpenLoop { rate_per_s: u64 },
    ClosedLoop,
}

#[derive(Clone, Copy, Debug)]
pub struct PingPong {
    pub backend: BackendKind,
    pub wait: Wait,
    pub load: Load,
    pub size_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

const HEADER_BYTES: usize = 16; // sequence, due time (ns since start)

struct Waiter {
    wait: Wait,
    idler: Idler,
}

impl Waiter {
    fn new(wait: Wait) -> Self {
        let strategy = match wait {
            Wait::Idle(strategy) => strategy,
            Wait::Blocking => IdleStrategy::BusySpin,
        };
        Waiter { wait, idler: Idler::new(strategy) }
    }

    /// Waits after a cycle without work, never past `deadline` (time until the next send).
    fn wait(&mut self, net: &mut dyn Datagrams, deadline: Option<Duration>) -> io::Result<()> {
        match self.wait {
            Wait::Blocking => net.wait_readable(deadline.unwrap_or(Duration::from_millis(10))),
            Wait::Idle(_) => {
                self.idler.idle_once(deadline);
                Ok(())
            }
        }
    }
}

/// Runs one ping-pong and reports its latency percentiles.
pub fn run(config: PingPong) -> io::Result<LatencyReport> {
    let (latencies, sent) = run_recorded(config)?;
    Ok(LatencyReport::from_histogram(&latencies, sent))
}

/// Runs one ping-pong; returns its round trips (nanoseconds) and the datagrams measured.
pub fn run_recorded(config: PingPong) -> io::Result<(Histogram<u64>, u64)> {
    let size = config.size_bytes.max(HEADER_BYTES);
    let loopback = "127.0.0.1:0".parse().unwrap();
    let (mut echo, _) = backend::open(config.backend, loopback, size)?;
    let (mut client, fallback) = backend::open(config.backend, loopback, size)?;
    if let Some(message) = fallback {
        eprintln!("{message}");
    }
    let echo_addr = echo.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = stop.clone();
    let echo_thread = std::thread::spawn(move || -> io::Result<()> {
        let mut waiter = Waiter::new(config.wait);
        let mut replies: Vec<(std::net::SocketAddr, Vec<u8>)> = Vec::with_capacity(backend::BATCH_DATAGRAMS_MAX);
        while !echo_stop.load(Ordering::Relaxed) {
            let mut count = 0;
            echo.recv_batch(&mut |source, bytes| {
                if replies.len() <= count {
                    replies.push((source, Vec::with_capacity(bytes.len())));
                }
                replies[count].0 = source;
                replies[count].1.clear();
                replies[count].1.extend_from_slice(bytes);
                count += 1;
            })?;
            if count == 0 {
                waiter.wait(echo.as_mut(), Some(Duration::from_millis(10)))?;
                continue;
            }
            waiter.idler.reset();
            let batch: Vec<Outgoing> = replies[..count].iter().map(|(to, bytes)| Outgoing { to: *to, bytes }).collect();
            echo.send_batch(&batch)?;
        }
        Ok(())
    });

    let mut waiter = Waiter::new(config.wait);
    let mut latencies = histogram();
    let mut payload = vec![0x5Au8; size];
    let start = Instant::now();
    let end = config.warmup + config.duration;
    let warmup_ns = config.warmup.as_nanos() as u64;
    let (mut sequence, mut sent_measured, mut awaiting, mut sent_at_ns) = (0u64, 0u64, false, 0u64);
    let interval_ns = match config.load {
        Load::OpenLoop { rate_per_s } => 1_000_000_000 / rate_per_s.max(1),
        Load::ClosedLoop => 0,
    };
    loop {
        let now_ns = start.elapsed().as_nanos() as u64;
        let sending = now_ns < end.as_nanos() as u64;
        let mut work = 0;
        if awaiting && now_ns - sent_at_ns > 100_000_000 {
            awaiting = false; // a lost datagram: the closed loop goes on without it
        }
        // Send what is due.
        loop {
            let due_ns = match config.load {
                _ if !sending => break,
                Load::OpenLoop { .. } => sequence * interval_ns,
                Load::ClosedLoop if !awaiting => now_ns,
                Load::ClosedLoop => break,
            };
            if due_ns > now_ns {
                break;
            }
            payload[..8].copy_from_slice(&sequence.to_le_bytes());
            payload[8..16].copy_from_slice(&due_ns.to_le_bytes());
            client.send_batch(&[Outgoing { to: echo_addr, bytes: &payload }])?;
            if due_ns >= warmup_ns {
                sent_measured += 1;
            }
            sequence += 1;
            awaiting = true;
            sent_at_ns = now_ns;
            work += 1;
        }
        // Take the replies.
        client.recv_batch(&mut |_, bytes| {
            if bytes.len() >= HEADER_BYTES {
                let due_ns = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                let latency_ns = (start.elapsed().as_nanos() as u64).saturating_sub(due_ns).max(1);
                if due_ns >= warmup_ns {
                    let _ = latencies.record(latency_ns);
                }
                awaiting = false;
                work += 1;
            }
        })?;
        if !sending && (latencies.len() >= sent_measured || start.elapsed() > end + Duration::from_millis(200)) {
            break;
        }
        if work == 0 {
            let until_next = match config.load {
                Load::OpenLoop { .. } => Some(Duration::from_nanos((sequence * interval_ns).saturating_sub(now_ns))),
                Load::ClosedLoop => Some(Duration::from_millis(10)),
            };
            waiter.wait(client.as_mut(), until_next)?;
        } else {
            waiter.idler.reset();
        }
    }
    stop.store(true, Ordering::Relaxed);
    echo_thread.join().expect("echo thread")?;
    Ok((latencies, sent_measured))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_ping_pong_completes_every_round_trip() {
        for backend in [BackendKind::Std, BackendKind::IoUring] {
            for load in [Load::ClosedLoop, Load::OpenLoop { rate_per_s: 2000 }] {
                let report = run(PingPong {
                    backend,
                    wait: Wait::Idle(IdleStrategy::Backoff),
                    load,
                    size_bytes: 64,
                    warmup: Duration::from_millis(20),
                    duration: Duration::from_millis(100),
                })
                .unwrap();
                assert!(report.sent > 0, "{backend:?} {load:?}");
                assert_eq!(report.completed, report.sent, "{backend:?} {load:?}: loopback loses nothing here");
                assert!(report.p50_us > 0.0 && report.p50_us <= report.max_us);
            }
        }
    }
}
