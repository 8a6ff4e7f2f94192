//! voxbridge's settings: clap flags, each with an environment name, over an optional TOML
//! file, over defaults (defaults < file < env < flags). `--dump-config` prints the result
//! with secrets redacted.
//!
//! Embedded mode (the default) needs nothing: the data dir is created with generated
//! secrets in mode-0600 files. `--production` refuses to start unless the JWT secret, the
//! master key and the store are set explicitly, and names what is missing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use chrono::Duration;
use clap::Parser;
use serde::{Deserialize, Serialize};
use vox_domain::call::StaleDeadlines;

/// The Vox control plane: regions, nodes, campaigns, calls and users over gRPC, with
/// `/health` and `/metrics` on the same port.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(name = "voxbridge", version = vox_telemetry::build::FULL_VERSION, about)]
#[serde(default, deny_unknown_fields)]
pub struct Args {
    /// TOML file with any of these settings (snake_case keys); env and flags override it.
    #[arg(long, env = "VOX_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Print the resolved settings (secrets redacted) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub dump_config: bool,

    /// Address for gRPC, GET /health and GET /metrics. [default: 127.0.0.1:7070]
    #[arg(long, env = "VOX_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Write the bound address to this file once listening (for tests and scripts that
    /// bind port 0).
    #[arg(long, env = "VOX_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,

    /// Where embedded data and generated secrets live. [default: ./vox-data]
    #[arg(long, env = "VOX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Document store: "sqlite" (a file in the data dir), "sqlite:///abs/path.db", or a
    /// MongoDB URI ("mongodb://host:27017/?replicaSet=rs0"). [default: sqlite]
    #[arg(long, env = "VOX_STORE")]
    pub store: Option<String>,

    /// MongoDB database name, with a mongodb:// store. [default: vox]
    #[arg(long, env = "VOX_STORE_DATABASE")]
    pub store_database: Option<String>,

    /// Redis URL (redis://host:6379) for what several voxbridge instances share: node
    /// presence and the live event bus. Without it both stay in this process.
    #[arg(long, env = "VOX_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// Refuse to start without explicit secrets and store settings.
    #[arg(long, env = "VOX_PRODUCTION", num_args = 0..=1, default_missing_value = "true")]
    pub production: Option<bool>,

    /// Secret that signs user access tokens (HS256), at least 32 bytes. Embedded mode
    /// generates one in the data dir.
    #[arg(long, env = "VOX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Base64 of 32 bytes: the AES-256-GCM key that encrypts storage secret keys at rest.
    /// Embedded mode generates one in the data dir.
    #[arg(long, env = "VOX_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Email of the admin created on first start. [default: admin@vox.local]
    #[arg(long, env = "VOX_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of the admin created on first start; generated and printed once if unset.
    #[arg(long, env = "VOX_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Lifetime of an access token, minutes. [default: 60]
    #[arg(long, env = "VOX_TOKEN_TTL_MINUTES")]
    pub token_ttl_minutes: Option<u32>,

    /// A node is online while its last heartbeat is fresher than this, seconds. [default: 10]
    #[arg(long, env = "VOX_NODE_STALENESS_SECONDS")]
    pub node_staleness_seconds: Option<u32>,

    /// Heartbeat period asked of nodes, milliseconds. [default: 2000]
    #[arg(long, env = "VOX_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u32>,

    /// How often the stale-call reaper runs, seconds. [default: 30]
    #[arg(long, env = "VOX_REAPER_INTERVAL_SECONDS")]
    pub reaper_interval_seconds: Option<u32>,

    /// How long the activity feed (the CRM event stream, webhooks) keeps events, days; a
    /// client reconnecting after longer is told what it missed. [default: 7]
    #[arg(long, env = "VOX_EVENT_RETENTION_DAYS")]
    pub event_retention_days: Option<u32>,

    /// Calls in progress longer than this are reaped as failed, minutes. [default: 60]
    #[arg(long, env = "STALE_IN_PROGRESS_TIMEOUT_MINUTES")]
    pub stale_in_progress_timeout_minutes: Option<u32>,

    /// Calls dialing longer than this are reaped, seconds. [default: 120]
    #[arg(long, env = "VOX_STALE_DIALING_SECONDS")]
    pub stale_dialing_seconds: Option<u32>,

    /// Calls ringing longer than this are reaped, seconds. [default: 180]
    #[arg(long, env = "VOX_STALE_RINGING_SECONDS")]
    pub stale_ringing_seconds: Option<u32>,

    /// Answered calls not attaching within this are reaped, seconds. [default: 60]
    #[arg(long, env = "VOX_STALE_ANSWERED_SECONDS")]
    pub stale_answered_seconds: Option<u32>,

    /// Calls attaching longer than this are reaped, seconds. [default: 60]
    #[arg(long, env = "VOX_STALE_ATTACHING_SECONDS")]
    pub stale_attaching_seconds: Option<u32>,

    /// Log format: "pretty" or "json". [default: pretty]
    #[arg(long, env = "VOX_LOG_FORMAT")]
    pub log_format: Option<String>,

    /// The folder that holds recordings and prompts of regions without S3 storage (the
    /// embedded default). Fleet nodes of such regions are told to use it, so it must be
    /// the same folder on their machine: this is single-machine storage.
    /// [default: <data dir>/recordings]
    #[arg(long, env = "VOX_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,

    /// Serve gRPC, /health and /metrics over TLS with this certificate chain (PEM); with
    /// --tls-key. Re-read when the file changes. Nodes then use an https:// --bridge-url
    /// and trust the issuing CA with --tls-ca.
    #[arg(long, env = "VOX_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "VOX_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Create a region's bucket on first use when it is missing. Turn off when the
    /// storage keys may not create buckets; a missing bucket is then an error naming it.
    /// [default: true]
    #[arg(long, env = "VOX_CREATE_BUCKETS", num_args = 0..=1, default_missing_value = "true")]
    pub create_buckets: Option<bool>,

    /// Open connections at most; more are closed as they arrive (nodes keep their
    /// long-lived links). [default: 4096]
    #[arg(long, env = "VOX_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Sign-in attempts per minute from one client address (a gateway's users count by
    /// the address the gateway names). Over it, `Login` answers RESOURCE_EXHAUSTED.
    /// [default: 30]
    #[arg(long, env = "VOX_LOGIN_ATTEMPTS_PER_MINUTE")]
    pub login_attempts_per_minute: Option<u32>,

    /// Accept external agent URLs that are not `wss://` (plain `ws://`, which sends call
    /// audio unencrypted). For local demos and tests only. [default: false]
    #[arg(long, env = "VOX_ALLOW_INSECURE_AGENT_URLS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_insecure_agent_urls: Option<bool>,

    /// Accept webhook endpoint URLs that are not `https://` (plain `http://`, which sends
    /// call data unencrypted). For local demos and tests only. [default: false]
    #[arg(long, env = "VOX_ALLOW_INSECURE_WEBHOOK_URLS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_insecure_webhook_urls: Option<bool>,
}

/// The resolved settings voxbridge runs with.
#[derive(Clone, Serialize)]
pub struct Settings {
    pub listen: SocketAddr,
    pub address_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub store: StoreSetting,
    /// Never printed: a Redis URL may carry a password.
    #[serde(skip)]
    pub redis: Option<String>,
    pub production: bool,
    #[serde(skip)]
    pub jwt_secret: Vec<u8>,
    #[serde(skip)]
    pub master_key: [u8; 32],
    pub admin_email: String,
    #[serde(skip)]
    pub admin_password: Option<String>,
    pub token_ttl_minutes: u32,
    pub node_staleness_seconds: u32,
    pub heartbeat_interval_ms: u32,
    pub reaper_interval_seconds: u32,
    pub event_retention_days: u32,
    pub stale_in_progress_timeout_minutes: u32,
    pub stale_dialing_seconds: u32,
    pub stale_ringing_seconds: u32,
    pub stale_answered_seconds: u32,
    pub stale_attaching_seconds: u32,
    pub log_format: String,
    /// Absolute: fleet nodes are told this path.
    pub recordings_dir: PathBuf,
    pub create_buckets: bool,
    #[serde(skip)]
    pub tls: Option<vox_node::tls::TlsFiles>,
    pub max_connections: usize,
    pub login_attempts_per_minute: u32,
    /// External agent URLs may be `ws://` as well as `wss://`.
    pub allow_insecure_agent_urls: bool,
    /// Webhook URLs may be `http://` as well as `https://`.
    pub allow_insecure_webhook_urls: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dump())
    }
}

#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreSetting {
    Sqlite(PathBuf),
    /// The URI is kept whole (it may hold credentials) and never printed.
    Mongo {
        #[serde(skip)]
        uri: String,
        database: String,
    },
}

impl std::fmt::Debug for StoreSetting {
    /// Never prints a MongoDB URI: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSetting::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreSetting::Mongo { database, .. } => write!(f, "mongodb:(uri hidden)/{database}"),
        }
    }
}

impl Settings {
    pub fn node_staleness(&self) -> Duration {
        Duration::seconds(i64::from(self.node_staleness_seconds))
    }

    pub fn stale_deadlines(&self) -> StaleDeadlines {
        StaleDeadlines {
            dialing: Duration::seconds(i64::from(self.stale_dialing_seconds)),
            ringing: Duration::seconds(i64::from(self.stale_ringing_seconds)),
            answered: Duration::seconds(i64::from(self.stale_answered_seconds)),
            attaching: Duration::seconds(i64::from(self.stale_attaching_seconds)),
            in_progress: Duration::minutes(i64::from(self.stale_in_progress_timeout_minutes)),
        }
    }

    /// The settings as TOML, secrets shown only as "(set)".
    pub fn dump(&self) -> String {
        let mut out = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"));
        out.push_str("jwt_secret = \"(set)\"\nmaster_key = \"(set)\"\n");
        out.push_str(&format!(
            "admin_password = \"{}\"\n",
            if self.admin_password.is_some() { "(set)" } else { "(generated on first start)" }
        ));
        out
    }
}

impl Args {
    /// Resolves flags and env (already in `self`) over the config file over defaults, and
    /// prepares the data dir and its generated secrets.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("read config file {}", path.display()))?;
                toml::from_str::<Args>(&text).with_context(|| format!("parse config file {}", path.display()))?
            }
            None => Args::default(),
        };
        macro_rules! pick {
            ($field:ident) => {
                self.$field.clone().or(file.$field.clone())
            };
        }
        let production = pick!(production).unwrap_or(false);
        let data_dir = pick!(data_dir).unwrap_or_else(|| PathBuf::from("vox-data"));
        let store_text = pick!(store);
        let jwt_text = pick!(jwt_secret);
        let master_text = pick!(master_key);

        if production {
            let mut missing = Vec::new();
            if store_text.is_none() {
                missing.push("--store (VOX_STORE)");
            }
            if jwt_text.is_none() {
                missing.push("--jwt-secret (VOX_JWT_SECRET)");
            }
            if master_text.is_none() {
                missing.push("--master-key (VOX_MASTER_KEY)");
            }
            if !missing.is_empty() {
                bail!("production mode needs explicit settings; missing: {}", missing.join(", "));
            }
        }
        ensure_private_dir(&data_dir)?;
        let recordings_dir = pick!(recordings_dir).unwrap_or_else(|| data_dir.join("recordings"));
        let recordings_dir = std::path::absolute(&recordings_dir)
            .with_context(|| format!("resolve --recordings-dir {}", recordings_dir.display()))?;
        let store = parse_store(store_text.as_deref().unwrap_or("sqlite"), &data_dir, pick!(store_database))?;
        let jwt_secret = match jwt_text {
            Some(s) if s.len() >= 32 => s.into_bytes(),
            Some(_) => bail!("--jwt-secret (VOX_JWT_SECRET) must be at least 32 bytes"),
            None => generated_secret(&data_dir.join("jwt.secret"), 48)?.into_bytes(),
        };
        let master_b64 = match master_text {
            Some(s) => s,
            None => generated_secret(&data_dir.join("master.key"), 32)?,
        };
        let master_key = decode_master_key(&master_b64)?;
        let log_format = pick!(log_format).unwrap_or_else(|| "pretty".into());
        if !matches!(log_format.as_str(), "pretty" | "json") {
            bail!("--log-format (VOX_LOG_FORMAT) must be \"pretty\" or \"json\", not {log_format:?}");
        }
        let positive = |name: &str, v: Option<u32>, default: u32| -> anyhow::Result<u32> {
            match v.unwrap_or(default) {
                0 => bail!("{name} must be greater than 0"),
                n => Ok(n),
            }
        };
        let settings = Settings {
            listen: pick!(listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070))),
            address_file: pick!(address_file),
            data_dir,
            store,
            redis: pick!(redis),
            production,
            jwt_secret,
            master_key,
            admin_email: pick!(admin_email).unwrap_or_else(|| "admin@vox.local".into()),
            admin_password: pick!(admin_password),
            token_ttl_minutes: positive("--token-ttl-minutes", pick!(token_ttl_minutes), 60)?,
            node_staleness_seconds: positive("--node-staleness-seconds", pick!(node_staleness_seconds), 10)?,
            heartbeat_interval_ms: positive("--heartbeat-interval-ms", pick!(heartbeat_interval_ms), 2000)?,
            reaper_interval_seconds: positive("--reaper-interval-seconds", pick!(reaper_interval_seconds), 30)?,
            event_retention_days: positive("--event-retention-days", pick!(event_retention_days), 7)?,
            stale_in_progress_timeout_minutes: positive(
                "STALE_IN_PROGRESS_TIMEOUT_MINUTES",
                pick!(stale_in_progress_timeout_minutes),
                60,
            )?,
            stale_dialing_seconds: positive("--stale-dialing-seconds", pick!(stale_dialing_seconds), 120)?,
            stale_ringing_seconds: positive("--stale-ringing-seconds", pick!(stale_ringing_seconds), 180)?,
            stale_answered_seconds: positive("--stale-answered-seconds", pick!(stale_answered_seconds), 60)?,
            stale_attaching_seconds: positive("--stale-attaching-seconds", pick!(stale_attaching_seconds), 60)?,
            log_format,
            recordings_dir,
            create_buckets: pick!(create_buckets).unwrap_or(true),
            tls: vox_node::tls::TlsFiles::from_flags(pick!(tls_cert).as_deref(), pick!(tls_key).as_deref())?,
            max_connections: match pick!(max_connections).unwrap_or(4096) {
                n if n < 16 => bail!("--max-connections (VOX_MAX_CONNECTIONS) must be at least 16, not {n}"),
                n => n,
            },
            login_attempts_per_minute: positive("--login-attempts-per-minute", pick!(login_attempts_per_minute), 30)?,
            allow_insecure_agent_urls: pick!(allow_insecure_agent_urls).unwrap_or(false),
            allow_insecure_webhook_urls: pick!(allow_insecure_webhook_urls).unwrap_or(false),
        };
        if settings.node_staleness_seconds * 1000 <= settings.heartbeat_interval_ms {
            bail!("--node-staleness-seconds must be longer than one heartbeat interval, or every node flaps offline");
        }
        Ok(settings)
    }
}

fn parse_store(text: &str, data_dir: &Path, database: Option<String>) -> anyhow::Result<StoreSetting> {
    if text.starts_with("mongodb://") || text.starts_with("mongodb+srv://") {
        let database = database.unwrap_or_else(|| "vox".into());
        if database.is_empty() || database.contains(['/', '.', ' ', '$']) {
            bail!("--store-database {database:?} is not a MongoDB database name");
        }
        return Ok(StoreSetting::Mongo { uri: text.to_string(), database });
    }
    if text == "sqlite" {
        return Ok(StoreSetting::Sqlite(data_dir.join("vox.db")));
    }
    if let Some(path) = text.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--store {text:?}: give a file path, e.g. sqlite:///var/lib/vox/vox.db");
        }
        return Ok(StoreSetting::Sqlite(PathBuf::from(path)));
    }
    bail!(
        "--store (VOX_STORE) {text:?} is not a store this build knows; use \"sqlite\" or \"sqlite:///path/to/vox.db\""
    )
}

fn decode_master_key(b64: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .context("--master-key (VOX_MASTER_KEY) is not base64")?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        anyhow::anyhow!("--master-key (VOX_MASTER_KEY) must be 32 bytes of base64, got {} bytes", b.len())
    })
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restrict data dir {}", dir.display()))?;
    }
    Ok(())
}

/// Reads the secret stored at `path`, or generates `len` random bytes, stores them base64
/// in a new mode-0600 file and returns them.
fn generated_secret(path: &Path, len: usize) -> anyhow::Result<String> {
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        return Ok(text.trim().to_string());
    }
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| format!("create {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).with_context(|| format!("write {}", path.display()))?;
    f.sync_all().with_context(|| format!("sync {}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("voxbridge").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn embedded_mode_generates_private_secrets_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let a = args(&["--data-dir", data.to_str().unwrap()]).resolve().unwrap();
        let b = args(&["--data-dir", data.to_str().unwrap()]).resolve().unwrap();
        assert_eq!(a.jwt_secret, b.jwt_secret, "secrets are generated once and reused");
        assert_eq!(a.master_key, b.master_key);
        assert_eq!(a.store, StoreSetting::Sqlite(data.join("vox.db")));
        assert_eq!(a.recordings_dir, std::path::absolute(data.join("recordings")).unwrap());
        assert!(a.create_buckets, "buckets are created on first use unless turned off");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let dump = a.dump();
        assert!(dump.contains("jwt_secret = \"(set)\""));
        assert!(!dump.contains(&String::from_utf8_lossy(&a.jwt_secret).to_string()));
    }

    #[test]
    fn production_names_every_missing_setting() {
        let dir = tempfile::tempdir().unwrap();
        let err = args(&["--production", "--data-dir", dir.path().to_str().unwrap()]).resolve().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--store") && msg.contains("--jwt-secret") && msg.contains("--master-key"), "{msg}");
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vox.toml");
        std::fs::write(&file, "node_staleness_seconds = 20\nreaper_interval_seconds = 5\n").unwrap();
        let s = args(&[
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
            "--reaper-interval-seconds",
            "7",
        ])
        .resolve()
        .unwrap();
        assert_eq!(s.node_staleness_seconds, 20, "from the file");
        assert_eq!(s.reaper_interval_seconds, 7, "the flag wins");
        assert_eq!(s.heartbeat_interval_ms, 2000, "the default");

        std::fs::write(&file, "no_such_setting = 1\n").unwrap();
        let err = args(&["--config", file.to_str().unwrap()]).resolve().unwrap_err();
        assert!(format!("{err:#}").contains("no_such_setting"), "{err:#}");
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let err = args(&["--data-dir", d, "--master-key", "c2hvcnQ="]).resolve().unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        let err = args(&["--data-dir", d, "--store", "postgres://x"]).resolve().unwrap_err();
        assert!(err.to_string().contains("--store"), "{err}");
        let err = args(&["--data-dir", d, "--node-staleness-seconds", "1"]).resolve().unwrap_err();
        assert!(err.to_string().contains("staleness"), "{err}");
    }
}
