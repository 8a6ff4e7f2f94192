//! The console REST API of Vox: JSON over HTTP under `/api/v1`, each route translated to
//! one voxbridge gRPC call with the caller's bearer token forwarded.
//!
//! What belongs here: the routes, their JSON shapes (`dto`), the error shape every
//! failure answers with (`error`), the extractors that keep axum's plain-text rejections
//! out (`extract`) and the OpenAPI document. What does not: serving, TLS, static files
//! and media, which voxgate owns; it `.merge()`s [`router`] into its own app.

mod bridge;
mod csv;
pub mod dto;
pub mod error;
mod extract;
mod openapi;
mod routes;

use std::time::Duration;

use tonic::transport::Channel;

pub use openapi::ApiDoc;

/// Largest JSON request body.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Largest numbers upload (JSON or CSV).
pub const UPLOAD_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// Most rows of one numbers upload by default; also voxbridge's ceiling (a higher
/// setting is refused by voxbridge).
pub const DEFAULT_MAX_UPLOAD_ROWS: usize = vox_domain::campaign::MAX_UPLOAD_ROWS;
/// Deadline of each unary voxbridge call (the dashboard stream has none).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// What the API needs to run.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// A channel to voxbridge; a lazy one is fine (an unreachable voxbridge answers 503).
    pub bridge: Channel,
    /// Deadline of each unary call; [`RPC_TIMEOUT`] by default.
    pub rpc_timeout: Duration,
    /// The dialler's status server (lazy), for `GET /api/v1/dialler`.
    pub dialler: Option<Channel>,
    /// The gateway's node secret: sign-ins are relayed with it and the client's address
    /// ([`ClientAddr`]), so voxbridge counts sign-in attempts per client, not per gateway.
    /// Without it they all count against the gateway's own address.
    pub node_secret: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// Most rows of one numbers upload; [`DEFAULT_MAX_UPLOAD_ROWS`] by default.
    pub max_upload_rows: usize,
}

/// The request's client address (the TCP peer, or the client a trusted proxy names),
/// which voxgate sets on every request before the API sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

impl RestConfig {
    pub fn new(bridge: Channel) -> Self {
        RestConfig {
            bridge,
            rpc_timeout: RPC_TIMEOUT,
            dialler: None,
            node_secret: None,
            max_upload_rows: DEFAULT_MAX_UPLOAD_ROWS,
        }
    }
}

/// The API's routes, all under `/api/v1`, with their state inside.
pub fn router(config: RestConfig) -> axum::Router {
    routes::routes().with_state(
        bridge::Bridge::new(config.bridge, config.rpc_timeout)
            .with_dialler(config.dialler)
            .with_node_secret(config.node_secret)
            .with_max_upload_rows(config.max_upload_rows),
    )
}
