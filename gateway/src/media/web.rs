//! Browser (and media-bridge) sessions: 16-bit little-endian PCM over WebSocket.
//!
//! A session is opened with a short-lived token from `POST /web/sessions`, which creates
//! the web call; the stream then connects to `/media/web?token=…` on any gateway (the
//! token is a stream token voxbridge signed; see [`crate::web_sessions`]).
//! Frames: binary frames are raw PCM at the session's rate (8000 or 16000 Hz) both ways;
//! text frames are JSON events — in: `{"event":"dtmf","digit":"5"}`,
//! `{"event":"mark","name":…}` (our audio played up to here), `{"event":"stop"}`;
//! out: `{"event":"mark","name":…}`, `{"event":"clear"}`. The call's end closes the
//! socket with the reason.

use axum::extract::ws::{Message, close_code};
use serde_json::{Value, json};

use super::{CarrierEvent, Dialect, GatewayEvent};

#[derive(Debug, Default)]
pub struct Web;

impl Dialect for Web {
    fn parse(&mut self, msg: Message) -> Result<Option<CarrierEvent>, (u16, String)> {
        match msg {
            Message::Binary(b) => {
                if b.len() % 2 != 0 {
                    return Err((
                        close_code::INVALID,
                        "audio frames are 16-bit samples: an even number of bytes".into(),
                    ));
                }
                Ok(Some(CarrierEvent::Audio { payload: b.to_vec(), timestamp_ms: 0 }))
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .map_err(|e| (close_code::POLICY, format!("malformed JSON: {e}")))?;
                let field = |name: &str| {
                    v.get(name)
                        .and_then(Value::as_str)
                        .map(String::from)
                        .ok_or((close_code::POLICY, format!("event without {name:?}")))
                };
                match v.get("event").and_then(Value::as_str) {
                    Some("dtmf") => Ok(Some(CarrierEvent::Dtmf(field("digit")?))),
                    Some("mark") => Ok(Some(CarrierEvent::Mark(field("name")?))),
                    Some("stop") => Ok(Some(CarrierEvent::Stop)),
                    Some(other) => Err((close_code::POLICY, format!("unknown event {other:?}"))),
                    None => Err((close_code::POLICY, "frame without an \"event\"".into())),
                }
            }
            Message::Close(_) => Ok(Some(CarrierEvent::Stop)),
            Message::Ping(_) | Message::Pong(_) => Ok(None),
        }
    }

    fn render(&self, event: &GatewayEvent) -> Message {
        match event {
            GatewayEvent::Audio(pcm) => Message::Binary(pcm.clone().into()),
            GatewayEvent::Mark(name) => Message::text(json!({"event": "mark", "name": name}).to_string()),
            GatewayEvent::Clear => Message::text(json!({"event": "clear"}).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_map_both_ways() {
        let mut w = Web;
        assert_eq!(
            w.parse(Message::Binary(vec![1, 0, 2, 0].into())).unwrap(),
            Some(CarrierEvent::Audio { payload: vec![1, 0, 2, 0], timestamp_ms: 0 })
        );
        assert!(w.parse(Message::Binary(vec![1].into())).is_err());
        assert_eq!(
            w.parse(Message::text(r#"{"event":"dtmf","digit":"4"}"#)).unwrap(),
            Some(CarrierEvent::Dtmf("4".into()))
        );
        assert!(w.parse(Message::text("nope")).unwrap_err().1.contains("malformed JSON"));
        assert!(matches!(w.render(&GatewayEvent::Audio(vec![0, 1])), Message::Binary(_)));
    }
}
