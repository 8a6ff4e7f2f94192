//! Test harness for tests that start real Vox processes.
//!
//! A [`ServerProcess`] binds `127.0.0.1:0`, reports its real address through a file,
//! is waited on until `GET /health` answers 200, is killed when dropped, and prints its
//! logs when the test that owns it panics, so a failure explains itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running server process and where its logs go.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    pub addr: SocketAddr,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl ServerProcess {
    /// Starts `bin` with `args` plus `--address-file`, and waits (up to 30 s) for its
    /// address and a 200 from `GET /health`. `log_dir` receives `<name>.out` / `<name>.err`.
    pub async fn start(
        name: &str,
        bin: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let address_file = log_dir.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&address_file);
        let stdout_path = log_dir.join(format!("{name}.out"));
        let stderr_path = log_dir.join(format!("{name}.err"));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .arg("--address-file")
            .arg(&address_file)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).context("create stdout log")?)
            .stderr(std::fs::File::create(&stderr_path).context("create stderr log")?);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("start {}", bin.display()))?;
        let mut process = ServerProcess {
            name: name.into(),
            child: Some(child),
            addr: ([127, 0, 0, 1], 0).into(),
            stdout_path,
            stderr_path,
        };

        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file)
                && let Ok(addr) = text.trim().parse::<SocketAddr>()
            {
                break addr;
            }
            if let Some(status) = process.try_exit()? {
                bail!("{name} exited with {status} before listening:\n{}", process.logs());
            }
            if Instant::now() > deadline {
                bail!("{name} did not report an address within 30 s:\n{}", process.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        process.addr = addr;
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/health", process.url())).send().await
                && r.status().is_success()
            {
                return Ok(process);
            }
            if let Some(status) = process.try_exit()? {
                bail!("{name} exited with {status} before becoming healthy:\n{}", process.logs());
            }
            if Instant::now() > deadline {
                bail!("{name} was not healthy within 30 s:\n{}", process.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the process printed so far.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!("--- {} stdout ---\n{out}--- {} stderr ---\n{err}", self.name, self.name)
    }

    fn try_exit(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    /// SIGTERM, then wait up to `grace` for a clean exit (SIGKILL after that).
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("{} is not running", self.name) };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait()?;
                bail!("{} ignored SIGTERM for {grace:?} and was killed ({status})", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: a crash, as far as the process can tell.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Finds a program the tests need on PATH, or fails naming the install script.
pub fn require_program(name: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} is not installed, and this test needs it; {install_hint}");
}
