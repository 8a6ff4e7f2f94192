//! `voxctl up`: a whole cluster on one machine with embedded storage and zero setup.
//!
//! Starts voxbridge, prepares the region and nodes inside it (fresh node secrets every
//! run), starts the fleet hosts and gateways of the [`Plan`] (one of each by default)
//! with those secrets in their environment, waits until every gateway sees every worker
//! slot free, prints where everything is, and stays in the foreground until Ctrl-C or
//! SIGTERM, when it stops the children in reverse order. A child that dies on its own
//! stops the rest and fails the command.

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
use crate::topology::Plan;

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

    fn create(&self, plan: &Plan) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data).with_context(|| format!("create data dir {}", self.data.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // It holds the credentials file and voxbridge's generated keys.
            std::fs::set_permissions(&self.data, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restrict data dir {}", self.data.display()))?;
        }
        let hosts = plan.hosts.iter().flat_map(|h| [h.socket_dir.clone(), h.spool_dir.clone()]);
        for dir in [self.run(), self.spool(), self.recordings(), self.logs()].into_iter().chain(hosts) {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Where the running cluster answers.
#[derive(Debug, Clone)]
pub struct Ready {
    pub bridge_url: String,
    /// Gateway 1's URL (the console's, the demo's).
    pub gateway_url: String,
    /// Each process on its own loopback address ([`Plan::spread`]): the banner lists them.
    pub spread: bool,
    pub gateways: Vec<GatewayReady>,
    pub hosts: Vec<HostReady>,
    pub demo: Option<DemoReady>,
}

/// A running gateway.
#[derive(Debug, Clone)]
pub struct GatewayReady {
    pub process: String,
    pub node_name: String,
    pub url: String,
}

/// A running fleet host and where its workers are, as its heartbeats advertise them.
#[derive(Debug, Clone)]
pub struct HostReady {
    pub process: String,
    pub node_name: String,
    pub node_id: String,
    pub workers: Vec<String>,
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
    let layout = Layout::new(&args.data_dir)?;
    let plan = Plan::new(&args, &layout.data)?;
    if args.demo {
        preflight::port_free(args.sim_listen, "voxsim", "--sim-listen (VOX_SIM_LISTEN)")?;
        preflight::port_free(args.dialler_listen, "voxdialler", "--dialler-listen (VOX_DIALLER_LISTEN)")?;
    }
    preflight::port_free(args.bridge_listen, "voxbridge", "--bridge-listen (VOX_BRIDGE_LISTEN)")?;
    for (j, g) in plan.gateways.iter().enumerate() {
        let flag = if j == 0 {
            "--gateway-listen (VOX_GATEWAY_LISTEN)"
        } else {
            "--gateway-listen (VOX_GATEWAY_LISTEN), whose port every gateway shares,"
        };
        preflight::port_free(g.listen, &g.process, flag)?;
    }
    for (what, addr) in plan.worker_addresses(args.workers, args.worker_base_port) {
        preflight::port_free(addr, &what, "--worker-base-port (VOX_WORKER_BASE_PORT)")?;
    }
    layout.create(&plan)?;
    let (credentials, created) = Credentials::load_or_create(&layout.credentials(), &mut rand::rng())?;
    if created {
        tracing::info!(path = %layout.credentials().display(), "generated development credentials");
    }

    let mut signals = StopSignals::install()?;
    let mut children = Children::default();
    let started = tokio::select! {
        r = start(&args, &layout, &plan, &binaries, &credentials, &mut children) => r.map(Some),
        name = signals.recv() => {
            tracing::info!(signal = name, "stopping before the cluster was ready");
            Ok(None)
        }
    };
    let outcome = match started {
        Ok(Some(ready)) => {
            let console_built = console_dir(&args)?.join("index.html").is_file();
            print!(
                "{}",
                banner(
                    &ready,
                    &layout,
                    &credentials,
                    args.workers.saturating_mul(args.calls_per_worker),
                    console_built
                )
            );
            println!("{}", ready_line(&ready));
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
    plan: &Plan,
    binaries: &Binaries,
    credentials: &Credentials,
    children: &mut Children,
) -> anyhow::Result<Ready> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().context("build an http client")?;
    let gateway_processes = plan.gateways.iter().map(|g| g.process.as_str());
    for name in ["voxbridge", "voxsim", "voxdialler"].into_iter().chain(gateway_processes) {
        let _ = std::fs::remove_file(layout.address_file(name));
    }

    let bridge = Launch {
        name: "voxbridge".into(),
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
    let nodes = admin.prepare(plan).await?;

    for (host, node) in plan.hosts.iter().zip(&nodes.fleets) {
        let mut host_args: Vec<String> = vec![
            "host".into(),
            "--workers".into(),
            args.workers.to_string(),
            "--max-concurrent-calls".into(),
            args.calls_per_worker.to_string(),
            "--socket-dir".into(),
            host.socket_dir.display().to_string(),
            "--spool-dir".into(),
            host.spool_dir.display().to_string(),
            // One machine: every host writes where voxbridge plays recordings back from.
            "--recordings-dir".into(),
            layout.recordings().display().to_string(),
            "--bridge-url".into(),
            bridge_url.clone(),
        ];
        if let Some(ip) = host.listen_ip {
            // Workers over TCP on the host's own address, advertised as it (the default
            // of --advertise), which every gateway reaches.
            host_args.extend([
                "--listen-ip".into(),
                ip.to_string(),
                "--worker-base-port".into(),
                args.worker_base_port.to_string(),
                // Each host's /metrics on its own address, at one port (7100) like a real host.
                "--metrics-listen".into(),
                format!("{ip}:{}", args.host_metrics_listen.port()),
            ]);
        } else {
            host_args.extend(["--metrics-listen".into(), args.host_metrics_listen.to_string()]);
        }
        let launch = Launch {
            name: host.process.clone(),
            program: binaries.voxcore.clone(),
            args: host_args,
            envs: vec![("VOX_NODE_SECRET", node.secret.clone())],
        };
        announce(children.start(launch, &layout.logs())?);
    }

    for (gate, node) in plan.gateways.iter().zip(&nodes.gateways) {
        let mut envs = vec![
            ("VOX_NODE_SECRET", node.secret.clone()),
            ("TWILIO_AUTH_TOKEN", credentials.twilio_auth_token.clone()),
        ];
        if gate.console {
            envs.push(("VOX_CONSOLE_NODE_SECRET", nodes.console.secret.clone()));
        }
        let launch = Launch {
            name: gate.process.clone(),
            program: binaries.voxgate.clone(),
            args: vec![
                "--listen".into(),
                gate.listen.to_string(),
                "--address-file".into(),
                layout.address_file(&gate.process).display().to_string(),
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
            envs,
        };
        announce(children.start(launch, &layout.logs())?);
    }
    let mut gateways = Vec::new();
    for (gate, node) in plan.gateways.iter().zip(&nodes.gateways) {
        let url = ready::address_url(children, &gate.process, &layout.address_file(&gate.process)).await?;
        ready::healthy(children, &client, &gate.process, &url).await?;
        admin.set_endpoint(&node.id, &url).await?;
        if gate.console {
            admin.set_endpoint(&nodes.console.id, &url).await?;
        }
        tracing::info!(process = %gate.process, url = %url, "voxgate is healthy");
        gateways.push(GatewayReady { process: gate.process.clone(), node_name: gate.node_name.clone(), url });
    }
    let gateway_url = gateways.first().map(|g| g.url.clone()).context("a plan has at least one gateway")?;
    let slots = args
        .workers
        .saturating_mul(args.calls_per_worker)
        .saturating_mul(u32::try_from(plan.hosts.len()).unwrap_or(u32::MAX));
    tracing::info!(hosts = plan.hosts.len(), workers = args.workers, "waiting for every gateway to see the fleet");
    let host_processes: Vec<&str> = plan.hosts.iter().map(|h| h.process.as_str()).collect();
    for g in &gateways {
        ready::fleet_available(children, &client, &g.process, &g.url, slots, &host_processes).await?;
    }
    // Where the workers are, as the hosts advertise them to every gateway.
    let endpoints = ready::worker_endpoints(&client, &gateway_url).await?;
    let hosts = plan
        .hosts
        .iter()
        .zip(&nodes.fleets)
        .map(|(h, node)| {
            let mut workers: Vec<(u32, String)> =
                endpoints.iter().filter(|(n, _, _)| *n == node.id).map(|(_, i, url)| (*i, url.clone())).collect();
            workers.sort();
            // A worker of several calls is that many slots at one address: named once.
            workers.dedup_by(|a, b| a.1 == b.1);
            HostReady {
                process: h.process.clone(),
                node_name: h.node_name.clone(),
                node_id: node.id.clone(),
                workers: workers.into_iter().map(|(_, url)| url).collect(),
            }
        })
        .collect();

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
                slots,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Ready { bridge_url, gateway_url, spread: plan.spread, gateways, hosts, demo })
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
    slots: u32,
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
        name: "voxsim".into(),
        program: binaries.voxsim.clone(),
        args: sim_args,
        envs: vec![("VOXSIM_AUTH_TOKEN", credentials.twilio_auth_token.clone())],
    };
    announce(children.start(sim, &layout.logs())?);
    let sim_url = ready::address_url(children, "voxsim", &layout.address_file("voxsim")).await?;
    ready::healthy(children, &client, "voxsim", &sim_url).await?;

    let dialler_node = admin.ensure_dialler(region_id).await?;
    let dialler = Launch {
        name: "voxdialler".into(),
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
    let campaign_id = admin.ensure_demo_campaign(region_id, slots).await?;
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

/// The machine-readable line that says the cluster is ready: `VOX_READY bridge=<url>
/// gateway=<gateway 1>`, plus `gateways=<url>,<url>…` when there are several.
pub fn ready_line(ready: &Ready) -> String {
    let mut line = format!("VOX_READY bridge={} gateway={}", ready.bridge_url, ready.gateway_url);
    if ready.spread {
        let urls: Vec<&str> = ready.gateways.iter().map(|g| g.url.as_str()).collect();
        line += &format!(" gateways={}", urls.join(","));
    }
    line
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
    let (edge, slots, logs) = if ready.spread { spread_lines(ready, workers) } else { one_machine_lines(g, workers) };
    format!(
        "\nVox is up. Ctrl-C stops it.\n\
         \x20 web console       {console}\n\
         \x20 voxbridge (gRPC)  {bridge}\n\
         {edge}\
         \x20 worker slots      {slots}\n\
         \x20 logs              {logs_dir}/{{{logs}}}.log\n\
         \x20 credentials       {creds} (admin {email}, password and Twilio auth token; mode 0600)\n{demo}\n",
        bridge = ready.bridge_url,
        logs_dir = layout.logs().display(),
        creds = layout.credentials().display(),
        email = credentials.admin_email,
        demo = ready.demo.as_ref().map(demo_lines).unwrap_or_default(),
    )
}

/// The gateway lines, the slot count and the log names of the one-machine layout.
fn one_machine_lines(g: &str, workers: u32) -> (String, String, String) {
    let edge = format!(
        "\x20 gateway           {g}\n\
         \x20   fleet health    {g}/health/fleet\n\
         \x20   REST API        {g}/api/v1/openapi.json\n"
    );
    (edge, workers.to_string(), "voxbridge,voxcore,voxgate".into())
}

/// The same for a spread cluster: every gateway and every fleet host with its workers'
/// addresses.
fn spread_lines(ready: &Ready, workers: u32) -> (String, String, String) {
    let mut edge = String::new();
    for (j, gate) in ready.gateways.iter().enumerate() {
        let label = format!("gateway {}", j + 1);
        edge += &format!("\x20 {label:<18}{}  (node {})\n", gate.url, gate.node_name);
        if j == 0 {
            edge += &format!(
                "\x20   fleet health    {g}/health/fleet (on every gateway)\n\
                 \x20   REST API        {g}/api/v1/openapi.json (on every gateway)\n",
                g = gate.url
            );
        }
    }
    if ready.gateways.len() > 1 {
        edge += "\x20 one address       ops/haproxy/haproxy.cfg balances these gateways (see its header)\n";
    }
    for (k, host) in ready.hosts.iter().enumerate() {
        let label = format!("fleet host {}", k + 1);
        edge += &format!("\x20 {label:<18}node {}, workers {}\n", host.node_name, host.workers.join(" "));
    }
    let hosts = ready.hosts.len();
    let slots =
        format!("{} ({hosts} hosts x {workers})", workers.saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX)));
    let names: Vec<&str> = std::iter::once("voxbridge")
        .chain(ready.hosts.iter().map(|h| h.process.as_str()))
        .chain(ready.gateways.iter().map(|g| g.process.as_str()))
        .collect();
    (edge, slots, names.join(","))
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

    fn one_machine() -> Ready {
        Ready {
            bridge_url: "http://127.0.0.1:7070".into(),
            gateway_url: "http://127.0.0.1:8080".into(),
            spread: false,
            gateways: vec![GatewayReady {
                process: "voxgate".into(),
                node_name: "local-gateway".into(),
                url: "http://127.0.0.1:8080".into(),
            }],
            hosts: vec![HostReady {
                process: "voxcore".into(),
                node_name: "local-fleet".into(),
                node_id: "nd_1".into(),
                workers: vec!["unix:///srv/vox/run/voxcore_1.sock".into()],
            }],
            demo: None,
        }
    }

    #[test]
    fn the_banner_says_where_everything_is_and_shows_no_secret() {
        let layout = Layout::new(Path::new("/srv/vox")).unwrap();
        let credentials = Credentials::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        let ready = one_machine();
        let text = banner(&ready, &layout, &credentials, 4, true);
        let expected = "\nVox is up. Ctrl-C stops it.\n\
            \x20 web console       http://127.0.0.1:8080/  (sign in as admin@vox.local; the password is in /srv/vox/credentials.toml)\n\
            \x20 voxbridge (gRPC)  http://127.0.0.1:7070\n\
            \x20 gateway           http://127.0.0.1:8080\n\
            \x20   fleet health    http://127.0.0.1:8080/health/fleet\n\
            \x20   REST API        http://127.0.0.1:8080/api/v1/openapi.json\n\
            \x20 worker slots      4\n\
            \x20 logs              /srv/vox/logs/{voxbridge,voxcore,voxgate}.log\n\
            \x20 credentials       /srv/vox/credentials.toml (admin admin@vox.local, password and Twilio auth token; mode 0600)\n\n";
        assert_eq!(text, expected, "the one-machine banner is unchanged");
        assert!(!text.contains(&credentials.admin_password) && !text.contains(&credentials.twilio_auth_token));
        let unbuilt = banner(&ready, &layout, &credentials, 4, false);
        assert!(unbuilt.contains("http://127.0.0.1:8080/  (not built yet: run `bash console/build.sh`"), "{unbuilt}");
        assert_eq!(ready_line(&ready), "VOX_READY bridge=http://127.0.0.1:7070 gateway=http://127.0.0.1:8080");
    }

    #[test]
    fn a_spread_banner_lists_every_gateway_and_every_worker_address() {
        let layout = Layout::new(Path::new("/srv/vox")).unwrap();
        let credentials = Credentials::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        let gateway = |j: u32, url: &str| GatewayReady {
            process: format!("voxgate-{j}"),
            node_name: format!("local-gateway-{j}"),
            url: url.into(),
        };
        let host = |k: u32| HostReady {
            process: format!("voxcore-{k}"),
            node_name: format!("local-fleet-{k}"),
            node_id: format!("nd_{k}"),
            workers: (0..2).map(|i| format!("http://127.0.0.{}:{}", k + 1, 7101 + i)).collect(),
        };
        let ready = Ready {
            spread: true,
            gateways: vec![gateway(1, "http://127.0.0.1:8080"), gateway(2, "http://127.0.0.4:8080")],
            hosts: vec![host(1), host(2)],
            ..one_machine()
        };
        let text = banner(&ready, &layout, &credentials, 2, true);
        for want in [
            "  gateway 1         http://127.0.0.1:8080  (node local-gateway-1)\n",
            "    fleet health    http://127.0.0.1:8080/health/fleet (on every gateway)\n",
            "  gateway 2         http://127.0.0.4:8080  (node local-gateway-2)\n",
            "ops/haproxy/haproxy.cfg",
            "  fleet host 1      node local-fleet-1, workers http://127.0.0.2:7101 http://127.0.0.2:7102\n",
            "  fleet host 2      node local-fleet-2, workers http://127.0.0.3:7101 http://127.0.0.3:7102\n",
            "  worker slots      4 (2 hosts x 2)\n",
            "/srv/vox/logs/{voxbridge,voxcore-1,voxcore-2,voxgate-1,voxgate-2}.log",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert_eq!(
            ready_line(&ready),
            "VOX_READY bridge=http://127.0.0.1:7070 gateway=http://127.0.0.1:8080 \
             gateways=http://127.0.0.1:8080,http://127.0.0.4:8080"
        );
    }

    #[test]
    fn a_relative_data_dir_becomes_absolute() {
        let layout = Layout::new(Path::new("vox-data")).unwrap();
        assert!(layout.data.is_absolute());
        assert!(layout.run().ends_with("vox-data/run"));
    }
}
