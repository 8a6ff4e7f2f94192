//! `voxctl health`: the runbook's checks, in its order, against a running cluster.
//!
//! voxbridge first (it is the source of truth and everything depends on it: if it or its
//! store does not answer, nothing else is checked), then each fleet host (online, free
//! slots), each gateway (online, its own `/health`, the worker slots it can reach), the
//! dialler (someone holds the leadership lease; with `--dialler-url`, the leader's tick
//! age from its `/health`), and each region's recording storage (voxbridge writes, reads
//! and deletes a probe object). Disabled nodes are left out; nodes in maintenance are
//! reported, not failed.
//!
//! Each check ends `ok`, `warn` (worth a look, not an outage: a full host, a node in
//! maintenance) or `fail`. The exit status is non-zero when any check failed, and the
//! error names the first failing part.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// voxbridge's gRPC URL (its /health is on the same port).
    #[arg(long, env = "VOX_BRIDGE_URL", default_value = "http://127.0.0.1:7070")]
    pub bridge_url: String,
    /// A user to sign in as (any role; an operator or admin also gets the storage checks).
    #[arg(long, env = "VOX_ADMIN_EMAIL")]
    pub email: Option<String>,
    /// That user's password.
    #[arg(long, env = "VOX_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The data dir of `voxctl up`: sign in with the development credentials it keeps
    /// there, when --email/--password are not given.
    #[arg(long, env = "VOX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A dialler's health server (repeatable): the leader must report a fresh tick.
    #[arg(long = "dialler-url", env = "VOX_DIALLER_URLS", value_delimiter = ',')]
    pub dialler_urls: Vec<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub part: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// Every check, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub healthy: bool,
    pub first_failure: Option<String>,
    pub checks: Vec<Check>,
}

pub async fn run(args: &Args, out: &mut (impl std::io::Write + Send)) -> anyhow::Result<()> {
    let checks = check(args).await?;
    let first = checks.iter().find(|c| c.verdict == Verdict::Fail).map(|c| format!("{}: {}", c.part, c.detail));
    let report = Report { healthy: first.is_none(), first_failure: first.clone(), checks };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        let width = report.checks.iter().map(|c| c.part.len()).max().unwrap_or(4);
        writeln!(out, "{:<width$}  {:<4}  detail", "part", "")?;
        for c in &report.checks {
            let verdict = match c.verdict {
                Verdict::Ok => "ok",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            writeln!(out, "{:<width$}  {verdict:<4}  {}", c.part, c.detail)?;
        }
    }
    match first {
        Some(f) => bail!("unhealthy: {f}"),
        None => Ok(()),
    }
}

fn line(part: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check { part: part.into(), verdict, detail: detail.into() }
}

/// Runs every check in the runbook's order.
pub async fn check(args: &Args) -> anyhow::Result<Vec<Check>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let bridge = args.bridge_url.trim_end_matches('/');
    let mut checks = vec![bridge_health(&http, bridge).await];
    if checks[0].verdict == Verdict::Fail {
        return Ok(checks);
    }
    let (email, password) = credentials(args)?;
    let channel = Channel::from_shared(bridge.to_string())
        .with_context(|| format!("--bridge-url {bridge:?}"))?
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    let token = match pb::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest { email: email.clone(), password })
        .await
    {
        Ok(r) => r.into_inner().access_token,
        Err(s) => {
            checks.push(line("sign-in", Verdict::Fail, format!("{email}: {}", s.message())));
            return Ok(checks);
        }
    };
    let api = Api { channel, token };
    let nodes = api.nodes().await?;
    let live = |kind: pb::NodeKind| {
        nodes.iter().filter(move |n| n.kind == kind as i32 && n.desired_state != pb::DesiredState::Disabled as i32)
    };

    // Hosts before gateways: a gateway that reaches no worker is usually a host's fault,
    // and the first failure named should be the cause.
    let fleets: Vec<_> = live(pb::NodeKind::Fleet).collect();
    if fleets.is_empty() {
        checks.push(line("fleet", Verdict::Fail, "no fleet host is registered: calls have nowhere to go"));
    }
    for f in fleets {
        checks.push(fleet_host(f));
    }
    for g in live(pb::NodeKind::Gateway) {
        checks.push(gateway(&http, g).await);
    }
    checks.extend(dialler(&http, &api, live(pb::NodeKind::Dialler).collect(), &args.dialler_urls).await?);
    checks.extend(api.storage().await?);
    Ok(checks)
}

fn credentials(args: &Args) -> anyhow::Result<(String, String)> {
    if let (Some(e), Some(p)) = (&args.email, &args.password) {
        return Ok((e.clone(), p.clone()));
    }
    if let Some(dir) = &args.data_dir {
        let path = dir.join("credentials.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let c: crate::credentials::Credentials =
            toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        return Ok((c.admin_email, c.admin_password));
    }
    bail!("sign in with --email and --password (VOX_ADMIN_EMAIL, VOX_ADMIN_PASSWORD), or --data-dir of `voxctl up`")
}

async fn bridge_health(http: &reqwest::Client, bridge: &str) -> Check {
    let part = format!("voxbridge {bridge}");
    match http.get(format!("{bridge}/health")).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let version = body["version"].as_str().unwrap_or("?");
            if ok {
                line(part, Verdict::Ok, format!("store answers; version {version}"))
            } else {
                line(
                    part,
                    Verdict::Fail,
                    format!("the store does not answer: {}", body["store"].as_str().unwrap_or("?")),
                )
            }
        }
        Err(e) => line(part, Verdict::Fail, format!("unreachable: {e}")),
    }
}

fn name(n: &pb::Node) -> String {
    format!("{} ({})", n.name, n.id)
}

fn offline_detail(n: &pb::Node) -> String {
    match &n.last_heartbeat_at {
        Some(t) => {
            let ago = chrono_now_seconds() - t.seconds;
            format!("offline: last heartbeat {ago} s ago")
        }
        None => "offline: registered but never heartbeated".into(),
    }
}

fn chrono_now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn maintenance(n: &pb::Node) -> bool {
    n.desired_state == pb::DesiredState::Maintenance as i32
}

async fn gateway(http: &reqwest::Client, g: &pb::Node) -> Check {
    let part = format!("gateway {}", name(g));
    if !g.online {
        return line(part, Verdict::Fail, offline_detail(g));
    }
    let url = g.endpoint.trim_end_matches('/');
    let h = match http.get(format!("{url}/health")).send().await {
        Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.unwrap_or_default(),
        Ok(r) => return line(part, Verdict::Fail, format!("{url}/health answered {}", r.status())),
        Err(e) => return line(part, Verdict::Fail, format!("{url}/health unreachable: {e}")),
    };
    let (slots, free) = (h["worker_slots"].as_u64().unwrap_or(0), h["fleet_available"].as_u64().unwrap_or(0));
    let detail = format!("{free} of {slots} worker slots free; version {}", h["version"].as_str().unwrap_or("?"));
    if slots == 0 {
        line(part, Verdict::Fail, format!("{detail}: it reaches no worker, calls are refused"))
    } else if h["worker_token"].as_bool() == Some(false) {
        line(part, Verdict::Fail, format!("{detail}: voxbridge has not given it a worker token, workers refuse it"))
    } else if maintenance(g) || h["draining"].as_bool() == Some(true) {
        line(part, Verdict::Warn, format!("draining; {detail}"))
    } else if free == 0 {
        line(part, Verdict::Warn, format!("{detail}: every slot is busy"))
    } else {
        line(part, Verdict::Ok, detail)
    }
}

fn fleet_host(f: &pb::Node) -> Check {
    let part = format!("fleet host {}", name(f));
    if !f.online {
        return line(part, Verdict::Fail, offline_detail(f));
    }
    let idle = f.workers.iter().filter(|w| w.state == common::WorkerState::Idle as i32).count();
    let detail = format!("{idle} of {} worker slots free", f.workers.len());
    if maintenance(f) {
        line(part, Verdict::Warn, format!("in maintenance (draining); {detail}"))
    } else if f.workers.is_empty() {
        line(part, Verdict::Fail, "online but reports no worker slot")
    } else if idle == 0 {
        line(part, Verdict::Warn, format!("{detail}: the host is full"))
    } else {
        line(part, Verdict::Ok, detail)
    }
}

async fn dialler(
    http: &reqwest::Client,
    api: &Api,
    diallers: Vec<&pb::Node>,
    urls: &[String],
) -> anyhow::Result<Vec<Check>> {
    if diallers.is_empty() && urls.is_empty() {
        return Ok(vec![line("dialler", Verdict::Ok, "no dialler registered (inbound only)")]);
    }
    let lease = api.leadership().await?;
    let holder = diallers.iter().find(|d| d.id == lease.holder_id);
    let expired = lease.expires_at.as_ref().is_none_or(|t| t.seconds < chrono_now_seconds());
    let mut checks = vec![match (lease.holder_id.is_empty(), expired, holder) {
        (true, _, _) => line("dialler leadership", Verdict::Fail, "no dialler holds the lease: nothing is dialling"),
        (false, true, _) => line(
            "dialler leadership",
            Verdict::Fail,
            format!("the lease of {} (term {}) expired and nobody renewed it", lease.holder_id, lease.term),
        ),
        (false, false, Some(h)) if !h.online => line(
            "dialler leadership",
            Verdict::Fail,
            format!("the leader {} holds the lease but is {}", name(h), offline_detail(h)),
        ),
        (false, false, _) => {
            line("dialler leadership", Verdict::Ok, format!("{} leads, term {}", lease.holder_id, lease.term))
        }
    }];
    for url in urls {
        let url = url.trim_end_matches('/');
        let part = format!("dialler {url}");
        let r = http.get(format!("{url}/health")).send().await;
        let check = match r {
            Err(e) => line(part, Verdict::Fail, format!("unreachable: {e}")),
            Ok(r) => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let reason = body["reason"].as_str().unwrap_or("?").to_string();
                let age = body["last_tick_age_seconds"].as_f64();
                match (body["leader"].as_bool(), body["healthy"].as_bool()) {
                    (Some(true), Some(true)) => {
                        line(part, Verdict::Ok, format!("leading; last tick {:.1} s ago", age.unwrap_or(f64::NAN)))
                    }
                    (Some(true), _) => line(part, Verdict::Fail, format!("leading but unhealthy: {reason}")),
                    (Some(false), _) if reason.contains("standing by") => line(part, Verdict::Ok, reason),
                    _ => line(part, Verdict::Fail, reason),
                }
            }
        };
        checks.push(check);
    }
    Ok(checks)
}

struct Api {
    channel: Channel,
    token: String,
}

impl Api {
    fn authed<T>(&self, msg: T) -> anyhow::Result<tonic::Request<T>> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse().context("a token fit for a header")?);
        Ok(r)
    }

    async fn nodes(&self) -> anyhow::Result<Vec<pb::Node>> {
        let mut c = pb::node_service_client::NodeServiceClient::new(self.channel.clone());
        let r = c.list_nodes(self.authed(pb::ListNodesRequest::default())?).await.context("list nodes")?;
        Ok(r.into_inner().nodes)
    }

    async fn leadership(&self) -> anyhow::Result<pb::Leadership> {
        let mut c = pb::leadership_service_client::LeadershipServiceClient::new(self.channel.clone());
        Ok(c.get_leadership(self.authed(pb::GetLeadershipRequest {})?)
            .await
            .context("read the leadership lease")?
            .into_inner())
    }

    /// Each region's storage probe (operators and admins; a viewer gets a warning).
    async fn storage(&self) -> anyhow::Result<Vec<Check>> {
        let mut regions = pb::region_service_client::RegionServiceClient::new(self.channel.clone());
        let list = regions.list_regions(self.authed(pb::ListRegionsRequest {})?).await.context("list regions")?;
        let mut storage = pb::storage_service_client::StorageServiceClient::new(self.channel.clone());
        let mut checks = Vec::new();
        for region in list.into_inner().regions {
            let part = format!("storage of region {} ({})", region.name, region.id);
            let req = self.authed(pb::TestRegionStorageRequest { region_id: region.id.clone() })?;
            checks.push(match storage.test_region_storage(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let detail = format!("{}: {} ({} ms)", r.backend, r.detail, r.elapsed_ms);
                    line(part, if r.ok { Verdict::Ok } else { Verdict::Fail }, detail)
                }
                Err(s) if s.code() == tonic::Code::PermissionDenied => {
                    line(part, Verdict::Warn, "not checked: it needs an operator or admin")
                }
                Err(s) => line(part, Verdict::Fail, s.message().to_string()),
            });
        }
        Ok(checks)
    }
}
