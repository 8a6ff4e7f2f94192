//! How one call plays out in time, from its draw: dialing, then busy / failed, or
//! ringing, then no-answer or an answer; for an answered Twilio call, the voice webhook
//! and its TwiML (a media stream until the callee hangs up, or an immediate hang-up);
//! for an answered LiveKit call, the talk time. A hang-up request cuts any phase short.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::Sim;
use crate::callbacks::send_signed;
use crate::calls::{Call, Hangup, Status, hung_up};
use crate::media::{self, StreamEnd};
use crate::model::Outcome;
use crate::twiml::{self, Verb};

/// Sleeps for `d` unless a hang-up of any kind comes first (then false).
async fn ring_for(d: Duration, hangup: &mut watch::Receiver<Option<Hangup>>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = hung_up(hangup, false) => false,
    }
}

/// Sleeps until `t` unless the call is hung up (then false); a cancel no longer applies.
async fn talk_until(t: Instant, hangup: &mut watch::Receiver<Option<Hangup>>) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(t) => true,
        () = hung_up(hangup, true) => false,
    }
}

/// Dialing and ringing. True when the call was answered (and is now in progress);
/// otherwise it has ended.
async fn ring(sim: &Sim, call: &Call) -> bool {
    let p = &sim.args.model;
    let d = call.draw;
    let mut hangup = call.watch_hangup();
    call.initiated();
    if !ring_for(p.real(d.ring_delay_s), &mut hangup).await {
        call.set_status(Status::Canceled, Some("hung up before it rang"));
        return false;
    }
    match d.outcome {
        Outcome::Busy => {
            call.set_status(Status::Busy, Some("the line is busy"));
            return false;
        }
        Outcome::Failed => {
            call.set_status(Status::Failed, Some("the network could not connect the call"));
            return false;
        }
        _ => {}
    }
    call.set_status(Status::Ringing, None);
    let answers = d.outcome.answers();
    let ringing = if answers { d.answer_delay_s } else { d.ring_timeout_s };
    if !ring_for(p.real(ringing), &mut hangup).await {
        call.set_status(Status::Canceled, Some("hung up while ringing"));
        return false;
    }
    if !answers {
        call.set_status(Status::NoAnswer, Some("nobody answered"));
        return false;
    }
    if call.twilio.as_ref().is_some_and(|t| t.machine_detection) {
        call.set_answered_by(if d.outcome == Outcome::Machine { "machine_start" } else { "human" });
    }
    call.set_status(Status::InProgress, None);
    true
}

/// A Twilio call, from create to its final status callback.
pub async fn twilio(sim: Arc<Sim>, call: Arc<Call>) {
    if !ring(&sim, &call).await {
        return;
    }
    let talk_ends = Instant::now() + sim.args.model.real(call.draw.talk_s);
    let reason = answered(&sim, &call, talk_ends).await;
    match reason {
        Ok(why) => call.set_status(Status::Completed, Some(&why)),
        Err(why) => {
            tracing::warn!(sid = %call.sid, reason = %why, "call failed");
            call.set_status(Status::Failed, Some(&why))
        }
    };
}

/// Runs the TwiML of an answered call. Ok(why it completed) or Err(why it failed).
async fn answered(sim: &Sim, call: &Call, talk_ends: Instant) -> Result<String, String> {
    let Some(req) = &call.twilio else { return Err("not a Twilio call".into()) };
    let mut hangup = call.watch_hangup();
    let document = match (&req.twiml, &req.url) {
        (Some(inline), _) => inline.clone(),
        (None, Some(url)) => {
            let mut params: Vec<(String, String)> = [
                ("CallSid", call.sid.as_str()),
                ("AccountSid", call.account_sid.as_str()),
                ("From", call.from.as_str()),
                ("To", call.to.as_str()),
                ("CallStatus", "in-progress"),
                ("Direction", "outbound-api"),
                ("ApiVersion", "2010-04-01"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            if let Some(who) = call.answered_by() {
                params.push(("AnsweredBy".into(), who.to_string()));
            }
            let fetch = async {
                let resp =
                    send_signed(&sim.http, &sim.args.auth_token, &req.method, url, &params, Duration::from_secs(15))
                        .await
                        .map_err(|e| format!("voice webhook {url} unreachable: {e}"))?;
                let status = resp.status();
                let body = resp.text().await.map_err(|e| format!("voice webhook {url}: reading the reply: {e}"))?;
                if !status.is_success() {
                    let body: String = body.chars().take(200).collect();
                    return Err(format!("voice webhook {url} answered {status}: {body}"));
                }
                Ok(body)
            };
            tokio::select! {
                r = fetch => r?,
                () = hung_up(&mut hangup, true) => return Ok("hung up through the API".into()),
            }
        }
        (None, None) => return Err("neither Url nor Twiml".into()),
    };
    let verbs = twiml::parse(&document).map_err(|e| format!("the TwiML is not usable: {e}"))?;
    let mut why = "the TwiML ended".to_string();
    for verb in verbs {
        if *hangup.borrow() == Some(Hangup::Any) {
            return Ok("hung up through the API".into());
        }
        match verb {
            Verb::Speak => {}
            Verb::Hangup => return Ok("<Hangup/>".into()),
            Verb::Reject => return Ok("<Reject/>".into()),
            Verb::Connect(stream) | Verb::Start(stream) => {
                match media::run(call, &sim.args.auth_token, &stream, talk_ends, call.watch_hangup()).await {
                    StreamEnd::CalleeHungUp => return Ok("the callee hung up".into()),
                    StreamEnd::HungUp => return Ok("hung up through the API".into()),
                    StreamEnd::ClosedByApplication(detail) => {
                        tracing::info!(sid = %call.sid, detail, "the application closed the media stream");
                        why = format!("the application closed the media stream ({detail})");
                    }
                    StreamEnd::ConnectFailed(detail) => {
                        tracing::warn!(sid = %call.sid, detail, "media stream not opened");
                        why = format!("media stream not opened: {detail}");
                    }
                }
            }
            Verb::Other(name) => tracing::warn!(sid = %call.sid, verb = name, "TwiML verb not simulated; skipped"),
        }
    }
    Ok(why)
}

/// A LiveKit SIP participant: rings, then talks for the drawn time (capped by the
/// request's max_call_duration). There is no room, so no media.
pub async fn livekit(sim: Arc<Sim>, call: Arc<Call>, max_call_duration_s: Option<f64>) {
    if !ring(&sim, &call).await {
        return;
    }
    let talk = max_call_duration_s.filter(|m| *m > 0.0).map_or(call.draw.talk_s, |m| call.draw.talk_s.min(m));
    let mut hangup = call.watch_hangup();
    let why = if talk_until(Instant::now() + sim.args.model.real(talk), &mut hangup).await {
        "the callee hung up"
    } else {
        "hung up"
    };
    call.set_status(Status::Completed, Some(why));
}
