//! Starts a real voxbridge process for a test and gives it clients.
#![allow(dead_code, clippy::unwrap_used, reason = "shared by several test binaries; tests stop on failure")]

use std::path::PathBuf;

use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;
use vox_testkit::ServerProcess;

pub const ADMIN_EMAIL: &str = "admin@vox.test";
pub const ADMIN_PASSWORD: &str = "admin password for tests";

pub struct Bridge {
    pub process: ServerProcess,
    pub dir: tempfile::TempDir,
    pub channel: Channel,
    pub admin: String,
}

pub fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

/// A voxbridge on a fresh data dir; `extra` flags are added to the defaults.
pub async fn start(extra: &[&str]) -> Bridge {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, extra).await
}

pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Bridge {
    let mut args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data_dir(&dir).display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let envs = [("VOX_ADMIN_EMAIL", ADMIN_EMAIL.to_string()), ("VOX_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string())];
    let process = ServerProcess::start(
        "voxbridge",
        std::path::Path::new(env!("CARGO_BIN_EXE_voxbridge")),
        &args,
        &envs,
        dir.path(),
    )
    .await
    .unwrap();
    let channel = Channel::from_shared(process.url()).unwrap().connect().await.unwrap();
    let admin = login(&channel, ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    Bridge { process, dir, channel, admin }
}

/// A voxbridge serving TLS (`extra` holds --tls-cert/--tls-key), and clients that trust `ca`.
pub async fn start_tls(extra: &[&str], ca: &std::path::Path) -> Bridge {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--data-dir"].map(String::from).to_vec();
    args.push(data_dir(&dir).display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let envs = [("VOX_ADMIN_EMAIL", ADMIN_EMAIL.to_string()), ("VOX_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string())];
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_voxbridge"));
    // Health is polled over plain HTTP by the harness, so only wait for the port here.
    let process = ServerProcess::start_listening("voxbridge", bin, &args, &envs, dir.path()).await.unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    let url = process.url().replace("http://", "https://");
    let channel = Channel::from_shared(url).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
    let admin = login(&channel, ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    Bridge { process, dir, channel, admin }
}

pub async fn login(channel: &Channel, email: &str, password: &str) -> Result<String, tonic::Status> {
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel.clone());
    let r = auth.login(pb::LoginRequest { email: email.into(), password: password.into() }).await?;
    Ok(r.into_inner().access_token)
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

impl Bridge {
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
    pub fn leadership(&self) -> pb::leadership_service_client::LeadershipServiceClient<Channel> {
        pb::leadership_service_client::LeadershipServiceClient::new(self.channel.clone())
    }
    pub fn dashboard(&self) -> pb::dashboard_service_client::DashboardServiceClient<Channel> {
        pb::dashboard_service_client::DashboardServiceClient::new(self.channel.clone())
    }
    pub fn users(&self) -> pb::user_service_client::UserServiceClient<Channel> {
        pb::user_service_client::UserServiceClient::new(self.channel.clone())
    }
    pub fn jobs(&self) -> pb::job_service_client::JobServiceClient<Channel> {
        pb::job_service_client::JobServiceClient::new(self.channel.clone())
    }

    /// Stops this voxbridge with SIGTERM (it must exit cleanly) and starts a new one on
    /// the same data dir with `extra` flags.
    pub async fn restart(mut self, extra: &[&str]) -> Bridge {
        let status = self.process.terminate(std::time::Duration::from_secs(10)).unwrap();
        assert!(status.success(), "SIGTERM shuts voxbridge down cleanly: {status}");
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        start_in(dir, extra).await
    }

    pub async fn create_region(&self, name: &str) -> pb::Region {
        let req = pb::CreateRegionRequest {
            name: name.into(),
            country: "us".into(),
            storage: Some(storage("region secret key")),
        };
        self.regions().create_region(authed(&self.admin, req)).await.unwrap().into_inner()
    }

    /// Registers a node and returns it with its API secret.
    pub async fn register(&self, kind: pb::NodeKind, region_id: &str) -> (pb::Node, String) {
        let req = pb::RegisterNodeRequest {
            kind: kind as i32,
            region_id: region_id.into(),
            name: String::new(),
            endpoint: "http://127.0.0.1:5002".into(),
            sip_port: 0,
        };
        let r = self.nodes().register_node(authed(&self.admin, req)).await.unwrap().into_inner();
        (r.node.unwrap(), r.api_secret)
    }

    pub async fn heartbeat(
        &self,
        node_id: &str,
        secret: &str,
        boot_id: &str,
        slots: u32,
    ) -> Result<pb::HeartbeatResponse, tonic::Status> {
        let workers = (1..=slots)
            .map(|i| pb::WorkerSlot {
                index: i,
                state: vox_proto::common::v1::WorkerState::Idle as i32,
                call_id: String::new(),
                endpoint: format!("unix:///run/vox/voxcore_{i}.sock"),
            })
            .collect();
        let req = pb::HeartbeatRequest {
            node_id: node_id.into(),
            boot_id: boot_id.into(),
            version: "0.1.0".into(),
            cpu_percent: 12.0,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 8 << 30,
            workers,
        };
        self.nodes().heartbeat(authed(secret, req)).await.map(|r| r.into_inner())
    }

    pub async fn node(&self, id: &str) -> pb::Node {
        self.nodes().get_node(authed(&self.admin, pb::GetNodeRequest { id: id.into() })).await.unwrap().into_inner()
    }

    /// A user with `role`; returns their access token.
    pub async fn user(&self, email: &str, role: pb::Role) -> String {
        let password = "a long enough password";
        let req = pb::CreateUserRequest { email: email.into(), password: password.into(), role: role as i32 };
        self.users().create_user(authed(&self.admin, req)).await.unwrap();
        login(&self.channel, email, password).await.unwrap()
    }
}

pub fn storage(secret: &str) -> pb::RegionStorageInput {
    pb::RegionStorageInput {
        endpoint_url: "http://127.0.0.1:9000".into(),
        bucket: "recordings".into(),
        access_key: "vox-access".into(),
        secret_key: Some(secret.into()),
        use_ssl: false,
        signing_region: String::new(),
        force_path_style: true,
    }
}

pub fn campaign_spec(region_id: &str) -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: "renewals".into(),
        region_id: region_id.into(),
        caller_id: "+14155550100".into(),
        window: Some(pb::CallingWindow {
            time_zone: "UTC".into(),
            start: "00:00".into(),
            end: "24:00".into(),
            days: vec![],
        }),
        ..Default::default()
    }
}
