//! Twilio's side of a call, for tests that play the carrier: the request signature
//! Twilio puts on its webhooks and streams, and the stream a TwiML answer names.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;

/// `X-Twilio-Signature`: HMAC-SHA1 with the auth token over the URL and the form
/// parameters sorted by name (each name then value appended), base64.
pub fn signature(token: &str, url: &str, params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `<Stream url>` and `<Parameter>`s (as `start.customParameters`) of a
/// `<Connect><Stream>` TwiML answer. Panics, naming what is missing, on any other answer.
pub fn twiml_stream(twiml: &str) -> (String, serde_json::Map<String, Value>) {
    let attr = |tag: &str, name: &str| -> String {
        let after = tag.split(&format!("{name}=\"")).nth(1).unwrap_or_else(|| panic!("no {name} in {tag}"));
        let value = after.split('"').next().unwrap_or_default();
        value.replace("&quot;", "\"").replace("&amp;", "&")
    };
    let stream = twiml.split("<Stream ").nth(1).unwrap_or_else(|| panic!("no <Stream> in {twiml}"));
    let url = attr(stream.split('>').next().unwrap_or_default(), "url");
    let params =
        stream.split("<Parameter ").skip(1).map(|p| (attr(p, "name"), Value::String(attr(p, "value")))).collect();
    (url, params)
}
