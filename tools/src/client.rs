//! `ordo client`: one command and its reply, or one command a line from stdin, pipelined,
//! with retries across a failover (a command is never applied twice), each reply printed as
//! one JSON line in input order once its command is committed and applied:
//! `{"line": N, "ok": true|false, "position": P, "reply": …, "error": "…"}`.

use crate::Failure;
use crate::target::Target;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

fn line(number: usize, ok: bool, position: Option<u64>, reply: serde_json::Value, error: Option<String>) -> String {
    serde_json::json!({
        "line": number,
        "ok": ok,
        "position": position,
        "reply": reply,
        "error": error,
    })
    .to_string()
}

/// Sends `commands` (one per line, `words` each) and prints a JSON line for each; returns
/// whether every one succeeded.
pub fn run(target: &Target, app: &str, words: &[String], stdin: bool) -> Result<bool, Failure> {
    let app = crate::apps::app(app)?;
    let mut client = target.client()?;
    let lines: Vec<String> =
        if stdin { std::io::stdin().lock().lines().collect::<Result<_, _>>()? } else { vec![words.join(" ")] };
    // Parse every line first; the ones that parse are sent together (pipelined), and each
    // line is printed as soon as it and every line before it are answered.
    let mut parsed = Vec::with_capacity(lines.len());
    for text in &lines {
        let words: Vec<&str> = text.split_whitespace().collect();
        parsed.push(if words.is_empty() { None } else { Some(app.encode_words(&words)) });
    }
    let mut ticket_of_line: Vec<Option<u64>> = Vec::with_capacity(parsed.len());
    for parse in &parsed {
        ticket_of_line.push(parse.as_ref().and_then(|p| p.as_ref().ok()).map(|command| client.submit(command)));
    }
    let mut answered: std::collections::BTreeMap<u64, ordo_service::Reply> = Default::default();
    let mut next_line = 0;
    let mut all_ok = true;
    let mut progress_at = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    while next_line < parsed.len() {
        client.poll(client.now_ns())?;
        while let Some(reply) = client.take_reply() {
            answered.insert(reply.ticket, reply);
            progress_at = std::time::Instant::now();
        }
        let silent = progress_at.elapsed() > SILENCE_LIMIT;
        while next_line < parsed.len() {
            let number = next_line + 1;
            let printed = match (&parsed[next_line], ticket_of_line[next_line]) {
                (None, _) => None, // a blank line
                (Some(Err(error)), _) => Some(line(number, false, None, serde_json::Value::Null, Some(error.clone()))),
                (Some(Ok(_)), Some(ticket)) => match answered.remove(&ticket) {
                    Some(reply) => match reply.status.describe() {
                        // Not ok: no reply to show (the sentence says whether it was applied).
                        Some(said) => {
                            Some(line(number, false, Some(reply.position.0), serde_json::Value::Null, Some(said)))
                        }
                        None => {
                            let (rendered, error) = app.render_reply(&reply.reply);
                            Some(line(number, error.is_none(), Some(reply.position.0), rendered, error))
                        }
                    },
                    None if silent => {
                        let error = format!(
                            "no reply: the cluster at {} answered nothing for {} s; the command may or may not have been applied",
                            client.target(),
                            SILENCE_LIMIT.as_secs()
                        );
                        Some(line(number, false, None, serde_json::Value::Null, Some(error)))
                    }
                    None => break,
                },
                (Some(Ok(_)), None) => unreachable!("every parsed command was submitted"),
            };
            if let Some(printed) = printed {
                all_ok &= printed.contains("\"ok\":true");
                writeln!(out, "{printed}")?;
            }
            next_line += 1;
        }
        out.flush()?;
        if next_line < parsed.len() {
            client.wait_readable(Duration::from_millis(1))?;
        }
    }
    Ok(all_ok)
}

/// How long `ordo client` waits without any reply before it gives up on the rest.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// Where one member stands after `ordo snapshot take`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Snapshotted {
    /// It holds a snapshot at or after the position.
    Yes,
    /// Its process is not running: it snapshots at the position when it starts and applies
    /// the request entry.
    NotRunning,
    /// It runs but had not snapshotted there within the time allowed.
    Behind,
}

/// `ordo snapshot take`: asks the running cluster to snapshot, once the leader has
/// committed the request (so every member will snapshot at that position), then reports
/// each member: snapshotted, not running (it snapshots when it starts), or behind. Fails if
/// the request is not committed within 30 s or a running member has not snapshotted within
/// 30 s.
pub fn snapshot_take(dir: &Path, json: bool) -> Result<(), Failure> {
    let node = crate::target::cluster_config(dir)?;
    let mut client = Target::of_node(&node, None)?.client()?;
    let position = client.request_snapshot(Duration::from_secs(30)).map_err(|error| {
        Failure(format!("{error}; a snapshot request commits only where a majority of members runs"))
    })?;
    if !json {
        println!("snapshot requested at {position} (committed)");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut report = Vec::new();
    for member in &node.members {
        let data_dir = crate::inspect::data_dir(&dir.join(format!("node-{}", member.id.0)))?;
        let state = loop {
            let counters = ordo_log::counters::CountersReader::open(&data_dir.join("counters")).ok();
            let running = counters.as_ref().is_some_and(|c| Path::new(&format!("/proc/{}", c.pid())).exists());
            let at = counters.as_ref().and_then(|c| c.value("snapshot_position"));
            match (running, at) {
                (_, Some(at)) if at >= position.0 => break Snapshotted::Yes,
                (false, _) => break Snapshotted::NotRunning,
                _ if std::time::Instant::now() > deadline => break Snapshotted::Behind,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        if !json {
            let said = match state {
                Snapshotted::Yes => "has snapshotted",
                Snapshotted::NotRunning => "is not running: it snapshots when it starts and applies the request",
                Snapshotted::Behind => "runs but has not snapshotted within 30 s",
            };
            println!("member {} {said} at {position}", member.id.0);
        }
        report.push((member.id.0, state));
    }
    if json {
        let members: Vec<serde_json::Value> = report
            .iter()
            .map(|(id, state)| {
                let state = match state {
                    Snapshotted::Yes => "snapshotted",
                    Snapshotted::NotRunning => "not_running",
                    Snapshotted::Behind => "behind",
                };
                serde_json::json!({"id": id, "state": state})
            })
            .collect();
        println!("{}", serde_json::json!({"position": position.0, "members": members}));
    }
    if let Some((id, _)) = report.iter().find(|(_, state)| *state == Snapshotted::Behind) {
        return Err(Failure(format!("member {id} runs but has not snapshotted at {position} within 30 s")));
    }
    Ok(())
}
