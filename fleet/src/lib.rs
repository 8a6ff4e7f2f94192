//! voxcore, a Vox fleet worker: one process holds one call slot (the seeds'
//! `MAX_CONCURRENT_CALLS`, 1 in production) on its own Unix socket or TCP port.
//!
//! A gateway reserves the slot for a call (`Reserve`; a busy worker answers
//! RESOURCE_EXHAUSTED before any side effect, a draining one UNAVAILABLE), then opens the
//! bidirectional media stream. The worker runs the call's agent ([`agents`]), records
//! both sides to a stereo WAV in its spool ([`recording`]), hangs up dead calls
//! ([`session`] watchdogs), reports the call's progress to voxbridge, and uploads the
//! recording when the call ends ([`spool`]), finishing at the next start whatever a
//! crash interrupted. Where recordings go is the region's storage as voxbridge says
//! ([`storage`]: an S3 bucket, or voxbridge's folder in embedded mode), never settings
//! of the host's own. [`host`] runs N workers on a machine and heartbeats them, on Unix
//! sockets or on TCP ports other machines reach. Only a gateway with a token voxbridge
//! signed, or the worker's own host, gets past [`auth`].

pub mod agents;
pub mod auth;
pub mod config;
pub mod host;
pub mod host_metrics;
pub mod recording;
pub mod session;
pub mod slots;
pub mod spool;
pub mod stats;
pub mod storage;
pub mod worker;
