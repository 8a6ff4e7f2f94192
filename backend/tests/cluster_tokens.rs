//! The tokens nodes show each other: gateways get worker tokens and stream tokens, every
//! node gets the public key that checks them, nobody else gets anything; and voxbridge
//! serves the same API over TLS to a client that trusts its CA.
#![allow(clippy::unwrap_used)]

mod common;

use common::authed;
use tonic::Code;
use vox_node::tokens::TokenVerifier;
use vox_proto::backend::v1 as pb;

fn cluster(b: &common::Bridge) -> pb::cluster_service_client::ClusterServiceClient<tonic::transport::Channel> {
    pb::cluster_service_client::ClusterServiceClient::new(b.channel.clone())
}

async fn web_call(b: &common::Bridge, gateway_secret: &str) -> pb::Call {
    let req = pb::CreateInboundCallRequest {
        channel: vox_proto::common::v1::Channel::Web as i32,
        from_number: "web:test".into(),
        to_number: "web".into(),
        ..Default::default()
    };
    b.calls().create_inbound_call(authed(gateway_secret, req)).await.unwrap().into_inner()
}

#[tokio::test]
async fn gateways_get_tokens_that_nodes_check_with_the_public_key() {
    let b = common::start(&[]).await;
    let east = b.create_region("us-east-1").await;
    let west = b.create_region("us-west-2").await;
    let (gateway, gateway_secret) = b.register(pb::NodeKind::Gateway, &east.id).await;
    let (_, west_gateway_secret) = b.register(pb::NodeKind::Gateway, &west.id).await;
    let (_, fleet_secret) = b.register(pb::NodeKind::Fleet, &east.id).await;

    let key = cluster(&b).get_token_key(authed(&fleet_secret, pb::GetTokenKeyRequest {})).await.unwrap().into_inner();
    let verifier = TokenVerifier::from_key(&key).unwrap();
    let token = cluster(&b)
        .issue_worker_token(authed(&gateway_secret, pb::IssueWorkerTokenRequest {}))
        .await
        .unwrap()
        .into_inner();
    let claims = verifier.worker(&token.token).unwrap();
    assert_eq!((claims.sub.as_str(), claims.region.as_str()), (gateway.id.as_str(), east.id.as_str()));
    let lifetime = token.expires_at.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((240..=300).contains(&lifetime), "worker tokens live 5 minutes, not {lifetime} s");

    // Only gateways get worker tokens; users get no key; strangers get nothing.
    let refused = cluster(&b).issue_worker_token(authed(&fleet_secret, pb::IssueWorkerTokenRequest {})).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied, "a fleet node is no gateway");
    let refused = cluster(&b).get_token_key(authed(&b.admin, pb::GetTokenKeyRequest {})).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied, "users have no use for the key");
    let refused = cluster(&b).get_token_key(pb::GetTokenKeyRequest {}).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    // Stream tokens: for calls of the gateway's own region, with a valid rate.
    let call = web_call(&b, &gateway_secret).await;
    let stream_req = |rate| pb::IssueStreamTokenRequest { call_id: call.id.clone(), sample_rate: rate, ttl_seconds: 0 };
    let stream = cluster(&b).issue_stream_token(authed(&gateway_secret, stream_req(8000))).await.unwrap().into_inner();
    let claims = verifier.stream(&stream.token).unwrap();
    assert_eq!((claims.sub.as_str(), claims.rate), (call.id.as_str(), 8000));
    assert!(verifier.worker(&stream.token).is_err(), "a stream token opens no worker");
    let bad = cluster(&b).issue_stream_token(authed(&gateway_secret, stream_req(44100))).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("sample_rate"), "{}", bad.message());
    let other_region = cluster(&b).issue_stream_token(authed(&west_gateway_secret, stream_req(8000))).await;
    assert_eq!(other_region.unwrap_err().code(), Code::PermissionDenied, "another region's gateway");

    // The key comes from the master key: a restarted voxbridge checks the old tokens.
    let b = b.restart(&[]).await;
    let again = cluster(&b).get_token_key(authed(&fleet_secret, pb::GetTokenKeyRequest {})).await.unwrap().into_inner();
    assert_eq!(again, key);
}

#[tokio::test]
async fn voxbridge_serves_tls_to_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = vox_testkit::tls::TestCa::new(&dir.path().join("pki"), "vox-test").unwrap();
    let cert = ca.server_cert("voxbridge", &["localhost", "127.0.0.1"]).unwrap();
    let (cert_path, key_path) = (cert.cert.display().to_string(), cert.key.display().to_string());
    let b = common::start_tls(&["--tls-cert", &cert_path, "--tls-key", &key_path], &ca.ca_pem).await;
    let region = b.create_region("eu-west-1").await;
    assert!(!region.id.is_empty(), "the API works over TLS");

    // A client that does not trust the CA fails the handshake.
    let untrusting = tonic::transport::Endpoint::from_shared(b.process.url().replace("http://", "https://"))
        .unwrap()
        .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
        .unwrap()
        .connect()
        .await;
    assert!(untrusting.is_err(), "an untrusted certificate must not be accepted");
    // Plain HTTP to the TLS port gets nowhere either.
    let plain = reqwest::Client::new().get(format!("{}/health", b.process.url())).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}
