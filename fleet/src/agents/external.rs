//! Relays a call to the customer's own agent server over WebSocket: how voice bots plug
//! into Vox. The protocol, JSON text frames both ways:
//!
//! - to the agent: `{"event":"start","call_id":…,"media_format":{"encoding":"audio/l16",
//!   "sample_rate":8000|16000}}`, then `{"event":"media","payload":<base64 16-bit LE PCM>}`,
//!   `{"event":"dtmf","digit":"5"}`, `{"event":"mark","name":…}` (a mark the caller has
//!   heard), and `{"event":"stop"}` when the call ends;
//! - from the agent: `{"event":"media","payload":…}` (same encoding), `{"event":"mark",
//!   "name":…}`, `{"event":"clear"}`, `{"event":"hangup","reason":…}`.
//!
//! An agent server that cannot be reached or closes early ends the call with
//! `agent_error:unreachable` or `agent_hangup`; one that stops reading (a frame not taken
//! within [`crate::session::SEND_TIMEOUT`]) ends it with `agent_error:not_reading`, so a
//! stuck server cannot hold the call, and its worker, forever.

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::{AgentContext, AgentInput, AgentOutput};
use crate::session::SEND_TIMEOUT;

type AgentSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one frame to the agent server within [`SEND_TIMEOUT`]; otherwise the reason the
/// call ends with.
async fn send(ws: &mut AgentSocket, call_id: &str, frame: Value) -> Result<(), &'static str> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::text(frame.to_string()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("agent_hangup:closed"),
        Err(_) => {
            tracing::warn!(
                call_id,
                seconds = SEND_TIMEOUT.as_secs(),
                "the external agent has not read the call's audio; ending the call"
            );
            Err("agent_error:not_reading")
        }
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn to_agent(event: &AgentInput) -> Value {
    match event {
        AgentInput::Audio(s) => json!({"event": "media", "payload": B64.encode(vox_audio::samples_to_pcm16le(s))}),
        AgentInput::Dtmf(d) => json!({"event": "dtmf", "digit": d}),
        AgentInput::MarkPlayed(n) => json!({"event": "mark", "name": n}),
    }
}

fn from_agent(text: &str) -> Option<AgentOutput> {
    let v: Value = serde_json::from_str(text).ok()?;
    match v.get("event")?.as_str()? {
        "media" => {
            let bytes = B64.decode(v.get("payload")?.as_str()?).ok()?;
            Some(AgentOutput::Audio(vox_audio::pcm16le_to_samples(&bytes)))
        }
        "mark" => Some(AgentOutput::Mark(v.get("name")?.as_str()?.to_string())),
        "clear" => Some(AgentOutput::Clear),
        "hangup" => Some(AgentOutput::Hangup(format!(
            "agent_hangup:{}",
            v.get("reason").and_then(Value::as_str).unwrap_or("agent")
        ))),
        _ => None,
    }
}

/// Opens the agent server's WebSocket with `TCP_NODELAY`: audio goes every 20 ms in small
/// frames, and with Nagle's algorithm a frame would wait for the previous one's ACK,
/// which a listening agent delays up to 40 ms.
async fn connect(url: &str) -> Result<AgentSocket, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async_with_config(url, None, true).await.map(|(ws, _)| ws)
}

pub async fn run(ctx: AgentContext, mut input: mpsc::Receiver<AgentInput>, output: mpsc::Sender<AgentOutput>) {
    let url = ctx.settings.external_url.clone();
    let connect = tokio::time::timeout(std::time::Duration::from_secs(5), connect(url.as_str()));
    let mut ws = match connect.await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::warn!(call_id = %ctx.call_id, url, error = %e, "external agent unreachable");
            let _ = output.send(AgentOutput::Hangup("agent_error:unreachable".into())).await;
            return;
        }
        Err(_) => {
            tracing::warn!(call_id = %ctx.call_id, url, "external agent did not answer within 5 s");
            let _ = output.send(AgentOutput::Hangup("agent_error:unreachable".into())).await;
            return;
        }
    };
    let start = json!({
        "event": "start",
        "call_id": ctx.call_id,
        "media_format": {"encoding": "audio/l16", "sample_rate": ctx.sample_rate},
        "params": ctx.settings.params,
    });
    if send(&mut ws, &ctx.call_id, start).await.is_err() {
        let _ = output.send(AgentOutput::Hangup("agent_error:unreachable".into())).await;
        return;
    }
    loop {
        tokio::select! {
            event = input.recv() => match event {
                Some(e) => {
                    if let Err(reason) = send(&mut ws, &ctx.call_id, to_agent(&e)).await {
                        let _ = output.send(AgentOutput::Hangup(reason.into())).await;
                        return;
                    }
                }
                None => {
                    if send(&mut ws, &ctx.call_id, json!({"event": "stop"})).await.is_ok() {
                        let _ = tokio::time::timeout(SEND_TIMEOUT, ws.close(None)).await;
                    }
                    return;
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    match from_agent(text.as_str()) {
                        Some(out) => {
                            if output.send(out).await.is_err() {
                                return;
                            }
                        }
                        None => tracing::debug!(call_id = %ctx.call_id, "ignored a frame the agent protocol does not define"),
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = output.send(AgentOutput::Hangup("agent_hangup:closed".into())).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_both_ways() {
        let out = to_agent(&AgentInput::Audio(vec![1, -1]));
        assert_eq!(out["event"], "media");
        let back = from_agent(&out.to_string()).unwrap();
        assert_eq!(back, AgentOutput::Audio(vec![1, -1]));
        assert_eq!(
            from_agent(r#"{"event":"hangup","reason":"done"}"#),
            Some(AgentOutput::Hangup("agent_hangup:done".into()))
        );
        assert_eq!(from_agent(r#"{"event":"clear"}"#), Some(AgentOutput::Clear));
        assert_eq!(from_agent("not json"), None);
    }

    #[tokio::test]
    async fn the_agent_socket_sends_each_frame_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        });
        let ws = connect(&url).await.unwrap();
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() else { panic!("a plain TCP socket") };
        assert!(tcp.nodelay().unwrap(), "Nagle's algorithm would hold 20 ms frames back");
        server.abort();
    }
}
