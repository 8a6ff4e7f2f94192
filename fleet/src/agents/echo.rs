//! Plays the caller's audio straight back: for tests and latency checks. A DTMF digit is
//! answered with a mark named `dtmf-<digit>`, which the carrier echoes once played.

use tokio::sync::mpsc;

use super::{AgentInput, AgentOutput};

pub async fn run(mut input: mpsc::Receiver<AgentInput>, output: mpsc::Sender<AgentOutput>) {
    while let Some(event) = input.recv().await {
        let out = match event {
            AgentInput::Audio(samples) => AgentOutput::Audio(samples),
            AgentInput::Dtmf(digit) => AgentOutput::Mark(format!("dtmf-{digit}")),
            AgentInput::MarkPlayed(_) => continue,
        };
        if output.send(out).await.is_err() {
            return;
        }
    }
}
