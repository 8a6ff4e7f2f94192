//! Carrier media streams: one adapter per dialect ([`twilio`]) over one internal model
//! ([`CarrierEvent`] in, [`GatewayEvent`] out), and the relay that connects a stream to
//! a worker ([`relay`]). Another dialect (Plivo, Exotel, Telnyx, Vonage) is a new file
//! that turns its frames into these events and back.

pub mod relay;
pub mod twilio;
pub mod web;

use axum::extract::ws::Message;

/// One carrier dialect: how its WebSocket frames map to the internal model.
pub trait Dialect: Send {
    /// One frame in: an event, nothing (pings, keep-alives), or why the stream must close
    /// (a WebSocket close code and a reason a person can act on).
    fn parse(&mut self, msg: Message) -> Result<Option<CarrierEvent>, (u16, String)>;
    /// The stream's start is known (for dialects that echo its ids back).
    fn started(&mut self, _start: &StreamStart) {}
    fn render(&self, event: &GatewayEvent) -> Message;
}

/// What a carrier stream says, in the gateway's own terms.
#[derive(Debug, Clone, PartialEq)]
pub enum CarrierEvent {
    /// The stream is about to start (Twilio's `connected`).
    Connected,
    Start(StreamStart),
    /// Raw audio in the stream's encoding, with the carrier's timestamp.
    Audio {
        payload: Vec<u8>,
        timestamp_ms: u64,
    },
    Dtmf(String),
    /// The carrier played our audio up to this mark.
    Mark(String),
    /// The caller hung up or the stream ended.
    Stop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamStart {
    pub stream_id: String,
    pub carrier_call_id: String,
    /// The Vox call id, from the stream's custom parameters.
    pub call_id: Option<String>,
    /// The worker reserved for the call when it was answered
    /// (`<node_id>/<worker_index>/<reservation_id>`), from the custom parameters.
    pub slot: Option<String>,
    /// The trace of the call's webhook (W3C `traceparent`), so the stream's spans join it.
    pub traceparent: Option<String>,
    pub encoding: Encoding,
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Mulaw,
    Pcm16le,
}

/// What the gateway sends a carrier stream.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    Audio(Vec<u8>),
    Mark(String),
    Clear,
}
