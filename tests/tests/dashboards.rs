//! The Grafana dashboards (`ops/monitoring/grafana/dashboards/*.json`) against a real
//! Prometheus that scraped a running cluster: `voxctl up --demo` (voxbridge, a fleet host
//! with two workers, voxgate, and voxdialler dialling a demo campaign through voxsim), and
//! the apt `prometheus` scraping all of it every second. Every query of every panel must
//! parse and return at least one series; a panel whose figure can be absent in a healthy
//! cluster (no watchdog hang-up yet, nothing shed) is written to show 0 instead (`or
//! vector(0)`), and each metric such a panel names must still be one the processes
//! declare, so a misspelt name cannot hide behind the 0.
//!
//! prometheus is required (`bash ops/install-test-deps.sh` installs it): without it the
//! test fails, naming what is missing; it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vox_testkit::{require_program, workspace_binary};

const INSTALL_HINT: &str = "install it with `bash ops/install-test-deps.sh`";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long Prometheus may take to hold every figure the wait asks for.
const DATA_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The jobs of `ops/monitoring/prometheus.yml` this cluster has (no node_exporter here).
const JOBS: [&str; 4] = ["voxbridge", "voxgate", "voxcore", "voxdialler"];

/// Metrics a healthy cluster only shows once something happened: a refusal, a reaped call,
/// a watchdog hang-up, or (for `voxcore_calls_total`) the first demo call ending, about a
/// minute in. Panels on them must return a series anyway (`or vector(0)`); the names must
/// still be declared by a process's `/metrics`.
const MAY_HAVE_NO_SAMPLES: [&str; 12] = [
    "voxbridge_heartbeat_rejections_total",
    "voxbridge_lease_rejections_total",
    "voxbridge_call_transition_rejections_total",
    "voxbridge_sign_ins_throttled_total",
    "voxbridge_requests_shed_total",
    "voxbridge_calls_reaped_total",
    "voxgate_rejections_total",
    "voxgate_reservation_retries_total",
    "voxgate_peers_not_reading_total",
    "voxdialler_placement_failures_total",
    "voxcore_watchdog_hangups_total",
    "voxcore_calls_total",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn grafana() -> PathBuf {
    repo().join("ops/monitoring/grafana")
}

/// Every dashboard file, by file name.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = grafana().join("dashboards");
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let json: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            found.insert(path.file_name().unwrap().to_string_lossy().into_owned(), json);
        }
    }
    found
}

/// Every panel, rows' folded panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// One panel query as Prometheus gets it.
#[derive(Debug)]
struct Query {
    /// `<file> / <panel title> / <refId>`, for failure messages.
    place: String,
    expr: String,
}

/// Every target expression of `dashboard`, with Grafana's variables replaced the way
/// Grafana would on a 15 s-scrape Prometheus: `$__rate_interval` by 1m, `$__interval` by
/// 15s, `$__range` by 1h, and each template variable by its "All" value `.*`.
fn queries(file: &str, dashboard: &Value) -> Vec<Query> {
    let variables: Vec<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] != "datasource")
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"].as_str().unwrap_or_default().to_string();
            for (name, value) in [("__rate_interval", "1m"), ("__interval", "15s"), ("__range", "1h")] {
                expr = expr.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
            }
            for name in &variables {
                for form in [format!("${{{name}}}"), format!("[[{name}]]"), format!("${name}")] {
                    expr = expr.replace(&form, ".*");
                }
            }
            out.push(Query {
                place: format!("{file} / {} / {}", panel["title"].as_str().unwrap_or("?"), target["refId"]),
                expr,
            });
        }
    }
    out
}

/// The metric names an expression reads: Vox's own and the process figures, plus `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let prefixes = ["vox_", "voxbridge_", "voxgate_", "voxcore_", "voxdialler_", "process_"];
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| prefixes.iter().any(|p| w.starts_with(p)))
        .map(String::from)
        .collect()
}

#[test]
fn every_dashboard_is_provisionable_grafana_json_on_any_prometheus() {
    let dashboards = dashboards();
    let names: BTreeSet<&str> = dashboards.keys().map(String::as_str).collect();
    for expected in ["overview.json", "fleet.json", "dialler.json", "gateway.json", "storage.json"] {
        assert!(names.contains(expected), "no dashboard {expected} in ops/monitoring/grafana/dashboards: {names:?}");
    }
    let mut uids = BTreeSet::new();
    for (file, d) in &dashboards {
        let uid = d["uid"].as_str().unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(uids.insert(uid.to_string()), "{file}: uid {uid} is taken by another dashboard");
        assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 39), "{file}: schemaVersion below 39");
        assert!(d["title"].as_str().is_some_and(|t| t.starts_with("Vox / ")), "{file}: title should start 'Vox / '");
        let datasource = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{file}: no `datasource` template variable"));
        assert_eq!(datasource["type"], "datasource", "{file}: `datasource` must be a data source variable");
        assert_eq!(datasource["query"], "prometheus", "{file}: `datasource` must list Prometheus data sources");
        let mut ids = BTreeSet::new();
        for panel in panels(d) {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(ids.insert(panel["id"].as_u64().unwrap()), "{file}: panel id of {title:?} repeats");
            if panel["type"] == "row" {
                continue;
            }
            assert!(
                panel["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: {title:?} has no description saying what it shows"
            );
            let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{file}: {title:?} has no targets"));
            assert!(!targets.is_empty(), "{file}: {title:?} has no query");
            // A hard-coded data source uid would break on every other Grafana.
            for ds in std::iter::once(&panel["datasource"]).chain(targets.iter().map(|t| &t["datasource"])) {
                assert_eq!(ds["uid"], "${datasource}", "{file}: {title:?} names data source {ds}, not ${{datasource}}");
            }
        }
    }
    let provider = std::fs::read_to_string(grafana().join("provisioning/dashboards/vox.yml")).unwrap();
    assert!(provider.contains("type: file") && provider.contains("path: "), "the dashboard provider loads files");
    let source = std::fs::read_to_string(grafana().join("provisioning/datasources/vox.yml")).unwrap();
    assert!(source.contains("type: prometheus"), "the provisioned data source is a Prometheus");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Stops `child` with SIGTERM, as a user would (so voxctl stops its own children), then
/// kills it if it lingers.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running `voxctl up --demo` and a Prometheus scraping it; both stopped on drop, with
/// every log printed when the test failed.
struct Cluster {
    voxctl: Option<Child>,
    prometheus: Option<Child>,
    dir: PathBuf,
    stdout: Vec<String>,
}

impl Cluster {
    fn logs(&self) -> String {
        let mut out = format!("--- voxctl stdout ---\n{}\n", self.stdout.join("\n"));
        let mut files: Vec<PathBuf> = ["voxctl.err", "prometheus.log"].iter().map(|f| self.dir.join(f)).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("data/logs")) {
            let mut logs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            logs.sort();
            files.extend(logs);
        }
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            out += &format!("--- {} (last 40 lines) ---\n{}\n", path.display(), tail.join("\n"));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for child in [self.prometheus.take(), self.voxctl.take()].into_iter().flatten() {
            let mut child = child;
            stop(&mut child);
        }
    }
}

/// `host:port` of an `http://host:port` URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// Starts the cluster, reading voxctl's stdout until `VOX_READY`; returns it with the
/// scrape targets of each job.
fn start_cluster(dir: &Path) -> (Cluster, BTreeMap<&'static str, String>) {
    let bins = ["voxbridge", "voxcore", "voxgate", "voxdialler", "voxsim"].map(|b| workspace_binary(b, b));
    let bin_dir = bins[0].parent().unwrap().to_path_buf();
    assert!(bins.iter().all(|b| b.parent() == Some(bin_dir.as_path())), "one folder holds {bins:?}");
    let voxctl = workspace_binary("voxctl", "voxctl");
    // Ports a concurrent `voxctl up` in another test would also want by default.
    let (dialler, host_metrics) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut child = Command::new(voxctl)
        .args(["up", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--workers", "2", "--bridge-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .args(["--demo", "--sim-listen", "127.0.0.1:0", "--dialler-listen", &dialler])
        .args(["--host-metrics-listen", &host_metrics, "--bin-dir"])
        .arg(&bin_dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("voxctl.err")).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut cluster = Cluster { voxctl: Some(child), prometheus: None, dir: dir.to_path_buf(), stdout: Vec::new() };
    let deadline = Instant::now() + READY_TIMEOUT;
    let ready = loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                cluster.stdout.push(line.clone());
                if let Some(rest) = line.strip_prefix("VOX_READY ") {
                    break rest.to_string();
                }
            }
            Err(e) => panic!("voxctl up --demo was not ready within {READY_TIMEOUT:?} ({e})"),
        }
    };
    let field = |name: &str| {
        ready
            .split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in VOX_READY {ready}"))
            .to_string()
    };
    let targets = BTreeMap::from([
        ("voxbridge", authority(&field("bridge"))),
        ("voxgate", authority(&field("gateway"))),
        ("voxcore", host_metrics),
        ("voxdialler", dialler),
    ]);
    (cluster, targets)
}

/// The scrape config of the test: `ops/monitoring/prometheus.yml`'s jobs, every second.
fn prometheus_config(targets: &BTreeMap<&'static str, String>) -> String {
    let mut config = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n");
    config += "scrape_configs:\n";
    for (job, target) in targets {
        config += &format!("  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n");
    }
    config
}

/// `GET /api/v1/query`: Prometheus' answer, or why the query failed.
async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Result<Vec<Value>, String> {
    let response = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| format!("cannot reach Prometheus: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("HTTP {status}, not JSON: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("HTTP {status}: {} {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Waits until every expression of `conditions` returns a series.
async fn wait_for_data(client: &reqwest::Client, prometheus: &str, conditions: &[&str]) {
    let deadline = Instant::now() + DATA_TIMEOUT;
    for condition in conditions {
        loop {
            match query(client, prometheus, condition).await {
                Ok(result) if !result.is_empty() => break,
                outcome => assert!(
                    Instant::now() < deadline,
                    "Prometheus had no data for {condition} within {DATA_TIMEOUT:?}: {outcome:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The metric families `/metrics` of `target` declares (`# TYPE` lines).
async fn declared_families(client: &reqwest::Client, target: &str) -> BTreeSet<String> {
    let text = client.get(format!("http://{target}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_prometheus_scraping_a_running_cluster() {
    let prometheus_bin = require_program("prometheus", INSTALL_HINT);
    let dashboards = dashboards();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut cluster, targets) = start_cluster(tmp.path());
    // A gRPC health probe of the dialler, as a load balancer or an orchestrator makes: the
    // dialler's RPC figures then have a series (the console's status calls do the same).
    let probe = vox_testkit::grpcurl(&["-plaintext", &targets["voxdialler"], "grpc.health.v1.Health/Check"]);
    assert!(probe.contains("status"), "{probe}");

    let config = tmp.path().join("prometheus.yml");
    std::fs::write(&config, prometheus_config(&targets)).unwrap();
    let prometheus = format!("http://127.0.0.1:{}", free_port());
    cluster.prometheus = Some(
        Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tmp.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={}", authority(&prometheus)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    // Every job up, ten seconds of samples (so rate() has points), and the figures calls
    // make: the demo campaign's answered calls, audio through the gateway and the workers.
    let jobs = JOBS.join("|");
    wait_for_data(
        &client,
        &prometheus,
        &[
            &format!("count(up{{job=~\"{jobs}\"}} == 1) == {}", JOBS.len()),
            "min(count_over_time(up[1m])) >= 10",
            "sum(voxdialler_calls_answered_total) > 0",
            "sum(rate(voxgate_media_frames_total[1m])) > 0",
            "sum(rate(voxcore_frames_received_total[1m])) > 0",
            "sum(rate(voxcore_frame_lateness_seconds_count[1m])) > 0",
        ],
    )
    .await;
    let data_at = started.elapsed();

    let mut declared = BTreeSet::new();
    for target in targets.values() {
        declared.extend(declared_families(&client, target).await);
    }
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    let mut count = 0;
    for (file, dashboard) in &dashboards {
        for q in queries(file, dashboard) {
            count += 1;
            names.extend(metric_names(&q.expr));
            match query(&client, &prometheus, &q.expr).await {
                Ok(result) if result.is_empty() => failures.push(format!("{}: no data for {}", q.place, q.expr)),
                Ok(_) => {}
                Err(e) => failures.push(format!("{}: {e}\n    {}", q.place, q.expr)),
            }
        }
    }
    // Each name a panel reads is declared by a process, and has samples unless it is one
    // that a short healthy run may not have touched yet.
    for name in &names {
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| declared.contains(*f))
            .unwrap_or(name);
        if !declared.contains(family) {
            failures.push(format!("{name}: no process declares this metric (is it misspelt?)"));
            continue;
        }
        if MAY_HAVE_NO_SAMPLES.contains(&name.as_str()) {
            continue;
        }
        match query(&client, &prometheus, &format!("count({{__name__=\"{name}\"}})")).await {
            Ok(r) if !r.is_empty() => {}
            outcome => failures.push(format!("{name}: Prometheus scraped no sample of it ({outcome:?})")),
        }
    }
    assert!(count >= 60, "only {count} panel queries in {} dashboards", dashboards.len());
    assert!(failures.is_empty(), "{} of {count} dashboard queries failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!(
        "{count} queries over {} metrics returned data; data after {data_at:?}, done after {:?}",
        names.len(),
        started.elapsed()
    );
}
