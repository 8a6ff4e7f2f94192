//! The LiveKit provider against voxsim's copy of LiveKit's SIP API: voxsim checks the
//! request shape and the access token, and answers with its outcome model.
#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

use std::time::Duration;

use vox_testkit::ServerProcess;
use voxdialler::provider::livekit::LiveKit;
use voxdialler::provider::{Dial, Outcome, PlaceError, Provider};

const KEY: &str = "APIdialler";
const SECRET: &str = "livekit-secret-for-the-dialler-test";

async fn voxsim(dir: &std::path::Path, answer_prob: &str) -> ServerProcess {
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--time-scale",
        "50",
        "--answer-prob",
        answer_prob,
        "--fail-prob",
        "0",
        "--machine-prob",
        "0",
        "--livekit-api-key",
        KEY,
        "--livekit-api-secret",
        SECRET,
    ]
    .map(String::from)
    .to_vec();
    ServerProcess::start(
        "voxsim",
        &vox_testkit::workspace_binary("voxsim", "voxsim"),
        &args,
        &[("VOXSIM_AUTH_TOKEN", "unused-twilio-token".to_string())],
        dir,
    )
    .await
    .unwrap()
}

fn dial(i: u32) -> Dial {
    Dial {
        call_id: format!("ca_lk{i}"),
        to: format!("+1555200{i:04}"),
        from: "+15550000000".into(),
        ring_timeout_seconds: 25,
    }
}

#[tokio::test]
async fn livekit_calls_are_placed_with_a_valid_token_and_report_their_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let sim = voxsim(dir.path(), "1.0").await;
    let lk = LiveKit::new(&sim.url(), KEY, SECRET, "ST_trunk", Duration::from_secs(25)).unwrap();
    let placed = lk.place(&dial(1)).await.unwrap();
    assert_eq!(placed.outcome, Some(Outcome::Answered));
    assert!(!placed.provider_call_id.is_empty());

    // A token signed with another secret is refused, and nothing is placed.
    let forged =
        LiveKit::new(&sim.url(), KEY, "not-the-secret-at-all-000000", "ST_trunk", Duration::from_secs(25)).unwrap();
    match forged.place(&dial(2)).await {
        Err(PlaceError::Refused { status: 401, retryable: false, .. }) => {}
        other => panic!("a forged token must be refused with 401: {other:?}"),
    }
    // A request without a trunk is malformed.
    let no_trunk = LiveKit::new(&sim.url(), KEY, SECRET, "", Duration::from_secs(25)).unwrap();
    match no_trunk.place(&dial(3)).await {
        Err(PlaceError::Refused { status: 400, retryable: false, message }) => {
            assert!(message.contains("trunk"), "{message}")
        }
        other => panic!("a request without a trunk is invalid: {other:?}"),
    }
}

#[tokio::test]
async fn unanswered_livekit_calls_say_how_they_ended() {
    let dir = tempfile::tempdir().unwrap();
    let sim = voxsim(dir.path(), "0.0").await;
    let lk = LiveKit::new(&sim.url(), KEY, SECRET, "ST_trunk", Duration::from_secs(25)).unwrap();
    let placed = lk.place(&dial(4)).await.unwrap();
    assert_eq!(placed.outcome, Some(Outcome::NoAnswer));
}
