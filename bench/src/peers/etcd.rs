//! etcd: three members on loopback (`etcd` from Debian's `etcd-server`; it always fsyncs its
//! WAL before acknowledging, so it is compared with ordo's `fsync`), and puts through its
//! JSON gateway (`POST /v3/kv/put`) over a pool of keep-alive HTTP/1.1 connections to the
//! leader. etcd answers a connection's requests in order, one at a time, so the pool is what
//! lets requests overlap: each goes to the connection with the fewest outstanding.

use super::{Connection, Processes, find, retry};
use crate::open_loop::Requests;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ordo_core::Position;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub struct EtcdCluster {
    _processes: Processes,
    pub dir: PathBuf,
    pub clients: Vec<SocketAddr>,
}

impl EtcdCluster {
    /// Three members with client ports `base+1..=base+3` and peer ports `base+11..=base+13`.
    pub fn start(dir: PathBuf, base_port: u16) -> io::Result<EtcdCluster> {
        let peer = |i: u16| format!("http://127.0.0.1:{}", base_port + 10 + i);
        let client = |i: u16| format!("http://127.0.0.1:{}", base_port + i);
        let initial: Vec<String> = (1..=3).map(|i| format!("e{i}={}", peer(i))).collect();
        let mut processes = Processes::default();
        for i in 1..=3u16 {
            let args = [
                "--name".to_string(),
                format!("e{i}"),
                "--data-dir".into(),
                dir.join(format!("e{i}")).display().to_string(),
                "--listen-peer-urls".into(),
                peer(i),
                "--initial-advertise-peer-urls".into(),
                peer(i),
                "--listen-client-urls".into(),
                client(i),
                "--advertise-client-urls".into(),
                client(i),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
                "--log-level".into(),
                "error".into(),
            ];
            processes.spawn("etcd", &args, &dir.join(format!("e{i}.log")))?;
        }
        let clients: Vec<SocketAddr> = (1..=3).map(|i| ([127, 0, 0, 1], base_port + i).into()).collect();
        let cluster = EtcdCluster { _processes: processes, dir, clients };
        retry(Duration::from_secs(30), || cluster.leader().map(|_| ()))?;
        Ok(cluster)
    }

    /// The client address of the current leader.
    pub fn leader(&self) -> io::Result<SocketAddr> {
        for &address in &self.clients {
            let body = call(address, "/v3/maintenance/status", "{}")?;
            let field = |name: &str| {
                let start = find(body.as_bytes(), format!("\"{name}\":\"").as_bytes())?;
                body[start..].split('"').next().map(str::to_string)
            };
            if field("leader").is_some() && field("leader") == field("member_id") {
                return Ok(address);
            }
        }
        Err(io::Error::other("the etcd cluster has no leader"))
    }
}

/// One request and its response body on a fresh connection.
fn call(address: SocketAddr, path: &str, body: &str) -> io::Result<String> {
    let mut connection = Connection::open(address)?;
    connection.queue(request(path, body).as_bytes());
    let mut answer = None;
    connection.exchange(Duration::from_secs(5), |input| {
        let (length, taken, _) = response(input)?;
        answer = Some(String::from_utf8_lossy(&input[taken - length..taken]).into_owned());
        Some(taken)
    })?;
    answer.ok_or_else(|| io::Error::other("no answer"))
}

fn request(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A whole response at the start of `input`: (body length, bytes it spans, status code).
fn response(input: &[u8]) -> Option<(usize, usize, u16)> {
    let head_end = find(input, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&input[..head_end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (input.len() >= head_end + length).then_some((length, head_end + length, status))
}

/// Puts (key `k{id mod 10 000}`, the request's bytes as value) over a connection pool.
pub struct EtcdPuts {
    connections: Vec<(Connection, VecDeque<u64>)>,
    next_id: u64,
    outstanding: usize,
}

impl EtcdPuts {
    pub fn connect(leader: SocketAddr, connections: usize) -> io::Result<EtcdPuts> {
        let connections =
            (0..connections).map(|_| Ok((Connection::open(leader)?, VecDeque::new()))).collect::<io::Result<_>>()?;
        Ok(EtcdPuts { connections, next_id: 0, outstanding: 0 })
    }
}

impl Requests for EtcdPuts {
    fn send(&mut self, value: &[u8]) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let key = STANDARD.encode(format!("k{}", id % 10_000));
        let body = format!("{{\"key\":\"{key}\",\"value\":\"{}\"}}", STANDARD.encode(value));
        let (connection, ids) = self.connections.iter_mut().min_by_key(|(_, ids)| ids.len()).expect("a pool");
        connection.queue(request("/v3/kv/put", &body).as_bytes());
        ids.push_back(id);
        self.outstanding += 1;
        Ok(id)
    }

    fn poll(&mut self, answered: &mut dyn FnMut(u64, Position)) -> io::Result<usize> {
        let mut work = 0;
        for (connection, ids) in &mut self.connections {
            work += connection.pump()?;
            while let Some((_, taken, status)) = response(&connection.input) {
                if status != 200 {
                    let text = String::from_utf8_lossy(&connection.input[..taken]).into_owned();
                    return Err(io::Error::other(format!("etcd refused a put: {text}")));
                }
                connection.input.drain(..taken);
                let id = ids.pop_front().ok_or_else(|| io::Error::other("etcd answered a request not sent"))?;
                self.outstanding -= 1;
                answered(id, Position::ZERO);
                work += 1;
            }
        }
        Ok(work)
    }

    fn outstanding(&self) -> usize {
        self.outstanding
    }

    fn block(&mut self, timeout: Duration) -> io::Result<bool> {
        super::wait_readable(self.connections.iter().map(|(c, _)| c), timeout)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_whole_only_with_its_body() {
        let text = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 500 No\r\ncontent-length: 3\r\n\r\nab";
        let (length, taken, status) = response(text).unwrap();
        assert_eq!((length, status), (2, 200));
        assert_eq!(response(&text[taken..]), None, "the second body is one byte short");
        assert_eq!(response(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
