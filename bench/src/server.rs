//! The firehook under test: a separate process of the release binary, on a fresh SQLite
//! file or PostgreSQL database, watched through /proc.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::Conn;
use crate::workload::Prepared;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server keeps its data.
#[derive(Clone)]
pub enum Store {
    Sqlite,
    /// A fresh database is created (and dropped) through `psql` at this server URL
    /// (`postgres://USER@HOST:PORT`).
    Postgres {
        server_url: String,
    },
}

/// The server's resident memory, in bytes.
#[derive(Clone, Copy)]
pub struct Memory {
    pub peak: u64,
    pub current: u64,
}

/// What the server process has used since it started: CPU time (user and system, all
/// threads) and bytes it sent to storage (`write_bytes` of /proc/<pid>/io: the WAL, the
/// checkpoints, the log). A PostgreSQL server's own processes are not counted.
#[derive(Clone, Copy)]
pub struct Usage {
    pub cpu: Duration,
    pub written: u64,
}

impl Usage {
    /// CPU time per request, in microseconds, over `requests`.
    pub fn cpu_us_per(&self, requests: u64) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
    }

    /// Bytes written per request, in KB, over `requests`.
    pub fn kb_written_per(&self, requests: u64) -> f64 {
        self.written as f64 / 1024.0 / requests.max(1) as f64
    }
}

impl std::ops::Sub for Usage {
    type Output = Usage;

    fn sub(self, earlier: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            written: self.written.saturating_sub(earlier.written),
        }
    }
}

pub struct Firehook {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
    postgres: Option<(String, String)>,
}

/// Gives each server of this bench process its own directory and database name.
fn next_name() -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    format!(
        "firehook_bench_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A per-minute rate allowance far above anything the generator sends.
const UNLIMITED: &str = "100000000";

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn psql(server_url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([
            &format!("{server_url}/postgres"),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .output()
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Firehook {
    /// Starts `bin` on a fresh store with `api_key` as the bootstrap key and `env` added to
    /// its environment, and waits until it answers `/healthz`.
    pub async fn start(
        bin: &Path,
        store: &Store,
        api_key: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Firehook> {
        let name = next_name();
        let dir = std::env::temp_dir().join(&name);
        fs::create_dir_all(&dir)?;
        let (url, postgres) = match store {
            Store::Sqlite => (
                format!("sqlite://{}", dir.join("firehook.db").display()),
                None,
            ),
            Store::Postgres { server_url } => {
                psql(server_url, &format!("CREATE DATABASE {name}"))?;
                (
                    format!("{server_url}/{name}"),
                    Some((server_url.clone(), name)),
                )
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = File::create(dir.join("server.log"))?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .env("FIREHOOK__SERVER__BIND", addr.to_string())
            .env("FIREHOOK__DATABASE__URL", url)
            .env("FIREHOOK__BOOTSTRAP__API_KEY", api_key)
            // PostgreSQL needs a configured key for the signing secrets; any will do here.
            .env(
                "FIREHOOK__SECURITY__ENCRYPTION_KEY",
                "YmVuY2ggYmVuY2ggYmVuY2ggYmVuY2ggYmVuY2ggYmU=",
            )
            // The limiters still run on every request, but never refuse the generator's
            // load: the bench measures throughput, not the default allowances.
            .env("FIREHOOK__RATE_LIMIT__PER_KEY_PER_MINUTE", UNLIMITED)
            .env("FIREHOOK__RATE_LIMIT__FIRE_PER_KEY_PER_MINUTE", UNLIMITED)
            // Scenario 5 measures the 401 path, not the 429 that follows a connection's
            // first 60 bad signatures in a minute.
            .env(
                "FIREHOOK__RATE_LIMIT__FAILED_VERIFICATIONS_PER_CONNECTION_PER_MINUTE",
                UNLIMITED,
            )
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it makes the server get SIGTERM should the
        // bench die without stopping it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            })
        };
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Firehook {
            child,
            addr,
            dir,
            postgres,
        };
        if let Err(e) = server.wait_healthy().await {
            let log = server.log_tail();
            server.stop().await?;
            bail!("{e:#}\nserver log:\n{log}");
        }
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let healthz = Prepared::get("/healthz");
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("firehook exited during start-up ({status})");
            }
            if let Ok(mut conn) = Conn::open(self.addr).await {
                if matches!(conn.send(&healthz).await, Ok((s, _)) if s.is_success()) {
                    return Ok(());
                }
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("firehook did not answer /healthz within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// VmHWM (peak) and VmRSS (current) from /proc/<pid>/status.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name}"))?;
            let kb: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kb * 1024)
        };
        Ok(Memory {
            peak: field("VmHWM:")?,
            current: field("VmRSS:")?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time and bytes written so far, from /proc/<pid>/stat and /proc/<pid>/io.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        let pid = self.child.id();
        let (_, cpu) = read_stat(Path::new(&format!("/proc/{pid}/stat")))?;
        let io = fs::read_to_string(format!("/proc/{pid}/io"))?;
        let written = io
            .lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .context("no write_bytes in io")?
            .trim()
            .parse()?;
        Ok(Usage { cpu, written })
    }

    /// SIGTERM, then SIGKILL if it has not exited in time; then drops its data.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let asked = Instant::now();
        while self.child.try_wait()?.is_none() {
            if asked.elapsed() > STOP_TIMEOUT {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some((server_url, name)) = &self.postgres {
            psql(
                server_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )?;
        }
        fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

/// The state letter (R, S, D, ...) and the CPU time so far (user and system) of a process
/// or thread, from its `stat` file (proc(5)).
pub fn read_stat(path: &Path) -> anyhow::Result<(char, Duration)> {
    let stat = fs::read_to_string(path)?;
    // The command name may hold spaces; the fields after it start at stat(5)'s third.
    let (_, fields) = stat.rsplit_once(')').context("no command name in stat")?;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).context("stat is short");
    let state = field(3)?.chars().next().context("no state in stat")?;
    // utime and stime, in clock ticks.
    let ticks: u64 = field(14)?.parse::<u64>()? + field(15)?.parse::<u64>()?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((state, Duration::from_secs_f64(ticks as f64 / per_second)))
}
