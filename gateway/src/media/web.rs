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

/// Arbitrary frames from a browser: never a panic, and an error names what is wrong.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn clear(why: &str) -> bool {
        !why.trim().is_empty() && (why.contains("JSON") || why.contains("event") || why.contains("bytes"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_binary_frame_is_audio_or_refused_clearly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let even = bytes.len() % 2 == 0;
            match Web.parse(Message::Binary(bytes.into())) {
                Ok(Some(CarrierEvent::Audio { .. })) => prop_assert!(even),
                Err((_, why)) => prop_assert!(!even && clear(&why), "unclear error {why:?}"),
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn any_text_frame_parses_or_says_why(text in ".{0,200}") {
            if let Err((_, why)) = Web.parse(Message::text(text)) {
                prop_assert!(clear(&why), "unclear error {why:?}");
            }
        }

        #[test]
        fn event_shaped_json_parses_or_says_why(
            event in prop_oneof![Just(json!("dtmf")), Just(json!("mark")), Just(json!("stop")), Just(json!(7)), ".{0,8}".prop_map(Value::from)],
            digit in prop_oneof![Just(Value::Null), any::<i32>().prop_map(Value::from), ".{0,4}".prop_map(Value::from)],
            name in prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), ".{0,8}".prop_map(Value::from)],
        ) {
            let text = json!({"event": event, "digit": digit, "name": name}).to_string();
            if let Err((_, why)) = Web.parse(Message::text(text)) {
                prop_assert!(clear(&why), "unclear error {why:?}");
            }
        }
    }
}
