//! The web console end to end: a real voxbridge and voxgate (serving `console/dist`),
//! driven in headless Chromium by `console/e2e/console.e2e.mjs`. The browser registers a
//! backend node and prints the API secret it read off the screen; this test then starts a
//! `voxcore host` with exactly that secret, and the script watches the node come online
//! on the dashboard without reloading.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test stops at the first failure")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_testkit::ServerProcess;

const ADMIN_EMAIL: &str = "admin@vox.test";
const ADMIN_PASSWORD: &str = "admin password for tests";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser script, generously: it normally takes well under a minute.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

/// Fails, naming the command that fixes it, when the browser, Node or the console is missing.
fn require_prerequisites(root: &Path) -> PathBuf {
    let node = vox_testkit::require_program("node", "install Node.js 20+ and npm (apt-get install nodejs npm)");
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing; this test drives Debian's Chromium: run `bash ops/install-test-deps.sh`"
    );
    assert!(
        root.join("console/dist/index.html").is_file(),
        "console/dist/index.html is missing: build the console with `bash console/build.sh` (ops/test.sh does)"
    );
    assert!(
        root.join("console/node_modules/playwright-core/package.json").is_file(),
        "console/node_modules/playwright-core is missing: run `bash console/build.sh` (npm ci)"
    );
    node
}

/// `<target dir>/vox-e2e-artifacts/<unix seconds>`, next to the build output.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("a test binary under <target>/<profile>/deps").to_path_buf();
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let dir = target.join("vox-e2e-artifacts").join(stamp.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// voxbridge, plus the region and gateway node voxgate needs to start at all.
async fn start_bridge(dir: &Path) -> (ServerProcess, String) {
    let envs = [("VOX_ADMIN_EMAIL", ADMIN_EMAIL.to_string()), ("VOX_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string())];
    let args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--heartbeat-interval-ms".into(),
        "500".into(),
        "--data-dir".into(),
        dir.join("bridge").display().to_string(),
        // The browser script's webhook receiver is plain http on loopback.
        "--allow-insecure-webhook-urls".into(),
    ];
    let bridge =
        ServerProcess::start("voxbridge", &vox_testkit::workspace_binary("voxbridge", "voxbridge"), &args, &envs, dir)
            .await
            .unwrap();
    let channel = Channel::from_shared(bridge.url()).unwrap().connect().await.unwrap();
    let admin = bpb::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(bpb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let region = bpb::region_service_client::RegionServiceClient::new(channel.clone())
        .create_region(authed(
            &admin,
            bpb::CreateRegionRequest { name: "us-east-1".into(), country: "US".into(), storage: None },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let gateway = bpb::node_service_client::NodeServiceClient::new(channel)
        .register_node(authed(
            &admin,
            bpb::RegisterNodeRequest {
                kind: bpb::NodeKind::Gateway as i32,
                region_id: region,
                name: "edge-1".into(),
                endpoint: "http://127.0.0.1:8080".into(),
                sip_port: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (bridge, gateway.api_secret)
}

fn start_host(dir: &Path, bridge_url: &str, secret: &str) -> ServerProcess {
    let args: Vec<String> = vec![
        "host".into(),
        "--workers".into(),
        "2".into(),
        "--socket-dir".into(),
        dir.join("sock").display().to_string(),
        "--spool-dir".into(),
        dir.join("spool").display().to_string(),
        "--recordings-dir".into(),
        dir.join("recordings").display().to_string(),
        "--bridge-url".into(),
        bridge_url.into(),
    ];
    ServerProcess::spawn(
        "voxcore-host",
        &vox_testkit::workspace_binary("voxcore", "voxcore"),
        &args,
        &[("VOX_NODE_SECRET", secret.to_string())],
        dir,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_does_every_task_in_a_real_browser() {
    let root = repo_root();
    let node = require_prerequisites(&root);
    let artifacts = artifacts_dir();
    println!("vox-e2e: screenshots go to {}", artifacts.display());

    let dir = tempfile::tempdir().unwrap();
    let (bridge, gateway_secret) = start_bridge(dir.path()).await;
    let gate_args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--bridge-url".into(),
        bridge.url(),
        "--console-dir".into(),
        root.join("console/dist").display().to_string(),
    ];
    let gate = ServerProcess::start(
        "voxgate",
        &vox_testkit::workspace_binary("voxgate", "voxgate"),
        &gate_args,
        &[("VOX_NODE_SECRET", gateway_secret)],
        dir.path(),
    )
    .await
    .unwrap();

    let mut script = tokio::process::Command::new(node)
        .arg(root.join("console/e2e/console.e2e.mjs"))
        .current_dir(root.join("console"))
        .env("VOX_URL", gate.url())
        .env("VOX_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("VOX_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("VOX_ARTIFACTS", &artifacts)
        .env("VOX_CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node console/e2e/console.e2e.mjs");
    let mut to_script = script.stdin.take().unwrap();
    let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();

    // The script speaks one line at a time; a worker is started when it asks.
    let mut host: Option<ServerProcess> = None;
    let conversation = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            println!("{line}");
            if let Some(secret) = line.strip_prefix("VOX_E2E_START_WORKER ") {
                assert!(secret.starts_with("vxn."), "the script read a secret that is not one: {secret:?}");
                host = Some(start_host(dir.path(), &bridge.url(), secret.trim()));
                to_script.write_all(b"started\n").await.unwrap();
                to_script.flush().await.unwrap();
            }
        }
        script.wait().await.unwrap()
    };
    let status = tokio::time::timeout(SCRIPT_DEADLINE, conversation).await;
    println!("vox-e2e: screenshots in {}", artifacts.display());
    let status = match status {
        Ok(s) => s,
        Err(_) => panic!(
            "the browser script did not finish within {SCRIPT_DEADLINE:?}; screenshots so far in {}",
            artifacts.display()
        ),
    };
    if !status.success() {
        eprintln!("{}\n{}", bridge.logs(), gate.logs());
        if let Some(h) = &host {
            eprintln!("{}", h.logs());
        }
        panic!("the browser script failed ({status}); screenshots in {}", artifacts.display());
    }
    assert!(host.is_some(), "the script never asked for the worker it registered");
    let shots = std::fs::read_dir(&artifacts).unwrap().filter_map(Result::ok).count();
    assert!(shots >= 15, "expected a screenshot of every screen in {}, found {shots}", artifacts.display());
}
