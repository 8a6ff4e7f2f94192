//! `voxctl up`: a whole cluster on one machine with embedded storage and zero setup.
//!
//! Starts voxbridge, prepares the region and nodes inside it (fresh node secrets every
//! run), starts a voxcore host and voxgate with those secrets in their environment,
//! waits until the gateway sees every worker slot free, prints where everything is, and
//! stays in the foreground until Ctrl-C or SIGTERM, when it stops the children in reverse
//! order. A child that dies on its own stops the rest and fails the command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bootstrap::Admin;
use crate::children::{Children, Launch};
use crate::config::UpArgs;
use crate::credentials::Credentials;
use crate::preflight::{self, Binaries};
use crate::ready;
use crate::signals::StopSignals;

/// Where a cluster keeps its files, all under one data dir.
#[derive(Debug, Clone)]
pub struct Layout {
    pub data: PathBuf,
}

impl Layout {
    /// The layout under `data_dir`, made absolute (worker socket URLs are published to
    /// voxbridge, and must mean the same to every process).
    pub fn new(data_dir: &Path) -> anyhow::Result<Self> {
        let data = std::path::absolute(data_dir).with_context(|| format!("resolve data dir {}", data_dir.display()))?;
        Ok(Layout { data })
    }

    pub fn bridge(&self) -> PathBuf {
        self.data.join("bridge")
    }
    pub fn run(&self) -> PathBuf {
        self.data.join("run")
    }
    pub fn spool(&self) -> PathBuf {
        self.data.join("spool")
    }
    pub fn recordings(&self) -> PathBuf {
        self.data.join("recordings")
    }
    pub fn logs(&self) -> PathBuf {
        self.data.join("logs")
    }
    pub fn credentials(&self) -> PathBuf {
        self.data.join("credentials.toml")
    }
    pub fn address_file(&self, process: &str) -> PathBuf {
        self.run().join(format!("{process}.addr"))
    }

    fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data).with_context(|| format!("create data dir {}", self.data.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // It holds the credentials file and voxbridge's generated keys.
            std::fs::set_permissions(&self.data, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restrict data dir {}", self.data.display()))?;
        }
        for dir in [self.run(), self.spool(), self.recordings(), self.logs()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Where the running cluster answers.
#[derive(Debug, Clone)]
pub struct Ready {
    pub bridge_url: String,
    pub gateway_url: String,
}

/// Runs `voxctl up` until a stop signal (Ok) or a child's death (Err).
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let binaries = Binaries::locate(args.bin_dir.as_deref())?;
    preflight::port_free(args.bridge_listen, "voxbridge", "--bridge-listen (VOX_BRIDGE_LISTEN)")?;
    preflight::port_free(args.gateway_listen, "voxgate", "--gateway-listen (VOX_GATEWAY_LISTEN)")?;
    let layout = Layout::new(&args.data_dir)?;
    layout.create()?;
    let (credentials, created) = Credentials::load_or_create(&layout.credentials(), &mut rand::rng())?;
    if created {
        tracing::info!(path = %layout.credentials().display(), "generated development credentials");
    }

    let mut signals = StopSignals::install()?;
    let mut children = Children::default();
    let started = tokio::select! {
        r = start(&args, &layout, &binaries, &credentials, &mut children) => r.map(Some),
        name = signals.recv() => {
            tracing::info!(signal = name, "stopping before the cluster was ready");
            Ok(None)
        }
    };
    let outcome = match started {
        Ok(Some(ready)) => {
            print!("{}", banner(&ready, &layout, &credentials, args.workers));
            println!("VOX_READY bridge={} gateway={}", ready.bridge_url, ready.gateway_url);
            watch(&mut children, &mut signals).await
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    children.stop_all().await;
    if outcome.is_ok() {
        tracing::info!("every process stopped");
    }
    outcome
}

async fn start(
    args: &UpArgs,
    layout: &Layout,
    binaries: &Binaries,
    credentials: &Credentials,
    children: &mut Children,
) -> anyhow::Result<Ready> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().context("build an http client")?;
    for name in ["voxbridge", "voxgate"] {
        let _ = std::fs::remove_file(layout.address_file(name));
    }

    let bridge = Launch {
        name: "voxbridge",
        program: binaries.voxbridge.clone(),
        args: vec![
            "--data-dir".into(),
            layout.bridge().display().to_string(),
            "--listen".into(),
            args.bridge_listen.to_string(),
            "--address-file".into(),
            layout.address_file("voxbridge").display().to_string(),
        ],
        envs: vec![
            ("VOX_ADMIN_EMAIL", credentials.admin_email.clone()),
            ("VOX_ADMIN_PASSWORD", credentials.admin_password.clone()),
        ],
    };
    announce(children.start(bridge, &layout.logs())?);
    let bridge_url = ready::address_url(children, "voxbridge", &layout.address_file("voxbridge")).await?;
    ready::healthy(children, &client, "voxbridge", &bridge_url).await?;
    tracing::info!(url = %bridge_url, "voxbridge is healthy");

    let credentials_hint = layout.credentials().display().to_string();
    let admin =
        Admin::login(&bridge_url, &credentials.admin_email, &credentials.admin_password, &credentials_hint).await?;
    let nodes = admin.prepare(&ready::client_url(args.gateway_listen)).await?;

    let fleet = Launch {
        name: "voxcore",
        program: binaries.voxcore.clone(),
        args: vec![
            "host".into(),
            "--workers".into(),
            args.workers.to_string(),
            "--socket-dir".into(),
            layout.run().display().to_string(),
            "--spool-dir".into(),
            layout.spool().display().to_string(),
            "--recordings-dir".into(),
            layout.recordings().display().to_string(),
            "--bridge-url".into(),
            bridge_url.clone(),
        ],
        envs: vec![("VOX_NODE_SECRET", nodes.fleet.secret.clone())],
    };
    announce(children.start(fleet, &layout.logs())?);

    let gateway = Launch {
        name: "voxgate",
        program: binaries.voxgate.clone(),
        args: vec![
            "--listen".into(),
            args.gateway_listen.to_string(),
            "--address-file".into(),
            layout.address_file("voxgate").display().to_string(),
            "--bridge-url".into(),
            bridge_url.clone(),
        ],
        envs: vec![
            ("VOX_NODE_SECRET", nodes.gateway.secret.clone()),
            ("TWILIO_AUTH_TOKEN", credentials.twilio_auth_token.clone()),
        ],
    };
    announce(children.start(gateway, &layout.logs())?);
    let gateway_url = ready::address_url(children, "voxgate", &layout.address_file("voxgate")).await?;
    ready::healthy(children, &client, "voxgate", &gateway_url).await?;
    admin.set_endpoint(&nodes.gateway.id, &gateway_url).await?;
    tracing::info!(url = %gateway_url, workers = args.workers, "voxgate is healthy; waiting for the fleet");

    ready::fleet_available(children, &client, &gateway_url, args.workers).await?;
    Ok(Ready { bridge_url, gateway_url })
}

/// The machine-readable line scripts and tests learn child pids from.
fn announce(p: &mut crate::children::Process) {
    println!("VOX_CHILD {} {}", p.name, p.pid);
}

/// Waits for a stop signal (Ok) or for a child to exit on its own (Err naming it).
async fn watch(children: &mut Children, signals: &mut StopSignals) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            name = signals.recv() => {
                tracing::info!(signal = name, "stopping: voxgate, then voxcore, then voxbridge");
                return Ok(());
            }
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some((p, status)) = children.first_exited()? {
                    bail!(
                        "{} exited on its own ({status}); stopping the others. Its log is {}, ending with:\n{}",
                        p.name,
                        p.log_path.display(),
                        p.log_tail(20)
                    );
                }
            }
        }
    }
}

/// What a person needs once the cluster is up; no secret is printed.
pub fn banner(ready: &Ready, layout: &Layout, credentials: &Credentials, workers: u32) -> String {
    let g = &ready.gateway_url;
    format!(
        "\nVox is up. Ctrl-C stops it.\n\
         \x20 voxbridge (gRPC)  {bridge}\n\
         \x20 gateway           {g}\n\
         \x20   fleet health    {g}/health/fleet\n\
         \x20   REST API        {g}/api/v1/openapi.json\n\
         \x20 worker slots      {workers}\n\
         \x20 logs              {logs}/{{voxbridge,voxcore,voxgate}}.log\n\
         \x20 credentials       {creds} (admin {email}, password and Twilio auth token; mode 0600)\n\n",
        bridge = ready.bridge_url,
        logs = layout.logs().display(),
        creds = layout.credentials().display(),
        email = credentials.admin_email,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_banner_says_where_everything_is_and_shows_no_secret() {
        let layout = Layout::new(Path::new("/srv/vox")).unwrap();
        let credentials = Credentials::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        let ready = Ready { bridge_url: "http://127.0.0.1:7070".into(), gateway_url: "http://127.0.0.1:8080".into() };
        let text = banner(&ready, &layout, &credentials, 4);
        for want in [
            "http://127.0.0.1:7070",
            "http://127.0.0.1:8080/health/fleet",
            "http://127.0.0.1:8080/api/v1/openapi.json",
            "worker slots      4",
            "/srv/vox/logs/",
            "/srv/vox/credentials.toml",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert!(!text.contains(&credentials.admin_password) && !text.contains(&credentials.twilio_auth_token));
    }

    #[test]
    fn a_relative_data_dir_becomes_absolute() {
        let layout = Layout::new(Path::new("vox-data")).unwrap();
        assert!(layout.data.is_absolute());
        assert!(layout.run().ends_with("vox-data/run"));
    }
}
