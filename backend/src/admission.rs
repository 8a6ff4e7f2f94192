//! Which requests voxbridge works on, and how many at once, so that a flood of slow or
//! unauthenticated requests cannot starve the nodes that keep the cluster alive.
//!
//! Every request is in one of three classes, each with its own pool of permits:
//!
//! - **node**: it carries a valid node API secret (fleet hosts, gateways, diallers; their
//!   heartbeats, call moves and leases, and the sign-ins a gateway relays). The secret is
//!   checked here, before the body is read, so a forged one lands in another class.
//! - **user**: a user's access token with a good signature (the console through voxgate,
//!   grpcurl; the account is checked by the handler), or a valid API key (integrations;
//!   checked here like a node secret).
//! - **anonymous**: anything else: sign-ins sent directly, no or bad credentials,
//!   `/health` and `/metrics`.
//!
//! A request waits at most [`QUEUE_WAIT`] for a permit of its class, then is refused
//! (gRPC `RESOURCE_EXHAUSTED`, or HTTP 503 with `Retry-After`), and must produce its
//! response within [`REQUEST_DEADLINE`] (a body sent too slowly included), or it is cut
//! off with `DEADLINE_EXCEEDED`. Streams (the dashboard watch, recording reads) hold a
//! permit only until their first response, not for their whole life.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::bridge::Bridge;

/// Requests of nodes in flight at once.
pub const NODE_PERMITS: usize = 256;
/// Requests of signed-in users in flight at once.
pub const USER_PERMITS: usize = 256;
/// Anonymous requests in flight at once.
pub const ANONYMOUS_PERMITS: usize = 128;
/// How long a request may wait for a permit.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// How long a request may take to its response headers (reading its body included).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// The node whose secret admission checked, as read then, handed to the handler in the
/// request's extensions (which clients cannot set) so that a hot path (heartbeats) need
/// not read the node and hash its secret a second time. It is the node as it was when the
/// request arrived, at most [`QUEUE_WAIT`] before the handler runs: a request racing a
/// lifecycle change or a secret rotation sees either side of it, as any request in flight
/// does.
#[derive(Debug, Clone)]
pub struct AdmittedNode(pub vox_domain::node::Node);

#[derive(Debug)]
pub struct Admission {
    bridge: Arc<Bridge>,
    nodes: Arc<Semaphore>,
    users: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
}

impl Admission {
    pub fn new(bridge: Arc<Bridge>) -> Self {
        Admission {
            bridge,
            nodes: Arc::new(Semaphore::new(NODE_PERMITS)),
            users: Arc::new(Semaphore::new(USER_PERMITS)),
            anonymous: Arc::new(Semaphore::new(ANONYMOUS_PERMITS)),
        }
    }
}

/// The middleware: classify, take a permit, run within the deadline.
pub async fn admit(State(admission): State<Arc<Admission>>, mut req: Request, next: Next) -> Response {
    let auth = &admission.bridge.auth;
    let (class, pool) = if auth.carries_user_token(req.headers()) {
        ("user", &admission.users)
    } else if let Some(node) = auth.node_of(req.headers()).await {
        req.extensions_mut().insert(AdmittedNode(node));
        ("node", &admission.nodes)
    } else if auth.carries_api_key(req.headers()).await {
        ("user", &admission.users)
    } else {
        ("anonymous", &admission.anonymous)
    };
    let grpc = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let shed = |reason: &'static str| {
        admission
            .bridge
            .metrics
            .requests_shed
            .get_or_create(&vec![("class", class.into()), ("reason", reason.into())])
            .inc();
    };
    let Ok(Ok(_permit)) = tokio::time::timeout(QUEUE_WAIT, Arc::clone(pool).acquire_owned()).await else {
        shed("busy");
        return refuse(grpc, Refusal::Busy);
    };
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            shed("deadline");
            refuse(grpc, Refusal::Deadline)
        }
    }
}

enum Refusal {
    Busy,
    Deadline,
}

fn refuse(grpc: bool, why: Refusal) -> Response {
    let (status, message) = match why {
        Refusal::Busy => (
            tonic::Status::resource_exhausted("voxbridge is at capacity; retry in a few seconds"),
            "voxbridge is at capacity; retry in a few seconds",
        ),
        Refusal::Deadline => (
            tonic::Status::deadline_exceeded("the request took longer than 30 s (its body arrived too slowly?)"),
            "the request took longer than 30 s",
        ),
    };
    if grpc {
        return status.into_http::<axum::body::Body>().into_response();
    }
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}
