//! The peer baseline: the hand-written receiver a team would write without firehook
//! (`../shared/peers/node-receiver`: Express and the official svix SDK, two workers,
//! in-memory dedupe, nothing stored), driven by the same generator as everything else.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::Conn;
use crate::sign::SvixSecret;

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The peer's own files; its dependencies are installed beside a copy of them.
const FILES: [&str; 3] = ["server.js", "package.json", "package-lock.json"];

pub struct NodePeer {
    child: Child,
    pub addr: SocketAddr,
}

/// Where the peer is installed: a copy under the target directory, so the shared folder
/// stays untouched.
fn install_dir(target: &Path) -> PathBuf {
    target.join("node-peer")
}

/// Copies the peer and runs `npm ci` once (again only when its lock file changed).
pub fn install(source: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    let dir = install_dir(target);
    fs::create_dir_all(&dir)?;
    let lock = fs::read(source.join("package-lock.json"))
        .with_context(|| format!("no peer at {}", source.display()))?;
    let installed = fs::read(dir.join("package-lock.json")).ok();
    for file in FILES {
        fs::copy(source.join(file), dir.join(file))
            .with_context(|| format!("copying the peer's {file}"))?;
    }
    if installed.as_deref() != Some(&lock[..]) || !dir.join("node_modules").is_dir() {
        println!("installing the Node peer: npm ci in {}", dir.display());
        let status = Command::new("npm")
            .args(["ci", "--omit=dev", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .context("running npm (is Node installed?)")?;
        if !status.success() {
            // A half-installed tree must not pass for installed next time.
            let _ = fs::remove_file(dir.join("package-lock.json"));
            bail!("npm ci failed for the Node peer");
        }
    }
    Ok(dir)
}

impl NodePeer {
    /// Starts `node server.js` with the bench's Svix key and waits until it accepts
    /// connections.
    pub async fn start(dir: &Path, secret: &SvixSecret, port: u16) -> anyhow::Result<NodePeer> {
        let mut command = Command::new("node");
        command
            .arg("server.js")
            .current_dir(dir)
            .env("CLERK_SECRET", secret.text())
            .env("PORT", port.to_string())
            .env("WORKERS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it stops the peer should the bench die.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            })
        };
        let child = command.spawn().context("starting node")?;
        let mut peer = NodePeer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let started = Instant::now();
        while Conn::open(peer.addr).await.is_err() {
            if let Some(status) = peer.child.try_wait()? {
                bail!("the Node peer exited during start-up ({status})");
            }
            if started.elapsed() > START_TIMEOUT {
                peer.stop();
                bail!("the Node peer did not listen within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Both workers must be listening before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(peer)
    }

    /// Stops the cluster: SIGTERM to the primary, whose workers follow it.
    pub fn stop(mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}
