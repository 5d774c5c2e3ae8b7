//! Peers measured beside ordo in the same run, on loopback only: a 3-member etcd cluster
//! (`etcd-server`, Debian) taking puts through its JSON gateway, and a 3-node NATS JetStream
//! cluster (`nats-server`, Debian) taking publishes to an R3 file stream, each acknowledged.
//! Both are driven by the same open-loop harness as `ordo bench`
//! ([`crate::open_loop::OpenLoop`]) through small clients of their wire protocols written
//! here (HTTP/1.1 and NATS' text protocol: a few dozen lines each, no client crate's runtime
//! between the clock and the socket).

pub mod etcd;
pub mod nats;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Child processes killed (SIGKILL, then reaped) when dropped, on every exit path.
#[derive(Default)]
pub struct Processes(Vec<Child>);

impl Processes {
    /// Starts `program` with `args`, its output appended to `log`.
    pub fn spawn(&mut self, program: &str, args: &[String], log: &Path) -> io::Result<()> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {program} ({e}); install it: apt-get install etcd-server nats-server"),
                )
            })?;
        self.0.push(child);
        Ok(())
    }

    /// Fails if a process has exited.
    pub fn check(&mut self, log_dir: &Path) -> io::Result<()> {
        for child in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "a peer process exited ({status}); see the logs in {}",
                    log_dir.display()
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Retries `attempt` every 100 ms until it succeeds or `limit` passes (its last error then).
pub fn retry<T>(limit: Duration, mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A non-blocking TCP connection with an output queue and an input buffer.
pub struct Connection {
    stream: TcpStream,
    out: Vec<u8>,
    out_sent: usize,
    pub input: Vec<u8>,
}

impl Connection {
    pub fn open(address: std::net::SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(Connection { stream, out: Vec::with_capacity(1 << 16), out_sent: 0, input: Vec::with_capacity(1 << 16) })
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes what is queued and reads what arrived; returns the bytes moved.
    pub fn pump(&mut self) -> io::Result<usize> {
        let mut moved = 0;
        while self.out_sent < self.out.len() {
            match self.stream.write(&self.out[self.out_sent..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the peer closed the connection")),
                Ok(n) => {
                    self.out_sent += n;
                    moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection")),
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(moved),
                Err(e) => return Err(e),
            }
        }
    }

    /// Pumps until `done(input)` says how many input bytes it took, or `limit` passes.
    pub fn exchange(&mut self, limit: Duration, mut done: impl FnMut(&[u8]) -> Option<usize>) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            self.pump()?;
            if let Some(taken) = done(&self.input) {
                self.input.drain(..taken);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from the peer"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Waits until one of `connections` has bytes to read, or `timeout` passes (a load
/// generator's `block` idle strategy).
pub fn wait_readable<'a>(connections: impl Iterator<Item = &'a Connection>, timeout: Duration) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds: Vec<PollFd<'_>> = connections.map(|c| PollFd::new(&c.stream, PollFlags::IN)).collect();
    let timeout = Timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The index just past the first `\r\n\r\n` (or `\r\n` when `line`) in `bytes`.
pub fn find(bytes: &[u8], needle: &[u8]) -> Option<usize> {
    bytes.windows(needle.len()).position(|w| w == needle).map(|i| i + needle.len())
}
