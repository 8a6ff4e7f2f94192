//! The abandon ledger, the compliance report (CSV) and do-not-call lists through the
//! console REST API, in front of a real voxbridge. Calls are moved as the dialler moves
//! them (a dialler node's leadership, lease and fenced transitions), on the wall clock;
//! the ledger over simulated days is tested in the store suite and voxbridge's own tests.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

mod common;

use common::{error_message, read};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;

fn authed<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

const WITH_MESSAGE: &str = "no_free_slot: no worker within 2000 ms";

/// Places every pending call of `campaign_id` as a dialler would and ends each one by
/// `ends` in turn: (state after ringing, reason). Returns the call ids in lease order.
async fn dial_all(api: &common::Api, campaign_id: &str, ends: &[&[(pb::CallState, &str)]]) -> Vec<String> {
    let node = api
        .admin(
            Method::POST,
            "/api/v1/nodes",
            Some(json!({"kind": "dialler", "endpoint": "http://127.0.0.1:8090"})),
            StatusCode::CREATED,
        )
        .await;
    let (node_id, secret) = (node["node"]["id"].as_str().unwrap(), node["api_secret"].as_str().unwrap());
    let channel = Channel::from_shared(api.bridge.url()).unwrap().connect().await.unwrap();
    let term = pb::leadership_service_client::LeadershipServiceClient::new(channel.clone())
        .acquire_leadership(authed(secret, pb::AcquireLeadershipRequest { holder_id: node_id.into(), ttl_seconds: 60 }))
        .await
        .unwrap()
        .into_inner()
        .term;
    let mut calls = pb::call_service_client::CallServiceClient::new(channel);
    let lease = pb::LeaseCallsRequest {
        campaign_id: campaign_id.into(),
        max: 100,
        owner: node_id.into(),
        fencing_term: term,
        lease_ttl_seconds: 60,
    };
    let leased = calls.lease_calls(authed(secret, lease)).await.unwrap().into_inner().calls;
    assert_eq!(leased.len(), ends.len());
    for (call, end) in leased.iter().zip(ends) {
        let token = call.lease.as_ref().unwrap().token.clone();
        let path = [(pb::CallState::Dialing, "dialing"), (pb::CallState::Ringing, "ringing")];
        for (state, reason) in path.iter().chain(end.iter()) {
            let req = pb::TransitionCallRequest {
                call_id: call.id.clone(),
                to_state: *state as i32,
                fencing_term: term,
                lease_token: token.clone(),
                reason: reason.to_string(),
                ..Default::default()
            };
            calls.transition_call(authed(secret, req)).await.unwrap();
        }
    }
    leased.into_iter().map(|c| c.id).collect()
}

/// Splits RFC 4180 CSV without quoted line breaks into rows of fields.
fn rows(csv: &str) -> Vec<Vec<String>> {
    assert!(csv.ends_with("\r\n"), "rows end with CRLF: {csv:?}");
    csv.trim_end_matches("\r\n")
        .split("\r\n")
        .map(|line| {
            let mut fields = vec![String::new()];
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', false) => quoted = true,
                    ('"', true) if chars.peek() == Some(&'"') => {
                        chars.next();
                        fields.last_mut().unwrap().push('"');
                    }
                    ('"', true) => quoted = false,
                    (',', false) => fields.push(String::new()),
                    (c, _) => fields.last_mut().unwrap().push(c),
                }
            }
            fields
        })
        .collect()
}

#[tokio::test]
async fn the_ledger_and_the_compliance_report_match_the_calls() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap().to_string();
    assert_eq!(campaign["spec"]["compliance"], json!({"regime": "fcc", "min_ring_seconds": 15}), "FCC by default");

    // The regime is a setting; a ring floor under 15 s is refused, naming the field.
    let mut spec = campaign["spec"].clone();
    spec["compliance"] = json!({"regime": "ofcom", "min_ring_seconds": 10});
    let path = format!("/api/v1/campaigns/{id}");
    let refused = api.admin(Method::PUT, &path, Some(spec.clone()), StatusCode::BAD_REQUEST).await;
    assert!(error_message(&refused, "invalid_argument").contains("spec.compliance.min_ring_seconds"), "{refused}");
    spec["compliance"] = json!({"regime": "ofcom"});
    let updated = api.admin(Method::PUT, &path, Some(spec), StatusCode::OK).await;
    assert_eq!(updated["spec"]["compliance"], json!({"regime": "ofcom", "min_ring_seconds": 15}));

    let numbers: Vec<String> = (0..6).map(|i| format!("+1415555020{i}")).collect();
    api.admin(Method::POST, &format!("{path}/numbers"), Some(json!({"numbers": numbers})), StatusCode::OK).await;
    api.admin(Method::POST, &format!("{path}/start"), None, StatusCode::OK).await;
    use pb::CallState as S;
    let talked: &[(S, &str)] = &[(S::Answered, "answered"), (S::Completed, "hangup_before_attach")];
    let abandoned: &[(S, &str)] = &[(S::Answered, "answered"), (S::Abandoned, WITH_MESSAGE)];
    let silent: &[(S, &str)] = &[(S::Answered, "answered"), (S::Abandoned, "no_free_slot")];
    let machine: &[(S, &str)] = &[(S::Machine, "answering_machine")];
    let ends = [talked, abandoned, machine, talked, silent, talked];
    dial_all(&api, &id, &ends).await;

    // The ledger equals a recount of the calls the API lists.
    let ledger = api.admin(Method::GET, &format!("{path}/ledger"), None, StatusCode::OK).await;
    let calls =
        api.admin(Method::GET, &format!("/api/v1/calls?campaign_id={id}&limit=1000"), None, StatusCode::OK).await;
    let calls = calls["calls"].as_array().unwrap();
    let live = calls.iter().filter(|c| !c["answered_at"].is_null() && c["state"] != "machine").count();
    let abandons: Vec<&Value> = calls.iter().filter(|c| c["state"] == "abandoned").collect();
    assert_eq!((live, abandons.len()), (5, 2));
    for period in ["last_24_hours", "last_30_days", "regulated"] {
        assert_eq!(ledger[period]["live_answers"], live, "{period}: {ledger}");
        assert_eq!(ledger[period]["abandons"], abandons.len(), "{period}: {ledger}");
        assert_eq!(ledger[period]["machine_answers"], 1, "{period}: {ledger}");
        assert_eq!(ledger[period]["abandon_rate"], 0.4, "{period}: {ledger}");
    }
    assert_eq!(ledger["regime"], "ofcom");
    assert_eq!(ledger["limit"], 0.03);
    assert_eq!(ledger["within_limit"], false);

    // The report lists every abandoned call, with the message played (or that none was).
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let report =
        api.req(Method::GET, &format!("{path}/compliance.csv?from={from}&to={to}"), &api.admin).send().await.unwrap();
    assert_eq!(report.status(), StatusCode::OK);
    assert!(report.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert!(report.headers()[CONTENT_DISPOSITION].to_str().unwrap().contains(&format!("compliance-{id}-")));
    assert_eq!(report.headers()["x-vox-abandons"], "2");
    let table = rows(&report.text().await.unwrap());
    assert_eq!(table[0][..3], ["call_id", "to_number", "from_number"]);
    let header = &table[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(table.len(), 1 + abandons.len(), "{table:?}");
    let mut listed: Vec<&str> = table[1..].iter().map(|r| r[col("call_id")].as_str()).collect();
    let mut expected: Vec<&str> = abandons.iter().map(|c| c["id"].as_str().unwrap()).collect();
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    for row in &table[1..] {
        assert_eq!(row.len(), header.len(), "{row:?}");
        let message = &row[col("message_played")];
        if row[col("end_reason")] == WITH_MESSAGE {
            assert_eq!(message, vox_domain::campaign::ABANDON_MESSAGE, "quoted, with its comma");
        } else {
            assert!(message.starts_with("none:"), "{row:?}");
        }
        assert!(row[col("ring_seconds")].parse::<f64>().unwrap() >= 0.0);
        assert!(!row[col("answered_at")].is_empty() && !row[col("dialed_at")].is_empty());
    }

    // A period that ends before it starts is named; a missing one too.
    let r = api.req(Method::GET, &format!("{path}/compliance.csv?from={to}&to={from}"), &api.admin).send().await;
    let (status, body) = read(r.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "invalid_argument").starts_with("to:"), "{body}");
    let r = api.req(Method::GET, &format!("{path}/compliance.csv"), &api.admin).send().await;
    let (status, body) = read(r.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "invalid_argument").contains("from"), "{body}");

    // Both routes are in the OpenAPI document.
    let doc = api.admin(Method::GET, "/api/v1/openapi.json", None, StatusCode::OK).await;
    for p in ["/api/v1/campaigns/{id}/ledger", "/api/v1/campaigns/{id}/compliance.csv", "/api/v1/do-not-call"] {
        assert!(doc["paths"].get(p).is_some(), "{p} is documented");
    }
}

#[tokio::test]
async fn do_not_call_lists_take_json_and_csv_and_keep_scoped_keys_to_their_campaign() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    let list = format!("/api/v1/do-not-call?campaign_id={id}");

    // CSV: rows as a spreadsheet shows them; bad rows and repeats are named by row.
    let csv = "number\r\n+1 415 555 0301\r\nnot a number\r\n+14155550302\r\n+14155550301\r\n";
    let r = api.req(Method::POST, &list, &api.admin).header(CONTENT_TYPE, "text/csv").body(csv).send().await;
    let (status, added) = read(r.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!((added["added"].as_u64(), added["rejected_count"].as_u64()), (Some(2), Some(2)));
    assert_eq!(
        (added["rejected"][0]["row"].as_u64(), added["rejected"][0]["input"].as_str()),
        (Some(3), Some("not a number"))
    );
    assert_eq!(added["rejected"][1]["reason"], "duplicate of row 2");
    // JSON, with a number already listed.
    let added = api
        .admin(Method::POST, &list, Some(json!({"numbers": ["+14155550302", "+14155550303"]})), StatusCode::OK)
        .await;
    assert_eq!((added["added"].as_u64(), added["already_listed"].as_u64()), (Some(1), Some(1)));
    // The global list is another list.
    let global = api
        .admin(Method::POST, "/api/v1/do-not-call", Some(json!({"numbers": ["+14155550399"]})), StatusCode::OK)
        .await;
    assert_eq!(global["added"], 1);

    let page = api.admin(Method::GET, &format!("{list}&limit=2"), None, StatusCode::OK).await;
    let numbers: Vec<&str> =
        page["entries"].as_array().unwrap().iter().map(|e| e["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["+14155550301", "+14155550302"]);
    assert_eq!(page["entries"][0]["campaign_id"], id);
    assert_eq!(page["next_after"], "+14155550302");
    let rest = api.admin(Method::GET, &format!("{list}&limit=2&after=%2B14155550302"), None, StatusCode::OK).await;
    assert_eq!(rest["entries"][0]["number"], "+14155550303");
    assert!(rest["next_after"].is_null());
    let global = api.admin(Method::GET, "/api/v1/do-not-call", None, StatusCode::OK).await;
    assert_eq!(global["entries"][0]["campaign_id"], Value::Null);

    // A key of this campaign may add to its list only; an operator may not remove.
    let key = api
        .admin(
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "crm", "role": "operator", "campaign_id": id})),
            StatusCode::CREATED,
        )
        .await;
    let key = key["secret"].as_str().unwrap();
    let r = api.req(Method::POST, &list, key).json(&json!({"numbers": ["+14155550304"]})).send().await;
    assert_eq!(read(r.unwrap()).await.0, StatusCode::OK);
    let r = api.req(Method::POST, "/api/v1/do-not-call", key).header(CONTENT_TYPE, "text/csv").body("+14155550305");
    let (status, body) = read(r.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the global list is not the key's: {body}");
    let region = api.region("eu-west-1").await;
    let spec = json!({"name": "other", "region_id": region["id"], "caller_id": "+14155550100",
        "window": {"time_zone": "UTC", "start": "00:00", "end": "24:00"}});
    let other = api.admin(Method::POST, "/api/v1/campaigns", Some(spec), StatusCode::CREATED).await;
    let r = api.req(Method::GET, &format!("/api/v1/do-not-call?campaign_id={}", other["id"].as_str().unwrap()), key);
    assert_eq!(read(r.send().await.unwrap()).await.0, StatusCode::NOT_FOUND);
    let remove = format!("/api/v1/do-not-call/remove?campaign_id={id}");
    let r = api.req(Method::POST, &remove, key).json(&json!({"numbers": ["+14155550304"]})).send().await;
    assert_eq!(read(r.unwrap()).await.0, StatusCode::FORBIDDEN);
    let removed = api
        .admin(Method::POST, &remove, Some(json!({"numbers": ["+14155550304", "+14155550399"]})), StatusCode::OK)
        .await;
    assert_eq!(removed["removed"], 1, "only this list's number");
}
