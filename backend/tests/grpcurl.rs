//! An SRE's first look: the real `grpcurl` lists voxbridge's services by reflection,
//! checks health and calls an RPC, with no proto files at hand.
#![allow(clippy::unwrap_used)]

mod common;

use vox_testkit::grpcurl;

#[tokio::test]
async fn grpcurl_lists_services_checks_health_and_calls_rpcs() {
    let b = common::start(&[]).await;
    let addr = b.process.addr.to_string();

    let listed = grpcurl(&["-plaintext", &addr, "list"]);
    for service in vox_proto::BACKEND_SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(listed.lines().any(|l| l == *service), "{service} missing from:\n{listed}");
    }
    assert!(!listed.contains("vox.fleet.v1"), "voxbridge does not serve the worker API:\n{listed}");

    let described = grpcurl(&["-plaintext", &addr, "describe", "vox.backend.v1.NodeService.Heartbeat"]);
    assert!(described.contains("HeartbeatRequest"), "{described}");

    let health = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");
    let one = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{"service":"vox.backend.v1.CallService"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(one.contains("SERVING"), "{one}");

    let login = grpcurl(&[
        "-plaintext",
        "-d",
        &format!(r#"{{"email":"{}","password":"{}"}}"#, common::ADMIN_EMAIL, common::ADMIN_PASSWORD),
        &addr,
        "vox.backend.v1.AuthService/Login",
    ]);
    let token = serde_json::from_str::<serde_json::Value>(&login).unwrap()["accessToken"].as_str().unwrap().to_string();
    let auth = format!("authorization: Bearer {token}");
    let created = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        r#"{"name":"us-east-1","country":"US"}"#,
        &addr,
        "vox.backend.v1.RegionService/CreateRegion",
    ]);
    assert!(created.contains(r#""name": "us-east-1""#), "{created}");
    let listed = grpcurl(&["-plaintext", "-H", &auth, &addr, "vox.backend.v1.RegionService/ListRegions"]);
    assert!(listed.contains("us-east-1"), "{listed}");
}
