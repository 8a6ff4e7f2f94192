//! Where each process of a `voxctl up` cluster runs, and as which node.
//!
//! One fleet host and one gateway (the default) keep the one-machine layout: workers on
//! Unix sockets in `<data>/run`, nodes `local-fleet` and `local-gateway`. More of either
//! (`--fleet-hosts`, `--gateways`) lays the cluster out as if each process had a machine
//! of its own, so what runs here is what a real deployment runs: fleet host k is node
//! `local-fleet-<k>` and serves its workers over TCP on its own loopback address
//! 127.0.0.<k+1>, every host on the same ports (identical machines have identical
//! configuration), with its own socket and spool folders under `<data>/hosts/fleet-<k>`;
//! gateway j is node `local-gateway-<j>`, gateway 1 on `--gateway-listen` (so the
//! documented 127.0.0.1:8080 stays true) and each further one on the next loopback
//! address after the hosts', on the same port. Linux routes all of 127.0.0.0/8 to the
//! loopback interface, so this needs no setup there.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::config::UpArgs;

/// The fleet node of the one-machine layout.
pub const FLEET_NODE_NAME: &str = "local-fleet";
/// Its registered endpoint (informational: gateways reach workers at the addresses the
/// host's heartbeats advertise).
pub const FLEET_NODE_ENDPOINT: &str = "http://127.0.0.1:5002";
/// The gateway node of the one-machine layout.
pub const GATEWAY_NODE_NAME: &str = "local-gateway";

/// Every process of the cluster's fleet and edge.
#[derive(Debug, Clone)]
pub struct Plan {
    /// More than one host or gateway: each on its own loopback address, workers over TCP.
    pub spread: bool,
    pub hosts: Vec<HostPlan>,
    pub gateways: Vec<GatewayPlan>,
}

/// One `voxcore host` process and its fleet node.
#[derive(Debug, Clone)]
pub struct HostPlan {
    /// The process name in logs (`voxcore`, or `voxcore-<k>`).
    pub process: String,
    pub node_name: String,
    pub node_endpoint: String,
    /// Where the workers listen on TCP; None: Unix sockets in `socket_dir`.
    pub listen_ip: Option<Ipv4Addr>,
    pub socket_dir: PathBuf,
    pub spool_dir: PathBuf,
}

/// One voxgate process and its gateway node.
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    /// The process name in logs (`voxgate`, or `voxgate-<j>`).
    pub process: String,
    pub node_name: String,
    pub listen: SocketAddr,
    /// Gateway 1 also heartbeats as the console singleton (there is one console node).
    pub console: bool,
}

/// The loopback address of fleet host `k` (1-based) when the cluster is spread.
pub fn host_ip(k: u32) -> Ipv4Addr {
    loopback(1 + k)
}

fn loopback(last: u32) -> Ipv4Addr {
    // Callers keep `last` within 2..=254 (the flags' ranges are checked in `Plan::new`).
    Ipv4Addr::new(127, 0, 0, u8::try_from(last).unwrap_or(u8::MAX))
}

impl Plan {
    /// The layout `args` asks for, with per-host folders under `data`.
    pub fn new(args: &UpArgs, data: &Path) -> anyhow::Result<Plan> {
        let (hosts, gateways) = (args.fleet_hosts, args.gateways);
        let spread = hosts > 1 || gateways > 1;
        if !spread {
            let run = data.join("run");
            return Ok(Plan {
                spread,
                hosts: vec![HostPlan {
                    process: "voxcore".into(),
                    node_name: FLEET_NODE_NAME.into(),
                    node_endpoint: FLEET_NODE_ENDPOINT.into(),
                    listen_ip: None,
                    socket_dir: run,
                    spool_dir: data.join("spool"),
                }],
                gateways: vec![GatewayPlan {
                    process: "voxgate".into(),
                    node_name: GATEWAY_NODE_NAME.into(),
                    listen: args.gateway_listen,
                    console: true,
                }],
            });
        }
        // Hosts take 127.0.0.2 ..= 127.0.0.<hosts+1>, further gateways the addresses after.
        if hosts + gateways > 254 {
            bail!(
                "--fleet-hosts (VOX_FLEET_HOSTS) {hosts} and --gateways (VOX_GATEWAYS) {gateways} need {} loopback \
                 addresses after 127.0.0.1; there are 253",
                hosts + gateways - 1
            );
        }
        if gateways > 1 && args.gateway_listen.ip().is_unspecified() && args.gateway_listen.port() != 0 {
            bail!(
                "--gateway-listen (VOX_GATEWAY_LISTEN) {} takes port {} on every address, so gateways 2 and later \
                 (on 127.0.0.{} and up) cannot have it: give gateway 1 a specific address, e.g. 127.0.0.1:{}",
                args.gateway_listen,
                args.gateway_listen.port(),
                hosts + 2,
                args.gateway_listen.port()
            );
        }
        let hosts = (1..=hosts)
            .map(|k| {
                let folder = data.join("hosts").join(format!("fleet-{k}"));
                let ip = host_ip(k);
                HostPlan {
                    process: format!("voxcore-{k}"),
                    node_name: format!("{FLEET_NODE_NAME}-{k}"),
                    node_endpoint: match args.worker_base_port {
                        0 => format!("http://{ip}"),
                        port => format!("http://{ip}:{port}"),
                    },
                    listen_ip: Some(ip),
                    socket_dir: folder.join("run"),
                    spool_dir: folder.join("spool"),
                }
            })
            .collect();
        let gateways = (1..=gateways)
            .map(|j| GatewayPlan {
                process: format!("voxgate-{j}"),
                node_name: format!("{GATEWAY_NODE_NAME}-{j}"),
                listen: if j == 1 {
                    args.gateway_listen
                } else {
                    SocketAddr::new(IpAddr::V4(loopback(args.fleet_hosts + j)), args.gateway_listen.port())
                },
                console: j == 1,
            })
            .collect();
        Ok(Plan { spread, hosts, gateways })
    }

    /// Every worker's TCP address known before it starts (none with Unix sockets or with
    /// a worker base port of 0), for the port checks before anything starts.
    pub fn worker_addresses(&self, workers: u32, base_port: u16) -> Vec<(String, SocketAddr)> {
        if base_port == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for h in &self.hosts {
            let Some(ip) = h.listen_ip else { continue };
            for i in 1..=workers {
                if let Ok(port) = u16::try_from(u32::from(base_port) + i - 1) {
                    out.push((format!("{} worker {i}", h.process), SocketAddr::new(IpAddr::V4(ip), port)));
                }
            }
        }
        out
    }

    /// True for a node name this layout or another `voxctl up` layout uses
    /// (`local-fleet`, `local-fleet-<k>`, `local-gateway`, `local-gateway-<j>`).
    pub fn is_voxctl_node(name: &str) -> bool {
        [FLEET_NODE_NAME, GATEWAY_NODE_NAME].iter().any(|base| {
            name == *base
                || name
                    .strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// The node names this layout runs.
    pub fn node_names(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .map(|h| h.node_name.as_str())
            .chain(self.gateways.iter().map(|g| g.node_name.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, Command};

    fn up(flags: &[&str]) -> UpArgs {
        match Cli::try_parse_from(["voxctl", "up"].iter().chain(flags)).unwrap().command {
            Command::Up(u) => u,
            other => panic!("`voxctl up` parsed as {other:?}"),
        }
    }

    #[test]
    fn the_default_is_the_one_machine_layout() {
        let plan = Plan::new(&up(&[]), Path::new("/srv/vox")).unwrap();
        assert!(!plan.spread);
        assert_eq!(plan.hosts.len(), 1);
        let h = &plan.hosts[0];
        assert_eq!((h.process.as_str(), h.node_name.as_str(), h.listen_ip), ("voxcore", "local-fleet", None));
        assert_eq!(h.socket_dir, Path::new("/srv/vox/run"));
        let g = &plan.gateways[0];
        assert_eq!((g.process.as_str(), g.node_name.as_str()), ("voxgate", "local-gateway"));
        assert_eq!(g.listen.to_string(), "127.0.0.1:8080");
        assert!(plan.worker_addresses(4, 7101).is_empty(), "Unix sockets have no ports");
    }

    #[test]
    fn spread_hosts_and_gateways_each_get_their_own_loopback_address() {
        let plan = Plan::new(&up(&["--fleet-hosts", "2", "--gateways", "3"]), Path::new("/srv/vox")).unwrap();
        assert!(plan.spread);
        let hosts: Vec<_> =
            plan.hosts.iter().map(|h| (h.node_name.as_str(), h.listen_ip.unwrap().to_string())).collect();
        assert_eq!(hosts, [("local-fleet-1", "127.0.0.2".to_string()), ("local-fleet-2", "127.0.0.3".to_string())]);
        assert_eq!(plan.hosts[1].socket_dir, Path::new("/srv/vox/hosts/fleet-2/run"));
        assert_eq!(plan.hosts[1].spool_dir, Path::new("/srv/vox/hosts/fleet-2/spool"));
        assert_eq!(plan.hosts[0].node_endpoint, "http://127.0.0.2:7101");
        let gates: Vec<_> =
            plan.gateways.iter().map(|g| (g.process.as_str(), g.listen.to_string(), g.console)).collect();
        assert_eq!(
            gates,
            [
                ("voxgate-1", "127.0.0.1:8080".to_string(), true),
                ("voxgate-2", "127.0.0.4:8080".to_string(), false),
                ("voxgate-3", "127.0.0.5:8080".to_string(), false),
            ]
        );
        let ports: Vec<String> = plan.worker_addresses(2, 7101).into_iter().map(|(_, a)| a.to_string()).collect();
        assert_eq!(ports, ["127.0.0.2:7101", "127.0.0.2:7102", "127.0.0.3:7101", "127.0.0.3:7102"]);
        assert!(plan.worker_addresses(2, 0).is_empty(), "ports of the workers' choosing are not known before");
        // One more gateway alone spreads too: the lone host serves over TCP.
        let one_host = Plan::new(&up(&["--gateways", "2"]), Path::new("/srv/vox")).unwrap();
        assert_eq!(one_host.hosts[0].listen_ip, Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(one_host.gateways[1].listen.to_string(), "127.0.0.3:8080");
    }

    #[test]
    fn a_wildcard_gateway_address_cannot_be_shared() {
        let err = Plan::new(&up(&["--gateways", "2", "--gateway-listen", "0.0.0.0:8080"]), Path::new("/v"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--gateway-listen") && err.contains("127.0.0.1:8080"), "{err}");
        // Port 0 is fine: each gateway gets a port of its own.
        Plan::new(&up(&["--gateways", "2", "--gateway-listen", "0.0.0.0:0"]), Path::new("/v")).unwrap();
    }

    #[test]
    fn voxctl_knows_its_own_node_names() {
        for own in ["local-fleet", "local-fleet-2", "local-gateway", "local-gateway-13"] {
            assert!(Plan::is_voxctl_node(own), "{own}");
        }
        for other in ["local-fleetx", "local-fleet-", "local-fleet-a", "edge-1", "local-console", "local-dialler"] {
            assert!(!Plan::is_voxctl_node(other), "{other}");
        }
    }
}
