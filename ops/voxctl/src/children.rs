//! The processes `voxctl up` runs: each started in its own process group with its
//! stdout and stderr appended to one log file, watched while the cluster is up, and
//! stopped in reverse start order with SIGTERM, then SIGKILL after a grace period.
//!
//! Own process groups keep a terminal's Ctrl-C from reaching every child at once, so the
//! shutdown order stays voxctl's to choose (gateway first, control plane last).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// How long a child may take to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// What to start: the executable, its arguments and the environment it gets on top of
/// voxctl's own. Secrets go in `envs`, never in `args` (anyone can read argv in `ps`).
#[derive(Debug, Clone)]
pub struct Launch {
    /// The process's name in logs and messages, and its log file's (`<name>.log`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(&'static str, String)>,
}

/// One started child process.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    pub pid: u32,
    pub log_path: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts `launch`, appending its output to `<log_dir>/<name>.log`.
    pub fn start(launch: Launch, log_dir: &Path) -> anyhow::Result<Self> {
        let log_path = log_dir.join(format!("{}.log", launch.name));
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open log {}", log_path.display()))?;
        std::io::Write::write_all(&mut log, format!("--- voxctl up: starting {} ---\n", launch.name).as_bytes())
            .with_context(|| format!("write log {}", log_path.display()))?;
        let stderr = log.try_clone().with_context(|| format!("share log {}", log_path.display()))?;
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .envs(launch.envs.iter().map(|(k, v)| (*k, v.as_str())))
            // Each child names its own traces (voxbridge, voxgate, …): one OTEL_SERVICE_NAME
            // given to voxctl would make every process the same service.
            .env_remove("OTEL_SERVICE_NAME")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0)
            // A safety net for early returns and panics; the normal path stops children
            // with SIGTERM first.
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("start {} ({})", launch.name, launch.program.display()))?;
        let pid = child.id().context("a just-started child has a pid")?;
        tracing::info!(process = %launch.name, pid, log = %log_path.display(), "started");
        Ok(Process { name: launch.name, pid, log_path, child, exited: None })
    }

    /// The exit status, once the process has exited.
    pub fn try_exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().with_context(|| format!("check on {}", self.name))?;
        }
        Ok(self.exited)
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; then anything left in its process
    /// group (the workers of a voxcore host) is killed too.
    pub async fn stop(&mut self, grace: Duration) {
        if let Ok(Some(status)) = self.try_exited() {
            tracing::debug!(process = %self.name, %status, "already exited");
        } else {
            tracing::info!(process = %self.name, pid = self.pid, "stopping");
            signal("-TERM", &self.pid.to_string()).await;
            match tokio::time::timeout(grace, self.child.wait()).await {
                Ok(Ok(status)) => {
                    tracing::info!(process = %self.name, %status, "stopped");
                    self.exited = Some(status);
                }
                Ok(Err(e)) => tracing::warn!(process = %self.name, error = %e, "cannot wait for the process"),
                Err(_) => {
                    tracing::warn!(process = %self.name, grace_seconds = grace.as_secs(), "ignored SIGTERM; killing it");
                    let _ = self.child.kill().await;
                    self.exited = self.child.try_wait().ok().flatten();
                }
            }
        }
        // The group id is the child's pid (process_group(0)); once it is empty this
        // fails harmlessly.
        signal("-KILL", &format!("-{}", self.pid)).await;
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn signal(which: &str, target: &str) {
    // `kill` from the system: sending signals needs no unsafe code this way.
    let status = Command::new("kill")
        .arg(which)
        .arg("--")
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = status {
        tracing::warn!(signal = which, target, error = %e, "cannot run kill");
    }
}

/// The running cluster's processes, in start order.
#[derive(Debug, Default)]
pub struct Children {
    started: Vec<Process>,
}

impl Children {
    pub fn start(&mut self, launch: Launch, log_dir: &Path) -> anyhow::Result<&mut Process> {
        let process = Process::start(launch, log_dir)?;
        self.started.push(process);
        let last = self.started.len() - 1;
        Ok(&mut self.started[last])
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Process> {
        self.started.iter_mut().find(|p| p.name == name)
    }

    /// The first child found to have exited, with its status.
    pub fn first_exited(&mut self) -> anyhow::Result<Option<(&Process, ExitStatus)>> {
        let mut found = None;
        for (i, p) in self.started.iter_mut().enumerate() {
            if let Some(status) = p.try_exited()? {
                found = Some((i, status));
                break;
            }
        }
        Ok(found.map(|(i, status)| (&self.started[i], status)))
    }

    /// Stops every child, last started first.
    pub async fn stop_all(&mut self) {
        for p in self.started.iter_mut().rev() {
            p.stop(STOP_GRACE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sh(name: &str, script: &str) -> Launch {
        Launch {
            name: name.into(),
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            envs: vec![("VOXCTL_TEST_SECRET", "from the environment".into())],
        }
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_sigterm_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut children = Children::default();
        children
            .start(sh("talker", "echo \"out $VOXCTL_TEST_SECRET\"; echo err >&2; exec sleep 30"), dir.path())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(children.first_exited().unwrap().is_none(), "still running");
        let started = std::time::Instant::now();
        children.stop_all().await;
        assert!(started.elapsed() < Duration::from_secs(5), "SIGTERM was enough");
        let log = std::fs::read_to_string(dir.path().join("talker.log")).unwrap();
        assert!(log.contains("out from the environment") && log.contains("err"), "{log}");
    }

    #[tokio::test]
    async fn a_child_that_ignores_sigterm_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::start(sh("stubborn", "trap '' TERM; while true; do sleep 0.1; done"), dir.path()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        p.stop(Duration::from_millis(500)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(p.try_exited().unwrap().is_some(), "killed");
        assert!(!Path::new(&format!("/proc/{}", p.pid)).exists(), "reaped");
    }

    #[tokio::test]
    async fn an_exited_child_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut children = Children::default();
        children.start(sh("quitter", "exit 3"), dir.path()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((p, status)) = children.first_exited().unwrap() {
                assert_eq!(p.name, "quitter");
                assert_eq!(status.code(), Some(3));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "exit seen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
