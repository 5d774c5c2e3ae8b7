//! What the `ordo` program's tests share: running the binary with a time limit, member
//! processes killed by pid however a test ends, JSON lines.

#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `ordo ARGS`; past `limit` it is stopped (SIGTERM, then SIGKILL) and the test fails.
/// Its output is read as it comes (a full pipe would stall it).
pub fn ordo(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ordo starts");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // SIGTERM lets the demo stop its members; then make sure.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            panic!("ordo {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: stdout.join().expect("reader"), stderr: stderr.join().expect("reader") }
}

/// Member processes started by a test, killed (SIGKILL, by pid) when it ends however it ends.
pub struct Nodes(pub Vec<std::process::Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `ordo ARGS` with `input` on its stdin.
pub fn ordo_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Every stdout line as JSON, the command having succeeded.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}"))).collect()
}

/// Starts `ordo node` for each config.
pub fn start_nodes(configs: &[std::path::PathBuf]) -> Nodes {
    Nodes(configs.iter().map(|config| start_node(config)).collect())
}

/// Starts `ordo node --config CONFIG`, its output discarded.
pub fn start_node(config: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["node", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A base port for test `k` (0..6) of this process: a block of 40 ports between 20 000 and
/// 32 000, clear of `ordo`'s own random choices (below 20 000) and of ephemeral ports.
pub fn base_port(k: u16) -> u16 {
    assert!(k < 6);
    20_000 + ((std::process::id() % 50) as u16 * 6 + k) * 40
}

/// `ordo init` of a 3-member cluster of `app` in `cluster` from `base_port`; the members'
/// `ordo.toml` paths.
pub fn init(cluster: &std::path::Path, app: &str, base_port: u16) -> Vec<std::path::PathBuf> {
    let args = ["init", "--dir", cluster.to_str().unwrap(), "--app", app, "--base-port", &base_port.to_string()];
    let init = ordo(&args, Duration::from_secs(20));
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    (1..=3).map(|id| cluster.join(format!("node-{id}/ordo.toml"))).collect()
}
