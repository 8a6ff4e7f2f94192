//! A fleet host: starts N worker processes (each its own process, restartable alone),
//! restarts any that die, and heartbeats the fleet node to voxbridge with every worker's
//! slot. The heartbeat reply's desired state is applied to the workers: maintenance
//! drains them, resume reopens them, shutdown drains them to exit and then ends the host
//! (its service manager starts it again, with a new boot id).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use vox_proto::backend::v1 as bpb;
use vox_proto::fleet::v1 as pb;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;

use crate::config::{HostArgs, socket_path};
use crate::worker::bridge_from;

#[derive(Debug)]
struct Workers {
    urls: Vec<(u32, String)>,
    clients: HashMap<u32, WorkerServiceClient<tonic::transport::Channel>>,
    applied: Mutex<bpb::DesiredState>,
    stop: watch::Sender<bool>,
}

impl Workers {
    async fn each(
        &self,
        f: impl Fn(WorkerServiceClient<tonic::transport::Channel>) -> futures::future::BoxFuture<'static, ()>,
    ) {
        futures::future::join_all(self.clients.values().cloned().map(f)).await;
    }
}

impl vox_node::heartbeat::HeartbeatSource for Workers {
    async fn slots(&self) -> Vec<bpb::WorkerSlot> {
        let mut out = Vec::new();
        for (index, url) in &self.urls {
            let Some(client) = self.clients.get(index) else { continue };
            let mut client = client.clone();
            let status = tokio::time::timeout(Duration::from_millis(800), client.status(pb::StatusRequest {})).await;
            // A worker that does not answer has no slot to offer: leave it out.
            if let Ok(Ok(s)) = status {
                let s = s.into_inner();
                out.push(bpb::WorkerSlot { index: *index, state: s.state, call_id: s.call_id, endpoint: url.clone() });
            }
        }
        out
    }

    async fn desired(&self, state: bpb::DesiredState) {
        let previous = {
            let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *applied, state)
        };
        if previous == state {
            return;
        }
        tracing::info!(from = ?previous, to = ?state, "applying the desired state to the workers");
        match state {
            bpb::DesiredState::Maintenance | bpb::DesiredState::Disabled => {
                self.each(|mut c| {
                    Box::pin(async move {
                        let _ = c.drain(pb::DrainRequest { exit_when_idle: false }).await;
                    })
                })
                .await;
            }
            bpb::DesiredState::Shutdown => {
                let _ = self.stop.send(true);
                self.each(|mut c| {
                    Box::pin(async move {
                        let _ = c.drain(pb::DrainRequest { exit_when_idle: true }).await;
                    })
                })
                .await;
            }
            bpb::DesiredState::Active | bpb::DesiredState::Unspecified => {
                self.each(|mut c| {
                    Box::pin(async move {
                        let _ = c.resume(pb::ResumeRequest {}).await;
                    })
                })
                .await;
            }
        }
    }
}

/// Starts worker `index` again whenever it exits, until `stop`.
async fn supervise(index: u32, args: HostArgs, stop: watch::Receiver<bool>) {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot find the voxcore executable to start workers");
            return;
        }
    };
    loop {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("worker")
            .arg("--index")
            .arg(index.to_string())
            .arg("--socket-dir")
            .arg(&args.socket_dir)
            .arg("--exit-with-parent")
            .args(args.common.to_worker_args())
            .kill_on_drop(false);
        if let Some(secret) = &args.common.node_secret {
            // Through the environment, never argv: other users can read argv in ps.
            cmd.env("VOX_NODE_SECRET", secret);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot start worker; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let pid = child.id();
        let mut stop_wait = stop.clone();
        tokio::select! {
            status = child.wait() => {
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(worker = index, status = ?status.ok(), "worker exited; restarting it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            () = async { let _ = stop_wait.wait_for(|s| *s).await; } => {
                // Ask the worker to finish its call and exit, then wait for it.
                if let Some(pid) = pid {
                    let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
                }
                let _ = child.wait().await;
                return;
            }
        }
    }
}

pub async fn run(args: HostArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let bridge = bridge_from(&args.common)?.context(
        "a fleet host heartbeats to voxbridge: set --bridge-url (VOX_BRIDGE_URL) and --node-secret (VOX_NODE_SECRET)",
    )?;
    if args.workers == 0 || args.workers > 1024 {
        anyhow::bail!("--workers (VOX_WORKERS) must be 1-1024, not {}", args.workers);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut urls = Vec::new();
    let mut clients = HashMap::new();
    for i in 1..=args.workers {
        let url = format!("unix://{}", socket_path(&args.socket_dir, i).display());
        let channel = vox_node::channel::connect_lazy(&url).map_err(|e| anyhow::anyhow!(e.message))?;
        clients.insert(i, WorkerServiceClient::new(channel));
        urls.push((i, url));
    }
    let workers =
        Arc::new(Workers { urls, clients, applied: Mutex::new(bpb::DesiredState::Active), stop: stop_tx.clone() });

    let mut supervisors = Vec::new();
    if args.spawn {
        for i in 1..=args.workers {
            supervisors.push(tokio::spawn(supervise(i, args.clone(), stop_rx.clone())));
        }
    }
    tracing::info!(node_id = bridge.node_id(), workers = args.workers, spawn = args.spawn, "voxcore host started");
    // Each worker fetches the region's storage itself; the host fetches it once too, so
    // its log says where this host's recordings go (or why voxbridge has not said yet).
    tokio::spawn({
        let storage = crate::storage::RegionStorage::new(Some(bridge.clone()), args.common.recordings_dir.clone());
        async move { storage.announce().await }
    });
    let beat = tokio::spawn(vox_node::heartbeat::run(
        bridge,
        vox_node::new_boot_id(),
        env!("CARGO_PKG_VERSION"),
        Arc::clone(&workers),
        stop_rx.clone(),
    ));

    let mut stopped = stop_rx.clone();
    tokio::select! {
        () = shutdown => {
            tracing::info!("asked to stop: workers finish their calls, then exit");
            let _ = stop_tx.send(true);
        }
        _ = stopped.wait_for(|s| *s) => tracing::info!("shutdown requested by voxbridge: draining, then exiting"),
    }
    for s in supervisors {
        let _ = s.await;
    }
    beat.abort();
    tracing::info!("voxcore host stopped");
    Ok(())
}
