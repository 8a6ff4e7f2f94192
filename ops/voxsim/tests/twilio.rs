//! voxsim's Twilio side end to end: calls created over REST play out per the model,
//! with signed status callbacks in order, the voice webhook, and a Twilio Media Stream
//! for every answer; hang-ups, cancels, TwiML hang-ups, errors and faults.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{ACCOUNT, App, Sim, TOKEN};
use serde_json::Value;
use voxsim::model::Params;

fn call_form(app: &App, i: usize, mode: &str, events: bool) -> Vec<(&'static str, String)> {
    let call_id = format!("ca_{i}");
    let mut form = vec![
        ("To", format!("+1555000{i:04}")),
        ("From", "+15559990000".to_string()),
        ("Url", app.voice(mode, &call_id)),
        ("StatusCallback", app.status(&call_id)),
    ];
    if events {
        for e in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent", e.to_string()));
        }
    }
    form
}

fn fast(answer_prob: f64, talk_mean: f64) -> Params {
    Params {
        answer_prob,
        fail_prob: 1.0 - answer_prob,
        answer_delay_mean: 3.0,
        answer_delay_sd: 1.0,
        talk_mean,
        talk_cv: 0.2,
        ring_delay: 1.0,
        time_scale: 50.0,
        ..Params::default()
    }
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_follow_the_model() {
    let app = App::start().await;
    let sim = Sim::start(|a| {
        a.model = Params {
            seed: 3,
            answer_prob: 0.3,
            machine_prob: 0.1,
            fail_prob: 0.2,
            busy_share: 0.5,
            answer_delay_mean: 6.0,
            answer_delay_sd: 3.0,
            talk_mean: 20.0,
            talk_cv: 0.5,
            time_scale: 40.0,
            ..Params::default()
        }
    })
    .await;
    let n = 200;
    let mut sids = Vec::new();
    for i in 0..n {
        let mut form = call_form(&app, i, "connect", true);
        if i % 2 == 0 {
            form.push(("MachineDetection", "Enable".into()));
        }
        let (status, body) = sim.create(&form).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "queued");
        sids.push(body["sid"].as_str().unwrap().to_string());
    }
    sim.wait_all_ended(Duration::from_secs(60)).await;
    app.wait_final_callbacks(n, Duration::from_secs(30)).await;
    assert!(app.bad_signatures().is_empty(), "bad signatures: {:?}", app.bad_signatures());

    let calls = sim.calls().await;
    assert_eq!(calls.len(), n);
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut frames_received = 0;
    for (i, (call, sid)) in calls.iter().zip(&sids).enumerate() {
        assert_eq!(call["sid"], sid.as_str());
        assert_eq!(call["call_id"], format!("ca_{i}"));
        assert_eq!(call["provider"], "twilio");
        let outcome = call["outcome"].as_str().unwrap().to_string();
        *outcomes.entry(outcome.clone()).or_default() += 1;
        let answered = outcome == "human" || outcome == "machine";
        let final_status = if answered { "completed" } else { outcome.as_str() };
        assert_eq!(call["status"], final_status, "{call}");

        // Callbacks: in order, numbered from 0, signed, with Twilio's parameters.
        let cbs = app.callbacks_for(sid);
        let statuses: Vec<&str> = cbs.iter().map(|c| c.get("CallStatus")).collect();
        let expected: Vec<&str> = match outcome.as_str() {
            "human" | "machine" => vec!["initiated", "ringing", "in-progress", "completed"],
            "no-answer" => vec!["initiated", "ringing", "no-answer"],
            other => vec!["initiated", other],
        };
        assert_eq!(statuses, expected, "callbacks of call {i}");
        for (seq, cb) in cbs.iter().enumerate() {
            assert_eq!(cb.get("SequenceNumber"), seq.to_string());
            assert_eq!(cb.get("AccountSid"), ACCOUNT);
            assert_eq!(cb.get("Direction"), "outbound-api");
            assert_eq!(cb.get("ApiVersion"), "2010-04-01");
            assert_eq!(cb.get("To"), format!("+1555000{i:04}"));
            assert!(cb.get("Timestamp").ends_with("+0000"));
            assert_eq!(cb.query_call_id.as_deref(), Some(format!("ca_{i}").as_str()));
        }
        let last = cbs.last().unwrap();
        assert_eq!(last.get("CallDuration"), call["duration"].as_u64().unwrap().to_string());
        let answered_by = cbs.iter().find(|c| c.get("CallStatus") == "in-progress").map(|c| c.get("AnsweredBy"));
        match (answered, i % 2 == 0) {
            (true, true) => {
                let who = if outcome == "human" { "human" } else { "machine_start" };
                assert_eq!(answered_by, Some(who));
                assert_eq!(last.get("AnsweredBy"), who);
                assert_eq!(call["answered_by"], who);
            }
            (true, false) => assert_eq!(answered_by, Some("")),
            _ => {}
        }

        // Every answer: one stream, connected / start / media / stop, as Twilio sends them.
        let streams = app.streams_for(sid);
        if answered {
            assert_eq!(streams.len(), 1, "call {i}");
            let s = &streams[0];
            // A talk shorter than setting up the stream may end before the first frame.
            let short = call["model"]["talk_s"].as_f64().unwrap() / 40.0 < 0.1;
            if s.media == 0 && short {
                assert_eq!(s.order, ["connected", "start", "stop"], "call {i}");
            } else {
                assert_eq!(s.order, ["connected", "start", "media", "stop"], "call {i}");
            }
            let start = s.start.as_ref().unwrap();
            assert_eq!(start["start"]["customParameters"]["call_id"], format!("ca_{i}"));
            assert_eq!(start["start"]["accountSid"], ACCOUNT);
            assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
            assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
            assert!(start["streamSid"].as_str().unwrap().starts_with("MZ"));
            assert_eq!(start["streamSid"], call["stream_sid"]);
            assert!((s.media > 0 || short) && s.media_well_formed, "call {i}: {} frames", s.media);
            assert_eq!(call["media_frames_sent"], s.media);
            assert_eq!(s.stop.as_ref().unwrap()["stop"]["callSid"], sid.as_str());
            assert!(call["answered_at"].as_str().is_some());
            frames_received += call["media_frames_received"].as_u64().unwrap();
        } else {
            assert!(streams.is_empty());
            assert_eq!(call["duration"], 0);
            assert!(call["answered_at"].is_null());
        }
        assert!(call["ended_at"].as_str().unwrap().ends_with('Z'));
    }
    let share = |o: &str| *outcomes.get(o).unwrap_or(&0) as f64 / n as f64;
    assert!((share("human") - 0.30).abs() < 0.10, "{outcomes:?}");
    assert!((share("machine") - 0.10).abs() < 0.07, "{outcomes:?}");
    assert!((share("busy") + share("failed") - 0.20).abs() < 0.09, "{outcomes:?}");
    assert!((share("no-answer") - 0.40).abs() < 0.10, "{outcomes:?}");
    let webhooks = app.rec.lock().unwrap().webhooks.len();
    assert_eq!(webhooks, outcomes.get("human").unwrap_or(&0) + outcomes.get("machine").unwrap_or(&0));
    assert!(frames_received > 0, "voxsim reads what the application sends");

    let stats = sim.get_json("/sim/stats").await;
    assert_eq!(stats["total"], n);
    assert_eq!(stats["live"], 0);
    let answered = outcomes.get("human").unwrap_or(&0) + outcomes.get("machine").unwrap_or(&0);
    assert_eq!(stats["by_status"]["completed"], answered);
    sim.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twiml_hangups_end_the_call_at_once_and_webhook_errors_fail_it() {
    let app = App::start().await;
    let sim = Sim::start(|a| a.model = fast(1.0, 3000.0)).await;
    let modes = ["hangup", "say_hangup", "reject", "error"];
    let mut sids = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let (status, body) = sim.create(&call_form(&app, i, mode, false)).await;
        assert_eq!(status, StatusCode::CREATED);
        sids.push(body["sid"].as_str().unwrap().to_string());
    }
    // Talk time is 60 s real: only the TwiML can end these calls this soon.
    sim.wait_all_ended(Duration::from_secs(5)).await;
    app.wait_final_callbacks(4, Duration::from_secs(5)).await;
    let calls = sim.calls().await;
    for (i, call) in calls.iter().enumerate() {
        let cbs = app.callbacks_for(&sids[i]);
        assert_eq!(cbs.len(), 1, "only 'completed' was asked for");
        assert_eq!(cbs[0].get("SequenceNumber"), "0");
        if modes[i] == "error" {
            assert_eq!(call["status"], "failed");
            assert!(call["end_reason"].as_str().unwrap().contains("500"), "{call}");
            assert_eq!(cbs[0].get("CallStatus"), "failed");
        } else {
            assert_eq!(call["status"], "completed");
            assert_eq!(call["duration"], 0);
            let want = if modes[i] == "reject" { "<Reject/>" } else { "<Hangup/>" };
            assert_eq!(call["end_reason"], want);
            assert_eq!((cbs[0].get("CallStatus"), cbs[0].get("CallDuration")), ("completed", "0"));
        }
        assert_eq!(call["media_frames_sent"], 0);
        assert!(app.streams_for(&sids[i]).is_empty());
    }
    assert_eq!(app.rec.lock().unwrap().webhooks.len(), 4);
    assert!(app.bad_signatures().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_callbacks_are_retried_in_order() {
    let app = App::start().await;
    let sim = Sim::start(|a| a.model = fast(0.0, 10.0)).await;
    let mut sids = Vec::new();
    for i in 0..3 {
        let mut form = call_form(&app, i, "hangup", true);
        form[3].1 = format!("{}&fail_first=1", app.status(&format!("ca_{i}")));
        sids.push(sim.create(&form).await.1["sid"].as_str().unwrap().to_string());
    }
    app.wait_final_callbacks(3, Duration::from_secs(10)).await;
    for sid in &sids {
        let cbs = app.callbacks_for(sid);
        let got: Vec<(&str, &str)> = cbs.iter().map(|c| (c.get("SequenceNumber"), c.get("CallStatus"))).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], ("0", "initiated"));
        assert!(got[1] == ("1", "busy") || got[1] == ("1", "failed"), "{got:?}");
    }
    assert_eq!(app.rec.lock().unwrap().refused.len(), 6, "each callback was refused once, then sent again");
}

async fn update(sim: &Sim, sid: &str, status: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(sim.call_url(sid))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&[("Status", status)])
        .send()
        .await
        .unwrap();
    (StatusCode::from_u16(resp.status().as_u16()).unwrap(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_through_the_api_stops_the_stream() {
    let app = App::start().await;
    let sim = Sim::start(|a| a.model = fast(1.0, 3000.0)).await;
    let (_, body) = sim.create(&call_form(&app, 1, "connect", true)).await;
    let sid = body["sid"].as_str().unwrap().to_string();
    wait_for("media", Duration::from_secs(5), || app.streams_for(&sid).first().is_some_and(|s| s.media >= 10)).await;

    // A cancel does not touch an answered call.
    let (status, body) = update(&sim, &sid, "canceled").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("in-progress")));

    let (status, body) = update(&sim, &sid, "completed").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "completed");
    assert!(body["duration"].as_str().is_some(), "{body}");
    assert!(body["end_time"].as_str().is_some());
    wait_for("the stream to close", Duration::from_secs(3), || app.streams_for(&sid)[0].ended).await;
    let stream = &app.streams_for(&sid)[0];
    assert_eq!(stream.order, ["connected", "start", "media", "stop"]);
    app.wait_final_callbacks(1, Duration::from_secs(3)).await;
    let cbs = app.callbacks_for(&sid);
    let last = cbs.last().unwrap();
    assert_eq!(last.get("CallStatus"), "completed");
    assert_eq!(last.get("CallDuration"), body["duration"].as_str().unwrap());
    let call = &sim.calls().await[0];
    assert_eq!(call["end_reason"], "hung up through the API");

    // Hanging up an ended call changes nothing.
    let (status, again) = update(&sim, &sid, "completed").await;
    assert_eq!((status, &again["status"]), (StatusCode::OK, &body["status"]));

    // Shutdown hangs up what is live: the stream gets its stop, the final callback goes out.
    let (_, body) = sim.create(&call_form(&app, 2, "connect", false)).await;
    let sid2 = body["sid"].as_str().unwrap().to_string();
    wait_for("media", Duration::from_secs(5), || app.streams_for(&sid2).first().is_some_and(|s| s.media >= 5)).await;
    sim.stop().await.unwrap();
    let stream = &app.streams_for(&sid2)[0];
    assert_eq!(stream.order, ["connected", "start", "media", "stop"]);
    assert_eq!(app.callbacks_for(&sid2).last().unwrap().get("CallStatus"), "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_call_can_be_canceled() {
    let app = App::start().await;
    let sim = Sim::start(|a| {
        a.model = Params {
            answer_prob: 1.0,
            fail_prob: 0.0,
            answer_delay_mean: 20.0,
            answer_delay_sd: 0.1,
            ring_delay: 0.1,
            ..Params::default()
        }
    })
    .await;
    let (_, body) = sim.create(&call_form(&app, 1, "connect", true)).await;
    let sid = body["sid"].as_str().unwrap().to_string();
    wait_for("ringing", Duration::from_secs(3), || app.callbacks_for(&sid).len() >= 2).await;
    let fetched = sim.get_json(&format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json")).await;
    assert_eq!(fetched["status"], "ringing");
    let (status, body) = update(&sim, &sid, "canceled").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("canceled")));
    app.wait_final_callbacks(1, Duration::from_secs(3)).await;
    let statuses: Vec<String> = app.callbacks_for(&sid).iter().map(|c| c.get("CallStatus").to_string()).collect();
    assert_eq!(statuses, ["initiated", "ringing", "canceled"]);
    assert!(app.rec.lock().unwrap().webhooks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_closing_the_stream_completes_the_call() {
    let app = App::start().await;
    let sim = Sim::start(|a| a.model = fast(1.0, 3000.0)).await;
    let mut form = call_form(&app, 1, "connect", false);
    form[2].1 = format!("{}&close_after_ms=300", app.voice("connect", "ca_1"));
    let (_, body) = sim.create(&form).await;
    let sid = body["sid"].as_str().unwrap().to_string();
    sim.wait_all_ended(Duration::from_secs(5)).await;
    let call = &sim.calls().await[0];
    assert_eq!(call["status"], "completed");
    assert!(call["end_reason"].as_str().unwrap().contains("application closed"), "{call}");
    let frames = call["media_frames_sent"].as_u64().unwrap();
    assert!((5..=40).contains(&frames), "about 300 ms of frames at 20 ms, not {frames}");
    let stream = &app.streams_for(&sid)[0];
    assert_eq!(stream.order, ["connected", "start", "media"], "no stop after the application closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_twilios_errors() {
    let app = App::start().await;
    let sim = Sim::start(|a| a.model = fast(1.0, 3000.0)).await;
    let client = reqwest::Client::new();
    let mut form = call_form(&app, 1, "hangup", false);

    form[0].1 = "12345".into();
    let (status, body) = sim.create(&form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 21211);
    assert_eq!(body["status"], 400);
    assert_eq!(body["message"], "The 'To' number 12345 is not a valid phone number.");
    assert_eq!(body["more_info"], "https://www.twilio.com/docs/errors/21211");

    form[0].1 = "+15550001111".into();
    form[1].1 = "nope".into();
    assert_eq!(sim.create(&form).await.1["code"], 21212);
    form[1].1 = "+15559990000".into();
    let no_url: Vec<_> = form.iter().filter(|(k, _)| *k != "Url").cloned().collect();
    let (status, body) = sim.create(&no_url).await;
    assert_eq!((status, &body["code"]), (StatusCode::BAD_REQUEST, &Value::from(21205)));

    // Auth: wrong token, none, another account in the path.
    let resp = client.post(sim.calls_url()).basic_auth(ACCOUNT, Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 20003);
    let resp = client.post(sim.calls_url()).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let other = format!("{}/2010-04-01/Accounts/ACother/Calls.json", sim.url);
    let resp = client.post(other).basic_auth(ACCOUNT, Some(TOKEN)).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 20404);
    let resp = client.get(format!("{}/sim/calls", sim.url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(sim.calls().await.is_empty(), "no call was created by a bad request");

    // A good one, and its resource.
    let (status, created) = sim.create(&form).await;
    assert_eq!(status, StatusCode::CREATED);
    let sid = created["sid"].as_str().unwrap();
    assert!(sid.len() == 34 && sid.starts_with("CA") && sid[2..].chars().all(|c| c.is_ascii_hexdigit()), "{sid}");
    for field in ["account_sid", "to", "from", "status", "date_created", "uri"] {
        assert!(created[field].is_string(), "{field} in {created}");
    }
    assert_eq!(created["uri"], format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"));
    sim.wait_all_ended(Duration::from_secs(5)).await;
    let fetched = sim.get_json(&format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json")).await;
    assert_eq!((fetched["status"].as_str(), fetched["duration"].as_str()), (Some("completed"), Some("0")));
    assert!(fetched["answered_by"].is_null(), "no machine detection asked for");

    let missing = client
        .get(format!("{}/2010-04-01/Accounts/{ACCOUNT}/Calls/CA0.json", sim.url))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (status, body) = update(&sim, sid, "ringing").await;
    assert_eq!((status, &body["code"]), (StatusCode::BAD_REQUEST, &Value::from(21218)));
}

async fn set_faults(sim: &Sim, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/sim/faults", sim.url))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_answer_the_next_creates() {
    let app = App::start().await;
    let sim = Sim::start(|a| a.model = fast(1.0, 3000.0)).await;
    let form = call_form(&app, 1, "hangup", false);
    let armed = set_faults(&sim, serde_json::json!({"create_status": 500, "create_delay_ms": 0, "count": 2})).await;
    assert_eq!(armed["count"], 2);
    for _ in 0..2 {
        let (status, body) = sim.create(&form).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!((body["code"].as_u64(), body["status"].as_u64()), (Some(20500), Some(500)));
    }
    assert_eq!(sim.create(&form).await.0, StatusCode::CREATED);

    set_faults(&sim, serde_json::json!({"create_delay_ms": 400, "count": 1})).await;
    let t = Instant::now();
    assert_eq!(sim.create(&form).await.0, StatusCode::CREATED);
    assert!(t.elapsed() >= Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(sim.create(&form).await.0, StatusCode::CREATED);
    assert!(t.elapsed() < Duration::from_millis(400));

    set_faults(&sim, serde_json::json!({"create_status": 503, "count": 5})).await;
    let cleared = set_faults(&sim, serde_json::json!({"create_status": 503, "count": 0})).await;
    assert_eq!(cleared["count"], 0);
    assert_eq!(sim.create(&form).await.0, StatusCode::CREATED);
    assert_eq!(sim.calls().await.len(), 4);
}

async fn outcomes(seed: u64, app: &App) -> Vec<(String, String)> {
    let sim = Sim::start(|a| a.model = Params { seed, time_scale: 1000.0, ..Params::default() }).await;
    for i in 0..40 {
        assert_eq!(sim.create(&call_form(app, i, "hangup", false)).await.0, StatusCode::CREATED);
    }
    sim.wait_all_ended(Duration::from_secs(10)).await;
    let calls = sim.calls().await;
    sim.stop().await.unwrap();
    calls.iter().map(|c| (c["outcome"].as_str().unwrap().into(), c["status"].as_str().unwrap().into())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_plays_the_same_run() {
    let app = App::start().await;
    let a = outcomes(7, &app).await;
    let b = outcomes(7, &app).await;
    let c = outcomes(8, &app).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_voxsim"));
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--time-scale",
        "50",
        "--answer-prob",
        "1",
        "--fail-prob",
        "0",
        "--log-format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    let mut p =
        vox_testkit::ServerProcess::start("voxsim", bin, &args, &[("VOXSIM_AUTH_TOKEN", TOKEN.into())], dir.path())
            .await
            .unwrap();
    let app = App::start().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json", p.url()))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&call_form(&app, 1, "connect", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let sid = resp.json::<Value>().await.unwrap()["sid"].as_str().unwrap().to_string();
    wait_for("media", Duration::from_secs(10), || app.streams_for(&sid).first().is_some_and(|s| s.media >= 3)).await;
    let status = p.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}\n{}", p.logs());
    assert_eq!(app.streams_for(&sid)[0].order, ["connected", "start", "media", "stop"]);
    assert!(p.logs().contains("\"voxsim listening\""), "json logs: {}", p.logs());

    // Parameters the model cannot use stop it at start, naming the flag.
    let bad = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--auth-token", "t", "--answer-prob", "0.9", "--fail-prob", "0.5"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must not exceed 1"), "{bad:?}");
}
