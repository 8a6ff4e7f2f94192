//! voxgate's settings: clap flags, each with an environment name.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The Vox edge: carrier media streams, the fleet routes and the console REST API.
#[derive(Debug, Clone, Parser)]
#[command(name = "voxgate", version = vox_telemetry::build::FULL_VERSION, about)]
pub struct Args {
    /// HTTP/WSS listen address.
    #[arg(long, env = "VOX_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Write the bound address here once listening (for tests and scripts).
    #[arg(long, env = "VOX_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,

    /// voxbridge's gRPC URL, e.g. http://127.0.0.1:7070.
    #[arg(long, env = "VOX_BRIDGE_URL")]
    pub bridge_url: String,

    /// CA certificate (PEM) to trust for https:// links: an https:// --bridge-url and
    /// workers that serve TLS (a cluster CA). Without it, https:// links trust the public
    /// web roots.
    #[arg(long, env = "VOX_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Serve HTTPS/WSS with this certificate chain (PEM); with --tls-key. Re-read when
    /// the file changes, so a renewed certificate needs no restart. URLs the gateway hands
    /// out (stream URLs in TwiML, web sessions' ws_url) then use wss:// unless
    /// --public-url says otherwise.
    #[arg(long, env = "VOX_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "VOX_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// This gateway node's API secret from registration (vxn.<node id>.<secret>).
    #[arg(long, env = "VOX_NODE_SECRET", hide_env_values = true)]
    pub node_secret: String,

    /// The console node's API secret (NODE_KIND_CONSOLE). This gateway serves the web
    /// console, so it also heartbeats as that node: the console's Singletons screen then
    /// shows the version and CPU/RAM of the machine serving it.
    #[arg(long, env = "VOX_CONSOLE_NODE_SECRET", hide_env_values = true)]
    pub console_node_secret: Option<String>,

    /// Worker URLs to use besides the fleet voxbridge knows, comma-separated
    /// (unix:///run/vox/voxcore_1.sock,http://10.0.0.5:7101): the seeds' FLEET_URLS.
    #[arg(long, env = "FLEET_URLS", value_delimiter = ',')]
    pub fleet_urls: Vec<String>,

    /// Twilio account auth token: media stream requests must carry a valid
    /// X-Twilio-Signature made with it. Without it the Twilio route refuses every stream.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,

    /// LiveKit server URL (https://… or http://…), for widget tokens and SIP dial-out.
    #[arg(long, env = "LIVEKIT_URL")]
    pub livekit_url: Option<String>,

    /// LiveKit outbound SIP trunk that `POST /livekit/dialout` dials through.
    #[arg(long, env = "LIVEKIT_SIP_TRUNK_ID")]
    pub livekit_sip_trunk_id: Option<String>,

    /// LiveKit API key: webhooks (`POST /livekit/dispatch`) must be signed by it.
    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub livekit_api_key: Option<String>,

    /// LiveKit API secret that signs webhooks.
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    pub livekit_api_secret: Option<String>,

    /// The public base URL carriers use to reach this gateway (wss://voice.example.com),
    /// for signature checks behind proxies. Default: taken from each request's Host.
    #[arg(long, env = "VOX_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How long an answered outbound call may wait for a free worker before it is
    /// abandoned (the callee hears a short message), milliseconds.
    #[arg(long, env = "VOX_ABANDON_WINDOW_MS", default_value_t = 2000)]
    pub abandon_window_ms: u64,

    /// The dialler's health server (http://127.0.0.1:8090), whose live pacing figures
    /// the console shows through `GET /api/v1/dialler`.
    #[arg(long, env = "VOX_DIALLER_URL")]
    pub dialler_url: Option<String>,

    /// How long a worker reservation waits for its media stream, milliseconds (the
    /// reservation an outbound answer makes waits 15 s: the carrier connects the stream
    /// after the answer).
    #[arg(long, env = "VOX_RESERVATION_TTL_MS", default_value_t = 5000)]
    pub reservation_ttl_ms: u32,

    /// Largest WebSocket message accepted from a carrier, bytes.
    #[arg(long, env = "VOX_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Close a media stream that sends nothing for this long, seconds.
    #[arg(long, env = "VOX_IDLE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub idle_timeout_seconds: u64,

    /// Proxies in front of voxgate (HAProxy, a load balancer), comma-separated IP
    /// addresses: from them, `X-Forwarded-For` names the client (for rate limits) and
    /// `X-Forwarded-Proto: https` makes the URLs voxgate hands out https:// and wss://.
    /// From anyone else those headers are ignored.
    #[arg(long, alias = "trusted-proxy", env = "VOX_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Requests per second one client address may make (a burst of twice that is allowed).
    #[arg(long, env = "VOX_RATE_LIMIT_PER_SECOND", default_value_t = 200)]
    pub rate_limit_per_second: u32,

    /// Open connections at most (each live call's media stream is one); more are closed
    /// as they arrive.
    #[arg(long, env = "VOX_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(16..))]
    pub max_connections: u64,

    /// Sign-in attempts per minute one client address may make.
    #[arg(long, env = "VOX_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub login_attempts_per_minute: u32,

    /// Most rows of one numbers upload (`POST /api/v1/campaigns/{id}/numbers`); a larger
    /// file is refused whole, naming its row count. 200000 is also voxbridge's ceiling.
    #[arg(long, env = "VOX_MAX_UPLOAD_ROWS", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    pub max_upload_rows: u64,

    /// The built web console (`console/dist`, made by `bash console/build.sh`), served at
    /// `/`. Without it, `/` answers a page saying how to build it.
    #[arg(long, env = "VOX_CONSOLE_DIR")]
    pub console_dir: Option<PathBuf>,

    /// "pretty" or "json".
    #[arg(long, env = "VOX_LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
}
