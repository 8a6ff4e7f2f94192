//! One worker process: its slots, its gRPC service (`vox.fleet.v1.WorkerService` plus
//! health and reflection) on a Unix socket or TCP (TLS when given a certificate), and
//! its drain/exit behaviour. Every WorkerService call passes [`crate::auth`] first.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use vox_blob::BlobStore;
use vox_domain::ids;
use vox_node::tls::TlsFiles;
use vox_node::tokens::ClusterKey;
use vox_node::{Bridge, NodeSecret};
use vox_proto::fleet::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use vox_proto::fleet::v1::{self as pb, media_in};

use crate::auth::{Caller, WorkerAuth};
use crate::config::{CommonArgs, WorkerArgs, socket_path};
use crate::session::{self, Format};
use crate::slots::Slots;
use crate::spool::Uploader;
use crate::storage::RegionStorage;

#[derive(Debug)]
pub struct Worker {
    pub index: u32,
    pub slots: Slots,
    pub common: CommonArgs,
    pub store: Arc<dyn BlobStore>,
    pub bridge: Option<Bridge>,
    pub uploader: Uploader,
    pub stats: crate::stats::Stats,
}

impl Worker {
    /// What `Status` answers: the slot's state and the worker's counters.
    pub fn status(&self) -> pb::WorkerStatus {
        pb::WorkerStatus { counters: Some(self.stats.to_proto(self.uploader.stats())), ..self.slots.status(self.index) }
    }
}

/// The node secret from the settings, parsed.
pub fn node_secret(common: &CommonArgs) -> anyhow::Result<Option<NodeSecret>> {
    common
        .node_secret
        .as_deref()
        .map(|s| NodeSecret::parse("--node-secret (VOX_NODE_SECRET)", s).map_err(|e| anyhow::anyhow!(e.message)))
        .transpose()
}

/// voxbridge from the settings, if configured; both URL and secret or neither.
pub fn bridge_from(common: &CommonArgs) -> anyhow::Result<Option<Bridge>> {
    match (&common.bridge_url, node_secret(common)?) {
        (Some(url), Some(secret)) => Ok(Some(Bridge::new(url, secret).map_err(|e| anyhow::anyhow!(e.message))?)),
        (None, None) => Ok(None),
        (Some(_), None) => anyhow::bail!(
            "--bridge-url is set but --node-secret (VOX_NODE_SECRET) is not; give the fleet node's API secret"
        ),
        (None, Some(_)) => anyhow::bail!("--node-secret is set but --bridge-url (VOX_BRIDGE_URL) is not"),
    }
}

/// Trusts the cluster CA for https:// links (--tls-ca), before any link is made.
pub fn trust_cluster_ca(common: &CommonArgs) -> anyhow::Result<()> {
    if let Some(ca) = &common.tls_ca {
        vox_node::tls::trust_ca_file(ca)?;
    }
    Ok(())
}

/// Refuses anything but a call id of the id alphabet: call ids become spool file names
/// and voxbridge requests, so `../` or a stray `/` must never get further than here.
pub fn check_call_id(field: &str, call_id: &str) -> Result<(), Status> {
    if ids::has_prefix(call_id, ids::CALL) {
        return Ok(());
    }
    let shown: String = call_id.chars().take(40).collect();
    Err(Status::invalid_argument(format!(
        "{field}: expected a call id as voxbridge makes them (ca_ and 16 characters of 0-9a-z), not {shown:?}"
    )))
}

#[derive(Debug, Clone)]
struct Service(Arc<Worker>);

type MediaStream = Pin<Box<dyn Stream<Item = Result<pb::MediaOut, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for Service {
    async fn reserve(&self, req: Request<pb::ReserveRequest>) -> Result<Response<pb::ReserveResponse>, Status> {
        let r = req.into_inner();
        check_call_id("call_id", &r.call_id)?;
        let asked = if r.ttl_ms == 0 { 5000 } else { r.ttl_ms };
        let ttl = Duration::from_millis(u64::from(asked.min(self.0.common.max_reservation_ms)));
        let reservation = self.0.slots.reserve(r, ttl)?;
        tracing::info!(call_id = %reservation.call_id, worker = self.0.index, "slot reserved");
        let expires = chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        Ok(Response::new(pb::ReserveResponse {
            reservation_id: reservation.id,
            expires_at: Some(vox_domain::time::to_proto(expires)),
            worker_index: self.0.index,
        }))
    }

    async fn release(&self, req: Request<pb::ReleaseRequest>) -> Result<Response<pb::ReleaseResponse>, Status> {
        self.0.slots.release(&req.get_ref().reservation_id);
        Ok(Response::new(pb::ReleaseResponse {}))
    }

    type MediaStream = MediaStream;

    async fn media(&self, req: Request<Streaming<pb::MediaIn>>) -> Result<Response<MediaStream>, Status> {
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no start message within 5 s"))??;
        let Some(pb::MediaIn { event: Some(media_in::Event::Start(start)) }) = first else {
            return Err(Status::invalid_argument("the first media message must be `start`"));
        };
        check_call_id("start.call_id", &start.call_id)?;
        vox_telemetry::trace::attribute("call_id", start.call_id.as_str());
        let format = Format::from_proto(start.format.as_ref())?;
        let reservation = self.0.slots.start_call(&start.reservation_id, &start.call_id)?;
        let (tx, rx) = mpsc::channel(64);
        // The call outlives this request: its session gets a span of its own in the same
        // trace, so the transitions it sends voxbridge join the call's trace.
        let span = tracing::info_span!("call session", call_id = %start.call_id, worker = self.0.index);
        tokio::spawn(session::run(Arc::clone(&self.0), start, format, reservation, inbound, tx).instrument(span));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Response<pb::WorkerStatus>, Status> {
        Ok(Response::new(self.0.status()))
    }

    async fn drain(&self, req: Request<pb::DrainRequest>) -> Result<Response<pb::WorkerStatus>, Status> {
        let exit = req.get_ref().exit_when_idle;
        self.0.slots.drain(exit);
        let by = req.extensions().get::<Caller>();
        tracing::info!(worker = self.0.index, exit_when_idle = exit, ?by, "draining");
        Ok(Response::new(self.0.status()))
    }

    async fn resume(&self, _req: Request<pb::ResumeRequest>) -> Result<Response<pb::WorkerStatus>, Status> {
        self.0.slots.resume()?;
        tracing::info!(worker = self.0.index, "taking calls again");
        Ok(Response::new(self.0.status()))
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

/// Binds the worker's Unix socket. `owner_only` (a worker without voxbridge, whose only
/// gate is the file mode): bound under a temporary name, made 0600, then renamed into
/// place, so there is no moment at which another user could connect to it.
fn bind_unix(path: &Path, owner_only: bool) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    // A socket file left by a killed worker would make bind fail.
    let _ = std::fs::remove_file(path);
    if !owner_only {
        return tokio::net::UnixListener::bind(path).with_context(|| format!("bind {}", path.display()));
    }
    let tmp = path.with_extension(format!("sock.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).with_context(|| format!("bind {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("make {} owner-only (0600)", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("move the socket into place at {}", path.display()))?;
    Ok(listener)
}

/// Runs one worker until it is told to stop: on `shutdown` (SIGTERM) or a drain with
/// exit_when_idle, it takes no new call, finishes the ones it holds, then exits.
///
/// A worker runs on a current-thread runtime unless `--worker-threads` says otherwise
/// (see main.rs). A call's frames pass between the gRPC connection's task, the session
/// and the agent; on a multi-thread runtime each hand-over may wake the other thread (a
/// futex and a context switch, several per 20 ms frame), which `perf` showed costing
/// more than the call's own work. One thread hands them over in memory, and a worker of
/// several calls (`--max-concurrent-calls`) serves them all from that thread over one
/// gRPC connection per gateway.
pub async fn run(args: WorkerArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    trust_cluster_ca(&args.common)?;
    let tls = TlsFiles::from_flags(args.common.tls_cert.as_deref(), args.common.tls_key.as_deref())?;
    if let Some(files) = &tls {
        // Said now, before the worker reports itself listening, not at its first client.
        for (flag, path) in [("--tls-cert (VOX_TLS_CERT)", &files.cert), ("--tls-key (VOX_TLS_KEY)", &files.key)] {
            std::fs::File::open(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
        }
    }
    let tcp = args.tcp_address()?;
    let bridge = bridge_from(&args.common)?;
    let auth = match (&bridge, node_secret(&args.common)?) {
        (Some(bridge), Some(own)) => WorkerAuth::Cluster { own, key: ClusterKey::fetch_from(bridge.clone()) },
        _ if tcp.is_some() => anyhow::bail!(
            "--listen / --listen-ip (TCP) needs voxbridge (--bridge-url and --node-secret): gateways prove \
             themselves to a worker with voxbridge's worker tokens, and without them anyone who reaches the port \
             could drain the worker or stream into its calls. Without voxbridge, leave both unset: the worker \
             then serves only its Unix socket in --socket-dir, which only its own user may open"
        ),
        _ => WorkerAuth::SocketOnly,
    };
    std::fs::create_dir_all(&args.common.spool_dir)
        .with_context(|| format!("create spool dir {}", args.common.spool_dir.display()))?;
    if let Some(dir) = &args.common.recordings_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("create recordings dir {}", dir.display()))?;
    }
    let storage = Arc::new(RegionStorage::new(bridge.clone(), args.common.recordings_dir.clone()));
    tokio::spawn({
        let storage = Arc::clone(&storage);
        async move { storage.announce().await }
    });
    let store: Arc<dyn BlobStore> = storage;
    let uploader = Uploader::start(args.common.spool_dir.clone(), Arc::clone(&store), bridge.clone());
    let worker = Arc::new(Worker {
        index: args.index,
        slots: Slots::new(args.common.max_concurrent_calls),
        common: args.common.clone(),
        store,
        bridge,
        uploader,
        stats: crate::stats::Stats::default(),
    });

    let (listener, url) = match tcp {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind {addr}, this worker's TCP address: is another process on that port?"))?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{}", l.local_addr()?);
            (Listener::Tcp(l), url)
        }
        None => {
            if tls.is_some() {
                tracing::info!(
                    worker = args.index,
                    "--tls-cert is for a TCP listener; the Unix socket never leaves this machine and is served plain"
                );
            }
            std::fs::create_dir_all(&args.socket_dir)
                .with_context(|| format!("create socket dir {}", args.socket_dir.display()))?;
            let path = socket_path(&args.socket_dir, args.index);
            let l = bind_unix(&path, matches!(auth, WorkerAuth::SocketOnly))?;
            let url = format!("unix://{}", path.display());
            (Listener::Unix(l, path), url)
        }
    };
    if let Some(file) = &args.address_file {
        std::fs::write(file, &url).with_context(|| format!("write {}", file.display()))?;
    }
    tracing::info!(
        worker = args.index,
        %url,
        max_calls = args.common.max_concurrent_calls,
        authenticated = matches!(auth, WorkerAuth::Cluster { .. }),
        "voxcore worker listening"
    );

    // Reservations that never see media are dropped (watchdog: reservation unused).
    let expiry = {
        let worker = Arc::clone(&worker);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                for r in worker.slots.expire() {
                    tracing::warn!(call_id = %r.call_id, worker = worker.index, reason = "watchdog:reservation_unused", "reservation expired unused");
                }
            }
        })
    };

    if args.exit_with_parent {
        let worker = Arc::clone(&worker);
        let parent = std::os::unix::process::parent_id();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if std::os::unix::process::parent_id() != parent {
                    tracing::warn!(
                        worker = worker.index,
                        "the host that started this worker is gone; finishing the call, then exiting"
                    );
                    worker.slots.drain(true);
                    return;
                }
            }
        });
    }

    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<WorkerServiceServer<Service>>().await;
    let (reflection_v1, reflection_v1alpha) = vox_node::reflection::services(&["vox.fleet.v1.WorkerService"])?;

    let stopping = {
        let worker = Arc::clone(&worker);
        async move {
            tokio::select! {
                () = shutdown => {
                    tracing::info!(worker = worker.index, "asked to stop: finishing current calls first");
                    worker.slots.drain(true);
                }
                () = worker.slots.exit_requested_and_idle() => {}
            }
            worker.slots.exit_requested_and_idle().await;
            health.set_not_serving::<WorkerServiceServer<Service>>().await;
        }
    };
    // Health and reflection stay open; every WorkerService call passes `auth` first.
    let service = WorkerServiceServer::with_interceptor(Service(Arc::clone(&worker)), auth);
    match listener {
        Listener::Tcp(l) => {
            let app = tonic::service::Routes::new(health_svc)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_service(service)
                .into_axum_router();
            // The worker is idle by the time `stopping` resolves; the grace only lets
            // gateways' idle connections see the GOAWAY.
            // A worker serves one call: its host, the gateways and probes are all it expects.
            let limits = vox_node::server::Limits::with_max_connections(256);
            vox_node::server::serve(l, app, tls.as_ref(), limits, stopping, Duration::from_secs(5)).await?;
        }
        Listener::Unix(l, path) => {
            tonic::transport::Server::builder()
                .layer(vox_telemetry::requests::ServerLayer)
                .add_service(health_svc)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_service(service)
                .serve_with_incoming_shutdown(tokio_stream::wrappers::UnixListenerStream::new(l), stopping)
                .await?;
            let _ = std::fs::remove_file(path);
        }
    }
    expiry.abort();
    tracing::info!(worker = args.index, "voxcore worker stopped");
    Ok(())
}
