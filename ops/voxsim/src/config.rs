//! voxsim's settings: clap flags, each with a `VOXSIM_*` environment name.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::model;

/// The Vox carrier simulator: Twilio-compatible calls and LiveKit SIP dial-out whose
/// outcomes come from a seeded model, with status callbacks and Twilio Media Streams.
#[derive(Debug, Clone, Parser)]
#[command(name = "voxsim", version = vox_telemetry::build::FULL_VERSION, about)]
pub struct Args {
    /// HTTP listen address.
    #[arg(long, env = "VOXSIM_LISTEN", default_value = "127.0.0.1:8070")]
    pub listen: SocketAddr,

    /// Write the bound address (host:port) here once listening (for tests and scripts).
    #[arg(long, env = "VOXSIM_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,

    /// The Twilio account SID callers authenticate as and that owns every call.
    #[arg(long, env = "VOXSIM_ACCOUNT_SID", default_value = "ACvoxsim00000000000000000000000000")]
    pub account_sid: String,

    /// The account's auth token: HTTP Basic password of the REST API, and the key that
    /// signs every request voxsim makes (X-Twilio-Signature), as Twilio does. Give voxgate
    /// the same value as its TWILIO_AUTH_TOKEN.
    #[arg(long, env = "VOXSIM_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: String,

    /// LiveKit API key (the JWT issuer); the LiveKit SIP API is off without key and secret.
    #[arg(long, env = "VOXSIM_LIVEKIT_API_KEY")]
    pub livekit_api_key: Option<String>,

    /// LiveKit API secret that signs the callers' JWTs.
    #[arg(long, env = "VOXSIM_LIVEKIT_API_SECRET", hide_env_values = true)]
    pub livekit_api_secret: Option<String>,

    #[command(flatten)]
    pub model: model::Params,

    /// Log format: "text" or "json".
    #[arg(long, env = "VOXSIM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Args {
    /// Settings for a test: loopback, the given auth token, default model.
    pub fn for_tests(auth_token: &str) -> Self {
        Args {
            listen: ([127, 0, 0, 1], 0).into(),
            address_file: None,
            account_sid: "ACvoxsim00000000000000000000000000".into(),
            auth_token: auth_token.into(),
            livekit_api_key: None,
            livekit_api_secret: None,
            model: model::Params::default(),
            log_format: "text".into(),
        }
    }

    /// Checks what clap cannot; the error names the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.auth_token.is_empty() {
            return Err("--auth-token (VOXSIM_AUTH_TOKEN) must not be empty".into());
        }
        if self.account_sid.is_empty() {
            return Err("--account-sid must not be empty".into());
        }
        if self.livekit_api_key.is_some() != self.livekit_api_secret.is_some() {
            return Err("--livekit-api-key and --livekit-api-secret go together".into());
        }
        self.model.validate()
    }
}
