//! No caller audio is lost: every frame of a 500-frame Twilio call, the first ones sent
//! right behind `start` (before the call is attached) and the last ones sent right before
//! `stop` included, comes back from the echo agent and is in the call's recording on both
//! channels. (Not timed: the frames are paced at 20 ms only so the
//! recorder's channels stay aligned, as on a real call.)

#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use vox_proto::backend::v1 as bpb;

const FRAMES: usize = 500;
/// Frames sent back to back right after `start`, before the call can be attached.
const AT_ONCE: usize = 10;

/// The samples of each channel of a 16-bit stereo WAV.
fn channels(wav: &[u8]) -> (Vec<i16>, Vec<i16>) {
    let data = wav.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    let samples: Vec<i16> = wav[data..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    (samples.iter().step_by(2).copied().collect(), samples.iter().skip(1).step_by(2).copied().collect())
}

#[tokio::test]
async fn every_frame_of_a_call_is_echoed_and_recorded_up_to_the_last_before_stop() {
    let c = cluster(1).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    // The first frames go at once, right behind `start`, while voxgate is still reserving
    // the worker and attaching the call (a carrier does not wait): they must be handed
    // over, not dropped. The rest are paced like a carrier's.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..FRAMES {
        if i >= AT_ONCE {
            tick.tick().await;
        }
        media(&mut ws, i).await;
    }
    // Stop right after the last frame, as a caller hanging up mid-sentence does.
    stop(&mut ws).await;

    let b64 = base64::engine::general_purpose::STANDARD;
    let mut echoed = Vec::new();
    let closed = loop {
        match recv(&mut ws).await {
            Ok(v) if v["event"] == "media" => echoed.push(b64.decode(v["media"]["payload"].as_str().unwrap()).unwrap()),
            Ok(_) => {}
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.0, 1000, "{closed:?}");
    assert_eq!(echoed.len(), FRAMES, "frames echoed of {FRAMES}");
    for (i, e) in echoed.iter().enumerate() {
        assert_eq!(*e, frame(i), "echo {i} in order");
    }

    let done = until("the call completed with its recording", async || {
        let call = c.call(&call_id).await;
        (call.state() == bpb::CallState::Completed && call.recording.is_some()).then_some(call)
    })
    .await;
    let wav = std::fs::read(c.dir.path().join("recordings").join(done.recording.unwrap().key)).unwrap();
    let (caller, agent) = channels(&wav);
    let sent: Vec<i16> = (0..FRAMES).flat_map(|i| vox_audio::mulaw::decode(&frame(i))).collect();
    let voiced = |s: &[i16]| s.iter().copied().filter(|v| *v != 0).collect::<Vec<_>>();
    assert_eq!(voiced(&caller), voiced(&sent), "the caller's channel holds every frame");
    assert_eq!(voiced(&agent), voiced(&sent), "the agent's channel holds every echo, the last ones too");
}

/// The idle watchdog is one timer re-armed when it fires, not one per frame: a carrier
/// that keeps talking outlives `VOX_IDLE_TIMEOUT_SECONDS` many times over, and one that
/// falls silent is closed (1001) about one timeout later.
#[tokio::test]
async fn a_silent_carrier_is_closed_after_the_idle_timeout_and_a_talking_one_is_not() {
    let c = cluster_with(&[1], &[("VOX_IDLE_TIMEOUT_SECONDS", "1".into())]).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..150 {
        tick.tick().await;
        media(&mut ws, i).await;
    }
    let silent = std::time::Instant::now();
    let (code, reason) = until_closed(&mut ws).await;
    let waited = silent.elapsed();
    assert_eq!((code, reason.as_str()), (1001, "no frame for 1 s"));
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_millis(2500),
        "closed {waited:?} after the last frame"
    );
}
