//! The control-plane steps every cluster test starts with: voxbridge with a known first
//! admin, a signed-in admin session, a region, registered nodes.
#![allow(clippy::unwrap_used, reason = "test harness: a failed step stops the test with its error")]

use std::path::Path;

use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;

use crate::ServerProcess;

pub const ADMIN_EMAIL: &str = "admin@vox.test";
pub const ADMIN_PASSWORD: &str = "admin password for tests";

/// The environment that makes voxbridge create [`ADMIN_EMAIL`] on first start.
pub fn admin_env() -> Vec<(&'static str, String)> {
    vec![("VOX_ADMIN_EMAIL", ADMIN_EMAIL.to_string()), ("VOX_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string())]
}

/// Starts voxbridge (the workspace's binary) with `args` and the test admin, logging to
/// `<dir>/<name>.{out,err}`.
pub async fn start_bridge(name: &str, args: &[String], dir: &Path) -> ServerProcess {
    ServerProcess::start(name, &crate::workspace_binary("voxbridge", "voxbridge"), args, &admin_env(), dir)
        .await
        .unwrap()
}

/// `msg` with `Authorization: Bearer <token>`.
pub fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A connected channel to voxbridge at `url` and the test admin's access token.
pub async fn admin_session(url: &str) -> (Channel, String) {
    let channel = Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let token = login(&channel).await;
    (channel, token)
}

/// The test admin's access token from the voxbridge behind `channel`.
pub async fn login(channel: &Channel) -> String {
    pb::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

/// Creates a region in the US and returns its id.
pub async fn create_region(
    channel: &Channel,
    token: &str,
    name: &str,
    storage: Option<pb::RegionStorageInput>,
) -> String {
    pb::region_service_client::RegionServiceClient::new(channel.clone())
        .create_region(authed(token, pb::CreateRegionRequest { name: name.into(), country: "US".into(), storage }))
        .await
        .unwrap()
        .into_inner()
        .id
}

/// Registers a node of `kind` in `region_id`; the reply holds its API secret.
pub async fn register_node(
    channel: &Channel,
    token: &str,
    region_id: &str,
    kind: pb::NodeKind,
) -> pb::RegisterNodeResponse {
    pb::node_service_client::NodeServiceClient::new(channel.clone())
        .register_node(authed(
            token,
            pb::RegisterNodeRequest {
                kind: kind as i32,
                region_id: region_id.into(),
                endpoint: "http://127.0.0.1:1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// An inbound phone call from `from_number`, created as a gateway would (by the admin)
/// and moved to attaching on worker 1 of fleet node `node_id` by that node (`node_secret`),
/// ready for the worker's media stream.
pub async fn inbound_call_on_worker(
    channel: &Channel,
    admin: &str,
    region_id: &str,
    node_id: &str,
    node_secret: &str,
    from_number: &str,
) -> pb::Call {
    let mut calls = pb::call_service_client::CallServiceClient::new(channel.clone());
    let call = calls
        .create_inbound_call(authed(
            admin,
            pb::CreateInboundCallRequest {
                region_id: region_id.into(),
                channel: vox_proto::common::v1::Channel::Phone as i32,
                from_number: from_number.into(),
                to_number: "+14155550100".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    calls
        .transition_call(authed(
            node_secret,
            pb::TransitionCallRequest {
                call_id: call.id.clone(),
                to_state: pb::CallState::Attaching as i32,
                node_id: node_id.into(),
                worker_index: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    call
}
