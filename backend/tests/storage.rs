//! StorageService on the embedded default: fleet nodes get their region's storage (a
//! local folder, or S3 with the secret) and nobody else does; a region's storage can be
//! tested; a call's recording plays through a short-lived signed URL.
#![allow(clippy::unwrap_used)]

mod common;

use common::{authed, storage};
use tokio_stream::StreamExt;
use tonic::Code;
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as pcommon;

fn query(url: &str) -> (String, i64, String) {
    let (path, q) = url.split_once('?').unwrap();
    let key = path.strip_prefix("/api/v1/recordings/").unwrap().to_string();
    let mut expires = 0;
    let mut signature = String::new();
    for kv in q.split('&') {
        match kv.split_once('=').unwrap() {
            ("expires", v) => expires = v.parse().unwrap(),
            ("signature", v) => signature = v.to_string(),
            _ => {}
        }
    }
    (key, expires, signature)
}

#[tokio::test]
async fn fleet_nodes_get_their_regions_storage_and_recordings_play_through_signed_urls() {
    let recordings = tempfile::tempdir().unwrap();
    let dir_flag = recordings.path().display().to_string();
    let b = common::start(&["--recordings-dir", &dir_flag]).await;
    let storage_client = || pb::storage_service_client::StorageServiceClient::new(b.channel.clone());

    // A region without storage: its fleet nodes are told the local folder.
    let local = b
        .regions()
        .create_region(authed(
            &b.admin,
            pb::CreateRegionRequest { name: "local".into(), country: "US".into(), storage: None },
        ))
        .await
        .unwrap()
        .into_inner();
    let (fleet, fleet_secret) = b.register(pb::NodeKind::Fleet, &local.id).await;
    let got = storage_client()
        .get_node_storage(authed(&fleet_secret, pb::GetNodeStorageRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.region_id, local.id);
    assert_eq!(got.backend, Some(pb::node_storage::Backend::Local(pb::LocalStorage { directory: dir_flag.clone() })));

    // A region with S3: its fleet nodes get the settings, secret included; no one else does.
    let s3 = b.create_region("eu-west-1").await;
    let (_, s3_fleet_secret) = b.register(pb::NodeKind::Fleet, &s3.id).await;
    let got = storage_client()
        .get_node_storage(authed(&s3_fleet_secret, pb::GetNodeStorageRequest {}))
        .await
        .unwrap()
        .into_inner();
    let Some(pb::node_storage::Backend::S3(s)) = got.backend else { panic!("{got:?}") };
    let expected = storage("region secret key");
    assert_eq!(
        (s.endpoint_url.as_str(), s.bucket.as_str(), s.access_key.as_str(), s.secret_key.as_str()),
        (expected.endpoint_url.as_str(), expected.bucket.as_str(), expected.access_key.as_str(), "region secret key")
    );
    assert!(s.force_path_style && s.create_bucket);
    let (_, gateway_secret) = b.register(pb::NodeKind::Gateway, &s3.id).await;
    for token in [&gateway_secret, &b.admin] {
        let err = storage_client().get_node_storage(authed(token, pb::GetNodeStorageRequest {})).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    let err = storage_client().get_node_storage(pb::GetNodeStorageRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Testing storage: operators may; the local folder works; an S3 endpoint with no
    // server behind it fails and says at which step.
    let viewer = b.user("viewer@vox.test", pb::Role::Viewer).await;
    let test = |token: &str, region: &str| authed(token, pb::TestRegionStorageRequest { region_id: region.into() });
    let err = storage_client().test_region_storage(test(&viewer, &local.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let ok = storage_client().test_region_storage(test(&b.admin, &local.id)).await.unwrap().into_inner();
    assert!(ok.ok && ok.backend == "local", "{ok:?}");
    assert!(
        std::fs::read_dir(recordings.path())
            .unwrap()
            .flatten()
            .all(|e| { std::fs::read_dir(e.path()).map(|mut d| d.next().is_none()).unwrap_or(true) }),
        "the check leaves no object behind"
    );
    let mut bad = storage("bad-endpoint-secret-7f3a");
    bad.endpoint_url = "http://127.0.0.1:9".into();
    let req = pb::SetRegionStorageRequest { region_id: s3.id.clone(), storage: Some(bad) };
    b.regions().set_region_storage(authed(&b.admin, req)).await.unwrap();
    let failed = storage_client().test_region_storage(test(&b.admin, &s3.id)).await.unwrap().into_inner();
    assert!(!failed.ok && failed.backend == "s3", "{failed:?}");
    assert!(failed.detail.contains("127.0.0.1:9"), "names where: {}", failed.detail);
    assert!(!failed.detail.contains("bad-endpoint-secret-7f3a"), "never the secret: {}", failed.detail);

    // Playback of a local recording.
    let call = b
        .calls()
        .create_inbound_call(authed(
            &b.admin,
            pb::CreateInboundCallRequest {
                region_id: local.id.clone(),
                channel: pcommon::Channel::Phone as i32,
                from_number: "+14155550199".into(),
                to_number: "+14155550100".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // A fleet node records only calls on its own slots: a gateway of the region puts it there.
    let (_, local_gateway) = b.register(pb::NodeKind::Gateway, &local.id).await;
    let attach = pb::TransitionCallRequest {
        call_id: call.id.clone(),
        to_state: pb::CallState::Attaching as i32,
        node_id: fleet.id.clone(),
        worker_index: 1,
        ..Default::default()
    };
    b.calls().transition_call(authed(&local_gateway, attach)).await.unwrap();
    let url_req = || authed(&viewer, pb::GetRecordingUrlRequest { call_id: call.id.clone() });
    let err = storage_client().get_recording_url(url_req()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "no recording yet: {err:?}");
    let key = format!("recordings/2026/11/23/{}.wav", call.id);
    let audio: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let path = recordings.path().join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &audio).unwrap();
    let rec = pb::Recording { key: key.clone(), duration_ms: 1000, size_bytes: audio.len() as u64 };
    b.calls()
        .set_call_recording(authed(
            &fleet_secret,
            pb::SetCallRecordingRequest { call_id: call.id.clone(), recording: Some(rec) },
        ))
        .await
        .unwrap();
    let url = storage_client().get_recording_url(url_req()).await.unwrap().into_inner();
    assert!(url.url.starts_with("/api/v1/recordings/recordings/2026/11/23/"), "{}", url.url);
    let (got_key, expires, signature) = query(&url.url);
    assert_eq!(got_key, key);
    let left = expires - chrono::Utc::now().timestamp();
    assert!((14 * 60..=15 * 60).contains(&left), "15 minutes: {left} s");

    // The bytes need no bearer, only the signature.
    let read = |key: &str, expires: i64, signature: &str| pb::ReadRecordingRequest {
        key: key.into(),
        expires,
        signature: signature.into(),
    };
    let mut chunks = storage_client().read_recording(read(&key, expires, &signature)).await.unwrap().into_inner();
    let mut body = Vec::new();
    while let Some(c) = chunks.next().await {
        body.extend(c.unwrap().data);
    }
    assert_eq!(body, audio);
    for (k, e, s) in [
        (key.as_str(), expires + 60, signature.as_str()),
        ("recordings/2026/11/23/other.wav", expires, signature.as_str()),
        (key.as_str(), expires, "00"),
    ] {
        let err = storage_client().read_recording(read(k, e, s)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{k} {e} {s}: {err:?}");
    }
    let err = storage_client().read_recording(read("../etc/passwd", expires, &signature)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Post-processing reads the recording back: these bytes are no call recording, so it
    // is retried (5 s, 10 s) and ends in the `recordings` queue's dead letters, counted in
    // /metrics for the alert, and never reported as analyzed.
    let http = reqwest::Client::new();
    let metric = |text: &str, series: &str| {
        text.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    let mut dead = 0.0;
    for _ in 0..60 {
        let text = http.get(format!("{}/metrics", b.process.url())).send().await.unwrap().text().await.unwrap();
        dead = metric(&text, "voxbridge_queue_jobs{queue=\"recordings\",state=\"dead\"}");
        if dead >= 1.0 {
            assert!(metric(&text, "voxbridge_recordings_processed_total{outcome=\"failed\"}") >= 3.0, "{text}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(dead, 1.0, "the unreadable recording is a dead letter");
    let mut events = pb::event_service_client::EventServiceClient::new(b.channel.clone());
    let req = pb::ListEventsRequest { types: vec!["call.recording_analyzed".into()], ..Default::default() };
    assert!(events.list_events(authed(&b.admin, req)).await.unwrap().into_inner().events.is_empty());
}
