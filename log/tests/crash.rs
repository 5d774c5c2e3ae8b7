//! SIGKILL a real process that appends with the `fsync` policy, and check that every
//! position it reported durable is present and intact after reopening.

mod common;

use common::*;
use ordo_core::{EntryKind, Position};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the child (SIGKILL, by pid) when dropped, so a failing test leaves no process.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_position_reported_durable_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut durable_count = 0u64;
    for (round, syncs_before_kill) in [37usize, 211, 5, 120].into_iter().enumerate() {
        let mut child = KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_ordo-log-crash-writer"))
                .arg(dir.path())
                .arg(SEGMENT_BYTES.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the writer"),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if lines_tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut reported = (Position::ZERO, 0u64);
        for _ in 0..syncs_before_kill {
            let line = lines.recv_timeout(Duration::from_secs(30)).expect("the writer reports within 30 s");
            let mut words = line.split_whitespace().skip(1).map(|w| w.parse::<u64>().unwrap());
            let (position, count) = (Position(words.next().unwrap()), words.next().unwrap());
            assert!(position >= reported.0 && count >= reported.1, "durable never goes backwards");
            reported = (position, count);
        }
        drop(child); // SIGKILL, mid-append as likely as not

        let (log, recovery) = open(dir.path());
        assert!(
            log.position_append() >= reported.0,
            "round {round}: durable {} lost, log ends at {}",
            reported.0,
            log.position_append()
        );
        let commands = commands(&log); // checks every payload
        assert!(
            commands.len() as u64 >= reported.1,
            "round {round}: {} commands, {} reported durable",
            commands.len(),
            reported.1
        );
        assert!(commands.len() as u64 >= durable_count, "earlier rounds' commands are all still there");
        durable_count = reported.1;
        let paddings = log.entries(Position::ZERO).filter(|e| e.as_ref().unwrap().kind() == EntryKind::Padding).count();
        eprintln!(
            "round {round}: killed after {syncs_before_kill} syncs; durable {} ({} commands), recovered {} commands, {paddings} segment roll-overs, torn tail {:?}",
            reported.0,
            reported.1,
            commands.len(),
            recovery.torn_tail.map(|t| t.position)
        );
        log.close().unwrap();
    }
}
