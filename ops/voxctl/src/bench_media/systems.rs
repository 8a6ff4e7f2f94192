//! The systems `voxctl bench media` compares, each started fresh for its run and stopped
//! after it:
//!
//! - **Vox**: `voxctl up` (this executable) with one worker slot per stream, on its own
//!   data dir and free ports: voxbridge, a voxcore host and its workers, voxgate; either
//!   a worker process per stream (`vox`) or one worker process holding every stream
//!   (`vox-shared`, `voxctl up --calls-per-worker`; past 200 streams, as few workers as
//!   hold them). Each
//!   stream is a real inbound call: the signed voice webhook creates it, and the TwiML
//!   answer names the stream URL and the call id, as on a carrier. Echo agent, recording
//!   on (every call is recorded).
//! - **Python**: the reference worker of the stack Vox replaces, FastAPI on uvicorn (with
//!   uvloop and httptools, `uvicorn[standard]`) in one process, which parses each Twilio
//!   JSON message and sends the payload back as a `media` event. Installed on first use
//!   into its own venv (`python3 -m venv`, then pip).
//! - **nginx → Python**: the same worker behind nginx (`proxy_pass` with the WebSocket
//!   upgrade, one worker process), from a config generated into the run's folder.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;

use super::client::Target;
use super::procstat::{Roles, children_of};
use crate::children::{Launch, Process, STOP_GRACE};

/// A started system: where its streams go, its processes, and how to stop it.
#[derive(Debug)]
pub struct Running {
    pub targets: Vec<Target>,
    pub roles: Roles,
    processes: Vec<Process>,
}

impl Running {
    /// Stops its processes, last started first.
    pub async fn stop(mut self) {
        for p in self.processes.iter_mut().rev() {
            p.stop(STOP_GRACE).await;
        }
    }
}

/// How long a system may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A port free now (bound and released at once), for servers that cannot report theirs.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").context("find a free port")?.local_addr()?.port())
}

async fn until_listening(process: &mut Process, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = process.try_exited()? {
            bail!(
                "{} exited ({status}); its log {} ends with:\n{}",
                process.name,
                process.log_path.display(),
                process.log_tail(20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {port} within {READY_TIMEOUT:?}; see {}",
                process.name,
                process.log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The calls per worker of the `vox-shared` system: every stream in one worker, or, past
/// `most` a worker (at most 200, what one worker may hold), spread evenly over as few
/// workers as hold them.
pub fn shared_calls_per_worker(streams: u32, most: Option<u32>) -> u32 {
    let most = most.unwrap_or(200).clamp(1, 200);
    let workers = streams.div_ceil(most).max(1);
    streams.div_ceil(workers).max(1)
}

/// Vox: `voxctl up` with a slot per stream, `calls_per_worker` of them in each worker
/// process, each process on `threads` runtime threads (0: Tokio's default), and
/// `streams` answered inbound calls.
pub async fn start_vox(
    dir: &Path,
    bin_dir: &Path,
    streams: u32,
    calls_per_worker: u32,
    threads: u32,
) -> anyhow::Result<Running> {
    let data = dir.join("vox");
    let workers = streams.div_ceil(calls_per_worker.max(1));
    let launch = Launch {
        name: "voxctl-up".into(),
        program: std::env::current_exe().context("find the voxctl executable")?,
        args: [
            "up",
            "--data-dir",
            &data.display().to_string(),
            "--workers",
            &workers.to_string(),
            "--calls-per-worker",
            &calls_per_worker.to_string(),
            "--bridge-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--host-metrics-listen",
            "127.0.0.1:0",
            "--bin-dir",
            &bin_dir.display().to_string(),
        ]
        .map(String::from)
        .to_vec(),
        envs: runtime_envs(threads),
    };
    let mut up = Process::start(launch, dir)?;
    // `voxctl up` prints `VOX_CHILD <name> <pid>` and `VOX_READY … gateway=<url>` on
    // stdout, which goes to its log.
    let deadline = Instant::now() + READY_TIMEOUT;
    let (children, gateway) = loop {
        let log = std::fs::read_to_string(&up.log_path).unwrap_or_default();
        if let Some(ready) = log.lines().find_map(|l| l.strip_prefix("VOX_READY ")) {
            let gateway = ready
                .split(' ')
                .find_map(|f| f.strip_prefix("gateway="))
                .context("VOX_READY without gateway=")?
                .to_string();
            let children: Vec<(String, u32)> = log
                .lines()
                .filter_map(|l| l.strip_prefix("VOX_CHILD "))
                .filter_map(|l| l.split_once(' ').and_then(|(n, p)| Some((n.to_string(), p.parse().ok()?))))
                .collect();
            break (children, gateway);
        }
        if let Some(status) = up.try_exited()? {
            bail!("voxctl up exited ({status}) before the cluster was ready:\n{}", up.log_tail(30));
        }
        if Instant::now() > deadline {
            up.stop(STOP_GRACE).await;
            bail!("voxctl up was not ready within {READY_TIMEOUT:?}:\n{}", up.log_tail(30));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pid = |name: &str| children.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
    let (Some(bridge), Some(host), Some(gate)) = (pid("voxbridge"), pid("voxcore"), pid("voxgate")) else {
        up.stop(STOP_GRACE).await;
        bail!("voxctl up did not name voxbridge, voxcore and voxgate: {children:?}");
    };
    let mut roles = Roles::default();
    roles.add("voxgate", vec![gate]);
    roles.add("workers", children_of(host));
    roles.add("voxcore host", vec![host]);
    roles.add("voxbridge", vec![bridge]);
    let running = Running { targets: Vec::new(), roles, processes: vec![up] };
    match inbound_calls(&data, &gateway, streams).await {
        Ok(targets) => Ok(Running { targets, ..running }),
        Err(e) => {
            running.stop().await;
            Err(e)
        }
    }
}

/// The environment of `voxctl up` and so of every Vox process it starts: quiet logs and,
/// unless `threads` is 0, that many runtime threads (Tokio's TOKIO_WORKER_THREADS).
fn runtime_envs(threads: u32) -> Vec<(&'static str, String)> {
    let mut envs = vec![("RUST_LOG", "warn".to_string())];
    if threads > 0 {
        envs.push(("TOKIO_WORKER_THREADS", threads.to_string()));
    }
    envs
}

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + the form parameters sorted
/// by name, each name then value)).
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One call per stream, placed as Twilio places them: the signed voice webhook, whose
/// TwiML names the stream URL and its parameters (the call id).
async fn inbound_calls(data: &Path, gateway: &str, streams: u32) -> anyhow::Result<Vec<Target>> {
    let credentials = data.join("credentials.toml");
    let text = std::fs::read_to_string(&credentials).with_context(|| format!("read {}", credentials.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parse {}", credentials.display()))?;
    let token = table.get("twilio_auth_token").and_then(|v| v.as_str()).context("no twilio_auth_token")?.to_string();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let url = format!("{gateway}/twilio/voice");
    let mut targets = Vec::new();
    for n in 0..streams {
        let call_sid = format!("CA{n:032x}");
        let params: Vec<(&str, String)> = vec![
            ("AccountSid", "AC00000000000000000000000000000000".into()),
            ("CallSid", call_sid.clone()),
            ("CallStatus", "ringing".into()),
            ("From", format!("+1415555{:04}", n % 10_000)),
            ("To", "+14155550100".into()),
        ];
        let twiml = loop {
            let r = client
                .post(&url)
                .header("x-twilio-signature", twilio_signature(&token, &url, &params))
                .form(&params)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if !r.status().is_success() {
                bail!("the voice webhook {url} answered {} for call {n}", r.status());
            }
            break r.text().await?;
        };
        let (stream_url, custom_parameters) = twiml_stream(&twiml)?;
        let signature = Some(twilio_signature(&token, &stream_url, &[]));
        targets.push(Target { url: stream_url, signature, call_sid, custom_parameters });
    }
    Ok(targets)
}

/// The `<Stream url>` and `<Parameter>`s of a `<Connect><Stream>` TwiML answer.
fn twiml_stream(twiml: &str) -> anyhow::Result<(String, serde_json::Map<String, Value>)> {
    let attr = |tag: &str, name: &str| -> anyhow::Result<String> {
        let after = tag.split(&format!("{name}=\"")).nth(1).with_context(|| format!("no {name}= in {tag}"))?;
        Ok(after.split('"').next().unwrap_or_default().replace("&quot;", "\"").replace("&amp;", "&"))
    };
    let stream = twiml.split("<Stream ").nth(1).with_context(|| format!("no <Stream> in the TwiML answer {twiml}"))?;
    let url = attr(stream.split('>').next().unwrap_or_default(), "url")?;
    let mut params = serde_json::Map::new();
    for p in stream.split("<Parameter ").skip(1) {
        params.insert(attr(p, "name")?, Value::String(attr(p, "value")?));
    }
    Ok((url, params))
}

/// The reference worker: FastAPI on uvicorn, echoing each `media` payload.
const ECHO_WORKER: &str = r#""""The reference Python echo worker of `voxctl bench media`."""
import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.websocket("/media")
async def media(ws: WebSocket):
    await ws.accept()
    stream_sid = None
    try:
        while True:
            msg = json.loads(await ws.receive_text())
            event = msg.get("event")
            if event == "start":
                stream_sid = msg["start"]["streamSid"]
            elif event == "media":
                await ws.send_text(json.dumps(
                    {"event": "media", "streamSid": stream_sid, "media": {"payload": msg["media"]["payload"]}}))
            elif event == "stop":
                break
    except WebSocketDisconnect:
        return
    await ws.close()
"#;

/// The venv's python, installing FastAPI and uvicorn into it first when they are missing.
pub async fn python_venv(python: &str, venv: &Path) -> anyhow::Result<PathBuf> {
    let bin = venv.join("bin").join("python");
    let ready = |bin: &Path| {
        std::process::Command::new(bin)
            .args(["-c", "import fastapi, uvicorn, websockets, uvloop, httptools"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if bin.is_file() && ready(&bin) {
        return Ok(bin);
    }
    tracing::info!(venv = %venv.display(), "installing FastAPI and uvicorn for the reference worker");
    let run = |program: &Path, args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .with_context(|| format!("run {}", program.display()))?;
        if !out.status.success() {
            bail!("{} {} failed:\n{}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    let venv_str = venv.display().to_string();
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        run(Path::new(python), &["-m", "venv", &venv_str])?;
        run(&bin, &["-m", "pip", "install", "--quiet", "fastapi", "uvicorn[standard]"])
    })?;
    if !ready(&bin) {
        bail!("{} cannot import fastapi and uvicorn after installing them", bin.display());
    }
    Ok(bin)
}

/// Starts the reference worker on a free port: its process and port.
async fn start_uvicorn(dir: &Path, python: &Path, name: &str) -> anyhow::Result<(Process, u16)> {
    std::fs::write(dir.join("echo_worker.py"), ECHO_WORKER).context("write the reference worker")?;
    let port = free_port()?;
    let launch = Launch {
        name: name.into(),
        program: python.to_path_buf(),
        args: [
            "-m",
            "uvicorn",
            "echo_worker:app",
            "--app-dir",
            &dir.display().to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        .map(String::from)
        .to_vec(),
        envs: Vec::new(),
    };
    let mut p = Process::start(launch, dir)?;
    if let Err(e) = until_listening(&mut p, port).await {
        p.stop(STOP_GRACE).await;
        return Err(e);
    }
    Ok((p, port))
}

fn plain_targets(url: &str, streams: u32) -> Vec<Target> {
    (0..streams)
        .map(|n| Target {
            url: url.to_string(),
            signature: None,
            call_sid: format!("CA{n:032x}"),
            custom_parameters: serde_json::Map::new(),
        })
        .collect()
}

/// The reference worker alone.
pub async fn start_python(dir: &Path, python: &Path, streams: u32) -> anyhow::Result<Running> {
    let (p, port) = start_uvicorn(dir, python, "uvicorn").await?;
    let mut roles = Roles::default();
    roles.add("uvicorn", vec![p.pid]);
    Ok(Running { targets: plain_targets(&format!("ws://127.0.0.1:{port}/media"), streams), roles, processes: vec![p] })
}

/// nginx's config: one worker process, the WebSocket upgrade passed through, every
/// temporary path inside `dir`.
fn nginx_config(dir: &Path, listen: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n  \
         upstream echo {{ server 127.0.0.1:{upstream}; }}\n  \
         server {{\n    listen 127.0.0.1:{listen};\n    location / {{\n      proxy_pass http://echo;\n      \
         proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n      \
         proxy_set_header Connection $connection_upgrade;\n      proxy_read_timeout 60s;\n    }}\n  }}\n}}\n"
    )
}

/// The reference worker behind nginx.
pub async fn start_nginx(dir: &Path, python: &Path, nginx: &Path, streams: u32) -> anyhow::Result<Running> {
    let (upstream, upstream_port) = start_uvicorn(dir, python, "uvicorn-behind-nginx").await?;
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir, port, upstream_port)).context("write nginx.conf")?;
    let launch = Launch {
        name: "nginx".into(),
        program: nginx.to_path_buf(),
        args: vec!["-p".into(), dir.display().to_string(), "-c".into(), conf.display().to_string()],
        envs: Vec::new(),
    };
    let mut p = match Process::start(launch, dir) {
        Ok(p) => p,
        Err(e) => {
            Running { targets: Vec::new(), roles: Roles::default(), processes: vec![upstream] }.stop().await;
            return Err(e);
        }
    };
    if let Err(e) = until_listening(&mut p, port).await {
        Running { targets: Vec::new(), roles: Roles::default(), processes: vec![upstream, p] }.stop().await;
        return Err(e);
    }
    let mut roles = Roles::default();
    roles.add("nginx", std::iter::once(p.pid).chain(children_of(p.pid)).collect());
    roles.add("uvicorn", vec![upstream.pid]);
    Ok(Running {
        targets: plain_targets(&format!("ws://127.0.0.1:{port}/media"), streams),
        roles,
        processes: vec![upstream, p],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures_follow_twilios_example() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let sig = twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn a_twiml_answer_names_the_stream_and_the_call() {
        let twiml = r#"<?xml version="1.0"?><Response><Connect><Stream url="ws://127.0.0.1:8080/media/twilio"><Parameter name="call_id" value="ca_0123456789abcdef"/></Stream></Connect></Response>"#;
        let (url, params) = twiml_stream(twiml).unwrap();
        assert_eq!(url, "ws://127.0.0.1:8080/media/twilio");
        assert_eq!(params["call_id"], "ca_0123456789abcdef");
        assert!(twiml_stream("<Response><Hangup/></Response>").unwrap_err().to_string().contains("<Stream>"));
    }

    #[test]
    fn a_shared_worker_holds_every_stream_up_to_its_limit() {
        assert_eq!(shared_calls_per_worker(32, None), 32);
        assert_eq!(shared_calls_per_worker(200, None), 200);
        assert_eq!(shared_calls_per_worker(201, None), 101, "two workers, evenly");
        assert_eq!(shared_calls_per_worker(1000, None), 200);
        assert_eq!(shared_calls_per_worker(1, None), 1);
        assert_eq!(shared_calls_per_worker(32, Some(8)), 8, "four workers of eight");
        assert_eq!(shared_calls_per_worker(30, Some(8)), 8, "four workers, the last of six");
        assert_eq!(shared_calls_per_worker(32, Some(500)), 32);
    }

    #[test]
    fn the_nginx_config_upgrades_websockets_to_the_worker() {
        let conf = nginx_config(Path::new("/tmp/b"), 8081, 9001);
        for want in [
            "listen 127.0.0.1:8081;",
            "server 127.0.0.1:9001;",
            "proxy_set_header Upgrade $http_upgrade;",
            "pid /tmp/b/nginx.pid;",
        ] {
            assert!(conf.contains(want), "{want} missing from\n{conf}");
        }
    }
}
