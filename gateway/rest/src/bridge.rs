//! The gateway's side of voxbridge: one shared gRPC channel, the caller's bearer token
//! forwarded as `authorization` metadata, and a deadline on every unary call.

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;

use crate::error::{ApiError, ApiResult};
use crate::extract::Bearer;

/// voxbridge as the handlers reach it. Cheap to clone: the channel is shared.
#[derive(Debug, Clone)]
pub struct Bridge {
    channel: Channel,
    /// The dialler's status server, when configured.
    dialler: Option<Channel>,
    timeout: Duration,
    /// The gateway's node secret, for relayed sign-ins.
    node_secret: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// Most rows of one numbers upload.
    max_upload_rows: usize,
}

impl Bridge {
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Bridge { channel, dialler: None, timeout, node_secret: None, max_upload_rows: crate::DEFAULT_MAX_UPLOAD_ROWS }
    }

    pub fn with_max_upload_rows(mut self, rows: usize) -> Self {
        self.max_upload_rows = rows;
        self
    }

    /// Most rows of one numbers upload.
    pub fn max_upload_rows(&self) -> usize {
        self.max_upload_rows
    }

    pub fn with_dialler(mut self, dialler: Option<Channel>) -> Self {
        self.dialler = dialler;
        self
    }

    pub fn with_node_secret(mut self, secret: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>) -> Self {
        self.node_secret = secret;
        self
    }

    pub fn dialler(&self) -> Option<vox_proto::dialler::v1::dialler_service_client::DiallerServiceClient<Channel>> {
        self.dialler.clone().map(vox_proto::dialler::v1::dialler_service_client::DiallerServiceClient::new)
    }

    /// `msg` carrying the caller's token and the unary deadline (sent as `grpc-timeout`,
    /// so voxbridge stops working on it too).
    pub fn request<T>(&self, auth: &Bearer, msg: T) -> tonic::Request<T> {
        let mut req = self.stream_request(auth, msg);
        req.set_timeout(self.timeout);
        req
    }

    /// `msg` carrying the caller's token and no deadline, for server streams.
    pub fn stream_request<T>(&self, auth: &Bearer, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.metadata_mut().insert("authorization", auth.metadata());
        vox_telemetry::trace::inject(req.metadata_mut());
        req
    }

    /// `msg` without credentials (sign-in).
    pub fn anonymous<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.timeout);
        req
    }

    /// A sign-in relayed for `client`: signed with the gateway's node secret and naming
    /// the client's address, so voxbridge's per-address sign-in budget is the client's.
    pub fn sign_in<T>(&self, client: Option<crate::ClientAddr>, msg: T) -> tonic::Request<T> {
        let mut req = self.anonymous(msg);
        if let (Some(secret), Some(client)) = (&self.node_secret, client)
            && let Ok(addr) = client.0.to_string().parse()
        {
            req.metadata_mut().insert("authorization", secret.clone());
            req.metadata_mut().insert("x-vox-client-address", addr);
        }
        req
    }

    /// Waits for a unary reply at most the deadline; a late reply counts as unreachable.
    pub async fn unary<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> ApiResult<T> {
        self.within_deadline(call).await.map(tonic::Response::into_inner)
    }

    /// Runs `call` under the unary deadline (also used to open a stream).
    pub async fn within_deadline<T>(&self, call: impl Future<Output = Result<T, tonic::Status>>) -> ApiResult<T> {
        self.within_deadline_of("the control plane (voxbridge)", call).await
    }

    /// [`Bridge::within_deadline`] for a call to `service` (voxbridge, the dialler).
    pub async fn within_deadline_of<T>(
        &self,
        service: &str,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> ApiResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|s| ApiError::from_status(service, s)),
            Err(_) => {
                Err(ApiError::out_of_reach(service, format!("no answer within {} s", self.timeout.as_secs_f32())))
            }
        }
    }

    pub fn auth(&self) -> pb::auth_service_client::AuthServiceClient<Channel> {
        pb::auth_service_client::AuthServiceClient::new(self.channel.clone())
    }
    pub fn users(&self) -> pb::user_service_client::UserServiceClient<Channel> {
        pb::user_service_client::UserServiceClient::new(self.channel.clone())
    }
    pub fn api_keys(&self) -> pb::api_key_service_client::ApiKeyServiceClient<Channel> {
        pb::api_key_service_client::ApiKeyServiceClient::new(self.channel.clone())
    }
    pub fn regions(&self) -> pb::region_service_client::RegionServiceClient<Channel> {
        pb::region_service_client::RegionServiceClient::new(self.channel.clone())
    }
    pub fn nodes(&self) -> pb::node_service_client::NodeServiceClient<Channel> {
        pb::node_service_client::NodeServiceClient::new(self.channel.clone())
    }
    pub fn campaigns(&self) -> pb::campaign_service_client::CampaignServiceClient<Channel> {
        pb::campaign_service_client::CampaignServiceClient::new(self.channel.clone())
    }
    pub fn calls(&self) -> pb::call_service_client::CallServiceClient<Channel> {
        pb::call_service_client::CallServiceClient::new(self.channel.clone())
    }
    pub fn dashboard(&self) -> pb::dashboard_service_client::DashboardServiceClient<Channel> {
        pb::dashboard_service_client::DashboardServiceClient::new(self.channel.clone())
    }
    pub fn storage(&self) -> pb::storage_service_client::StorageServiceClient<Channel> {
        pb::storage_service_client::StorageServiceClient::new(self.channel.clone())
    }
    pub fn dnc(&self) -> pb::do_not_call_service_client::DoNotCallServiceClient<Channel> {
        pb::do_not_call_service_client::DoNotCallServiceClient::new(self.channel.clone())
    }
    pub fn jobs(&self) -> pb::job_service_client::JobServiceClient<Channel> {
        pb::job_service_client::JobServiceClient::new(self.channel.clone())
    }
    pub fn events(&self) -> pb::event_service_client::EventServiceClient<Channel> {
        pb::event_service_client::EventServiceClient::new(self.channel.clone())
    }
    pub fn webhooks(&self) -> pb::webhook_service_client::WebhookServiceClient<Channel> {
        pb::webhook_service_client::WebhookServiceClient::new(self.channel.clone())
    }
    pub fn do_not_call(&self) -> pb::do_not_call_service_client::DoNotCallServiceClient<Channel> {
        pb::do_not_call_service_client::DoNotCallServiceClient::new(self.channel.clone())
    }
}
