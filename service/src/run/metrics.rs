//! The Prometheus text endpoint (`metrics_addr` in `ordo.toml`, off by default): a thread of
//! its own that answers `GET /metrics` with the member's counters, read from the same mapped
//! counters file `ordo stat` reads. It never touches the member's threads: a scrape costs
//! the member nothing but the plain stores it makes anyway.
//!
//! HTTP/1.0-style, one request a connection, with short timeouts: enough for Prometheus and
//! `curl`, and too small a job for an HTTP crate (ARCHITECTURE.md).

use crate::run::counters::Counter;
use ordo_log::counters::CountersReader;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The endpoint's thread; stopped (and joined) when dropped.
pub struct MetricsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `address` and serves the counters file at `counters_path`, every series
    /// labelled `member="member_id"`.
    pub fn start(address: SocketAddr, counters_path: PathBuf, member_id: u16) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name(format!("ordo-metrics-{member_id}")).spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(error) = answer(stream, &counters_path, member_id) {
                            tracing::debug!("metrics request on {address} failed: {error}");
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(error) => {
                        tracing::warn!("metrics endpoint {address}: {error}");
                        std::thread::sleep(Duration::from_millis(100))
                    }
                }
            }
        })?;
        Ok(MetricsServer { address, stop, thread: Some(thread) })
    }

    /// Where it listens (the port chosen, if 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, counters_path: &std::path::Path, member_id: u16) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 4096];
    let mut length = 0;
    while length < request.len() && !request[..length].windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut request[length..])?;
        if read == 0 {
            break;
        }
        length += read;
    }
    let head = String::from_utf8_lossy(&request[..length]);
    let mut words = head.split_whitespace();
    let (status, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics" | "/")) => match CountersReader::open(counters_path) {
            Ok(counters) => ("200 OK", render(&counters, member_id)),
            Err(error) => ("503 Service Unavailable", format!("the counters cannot be read: {error}\n")),
        },
        (Some("GET"), Some(_)) => ("404 Not Found", "the metrics are at /metrics\n".to_string()),
        _ => ("400 Bad Request", "send GET /metrics\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The counters in Prometheus' text format: `ordo_NAME{member="I"} VALUE`, with `# TYPE`
/// (`counter` for running totals, `gauge` for the rest).
pub fn render(counters: &CountersReader, member_id: u16) -> String {
    let mut text = String::with_capacity(2048);
    for (name, value) in counters.all() {
        let total = Counter::ALL.iter().find(|c| c.name() == name).is_some_and(|c| c.is_total());
        let (metric, kind) =
            if total { (format!("ordo_{name}_total"), "counter") } else { (format!("ordo_{name}"), "gauge") };
        let metric = metric.replace("_total_total", "_total");
        text.push_str(&format!("# TYPE {metric} {kind}\n{metric}{{member=\"{member_id}\"}} {value}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::counters::Counters;

    fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn a_scrape_shows_the_live_counters_in_prometheus_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        let counters = Counters::create(&path).unwrap();
        counters.set(Counter::CommitPosition, 4096);
        counters.set(Counter::FramesSent, 7);
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), path, 2).unwrap();
        let response = get(server.address(), "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.contains("# TYPE ordo_commit_position gauge\nordo_commit_position{member=\"2\"} 4096\n"));
        assert!(response.contains("# TYPE ordo_frames_sent_total counter\nordo_frames_sent_total{member=\"2\"} 7\n"));
        assert!(response.contains("ordo_apply_ns_total{member=\"2\"}"), "no doubled _total");
        counters.set(Counter::CommitPosition, 8192);
        assert!(get(server.address(), "/metrics").contains("ordo_commit_position{member=\"2\"} 8192"), "live");
        assert!(get(server.address(), "/nope").starts_with("HTTP/1.1 404"));
        drop(server);
    }
}
