//! Plays a WAV from storage at real-time pace, marks its end with `prompt-end`, then
//! answers DTMF choices from the agent params: `dtmf.<digit>` = a prompt key to play, or
//! `hangup`. A digit pressed while a prompt plays interrupts it (clear, then the choice).
//! A prompt that cannot be loaded hangs up with `agent_error:prompt`.

use std::time::Duration;

use tokio::sync::mpsc;
use vox_audio::wav::read_prompt;

use super::{AgentContext, AgentInput, AgentOutput};

/// Linear resampling, enough for telephone prompts recorded at another rate.
fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || from == 0 {
        return samples.to_vec();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..n)
        .map(|i| {
            let pos = i as f64 * f64::from(from) / f64::from(to);
            let k = pos as usize;
            let frac = pos - k as f64;
            let a = f64::from(samples[k.min(samples.len() - 1)]);
            let b = f64::from(samples[(k + 1).min(samples.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

async fn load(ctx: &AgentContext, key: &str) -> Option<Vec<i16>> {
    let bytes = match ctx.store.get(key).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(call_id = %ctx.call_id, key, error = %e.message, "prompt not found in storage");
            return None;
        }
    };
    match read_prompt(&bytes) {
        Ok(p) => Some(resample(&p.samples, p.sample_rate, ctx.sample_rate)),
        Err(e) => {
            tracing::warn!(call_id = %ctx.call_id, key, error = %e, "prompt is not a usable WAV");
            None
        }
    }
}

enum Played {
    Done,
    Interrupted(String),
    CallEnded,
}

/// Sends `samples` in 20 ms frames on a 20 ms clock; stops early on a digit.
async fn play(
    samples: &[i16],
    frame: usize,
    input: &mut mpsc::Receiver<AgentInput>,
    output: &mpsc::Sender<AgentOutput>,
) -> Played {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut chunks = samples.chunks(frame);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(chunk) = chunks.next() else { return Played::Done };
                if output.send(AgentOutput::Audio(chunk.to_vec())).await.is_err() {
                    return Played::CallEnded;
                }
            }
            event = input.recv() => match event {
                None => return Played::CallEnded,
                Some(AgentInput::Dtmf(d)) => {
                    let _ = output.send(AgentOutput::Clear).await;
                    return Played::Interrupted(d);
                }
                // The caller's audio while the prompt plays: nothing to do with it.
                Some(_) => {}
            }
        }
    }
}

pub async fn run(ctx: AgentContext, mut input: mpsc::Receiver<AgentInput>, output: mpsc::Sender<AgentOutput>) {
    let frame = vox_audio::samples_per_frame(ctx.sample_rate);
    let mut next_key = Some(ctx.settings.prompt_key.clone());
    let mut pending_digit: Option<String> = None;
    loop {
        if let Some(key) = next_key.take() {
            let Some(samples) = load(&ctx, &key).await else {
                let _ = output.send(AgentOutput::Hangup("agent_error:prompt".into())).await;
                return;
            };
            match play(&samples, frame, &mut input, &output).await {
                Played::CallEnded => return,
                Played::Interrupted(d) => pending_digit = Some(d),
                Played::Done => {
                    if output.send(AgentOutput::Mark("prompt-end".into())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let digit = match pending_digit.take() {
            Some(d) => d,
            None => loop {
                match input.recv().await {
                    None => return,
                    Some(AgentInput::Dtmf(d)) => break d,
                    Some(_) => {}
                }
            },
        };
        match ctx.settings.params.get(&format!("dtmf.{digit}")).map(String::as_str) {
            Some("hangup") => {
                let _ = output.send(AgentOutput::Hangup(format!("agent_hangup:dtmf-{digit}"))).await;
                return;
            }
            Some(key) => next_key = Some(key.to_string()),
            None => tracing::debug!(call_id = %ctx.call_id, digit, "no menu choice for this digit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resample;

    #[test]
    fn resampling_keeps_duration() {
        assert_eq!(resample(&[0; 1600], 16000, 8000).len(), 800);
        assert_eq!(resample(&[0; 800], 8000, 16000).len(), 1600);
        assert_eq!(resample(&[1, 2, 3], 8000, 8000), vec![1, 2, 3]);
    }
}
