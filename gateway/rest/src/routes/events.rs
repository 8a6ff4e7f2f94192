//! The activity feed for integrations (CRMs): a page at a time (`GET /api/v1/events`) or
//! live over a WebSocket (`GET /api/v1/events/stream`), with commands on the same socket.
//!
//! Both read voxbridge's `EventService`, so every voxgate serves the same feed and a
//! client may reconnect to any of them with `after=<the last id it saw>`: it gets every
//! later event exactly once, in order, then the live feed.
//!
//! The socket (text frames, one JSON object each):
//! - server → client: events (`{"id": 42, "type": "call.answered", …}`, see [`Event`]);
//!   `{"type": "gap", …}` when events after `after` were pruned; command answers
//!   `{"type": "result", "id": <the command's id>, "command": …, "result": …}` or
//!   `{"type": "error", "id": …, "error": {"code", "message"}}`; and a last
//!   `{"type": "error", "error": …}` before the server closes the socket (credential
//!   revoked: close code 1008; fell behind: 4008; voxbridge gone: 1011).
//! - client → server: commands, `{"id": "c1", "command": "cancel_call", "call_id": "…"}`;
//!   see [`Command`]. Each is checked by voxbridge against the key's role and campaign.
//!
//! A client that does not read its socket is not buffered for: when one message cannot
//! be written for [`SEND_TIMEOUT`], the socket is closed with code 4008 ("fell behind;
//! reconnect with after=<id>"), and it resumes from the feed, which keeps every event.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vox_domain::ErrorCode;
use vox_domain::campaign::{MAX_IMPORT_BATCH, echo};
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::call::{Call, CallState};
use crate::dto::campaign::{Campaign, NumbersAdded};
use crate::dto::event::{Event, EventFilter, EventGap, EventPage};
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::{ApiQuery, Bearer};

/// How long one message may take to reach a client before it counts as fallen behind.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle socket is pinged, so proxies keep it open and dead peers show.
const PING_EVERY: Duration = Duration::from_secs(30);
/// Commands waiting to run on one socket; more are refused with "busy".
const COMMAND_QUEUE: usize = 16;
/// Numbers one `add_numbers` command may carry (larger lists: the CSV upload).
pub const MAX_COMMAND_NUMBERS: usize = MAX_IMPORT_BATCH;

/// A page of events after `after`, oldest first.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "list_events", tag = "events", params(EventFilter),
    responses((status = 200, description = "one page of events", body = EventPage), ApiErrors))]
pub async fn list(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(f): ApiQuery<EventFilter>,
) -> ApiResult<Json<EventPage>> {
    let req = pb::ListEventsRequest {
        after_id: f.after,
        campaign_id: f.campaign_id.clone().unwrap_or_default(),
        types: f.types(),
        page_size: f.page_size.unwrap_or(0),
    };
    let r = b.unary(b.events().list_events(b.request(&auth, req))).await?;
    Ok(Json(EventPage {
        events: r.events.into_iter().map(Event::try_from).collect::<ApiResult<_>>()?,
        next_after: r.next_after_id,
        gap: r.gap.map(EventGap::from),
    }))
}

/// The live feed and commands over a WebSocket (see the module docs for the messages).
/// Authenticate with `Authorization: Bearer <API key or access token>` on the upgrade
/// request; a bad credential or filter is refused before the upgrade, with the API's
/// JSON error.
#[utoipa::path(get, path = "/api/v1/events/stream", operation_id = "stream_events", tag = "events", params(EventFilter),
    responses((status = 101, description = "a WebSocket carrying events and command answers"), ApiErrors))]
pub async fn stream(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(f): ApiQuery<EventFilter>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::invalid(
                "this endpoint is a WebSocket: connect with `Upgrade: websocket` (or page with GET /api/v1/events)",
            )
            .into_response();
        }
    };
    let req = pb::WatchEventsRequest {
        after_id: f.after,
        campaign_id: f.campaign_id.clone().unwrap_or_default(),
        types: f.types(),
    };
    let watch = match b.within_deadline(b.events().watch_events(b.stream_request(&auth, req))).await {
        Ok(w) => w.into_inner(),
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| Session { b, auth, last_id: f.after }.run(socket, watch))
}

/// A command from the client. `id` (any string) comes back on its answer.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    command: Command,
}

/// What a client may ask on the socket; each runs as the socket's credential.
#[derive(Debug, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Numbers as pending calls (operator); rows are 1-based positions in `numbers`,
    /// rejected rows come back as the CSV upload reports them.
    AddNumbers {
        campaign_id: String,
        numbers: Vec<String>,
    },
    /// Cancels a call that has not ended (operator).
    CancelCall {
        call_id: String,
        #[serde(default)]
        reason: String,
    },
    /// Numbers the campaign (or with no campaign_id, every campaign) never dials.
    AddDoNotCall {
        #[serde(default)]
        campaign_id: String,
        numbers: Vec<String>,
    },
    RemoveDoNotCall {
        #[serde(default)]
        campaign_id: String,
        numbers: Vec<String>,
    },
    PauseCampaign {
        campaign_id: String,
    },
    /// Starts a paused (or draft) campaign.
    ResumeCampaign {
        campaign_id: String,
    },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::AddNumbers { .. } => "add_numbers",
            Command::CancelCall { .. } => "cancel_call",
            Command::AddDoNotCall { .. } => "add_do_not_call",
            Command::RemoveDoNotCall { .. } => "remove_do_not_call",
            Command::PauseCampaign { .. } => "pause_campaign",
            Command::ResumeCampaign { .. } => "resume_campaign",
        }
    }

    /// Runs the command against voxbridge as `auth`.
    async fn run(self, b: &Bridge, auth: &Bearer) -> ApiResult<Value> {
        let json =
            |v: Result<Value, serde_json::Error>| v.map_err(|e| ApiError::internal(format!("encode answer: {e}")));
        match self {
            Command::AddNumbers { campaign_id, numbers } => {
                if numbers.len() > MAX_COMMAND_NUMBERS {
                    return Err(ApiError::invalid(format!(
                        "numbers: {} numbers; at most {MAX_COMMAND_NUMBERS} per command (upload larger lists as CSV \
                         to POST /api/v1/campaigns/{{id}}/numbers); nothing was added",
                        numbers.len()
                    )));
                }
                let req = pb::AddNumbersRequest { campaign_id, numbers: numbers.iter().map(|n| echo(n)).collect() };
                let r = b.unary(b.campaigns().add_numbers(b.request(auth, req))).await?;
                json(serde_json::to_value(NumbersAdded::from(r)))
            }
            Command::CancelCall { call_id, reason } => {
                let req = pb::TransitionCallRequest {
                    call_id,
                    to_state: CallState::Canceled.to_proto(),
                    reason,
                    ..Default::default()
                };
                let call = Call::try_from(b.unary(b.calls().transition_call(b.request(auth, req))).await?)?;
                json(serde_json::to_value(call))
            }
            Command::AddDoNotCall { campaign_id, numbers } => {
                let req = pb::AddDoNotCallRequest { campaign_id, numbers };
                let r = b.unary(b.do_not_call().add_do_not_call(b.request(auth, req))).await?;
                Ok(json!({ "added": r.added }))
            }
            Command::RemoveDoNotCall { campaign_id, numbers } => {
                let req = pb::RemoveDoNotCallRequest { campaign_id, numbers };
                let r = b.unary(b.do_not_call().remove_do_not_call(b.request(auth, req))).await?;
                Ok(json!({ "removed": r.removed }))
            }
            Command::PauseCampaign { campaign_id } => {
                let req = pb::CampaignActionRequest { id: campaign_id };
                let c = Campaign::try_from(b.unary(b.campaigns().pause_campaign(b.request(auth, req))).await?)?;
                json(serde_json::to_value(c))
            }
            Command::ResumeCampaign { campaign_id } => {
                let req = pb::CampaignActionRequest { id: campaign_id };
                let c = Campaign::try_from(b.unary(b.campaigns().start_campaign(b.request(auth, req))).await?)?;
                json(serde_json::to_value(c))
            }
        }
    }
}

fn error_json(id: Option<Value>, e: &ApiError) -> Value {
    let body = serde_json::to_value(e.body()).unwrap_or(Value::Null);
    json!({ "type": "error", "id": id, "error": body["error"] })
}

/// How a socket ends, as the client is told.
struct Ending {
    code: u16,
    reason: String,
    error: Option<ApiError>,
}

struct Session {
    b: Bridge,
    auth: Bearer,
    /// The id of the last event sent, which a reconnect passes as `after`.
    last_id: u64,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket, mut watch: tonic::Streaming<pb::WatchEventsResponse>) {
        let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel::<Envelope>(COMMAND_QUEUE);
        let (answer_tx, mut answers) = tokio::sync::mpsc::channel::<Value>(COMMAND_QUEUE);
        // Commands run one at a time beside the feed, so a slow upload holds no event back.
        let runner = {
            let (b, auth) = (self.b.clone(), self.auth.clone());
            tokio::spawn(async move {
                while let Some(env) = cmd_rx.recv().await {
                    let name = env.command.name();
                    let answer = match env.command.run(&b, &auth).await {
                        Ok(result) => json!({ "type": "result", "id": env.id, "command": name, "result": result }),
                        Err(e) => error_json(env.id, &e),
                    };
                    if answer_tx.send(answer).await.is_err() {
                        return;
                    }
                }
            })
        };
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let ending = loop {
            let out: Value = tokio::select! {
                item = watch.message() => match item {
                    Ok(Some(item)) => match self.feed_item(item) {
                        Ok(Some(v)) => v,
                        Ok(None) => continue,
                        Err(e) => break Ending { code: 1011, reason: "internal error".into(), error: Some(e) },
                    },
                    Ok(None) => break self.lost("voxbridge ended the event stream"),
                    Err(status) => {
                        let e = ApiError::from(status);
                        let code = match e.code() {
                            "unauthenticated" | "permission_denied" => 1008,
                            _ => 1011,
                        };
                        break Ending { code, reason: e.code().to_string(), error: Some(e) };
                    }
                },
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<Envelope>(&text) {
                        Ok(env) => {
                            let id = env.id.clone();
                            match cmd_tx.try_send(env) {
                                Ok(()) => continue,
                                Err(_) => error_json(id, &ApiError::new(ErrorCode::ResourceExhausted, format!(
                                    "{COMMAND_QUEUE} commands are already waiting on this socket; wait for their answers"))),
                            }
                        }
                        Err(e) => {
                            let id = serde_json::from_str::<Value>(&text).ok().and_then(|v| v.get("id").cloned());
                            error_json(id, &ApiError::invalid(format!(
                                "not a command: {e}; send {{\"id\": \"…\", \"command\": \"cancel_call\", \"call_id\": \"…\"}}")))
                        }
                    },
                    Some(Ok(Message::Binary(_))) => error_json(None, &ApiError::invalid("commands are JSON text frames, not binary")),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break Ending { code: 1000, reason: String::new(), error: None },
                },
                answer = answers.recv() => match answer {
                    Some(a) => a,
                    None => continue,
                },
                _ = ping.tick() => {
                    if self.send(&mut socket, Message::Ping(Default::default())).await.is_err() {
                        break self.fell_behind();
                    }
                    continue;
                }
            };
            if self.send(&mut socket, Message::Text(out.to_string().into())).await.is_err() {
                break self.fell_behind();
            }
        };
        runner.abort();
        if let Some(e) = &ending.error {
            tracing::debug!(code = ending.code, error = %e.message(), "event stream closing");
            let _ = self.send(&mut socket, Message::Text(error_json(None, e).to_string().into())).await;
        }
        let frame = CloseFrame { code: ending.code, reason: ending.reason.into() };
        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
    }

    /// An item of voxbridge's stream as the client gets it (events it may not read do not
    /// reach here: voxbridge filters them).
    fn feed_item(&mut self, item: pb::WatchEventsResponse) -> ApiResult<Option<Value>> {
        let encode =
            |v: Result<Value, serde_json::Error>| v.map_err(|e| ApiError::internal(format!("encode event: {e}")));
        Ok(match item.item {
            Some(pb::watch_events_response::Item::Event(e)) => {
                let e = Event::try_from(e)?;
                self.last_id = e.id;
                Some(encode(serde_json::to_value(e))?)
            }
            Some(pb::watch_events_response::Item::Gap(g)) => {
                let mut v = encode(serde_json::to_value(EventGap::from(g)))?;
                v["type"] = json!("gap");
                Some(v)
            }
            None => None,
        })
    }

    /// Sends one message, or gives up after [`SEND_TIMEOUT`].
    async fn send(&self, socket: &mut WebSocket, msg: Message) -> Result<(), ()> {
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    fn fell_behind(&self) -> Ending {
        Ending { code: 4008, reason: format!("fell behind; reconnect with after={}", self.last_id), error: None }
    }

    fn lost(&self, why: &str) -> Ending {
        let e = ApiError::unreachable(format!("{why}; reconnect with after={}", self.last_id));
        Ending { code: 1011, reason: format!("reconnect with after={}", self.last_id), error: Some(e) }
    }
}
