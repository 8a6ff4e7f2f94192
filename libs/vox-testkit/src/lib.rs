//! Test harness for tests that start real Vox processes.
//!
//! A [`ServerProcess`] binds `127.0.0.1:0`, reports its real address through a file,
//! is waited on until `GET /health` answers 200, is killed when dropped, and prints its
//! logs when the test that owns it panics, so a failure explains itself.

pub mod cluster;
pub mod control;
pub mod tls;
pub mod twilio;

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
    /// The TCP address, when the process listens on TCP.
    pub addr: SocketAddr,
    /// Where it listens, as it reported it: http://host:port or unix:///path.
    pub endpoint: String,
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
        let mut p = Self::start_listening(name, bin, args, envs, log_dir).await?;
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/health", p.url())).send().await
                && r.status().is_success()
            {
                return Ok(p);
            }
            p.pause_before_next_poll("healthy", deadline).await?;
        }
    }

    /// Starts `bin` with `args` plus `--address-file` and waits (up to 30 s) until it
    /// wrote its address (`host:port`, `http://host:port` or `unix:///path`) and accepts
    /// connections there: for gRPC-only servers.
    pub async fn start_listening(
        name: &str,
        bin: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let address_file = log_dir.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&address_file);
        let mut all: Vec<String> = args.to_vec();
        all.push("--address-file".into());
        all.push(address_file.display().to_string());
        let mut p = Self::spawn(name, bin, &all, envs, log_dir)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&address_file)
                && !text.trim().is_empty()
            {
                let text = text.trim().to_string();
                let connected = if let Some(path) = text.strip_prefix("unix://") {
                    tokio::net::UnixStream::connect(path).await.is_ok()
                } else {
                    let hostport = text.strip_prefix("http://").unwrap_or(&text);
                    match hostport.parse::<SocketAddr>() {
                        Ok(addr) => {
                            p.addr = addr;
                            tokio::net::TcpStream::connect(addr).await.is_ok()
                        }
                        Err(_) => bail!("{name} wrote an address that is not host:port or unix://: {text:?}"),
                    }
                };
                if connected {
                    p.endpoint = if text.starts_with("unix://") || text.starts_with("http") {
                        text
                    } else {
                        format!("http://{text}")
                    };
                    return Ok(p);
                }
            }
            p.pause_before_next_poll("listening", deadline).await?;
        }
    }

    /// Between two readiness polls: fails, with the logs, when the process exited or the
    /// deadline passed before it was `goal`; otherwise waits a moment.
    async fn pause_before_next_poll(&mut self, goal: &str, deadline: Instant) -> anyhow::Result<()> {
        if let Some(status) = self.try_exit()? {
            bail!("{} exited with {status} before it was {goal}:\n{}", self.name, self.logs());
        }
        if Instant::now() > deadline {
            bail!("{} was not {goal} within 30 s:\n{}", self.name, self.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    /// Starts `bin` and returns at once: for processes with no listener of their own.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let stdout_path = log_dir.join(format!("{name}.out"));
        let stderr_path = log_dir.join(format!("{name}.err"));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).context("create stdout log")?)
            .stderr(std::fs::File::create(&stderr_path).context("create stderr log")?);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("start {}", bin.display()))?;
        Ok(ServerProcess {
            name: name.into(),
            child: Some(child),
            addr: ([127, 0, 0, 1], 0).into(),
            endpoint: String::new(),
            stdout_path,
            stderr_path,
        })
    }

    /// Waits up to `within` for the process to exit by itself.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_exit()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} still running after {within:?}:\n{}", self.name, self.logs());
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

/// The path of another package's binary in this target dir. A workspace test run
/// (`cargo nextest run --workspace`) builds every binary with the workspace's features;
/// when it is missing (one package tested alone), it is built here, once.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // Test binaries live in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe.parent().and_then(Path::parent).expect("a test binary under <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target dir");
    let path = profile_dir.join(bin);
    let _once = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if !path.is_file() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
        assert!(status.success(), "building {bin} for this test failed");
    }
    path
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

/// Runs the real `grpcurl` with `args` and returns its output; a failure fails the test
/// with grpcurl's own words.
pub fn grpcurl(args: &[&str]) -> String {
    let bin = require_program("grpcurl", "install it with `bash ops/install-test-deps.sh`");
    let out = Command::new(bin).args(args).output().expect("run grpcurl");
    assert!(out.status.success(), "grpcurl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("grpcurl prints text")
}

/// Starts a throwaway `redis-server` on 127.0.0.1:`port` (no persistence) and waits until
/// it takes connections.
pub async fn redis_server(port: u16, dir: &Path) -> ServerProcess {
    let bin = require_program("redis-server", "run bash ops/install-test-deps.sh (or bash ops/test.sh)");
    let args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        .map(String::from)
        .to_vec();
    let p = ServerProcess::spawn("redis", &bin, &args, &[], dir).expect("spawn redis-server");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on port {port}:\n{}", p.logs());
}

/// The `start` of a μ-law 8 kHz media stream for `call_id` on reservation `reservation_id`.
pub fn mulaw_start(reservation_id: &str, call_id: &str) -> vox_proto::fleet::v1::MediaIn {
    use vox_proto::fleet::v1 as pb;
    pb::MediaIn {
        event: Some(pb::media_in::Event::Start(pb::MediaStart {
            reservation_id: reservation_id.into(),
            call_id: call_id.into(),
            format: Some(pb::AudioFormat { encoding: pb::AudioEncoding::Mulaw as i32, sample_rate: 8000 }),
            stream_id: String::new(),
        })),
    }
}

/// Starts a MongoDB server of the test's own (secantus, on a free port, storing in `dir`),
/// at the lowest CPU priority when `background` (a bulk load that must not slow the rest of
/// the run), and returns it with its port once it takes connections.
pub async fn mongo_server(dir: &Path, background: bool) -> (ServerProcess, u16) {
    let secantus = require_program("secantusd-py", "run bash ops/install-test-deps.sh");
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port();
    let mut args: Vec<String> =
        vec!["--port".into(), port.to_string(), "--storage-path".into(), dir.display().to_string()];
    let program = if background {
        args.splice(0..0, ["-n".to_string(), "19".into(), secantus.display().to_string()]);
        require_program("nice", "install coreutils")
    } else {
        secantus
    };
    let mongo = ServerProcess::spawn("mongo", &program, &args, &[], dir).expect("spawn the MongoDB test server");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the MongoDB test server did not start:\n{}",
            mongo.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (mongo, port)
}
