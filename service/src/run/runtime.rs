//! The runtime: agents and the threads that run them (Aeron's agent runner).
//!
//! An [`Agent`] is a duty cycle: `do_work` does what is ready and says how much. A runner
//! owns a thread, calls the agent in a loop with the time, idles by its [`IdleStrategy`]
//! when a cycle found nothing, optionally pinned to one core, until asked to stop; then it
//! hands the agent back. Stopping is an atomic flag, never a lock.

use ordo_core::idle::{IdleStrategy, Idler};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// A duty cycle.
pub trait Agent: Send + 'static {
    type Error: std::fmt::Display + Send + 'static;
    /// Does what is ready at `now_ns` (nanoseconds on the runner's clock); returns the work
    /// done, 0 when there was none (the runner then idles).
    fn do_work(&mut self, now_ns: u64) -> Result<usize, Self::Error>;
    /// The thread's name.
    fn role_name(&self) -> String;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RunnerConfig {
    pub idle: IdleStrategy,
    /// Pin the thread to this core (`None`: let the scheduler place it).
    pub core: Option<usize>,
}

/// Why a runner's loop ended.
#[derive(Debug)]
pub enum Stopped<A: Agent> {
    /// Asked to stop: here is the agent, as it was.
    Asked(A),
    /// The agent failed; its error, and the agent.
    Failed(A, A::Error),
}

/// A running agent on its own thread.
pub struct Runner<A: Agent> {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Stopped<A>>>,
}

impl<A: Agent> Runner<A> {
    /// Starts `agent` on a new thread; `started` is the clock's zero (shared by the agents
    /// of a process, so their times agree).
    pub fn spawn(mut agent: A, config: RunnerConfig, started: Instant) -> std::io::Result<Runner<A>> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name(agent.role_name()).spawn(move || {
            if let Some(core) = config.core
                && let Err(error) = pin_to_core(core)
            {
                tracing::warn!("could not pin {} to core {core}: {error}; running unpinned", agent.role_name());
            }
            prepare_thread(config.idle);
            let mut idler = Idler::new(config.idle);
            while !flag.load(Ordering::Acquire) {
                let now_ns = started.elapsed().as_nanos() as u64;
                match agent.do_work(now_ns) {
                    Ok(work) => idler.idle(work),
                    Err(error) => return Stopped::Failed(agent, error),
                }
            }
            Stopped::Asked(agent)
        })?;
        Ok(Runner { stop, handle: Some(handle) })
    }

    /// Whether the loop has ended (asked to, or the agent failed).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Asks the loop to stop after its current cycle and waits for it; returns the agent.
    pub fn stop(mut self) -> Stopped<A> {
        self.stop.store(true, Ordering::Release);
        let handle = self.handle.take().expect("stopped once");
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl<A: Agent> Drop for Runner<A> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.stop.store(true, Ordering::Release);
            let _ = handle.join();
        }
    }
}

/// Readies the calling thread to run a duty-cycle loop with `idle`: a sleeping strategy
/// gets a 1 µs timer slack instead of Linux's 50 µs default, so a 2 µs back-off sleep does
/// not oversleep by 50 µs (measured: it doubled a 3-member commit's median at low rates).
pub fn prepare_thread(idle: ordo_core::IdleStrategy) {
    if matches!(idle, ordo_core::IdleStrategy::Backoff | ordo_core::IdleStrategy::Sleep) {
        let slack_ns = std::num::NonZeroU64::new(1_000);
        if let Err(error) = rustix::thread::set_current_timer_slack(slack_ns) {
            tracing::debug!("could not lower the timer slack: {error}");
        }
    }
}

/// Pins the calling thread to `core`.
pub fn pin_to_core(core: usize) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(core);
    rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

impl<M: ordo_core::machine::StateMachine> Agent for crate::run::member::Member<M> {
    type Error = crate::run::member::MemberError;
    fn do_work(&mut self, now_ns: u64) -> Result<usize, Self::Error> {
        crate::run::member::Member::do_work(self, now_ns)
    }
    fn role_name(&self) -> String {
        format!("ordo-member-{}", self.id().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count {
        cycles: u64,
        fail_at: Option<u64>,
    }

    impl Agent for Count {
        type Error = String;
        fn do_work(&mut self, _now_ns: u64) -> Result<usize, String> {
            self.cycles += 1;
            if Some(self.cycles) == self.fail_at {
                return Err(format!("failed at cycle {}", self.cycles));
            }
            Ok((self.cycles % 2) as usize)
        }
        fn role_name(&self) -> String {
            "count".into()
        }
    }

    #[test]
    fn a_runner_returns_its_agent_when_stopped_or_failed() {
        let config = RunnerConfig { idle: IdleStrategy::Backoff, core: Some(0) };
        let runner = Runner::spawn(Count { cycles: 0, fail_at: None }, config, Instant::now()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let Stopped::Asked(agent) = runner.stop() else { panic!("asked to stop") };
        assert!(agent.cycles > 10);
        let runner = Runner::spawn(Count { cycles: 0, fail_at: Some(5) }, config, Instant::now()).unwrap();
        while !runner.is_finished() {
            std::thread::yield_now();
        }
        let Stopped::Failed(agent, error) = runner.stop() else { panic!("it failed") };
        assert_eq!((agent.cycles, error.as_str()), (5, "failed at cycle 5"));
    }
}
