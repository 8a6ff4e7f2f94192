//! A call's recording while it runs: caller on the left channel, agent on the right,
//! written to `<spool>/<call id>.wav` beside a small JSON ticket that says where the
//! recording goes. The two sides arrive at their own pace; whichever runs more than
//! 200 ms ahead has the other padded with silence, so the channels stay aligned.
//!
//! Spool file names are call ids and nothing else ([`spool_file`]): a name that came
//! from a request, or was read back from the spool after a crash, never reaches outside
//! the spool folder.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vox_audio::wav::{StereoWavWriter, WavInfo};
use vox_domain::ids;

/// `<spool>/<call id>.<ext>`, for a call id of the id alphabet only (no `/`, no `..`).
pub fn spool_file(spool: &Path, call_id: &str, ext: &str) -> std::io::Result<PathBuf> {
    if !ids::has_prefix(call_id, ids::CALL) {
        let shown: String = call_id.chars().take(40).collect();
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{shown:?} is not a call id (ca_ and 16 characters of 0-9a-z); spool files are named by call id"),
        ));
    }
    Ok(spool.join(format!("{call_id}.{ext}")))
}

/// What the uploader needs to finish a recording, kept on disk beside the WAV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub call_id: String,
    /// Object key in the region's storage.
    pub key: String,
    /// False until the WAV header is final; a crash leaves it false.
    pub finished: bool,
}

impl Ticket {
    pub fn wav_path(spool: &Path, call_id: &str) -> std::io::Result<PathBuf> {
        spool_file(spool, call_id, "wav")
    }

    pub fn path(spool: &Path, call_id: &str) -> std::io::Result<PathBuf> {
        spool_file(spool, call_id, "json")
    }

    /// True when the ticket is the one `call_id`'s spool file should hold, pointing at
    /// that call's recording key: a ticket edited on disk cannot send a recording over
    /// another object.
    pub fn is_for(&self, call_id: &str) -> bool {
        self.call_id == call_id
            && self.key.starts_with("recordings/")
            && self.key.strip_suffix(&format!("/{call_id}.wav")).is_some()
    }

    /// Writes the ticket durably (write beside, sync, rename).
    pub fn save(&self, spool: &Path) -> std::io::Result<()> {
        let path = Ticket::path(spool, &self.call_id)?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &body)?;
            f.sync_all()?;
        }
        std::fs::rename(tmp, path)
    }
}

/// The object key of a call's recording: recordings/<yyyy>/<mm>/<dd>/<call id>.wav.
pub fn recording_key(call_id: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("recordings/{}/{call_id}.wav", at.format("%Y/%m/%d"))
}

#[derive(Debug)]
pub struct CallRecorder {
    writer: StereoWavWriter,
    /// An exclusive lock on the WAV while the call runs: workers of one host share the
    /// spool, and a sibling that restarts must not upload (and delete) a live recording.
    /// The OS drops it when the process dies, so a crashed call's file is free again.
    _in_use: std::fs::File,
    ticket: Ticket,
    spool: PathBuf,
    caller: VecDeque<i16>,
    agent: VecDeque<i16>,
    max_skew: usize,
    last_flush: Instant,
}

impl CallRecorder {
    pub fn start(spool: &Path, call_id: &str, sample_rate: u32) -> std::io::Result<Self> {
        let wav = Ticket::wav_path(spool, call_id)?;
        std::fs::create_dir_all(spool)?;
        let ticket =
            Ticket { call_id: call_id.to_string(), key: recording_key(call_id, chrono::Utc::now()), finished: false };
        ticket.save(spool)?;
        let writer = StereoWavWriter::create(&wav, sample_rate)?;
        let in_use = std::fs::File::open(&wav)?;
        in_use.try_lock().map_err(std::io::Error::from)?;
        Ok(CallRecorder {
            writer,
            _in_use: in_use,
            ticket,
            spool: spool.to_path_buf(),
            caller: VecDeque::new(),
            agent: VecDeque::new(),
            max_skew: (sample_rate / 5) as usize,
            last_flush: Instant::now(),
        })
    }

    pub fn caller(&mut self, samples: &[i16]) -> std::io::Result<()> {
        self.caller.extend(samples);
        self.pump()
    }

    pub fn agent(&mut self, samples: &[i16]) -> std::io::Result<()> {
        self.agent.extend(samples);
        self.pump()
    }

    fn pump(&mut self) -> std::io::Result<()> {
        let (c, a) = (self.caller.len(), self.agent.len());
        if c > a + self.max_skew {
            self.agent.extend(std::iter::repeat_n(0, c - a - self.max_skew));
        } else if a > c + self.max_skew {
            self.caller.extend(std::iter::repeat_n(0, a - c - self.max_skew));
        }
        let n = self.caller.len().min(self.agent.len());
        if n > 0 {
            self.writer.write_pairs(self.caller.drain(..n).zip(self.agent.drain(..n)))?;
        }
        if self.last_flush.elapsed() >= Duration::from_millis(250) {
            self.writer.flush()?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    /// Writes what is left (padding the shorter side), fixes the header and marks the
    /// ticket finished.
    pub fn finish(mut self) -> std::io::Result<(Ticket, WavInfo)> {
        let n = self.caller.len().max(self.agent.len());
        self.caller.resize(n, 0);
        self.agent.resize(n, 0);
        self.writer.write_pairs(self.caller.drain(..).zip(self.agent.drain(..)))?;
        let info = self.writer.finish()?;
        self.ticket.finished = true;
        self.ticket.save(&self.spool)?;
        Ok((self.ticket, info))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CALL: &str = "ca_0123456789abcdef";

    #[test]
    fn channels_stay_aligned_when_one_side_is_silent() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = CallRecorder::start(dir.path(), CALL, 8000).unwrap();
        // One second of caller audio, the agent silent throughout.
        for _ in 0..50 {
            r.caller(&[500; 160]).unwrap();
        }
        let (ticket, info) = r.finish().unwrap();
        assert!(ticket.finished);
        assert_eq!(info.duration_ms, 1000);
        let saved: Ticket =
            serde_json::from_slice(&std::fs::read(Ticket::path(dir.path(), CALL).unwrap()).unwrap()).unwrap();
        assert_eq!(saved, ticket);
        assert!(ticket.key.starts_with("recordings/") && ticket.key.ends_with(&format!("/{CALL}.wav")));
        assert!(ticket.is_for(CALL));
    }

    #[test]
    fn a_recorder_killed_at_once_leaves_a_repairable_recording() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = CallRecorder::start(dir.path(), CALL, 8000).unwrap();
        r.caller(&[500; 160]).unwrap();
        r.agent(&[-500; 160]).unwrap();
        // A crash well inside the first 250 ms: no flush, no finish.
        std::mem::forget(r);
        let wav = Ticket::wav_path(dir.path(), CALL).unwrap();
        assert!(std::fs::metadata(&wav).unwrap().len() >= 44, "never a 0-byte recording");
        let info = vox_audio::wav::repair(&wav).unwrap();
        assert_eq!((info.channels, info.sample_rate), (2, 8000));
        assert_eq!(std::fs::metadata(&wav).unwrap().len(), info.size_bytes);
    }

    #[test]
    fn names_that_are_not_call_ids_never_become_spool_paths() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        for bad in ["../../etc/x", "ca_../../x", "ca_0123456789abcdef/..", "", "ca_0123456789ABCDEF", "/tmp/ca_x"] {
            let err = CallRecorder::start(&spool, bad, 8000).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(Ticket::path(&spool, bad).is_err() && Ticket::wav_path(&spool, bad).is_err(), "{bad:?}");
        }
        assert!(!spool.exists(), "nothing was created, not even the spool folder");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_ticket_must_point_at_its_own_calls_recording() {
        let key = |k: &str| Ticket { call_id: CALL.into(), key: k.into(), finished: true };
        assert!(key(&recording_key(CALL, chrono::Utc::now())).is_for(CALL));
        assert!(!key("prompts/hello.wav").is_for(CALL));
        assert!(!key(&format!("recordings/2026/01/01/{CALL}.wav")).is_for("ca_fedcba9876543210"));
    }
}
