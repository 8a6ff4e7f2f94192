//! The dialler's small server, on `127.0.0.1:8090` by default (the seeds' health port):
//! `GET /health` (200 while leading and ticking, 503 with the reason otherwise),
//! `GET /metrics` (Prometheus), and the gRPC `vox.dialler.v1.DiallerService/GetStatus`
//! (with `grpc.health.v1.Health` and reflection) with the live pacing figures, for voxgate's `GET /api/v1/dialler`. `/health` and
//! `/metrics` carry no secrets and answer anyone who can reach the port (bind it to
//! loopback or a private address); `GetStatus` needs a bearer voxbridge accepts (a
//! user's token or a node secret), checked through `AuthService/Identify`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use vox_proto::backend::v1 as bpb;
use vox_proto::dialler::v1 as dpb;

use crate::status::Status;

/// Bearers voxbridge accepted in the last [`ACCEPTED_FOR`], so a console polling every
/// second costs one check every few seconds, and a revoked token stops working soon after.
/// How long an accepted bearer is taken without asking voxbridge again.
const ACCEPTED_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Accepted(Mutex<HashMap<String, Instant>>);

#[derive(Debug, Clone)]
pub struct StatusService {
    status: Arc<Status>,
    bridge: tonic::transport::Channel,
    accepted: Arc<Accepted>,
}

impl StatusService {
    async fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), tonic::Status> {
        let Some(auth) = metadata.get("authorization").cloned() else {
            return Err(tonic::Status::unauthenticated("authorization: a bearer token or node secret is required"));
        };
        let key = auth.to_str().unwrap_or_default().to_string();
        {
            let mut accepted = self.accepted.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            accepted.retain(|_, at| at.elapsed() < ACCEPTED_FOR);
            if accepted.contains_key(&key) {
                return Ok(());
            }
        }
        let mut req = tonic::Request::new(bpb::IdentifyRequest {});
        req.metadata_mut().insert("authorization", auth);
        let mut client = bpb::auth_service_client::AuthServiceClient::new(self.bridge.clone());
        match client.identify(req).await {
            Ok(_) => {
                self.accepted.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, Instant::now());
                Ok(())
            }
            Err(s) if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => Err(s),
            Err(s) => Err(tonic::Status::unavailable(format!("cannot check credentials: voxbridge: {}", s.message()))),
        }
    }
}

#[tonic::async_trait]
impl dpb::dialler_service_server::DiallerService for StatusService {
    async fn get_status(
        &self,
        req: tonic::Request<dpb::GetStatusRequest>,
    ) -> Result<tonic::Response<dpb::DiallerStatus>, tonic::Status> {
        self.authenticate(req.metadata()).await?;
        Ok(tonic::Response::new(self.status.to_proto()))
    }
}

async fn health(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let h = status.health();
    let code = if h.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(h))
}

async fn metrics(State(status): State<Arc<Status>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], status.encode_metrics())
}

/// The HTTP routes and the gRPC services: `DiallerService`, `grpc.health.v1.Health` and
/// reflection (v1 and v1alpha), like every Vox gRPC server.
pub async fn router(status: Arc<Status>, bridge: tonic::transport::Channel) -> anyhow::Result<Router> {
    let service = StatusService { status: Arc::clone(&status), bridge, accepted: Arc::default() };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<dpb::dialler_service_server::DiallerServiceServer<StatusService>>().await;
    let (reflection_v1, reflection_v1alpha) = vox_node::reflection::services(&["vox.dialler.v1.DiallerService"])?;
    let grpc = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(dpb::dialler_service_server::DiallerServiceServer::new(service))
        .into_axum_router();
    Ok(Router::new().route("/health", get(health)).route("/metrics", get(metrics)).with_state(status).merge(grpc))
}
