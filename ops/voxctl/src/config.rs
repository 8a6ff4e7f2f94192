//! voxctl's command line: one subcommand per operator task, each flag with an
//! environment name.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The Vox operator CLI.
#[derive(Debug, Parser)]
#[command(name = "voxctl", version = vox_telemetry::build::FULL_VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format of voxctl's own messages (stderr): "pretty" or "json".
    #[arg(long, env = "VOX_LOG_FORMAT", default_value = "pretty", global = true)]
    pub log_format: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole cluster on this machine: voxbridge on embedded storage, a voxcore
    /// host with N worker slots and voxgate (or several of each, each on its own loopback
    /// address, with --fleet-hosts and --gateways), until Ctrl-C.
    Up(UpArgs),
    /// The runbook's checks against a running cluster, in its order (voxbridge, fleet hosts,
    /// gateways, the dialler, storage): a table, and a non-zero exit naming the first
    /// failing part.
    Health(crate::health::Args),
    /// Benchmarks that run the platform's real code on a virtual clock.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The dialler's pacing strategies against a simulated carrier: occupancy,
    /// abandon rate and connects per slot-hour, with baselines.
    Pacing(voxdialler::bench::Args),
    /// voxbridge under a flood of slow connections and bad sign-ins: a node's heartbeat
    /// latency (p50, p99) with and without it, and whether the node stays online.
    Flood(crate::flood::Args),
    /// Vox's media path against the Python stack it replaces, side by side: N concurrent
    /// Twilio streams in real time through voxgate and voxcore workers, a FastAPI echo
    /// worker, and that worker behind nginx; echo p50/p99/max, frames lost, CPU-ms per
    /// call-second, memory per slot.
    Media(crate::bench_media::Args),
    /// The work queue's throughput (4 producers, 4 consumers) on Redis next to BullMQ's on
    /// the same redis-server, and on SQLite.
    Queue(crate::bench_queue::Args),
    /// The control plane through voxbridge's gRPC API: call leases per second with
    /// concurrent leasers on the embedded store and on MongoDB (each call leased exactly
    /// once), and 10,000 nodes heartbeating every 2 s against one voxbridge (p99 latency,
    /// CPU) with the dashboard's latency under that load.
    Control(crate::bench_control::Args),
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Where everything lives: voxbridge's store, sockets, spool, recordings, logs and
    /// the generated development credentials.
    #[arg(long, env = "VOX_DATA_DIR", default_value = "vox-data")]
    pub data_dir: PathBuf,

    /// Worker slots (voxcore worker processes) on each fleet host.
    #[arg(long, env = "VOX_WORKERS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: u32,

    /// Calls each worker process holds at once (voxcore's --max-concurrent-calls). 1, the
    /// default, is a process per call; more shares one process and one gRPC connection
    /// between that many calls, for less CPU and memory per call (README, "Media
    /// benchmark"). Each fleet host then offers --workers x this many slots.
    #[arg(long, env = "VOX_CALLS_PER_WORKER", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub calls_per_worker: u32,

    /// Fleet hosts to run, each its own `voxcore host` process and fleet node. With more
    /// than one (or more than one gateway), host k is node `local-fleet-<k>` and serves
    /// its workers over TCP on its own loopback address 127.0.0.<k+1>, as a host on
    /// another machine would; its folders are <data dir>/hosts/fleet-<k>.
    #[arg(long, env = "VOX_FLEET_HOSTS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub fleet_hosts: u32,

    /// Gateways to run, each its own voxgate process and gateway node. Gateway 1 listens
    /// on --gateway-listen; with more than one, each further gateway listens on the next
    /// loopback address after the fleet hosts' (127.0.0.<hosts+j>), on the same port, and
    /// gateway j is node `local-gateway-<j>`. Any gateway serves any call.
    #[arg(long, env = "VOX_GATEWAYS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub gateways: u32,

    /// Port of worker 1 on each fleet host when hosts serve their workers over TCP (with
    /// more than one host or gateway); worker i takes this + i - 1, on every host alike.
    /// 0: each worker takes a free port, which its host learns and advertises.
    #[arg(long, env = "VOX_WORKER_BASE_PORT", default_value_t = 7101)]
    pub worker_base_port: u16,

    /// voxbridge's gRPC (and /health, /metrics) address; port 0 picks a free one.
    #[arg(long, env = "VOX_BRIDGE_LISTEN", default_value = "127.0.0.1:7070")]
    pub bridge_listen: SocketAddr,

    /// voxgate's HTTP address (media streams, fleet health, REST API); port 0 picks a
    /// free one.
    #[arg(long, env = "VOX_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub gateway_listen: SocketAddr,

    /// The built web console that voxgate serves at `/` (`bash console/build.sh` makes it);
    /// relative to the current folder.
    #[arg(long, env = "VOX_CONSOLE_DIR", default_value = "console/dist")]
    pub console_dir: PathBuf,

    /// Also run the outbound side: voxsim (a simulated carrier), voxdialler and a running
    /// demo campaign, so calls flow at once (see the README's "Demo").
    #[arg(long, env = "VOX_DEMO")]
    pub demo: bool,

    /// voxsim's address in the demo.
    #[arg(long, env = "VOX_SIM_LISTEN", default_value = "127.0.0.1:8070")]
    pub sim_listen: SocketAddr,

    /// voxdialler's health server in the demo (the seeds' 127.0.0.1:8090).
    #[arg(long, env = "VOX_DIALLER_LISTEN", default_value = "127.0.0.1:8090")]
    pub dialler_listen: SocketAddr,

    /// Where each fleet host serves `GET /metrics` for Prometheus. One host: this address;
    /// several: each on its own loopback address, at this port. A taken port leaves the
    /// host without metrics (it logs why), so a second cluster on one machine (a test)
    /// names a free one here.
    #[arg(long, env = "VOX_HOST_METRICS_LISTEN", default_value = "127.0.0.1:7100")]
    pub host_metrics_listen: SocketAddr,

    /// Folder holding the voxbridge, voxcore and voxgate executables.
    /// [default: the folder of this voxctl executable]
    #[arg(long, env = "VOX_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn up_defaults_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["voxctl", "up"]).unwrap();
        let Command::Up(up) = cli.command else { panic!("expected the up command") };
        assert_eq!(up.data_dir, PathBuf::from("vox-data"));
        assert_eq!(up.workers, 4);
        assert_eq!(up.bridge_listen.to_string(), "127.0.0.1:7070");
        assert_eq!(up.gateway_listen.to_string(), "127.0.0.1:8080");
        assert!(up.bin_dir.is_none());
        assert_eq!(up.console_dir, PathBuf::from("console/dist"));
        assert_eq!((up.fleet_hosts, up.gateways, up.worker_base_port), (1, 1, 7101), "one machine's layout");
        assert_eq!(up.host_metrics_listen.to_string(), "127.0.0.1:7100", "where ops/monitoring scrapes voxcore");
    }

    #[test]
    fn zero_hosts_or_gateways_are_refused() {
        for flag in ["--fleet-hosts", "--gateways"] {
            let err = Cli::try_parse_from(["voxctl", "up", flag, "0"]).unwrap_err();
            assert!(err.to_string().contains(flag), "{err}");
        }
    }

    #[test]
    fn zero_workers_is_refused() {
        let err = Cli::try_parse_from(["voxctl", "up", "--workers", "0"]).unwrap_err();
        assert!(err.to_string().contains("--workers"), "{err}");
    }
}
