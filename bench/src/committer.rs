//! How the SQLite committer spends a scenario. Every unique fire passes through that one
//! thread, so when it is seldom waiting for work, its time per fire sets the rate whatever
//! the rest of the server could do. Sampled from /proc while the load runs.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::server::read_stat;

/// The committer thread's name as /proc shows it (cut to 15 bytes).
const COMMITTER: &str = "sqlite-committe";
/// Often enough for a few thousand samples a scenario, seldom enough to cost little CPU.
const EVERY: Duration = Duration::from_millis(5);

/// What the samples saw the committer doing, and the CPU time it used.
#[derive(Default)]
pub struct CommitterTime {
    /// On a CPU, or ready and waiting for one (state R).
    running: u32,
    /// Waiting on the disk (state D).
    disk: u32,
    /// Waiting for work (S: asleep on its queue).
    idle: u32,
    cpu: Duration,
}

impl CommitterTime {
    /// One line for the scenario's output.
    pub fn describe(&self, accepted: u64) -> String {
        let samples = f64::from((self.running + self.disk + self.idle).max(1));
        let share = |n: u32| f64::from(n) * 100.0 / samples;
        format!(
            "the SQLite committer used {:.0} µs of CPU per accepted request; it was running or \
             ready to run {:.0}% of the time, waiting on the disk {:.0}%, waiting for work {:.0}%",
            self.cpu.as_secs_f64() * 1e6 / accepted.max(1) as f64,
            share(self.running),
            share(self.disk),
            share(self.idle),
        )
    }
}

/// Samples the committer of a server process until [`finish`](Self::finish).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<CommitterTime>,
}

impl Sampler {
    /// Starts sampling the committer of process `pid`; `None` when it has none (PostgreSQL).
    pub fn start(pid: u32) -> Option<Sampler> {
        let stat = committer_stat(pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut time = CommitterTime::default();
            let Ok((_, first)) = read_stat(&stat) else {
                return time;
            };
            while !stopping.load(Ordering::Relaxed) {
                let Ok((state, cpu)) = read_stat(&stat) else {
                    break;
                };
                match state {
                    'R' => time.running += 1,
                    'D' => time.disk += 1,
                    _ => time.idle += 1,
                }
                time.cpu = cpu.saturating_sub(first);
                std::thread::sleep(EVERY);
            }
            time
        });
        Some(Sampler { stop, thread })
    }

    pub fn finish(self) -> CommitterTime {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The stat file of the committer thread of `pid`.
fn committer_stat(pid: u32) -> Option<PathBuf> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .map(|task| task.path())
        .find(|task| {
            fs::read_to_string(task.join("comm")).is_ok_and(|name| name.trim_end() == COMMITTER)
        })
        .map(|task| task.join("stat"))
}
