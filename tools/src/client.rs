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
    crate::apps::check(app)?;
    let mut client = target.client()?;
    let lines: Vec<String> =
        if stdin { std::io::stdin().lock().lines().collect::<Result<_, _>>()? } else { vec![words.join(" ")] };
    // Parse every line first; the ones that parse are sent together (pipelined), and each
    // line is printed as soon as it and every line before it are answered.
    let mut parsed = Vec::with_capacity(lines.len());
    for text in &lines {
        let words: Vec<&str> = text.split_whitespace().collect();
        parsed.push(if words.is_empty() { None } else { Some(crate::apps::encode_words(app, &words)) });
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
                            let (rendered, error) = crate::apps::render_reply(app, &reply.reply);
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

/// `ordo snapshot take`: asks the running cluster to snapshot and waits until every member
/// has, at the same position; prints it.
pub fn snapshot_take(dir: &Path) -> Result<(), Failure> {
    let node = crate::target::cluster_config(dir)?;
    let mut client = Target::of_node(&node, None)?.client()?;
    let position = client.request_snapshot(Duration::from_secs(30))?;
    println!("snapshot requested at {position}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for member in &node.members {
        let member_dir = dir.join(format!("node-{}", member.id.0));
        let data_dir = crate::inspect::data_dir(&member_dir)?;
        loop {
            let taken = ordo_log::counters::CountersReader::open(&data_dir.join("counters"))
                .ok()
                .and_then(|c| c.value("snapshot_position"))
                .is_some_and(|at| at >= position.0);
            if taken {
                println!("member {} has snapshotted at {position}", member.id.0);
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(Failure(format!(
                    "member {} has not snapshotted at {position} within 30 s; is it running?",
                    member.id.0
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}
