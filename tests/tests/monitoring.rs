//! The kit an SRE deploys and is paged by, checked with the tools that will run it:
//! Prometheus' config and alert rules (`promtool check config`, `promtool test rules`),
//! the runbook section every alert links to, a release tarball built by `ops/release.sh`
//! from this build's binaries and installed by `ops/install.sh` into a scratch root whose
//! units pass `systemd-analyze verify`, and the dialler's health check.
//!
//! promtool, systemd-analyze and curl are required (`bash ops/install-test-deps.sh`
//! installs promtool): without them these tests fail, naming what is missing; they never
//! skip.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vox_testkit::{require_program, workspace_binary};

const INSTALL_HINT: &str = "install it with `bash ops/install-test-deps.sh`";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn monitoring() -> PathBuf {
    repo().join("ops/monitoring")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `cmd` and fails the test with its output unless it succeeds.
fn succeed(what: &str, cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
    assert!(out.status.success(), "{what} failed ({}):\n{}", out.status, text(&out));
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn the_prometheus_config_is_valid_and_scrapes_every_part() {
    let promtool = require_program("promtool", INSTALL_HINT);
    let out = succeed(
        "promtool check config ops/monitoring/prometheus.yml",
        Command::new(promtool).arg("check").arg("config").arg(monitoring().join("prometheus.yml")),
    );
    // A missing file_sd file is only a warning to promtool; here it is a broken config.
    assert!(!text(&out).contains("WARNING"), "promtool warns:\n{}", text(&out));
    let config = read(&monitoring().join("prometheus.yml"));
    for job in ["voxbridge", "voxgate", "voxdialler", "voxcore", "node"] {
        assert!(config.contains(&format!("job_name: {job}\n")), "prometheus.yml does not scrape {job}");
        assert!(monitoring().join(format!("targets/{job}.yml")).is_file(), "no targets/{job}.yml");
    }
    assert!(config.contains("rule_files:\n  - alerts.yml"), "prometheus.yml does not load alerts.yml");
}

#[test]
fn every_alert_rule_passes_its_promtool_unit_tests() {
    let promtool = require_program("promtool", INSTALL_HINT);
    let mut files: Vec<PathBuf> = std::fs::read_dir(monitoring().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "rule tests missing: {files:?}");
    let out = succeed(
        "promtool test rules ops/monitoring/tests/*.yml",
        Command::new(promtool).args(["test", "rules"]).args(&files),
    );
    assert_eq!(text(&out).matches("SUCCESS").count(), files.len(), "{}", text(&out));
}

/// One alerting rule of alerts.yml, read line by line (the file's own layout).
#[derive(Debug)]
struct Rule {
    name: String,
    body: String,
}

fn rules() -> Vec<Rule> {
    let alerts = read(&monitoring().join("alerts.yml"));
    alerts
        .split("- alert: ")
        .skip(1)
        .map(|block| {
            let (name, body) = block.split_once('\n').unwrap();
            Rule { name: name.trim().to_string(), body: body.to_string() }
        })
        .collect()
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_has_a_severity_a_runbook_section_and_a_firing_and_a_silent_test() {
    let rules = rules();
    assert!(rules.len() >= 25, "only {} alerts in alerts.yml", rules.len());
    let runbook = read(&repo().join("ops/RUNBOOK.md"));
    let anchors: BTreeSet<String> =
        runbook.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect();
    let mut tests = String::new();
    for entry in std::fs::read_dir(monitoring().join("tests")).unwrap() {
        tests.push_str(&read(&entry.unwrap().path()));
    }
    let cases: Vec<(&str, &str)> = {
        let lines: Vec<&str> = tests.lines().map(str::trim).collect();
        lines.windows(2).filter_map(|w| Some((w[0].strip_prefix("alertname: ")?, w[1]))).collect()
    };
    let prefix = "runbook_url: https://example.invalid/vox/ops/RUNBOOK.md#";
    for rule in &rules {
        let name = &rule.name;
        assert!(
            rule.body.contains("severity: critical") || rule.body.contains("severity: warning"),
            "{name} has no severity critical or warning"
        );
        for annotation in ["summary:", "description:"] {
            assert!(rule.body.contains(annotation), "{name} has no {annotation} annotation");
        }
        let url = rule.body.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix));
        let section = url.unwrap_or_else(|| panic!("{name} has no runbook_url starting {prefix}"));
        assert!(anchors.contains(section), "{name} links RUNBOOK.md#{section}, which is no heading of the runbook");
        assert!(runbook.contains(&format!("`{name}`")), "RUNBOOK.md never names {name}");
        let fires = cases.iter().any(|(a, next)| a == name && *next == "exp_alerts:");
        let silent = cases.iter().any(|(a, next)| a == name && *next == "exp_alerts: []");
        assert!(fires, "no rule test where {name} fires");
        assert!(silent, "no rule test where {name} must stay silent");
    }
}

/// The five binaries of this build, from one folder (what `release.sh --bin-dir` takes).
fn built_binaries() -> PathBuf {
    let mut dirs = BTreeSet::new();
    for (package, bin) in [
        ("voxbridge", "voxbridge"),
        ("voxcore", "voxcore"),
        ("voxgate", "voxgate"),
        ("voxdialler", "voxdialler"),
        ("voxctl", "voxctl"),
    ] {
        dirs.insert(workspace_binary(package, bin).parent().unwrap().to_path_buf());
    }
    assert_eq!(dirs.len(), 1, "the binaries are not in one folder: {dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn version_of(binary: &Path) -> String {
    let out = succeed(&format!("{} --version", binary.display()), Command::new(binary).arg("--version"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn a_release_installs_into_a_scratch_root_whose_units_pass_systemd_analyze_verify() {
    let analyze = require_program("systemd-analyze", "it comes with systemd (apt-get install systemd)");
    let bins = built_binaries();
    let full = version_of(&bins.join("voxbridge")).strip_prefix("voxbridge ").unwrap().to_string();
    let (version, commit) = full.split_once('+').unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let out_dir = scratch.path().join("dist");

    // The release: named by what its binaries report, with its checksum beside it.
    let release = succeed(
        "ops/release.sh --bin-dir",
        Command::new("bash")
            .arg(repo().join("ops/release.sh"))
            .arg("--bin-dir")
            .arg(&bins)
            .arg("--out")
            .arg(&out_dir)
            .args(["--gzip-level", "1"]),
    );
    let arch = String::from_utf8(succeed("uname -m", Command::new("uname").arg("-m")).stdout).unwrap();
    let name = format!("vox-{version}-{commit}-linux-{}", arch.trim());
    let tarball = out_dir.join(format!("{name}.tar.gz"));
    assert!(tarball.is_file(), "no {} after:\n{}", tarball.display(), text(&release));
    succeed(
        "sha256sum --check SHA256SUMS",
        Command::new("sha256sum").args(["--check", "SHA256SUMS"]).current_dir(&out_dir),
    );

    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    succeed("tar xzf", Command::new("tar").arg("-C").arg(&unpacked).arg("-xzf").arg(&tarball));
    let release_dir = unpacked.join(&name);
    for bin in ["voxbridge", "voxcore", "voxgate", "voxdialler", "voxctl"] {
        assert_eq!(version_of(&release_dir.join("bin").join(bin)), format!("{bin} {full}"), "the tarball's {bin}");
    }
    assert_eq!(read(&release_dir.join("VERSION")).trim(), full);
    for file in
        ["install.sh", "RUNBOOK.md", "monitoring/alerts.yml", "monitoring/prometheus.yml", "systemd/voxbridge.service"]
    {
        assert!(release_dir.join(file).is_file(), "the release has no {file}");
    }

    // Installed into a scratch root, as the units expect.
    let root = scratch.path().join("root");
    let install = || {
        let mut cmd = Command::new(release_dir.join("install.sh"));
        cmd.arg("--root").arg(&root);
        cmd
    };
    let first = succeed("install.sh --root", &mut install());
    for bin in ["voxbridge", "voxcore", "voxgate", "voxdialler", "voxctl"] {
        assert_eq!(version_of(&root.join("usr/local/bin").join(bin)), format!("{bin} {full}"), "installed {bin}");
    }
    for env in ["voxbridge", "voxcore", "voxgate", "voxdialler"] {
        let path = root.join(format!("etc/vox/{env}.env"));
        assert_eq!(mode(&path), 0o600, "{} holds secrets", path.display());
    }
    assert_eq!(mode(&root.join("var/lib/vox")), 0o750);
    assert!(root.join("var/lib/vox/spool").is_dir());
    assert!(root.join("usr/local/share/vox/RUNBOOK.md").is_file());
    // Enabled: a link in the target's .wants folder to the unit file, named as the
    // installed system will see it (absolute, inside the root).
    let enabled = |wants: &str, unit: &str| {
        let link = root.join("etc/systemd/system").join(wants).join(unit);
        let target = std::fs::read_link(&link)
            .unwrap_or_else(|e| panic!("{unit} is not enabled ({}: {e}):\n{}", link.display(), text(&first)));
        assert!(root.join(target.strip_prefix("/").unwrap()).is_file(), "{unit} links to {}", target.display());
    };
    for unit in ["voxbridge", "voxcore-host", "voxcore@1", "voxcore@4", "voxgate", "voxdialler"] {
        enabled("multi-user.target.wants", &format!("{unit}.service"));
    }
    enabled("timers.target.wants", "voxdialler-healthcheck.timer");

    // Installing again (an upgrade or a rollback) keeps the settings as the operator left them.
    let bridge_env = root.join("etc/vox/voxbridge.env");
    std::fs::write(&bridge_env, "VOX_LISTEN=0.0.0.0:7070\n").unwrap();
    let again = succeed("install.sh --root, a second time", &mut install());
    assert_eq!(read(&bridge_env), "VOX_LISTEN=0.0.0.0:7070\n", "install.sh overwrote an env file");
    assert!(text(&again).contains("kept /etc/vox/voxbridge.env"), "{}", text(&again));
    let conflict = install().args(["--workers", "8"]).output().unwrap();
    assert!(!conflict.status.success(), "--workers 8 against VOX_WORKERS=4 was accepted");
    assert!(text(&conflict).contains("VOX_WORKERS=4"), "{}", text(&conflict));

    // systemd-analyze verify under the root: the OS's own units (targets) come from this
    // machine, Vox's from the install. It checks every directive and that each ExecStart
    // exists and is executable under the root.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    succeed(
        "copy the OS units into the root",
        Command::new("cp").arg("-a").arg("/usr/lib/systemd/system").arg(root.join("usr/lib/systemd/system")),
    );
    let mut units = Vec::new();
    for entry in std::fs::read_dir(repo().join("ops/systemd")).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if file.ends_with(".service") || file.ends_with(".timer") {
            units.push(file.replace("@.service", "@1.service"));
        }
    }
    units.sort();
    assert!(units.len() >= 7, "{units:?}");
    let verify = succeed(
        "systemd-analyze verify",
        Command::new(analyze).arg("verify").arg(format!("--root={}", root.display())).args(&units),
    );
    assert!(text(&verify).trim().is_empty(), "systemd-analyze verify {units:?} warns:\n{}", text(&verify));
}

#[test]
fn a_release_refuses_binaries_of_different_builds() {
    let bins = built_binaries();
    let mixed = tempfile::tempdir().unwrap();
    for bin in ["voxbridge", "voxcore", "voxdialler", "voxctl"] {
        std::os::unix::fs::symlink(bins.join(bin), mixed.path().join(bin)).unwrap();
    }
    // Another program under voxgate's name, as a botched copy would leave it.
    std::os::unix::fs::symlink(bins.join("voxctl"), mixed.path().join("voxgate")).unwrap();
    let out = Command::new("bash")
        .arg(repo().join("ops/release.sh"))
        .arg("--bin-dir")
        .arg(mixed.path())
        .arg("--out")
        .arg(mixed.path().join("dist"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "release.sh packed a voxgate that is voxctl:\n{}", text(&out));
    assert!(text(&out).contains("voxgate --version says \"voxctl"), "{}", text(&out));
    assert!(!mixed.path().join("dist").exists(), "release.sh wrote output before refusing");
}

/// Answers one HTTP request with `status` and `body`, as the dialler's /health does.
fn health_server(status: &'static str, body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut request = [0u8; 2048];
            let _ = conn.read(&mut request);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Runs ops/systemd/voxdialler-healthcheck against `port` with a `systemctl` that records
/// what it is asked and says the dialler is `active` or not; returns what it was asked.
fn health_check(port: u16, active: bool) -> (String, String) {
    require_program("curl", "apt-get install curl");
    let fake = tempfile::tempdir().unwrap();
    let log = fake.path().join("systemctl.log");
    let systemctl = fake.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$*\" >>'{}'\ncase \"$1\" in is-active) exit {};; esac\nexit 0\n",
            log.display(),
            if active { 0 } else { 3 }
        ),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = succeed(
        "voxdialler-healthcheck",
        Command::new(repo().join("ops/systemd/voxdialler-healthcheck"))
            .env("PATH", path)
            // The unit reads the dialler's env file; 0.0.0.0 is asked on loopback.
            .env("HEALTH_LISTEN", format!("0.0.0.0:{port}")),
    );
    (std::fs::read_to_string(&log).unwrap_or_default(), text(&out))
}

#[test]
fn the_dialler_health_check_restarts_a_stuck_dialler_and_leaves_a_standby_or_a_stopped_one_alone() {
    let stuck = health_server(
        "503 Service Unavailable",
        r#"{"healthy":false,"reason":"stuck tick: the last tick completed 45 s ago","leader":true}"#,
    );
    let (asked, said) = health_check(stuck, true);
    assert!(asked.contains("restart voxdialler.service"), "a stuck dialler was not restarted: {asked:?} {said}");

    let standby = health_server(
        "503 Service Unavailable",
        r#"{"healthy":false,"reason":"no leadership: standing by while dl_1 leads","leader":false}"#,
    );
    let (asked, said) = health_check(standby, true);
    assert!(!asked.contains("restart"), "a healthy standby was restarted: {asked:?} {said}");

    let leader = health_server("200 OK", r#"{"healthy":true,"reason":"ok","leader":true}"#);
    let (asked, _) = health_check(leader, true);
    assert!(!asked.contains("restart"), "a healthy leader was restarted: {asked:?}");

    // Nothing listens on a port just freed: a dialler whose health server is gone.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (asked, said) = health_check(silent, true);
    assert!(asked.contains("restart voxdialler.service"), "a dialler that does not answer was left: {asked:?} {said}");

    // An operator stopped it (the runbook's "two diallers"): it stays stopped.
    let (asked, said) = health_check(silent, false);
    assert!(!asked.contains("restart"), "a stopped dialler was started again: {asked:?} {said}");
}
