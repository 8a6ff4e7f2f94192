//! One call's media session on a worker: relays audio and events between the gateway's
//! stream and the agent, records both sides, enforces the watchdogs, and reports the
//! call's progress to voxbridge (`attaching → in_progress` at start, `completed` or
//! `failed` with a reason at the end).
//!
//! Every send has a deadline ([`SEND_TIMEOUT`]): a gateway that stops reading the call's
//! stream would otherwise stall this loop and its watchdogs for good, holding the slot.
//! The call ends instead, as `peer_not_reading`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tonic::{Status, Streaming};
use vox_proto::backend::v1 as bpb;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};

use crate::agents::{self, AgentContext, AgentInput, AgentOutput};
use crate::recording::CallRecorder;
use crate::slots::Reservation;
use crate::worker::Worker;

/// The call's audio format, checked before the session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mulaw,
    Pcm16 { sample_rate: u32 },
}

impl Format {
    pub fn from_proto(f: Option<&pb::AudioFormat>) -> Result<Format, Status> {
        let f = f.ok_or_else(|| Status::invalid_argument("start.format: required"))?;
        match (pb::AudioEncoding::try_from(f.encoding), f.sample_rate) {
            (Ok(pb::AudioEncoding::Mulaw), 0 | 8000) => Ok(Format::Mulaw),
            (Ok(pb::AudioEncoding::Pcm16le), rate @ (8000 | 16000)) => Ok(Format::Pcm16 { sample_rate: rate }),
            _ => Err(Status::invalid_argument(
                "start.format: use AUDIO_ENCODING_MULAW at 8000 Hz or AUDIO_ENCODING_PCM16LE at 8000 or 16000 Hz",
            )),
        }
    }

    pub fn sample_rate(self) -> u32 {
        match self {
            Format::Mulaw => 8000,
            Format::Pcm16 { sample_rate } => sample_rate,
        }
    }

    fn to_proto(self) -> pb::AudioFormat {
        match self {
            Format::Mulaw => pb::AudioFormat { encoding: pb::AudioEncoding::Mulaw as i32, sample_rate: 8000 },
            Format::Pcm16 { sample_rate } => {
                pb::AudioFormat { encoding: pb::AudioEncoding::Pcm16le as i32, sample_rate }
            }
        }
    }

    fn decode(self, payload: &[u8]) -> Vec<i16> {
        match self {
            Format::Mulaw => vox_audio::mulaw::decode(payload),
            Format::Pcm16 { .. } => vox_audio::pcm16le_to_samples(payload),
        }
    }

    fn encode(self, samples: &[i16]) -> Vec<u8> {
        match self {
            Format::Mulaw => vox_audio::mulaw::encode(samples),
            Format::Pcm16 { .. } => vox_audio::samples_to_pcm16le(samples),
        }
    }
}

/// How a call ended, and the call state that records it.
fn final_state(reason: &str) -> bpb::CallState {
    if reason == "caller_hangup" || reason.starts_with("agent_hangup") || reason == "watchdog:max_duration" {
        bpb::CallState::Completed
    } else {
        bpb::CallState::Failed
    }
}

type Out = mpsc::Sender<Result<pb::MediaOut, Status>>;

/// How long one event may wait to be taken by the gateway (or the agent). Audio flows
/// every 20 ms, so a send stuck for 2 s means the peer has stopped reading.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an event did not reach the gateway: the reason the call ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undelivered {
    /// The stream is gone.
    StreamLost,
    /// The stream is open but nothing was read for [`SEND_TIMEOUT`].
    NotReading,
}

impl Undelivered {
    fn reason(self) -> &'static str {
        match self {
            Undelivered::StreamLost => "stream_lost",
            Undelivered::NotReading => "peer_not_reading",
        }
    }
}

async fn send(out: &Out, event: media_out::Event) -> Result<(), Undelivered> {
    match tokio::time::timeout(SEND_TIMEOUT, out.send(Ok(pb::MediaOut { event: Some(event) }))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Undelivered::StreamLost),
        Err(_) => Err(Undelivered::NotReading),
    }
}

/// Hands the agent an event that must not be dropped (a digit, a mark), within
/// [`SEND_TIMEOUT`]; false when the agent is gone or stuck.
async fn to_agent(agent_in: &mpsc::Sender<AgentInput>, event: AgentInput) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, agent_in.send(event)).await, Ok(Ok(())))
}

async fn report(worker: &Worker, call_id: &str, to: bpb::CallState, reason: &str) {
    let Some(bridge) = &worker.bridge else { return };
    let req = bpb::TransitionCallRequest {
        call_id: call_id.to_string(),
        to_state: to as i32,
        reason: reason.to_string(),
        node_id: bridge.node_id().to_string(),
        worker_index: worker.index,
        ..Default::default()
    };
    if let Err(s) = bridge.calls().transition_call(req.clone()).await {
        tracing::warn!(call_id, to = ?to, code = ?s.code(), error = s.message(), "could not report the call's progress");
        if matches!(to, bpb::CallState::Completed | bpb::CallState::Failed) && unreachable(&s) {
            // The end of a call is a record we must not lose: keep trying in the
            // background while voxbridge is away (a restart, a network blip).
            let bridge = bridge.clone();
            tokio::spawn(async move {
                let mut wait = Duration::from_millis(500);
                for _ in 0..30 {
                    tokio::time::sleep(wait).await;
                    match bridge.calls().transition_call(req.clone()).await {
                        Ok(_) => {
                            tracing::info!(call_id = %req.call_id, "the call's end reached voxbridge after a retry");
                            return;
                        }
                        Err(s) if !unreachable(&s) => {
                            tracing::warn!(call_id = %req.call_id, error = s.message(), "voxbridge refused the call's end");
                            return;
                        }
                        Err(_) => wait = (wait * 2).min(Duration::from_secs(10)),
                    }
                }
                tracing::error!(call_id = %req.call_id, "gave up reporting the call's end; the reaper will close it");
            });
        }
    }
}

/// voxbridge did not get the request (down, restarting, overloaded), as opposed to
/// refusing it.
fn unreachable(s: &Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

pub async fn run(
    worker: Arc<Worker>,
    start: pb::MediaStart,
    format: Format,
    reservation: Reservation,
    mut inbound: Streaming<pb::MediaIn>,
    out: Out,
) {
    let call_id = start.call_id.clone();
    let rate = format.sample_rate();
    let frame = vox_audio::samples_per_frame(rate);

    report(&worker, &call_id, bpb::CallState::InProgress, "media_started").await;
    let mut recorder = match CallRecorder::start(&worker.common.spool_dir, &call_id, rate) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(call_id, error = %e, "cannot write the recording; the call goes on unrecorded");
            None
        }
    };
    let started = pb::MediaStarted { worker_index: worker.index, format: Some(format.to_proto()) };
    if let Err(undelivered) = send(&out, media_out::Event::Started(started)).await {
        return finish(&worker, &call_id, recorder, undelivered.reason()).await;
    }
    let agent_settings = reservation.request.agent.clone().unwrap_or_default();
    let (agent_in, mut agent_out) = agents::spawn(AgentContext {
        call_id: call_id.clone(),
        sample_rate: rate,
        settings: agent_settings,
        store: Arc::clone(&worker.store),
    });

    let no_media = Duration::from_secs(u64::from(worker.common.no_media_timeout_seconds.max(1)));
    let max_call = Instant::now() + Duration::from_secs(u64::from(worker.common.max_call_seconds.max(1)));
    // The watchdogs' timers are set once and re-armed only when they fire: a frame just
    // notes when it came. (A timer set anew for each of 50 frames a second, and for every
    // turn of the loop, was a good share of a call's CPU.)
    let mut last_media = Instant::now();
    let no_media_timer = sleep_until(last_media + no_media);
    let max_call_timer = sleep_until(max_call);
    tokio::pin!(no_media_timer, max_call_timer);
    let mut out_seq: u64 = 0;
    let mut clock = None;
    let max_payload = rate as usize * 2; // a second of 16-bit audio: far beyond one frame

    let reason: String = {
        // Borrows `out` only for the loop: it is dropped (the stream ended) before finish.
        let gateway_gone = out.closed();
        tokio::pin!(gateway_gone);
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(pb::MediaIn { event: Some(event) })) => match event {
                        media_in::Event::Audio(a) => {
                            if a.payload.len() > max_payload {
                                tracing::warn!(call_id, bytes = a.payload.len(), "dropped an oversize audio frame");
                                continue;
                            }
                            last_media = Instant::now();
                            worker.stats.frame_received(&mut clock, a.sequence, std::time::Instant::now());
                            let samples = format.decode(&a.payload);
                            if let Some(r) = recorder.as_mut() && let Err(e) = r.caller(&samples) {
                                tracing::error!(call_id, error = %e, "recording write failed; recording stops");
                                recorder = None;
                            }
                            let _ = agent_in.try_send(AgentInput::Audio(samples));
                        }
                        media_in::Event::Dtmf(d) => {
                            if !to_agent(&agent_in, AgentInput::Dtmf(d.digit)).await {
                                tracing::warn!(call_id, "the agent did not take a digit; ending the call");
                                break "agent_error:not_reading".to_string();
                            }
                        }
                        media_in::Event::Mark(m) => {
                            if !to_agent(&agent_in, AgentInput::MarkPlayed(m.name)).await {
                                tracing::warn!(call_id, "the agent did not take a mark; ending the call");
                                break "agent_error:not_reading".to_string();
                            }
                        }
                        media_in::Event::Hangup(h) => {
                            break if h.reason.is_empty() { "caller_hangup".to_string() } else { h.reason };
                        }
                        media_in::Event::Start(_) => tracing::warn!(call_id, "ignored a second start on a running call"),
                    },
                    Ok(Some(pb::MediaIn { event: None })) => {}
                    Ok(None) => break "caller_hangup".to_string(),
                    Err(s) => {
                        tracing::warn!(call_id, error = s.message(), "media stream from the gateway broke");
                        break "stream_lost".to_string();
                    }
                },
                event = agent_out.recv() => {
                    let sent = match event {
                        Some(AgentOutput::Audio(samples)) => {
                            let mut sent = Ok(());
                            for chunk in samples.chunks(frame) {
                                if let Some(r) = recorder.as_mut() && let Err(e) = r.agent(chunk) {
                                    tracing::error!(call_id, error = %e, "recording write failed; recording stops");
                                    recorder = None;
                                }
                                let payload = format.encode(chunk);
                                let audio = pb::AudioFrame { payload, timestamp_ms: out_seq * 20, sequence: out_seq };
                                out_seq += 1;
                                sent = send(&out, media_out::Event::Audio(audio)).await;
                                if sent.is_err() {
                                    break;
                                }
                                worker.stats.frame_sent();
                            }
                            sent
                        }
                        Some(AgentOutput::Mark(name)) => send(&out, media_out::Event::Mark(pb::Mark { name })).await,
                        Some(AgentOutput::Clear) => send(&out, media_out::Event::Clear(pb::Clear {})).await,
                        Some(AgentOutput::Hangup(reason)) => {
                            let _ = send(&out, media_out::Event::Hangup(pb::Hangup { reason: reason.clone() })).await;
                            break reason;
                        }
                        None => break "agent_hangup:stopped".to_string(),
                    };
                    if let Err(undelivered) = sent {
                        if undelivered == Undelivered::NotReading {
                            tracing::warn!(call_id, seconds = SEND_TIMEOUT.as_secs(),
                                "the gateway has not read the call's stream; ending the call");
                        }
                        break undelivered.reason().to_string();
                    }
                }
                () = &mut no_media_timer => {
                    if Instant::now() < last_media + no_media {
                        no_media_timer.as_mut().reset(last_media + no_media);
                        continue;
                    }
                    tracing::warn!(call_id, seconds = no_media.as_secs(), "no inbound media; hanging up the phantom call");
                    let _ = send(&out, media_out::Event::Hangup(pb::Hangup { reason: "watchdog:no_media".into() })).await;
                    break "watchdog:no_media".to_string();
                }
                () = &mut max_call_timer => {
                    let hangup = pb::Hangup { reason: "watchdog:max_duration".into() };
                    let _ = send(&out, media_out::Event::Hangup(hangup)).await;
                    break "watchdog:max_duration".to_string();
                }
                () = &mut gateway_gone => break "stream_lost".to_string(),
            }
        }
    };
    drop(agent_in);
    if reason == "caller_hangup" {
        // The caller's last frames went to the agent just before the hangup: its answer
        // to them is recorded and sent on (the gateway forwards it) before the call ends.
        let mut tail = Tail { out: &out, recorder: &mut recorder, format, frame, out_seq: &mut out_seq, sending: true };
        tail.drain(&worker, &call_id, &mut agent_out).await;
    }
    drop(out);
    finish(&worker, &call_id, recorder, &reason).await;
}

/// How long the agent's answer to the caller's last frames may take once the caller hung
/// up (an echo answers within a frame; a model still speaking is cut here).
pub const TAIL: Duration = Duration::from_millis(500);

/// The end of the agent's output after the caller hung up.
struct Tail<'a> {
    out: &'a Out,
    recorder: &'a mut Option<CallRecorder>,
    format: Format,
    frame: usize,
    out_seq: &'a mut u64,
    /// False once the gateway stopped taking frames: the rest is only recorded.
    sending: bool,
}

impl Tail<'_> {
    async fn drain(&mut self, worker: &Worker, call_id: &str, agent_out: &mut mpsc::Receiver<AgentOutput>) {
        let deadline = Instant::now() + TAIL;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent_out.recv()).await {
            let AgentOutput::Audio(samples) = event else { continue };
            for chunk in samples.chunks(self.frame) {
                if let Some(r) = self.recorder.as_mut()
                    && let Err(e) = r.agent(chunk)
                {
                    tracing::error!(call_id, error = %e, "recording write failed; recording stops");
                    *self.recorder = None;
                }
                if self.sending {
                    let seq = *self.out_seq;
                    let audio =
                        pb::AudioFrame { payload: self.format.encode(chunk), timestamp_ms: seq * 20, sequence: seq };
                    *self.out_seq += 1;
                    self.sending = send(self.out, media_out::Event::Audio(audio)).await.is_ok();
                    if self.sending {
                        worker.stats.frame_sent();
                    }
                }
            }
        }
    }
}

async fn finish(worker: &Worker, call_id: &str, recorder: Option<CallRecorder>, reason: &str) {
    tracing::info!(call_id, reason, "call ended");
    worker.slots.end_call(call_id);
    if let Some(r) = recorder {
        match tokio::task::spawn_blocking(move || r.finish()).await {
            Ok(Ok((_, info))) => {
                tracing::info!(call_id, duration_ms = info.duration_ms, "recording finished");
                worker.uploader.queue(call_id);
            }
            Ok(Err(e)) => {
                tracing::error!(call_id, error = %e, "could not finish the recording; it is repaired at the next start")
            }
            Err(e) => tracing::error!(call_id, error = %e, "recording task failed"),
        }
    }
    let state = final_state(reason);
    worker.stats.call_ended(if state == bpb::CallState::Completed { "completed" } else { "failed" }, reason);
    report(worker, call_id, state, reason).await;
}
