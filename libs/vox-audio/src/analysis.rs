//! What a stored call recording holds, read back after upload: proof that the object in
//! storage is whole (its header and its length agree) and how much each side spoke.
//!
//! Speech is counted per 20 ms frame and channel (left = caller, right = agent, as the
//! recorder writes them): a frame whose RMS level is above [`SPEECH_RMS`] (about −40 dBFS,
//! well above line noise and μ-law's quiet floor, well below normal speech at −20 to
//! −30 dBFS) counts as speech. It is a level gate, not voice detection: a call-centre's
//! "talk time" and "dead air" figures, not a transcript.

use crate::wav::WavError;

/// RMS level (of 32,767) above which a 20 ms frame counts as speech.
pub const SPEECH_RMS: f64 = 330.0;

/// What the recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingAnalysis {
    pub sample_rate: u32,
    pub duration_ms: u64,
    /// 20 ms frames of the caller's channel above [`SPEECH_RMS`], in ms.
    pub caller_speech_ms: u64,
    /// The same for the agent's channel.
    pub agent_speech_ms: u64,
    /// Frames in which neither side spoke, in ms.
    pub silence_ms: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a stereo 16-bit PCM recording. Refuses anything else, and a file whose data
/// chunk says more bytes than the file has (cut short in storage) or a data length that
/// is not whole frames.
pub fn analyse_recording(bytes: &[u8]) -> Result<RecordingAnalysis, WavError> {
    let bad = |why: String| WavError::Format(why);
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header".into()));
    }
    let mut pos = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4) as usize;
        let body = pos + 8;
        match id {
            b"fmt " if size >= 16 && body + 16 <= bytes.len() => {
                format = Some((
                    u16_at(bytes, body),
                    u16_at(bytes, body + 2),
                    u32_at(bytes, body + 4),
                    u16_at(bytes, body + 14),
                ));
            }
            b"data" => {
                let (fmt, channels, rate, bits) = format.ok_or_else(|| bad("data before fmt".into()))?;
                if (fmt, channels, bits) != (1, 2, 16) || rate == 0 {
                    return Err(bad(format!(
                        "format {fmt}, {channels} channels, {bits} bits at {rate} Hz; a call recording is 16-bit PCM stereo"
                    )));
                }
                let have = bytes.len() - body;
                if size > have {
                    return Err(bad(format!("the data chunk says {size} bytes but the file holds {have}: cut short")));
                }
                if !size.is_multiple_of(4) {
                    return Err(bad(format!("{size} data bytes are not whole stereo frames")));
                }
                return Ok(measure(&bytes[body..body + size], rate));
            }
            _ => {}
        }
        pos = body + size + (size & 1);
    }
    Err(bad("no data chunk".into()))
}

fn measure(data: &[u8], rate: u32) -> RecordingAnalysis {
    let frames = data.len() / 4;
    let per_window = (rate as usize / 50).max(1);
    let window_ms = |n: usize| (n as u64 * 1000) / u64::from(rate);
    let (mut caller, mut agent, mut silence) = (0u64, 0u64, 0u64);
    for window in data.chunks(per_window * 4) {
        let n = window.len() / 4;
        let (mut left, mut right) = (0f64, 0f64);
        for f in window.chunks_exact(4) {
            let l = f64::from(i16::from_le_bytes([f[0], f[1]]));
            let r = f64::from(i16::from_le_bytes([f[2], f[3]]));
            left += l * l;
            right += r * r;
        }
        let loud = |sum: f64| (sum / n.max(1) as f64).sqrt() > SPEECH_RMS;
        let ms = window_ms(n);
        let (l, r) = (loud(left), loud(right));
        caller += if l { ms } else { 0 };
        agent += if r { ms } else { 0 };
        silence += if !l && !r { ms } else { 0 };
    }
    RecordingAnalysis {
        sample_rate: rate,
        duration_ms: window_ms(frames),
        caller_speech_ms: caller,
        agent_speech_ms: agent,
        silence_ms: silence,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    /// A stereo recording: one second of the caller talking (a 440 Hz tone at −12 dBFS),
    /// then half a second of the agent, then half a second of line noise on both.
    fn call() -> Vec<u8> {
        let rate = 8000u32;
        let tone = |i: usize| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16;
        let mut pairs: Vec<(i16, i16)> = Vec::new();
        pairs.extend((0..8000).map(|i| (tone(i), 3)));
        pairs.extend((0..4000).map(|i| (-2, tone(i))));
        pairs.extend((0..4000).map(|i| ((i % 7) as i16 - 3, (i % 5) as i16 - 2)));
        let data: Vec<u8> =
            pairs.iter().flat_map(|(l, r)| l.to_le_bytes().into_iter().chain(r.to_le_bytes())).collect();
        let mut out = b"RIFF".to_vec();
        out.extend((36 + data.len() as u32).to_le_bytes());
        out.extend(b"WAVEfmt ");
        out.extend(16u32.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(rate.to_le_bytes());
        out.extend((rate * 4).to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(b"data");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn each_sides_talk_time_and_the_dead_air_are_measured() {
        let a = analyse_recording(&call()).unwrap();
        assert_eq!(a.duration_ms, 2000);
        assert_eq!(a.caller_speech_ms, 1000);
        assert_eq!(a.agent_speech_ms, 500);
        assert_eq!(a.silence_ms, 500);
    }

    #[test]
    fn a_recording_cut_short_or_not_a_call_recording_is_refused() {
        let whole = call();
        let cut = analyse_recording(&whole[..whole.len() - 1000]).unwrap_err().to_string();
        assert!(cut.contains("cut short"), "{cut}");
        let mono = crate::wav::mono_wav_bytes(8000, &[0; 800]);
        assert!(analyse_recording(&mono).unwrap_err().to_string().contains("1 channels"));
        assert!(analyse_recording(b"not audio at all").unwrap_err().to_string().contains("RIFF"));
    }
}
