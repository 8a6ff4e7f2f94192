//! Telephony providers: where the dialler places calls.
//!
//! One trait, two wire protocols:
//! * [`twilio::Twilio`]: Twilio's REST API (create a call with a status callback and a
//!   voice webhook on voxgate, hang up). Outcomes arrive later at voxgate as signed
//!   callbacks and become call transitions there; the dialler reads them back from
//!   voxbridge. `--provider sim` is this same protocol pointed at voxsim, the carrier
//!   simulator, with its default address and account.
//! * [`livekit::LiveKit`]: `CreateSIPParticipant` through the LiveKit server API, as the
//!   seeds' hosts dial. It waits until the callee answers, so the outcome comes back in
//!   the reply and the dialler makes the transition itself.

pub mod livekit;
pub mod twilio;

use std::fmt;

/// One call to place.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The Vox call id (carried in every URL the carrier calls back).
    pub call_id: String,
    /// E.164.
    pub to: String,
    /// The campaign's caller id.
    pub from: String,
    /// Seconds to let it ring before giving up.
    pub ring_timeout_seconds: u32,
}

/// How a call placed by a provider that waits for the answer ended its ringing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Busy,
    NoAnswer,
    Failed(String),
}

/// What the provider said when the call was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The carrier's id for the call (Twilio CallSid, LiveKit SIP call id).
    pub provider_call_id: String,
    /// Known at once for providers that wait for the answer; `None` when the outcome
    /// arrives later through callbacks.
    pub outcome: Option<Outcome>,
}

/// Why a call was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// The provider answered and refused: nothing was placed. `retryable` for overload
    /// and server errors (429, 5xx), where the number goes back to the pool; otherwise
    /// the request itself was wrong (e.g. an invalid number) and the call fails.
    Refused { status: u16, message: String, retryable: bool },
    /// The provider could not be reached: nothing was placed.
    Unreachable(String),
    /// The request went out and no answer came back in time: the call may or may not
    /// have been placed, so it is never placed again on this attempt.
    Unknown(String),
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::Refused { status, message, .. } => write!(f, "provider refused ({status}): {message}"),
            PlaceError::Unreachable(m) => write!(f, "provider unreachable: {m}"),
            PlaceError::Unknown(m) => write!(f, "no answer from the provider: {m}"),
        }
    }
}

impl PlaceError {
    /// Nothing was placed and trying again later may work.
    pub fn back_to_pool(&self) -> bool {
        matches!(self, PlaceError::Refused { retryable: true, .. } | PlaceError::Unreachable(_))
    }

    /// A short reason for the call record.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        let kind = match self {
            PlaceError::Refused { .. } => "provider_refused",
            PlaceError::Unreachable(_) => "provider_unreachable",
            PlaceError::Unknown(_) => "provider_timeout",
        };
        let mut reason = format!("{kind}: {text}");
        // The text comes from the carrier and may hold multi-byte characters:
        // cut at the last character boundary within the limit, never inside one.
        let mut cut = reason.len().min(REASON_MAX_BYTES);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason
    }
}

/// Longest call-record reason, in bytes.
const REASON_MAX_BYTES: usize = 480;

/// Places and hangs up calls.
#[tonic::async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// "twilio", "sim" or "livekit": the metrics label.
    fn name(&self) -> &'static str;
    async fn place(&self, dial: &Dial) -> Result<Placed, PlaceError>;
    async fn hang_up(&self, provider_call_id: &str) -> Result<(), String>;
}

/// Maps a reqwest failure to what it says about the call.
fn request_error(e: &reqwest::Error) -> PlaceError {
    if e.is_connect() { PlaceError::Unreachable(e.to_string()) } else { PlaceError::Unknown(e.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_reason_is_cut_on_a_character_boundary() {
        // The prefix and the "x" take 43 bytes, so every "é" starts at an odd offset
        // and byte 480 falls inside one, where `truncate(480)` panicked.
        let message = format!("{}{}", "x", "é".repeat(300));
        let e = PlaceError::Refused { status: 400, message, retryable: false };
        let reason = e.reason();
        assert!(reason.len() <= REASON_MAX_BYTES);
        assert!(reason.len() >= REASON_MAX_BYTES - 1);
        assert!(reason.ends_with('é'));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_carrier_text_gives_a_bounded_reason(message in ".{0,600}", status in any::<u16>()) {
            for e in [
                PlaceError::Refused { status, message: message.clone(), retryable: false },
                PlaceError::Unreachable(message.clone()),
                PlaceError::Unknown(message.clone()),
            ] {
                let reason = e.reason();
                prop_assert!(reason.len() <= REASON_MAX_BYTES);
                prop_assert!(reason.starts_with("provider_"));
            }
        }
    }
}
