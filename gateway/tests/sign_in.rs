//! Sign-ins relayed by voxgate count against each client's own budget in voxbridge: the
//! gateway signs them with its node secret and names the client's address. Nobody else
//! may name an address.

#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

mod common;

use serde_json::json;
use tonic::Code;
use vox_proto::backend::v1 as bpb;
use vox_testkit::control;

async fn sign_in(gate_url: &str, client: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{gate_url}/api/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": control::ADMIN_EMAIL, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn each_client_behind_a_gateway_has_its_own_sign_in_budget_in_voxbridge() {
    let dir = tempfile::tempdir().unwrap();
    let bridge_args: Vec<String> = ["--listen", "127.0.0.1:0", "--login-attempts-per-minute", "3", "--data-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.path().join("bridge").display().to_string()])
        .collect();
    let bridge = control::start_bridge("voxbridge", &bridge_args, dir.path()).await;
    let (channel, admin) = control::admin_session(&bridge.url()).await;
    let region = control::create_region(&channel, &admin, "us-east-1", None).await;
    let gateway = control::register_node(&channel, &admin, &region, bpb::NodeKind::Gateway).await;
    // voxgate's own per-client limit is set high, so voxbridge's is the one that shows.
    let gate_args: Vec<String> =
        ["--trusted-proxies", "127.0.0.1", "--login-attempts-per-minute", "1000"].map(String::from).to_vec();
    let gate = common::start_gate(dir.path(), "voxgate", &bridge.url(), &gateway.api_secret, &gate_args, &[]).await;
    let url = gate.url();

    for _ in 0..3 {
        assert_eq!(sign_in(&url, "198.51.100.1", "wrong").await, 401);
    }
    // The fourth try of the same client is refused before its password is checked...
    assert_eq!(sign_in(&url, "198.51.100.1", control::ADMIN_PASSWORD).await, 503);
    // ...while another client behind the same gateway signs in.
    assert_eq!(sign_in(&url, "198.51.100.2", control::ADMIN_PASSWORD).await, 200);

    // Only a gateway may name a client address: not an anonymous caller, not another node.
    let fleet = control::register_node(&channel, &admin, &region, bpb::NodeKind::Fleet).await;
    for bearer in [None, Some(fleet.api_secret.as_str())] {
        let mut req = tonic::Request::new(bpb::LoginRequest {
            email: control::ADMIN_EMAIL.into(),
            password: control::ADMIN_PASSWORD.into(),
        });
        req.metadata_mut().insert("x-vox-client-address", "203.0.113.9".parse().unwrap());
        if let Some(secret) = bearer {
            req.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
        }
        let refused = bpb::auth_service_client::AuthServiceClient::new(channel.clone()).login(req).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("x-vox-client-address"), "{}", refused.message());
    }
}
