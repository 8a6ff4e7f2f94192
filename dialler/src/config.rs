//! voxdialler's settings: flags, each with the environment variable of the seeds'
//! `.env` where one exists (`LOOP_INTERVAL_SECONDS`, `HEALTH_STALE_SECONDS`, ...).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use vox_domain::campaign::Compliance;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// voxsim, the carrier simulator (Twilio's protocol at http://127.0.0.1:8070).
    Sim,
    /// Twilio or any carrier speaking its REST API.
    Twilio,
    /// LiveKit's SIP API (CreateSIPParticipant).
    Livekit,
}

/// voxsim's default account, used with `--provider sim` when no SID is given.
pub const SIM_ACCOUNT_SID: &str = "ACvoxsim00000000000000000000000000";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "voxdialler",
    version = vox_telemetry::build::FULL_VERSION,
    about = "The Vox outbound dialler: fenced leadership, predictive pacing, fair share"
)]
pub struct Args {
    /// voxbridge's gRPC URL.
    #[arg(long, env = "VOX_BRIDGE_URL", default_value = "http://127.0.0.1:7070")]
    pub bridge_url: String,

    /// CA certificate (PEM) to trust for an https:// --bridge-url (a cluster CA).
    #[arg(long, env = "VOX_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// This dialler node's API secret from registration (vxn.<node id>.<secret>).
    #[arg(long, env = "VOX_NODE_SECRET", hide_env_values = true)]
    pub node_secret: String,

    /// Seconds between ticks.
    #[arg(long, env = "LOOP_INTERVAL_SECONDS", default_value_t = 2.0)]
    pub loop_interval_seconds: f64,

    /// Seconds between the leader's pacing reports to voxbridge, which publish each
    /// running campaign's figures on the activity feed (`campaign.pacing`) for CRMs and
    /// webhooks; 0 turns the reports off. 10 s: fresh enough for a wallboard, and about
    /// 8,640 feed events per campaign-day.
    #[arg(long, env = "PACING_REPORT_SECONDS", default_value_t = 10)]
    pub pacing_report_seconds: u32,

    /// Where the health server (`/health`, `/metrics`, `/status`, gRPC DiallerService)
    /// listens.
    #[arg(long, env = "HEALTH_LISTEN", default_value = "127.0.0.1:8090")]
    pub health_listen: SocketAddr,

    /// `/health` turns 503 when the last completed tick is older than this.
    #[arg(long, env = "HEALTH_STALE_SECONDS", default_value_t = 30)]
    pub health_stale_seconds: u64,

    /// The leadership lease's TTL: a standby takes over this long after the leader stops
    /// renewing.
    #[arg(long, env = "VOX_LEADERSHIP_TTL_SECONDS", default_value_t = 10)]
    pub leadership_ttl_seconds: u64,

    /// How long a leased call may wait to be placed before voxbridge returns it to
    /// pending.
    #[arg(long, env = "VOX_CALL_LEASE_SECONDS", default_value_t = 30)]
    pub call_lease_seconds: u32,

    #[arg(long, env = "VOX_PROVIDER", value_enum, default_value = "sim")]
    pub provider: ProviderKind,

    /// The provider's REST base URL. Default: https://api.twilio.com for twilio,
    /// http://127.0.0.1:8070 for sim.
    #[arg(long, env = "VOX_PROVIDER_URL")]
    pub provider_url: Option<String>,

    /// Twilio account SID (sim: voxsim's default account).
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,

    /// Twilio auth token: authenticates the REST calls (voxgate checks callbacks with it).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,

    /// voxgate's public base URL: where the carrier sends the answer webhook and status
    /// callbacks, and where answered LiveKit calls are attached.
    #[arg(long, env = "VOX_GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub gateway_url: String,

    /// Calls started per second across every campaign (the provider account's limit).
    #[arg(long, env = "VOX_PROVIDER_MAX_CPS", default_value_t = 20)]
    pub provider_max_cps: u32,

    /// Seconds a call rings before the carrier gives up.
    #[arg(long, env = "VOX_RING_TIMEOUT_SECONDS", default_value_t = 25)]
    pub ring_timeout_seconds: u32,

    /// The shortest ring before a dial is given up, under every campaign's own floor
    /// (its compliance.min_ring_seconds, 15 s under FCC and Ofcom): the carrier is asked
    /// for at least the higher of the two whatever --ring-timeout-seconds says, and a
    /// no-answer the carrier ended sooner is counted in voxdialler_short_rings_total.
    /// 0: only the campaigns' floors.
    #[arg(long, env = "VOX_MIN_RING_SECONDS", default_value_t = 15)]
    pub min_ring_seconds: u32,

    /// Don't ask the carrier to detect answering machines.
    #[arg(long, env = "VOX_NO_MACHINE_DETECTION")]
    pub no_machine_detection: bool,

    /// How long a create request may take before its outcome counts as unknown, ms.
    #[arg(long, env = "VOX_PROVIDER_TIMEOUT_MS", default_value_t = 5000)]
    pub provider_timeout_ms: u64,

    /// LiveKit server URL, for `--provider livekit`.
    #[arg(long, env = "LIVEKIT_URL")]
    pub livekit_url: Option<String>,

    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub livekit_api_key: Option<String>,

    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    pub livekit_api_secret: Option<String>,

    /// The outbound SIP trunk calls go through.
    #[arg(long, env = "LIVEKIT_SIP_TRUNK_ID")]
    pub livekit_sip_trunk_id: Option<String>,

    /// Write the health server's address here once it listens (for tests and scripts).
    #[arg(long)]
    pub address_file: Option<PathBuf>,

    /// "pretty" or "json".
    #[arg(long, env = "VOX_LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
}

impl Args {
    /// Seconds the carrier is asked to let a dial ring: the ring timeout, raised to the
    /// ring-time floor.
    pub fn effective_ring_timeout(&self) -> u32 {
        self.ring_timeout_seconds.max(self.min_ring_seconds)
    }

    /// The least a campaign's dials ring: its compliance floor, never under
    /// `--min-ring-seconds`.
    pub fn ring_floor(&self, compliance: &Compliance) -> u32 {
        compliance.min_ring_seconds.max(self.min_ring_seconds)
    }

    /// Seconds the carrier is asked to let a campaign's dials ring: the ring timeout,
    /// raised to the campaign's floor, whatever the provider's own timeout would be.
    pub fn ring_timeout(&self, compliance: &Compliance) -> u32 {
        self.effective_ring_timeout().max(self.ring_floor(compliance))
    }

    /// Checks the combination of settings; the error names the flag to fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if !(0.1..=60.0).contains(&self.loop_interval_seconds) {
            bail!("--loop-interval-seconds (LOOP_INTERVAL_SECONDS) must be between 0.1 and 60");
        }
        if self.pacing_report_seconds > 3600 {
            bail!("--pacing-report-seconds (PACING_REPORT_SECONDS) must be 0 (off) or at most 3600");
        }
        if !(2..=300).contains(&self.leadership_ttl_seconds) {
            bail!("--leadership-ttl-seconds must be between 2 and 300");
        }
        if !(5..=600).contains(&self.call_lease_seconds) {
            bail!("--call-lease-seconds must be between 5 and 600");
        }
        if self.min_ring_seconds > 120 {
            bail!("--min-ring-seconds (VOX_MIN_RING_SECONDS) must be at most 120, not {}", self.min_ring_seconds);
        }
        if self.provider_max_cps == 0 {
            bail!("--provider-max-cps must be at least 1");
        }
        match self.provider {
            ProviderKind::Twilio => {
                if self.twilio_account_sid.is_none() || self.twilio_auth_token.is_none() {
                    bail!(
                        "--provider twilio needs --twilio-account-sid and --twilio-auth-token (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"
                    );
                }
            }
            ProviderKind::Sim => {
                if self.twilio_auth_token.is_none() {
                    bail!("--provider sim needs --twilio-auth-token: voxsim's auth token, which voxgate also has");
                }
            }
            ProviderKind::Livekit => {
                if self.livekit_url.is_none()
                    || self.livekit_api_key.is_none()
                    || self.livekit_api_secret.is_none()
                    || self.livekit_sip_trunk_id.is_none()
                {
                    bail!(
                        "--provider livekit needs --livekit-url, --livekit-api-key, --livekit-api-secret and --livekit-sip-trunk-id"
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vox_domain::campaign::ComplianceRegime;

    fn parse(extra: &[&str]) -> Args {
        let mut argv = vec!["voxdialler", "--node-secret", "x", "--twilio-auth-token", "t"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn the_ring_time_floor_wins_over_a_shorter_timeout() {
        assert_eq!(parse(&[]).min_ring_seconds, 15);
        assert_eq!(parse(&[]).effective_ring_timeout(), 25);
        assert_eq!(parse(&["--ring-timeout-seconds", "10"]).effective_ring_timeout(), 15);
        assert_eq!(parse(&["--ring-timeout-seconds", "10", "--min-ring-seconds", "0"]).effective_ring_timeout(), 10);
        // The campaign's floor wins over a shorter ring timeout; a longer timeout stays.
        let floor_20 = Compliance { regime: ComplianceRegime::Ofcom, min_ring_seconds: 20 };
        assert_eq!(parse(&["--ring-timeout-seconds", "10"]).ring_timeout(&floor_20), 20);
        assert_eq!(parse(&["--ring-timeout-seconds", "10"]).ring_timeout(&Compliance::default()), 15);
        assert_eq!(parse(&["--ring-timeout-seconds", "30"]).ring_timeout(&floor_20), 30);
        let no_fleet_floor = parse(&["--ring-timeout-seconds", "10", "--min-ring-seconds", "0"]);
        assert_eq!(no_fleet_floor.ring_timeout(&Compliance::default()), 15, "FCC's 15 s holds without the flag");
        assert_eq!(parse(&["--min-ring-seconds", "25"]).ring_floor(&floor_20), 25);
        let err = parse(&["--min-ring-seconds", "500"]).validate().unwrap_err().to_string();
        assert!(err.contains("--min-ring-seconds"), "{err}");
    }
}
