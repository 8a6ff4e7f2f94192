//! WAV files: a streaming stereo 16-bit PCM writer for call recordings, repair of a file
//! cut short by a crash, and a reader for prompts.
//!
//! The writer puts a 44-byte header with zero sizes first, straight to the file (not
//! into the write buffer), and fixes the sizes when the call ends. If the process dies
//! first, even before its first flush, the file still starts with a header and
//! [`repair`] derives the sizes from the file length, so a partial recording stays
//! playable. A file [`repair`] refuses ([`WavError::Format`]) is not one the writer
//! started and never will be.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER_LEN: u64 = 44;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a WAV file this reader understands: {0}")]
    Format(String),
}

/// What a finished (or repaired) recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub duration_ms: u64,
    pub size_bytes: u64,
}

fn header(sample_rate: u32, channels: u16, data_len: u32) -> [u8; 44] {
    let block_align = channels * 2;
    let byte_rate = sample_rate * u32::from(block_align);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Streams interleaved stereo frames (left = caller, right = agent) to a WAV file.
#[derive(Debug)]
pub struct StereoWavWriter {
    out: BufWriter<File>,
    sample_rate: u32,
    frames: u64,
}

impl StereoWavWriter {
    pub fn create(path: &Path, sample_rate: u32) -> io::Result<Self> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        // Written and synced before any audio is buffered: a crash before the first
        // flush then leaves a short, repairable recording rather than a 0-byte file.
        file.write_all(&header(sample_rate, 2, 0))?;
        file.sync_data()?;
        let out = BufWriter::with_capacity(64 * 1024, file);
        Ok(StereoWavWriter { out, sample_rate, frames: 0 })
    }

    /// Writes `left.len()` stereo frames; both slices must be the same length.
    pub fn write(&mut self, left: &[i16], right: &[i16]) -> io::Result<()> {
        debug_assert_eq!(left.len(), right.len());
        self.write_pairs(left.iter().copied().zip(right.iter().copied()))
    }

    /// Writes stereo frames (left, right) straight from where they are (a recorder's
    /// queues), without gathering them into slices first.
    pub fn write_pairs(&mut self, pairs: impl IntoIterator<Item = (i16, i16)>) -> io::Result<()> {
        for (l, r) in pairs {
            let ([a, b], [c, d]) = (l.to_le_bytes(), r.to_le_bytes());
            self.out.write_all(&[a, b, c, d])?;
            self.frames += 1;
        }
        Ok(())
    }

    /// Pushes buffered audio to the file, so a crash loses little.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn duration_ms(&self) -> u64 {
        self.frames * 1000 / u64::from(self.sample_rate.max(1))
    }

    /// Fixes the header sizes and syncs the file to disk.
    pub fn finish(mut self) -> io::Result<WavInfo> {
        self.out.flush()?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        let data_len = u32::try_from(self.frames * 4).unwrap_or(u32::MAX);
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(self.sample_rate, 2, data_len))?;
        file.sync_all()?;
        Ok(WavInfo {
            sample_rate: self.sample_rate,
            channels: 2,
            duration_ms: self.frames * 1000 / u64::from(self.sample_rate.max(1)),
            size_bytes: HEADER_LEN + u64::from(data_len),
        })
    }
}

/// Makes a recording cut short by a crash playable: drops a torn last frame and writes
/// the sizes its header lacks. Only for files [`StereoWavWriter`] started.
pub fn repair(path: &Path) -> Result<WavInfo, WavError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut h = [0u8; 44];
    file.read_exact(&mut h).map_err(|_| WavError::Format("shorter than a WAV header".into()))?;
    if &h[0..4] != b"RIFF" || &h[8..12] != b"WAVE" || &h[36..40] != b"data" {
        return Err(WavError::Format("not a recording header".into()));
    }
    let format = u16::from_le_bytes([h[20], h[21]]);
    let channels = u16::from_le_bytes([h[22], h[23]]);
    let sample_rate = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    let bits = u16::from_le_bytes([h[34], h[35]]);
    if format != 1 || bits != 16 || !(1..=2).contains(&channels) || sample_rate == 0 {
        return Err(WavError::Format(format!(
            "header says format {format}, {bits} bits, {channels} channels at {sample_rate} Hz; \
             recordings are 16-bit PCM, 1 or 2 channels"
        )));
    }
    let block = u64::from(channels.max(1)) * 2;
    let len = file.metadata()?.len();
    let data = (len.saturating_sub(HEADER_LEN) / block) * block;
    let data32 = u32::try_from(data).unwrap_or(u32::MAX);
    file.set_len(HEADER_LEN + u64::from(data32))?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header(sample_rate, channels, data32))?;
    file.sync_all()?;
    Ok(WavInfo {
        sample_rate,
        channels,
        duration_ms: (u64::from(data32) / block) * 1000 / u64::from(sample_rate.max(1)),
        size_bytes: HEADER_LEN + u64::from(data32),
    })
}

/// A mono prompt: 16-bit PCM or μ-law WAV; a stereo file gives its left channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

pub fn read_prompt(bytes: &[u8]) -> Result<Prompt, WavError> {
    let bad = |why: &str| WavError::Format(why.to_string());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]) as usize;
        let body_start = pos + 8;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " if body.len() >= 16 => {
                let format = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                fmt = Some((format, channels, rate, bits));
            }
            b"data" => {
                let (format, channels, rate, bits) = fmt.ok_or_else(|| bad("data before fmt"))?;
                let channels = usize::from(channels.max(1));
                let samples: Vec<i16> = match (format, bits) {
                    (1, 16) => body.chunks_exact(2 * channels).map(|f| i16::from_le_bytes([f[0], f[1]])).collect(),
                    (7, 8) => body.chunks_exact(channels).map(|f| crate::mulaw::decode_sample(f[0])).collect(),
                    _ => return Err(bad(&format!("format {format} with {bits} bits; use 16-bit PCM or mu-law"))),
                };
                return Ok(Prompt { sample_rate: rate, samples });
            }
            _ => {}
        }
        pos = body_start + size + (size & 1);
    }
    Err(bad("no data chunk"))
}

/// A mono 16-bit PCM WAV in memory (prompts made by tests and tools).
pub fn mono_wav_bytes(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut h = header(sample_rate, 1, data_len).to_vec();
    h.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_finished_recording_has_true_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut w = StereoWavWriter::create(&path, 8000).unwrap();
        for _ in 0..50 {
            w.write(&[100; 160], &[-100; 160]).unwrap();
        }
        let info = w.finish().unwrap();
        assert_eq!(info.duration_ms, 1000);
        assert_eq!(info.size_bytes, 44 + 8000 * 4);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), info.size_bytes);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 32000);
        let left = read_prompt(&bytes).unwrap();
        assert_eq!(left.samples.len(), 8000);
        assert_eq!(left.samples[0], 100);
    }

    #[test]
    fn a_crashed_recording_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut w = StereoWavWriter::create(&path, 8000).unwrap();
        w.write(&[7; 4000], &[9; 4000]).unwrap();
        w.flush().unwrap();
        drop(w); // no finish: sizes in the header are still zero
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap(); // a torn frame
        drop(f);
        let info = repair(&path).unwrap();
        assert_eq!(info.duration_ms, 500);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 16000);
        assert!(repair(&dir.path().join("missing.wav")).is_err());
    }

    #[test]
    fn a_recording_cut_before_its_first_flush_is_still_repairable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut w = StereoWavWriter::create(&path, 8000).unwrap();
        w.write(&[7; 160], &[9; 160]).unwrap();
        // A crash: the buffered audio is never flushed and the header never fixed.
        std::mem::forget(w);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44, "the header is on disk from the start");
        let info = repair(&path).unwrap();
        assert_eq!((info.duration_ms, info.size_bytes, info.channels, info.sample_rate), (0, 44, 2, 8000));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_prompt(&bytes).unwrap(), Prompt { sample_rate: 8000, samples: vec![] });
    }

    #[test]
    fn files_the_writer_never_started_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(repair(&empty), Err(WavError::Format(_))));
        let garbage = dir.path().join("garbage.wav");
        std::fs::write(&garbage, [0xABu8; 300]).unwrap();
        assert!(matches!(repair(&garbage), Err(WavError::Format(_))));
        let mut odd = header(8000, 2, 0);
        odd[34..36].copy_from_slice(&8u16.to_le_bytes()); // 8-bit: not a recording
        let odd_path = dir.path().join("odd.wav");
        std::fs::write(&odd_path, odd).unwrap();
        assert!(matches!(repair(&odd_path), Err(WavError::Format(_))));
        assert_eq!(std::fs::read(&odd_path).unwrap(), odd, "a refused file is left as it was");
        assert!(matches!(repair(&dir.path().join("missing.wav")), Err(WavError::Io(_))));
    }

    #[test]
    fn prompts_in_pcm_and_mulaw() {
        let pcm = mono_wav_bytes(8000, &[1000, -1000, 0]);
        assert_eq!(read_prompt(&pcm).unwrap(), Prompt { sample_rate: 8000, samples: vec![1000, -1000, 0] });
        assert!(read_prompt(b"not a wav file").is_err());
    }
}
