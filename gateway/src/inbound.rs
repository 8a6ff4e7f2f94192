//! Inbound phone calls from a carrier's voice webhook. Twilio `POST`s here when a number
//! rings (configure the number's voice URL as `https://<gateway>/twilio/voice`, optionally
//! with `?campaign_id=<id>` to choose the agent). The request signature is checked, the
//! call is created in voxbridge (answered, inbound, in this gateway's region), and the
//! reply is TwiML that connects the call's audio to this gateway's media route with the
//! call id as a stream parameter, so the call reaches a worker with no hand-made id.

use std::sync::Arc;

use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;

use crate::Gate;
use crate::media::twilio;
use crate::metrics::label;
use crate::routes::{grpc_problem, problem, public_base};

#[derive(Debug, Deserialize)]
pub struct VoiceQuery {
    campaign_id: Option<String>,
}

/// The URLs the carrier may have signed: the public URL, else the request's own, over
/// https and http.
fn signed_urls(gate: &Gate, headers: &HeaderMap, uri: &axum::http::Uri) -> Vec<String> {
    let path = uri.path_and_query().map_or("/twilio/voice", |p| p.as_str());
    if let Some(base) = &gate.args.public_url {
        let base = base.trim_end_matches('/').replacen("wss://", "https://", 1).replacen("ws://", "http://", 1);
        return vec![format!("{base}{path}")];
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    vec![format!("https://{host}{path}"), format!("http://{host}{path}")]
}

/// Where the carrier should stream the call's audio. Never with a query string: Twilio
/// does not support one on stream URLs; what the stream needs goes in `<Parameter>`s.
pub(crate) fn stream_url(gate: &Gate, headers: &HeaderMap) -> String {
    format!("{}/media/twilio", public_base(gate, headers, true))
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

pub fn twiml_connect(stream_url: &str, call_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{}</Response>\n",
        connect_verb(stream_url, &[("call_id", call_id)])
    )
}

/// TwiML's `<Connect><Stream>` with `parameters` (the call id first) as stream
/// parameters: Twilio hands them to the stream in `start.customParameters`. When traces
/// are on, the current trace goes along as `traceparent`, so the stream joins it.
pub(crate) fn connect_verb(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    let trace = vox_telemetry::trace::traceparent();
    let parameters: String = parameters
        .iter()
        .copied()
        .chain(trace.as_deref().map(|t| ("traceparent", t)))
        .map(|(name, value)| format!("<Parameter name=\"{}\" value=\"{}\"/>", xml_escape(name), xml_escape(value)))
        .collect();
    format!("<Connect><Stream url=\"{}\">{parameters}</Stream></Connect>", xml_escape(stream_url))
}

/// A carrier webhook's form parameters, after its `X-Twilio-Signature` was checked
/// against this gateway's auth token; otherwise the error response to send.
#[allow(clippy::result_large_err, reason = "the error is the HTTP answer itself, built once per request")]
pub(crate) fn verified_form(
    gate: &Gate,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Response> {
    let reject = |reason: &str| gate.metrics.rejections.get_or_create(&label("reason", reason)).inc();
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        reject("bad_webhook");
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "the body is not application/x-www-form-urlencoded",
        ));
    };
    let Some(token) = &gate.args.twilio_auth_token else {
        reject("not_configured");
        return Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "Twilio webhooks are off: voxgate has no TWILIO_AUTH_TOKEN",
        ));
    };
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if given.is_empty() || !twilio::signature_valid(token, &signed_urls(gate, headers, uri), &params, given) {
        reject("bad_signature");
        return Err(problem(
            StatusCode::FORBIDDEN,
            "bad_signature",
            "X-Twilio-Signature is missing or does not match this URL, body and auth token",
        ));
    }
    Ok(params)
}

pub async fn twilio_voice(
    State(gate): State<Arc<Gate>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<VoiceQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let reject = |reason: &str| gate.metrics.rejections.get_or_create(&label("reason", reason)).inc();
    let params = match verified_form(&gate, &uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(call_sid), Some(to)) = (param("CallSid"), param("To")) else {
        reject("bad_webhook");
        return problem(StatusCode::BAD_REQUEST, "invalid_argument", "CallSid and To are required");
    };
    let req = bpb::CreateInboundCallRequest {
        region_id: String::new(),
        channel: common::Channel::Phone as i32,
        from_number: param("From").unwrap_or_else(|| "anonymous".into()),
        to_number: to,
        provider_call_id: call_sid.clone(),
        campaign_id: query.campaign_id.unwrap_or_default(),
    };
    let call = match gate.bridge.calls().create_inbound_call(req).await {
        Ok(c) => c.into_inner(),
        Err(s) => {
            tracing::warn!(call_sid, error = s.message(), "inbound call refused");
            return grpc_problem(&s, "inbound_refused");
        }
    };
    tracing::info!(call_id = %call.id, call_sid, "inbound call answered");
    vox_telemetry::trace::attribute("call_id", call.id.as_str());
    vox_telemetry::trace::attribute("campaign_id", call.campaign_id.as_str());
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], twiml_connect(&stream_url(&gate, &headers), &call.id))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_connects_the_stream_with_the_call_id() {
        let xml = twiml_connect("wss://gw.example.com/media/twilio", "ca_1\"x");
        assert!(xml.contains("<Connect><Stream url=\"wss://gw.example.com/media/twilio\">"));
        assert!(xml.contains("<Parameter name=\"call_id\" value=\"ca_1&quot;x\"/>"));
    }
}

/// Arbitrary carrier webhook bodies and signatures: the form decode and the signature
/// check never panic, and only the right signature passes.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_webhook_body_and_signature_are_checked_without_panic(
            body in prop::collection::vec(any::<u8>(), 0..256),
            given in ".{0,64}",
            url in ".{0,60}",
        ) {
            // The same decode as `verified_form`: a body that is not a form is refused there.
            if let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
                let urls = vec![url.clone()];
                let good = twilio::signature("token", &url, &params);
                prop_assert!(twilio::signature_valid("token", &urls, &params, &good));
                prop_assert_eq!(twilio::signature_valid("token", &urls, &params, &given), given == good);
            }
        }
    }
}
