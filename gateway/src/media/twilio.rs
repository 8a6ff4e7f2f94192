//! Twilio Media Streams, completely: `connected`, `start`, `media`, `dtmf`, `mark`,
//! `stop` in; `media`, `mark`, `clear` out; and the `X-Twilio-Signature` check.
//! The Vox call id arrives as the `call_id` custom parameter (TwiML
//! `<Parameter name="call_id" value="…"/>`), and for an answered outbound call the
//! worker reserved for it as `slot`, since stream URLs carry no query string.

use std::borrow::Cow;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;

use axum::extract::ws::{Message, close_code};

use super::{CarrierEvent, Dialect, Encoding, GatewayEvent, StreamStart};

/// The Twilio dialect over one stream.
#[derive(Debug, Default)]
pub struct Twilio {
    /// The stream's `streamSid` as a JSON string (quoted and escaped), ready to go into
    /// every frame sent.
    stream_sid_json: String,
}

impl Dialect for Twilio {
    fn parse(&mut self, msg: Message) -> Result<Option<CarrierEvent>, (u16, String)> {
        match msg {
            Message::Text(t) => parse(t.as_str()).map(Some).map_err(|why| (close_code::POLICY, why)),
            Message::Binary(_) => {
                Err((close_code::UNSUPPORTED, "binary frames are not part of the Twilio protocol".into()))
            }
            Message::Close(_) => Ok(Some(CarrierEvent::Stop)),
            Message::Ping(_) | Message::Pong(_) => Ok(None),
        }
    }

    fn started(&mut self, start: &StreamStart) {
        self.stream_sid_json = json_string(&start.stream_id);
    }

    fn render(&self, event: &GatewayEvent) -> Message {
        Message::text(render_quoted(&self.stream_sid_json, event))
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The fields of a `media` frame, read straight from the text without building a JSON
/// tree or copying strings: it is the frame that arrives 50 times a second per call. Any
/// other frame, or a media frame of another shape, takes the general path, which also
/// says what is wrong.
#[derive(Deserialize)]
struct MediaFrame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    media: Option<MediaBody<'a>>,
}

#[derive(Deserialize)]
struct MediaBody<'a> {
    #[serde(borrow, default)]
    payload: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

/// Parses one text frame. The error says what is wrong, for the close reason.
pub fn parse(text: &str) -> Result<CarrierEvent, String> {
    if let Ok(MediaFrame { event, media: Some(MediaBody { payload: Some(payload), timestamp }) }) =
        serde_json::from_str::<MediaFrame<'_>>(text)
        && event == "media"
    {
        let payload = B64.decode(payload.as_bytes()).map_err(|_| "media payload is not base64".to_string())?;
        let timestamp_ms = timestamp.and_then(|t| t.parse().ok()).unwrap_or(0);
        return Ok(CarrierEvent::Audio { payload, timestamp_ms });
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let event = v.get("event").and_then(Value::as_str).ok_or("frame without an \"event\"")?;
    let field = |obj: &Value, path: &str| -> Result<String, String> {
        obj.pointer(path)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| format!("{event} frame without {path}"))
    };
    match event {
        "connected" => Ok(CarrierEvent::Connected),
        "start" => {
            let encoding = v.pointer("/start/mediaFormat/encoding").and_then(Value::as_str).unwrap_or("audio/x-mulaw");
            let sample_rate = v.pointer("/start/mediaFormat/sampleRate").and_then(Value::as_u64).unwrap_or(8000) as u32;
            let encoding = match encoding {
                "audio/x-mulaw" => Encoding::Mulaw,
                "audio/x-l16" | "audio/l16" => Encoding::Pcm16le,
                other => return Err(format!("unsupported media encoding {other:?}")),
            };
            Ok(CarrierEvent::Start(StreamStart {
                stream_id: field(&v, "/start/streamSid").or_else(|_| field(&v, "/streamSid"))?,
                carrier_call_id: field(&v, "/start/callSid").unwrap_or_default(),
                call_id: v
                    .pointer("/start/customParameters/call_id")
                    .or_else(|| v.pointer("/start/customParameters/callId"))
                    .and_then(Value::as_str)
                    .map(String::from),
                slot: v.pointer("/start/customParameters/slot").and_then(Value::as_str).map(String::from),
                traceparent: v.pointer("/start/customParameters/traceparent").and_then(Value::as_str).map(String::from),
                encoding,
                sample_rate,
            }))
        }
        "media" => {
            let payload =
                B64.decode(field(&v, "/media/payload")?).map_err(|_| "media payload is not base64".to_string())?;
            let timestamp_ms =
                v.pointer("/media/timestamp").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or(0);
            Ok(CarrierEvent::Audio { payload, timestamp_ms })
        }
        "dtmf" => Ok(CarrierEvent::Dtmf(field(&v, "/dtmf/digit")?)),
        "mark" => Ok(CarrierEvent::Mark(field(&v, "/mark/name")?)),
        "stop" => Ok(CarrierEvent::Stop),
        other => Err(format!("unknown event {other:?}")),
    }
}

/// One outgoing frame for the stream `stream_sid`.
pub fn render(stream_sid: &str, event: &GatewayEvent) -> String {
    render_quoted(&json_string(stream_sid), event)
}

/// [`render`] with the stream sid already a JSON string. Audio, 50 frames a second, is
/// written into one string of the right size: no JSON tree, no second copy of the
/// base64.
fn render_quoted(stream_sid_json: &str, event: &GatewayEvent) -> String {
    match event {
        GatewayEvent::Audio(payload) => {
            const HEAD: &str = r#"{"event":"media","streamSid":"#;
            const MEDIA: &str = r#","media":{"payload":""#;
            const TAIL: &str = r#""}}"#;
            let mut out = String::with_capacity(
                HEAD.len() + stream_sid_json.len() + MEDIA.len() + payload.len().div_ceil(3) * 4 + TAIL.len(),
            );
            out.push_str(HEAD);
            out.push_str(stream_sid_json);
            out.push_str(MEDIA);
            B64.encode_string(payload, &mut out);
            out.push_str(TAIL);
            out
        }
        GatewayEvent::Mark(name) => {
            format!(r#"{{"event":"mark","streamSid":{stream_sid_json},"mark":{{"name":{}}}}}"#, json_string(name))
        }
        GatewayEvent::Clear => format!(r#"{{"event":"clear","streamSid":{stream_sid_json}}}"#),
    }
}

/// Twilio's request signature: base64(HMAC-SHA1(auth token, URL + sorted POST params)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else { return String::new() };
    mac.update(data.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// True when `given` matches the signature of any candidate URL (the public URL, or the
/// wss:// and ws:// forms of the requested one). Constant-time per comparison.
pub fn signature_valid(auth_token: &str, candidates: &[String], params: &[(String, String)], given: &str) -> bool {
    candidates.iter().any(|url| {
        let expected = signature(auth_token, url, params);
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_documented_frames() {
        assert_eq!(
            parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).unwrap(),
            CarrierEvent::Connected
        );
        let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1","tracks":["inbound"],"customParameters":{"call_id":"ca_x"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        let CarrierEvent::Start(s) = parse(start).unwrap() else { panic!() };
        assert_eq!(
            (s.stream_id.as_str(), s.carrier_call_id.as_str(), s.call_id.as_deref()),
            ("MZ1", "CA1", Some("ca_x"))
        );
        assert_eq!(s.slot, None);
        let outbound = start.replace(r#"{"call_id":"ca_x"}"#, r#"{"call_id":"ca_x","slot":"nd_1/2/rsv_3"}"#);
        let CarrierEvent::Start(s) = parse(&outbound).unwrap() else { panic!() };
        assert_eq!(s.slot.as_deref(), Some("nd_1/2/rsv_3"));
        let media = r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"40","payload":"/////w=="}}"#;
        assert_eq!(parse(media).unwrap(), CarrierEvent::Audio { payload: vec![0xFF; 4], timestamp_ms: 40 });
        assert_eq!(
            parse(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"7"}}"#).unwrap(),
            CarrierEvent::Dtmf("7".into())
        );
        assert_eq!(
            parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#).unwrap(),
            CarrierEvent::Mark("m1".into())
        );
        assert_eq!(
            parse(r#"{"event":"stop","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#).unwrap(),
            CarrierEvent::Stop
        );
    }

    #[test]
    fn bad_frames_say_why() {
        assert!(parse("{nope").unwrap_err().starts_with("malformed JSON"));
        assert!(parse(r#"{"event":"dance"}"#).unwrap_err().contains("unknown event"));
        assert!(parse(r#"{"event":"media","media":{"payload":"***"}}"#).unwrap_err().contains("base64"));
        assert!(parse(r#"{"event":"dtmf"}"#).unwrap_err().contains("/dtmf/digit"));
    }

    #[test]
    fn renders_outgoing_frames() {
        let v: Value = serde_json::from_str(&render("MZ1", &GatewayEvent::Audio(vec![0xFF, 0x7F]))).unwrap();
        assert_eq!(v, json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "/38="}}));
        let v: Value = serde_json::from_str(&render("MZ1", &GatewayEvent::Clear)).unwrap();
        assert_eq!(v, json!({"event": "clear", "streamSid": "MZ1"}));
        let v: Value = serde_json::from_str(&render("MZ1", &GatewayEvent::Mark("m\"1".into()))).unwrap();
        assert_eq!(v, json!({"event": "mark", "streamSid": "MZ1", "mark": {"name": "m\"1"}}));
    }

    #[test]
    fn a_stream_sid_of_any_text_stays_valid_json() {
        let mut t = Twilio::default();
        let start = |id: &str| StreamStart {
            stream_id: id.into(),
            carrier_call_id: String::new(),
            call_id: None,
            slot: None,
            traceparent: None,
            encoding: Encoding::Mulaw,
            sample_rate: 8000,
        };
        for sid in ["MZ1", "quote\" back\\slash", "line\nbreak", ""] {
            t.started(&start(sid));
            for event in [GatewayEvent::Audio((0..=255).collect()), GatewayEvent::Clear] {
                let Message::Text(text) = t.render(&event) else { panic!("a text frame") };
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(v["streamSid"], sid);
            }
        }
    }

    #[test]
    fn media_frames_of_other_shapes_take_the_general_path() {
        // Extra fields, escapes in the payload, a numeric timestamp, keys in any order.
        let escaped = r#"{"media":{"payload":"\/\/8=","timestamp":20,"x":[1]},"event":"media","extra":{"a":null}}"#;
        assert_eq!(parse(escaped).unwrap(), CarrierEvent::Audio { payload: vec![0xFF, 0xFF], timestamp_ms: 0 });
        let typed = r#"{"event":"media","media":{"payload":"AAA=","timestamp":"60"}}"#;
        assert_eq!(parse(typed).unwrap(), CarrierEvent::Audio { payload: vec![0, 0], timestamp_ms: 60 });
        assert!(parse(r#"{"event":"media","media":{"payload":7}}"#).unwrap_err().contains("/media/payload"));
        assert!(parse(r#"{"event":"media","media":{}}"#).unwrap_err().contains("/media/payload"));
        assert!(parse(r#"{"event":"media","media":{"payload":"%%"}}"#).unwrap_err().contains("base64"));
        assert_eq!(parse(r#"{"event":"stop","media":{"payload":"AAA="}}"#).unwrap(), CarrierEvent::Stop);
    }

    #[test]
    fn signatures_follow_twilios_example() {
        // Twilio's documented example (auth token 12345).
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let sig = signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(signature_valid("12345", &["https://mycompany.com/myapp.php?foo=1&bar=2".into()], &params, &sig));
        assert!(!signature_valid("54321", &["https://mycompany.com/myapp.php?foo=1&bar=2".into()], &params, &sig));
    }
}

/// Arbitrary frames from the network: never a panic, and an error names what is wrong.
#[cfg(test)]
mod properties {
    use serde_json::json;

    use super::*;
    use proptest::prelude::*;

    /// JSON values shaped like Twilio frames: known events with fields of any type.
    fn frame_like() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,24}".prop_map(Value::from),
            "[A-Za-z0-9+/=]{0,40}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("streamSid".to_string()),
                        Just("callSid".to_string()),
                        Just("payload".to_string()),
                        Just("mediaFormat".to_string()),
                        Just("encoding".to_string()),
                        Just("sampleRate".to_string()),
                        Just("customParameters".to_string()),
                        Just("digit".to_string()),
                        Just("name".to_string()),
                        ".{0,8}",
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let event = prop_oneof![
            Just("connected"),
            Just("start"),
            Just("media"),
            Just("dtmf"),
            Just("mark"),
            Just("stop"),
            Just("other")
        ];
        (event, value.clone(), value).prop_map(|(event, body, extra)| {
            json!({"event": event, event: body, "start": extra.clone(), "media": extra}).to_string()
        })
    }

    fn clear(why: &str) -> bool {
        !why.trim().is_empty()
            && (why.contains("JSON")
                || why.contains("event")
                || why.contains("frame")
                || why.contains("payload")
                || why.contains("encoding"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_parses_or_says_why(text in ".{0,200}") {
            if let Err(why) = parse(&text) {
                prop_assert!(clear(&why), "unclear error {why:?}");
            }
        }

        #[test]
        fn frame_shaped_json_parses_or_says_why(text in frame_like()) {
            if let Err(why) = parse(&text) {
                prop_assert!(clear(&why), "unclear error {why:?} for {text}");
            }
        }

        #[test]
        fn any_binary_frame_is_refused_clearly(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let err = Twilio::default().parse(Message::Binary(bytes.into()));
            prop_assert!(matches!(err, Err((code, ref why)) if code == close_code::UNSUPPORTED && why.contains("binary")));
        }

        #[test]
        fn any_signature_input_is_checked_without_panic(
            token in ".{0,40}",
            urls in prop::collection::vec(".{0,60}", 0..3),
            params in prop::collection::vec((".{0,16}", ".{0,32}"), 0..6),
            given in ".{0,64}",
        ) {
            let _ = signature_valid(&token, &urls, &params, &given);
            // A signature computed for one of the URLs is accepted.
            if let Some(url) = urls.first() {
                let good = signature(&token, url, &params);
                prop_assert!(signature_valid(&token, &urls, &params, &good));
            }
        }
    }
}
