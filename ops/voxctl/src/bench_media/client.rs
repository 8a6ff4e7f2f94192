//! The carrier of `voxctl bench media`: N Twilio Media Streams at once, each sending a
//! 20 ms μ-law frame every 20 ms in real time (as Twilio does) and timing each frame's
//! echo, independent of Vox's own code.
//!
//! Frame `k` of stream `s` carries `k` and `s` in its first eight bytes, each byte
//! `0x80 | 7 bits`: μ-law codes that survive a decode and re-encode unchanged (only
//! `0x7F`, a second zero, does not), so an agent that decodes and encodes the audio still
//! echoes bytes the client can read back. Its latency is from the moment the client hands
//! frame `k` to its socket to the moment the echo naming `k` is read. A frame is lost when
//! its echo never comes before the stream closes (or 5 s after `stop`).
//!
//! The streams connect and send `start` together, then wait for each other, then begin
//! their frames spread over one 20 ms period (a carrier's calls are not in phase), and
//! send `stop` right after their last frame, as a caller hanging up mid-sentence does.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Bytes in one 20 ms μ-law frame at 8 kHz.
pub const FRAME_BYTES: usize = 160;
/// How long the echoes of the last frames may take after `stop`.
const TAIL_WAIT: Duration = Duration::from_secs(5);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where one stream goes and what its `start` says.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://…`
    pub url: String,
    /// `X-Twilio-Signature`, when the server checks it.
    pub signature: Option<String>,
    pub call_sid: String,
    /// `start.customParameters` (the TwiML's `<Parameter>`s).
    pub custom_parameters: serde_json::Map<String, serde_json::Value>,
}

/// What one stream saw.
#[derive(Debug, Clone, Default)]
pub struct StreamOutcome {
    pub sent: u64,
    /// Distinct frames whose echo came back.
    pub echoed: u64,
    /// Echoes that named another stream or a frame never sent (must be 0).
    pub misrouted: u64,
    /// Echo latency of each echoed frame, microseconds.
    pub latencies_us: Vec<u32>,
    /// Why the stream could not run or ended early.
    pub error: Option<String>,
}

/// The payload of frame `k` of stream `s`.
pub fn payload(stream: u32, k: u32) -> [u8; FRAME_BYTES] {
    let mut p = [0u8; FRAME_BYTES];
    for (i, b) in p.iter_mut().enumerate() {
        // Speech-like levels, never 0x7F.
        *b = 0x90 + ((i * 7) % 0x60) as u8;
    }
    for i in 0..4 {
        p[i] = 0x80 | ((k >> (7 * i)) & 0x7F) as u8;
        p[4 + i] = 0x80 | ((stream >> (7 * i)) & 0x7F) as u8;
    }
    p
}

/// `(stream, k)` of an echoed payload, when it has the shape of [`payload`].
pub fn read_payload(p: &[u8]) -> Option<(u32, u32)> {
    if p.len() < 8 || p[..8].iter().any(|b| b & 0x80 == 0) {
        return None;
    }
    let number = |bytes: &[u8]| bytes.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(b & 0x7F) << (7 * i)));
    Some((number(&p[4..8]), number(&p[..4])))
}

fn media_frame(stream_sid: &str, k: u32, payload: &str) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{}","streamSid":"{stream_sid}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}}}}"#,
        k + 2,
        k + 1,
        u64::from(k) * 20
    )
}

/// The fields of an echoed frame the client reads.
#[derive(Deserialize)]
struct Echo<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    media: Option<EchoMedia<'a>>,
}

#[derive(Deserialize)]
struct EchoMedia<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

/// Runs every target for `seconds` of frames.
pub async fn run_streams(targets: Vec<Target>, seconds: u64) -> Vec<StreamOutcome> {
    let n = targets.len();
    let barrier = Arc::new(Barrier::new(n + 1));
    let frames = u32::try_from(seconds.saturating_mul(50)).unwrap_or(u32::MAX);
    let tasks: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(s, target)| {
            let barrier = Arc::clone(&barrier);
            // Spread over one period so the streams are not in phase.
            let offset = Duration::from_micros(20_000 * s as u64 / n.max(1) as u64);
            tokio::spawn(one_stream(s as u32, target, frames, offset, barrier))
        })
        .collect();
    barrier.wait().await;
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| StreamOutcome { error: Some(format!("stream task: {e}")), ..Default::default() }),
        );
    }
    out
}

async fn one_stream(s: u32, target: Target, frames: u32, offset: Duration, barrier: Arc<Barrier>) -> StreamOutcome {
    let opened = open(s, &target).await;
    // Every stream passes the barrier, connected or not, so none waits forever.
    barrier.wait().await;
    let ws = match opened {
        Ok(ws) => ws,
        Err(e) => return StreamOutcome { error: Some(format!("{e:#}")), ..Default::default() },
    };
    let (mut tx, mut rx) = ws.split();
    let epoch = Instant::now();
    // When frame k was handed to the socket: microseconds since `epoch`, plus one (0: not yet).
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..frames).map(|_| AtomicU64::new(0)).collect());
    let reader = tokio::spawn({
        let sent_at = Arc::clone(&sent_at);
        async move {
            let mut seen = vec![false; sent_at.len()];
            let mut out = StreamOutcome::default();
            let mut buf = [0u8; FRAME_BYTES + 8];
            while let Some(msg) = rx.next().await {
                let text = match msg {
                    Ok(Message::Text(t)) => t,
                    Ok(Message::Close(_)) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        out.error = Some(format!("the stream broke: {e}"));
                        break;
                    }
                };
                let at = epoch.elapsed().as_micros() as u64;
                let Ok(echo) = serde_json::from_str::<Echo<'_>>(text.as_str()) else {
                    out.misrouted += 1;
                    continue;
                };
                let Some(media) = echo.media.filter(|_| echo.event == "media") else { continue };
                let frame =
                    B64.decode_slice(media.payload.as_bytes(), &mut buf).ok().and_then(|len| read_payload(&buf[..len]));
                let Some((_, k)) = frame.filter(|(stream, _)| *stream == s) else {
                    out.misrouted += 1;
                    continue;
                };
                let sent = sent_at.get(k as usize).map_or(0, |a| a.load(Ordering::Acquire));
                if sent == 0 || seen[k as usize] {
                    out.misrouted += u64::from(sent == 0);
                    continue;
                }
                seen[k as usize] = true;
                out.echoed += 1;
                out.latencies_us.push(u32::try_from(at.saturating_sub(sent - 1)).unwrap_or(u32::MAX));
            }
            out
        }
    });

    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0u64;
    let mut error = None;
    let stream_sid = format!("MZ{s:032x}");
    for k in 0..frames {
        tick.tick().await;
        let msg = media_frame(&stream_sid, k, &B64.encode(payload(s, k)));
        sent_at[k as usize].store(epoch.elapsed().as_micros() as u64 + 1, Ordering::Release);
        if let Err(e) = tx.send(Message::text(msg)).await {
            error = Some(format!("frame {k} could not be sent: {e}"));
            break;
        }
        sent += 1;
    }
    let stop = format!(r#"{{"event":"stop","streamSid":"{stream_sid}","stop":{{"callSid":"{}"}}}}"#, target.call_sid);
    let _ = tx.send(Message::text(stop)).await;
    let mut outcome = match tokio::time::timeout(TAIL_WAIT, reader).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => StreamOutcome { error: Some(format!("reader: {e}")), ..Default::default() },
        Err(_) => StreamOutcome {
            error: Some(format!("the stream was still open {} s after stop", TAIL_WAIT.as_secs())),
            ..Default::default()
        },
    };
    let _ = tx.close().await;
    outcome.sent = sent;
    outcome.error = error.or(outcome.error);
    outcome
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects (with `TCP_NODELAY`, as a carrier's media servers do) and sends `connected`
/// and `start`.
async fn open(s: u32, target: &Target) -> anyhow::Result<Ws> {
    let mut req = target.url.as_str().into_client_request().with_context(|| format!("stream url {}", target.url))?;
    if let Some(sig) = &target.signature {
        req.headers_mut().insert("x-twilio-signature", sig.parse().context("signature header")?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .with_context(|| format!("open stream {s} at {}", target.url))?;
    let stream_sid = format!("MZ{s:032x}");
    let start = serde_json::json!({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
        "streamSid": stream_sid, "accountSid": "AC00000000000000000000000000000000", "callSid": target.call_sid,
        "tracks": ["inbound"], "customParameters": target.custom_parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    ws.send(Message::text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)).await?;
    ws.send(Message::text(start.to_string())).await?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_payload_names_its_stream_and_frame_and_survives_a_mulaw_round_trip() {
        for (s, k) in [(0, 0), (31, 999), (127, 128), (5000, 1_000_000)] {
            let p = payload(s, k);
            assert_eq!(read_payload(&p), Some((s, k)));
            // What a μ-law agent echoes: decoded and encoded again.
            let again = vox_audio::mulaw::encode(&vox_audio::mulaw::decode(&p));
            assert_eq!(again, p.to_vec(), "frame {k} of stream {s}");
        }
        assert_eq!(read_payload(&[0x7F; 160]), None);
    }

    #[test]
    fn media_frames_are_twilio_json() {
        let v: serde_json::Value = serde_json::from_str(&media_frame("MZ1", 3, "AAAA")).unwrap();
        assert_eq!(v["event"], "media");
        assert_eq!(v["sequenceNumber"], "5");
        assert_eq!(v["media"]["timestamp"], "60");
        assert_eq!(v["media"]["payload"], "AAAA");
    }
}
