//! Telephony audio: G.711 μ-law ([`mulaw`]), little-endian 16-bit PCM helpers, and
//! stereo WAV recording that survives a crash ([`wav`]).

pub mod analysis;
pub mod mulaw;
pub mod wav;

/// 16-bit little-endian PCM bytes to samples; a trailing odd byte is dropped.
pub fn pcm16le_to_samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

pub fn samples_to_pcm16le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Samples in one 20 ms frame at `sample_rate`.
pub fn samples_per_frame(sample_rate: u32) -> usize {
    (sample_rate / 50) as usize
}
