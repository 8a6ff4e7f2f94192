//! Validated domain types of Vox and the rules that hold whatever the storage or wire.
//!
//! Handlers never see raw protobuf: every request is turned into these types with
//! `TryFrom`, and a bad field becomes an [`Error`] with code `InvalidArgument` that names
//! the field and what was expected. The call state machine ([`call`]) and the time source
//! ([`clock`]) live here so every service and every storage backend applies them the same
//! way.

pub mod api_key;
pub mod call;
pub mod campaign;
pub mod clock;
pub mod error;
pub mod feed;
pub mod ids;
pub mod node;
pub mod phone;
pub mod region;
pub mod time;
pub mod user;
pub mod webhook;
pub mod webhook_endpoint;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, Result};
