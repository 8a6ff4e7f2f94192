//! Who the client is when voxgate sits behind a proxy (HAProxy, a cloud load balancer).
//!
//! Behind a proxy every connection comes from the proxy, so per-client rate limits would
//! throttle all clients as one and the URLs voxgate hands out would say `ws://` although
//! the client spoke TLS to the proxy. A proxy named in `--trusted-proxies` is believed:
//! the client is the last address it appended to `X-Forwarded-For`, and
//! `X-Forwarded-Proto: https` makes handed-out URLs `https://`/`wss://`. From anyone else
//! these headers are removed before any handler sees them, so a client cannot pick its
//! own rate-limit bucket.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The request's client address, after [`resolve`].
pub use voxgate_rest::ClientAddr;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Default)]
pub struct TrustedProxies(pub Vec<IpAddr>);

const FORWARDING_HEADERS: [&str; 4] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"];

/// The address a trusted proxy appended last to `X-Forwarded-For` (earlier entries were
/// written by whoever sent the request, and may be anything).
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    last.rsplit(',').next()?.trim().parse().ok()
}

/// True when a trusted proxy said the client spoke TLS to it.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https") || p.trim().eq_ignore_ascii_case("wss"))
}

/// Middleware: sets [`ClientAddr`], and strips forwarding headers not from a trusted proxy.
pub async fn resolve(
    State(trusted): State<Arc<TrustedProxies>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = if trusted.0.contains(&peer.ip()) {
        last_forwarded_for(req.headers()).unwrap_or(peer.ip())
    } else {
        for h in FORWARDING_HEADERS {
            req.headers_mut().remove(h);
        }
        peer.ip()
    };
    req.extensions_mut().insert(ClientAddr(client));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::Router;
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn seen(peer: &str, headers: &[(&str, &str)]) -> String {
        let trusted = Arc::new(TrustedProxies(vec!["10.0.0.1".parse().unwrap()]));
        let app = Router::new()
            .route(
                "/",
                get(|axum::Extension(ClientAddr(ip)): axum::Extension<ClientAddr>, h: HeaderMap| async move {
                    format!("{ip} https={}", forwarded_https(&h))
                }),
            )
            .layer(axum::middleware::from_fn_with_state(trusted, resolve))
            .layer(MockConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        let mut req = axum::http::Request::builder().uri("/");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        String::from_utf8(axum::body::to_bytes(res.into_body(), 1024).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_trusted_proxy_names_the_client_and_the_scheme() {
        let h = [("x-forwarded-for", "6.6.6.6, 203.0.113.7"), ("x-forwarded-proto", "https")];
        assert_eq!(seen("10.0.0.1", &h).await, "203.0.113.7 https=true", "the proxy's own entry, not the client's");
        assert_eq!(seen("10.0.0.1", &[]).await, "10.0.0.1 https=false");
    }

    #[tokio::test]
    async fn anyone_else_cannot_choose_their_address_or_scheme() {
        let h = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")];
        assert_eq!(seen("198.51.100.2", &h).await, "198.51.100.2 https=false");
    }
}
