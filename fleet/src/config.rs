//! voxcore's settings: clap flags, each with an environment name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A Vox fleet worker. `voxcore worker` is one call slot (systemd: voxcore@<i>);
/// `voxcore host` starts N workers, restarts any that die, and heartbeats the fleet node.
#[derive(Debug, Parser)]
#[command(name = "voxcore", version = vox_telemetry::build::FULL_VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one worker: one process, `--max-concurrent-calls` slots (1 in production).
    Worker(WorkerArgs),
    /// Run a fleet host: N workers plus the node's heartbeat to voxbridge.
    Host(HostArgs),
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// This worker's number on the host (the `%i` of voxcore@.service).
    #[arg(long, env = "VOX_WORKER_INDEX", default_value_t = 1)]
    pub index: u32,

    /// Folder of the worker sockets: the worker listens on <dir>/voxcore_<index>.sock.
    /// The seeds' layout is `--socket-dir /tmp`.
    #[arg(long, env = "VOX_SOCKET_DIR", default_value = "/run/vox")]
    pub socket_dir: PathBuf,

    /// Listen on TCP at this address instead of the Unix socket (wins over --listen-ip).
    /// Needs voxbridge (--bridge-url): gateways prove themselves with its tokens.
    #[arg(long, env = "VOX_WORKER_LISTEN")]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub tcp: WorkerTcp,

    /// Finish the current call and exit when the parent process goes away (set by
    /// `voxcore host` for the workers it starts, so a crashed host leaves no orphans).
    #[arg(long, env = "VOX_EXIT_WITH_PARENT")]
    pub exit_with_parent: bool,

    /// Write the worker's URL (unix:///…, http://… or https://…) here once listening.
    #[arg(long, env = "VOX_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Settings every worker on a host shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Calls one worker holds at once (the seeds' MAX_CONCURRENT_CALLS). 1, the default,
    /// is a process per call: a crash, a stuck agent or a leak stays in one call. More
    /// shares one process, one gRPC connection and its wake-ups between that many calls
    /// (see "Media benchmark" in the README for what each shape costs); a host then
    /// advertises each worker as this many slots. 1-200 (the calls one HTTP/2
    /// connection carries at once).
    #[arg(long, env = "MAX_CONCURRENT_CALLS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CALLS_PER_WORKER as i64))]
    pub max_concurrent_calls: u32,

    /// Threads of each worker's runtime. 1 (the default) runs all of a worker's calls on
    /// one thread: a call's frames pass between the gRPC connection, the session and the
    /// agent as tasks of that thread, in memory, with no thread to wake; an echo or relay
    /// call costs about a millisecond of CPU per second, so one thread carries every call a
    /// worker may hold. 0: one thread per core, for agents that compute in the worker.
    #[arg(long, env = "VOX_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: u32,

    /// Where recordings are written while calls run and until their upload is confirmed.
    #[arg(long, env = "VOX_SPOOL_DIR", default_value = "vox-data/spool")]
    pub spool_dir: PathBuf,

    /// Recording and prompt storage of a worker without voxbridge: a local folder
    /// [default: vox-data/recordings]. With voxbridge the region's storage is what
    /// voxbridge says (a folder, or an S3 bucket); this flag then only overrides
    /// voxbridge's folder (the same share mounted at another path), with a warning, and
    /// is ignored, with a warning, for S3 regions.
    #[arg(long, env = "VOX_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,

    /// voxbridge's gRPC URL, e.g. http://127.0.0.1:7070. Without it the worker takes
    /// calls but reports nothing.
    #[arg(long, env = "VOX_BRIDGE_URL")]
    pub bridge_url: Option<String>,

    /// The fleet node's API secret from registration (vxn.<node id>.<secret>).
    #[arg(long, env = "VOX_NODE_SECRET", hide_env_values = true)]
    pub node_secret: Option<String>,

    /// Hang up a call that sends no audio for this long (a dead leg must not hold a slot).
    #[arg(long, env = "VOX_NO_MEDIA_TIMEOUT_SECONDS", default_value_t = 10)]
    pub no_media_timeout_seconds: u32,

    /// Hang up any call after this long.
    #[arg(long, env = "VOX_MAX_CALL_SECONDS", default_value_t = 3600)]
    pub max_call_seconds: u32,

    /// Longest reservation a gateway may ask for.
    #[arg(long, env = "VOX_MAX_RESERVATION_MS", default_value_t = 10_000)]
    pub max_reservation_ms: u32,

    /// "pretty" or "json".
    #[arg(long, env = "VOX_LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,

    /// Serve the worker's TCP listener over TLS with this certificate chain (PEM), with
    /// --tls-key; re-read when the file changes. Gateways then reach the workers at
    /// https:// URLs. The Unix socket never leaves the machine and stays plain.
    #[arg(long, env = "VOX_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "VOX_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate (PEM) to trust for https:// links this process opens: an https://
    /// --bridge-url, and (the host) its workers' https:// addresses.
    #[arg(long, env = "VOX_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// Where workers listen on TCP, shared by `voxcore host` (which starts them) and
/// `voxcore worker` (systemd's voxcore@<i>, which works out its own port from its index),
/// so one environment file sets both alike.
#[derive(Debug, Clone, Args)]
pub struct WorkerTcp {
    /// Serve the workers over TCP on this IP address (the machine's address on the
    /// cluster network, or 0.0.0.0 with --advertise), worker i on port
    /// --worker-base-port + i - 1. Unset: Unix sockets in --socket-dir, reachable from
    /// this machine only. Needs voxbridge (--bridge-url).
    #[arg(long, env = "VOX_WORKER_LISTEN_IP")]
    pub listen_ip: Option<IpAddr>,

    /// Port of worker 1 with --listen-ip; worker i takes this + i - 1. 0: each worker
    /// takes a free port and the host learns it (not with --spawn false, where systemd
    /// starts the workers and nobody tells the host their ports).
    #[arg(long, env = "VOX_WORKER_BASE_PORT", default_value_t = 7101)]
    pub worker_base_port: u16,
}

impl WorkerTcp {
    /// Worker `index`'s TCP address, when workers listen on TCP.
    pub fn address(&self, index: u32) -> anyhow::Result<Option<SocketAddr>> {
        let Some(ip) = self.listen_ip else { return Ok(None) };
        if self.worker_base_port == 0 {
            return Ok(Some(SocketAddr::new(ip, 0)));
        }
        let port = u32::from(self.worker_base_port) + index.saturating_sub(1);
        let port = u16::try_from(port).map_err(|_| {
            anyhow::anyhow!(
                "--worker-base-port (VOX_WORKER_BASE_PORT) {} leaves no port for worker {index}: \
                 ports end at 65535",
                self.worker_base_port
            )
        })?;
        Ok(Some(SocketAddr::new(ip, port)))
    }
}

impl WorkerArgs {
    /// The TCP address this worker listens on, if any: --listen, else --listen-ip with
    /// this worker's port.
    pub fn tcp_address(&self) -> anyhow::Result<Option<SocketAddr>> {
        match self.listen {
            Some(addr) => Ok(Some(addr)),
            None => self.tcp.address(self.index),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Workers on this host: voxcore_1 … voxcore_N.
    #[arg(long, env = "VOX_WORKERS", default_value_t = 4)]
    pub workers: u32,

    /// Folder of the worker sockets.
    #[arg(long, env = "VOX_SOCKET_DIR", default_value = "/run/vox")]
    pub socket_dir: PathBuf,

    /// Start and supervise the workers. Off when systemd runs voxcore@<i> itself and
    /// this process only heartbeats.
    #[arg(long, env = "VOX_SPAWN_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub spawn: bool,

    #[command(flatten)]
    pub tcp: WorkerTcp,

    /// The host name or IP address other machines reach this host's workers at, as the
    /// heartbeats advertise them (http(s)://<advertise>:<port>). With --listen-ip only;
    /// [default: the listen IP]. With TLS it must be a name the certificate holds.
    #[arg(long, env = "VOX_ADVERTISE")]
    pub advertise: Option<String>,

    /// Where the host serves `GET /metrics` (its workers' states and counters, for
    /// Prometheus). No secrets; keep it on loopback or a private address. "off" turns it
    /// off. A taken port is logged and the host runs on without it.
    #[arg(long, env = "VOX_METRICS_LISTEN", default_value = "127.0.0.1:7100")]
    pub metrics_listen: String,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl CommonArgs {
    /// The worker flags, for the processes a host starts.
    pub fn to_worker_args(&self) -> Vec<String> {
        let mut out = vec![
            "--max-concurrent-calls".into(),
            self.max_concurrent_calls.to_string(),
            "--worker-threads".into(),
            self.worker_threads.to_string(),
            "--spool-dir".into(),
            self.spool_dir.display().to_string(),
            "--no-media-timeout-seconds".into(),
            self.no_media_timeout_seconds.to_string(),
            "--max-call-seconds".into(),
            self.max_call_seconds.to_string(),
            "--max-reservation-ms".into(),
            self.max_reservation_ms.to_string(),
            "--log-format".into(),
            self.log_format.clone(),
        ];
        if let Some(dir) = &self.recordings_dir {
            out.push("--recordings-dir".into());
            out.push(dir.display().to_string());
        }
        if let Some(url) = &self.bridge_url {
            out.push("--bridge-url".into());
            out.push(url.clone());
        }
        for (flag, path) in [("--tls-cert", &self.tls_cert), ("--tls-key", &self.tls_key), ("--tls-ca", &self.tls_ca)] {
            if let Some(path) = path {
                out.push(flag.into());
                out.push(path.display().to_string());
            }
        }
        out
    }
}

/// The most calls one worker may hold: the concurrent streams one HTTP/2 connection (the
/// gateway's to the worker) carries by default.
pub const MAX_CALLS_PER_WORKER: u32 = 200;

pub fn socket_path(dir: &std::path::Path, index: u32) -> PathBuf {
    dir.join(format!("voxcore_{index}.sock"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn worker(flags: &[&str]) -> WorkerArgs {
        match Cli::try_parse_from(["voxcore", "worker"].iter().chain(flags)).unwrap().command {
            Command::Worker(w) => w,
            Command::Host(_) => unreachable!(),
        }
    }

    #[test]
    fn a_worker_under_systemd_works_out_its_port_from_its_index() {
        let w = worker(&["--index", "3", "--listen-ip", "10.0.0.5", "--worker-base-port", "7101"]);
        assert_eq!(w.tcp_address().unwrap(), Some("10.0.0.5:7103".parse().unwrap()));
        let explicit = worker(&["--index", "3", "--listen-ip", "10.0.0.5", "--listen", "127.0.0.1:9"]);
        assert_eq!(explicit.tcp_address().unwrap(), Some("127.0.0.1:9".parse().unwrap()), "--listen wins");
        assert_eq!(worker(&[]).tcp_address().unwrap(), None, "the Unix socket by default");
        let past = worker(&["--index", "2", "--listen-ip", "10.0.0.5", "--worker-base-port", "65535"]);
        assert!(past.tcp_address().unwrap_err().to_string().contains("65535"));
    }

    #[test]
    fn the_host_hands_its_workers_the_tls_settings() {
        let w = worker(&["--tls-cert", "/etc/vox/c.pem", "--tls-key", "/etc/vox/k.pem", "--tls-ca", "/etc/vox/ca.pem"]);
        let args = w.common.to_worker_args();
        for pair in [["--tls-cert", "/etc/vox/c.pem"], ["--tls-key", "/etc/vox/k.pem"], ["--tls-ca", "/etc/vox/ca.pem"]]
        {
            assert!(args.windows(2).any(|w| w == pair), "{args:?}");
        }
    }
}
