//! Connects one carrier media stream to one worker, for the whole call.
//!
//! The slot was claimed before the WebSocket was accepted. After the carrier's `start`
//! names the call, the gateway checks the call is answered, reserves the worker (moving
//! to the next slot on RESOURCE_EXHAUSTED; an answered outbound call's stream instead
//! takes over the reservation its `slot` parameter names, [`crate::reservation`]), moves
//! the call to `attaching`, opens the worker's media stream and relays both ways. Only
//! one stream can move a call from `answered` to `attaching` (voxbridge makes the move
//! atomic), so a second stream for the same call, on any gateway, is refused. The worker reports `in_progress` and the
//! end of the call; the gateway reports only what the worker cannot: `abandoned` when no
//! slot is free and `failed` (`worker_lost`) when the worker's stream breaks.
//!
//! Every send has a deadline ([`SEND_TIMEOUT`]). A carrier that stops reading its socket
//! (a frozen process, a connection that died without a reset) would otherwise stall the
//! relay, its idle watchdog and the worker behind it for as long as the kernel keeps the
//! connection: the call ends instead, the worker is told `peer_not_reading` (the reason
//! the call record keeps), and a worker that stops taking audio fails the call with
//! `worker_not_reading`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;
use vox_proto::backend::v1 as bpb;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};

use super::{CarrierEvent, Dialect, Encoding, GatewayEvent, StreamStart};
use crate::fleet::{Claim, Refusal};
use crate::metrics::label;
use crate::{Gate, reservation};

type Sink = futures::stream::SplitSink<WebSocket, Message>;

/// How long one frame may wait to be taken by the carrier or the worker. Audio flows every
/// 20 ms, so a send stuck for 2 s means the peer has stopped reading; far longer than any
/// pause of a live connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes the stream with `code` and `reason`, giving up after [`SEND_TIMEOUT`] when the
/// carrier does not take the close frame (dropping the socket then ends the connection).
async fn close(sink: &mut Sink, code: u16, reason: &str) {
    tracing::info!(code, reason, "closing media stream");
    let frame = CloseFrame { code, reason: reason.chars().take(120).collect::<String>().into() };
    let closing = async {
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
    };
    if tokio::time::timeout(SEND_TIMEOUT, closing).await.is_err() {
        tracing::info!(code, reason, "the carrier did not take the close frame; dropping the connection");
    }
}

async fn transition(
    gate: &Gate,
    call_id: &str,
    to: bpb::CallState,
    reason: &str,
    claim: Option<&Claim>,
) -> Result<(), tonic::Status> {
    let req = bpb::TransitionCallRequest {
        call_id: call_id.to_string(),
        to_state: to as i32,
        reason: reason.to_string(),
        node_id: claim.map(|c| c.node_id.clone()).unwrap_or_default(),
        worker_index: claim.map_or(0, |c| c.index),
        ..Default::default()
    };
    gate.bridge.calls().transition_call(req).await.map(|_| ())
}

/// Runs a carrier stream whose first frames name the call (Twilio's `start`). `claim`
/// is the slot claimed before the stream was accepted; None when none was free but a
/// reservation awaits its stream somewhere, which this one may carry.
pub async fn carrier_stream(gate: Arc<Gate>, socket: WebSocket, claim: Option<Claim>, mut dialect: Box<dyn Dialect>) {
    gate.metrics.active_streams.inc();
    let (mut sink, mut stream) = socket.split();
    let idle = Duration::from_secs(gate.args.idle_timeout_seconds.max(1));
    let start: Result<Option<StreamStart>, (u16, String)> = loop {
        match next_event(&mut stream, Duration::from_secs(10).min(idle), dialect.as_mut()).await {
            Ok(CarrierEvent::Connected) => continue,
            Ok(CarrierEvent::Start(s)) => break Ok(Some(s)),
            Ok(CarrierEvent::Stop) => break Ok(None),
            Ok(other) => break Err((close_code::POLICY, format!("expected start, got {other:?}"))),
            Err(e) => break Err(e),
        }
    };
    match start {
        Ok(Some(start)) => {
            dialect.started(&start);
            let span = stream_span(&start);
            run(&gate, &mut sink, &mut stream, claim, dialect.as_mut(), start).instrument(span).await;
        }
        Ok(None) => {}
        Err((code, why)) => {
            // The slot is free before the carrier hears why, so a retry finds it.
            drop(claim);
            close(&mut sink, code, &why).await;
        }
    }
    gate.metrics.active_streams.dec();
}

/// Runs a stream whose call was settled before it connected (web sessions).
pub async fn known_stream(
    gate: Arc<Gate>,
    socket: WebSocket,
    claim: Claim,
    mut dialect: Box<dyn Dialect>,
    start: StreamStart,
) {
    gate.metrics.active_streams.inc();
    let (mut sink, mut stream) = socket.split();
    let span = stream_span(&start);
    run(&gate, &mut sink, &mut stream, Some(claim), dialect.as_mut(), start).instrument(span).await;
    gate.metrics.active_streams.dec();
}

/// The span of one media stream, from its start to its end: a child of the call's webhook
/// when the stream carries that trace (a Twilio `<Parameter name="traceparent">`), so the
/// worker's and voxbridge's spans for the call join the same trace.
fn stream_span(start: &StreamStart) -> tracing::Span {
    let span = tracing::info_span!("media stream", otel.kind = "server", trace_id = tracing::field::Empty);
    vox_telemetry::trace::continue_from(&span, start.traceparent.as_deref());
    span
}

async fn next_event(
    stream: &mut futures::stream::SplitStream<WebSocket>,
    idle: Duration,
    dialect: &mut dyn Dialect,
) -> Result<CarrierEvent, (u16, String)> {
    loop {
        let Ok(msg) = tokio::time::timeout(idle, stream.next()).await else {
            return Err((close_code::AWAY, format!("no frame for {} s", idle.as_secs())));
        };
        if let Some(event) = carrier_event(msg, dialect)? {
            return Ok(event);
        }
    }
}

/// What one read from the carrier's socket says: an event, nothing (a ping), or why the
/// stream must close. The socket's end is the carrier's `stop`.
fn carrier_event(
    msg: Option<Result<Message, axum::Error>>,
    dialect: &mut dyn Dialect,
) -> Result<Option<CarrierEvent>, (u16, String)> {
    match msg {
        None => Ok(Some(CarrierEvent::Stop)),
        Some(Err(e)) => Err((close_code::PROTOCOL, format!("websocket error: {e}"))),
        Some(Ok(m)) => dialect.parse(m),
    }
}

/// The call a stream's `start` names, and its audio format, when it may attach: a known
/// call, answered (not yet attaching: a second stream for it is refused), in a format the
/// workers take. Otherwise the close code and reason.
async fn attachable(gate: &Gate, start: &StreamStart) -> Result<(String, pb::AudioFormat, bpb::Call), (u16, String)> {
    let Some(call_id) = start.call_id.clone() else {
        gate.metrics.rejections.get_or_create(&label("reason", "no_call_id")).inc();
        return Err((close_code::POLICY, "start.customParameters.call_id is missing".into()));
    };
    let format = match (start.encoding, start.sample_rate) {
        (Encoding::Mulaw, 8000) => pb::AudioFormat { encoding: pb::AudioEncoding::Mulaw as i32, sample_rate: 8000 },
        (Encoding::Pcm16le, rate @ (8000 | 16000)) => {
            pb::AudioFormat { encoding: pb::AudioEncoding::Pcm16le as i32, sample_rate: rate }
        }
        _ => {
            return Err((
                close_code::POLICY,
                "audio must be mu-law at 8000 Hz or 16-bit PCM at 8000 or 16000 Hz".into(),
            ));
        }
    };
    let call = match gate.bridge.calls().get_call(bpb::GetCallRequest { id: call_id.clone() }).await {
        Ok(c) => c.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound || s.code() == tonic::Code::InvalidArgument => {
            gate.metrics.rejections.get_or_create(&label("reason", "unknown_call")).inc();
            return Err((close_code::POLICY, format!("unknown call id {call_id:?}")));
        }
        Err(s) => {
            tracing::warn!(call_id, error = s.message(), "voxbridge did not answer for the call");
            return Err((close_code::AGAIN, "the control plane is unreachable; try again".into()));
        }
    };
    if call.state() != bpb::CallState::Answered {
        gate.metrics.rejections.get_or_create(&label("reason", "call_not_answered")).inc();
        return Err((close_code::POLICY, format!("call {call_id} is {:?}, not answered", call.state())));
    }
    Ok((call_id, format, call))
}

async fn run(
    gate: &Gate,
    sink: &mut Sink,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    mut held: Option<Claim>,
    dialect: &mut dyn Dialect,
    start: StreamStart,
) {
    let idle = Duration::from_secs(gate.args.idle_timeout_seconds.max(1));
    let (call_id, format, call) = match attachable(gate, &start).await {
        Ok(c) => c,
        Err((code, why)) => {
            // The slot is free before the carrier hears why, so a retry finds it.
            drop(held);
            return close(sink, code, &why).await;
        }
    };
    vox_telemetry::trace::attribute("call_id", call_id.as_str());
    vox_telemetry::trace::attribute("campaign_id", call.campaign_id.as_str());
    let agent = reservation::agent_of(gate, &call).await;

    // An answered outbound call's stream names the worker reserved for it: take that
    // reservation over. Otherwise (or when it is gone) reserve the claimed slot first,
    // then the next best ones.
    let mut tried = HashSet::new();
    let handed = match start.slot.as_deref() {
        Some(slot) => reservation::handed_over(gate, &call, agent.clone(), slot, &mut held, &mut tried).await,
        None => None,
    };
    let reserved = match handed {
        Some(r) => {
            drop(held.take());
            Some(r)
        }
        None => reservation::reserve(gate, &call, agent, gate.args.reservation_ttl_ms, held.take(), &mut tried).await,
    };
    let Some(reserved) = reserved else {
        gate.metrics.rejections.get_or_create(&label("reason", "no_free_slot")).inc();
        if let Err(s) = transition(gate, &call_id, bpb::CallState::Abandoned, "no_free_slot", None).await {
            tracing::warn!(call_id, error = s.message(), "could not mark the call abandoned");
        }
        return close(sink, close_code::AGAIN, "no free worker slot; try again").await;
    };
    if let Err(s) = transition(gate, &call_id, bpb::CallState::Attaching, "slot_reserved", Some(&reserved.claim)).await
    {
        reserved.release().await;
        return close(sink, close_code::POLICY, &format!("call {call_id} cannot attach: {}", s.message())).await;
    }
    let reservation::Reserved { claim, reservation_id, .. } = reserved;

    let (to_worker, rx) = mpsc::channel::<pb::MediaIn>(256);
    let start_msg = pb::MediaStart {
        reservation_id,
        call_id: call_id.clone(),
        format: Some(format),
        stream_id: start.stream_id.clone(),
    };
    let _ = to_worker.send(pb::MediaIn { event: Some(media_in::Event::Start(start_msg)) }).await;
    let mut client = claim.client.clone();
    let mut from_worker = match client.media(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            tracing::warn!(call_id, error = s.message(), "worker refused the media stream");
            let _ = transition(gate, &call_id, bpb::CallState::Failed, "worker_lost", Some(&claim)).await;
            return close(sink, close_code::ERROR, "the worker could not take the call").await;
        }
    };
    tracing::info!(call_id, worker = %claim.slot, stream_id = %start.stream_id, "call attached");
    let frames_in = gate.metrics.media_frames.get_or_create(&label("direction", "carrier_to_worker")).clone();
    let frames_out = gate.metrics.media_frames.get_or_create(&label("direction", "worker_to_carrier")).clone();
    let mut sequence = 0u64;
    // The idle watchdog is one timer, re-armed only when it fires: a frame just notes
    // when it came (a timer set anew for each of 50 frames a second cost CPU for nothing).
    let mut last_heard = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        tokio::select! {
            () = &mut idle_timer => {
                let due = last_heard + idle;
                if tokio::time::Instant::now() < due {
                    idle_timer.as_mut().reset(due);
                    continue;
                }
                hang_up(to_worker, &mut from_worker, "protocol_error").await;
                return close(sink, close_code::AWAY, &format!("no frame for {} s", idle.as_secs())).await;
            }
            msg = stream.next() => {
                last_heard = tokio::time::Instant::now();
                let event = match carrier_event(msg, dialect) {
                    Ok(Some(event)) => Ok(event),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                };
                let msg = match event {
                    Ok(CarrierEvent::Audio { payload, timestamp_ms }) => {
                        if payload.len() > gate.args.max_frame_bytes {
                            hang_up(to_worker, &mut from_worker, "protocol_error").await;
                            return close(sink, close_code::SIZE, "media frame too large").await;
                        }
                        sequence += 1;
                        frames_in.inc();
                        media_in::Event::Audio(pb::AudioFrame { payload, timestamp_ms, sequence })
                    }
                    Ok(CarrierEvent::Dtmf(digit)) => media_in::Event::Dtmf(pb::Dtmf { digit, duration_ms: 0 }),
                    Ok(CarrierEvent::Mark(name)) => media_in::Event::Mark(pb::Mark { name }),
                    Ok(CarrierEvent::Stop) => {
                        // The caller's last words are already on their way to the worker:
                        // what the agent answers to them still goes out before the close.
                        let (counter, dialect) = (&frames_out, &mut *dialect);
                        let forward = move |event: GatewayEvent| {
                            if matches!(event, GatewayEvent::Audio(_)) {
                                counter.inc();
                            }
                            dialect.render(&event)
                        };
                        hang_up_forwarding(to_worker, &mut from_worker, sink, forward).await;
                        return close(sink, close_code::NORMAL, "stream stopped").await;
                    }
                    Ok(CarrierEvent::Connected | CarrierEvent::Start(_)) => continue,
                    Err((code, why)) => {
                        hang_up(to_worker, &mut from_worker, "protocol_error").await;
                        return close(sink, code, &why).await;
                    }
                };
                let t = Instant::now();
                match tokio::time::timeout(SEND_TIMEOUT, to_worker.send(pb::MediaIn { event: Some(msg) })).await {
                    Ok(Ok(())) => gate.metrics.relay_seconds.observe(t.elapsed().as_secs_f64()),
                    Ok(Err(_)) => continue, // the worker side is ending; its stream tells how
                    Err(_) => {
                        tracing::warn!(call_id, worker = %claim.slot, seconds = SEND_TIMEOUT.as_secs(),
                            "the worker has not taken the caller's audio; ending the call");
                        gate.metrics.peers_not_reading.get_or_create(&label("peer", "worker")).inc();
                        gate.fleet.refused(&claim.slot, Refusal::Unreachable);
                        let failed = bpb::CallState::Failed;
                        if let Err(e) = transition(gate, &call_id, failed, "worker_not_reading", Some(&claim)).await {
                            tracing::warn!(call_id, error = e.message(), "could not mark the call failed");
                        }
                        return close(sink, close_code::ERROR, "the worker stopped taking audio").await;
                    }
                }
            }
            out = from_worker.next() => match out {
                Some(Ok(pb::MediaOut { event: Some(event) })) => {
                    let out = match event {
                        media_out::Event::Audio(a) => { frames_out.inc(); GatewayEvent::Audio(a.payload) }
                        media_out::Event::Mark(m) => GatewayEvent::Mark(m.name),
                        media_out::Event::Clear(_) => GatewayEvent::Clear,
                        media_out::Event::Hangup(h) => return close(sink, close_code::NORMAL, &h.reason).await,
                        media_out::Event::Started(_) | media_out::Event::Dtmf(_) => continue,
                    };
                    match tokio::time::timeout(SEND_TIMEOUT, sink.send(dialect.render(&out))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return hang_up(to_worker, &mut from_worker, "caller_hangup").await,
                        Err(_) => {
                            // No close frame: it would wait behind the frames not read.
                            tracing::warn!(call_id, seconds = SEND_TIMEOUT.as_secs(),
                                "the carrier has not read the call's audio; ending the call");
                            gate.metrics.peers_not_reading.get_or_create(&label("peer", "carrier")).inc();
                            return hang_up(to_worker, &mut from_worker, "peer_not_reading").await;
                        }
                    }
                }
                Some(Ok(_)) => {}
                None => return close(sink, close_code::NORMAL, "call ended").await,
                Some(Err(s)) => {
                    tracing::warn!(call_id, worker = %claim.slot, error = s.message(), "worker lost mid-call");
                    gate.fleet.refused(&claim.slot, Refusal::Unreachable);
                    if let Err(e) = transition(gate, &call_id, bpb::CallState::Failed, "worker_lost", Some(&claim)).await {
                        tracing::warn!(call_id, error = e.message(), "could not mark the call failed");
                    }
                    return close(sink, close_code::ERROR, "worker lost").await;
                }
            }
        }
    }
}

/// [`hang_up`] after the carrier's `stop`: what the worker still sends (the agent's answer
/// to the last frames) is passed on to the carrier rather than dropped, as long as the
/// carrier reads it (each within [`SEND_TIMEOUT`]).
async fn hang_up_forwarding(
    to_worker: mpsc::Sender<pb::MediaIn>,
    from_worker: &mut tonic::Streaming<pb::MediaOut>,
    sink: &mut Sink,
    mut render: impl FnMut(GatewayEvent) -> Message,
) {
    let deliver = async move {
        let _ = to_worker
            .send(pb::MediaIn { event: Some(media_in::Event::Hangup(pb::Hangup { reason: "caller_hangup".into() })) })
            .await;
    };
    let forward = async {
        let mut carrier_reads = true;
        while let Some(Ok(out)) = from_worker.next().await {
            let event = match out.event {
                Some(media_out::Event::Audio(a)) => GatewayEvent::Audio(a.payload),
                Some(media_out::Event::Mark(m)) => GatewayEvent::Mark(m.name),
                _ => continue,
            };
            if carrier_reads {
                carrier_reads =
                    matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(render(event))).await, Ok(Ok(())));
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join(deliver, forward)).await;
}

/// Tells the worker the call is over and waits (up to 5 s) for it to close its side, so
/// the hangup is delivered rather than cut off with the stream. What the worker still
/// sends is read (and dropped) meanwhile: a worker waiting to send can then take the
/// hangup.
async fn hang_up(to_worker: mpsc::Sender<pb::MediaIn>, from_worker: &mut tonic::Streaming<pb::MediaOut>, reason: &str) {
    let deliver = async move {
        let _ = to_worker
            .send(pb::MediaIn { event: Some(media_in::Event::Hangup(pb::Hangup { reason: reason.into() })) })
            .await;
    };
    let drain = async { while let Some(Ok(_)) = from_worker.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join(deliver, drain)).await;
}
