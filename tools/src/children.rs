//! Member processes run by `ordo demo` and `ordo cluster`: started as `ordo node` children,
//! watched through their counters files, stopped with SIGTERM (then SIGKILL after a bounded
//! wait), killed with SIGKILL to show a failover. Every child is killed when the set is
//! dropped, so an error or a panic never leaves a member running.

use crate::Failure;
use ordo_log::counters::CountersReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Members {
    exe: PathBuf,
    configs: Vec<PathBuf>,
    data_dirs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
    log_dir: PathBuf,
    /// Per member, the words to run `ordo node` under (`ip netns exec NAME`), or none.
    wrappers: Vec<Vec<String>>,
}

impl Members {
    /// Starts one `ordo node` child per config; each child's stderr goes to `log_dir`.
    pub fn start(configs: &[PathBuf], data_dirs: &[PathBuf], log_dir: &Path) -> Result<Members, Failure> {
        Members::start_wrapped(configs, data_dirs, log_dir, &vec![Vec::new(); configs.len()])
    }

    /// Like `start`, each member run under its wrapper's words (a network namespace).
    pub fn start_wrapped(
        configs: &[PathBuf],
        data_dirs: &[PathBuf],
        log_dir: &Path,
        wrappers: &[Vec<String>],
    ) -> Result<Members, Failure> {
        debug_assert_eq!(configs.len(), wrappers.len());
        let exe = std::env::current_exe().map_err(|e| Failure(format!("cannot find the ordo executable: {e}")))?;
        let mut members = Members {
            exe,
            configs: configs.to_vec(),
            data_dirs: data_dirs.to_vec(),
            children: configs.iter().map(|_| None).collect(),
            log_dir: log_dir.to_path_buf(),
            wrappers: wrappers.to_vec(),
        };
        for index in 0..configs.len() {
            members.spawn(index)?;
        }
        Ok(members)
    }

    pub fn len(&self) -> usize {
        self.children.len()
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// (Re)starts member `index`.
    pub fn spawn(&mut self, index: usize) -> Result<(), Failure> {
        let log = self.log_dir.join(format!("node-{}.log", index + 1));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| Failure(format!("cannot open {}: {e}", log.display())))?;
        let mut command = match self.wrappers[index].split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.exe);
                command
            }
            None => Command::new(&self.exe),
        };
        let child = command
            .arg("node")
            .arg("--config")
            .arg(&self.configs[index])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Failure(format!("cannot start member {}: {e}", index + 1)))?;
        self.children[index] = Some(child);
        Ok(())
    }

    /// Whether member `index` has a process (started and not killed or exited).
    pub fn is_running(&self, index: usize) -> bool {
        self.children[index].is_some()
    }

    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children[index].as_ref().map(|c| c.id())
    }

    /// A child that exited on its own: its index and status.
    pub fn exited(&mut self) -> Option<(usize, std::process::ExitStatus)> {
        for (index, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                *child = None;
                return Some((index, status));
            }
        }
        None
    }

    /// The live counters of member `index`, if its running process wrote them.
    pub fn counters(&self, index: usize) -> Option<CountersReader> {
        let pid = self.pid(index)?;
        let counters = CountersReader::open(&self.data_dirs[index].join("counters")).ok()?;
        (counters.pid() == pid as u64).then_some(counters)
    }

    /// The member that leads now, by its counters.
    /// Member `index`'s role from its counters (0 follower, 1 candidate, 2 leader), if it runs.
    pub fn role(&self, index: usize) -> Option<u64> {
        self.counters(index).and_then(|c| c.value("role"))
    }

    pub fn leader(&self) -> Option<usize> {
        (0..self.len()).find(|&i| self.role(i) == Some(2))
    }

    /// Waits up to `limit` for a leader.
    pub fn wait_for_leader(&mut self, limit: Duration) -> Result<usize, Failure> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if let Some((index, status)) = self.exited() {
                return Err(self.died(index, status));
            }
            if Instant::now() > deadline {
                return Err(Failure(format!(
                    "no leader within {limit:?}; see the members' logs in {}",
                    self.log_dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The failure for a member that exited on its own.
    pub fn died(&self, index: usize, status: std::process::ExitStatus) -> Failure {
        let log = self.log_dir.join(format!("node-{}.log", index + 1));
        let last = std::fs::read_to_string(&log).unwrap_or_default();
        let last = last.lines().last().unwrap_or("").to_string();
        Failure(format!("member {} exited ({status}): {last} (its log: {})", index + 1, log.display()))
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every member applied past `last` (within `limit`), then stops them all
    /// cleanly: what a run does before its folders are checked offline.
    pub fn settle(&mut self, last: ordo_core::Position, limit: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + limit;
        while (0..self.len()).any(|i| self.counters(i).and_then(|c| c.value("applied_position")) <= Some(last.0)) {
            if Instant::now() > deadline {
                return Err(Failure(format!("the members did not all apply the last command within {limit:?}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.stop_all(Duration::from_secs(20)) {
            return Err(Failure("a member did not stop cleanly on SIGTERM".into()));
        }
        Ok(())
    }

    /// SIGTERM to every member, then SIGKILL to any still running after `limit`. Returns
    /// whether all stopped cleanly.
    pub fn stop_all(&mut self, limit: Duration) -> bool {
        for child in self.children.iter().flatten() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + limit;
        let mut clean = true;
        for slot in &mut self.children {
            let Some(child) = slot.as_mut() else { continue };
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        clean &= status.success();
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        clean = false;
                        break;
                    }
                }
            }
            *slot = None;
        }
        clean
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
    }
}
