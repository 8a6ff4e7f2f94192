//! The carrier's side of a Twilio Media Stream: opens the `<Stream url>` with an
//! `X-Twilio-Signature` over that exact URL, sends `connected`, `start` (with the
//! `<Parameter>`s as `customParameters`), a `media` frame of 160 bytes of μ-law every
//! 20 ms of real time (speech-like talkspurts and pauses), and `stop` when the callee
//! hangs up or the call is hung up. What the application sends back (`media`, `mark`,
//! `clear`) is counted and otherwise ignored.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::callbacks::signature;
use crate::calls::{Call, Hangup, hung_up};
use crate::twiml::Stream;

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The drawn talk time ran out: the callee hung up.
    CalleeHungUp,
    /// `Status=completed` through the REST API, or shutdown.
    HungUp,
    /// The application closed the WebSocket (or it broke).
    ClosedByApplication(String),
    /// The WebSocket could not be opened.
    ConnectFailed(String),
}

/// 20 ms of 8 kHz audio.
pub const FRAME_SAMPLES: usize = 160;
const FRAME: Duration = Duration::from_millis(20);

/// A speech-like test signal: talkspurts of a voiced tone with a wandering pitch and a
/// syllable-rate envelope, separated by pauses of faint noise. Deterministic per seed.
#[derive(Debug)]
pub struct Voice {
    sample: u64,
    phase: f64,
    noise: u64,
}

impl Voice {
    pub fn new(seed: u64) -> Self {
        Voice { sample: 0, phase: 0.0, noise: seed | 1 }
    }

    fn noise(&mut self) -> f64 {
        // xorshift64: cheap, and enough for background hiss.
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 7;
        self.noise ^= self.noise << 17;
        (self.noise >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// The next 20 ms frame, μ-law encoded.
    pub fn next_frame(&mut self) -> Vec<u8> {
        let mut pcm = [0i16; FRAME_SAMPLES];
        for s in pcm.iter_mut() {
            let t = self.sample as f64 / 8000.0;
            // 1.6 s talking, then 0.9 s pause.
            let talking = (t % 2.5) < 1.6;
            let value = if talking {
                let pitch = 130.0 + 25.0 * (std::f64::consts::TAU * 0.7 * t).sin();
                self.phase = (self.phase + std::f64::consts::TAU * pitch / 8000.0) % std::f64::consts::TAU;
                let voiced = self.phase.sin() + 0.5 * (2.0 * self.phase).sin() + 0.25 * (3.0 * self.phase).sin();
                let syllables = 0.55 + 0.45 * (std::f64::consts::TAU * 4.0 * t).sin();
                6000.0 * syllables * voiced + 300.0 * self.noise()
            } else {
                60.0 * self.noise()
            };
            *s = value.clamp(-32000.0, 32000.0) as i16;
            self.sample += 1;
        }
        vox_audio::mulaw::encode(&pcm)
    }
}

fn new_stream_sid() -> String {
    format!("MZ{:032x}", rand::random::<u128>())
}

/// Runs one stream for `call` until `talk_ends`, a hang-up, or the application closes
/// it. Every frame sent is counted on the call.
pub async fn run(
    call: &Call,
    auth_token: &str,
    stream: &Stream,
    talk_ends: Instant,
    mut hangup: watch::Receiver<Option<Hangup>>,
) -> StreamEnd {
    if stream.url.starts_with("wss://") {
        // TLS is left out of voxsim's WebSocket client; simulations run on plain ws://.
        return StreamEnd::ConnectFailed(format!("{}: voxsim streams to ws:// URLs only, not wss://", stream.url));
    }
    let mut request = match stream.url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return StreamEnd::ConnectFailed(format!("bad stream url {:?}: {e}", stream.url)),
    };
    let sig = signature(auth_token, &stream.url, &[]);
    match sig.parse() {
        Ok(v) => {
            request.headers_mut().insert("X-Twilio-Signature", v);
        }
        Err(e) => return StreamEnd::ConnectFailed(format!("signature header: {e}")),
    }
    let connect = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request));
    let mut ws = match connect.await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            return StreamEnd::ConnectFailed(format!("{} refused the stream: {} {body}", stream.url, resp.status()));
        }
        Ok(Err(e)) => return StreamEnd::ConnectFailed(format!("{}: {e}", stream.url)),
        Err(_) => return StreamEnd::ConnectFailed(format!("{}: no answer within 10 s", stream.url)),
    };

    let stream_sid = new_stream_sid();
    call.set_stream_sid(&stream_sid);
    let custom: serde_json::Map<String, Value> =
        stream.parameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    if let Some((_, id)) = stream.parameters.iter().find(|(k, _)| k == "call_id") {
        call.set_call_id_if_unknown(id);
    }
    let mut sequence = 1u64;
    let opening = [
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        json!({
            "event": "start",
            "sequenceNumber": sequence.to_string(),
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "accountSid": call.account_sid,
                "callSid": call.sid,
                "tracks": ["inbound"],
                "customParameters": custom,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }),
    ];
    for frame in opening {
        if let Err(e) = ws.send(Message::text(frame.to_string())).await {
            return StreamEnd::ClosedByApplication(format!("send failed: {e}"));
        }
    }

    let b64 = base64::engine::general_purpose::STANDARD;
    let mut voice = Voice::new(call.index.wrapping_add(0x5EED));
    let mut chunk = 0u64;
    let mut ticks = tokio::time::interval(FRAME);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            _ = ticks.tick() => {
                chunk += 1;
                sequence += 1;
                let frame = json!({
                    "event": "media",
                    "sequenceNumber": sequence.to_string(),
                    "streamSid": stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": chunk.to_string(),
                        "timestamp": ((chunk - 1) * 20).to_string(),
                        "payload": b64.encode(voice.next_frame()),
                    },
                });
                if let Err(e) = ws.send(Message::text(frame.to_string())).await {
                    return StreamEnd::ClosedByApplication(format!("send failed: {e}"));
                }
                call.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    if serde_json::from_str::<Value>(t.as_str()).ok().and_then(|v| v.get("event").cloned()) == Some(json!("media")) {
                        call.frames_received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| format!("closed: {} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "closed".into());
                    return StreamEnd::ClosedByApplication(why);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return StreamEnd::ClosedByApplication(format!("{e}")),
                None => return StreamEnd::ClosedByApplication("connection closed".into()),
            },
            () = tokio::time::sleep_until(talk_ends) => break StreamEnd::CalleeHungUp,
            () = hung_up(&mut hangup, true) => break StreamEnd::HungUp,
        }
    };
    sequence += 1;
    let stop = json!({
        "event": "stop",
        "sequenceNumber": sequence.to_string(),
        "streamSid": stream_sid,
        "stop": {"accountSid": call.account_sid, "callSid": call.sid},
    });
    let close = async {
        ws.send(Message::text(stop.to_string())).await?;
        ws.close(None).await?;
        // Wait for the application's close frame, reading what it still sends.
        while let Some(msg) = ws.next().await {
            msg?;
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), close).await {
        tracing::debug!(sid = %call.sid, error = %e, "media stream did not close cleanly");
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_talks_and_pauses() {
        let mut v = Voice::new(1);
        let frames: Vec<Vec<u8>> = (0..125).map(|_| v.next_frame()).collect();
        assert!(frames.iter().all(|f| f.len() == FRAME_SAMPLES));
        let energy = |f: &Vec<u8>| {
            vox_audio::mulaw::decode(f).iter().map(|s| f64::from(*s).abs()).sum::<f64>() / FRAME_SAMPLES as f64
        };
        // 0.5 s is inside a talkspurt, 2.0 s inside a pause.
        assert!(energy(&frames[25]) > 1000.0, "{}", energy(&frames[25]));
        assert!(energy(&frames[100]) < 200.0, "{}", energy(&frames[100]));
    }
}
