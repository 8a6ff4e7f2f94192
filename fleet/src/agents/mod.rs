//! The agents a call can run, behind one interface: audio and events in, audio and
//! events out, over channels. The media session owns the channels; dropping its input
//! sender ends the agent.
//!
//! - [`echo`]: plays the caller's audio back; answers a DTMF digit with a mark.
//! - [`prompt`]: plays a WAV from storage, then answers DTMF choices.
//! - [`external`]: relays the call to the customer's agent server over WebSocket.

pub mod echo;
pub mod external;
pub mod prompt;

use std::sync::Arc;

use tokio::sync::mpsc;
use vox_blob::BlobStore;
use vox_proto::common::v1::{AgentKind, AgentSettings};

/// What the call gives the agent. Audio is 16-bit PCM at the call's sample rate.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentInput {
    Audio(Vec<i16>),
    Dtmf(String),
    /// The far end played the audio up to this mark.
    MarkPlayed(String),
}

/// What the agent sends the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOutput {
    Audio(Vec<i16>),
    Mark(String),
    /// Drop audio buffered at the far end (barge-in).
    Clear,
    Hangup(String),
}

#[derive(Debug, Clone)]
pub struct AgentContext {
    pub call_id: String,
    pub sample_rate: u32,
    pub settings: AgentSettings,
    pub store: Arc<dyn BlobStore>,
}

/// Starts the agent the settings name.
pub fn spawn(ctx: AgentContext) -> (mpsc::Sender<AgentInput>, mpsc::Receiver<AgentOutput>) {
    let (in_tx, in_rx) = mpsc::channel(256);
    let (out_tx, out_rx) = mpsc::channel(256);
    let kind = AgentKind::try_from(ctx.settings.kind).unwrap_or(AgentKind::Echo);
    tracing::info!(call_id = %ctx.call_id, agent = ?kind, "agent started");
    match kind {
        AgentKind::Prompt => {
            tokio::spawn(prompt::run(ctx, in_rx, out_tx));
        }
        AgentKind::External => {
            tokio::spawn(external::run(ctx, in_rx, out_tx));
        }
        AgentKind::Echo | AgentKind::Unspecified => {
            tokio::spawn(echo::run(in_rx, out_tx));
        }
    }
    (in_tx, out_rx)
}
