//! voxbridge, the Vox control plane and source of truth.
//!
//! It owns regions and their storage settings, nodes and their heartbeats and lifecycle,
//! campaigns, calls (the state machine, batch leasing for the dialler, the leadership
//! lease with fencing terms, the stale-call reaper), users and the dashboard. It speaks
//! gRPC (`vox.backend.v1`, plus `grpc.health.v1` and reflection) and serves `GET /health`
//! and `GET /metrics` on the same port. It is the only process that talks to the
//! database.
//!
//! The binary is thin: it resolves [`config::Args`] and calls [`run`] with a bound
//! listener, which is also how tests start it on `127.0.0.1:0`.

pub mod admission;
pub mod api;
pub mod auth;
pub mod bridge;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod http;
pub mod metrics;
pub mod passwords;
pub mod reaper;
pub mod recordings;
pub mod storage;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use vox_domain::{Clock, SystemClock};
use vox_proto::backend::v1 as pb;
use vox_store::Stores;

use crate::bridge::Bridge;
use crate::config::{Settings, StoreSetting};

/// Opens the stores the settings name.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<Stores> {
    let stores = open_documents(settings).await?;
    match &settings.redis {
        // Presence outlives three staleness windows, then cleans itself up.
        Some(url) => vox_store_redis::share_through_redis(
            stores,
            url,
            "vox:",
            std::time::Duration::from_secs(u64::from(settings.node_staleness_seconds) * 3),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("connect to Redis"),
        None => Ok(stores),
    }
}

async fn open_documents(settings: &Settings) -> anyhow::Result<Stores> {
    match &settings.store {
        StoreSetting::Sqlite(path) => vox_store_sqlite::open_stores(path)
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .context("open the embedded store"),
        StoreSetting::Mongo { uri, database } => vox_store_mongo::open_stores(uri, database)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .context("open the MongoDB store"),
    }
}

/// The work queue: Redis when several instances share one (`--redis`), else a SQLite file
/// beside the data (`queue.sqlite3`).
async fn open_queue(settings: &Settings) -> anyhow::Result<Arc<dyn vox_store::queue::WorkQueue>> {
    Ok(match &settings.redis {
        Some(url) => {
            let redis = vox_store_redis::Redis::connect(url, "vox:")
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))
                .context("connect to Redis for the work queue")?;
            Arc::new(vox_store_redis::RedisWorkQueue::new(redis).await)
        }
        None => Arc::new(
            vox_store_sqlite::SqliteWorkQueue::open(&settings.data_dir.join("queue.sqlite3"))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))
                .context("open the work queue")?,
        ),
    })
}

/// Serves voxbridge on `listener` until `shutdown` resolves, then drains and returns.
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stores = open_stores(&settings).await?;
    run_with(settings, stores, Arc::new(SystemClock), listener, shutdown).await
}

/// [`run`] with the stores and clock given (tests inject a manual clock).
pub async fn run_with(
    settings: Settings,
    stores: Stores,
    clock: Arc<dyn Clock>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let queue = open_queue(&settings).await?;
    let settings = Arc::new(settings);
    let bridge = Arc::new(Bridge {
        auth: auth::Auth::new(
            stores.clone(),
            &settings.jwt_secret,
            chrono::Duration::minutes(i64::from(settings.token_ttl_minutes)),
        ),
        passwords: passwords::Passwords::new(settings.login_attempts_per_minute),
        master_key: crypto::MasterKey::new(&settings.master_key),
        tokens: crypto::cluster_token_signer(&settings.master_key).map_err(|e| anyhow::anyhow!("{}", e.message))?,
        metrics: Arc::new(metrics::Metrics::default()),
        region_stores: storage::RegionStores::new(
            settings.recordings_dir.clone(),
            settings.create_buckets,
            &settings.master_key,
        ),
        stores,
        clock,
        settings: Arc::clone(&settings),
        queue: bridge::Queue(queue),
        webhook_wake: Arc::new(tokio::sync::Notify::new()),
        shutdown: stop_rx,
    });

    if let Some((email, password)) =
        api::users::ensure_admin(&bridge).await.map_err(|e| anyhow::anyhow!("{}", e.message))?
    {
        // Printed once, to stdout and never to the log; it is not stored anywhere.
        println!(
            "\n  voxbridge created the first admin.\n    email:    {email}\n    password: {password}\n  Sign in and change it; this is the only time it is shown.\n"
        );
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in vox_proto::BACKEND_SERVICES.iter().chain(std::iter::once(&"")) {
        health.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
    }
    let (reflection_v1, reflection_v1alpha) =
        vox_node::reflection::services(vox_proto::BACKEND_SERVICES).context("build reflection")?;

    let b = &bridge;
    let grpc = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::region_service_server::RegionServiceServer::new(api::regions::Regions(b.clone())))
        .add_service(pb::node_service_server::NodeServiceServer::new(api::nodes::Nodes(b.clone())))
        .add_service(pb::campaign_service_server::CampaignServiceServer::new(api::campaigns::Campaigns(b.clone())))
        .add_service(pb::call_service_server::CallServiceServer::new(api::calls::Calls(b.clone())))
        .add_service(pb::leadership_service_server::LeadershipServiceServer::new(api::leadership::Leaders(b.clone())))
        .add_service(pb::dashboard_service_server::DashboardServiceServer::new(api::dashboard::Dashboards(b.clone())))
        .add_service(pb::auth_service_server::AuthServiceServer::new(api::users::Users(b.clone())))
        .add_service(pb::user_service_server::UserServiceServer::new(api::users::Users(b.clone())))
        .add_service(pb::job_service_server::JobServiceServer::new(api::jobs::Jobs(b.clone())))
        .add_service(pb::do_not_call_service_server::DoNotCallServiceServer::new(api::dnc::DoNotCall(b.clone())))
        .add_service(pb::storage_service_server::StorageServiceServer::new(api::storage::Storage(b.clone())))
        .add_service(pb::cluster_service_server::ClusterServiceServer::new(api::cluster::Cluster(b.clone())))
        .add_service(pb::api_key_service_server::ApiKeyServiceServer::new(api::api_keys::ApiKeys(b.clone())))
        .add_service(pb::event_service_server::EventServiceServer::new(api::events::Events(b.clone())))
        .add_service(pb::webhook_service_server::WebhookServiceServer::new(api::webhooks::Webhooks(b.clone())))
        .into_axum_router();
    let app = grpc
        .merge(http::routes(Arc::clone(&bridge)))
        // Nodes and everyone else each have their own capacity (see `admission`).
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(admission::Admission::new(Arc::clone(&bridge))),
            admission::admit,
        ));

    let addr = listener.local_addr().context("read the bound address")?;
    if let Some(path) = &settings.address_file {
        std::fs::write(path, addr.to_string()).with_context(|| format!("write address file {}", path.display()))?;
    }
    tracing::info!(%addr, store = ?settings.store, redis = settings.redis.is_some(), tls = settings.tls.is_some(), "voxbridge listening (gRPC, /health, /metrics)");

    let reaper = tokio::spawn(reaper::run(Arc::clone(&bridge)));
    let mut background = webhooks::start(Arc::clone(&bridge));
    background.push(tokio::spawn(webhooks::queue_metrics_loop(Arc::clone(&bridge))));
    background.push(tokio::spawn(recordings::process_loop(Arc::clone(&bridge))));
    let stopping = async move {
        shutdown.await;
        tracing::info!("voxbridge shutting down");
        health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        let _ = stop_tx.send(true);
    };
    // Open connections get a grace period to finish their requests; clients that keep an
    // idle HTTP/2 connection open do not hold the shutdown hostage.
    let limits = vox_node::server::Limits::with_max_connections(settings.max_connections);
    vox_node::server::serve(listener, app, settings.tls.as_ref(), limits, stopping, std::time::Duration::from_secs(5))
        .await?;
    reaper.abort();
    for task in background {
        task.abort();
    }
    tracing::info!("voxbridge stopped");
    Ok(())
}
