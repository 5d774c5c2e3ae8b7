//! `ordo client`: one command and its reply, or one command a line from stdin, pipelined,
//! with retries across a failover (a command is never applied twice), each reply printed as
//! one JSON line in input order once its command is committed and applied:
//! `{"line": N, "ok": true|false, "position": P, "reply": …, "error": "…"}`.

use crate::Failure;
use crate::target::Target;
use ordo_service::client::{Client, ClientConfig};
use std::io::BufRead;
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
    // Parse every line first; the ones that parse are sent together.
    let mut parsed = Vec::with_capacity(lines.len());
    for text in &lines {
        let words: Vec<&str> = text.split_whitespace().collect();
        parsed.push(if words.is_empty() { None } else { Some(crate::apps::encode_words(app, &words)) });
    }
    let commands: Vec<&[u8]> = parsed.iter().filter_map(|p| p.as_ref()?.as_ref().ok().map(Vec::as_slice)).collect();
    let timeout = Duration::from_secs(30 + commands.len() as u64 / 100);
    let mut replies = client.call_all(commands, timeout)?.into_iter();
    let mut all_ok = true;
    for (index, parse) in parsed.into_iter().enumerate() {
        let number = index + 1;
        let printed = match parse {
            None => continue, // a blank line
            Some(Err(error)) => line(number, false, None, serde_json::Value::Null, Some(error)),
            Some(Ok(_)) => {
                let reply = replies.next().expect("a reply for each command sent");
                let (rendered, error) = crate::apps::render_reply(app, &reply.reply);
                let ok = reply.status.is_ok() && error.is_none();
                let error = error.or_else(|| (!reply.status.is_ok()).then(|| format!("{:?}", reply.status)));
                line(number, ok, Some(reply.position.0), rendered, error)
            }
        };
        all_ok &= printed.contains("\"ok\":true");
        println!("{printed}");
    }
    Ok(all_ok)
}

/// `ordo snapshot take`: asks the running cluster to snapshot and waits until every member
/// has, at the same position; prints it.
pub fn snapshot_take(dir: &Path) -> Result<(), Failure> {
    let node = crate::target::cluster_config(dir)?;
    let key = ordo_service::node::load_key(&node.key_file)?;
    let addresses = node.members.iter().map(|m| m.address).collect();
    let mut client = Client::new(ClientConfig::new(addresses, node.cluster_id(), key))?;
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
