//! voxcore's settings: clap flags, each with an environment name.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A Vox fleet worker. `voxcore worker` is one call slot (systemd: voxcore@<i>);
/// `voxcore host` starts N workers, restarts any that die, and heartbeats the fleet node.
#[derive(Debug, Parser)]
#[command(name = "voxcore", version, about)]
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

    /// Listen on TCP instead of the Unix socket.
    #[arg(long, env = "VOX_WORKER_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Finish the current call and exit when the parent process goes away (set by
    /// `voxcore host` for the workers it starts, so a crashed host leaves no orphans).
    #[arg(long, env = "VOX_EXIT_WITH_PARENT")]
    pub exit_with_parent: bool,

    /// Write the worker's URL (unix:///… or http://…) here once listening.
    #[arg(long, env = "VOX_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Settings every worker on a host shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Calls one worker holds at once (the seeds' MAX_CONCURRENT_CALLS).
    #[arg(long, env = "MAX_CONCURRENT_CALLS", default_value_t = 1)]
    pub max_concurrent_calls: u32,

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
    pub common: CommonArgs,
}

impl CommonArgs {
    /// The worker flags, for the processes a host starts.
    pub fn to_worker_args(&self) -> Vec<String> {
        let mut out = vec![
            "--max-concurrent-calls".into(),
            self.max_concurrent_calls.to_string(),
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
        out
    }
}

pub fn socket_path(dir: &std::path::Path, index: u32) -> PathBuf {
    dir.join(format!("voxcore_{index}.sock"))
}
