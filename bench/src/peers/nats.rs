//! NATS JetStream: three `nats-server`s (Debian's) clustered on loopback, a file stream
//! `BENCH` with three replicas, and publishes acknowledged by the stream (an ack means two
//! of three servers hold the message; like ordo's `replicated`, it does not wait for an
//! fsync: `nats-server` 2.9 syncs on an interval). The client speaks NATS' text protocol on
//! one connection to the stream's leader: `PUB bench <reply> <len>`, the ack arriving on
//! the reply subject `_INBOX.bench.<id>`.

use super::{Connection, Processes, find, retry};
use crate::open_loop::Requests;
use ordo_core::Position;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub struct NatsCluster {
    _processes: Processes,
    pub dir: PathBuf,
    pub clients: Vec<SocketAddr>,
}

const STREAM: &str = "BENCH";

impl NatsCluster {
    /// Three servers `n1..n3` with client ports `base+1..=base+3` and route ports
    /// `base+11..=base+13`; then the R3 stream.
    pub fn start(dir: PathBuf, base_port: u16) -> io::Result<NatsCluster> {
        let mut processes = Processes::default();
        for i in 1..=3u16 {
            let routes: Vec<String> = (1..=3u16)
                .filter(|&j| j != i)
                .map(|j| format!("nats-route://127.0.0.1:{}", base_port + 10 + j))
                .collect();
            let config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: bench, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                base_port + i,
                dir.join(format!("n{i}")).display(),
                base_port + 10 + i,
                routes.join(", ")
            );
            let path = dir.join(format!("n{i}.conf"));
            std::fs::write(&path, config)?;
            processes.spawn(
                "nats-server",
                &["-c".into(), path.display().to_string()],
                &dir.join(format!("n{i}.log")),
            )?;
        }
        let clients: Vec<SocketAddr> = (1..=3).map(|i| ([127, 0, 0, 1], base_port + i).into()).collect();
        let cluster = NatsCluster { _processes: processes, dir, clients };
        let create = format!(
            "{{\"name\":\"{STREAM}\",\"subjects\":[\"bench\"],\"num_replicas\":3,\"storage\":\"file\",\"max_msgs\":1000000}}"
        );
        retry(Duration::from_secs(30), || {
            let answer = cluster.call(cluster.clients[0], &format!("$JS.API.STREAM.CREATE.{STREAM}"), &create)?;
            if answer.contains("\"error\"") && !answer.contains("already in use") {
                return Err(io::Error::other(format!("creating the stream: {answer}")));
            }
            Ok(())
        })?;
        Ok(cluster)
    }

    /// The client address of the server leading the stream.
    pub fn stream_leader(&self) -> io::Result<SocketAddr> {
        retry(Duration::from_secs(20), || {
            let info = self.call(self.clients[0], &format!("$JS.API.STREAM.INFO.{STREAM}"), "")?;
            let start = find(info.as_bytes(), b"\"leader\":\"n")
                .ok_or_else(|| io::Error::other(format!("the stream has no leader yet: {info}")))?;
            let index: usize = info[start..].split('"').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            self.clients.get(index.wrapping_sub(1)).copied().ok_or_else(|| io::Error::other("an unknown leader"))
        })
    }

    /// A request on a fresh connection; the reply's payload.
    fn call(&self, address: SocketAddr, subject: &str, payload: &str) -> io::Result<String> {
        let mut connection = handshake(address)?;
        connection.queue(b"SUB _INBOX.call 1\r\n");
        connection.queue(format!("PUB {subject} _INBOX.call {}\r\n{payload}\r\n", payload.len()).as_bytes());
        let mut answer = None;
        connection.exchange(Duration::from_secs(5), |input| {
            let mut at = 0;
            while let Some((message, taken)) = next_message(&input[at..]) {
                at += taken;
                if let Message::Msg { payload, .. } = message {
                    answer = Some(String::from_utf8_lossy(payload).into_owned());
                    return Some(at);
                }
            }
            None
        })?;
        answer.ok_or_else(|| io::Error::other("no reply"))
    }
}

/// Connects and says CONNECT; waits for the PONG that answers a PING, so the server has
/// taken the CONNECT.
fn handshake(address: SocketAddr) -> io::Result<Connection> {
    let mut connection = Connection::open(address)?;
    connection.queue(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false,\"protocol\":1}\r\nPING\r\n");
    connection.exchange(Duration::from_secs(5), |input| find(input, b"PONG\r\n"))?;
    Ok(connection)
}

enum Message<'a> {
    Msg { subject: &'a str, payload: &'a [u8] },
    Ping,
    Error(String),
    Other,
}

/// The first whole protocol message in `input` and the bytes it spans.
fn next_message(input: &[u8]) -> Option<(Message<'_>, usize)> {
    let line_end = find(input, b"\r\n")?;
    let line = std::str::from_utf8(&input[..line_end - 2]).ok()?;
    let mut words = line.split(' ');
    match words.next()? {
        "MSG" => {
            let parts: Vec<&str> = words.collect();
            let subject = parts.first()?;
            let length: usize = parts.last()?.parse().ok()?;
            let end = line_end + length + 2;
            (input.len() >= end).then(|| (Message::Msg { subject, payload: &input[line_end..line_end + length] }, end))
        }
        "PING" => Some((Message::Ping, line_end)),
        "-ERR" => Some((Message::Error(line.to_string()), line_end)),
        _ => Some((Message::Other, line_end)),
    }
}

/// Publishes to the stream, each acknowledged on its own reply subject.
pub struct NatsPublishes {
    connection: Connection,
    next_id: u64,
    outstanding: usize,
    header: String,
}

impl NatsPublishes {
    pub fn connect(leader: SocketAddr) -> io::Result<NatsPublishes> {
        let mut connection = handshake(leader)?;
        connection.queue(b"SUB _INBOX.bench.* 1\r\n");
        Ok(NatsPublishes { connection, next_id: 0, outstanding: 0, header: String::with_capacity(64) })
    }
}

impl Requests for NatsPublishes {
    fn send(&mut self, payload: &[u8]) -> io::Result<u64> {
        use std::fmt::Write;
        let id = self.next_id;
        self.next_id += 1;
        self.header.clear();
        let _ = write!(self.header, "PUB bench _INBOX.bench.{id} {}\r\n", payload.len());
        self.connection.queue(self.header.as_bytes());
        self.connection.queue(payload);
        self.connection.queue(b"\r\n");
        self.outstanding += 1;
        Ok(id)
    }

    fn poll(&mut self, answered: &mut dyn FnMut(u64, Position)) -> io::Result<usize> {
        let mut work = self.connection.pump()?;
        let mut at = 0;
        let mut pong = false;
        while let Some((message, taken)) = next_message(&self.connection.input[at..]) {
            at += taken;
            match message {
                Message::Msg { subject, payload } => {
                    if find(payload, b"\"error\"").is_some() {
                        let text = String::from_utf8_lossy(payload).into_owned();
                        return Err(io::Error::other(format!("JetStream refused a publish: {text}")));
                    }
                    let id = subject.rsplit('.').next().and_then(|id| id.parse().ok());
                    if let Some(id) = id {
                        self.outstanding = self.outstanding.saturating_sub(1);
                        answered(id, Position::ZERO);
                        work += 1;
                    }
                }
                Message::Ping => pong = true,
                Message::Error(line) => return Err(io::Error::other(format!("nats-server said {line}"))),
                Message::Other => {}
            }
        }
        self.connection.input.drain(..at);
        if pong {
            self.connection.queue(b"PONG\r\n");
        }
        Ok(work)
    }

    fn outstanding(&self) -> usize {
        self.outstanding
    }

    fn block(&mut self, timeout: Duration) -> io::Result<bool> {
        super::wait_readable(std::iter::once(&self.connection), timeout)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_taken_whole_and_only_whole() {
        let input = b"MSG _INBOX.bench.7 1 4\r\nabcd\r\nPING\r\nMSG x 1 5\r\nab";
        let (message, taken) = next_message(input).unwrap();
        assert!(matches!(message, Message::Msg { subject: "_INBOX.bench.7", payload: b"abcd" }));
        let (message, second) = next_message(&input[taken..]).unwrap();
        assert!(matches!(message, Message::Ping));
        assert!(next_message(&input[taken + second..]).is_none(), "a message cut short waits for the rest");
    }
}
