//! What reaching a worker costs, by path: its Unix socket (a gateway on the same
//! machine), its own TCP port (what `voxcore host --listen-ip` gives other machines),
//! and its TCP port behind one relay hop (the hop a host-level proxy such as nginx in
//! front of a host's workers adds). Prints p50/p99 of 500 sequential authenticated
//! `Status` calls per path, in microseconds; asserts only that every call succeeded, as
//! timings on a shared CI machine are no pass/fail matter. (The Unix socket is served by
//! tonic's server, TCP by `vox_node::tls::serve`: that difference is in the figures too.)
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Bearer, Cluster, client, start_worker, until};
use vox_proto::fleet::v1 as pb;

const CALLS: usize = 500;
const WARM_UP: usize = 50;

/// A plain TCP relay on loopback in front of `upstream`: bytes copied both ways, one
/// upstream connection per client connection, no buffering beyond the copy.
async fn relay(upstream: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else { return };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    addr
}

/// p50 and p99 of `took`, in microseconds.
fn percentiles(mut took: Vec<Duration>) -> (u128, u128) {
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).saturating_sub(1)].as_micros();
    (at(0.50), at(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_to_a_worker_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let secret = [("VOX_NODE_SECRET", cluster.fleet_secret.clone())];
    let worker_args = |index: &str, listen: &[&str]| -> Vec<String> {
        ["worker", "--index", index, "--log-format", "json", "--bridge-url", &cluster.bridge.url()]
            .into_iter()
            .chain(["--spool-dir", &dir.path().join(format!("spool-{index}")).display().to_string()])
            .chain(listen.iter().copied())
            .map(String::from)
            .collect()
    };
    let sockets = dir.path().join("sock").display().to_string();
    let unix = start_worker("voxcore-unix", &worker_args("1", &["--socket-dir", &sockets]), &secret, dir.path()).await;
    let tcp = start_worker("voxcore-tcp", &worker_args("2", &["--listen", "127.0.0.1:0"]), &secret, dir.path()).await;
    let relayed = format!("http://{}", relay(tcp.addr).await);
    let token = cluster.worker_token().await;

    let paths = [
        ("unix socket", unix.endpoint.as_str()),
        ("tcp, the worker's own port", tcp.endpoint.as_str()),
        ("tcp through a relay hop", relayed.as_str()),
    ];
    let mut clients = Vec::new();
    for (_, url) in paths {
        let mut c = client(url, Bearer::new(&token));
        until("the worker accepting the gateway's token", async || c.status(pb::StatusRequest {}).await.ok()).await;
        for _ in 0..WARM_UP {
            c.status(pb::StatusRequest {}).await.unwrap();
        }
        clients.push(c);
    }
    // The paths take turns, each first as often as the others, so neither a busy moment
    // on a shared machine nor a worker still warm from the previous call favours one.
    let mut took: Vec<Vec<Duration>> = vec![Vec::with_capacity(CALLS); paths.len()];
    for round in 0..CALLS {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            let t = Instant::now();
            let status = clients[i].status(pb::StatusRequest {}).await;
            took[i].push(t.elapsed());
            assert!(status.is_ok(), "every call succeeds: {status:?}");
        }
    }
    let figures: Vec<String> = paths
        .iter()
        .zip(took)
        .map(|((path, _), times)| {
            let (p50, p99) = percentiles(times);
            format!("{path:<28} p50 {p50:>6} us   p99 {p99:>6} us")
        })
        .collect();
    let profile = if cfg!(debug_assertions) { "debug build" } else { "release build" };
    println!("round trip of {CALLS} sequential WorkerService/Status calls ({profile}):\n{}", figures.join("\n"));
}
