//! Outbound calls placed by voxdialler through a Twilio-compatible carrier. The dialler
//! creates each call with two URLs on this gateway, both carrying the Vox call id:
//!
//! * `POST /twilio/outbound/answer?call_id=<id>`: the carrier's voice webhook, fetched
//!   when the callee picks up. A machine (the carrier's `AnsweredBy=machine_*`) ends the
//!   call as `machine` with a hangup. A person gets a worker: within the connect window
//!   (2 s by default, `--abandon-window-ms`) the gateway reserves one for 15 s and
//!   answers TwiML that connects the audio to `/media/twilio` (no query string: Twilio
//!   allows none) with `<Parameter name="call_id">` and `<Parameter name="slot"
//!   value="<node_id>/<worker_index>/<reservation_id>">`. The gateway keeps nothing: the
//!   stream may reach any gateway, which takes the reservation over. With no worker in
//!   time the call is `abandoned`: the callee hears a short message and the carrier
//!   hangs up, and pacing counts it.
//! * `POST /twilio/status?call_id=<id>`: status callbacks (`ringing`, `busy`,
//!   `no-answer`, `failed`, `canceled`, `completed`, machine answers) become call
//!   transitions in voxbridge.
//!
//! Both check `X-Twilio-Signature` with the account's auth token before anything else.
//! Carriers retry callbacks and send them out of order, so a callback that would move a
//! call backwards or that it already reflects is acknowledged and changes nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vox_proto::backend::v1 as bpb;

use crate::inbound::{connect_verb, stream_url, verified_form, xml_escape};
use crate::metrics::label;
use crate::routes::{grpc_problem, problem};
use crate::{Gate, reservation};

/// How long the worker reserved at answer time waits for the call's media stream (the
/// worker may cap it): the carrier fetches the TwiML and then opens the stream.
const ANSWER_RESERVATION_MS: u32 = 15_000;

#[derive(Debug, Deserialize)]
pub struct CallQuery {
    call_id: Option<String>,
}

fn twiml(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{body}</Response>\n"),
    )
        .into_response()
}

#[allow(clippy::result_large_err, reason = "the error is the HTTP answer itself, built once per request")]
fn call_id_of(query: CallQuery) -> Result<String, Response> {
    match query.call_id.map(|c| c.trim().to_string()) {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(problem(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "call_id: required in the query string (the dialler puts it in the URLs it gives the carrier)",
        )),
    }
}

/// Looks the call up; an unknown id is the carrier's (or an attacker's) mistake: 404.
async fn load_call(gate: &Gate, call_id: &str) -> Result<bpb::Call, Response> {
    match gate.bridge.calls().get_call(bpb::GetCallRequest { id: call_id.to_string() }).await {
        Ok(c) => Ok(c.into_inner()),
        Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
            gate.metrics.rejections.get_or_create(&label("reason", "unknown_call")).inc();
            Err(problem(StatusCode::NOT_FOUND, "not_found", &format!("no call {call_id:?}")))
        }
        Err(s) => {
            tracing::warn!(call_id, error = s.message(), "voxbridge did not answer for the call");
            Err(grpc_problem(&s, "unavailable"))
        }
    }
}

/// Moves the call; a move the call already made (or one it has gone past) is not an
/// error for a carrier callback.
async fn advance(gate: &Gate, call: &bpb::Call, to: bpb::CallState, reason: &str, provider_call_id: &str) -> bool {
    let req = bpb::TransitionCallRequest {
        call_id: call.id.clone(),
        to_state: to as i32,
        reason: reason.to_string(),
        provider_call_id: provider_call_id.to_string(),
        ..Default::default()
    };
    match gate.bridge.calls().transition_call(req).await {
        Ok(_) => {
            gate.metrics.outbound_transitions.get_or_create(&label("to_state", to.as_str_name())).inc();
            true
        }
        Err(s) => {
            tracing::info!(call_id = %call.id, to = ?to, error = s.message(), "carrier event not applied");
            false
        }
    }
}

/// A carrier request's checked form parameters and the call it is about; otherwise the
/// answer to send (bad signature 403, no call id 400, unknown call 404).
#[allow(clippy::result_large_err, reason = "the error is the HTTP answer itself, built once per request")]
async fn carrier_event(
    gate: &Gate,
    uri: &axum::http::Uri,
    query: CallQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<(String, String)>, bpb::Call), Response> {
    let params = verified_form(gate, uri, headers, body)?;
    let call_id = call_id_of(query)?;
    vox_telemetry::trace::attribute("call_id", call_id.as_str());
    let call = load_call(gate, &call_id).await?;
    vox_telemetry::trace::attribute("campaign_id", call.campaign_id.as_str());
    Ok((params, call))
}

fn is_machine(answered_by: Option<&str>) -> bool {
    answered_by.is_some_and(|a| a.starts_with("machine") || a == "fax")
}

/// The carrier's voice webhook for an answered outbound call.
pub async fn answer(
    State(gate): State<Arc<Gate>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<CallQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (params, call) = match carrier_event(&gate, &uri, query, &headers, &body).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let call_id = call.id.clone();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let sid = param("CallSid").unwrap_or_default();
    if is_machine(param("AnsweredBy")) {
        advance(&gate, &call, bpb::CallState::Machine, "answering_machine", sid).await;
        return twiml("<Hangup/>");
    }
    if !matches!(call.state(), bpb::CallState::Dialing | bpb::CallState::Ringing | bpb::CallState::Answered) {
        tracing::info!(call_id, state = ?call.state(), "answer webhook for a call that is not ringing; hanging up");
        return twiml("<Hangup/>");
    }
    // A person is on the line: reserve a worker within the connect window.
    let deadline = Instant::now() + Duration::from_millis(gate.args.abandon_window_ms);
    let agent = reservation::agent_of(&gate, &call).await;
    let reserved = loop {
        if !gate.draining.load(std::sync::atomic::Ordering::SeqCst)
            && let Some(r) =
                reservation::reserve(&gate, &call, agent.clone(), ANSWER_RESERVATION_MS, None, &mut HashSet::new())
                    .await
        {
            break Some(r);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if call.state() != bpb::CallState::Answered
        && !advance(&gate, &call, bpb::CallState::Answered, "answered", sid).await
    {
        if let Some(r) = reserved {
            r.release().await;
        }
        return twiml("<Hangup/>");
    }
    match reserved {
        Some(reservation::Reserved { claim, reservation_id, .. }) => {
            // The stream may reach any gateway: this one keeps no claim, and counts the
            // worker busy until the fleet's next refresh tells.
            gate.fleet.handed_over(&claim.slot);
            let slot = claim.slot.with_reservation(&reservation_id);
            drop(claim);
            tracing::info!(call_id, slot, "outbound call answered; connecting its audio");
            twiml(&connect_verb(&stream_url(&gate, &headers), &[("call_id", &call_id), ("slot", &slot)]))
        }
        None => {
            gate.metrics.rejections.get_or_create(&label("reason", "no_free_slot")).inc();
            let reason =
                format!("{} {} ms", vox_domain::campaign::ABANDON_WITH_MESSAGE_REASON, gate.args.abandon_window_ms);
            advance(&gate, &call, bpb::CallState::Abandoned, &reason, sid).await;
            tracing::warn!(call_id, "answered call abandoned: no free worker slot");
            twiml(&format!("<Say>{}</Say><Hangup/>", xml_escape(vox_domain::campaign::ABANDON_MESSAGE)))
        }
    }
}

/// The carrier's status callbacks for an outbound call.
pub async fn status(
    State(gate): State<Arc<Gate>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<CallQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (params, call) = match carrier_event(&gate, &uri, query, &headers, &body).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(status) = param("CallStatus") else {
        return problem(StatusCode::BAD_REQUEST, "invalid_argument", "CallStatus: required");
    };
    let sid = param("CallSid").unwrap_or_default();
    use bpb::CallState as S;
    let state = call.state();
    let to = match status {
        "queued" | "initiated" => None,
        "ringing" => (state == S::Dialing).then_some((S::Ringing, "ringing")),
        "in-progress" | "answered" if is_machine(param("AnsweredBy")) => Some((S::Machine, "answering_machine")),
        // A person answered: the voice webhook connects (or abandons) the call.
        "in-progress" | "answered" => None,
        "busy" => Some((S::Busy, "busy")),
        "no-answer" => Some((S::NoAnswer, "no_answer")),
        "failed" => Some((S::Failed, "carrier_failed")),
        "canceled" => Some((S::Canceled, "carrier_canceled")),
        // The callee hung up. A call on a worker is ended by the worker when the media
        // stream stops; one that never reached a worker ends here.
        "completed" => match state {
            S::Dialing | S::Ringing => Some((S::Failed, "ended_before_answer")),
            S::Answered | S::Attaching => Some((S::Completed, "hangup_before_attach")),
            _ => None,
        },
        other => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &format!("CallStatus: {other:?} is not a Twilio call status"),
            );
        }
    };
    if let Some((to, reason)) = to
        && state != to
        && !vox_domain::call::CallState::from_proto("state", state as i32).is_ok_and(|s| s.is_terminal())
    {
        advance(&gate, &call, to, reason, sid).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_recognised_by_answered_by() {
        assert!(is_machine(Some("machine_start")));
        assert!(is_machine(Some("machine_end_beep")));
        assert!(is_machine(Some("fax")));
        assert!(!is_machine(Some("human")));
        assert!(!is_machine(Some("unknown")));
        assert!(!is_machine(None));
    }
}
