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
    pub demo: Option<DemoReady>,
}

/// The demo's parts, once they run.
#[derive(Debug, Clone)]
pub struct DemoReady {
    pub sim_url: String,
    pub dialler_url: String,
    pub campaign_id: String,
}

/// Runs `voxctl up` until a stop signal (Ok) or a child's death (Err).
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let binaries = Binaries::locate(args.bin_dir.as_deref(), args.demo)?;
    if args.demo {
        preflight::port_free(args.sim_listen, "voxsim", "--sim-listen (VOX_SIM_LISTEN)")?;
        preflight::port_free(args.dialler_listen, "voxdialler", "--dialler-listen (VOX_DIALLER_LISTEN)")?;
    }
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
            let console_built = console_dir(&args)?.join("index.html").is_file();
            print!("{}", banner(&ready, &layout, &credentials, args.workers, console_built));
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
    for name in ["voxbridge", "voxgate", "voxsim", "voxdialler"] {
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
            // The folder the fleet writes recordings to: voxbridge tells the fleet (which
            // checks its own flag against it) and plays recordings back from it.
            "--recordings-dir".into(),
            layout.recordings().display().to_string(),
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
            "--console-dir".into(),
            console_dir(args)?.display().to_string(),
        ]
        .into_iter()
        // The console's live pacing figures come from the dialler's status server.
        .chain(
            args.demo
                .then(|| ["--dialler-url".to_string(), ready::client_url(args.dialler_listen)])
                .into_iter()
                .flatten(),
        )
        .collect(),
        envs: vec![
            ("VOX_NODE_SECRET", nodes.gateway.secret.clone()),
            ("VOX_CONSOLE_NODE_SECRET", nodes.console.secret.clone()),
            ("TWILIO_AUTH_TOKEN", credentials.twilio_auth_token.clone()),
        ],
    };
    announce(children.start(gateway, &layout.logs())?);
    let gateway_url = ready::address_url(children, "voxgate", &layout.address_file("voxgate")).await?;
    ready::healthy(children, &client, "voxgate", &gateway_url).await?;
    admin.set_endpoint(&nodes.gateway.id, &gateway_url).await?;
    admin.set_endpoint(&nodes.console.id, &gateway_url).await?;
    tracing::info!(url = %gateway_url, workers = args.workers, "voxgate is healthy; waiting for the fleet");

    ready::fleet_available(children, &client, &gateway_url, args.workers).await?;
    let demo = if args.demo {
        Some(
            start_demo(
                args,
                layout,
                binaries,
                credentials,
                children,
                &admin,
                &nodes.region_id,
                &bridge_url,
                &gateway_url,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Ready { bridge_url, gateway_url, demo })
}

/// Starts voxsim and voxdialler and the demo campaign (see [`crate::demo`]).
#[allow(clippy::too_many_arguments, reason = "one step of `start`, sharing its state")]
async fn start_demo(
    args: &UpArgs,
    layout: &Layout,
    binaries: &Binaries,
    credentials: &Credentials,
    children: &mut Children,
    admin: &Admin,
    region_id: &str,
    bridge_url: &str,
    gateway_url: &str,
) -> anyhow::Result<DemoReady> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().context("build an http client")?;
    let mut sim_args = vec![
        "--listen".to_string(),
        args.sim_listen.to_string(),
        "--address-file".into(),
        layout.address_file("voxsim").display().to_string(),
    ];
    sim_args.extend(crate::demo::sim_model());
    let sim = Launch {
        name: "voxsim",
        program: binaries.voxsim.clone(),
        args: sim_args,
        envs: vec![("VOXSIM_AUTH_TOKEN", credentials.twilio_auth_token.clone())],
    };
    announce(children.start(sim, &layout.logs())?);
    let sim_url = ready::address_url(children, "voxsim", &layout.address_file("voxsim")).await?;
    ready::healthy(children, &client, "voxsim", &sim_url).await?;

    let dialler_node = admin.ensure_dialler(region_id).await?;
    let dialler = Launch {
        name: "voxdialler",
        program: binaries.voxdialler.clone(),
        args: vec![
            "--health-listen".into(),
            args.dialler_listen.to_string(),
            "--address-file".into(),
            layout.address_file("voxdialler").display().to_string(),
            "--bridge-url".into(),
            bridge_url.to_string(),
            "--provider".into(),
            "sim".into(),
            "--provider-url".into(),
            sim_url.clone(),
            "--gateway-url".into(),
            gateway_url.to_string(),
        ],
        envs: vec![
            ("VOX_NODE_SECRET", dialler_node.secret.clone()),
            ("TWILIO_AUTH_TOKEN", credentials.twilio_auth_token.clone()),
        ],
    };
    announce(children.start(dialler, &layout.logs())?);
    let dialler_url = ready::address_url(children, "voxdialler", &layout.address_file("voxdialler")).await?;
    let campaign_id = admin.ensure_demo_campaign(region_id, args.workers).await?;
    tracing::info!(campaign_id = %campaign_id, "the demo is dialling");
    Ok(DemoReady { sim_url, dialler_url, campaign_id })
}

/// The console folder voxgate serves, made absolute (voxgate may run from elsewhere).
fn console_dir(args: &UpArgs) -> anyhow::Result<PathBuf> {
    std::path::absolute(&args.console_dir)
        .with_context(|| format!("resolve console dir {}", args.console_dir.display()))
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
pub fn banner(ready: &Ready, layout: &Layout, credentials: &Credentials, workers: u32, console_built: bool) -> String {
    let g = &ready.gateway_url;
    let console = if console_built {
        format!(
            "{g}/  (sign in as {email}; the password is in {creds})",
            email = credentials.admin_email,
            creds = layout.credentials().display()
        )
    } else {
        format!("{g}/  (not built yet: run `bash console/build.sh`, then reload)")
    };
    format!(
        "\nVox is up. Ctrl-C stops it.\n\
         \x20 web console       {console}\n\
         \x20 voxbridge (gRPC)  {bridge}\n\
         \x20 gateway           {g}\n\
         \x20   fleet health    {g}/health/fleet\n\
         \x20   REST API        {g}/api/v1/openapi.json\n\
         \x20 worker slots      {workers}\n\
         \x20 logs              {logs}/{{voxbridge,voxcore,voxgate}}.log\n\
         \x20 credentials       {creds} (admin {email}, password and Twilio auth token; mode 0600)\n{demo}\n",
        bridge = ready.bridge_url,
        logs = layout.logs().display(),
        creds = layout.credentials().display(),
        email = credentials.admin_email,
        demo = ready.demo.as_ref().map(demo_lines).unwrap_or_default(),
    )
}

fn demo_lines(d: &DemoReady) -> String {
    format!(
        "\x20 demo campaign     {id} is dialling through voxsim (Campaigns and Calls in the console)\n\
         \x20 dialler health    {dl}/health   pacing figures: {dl}/metrics\n\
         \x20 carrier (voxsim)  {sim} (its calls: GET /sim/calls, basic auth with the Twilio token)\n",
        id = d.campaign_id,
        dl = d.dialler_url,
        sim = d.sim_url,
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
        let ready = Ready {
            bridge_url: "http://127.0.0.1:7070".into(),
            gateway_url: "http://127.0.0.1:8080".into(),
            demo: None,
        };
        let text = banner(&ready, &layout, &credentials, 4, true);
        for want in [
            "web console       http://127.0.0.1:8080/  (sign in as admin@vox.local; the password is in /srv/vox/credentials.toml)",
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
        let unbuilt = banner(&ready, &layout, &credentials, 4, false);
        assert!(unbuilt.contains("http://127.0.0.1:8080/  (not built yet: run `bash console/build.sh`"), "{unbuilt}");
    }

    #[test]
    fn a_relative_data_dir_becomes_absolute() {
        let layout = Layout::new(Path::new("vox-data")).unwrap();
        assert!(layout.data.is_absolute());
        assert!(layout.run().ends_with("vox-data/run"));
    }
}
