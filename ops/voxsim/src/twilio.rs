//! The Twilio REST subset a dialler uses: create a call, read it, hang it up or cancel
//! it (`/2010-04-01/Accounts/{AccountSid}/Calls…`), with HTTP Basic auth
//! (`AccountSid:AuthToken`) and Twilio's error bodies (`code`, `message`, `more_info`,
//! `status`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::Sim;
use crate::callbacks::{self, rfc2822};
use crate::calls::{self, Call, Events, Hangup, NewCall, Provider, Status, TwilioRequest};
use crate::lifecycle;

/// A Twilio-style error: `{"code", "message", "more_info", "status"}`.
#[derive(Debug)]
pub struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let code = self.code;
        let body = json!({
            "code": code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": self.status.as_u16(),
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"Twilio API\""));
        }
        resp
    }
}

pub fn error(status: StatusCode, code: u32, message: impl Into<String>) -> TwilioError {
    TwilioError { status, code, message: message.into() }
}

fn not_found(path: &str) -> TwilioError {
    error(StatusCode::NOT_FOUND, 20404, format!("The requested resource {path} was not found"))
}

/// Checks HTTP Basic `AccountSid:AuthToken`; the error is Twilio's 401.
pub fn authorize(sim: &Sim, headers: &HeaderMap) -> Result<(), TwilioError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let ok = given.as_deref().and_then(|g| g.split_once(':')).is_some_and(|(user, pass)| {
        let user_ok: bool = subtle::ConstantTimeEq::ct_eq(user.as_bytes(), sim.args.account_sid.as_bytes()).into();
        let pass_ok: bool = subtle::ConstantTimeEq::ct_eq(pass.as_bytes(), sim.args.auth_token.as_bytes()).into();
        user_ok & pass_ok
    });
    if ok { Ok(()) } else { Err(error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")) }
}

/// E.164: a plus, a non-zero digit, at most 15 digits in all.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() > "https://".len()
}

/// The call resource, as Twilio renders it (the fields a client reads, and the rest
/// present as null).
pub fn resource(call: &Call) -> Value {
    let duration = call.duration();
    json!({
        "sid": call.sid,
        "account_sid": call.account_sid,
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from,
        "from_formatted": call.from,
        "status": call.status().as_str(),
        "direction": "outbound-api",
        "answered_by": call.answered_by(),
        "date_created": rfc2822(call.created_at),
        "date_updated": rfc2822(call.ended_at().or(call.answered_at()).unwrap_or(call.created_at)),
        "start_time": rfc2822(call.created_at),
        "end_time": call.ended_at().map(rfc2822),
        "duration": duration.map(|d| d.to_string()),
        "api_version": "2010-04-01",
        "price": null,
        "price_unit": "USD",
        "parent_call_sid": null,
        "phone_number_sid": null,
        "caller_name": null,
        "forwarded_from": null,
        "group_sid": null,
        "trunk_sid": null,
        "queue_time": "0",
        "annotation": null,
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{}.json", call.account_sid, call.sid),
        "subresource_uris": {
            "recordings": format!("/2010-04-01/Accounts/{}/Calls/{}/Recordings.json", call.account_sid, call.sid),
            "notifications": format!("/2010-04-01/Accounts/{}/Calls/{}/Notifications.json", call.account_sid, call.sid),
        },
    })
}

fn bad(code: u32, message: impl Into<String>) -> TwilioError {
    error(StatusCode::BAD_REQUEST, code, message)
}

/// What a create request asked for, validated.
struct CreateRequest {
    to: String,
    from: String,
    timeout_s: f64,
    call: TwilioRequest,
}

fn parse_create(params: &[(String, String)]) -> Result<CreateRequest, TwilioError> {
    let get = |name: &str| params.iter().find(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim());
    let to = get("To").ok_or_else(|| bad(21201, "No 'To' number is specified"))?;
    if !is_e164(to) {
        return Err(bad(21211, format!("The 'To' number {to} is not a valid phone number.")));
    }
    let from = get("From").ok_or_else(|| bad(21603, "A 'From' phone number is required."))?;
    if !is_e164(from) {
        return Err(bad(
            21212,
            format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
        ));
    }
    let url = get("Url").map(String::from);
    let twiml = get("Twiml").map(String::from);
    match (&url, &twiml) {
        (None, None) => return Err(bad(21205, "A 'Url' or 'Twiml' parameter is required.")),
        (Some(u), _) if !is_http_url(u) => return Err(bad(21205, format!("Url is not a valid URL: {u}"))),
        _ => {}
    }
    let method = |name: &str| -> Result<String, TwilioError> {
        match get(name).map(str::to_ascii_uppercase) {
            None => Ok("POST".into()),
            Some(m) if m == "GET" || m == "POST" => Ok(m),
            Some(m) => Err(bad(21207, format!("{name} must be GET or POST, not {m}"))),
        }
    };
    let status_callback = get("StatusCallback").map(String::from);
    if let Some(u) = &status_callback
        && !is_http_url(u)
    {
        return Err(bad(21609, format!("StatusCallback is not a valid URL: {u}")));
    }
    let mut events = Events::default();
    let mut any_event = false;
    for (_, value) in params.iter().filter(|(k, _)| k == "StatusCallbackEvent") {
        for name in value.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()) {
            any_event = true;
            match name {
                "initiated" => events.initiated = true,
                "ringing" => events.ringing = true,
                "answered" => events.answered = true,
                "completed" => events.completed = true,
                other => {
                    return Err(bad(
                        21626,
                        format!("StatusCallbackEvent {other:?} is not one of initiated, ringing, answered, completed"),
                    ));
                }
            }
        }
    }
    if !any_event {
        events.completed = true;
    }
    let machine_detection = match get("MachineDetection") {
        None => false,
        Some("Enable" | "DetectMessageEnd") => true,
        Some(other) => {
            return Err(bad(21216, format!("MachineDetection must be Enable or DetectMessageEnd, not {other}")));
        }
    };
    let timeout_s = match get("Timeout") {
        None => 60.0,
        Some(t) => t
            .parse::<u32>()
            .map_err(|_| bad(21216, format!("Timeout must be a whole number of seconds, not {t}")))?
            .clamp(1, 600)
            .into(),
    };
    Ok(CreateRequest {
        to: to.into(),
        from: from.into(),
        timeout_s,
        call: TwilioRequest {
            url,
            method: method("Method")?,
            twiml,
            status_callback,
            status_callback_method: method("StatusCallbackMethod")?,
            events,
            machine_detection,
        },
    })
}

fn calls_path(account: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Calls.json")
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`
pub async fn create(
    State(sim): State<Arc<Sim>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    if account != sim.args.account_sid {
        return not_found(&calls_path(&account)).into_response();
    }
    if let Some(fault) = sim.take_fault() {
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        if let Some(status) = fault.status {
            tracing::info!(status = status.as_u16(), "create answered with a simulated fault");
            return error(status, 20000 + u32::from(status.as_u16()), "simulated fault (POST /sim/faults)")
                .into_response();
        }
    }
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return bad(20001, "the body is not application/x-www-form-urlencoded").into_response();
    };
    let req = match parse_create(&params) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let index = sim.next_index();
    let draw = sim.args.model.draw(index, Some(req.timeout_s));
    let sid = format!("CA{:032x}", rand::random::<u128>());
    let call_id = req
        .call
        .url
        .as_deref()
        .and_then(calls::call_id_in_url)
        .or_else(|| req.call.status_callback.as_deref().and_then(calls::call_id_in_url));
    let callbacks = req.call.status_callback.as_ref().map(|url| {
        callbacks::Queue::start(
            callbacks::Target {
                http: sim.http.clone(),
                auth_token: sim.args.auth_token.clone(),
                url: url.clone(),
                method: req.call.status_callback_method.clone(),
                call_sid: sid.clone(),
                account_sid: sim.args.account_sid.clone(),
                from: req.from.clone(),
                to: req.to.clone(),
            },
            Arc::clone(&sim.pending_callbacks),
        )
    });
    let call = Arc::new(Call::new(NewCall {
        sid,
        account_sid: sim.args.account_sid.clone(),
        provider: Provider::Twilio,
        to: req.to,
        from: req.from,
        index,
        draw,
        twilio: Some(req.call),
        livekit: None,
        call_id,
        callbacks,
    }));
    sim.insert(Arc::clone(&call));
    tracing::info!(sid = %call.sid, index, outcome = draw.outcome.as_str(), call_id = call.call_id(), "twilio call created");
    // Rendered before the lifecycle starts, so the reply always says "queued".
    let reply = resource(&call);
    tokio::spawn(lifecycle::twilio(Arc::clone(&sim), Arc::clone(&call)));
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}

/// Finds the call of `/Calls/{CallSid}.json` after the auth and account checks.
fn find(sim: &Sim, headers: &HeaderMap, account: &str, file: &str) -> Result<Arc<Call>, TwilioError> {
    authorize(sim, headers)?;
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{file}");
    if account != sim.args.account_sid {
        return Err(not_found(&path));
    }
    file.strip_suffix(".json").and_then(|sid| sim.get(sid)).ok_or_else(|| not_found(&path))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`
pub async fn fetch(
    State(sim): State<Arc<Sim>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match find(&sim, &headers, &account, &file) {
        Ok(call) => axum::Json(resource(&call)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with `Status=completed`
/// (hang up, whatever the state) or `Status=canceled` (only a queued or ringing call).
pub async fn update(
    State(sim): State<Arc<Sim>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let call = match find(&sim, &headers, &account, &file) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return bad(20001, "the body is not application/x-www-form-urlencoded").into_response();
    };
    let status = params.iter().find(|(k, _)| k == "Status").map(|(_, v)| v.as_str());
    let kind = match status {
        Some("completed") => Hangup::Any,
        Some("canceled") => Hangup::IfUnanswered,
        Some(other) => return bad(21218, format!("Status must be completed or canceled, not {other}")).into_response(),
        None => {
            return bad(20001, "voxsim updates a call only with Status=completed or Status=canceled (no redirects)")
                .into_response();
        }
    };
    if call.request_hangup(kind) {
        tracing::info!(sid = %call.sid, status = status.unwrap_or_default(), "hang-up requested");
        let mut rx = call.watch_status();
        // Reply with the outcome: the call ended, or (a cancel that lost the race with
        // the answer) it is in progress and stays so.
        let settled = |s: &Status| s.is_final() || (kind == Hangup::IfUnanswered && *s == Status::InProgress);
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(settled)).await;
    }
    axum::Json(resource(&call)).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn e164_numbers() {
        for ok in ["+15551234567", "+442071838750", "+12"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in ["15551234567", "+0123", "+1", "+1555123456789012", "+1 555 1234", "", "+", "+1555abc"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn create_requests_are_validated() {
        let base = [("To", "+15550001111"), ("From", "+15550002222"), ("Url", "http://gw/twilio/voice")];
        let req = parse_create(&form(&base)).ok().unwrap();
        assert_eq!(req.call.events, Events { completed: true, ..Events::default() });
        assert_eq!((req.timeout_s, req.call.method.as_str(), req.call.machine_detection), (60.0, "POST", false));
        let mut more = base.to_vec();
        more.extend([
            ("StatusCallbackEvent", "initiated ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("MachineDetection", "Enable"),
            ("Timeout", "15"),
            ("StatusCallback", "http://gw/cb?call_id=ca_1"),
        ]);
        let req = parse_create(&form(&more)).ok().unwrap();
        assert_eq!(req.call.events, Events { initiated: true, ringing: true, answered: true, completed: true });
        assert!(req.call.machine_detection);
        assert_eq!(req.timeout_s, 15.0);
        let status = |pairs: &[(&str, &str)]| parse_create(&form(pairs)).err().unwrap().status;
        assert_eq!(status(&[("To", "+1555"), ("From", "+15550002222")]), StatusCode::BAD_REQUEST);
        assert_eq!(status(&[("To", "+15550001111"), ("From", "+15550002222")]), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(&[("To", "+15550001111"), ("From", "+15550002222"), ("Url", "ftp://x")]),
            StatusCode::BAD_REQUEST
        );
    }
}
