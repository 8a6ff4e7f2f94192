//! How every Vox HTTP/gRPC server takes connections: TLS when configured ([`crate::tls`]),
//! `TCP_NODELAY` on every socket (20 ms audio frames must not wait for Nagle), and the
//! limits that keep a flood of idle or slow connections from taking the server down:
//!
//! - **A connection cap** ([`Limits::max_connections`]). A connection over the cap is
//!   closed at once, before its TLS handshake, and logged (at most every 10 s); the ones
//!   already open, such as nodes' long-lived HTTP/2 links, carry on.
//! - **A first-request deadline** ([`Limits::first_request`]): a connection that has not
//!   sent a whole first request in time is closed (this also bounds HTTP/2 and HTTP/1
//!   protocol detection, which otherwise waits forever). Every Vox client connects lazily,
//!   when it has a request to send, so this never cuts a healthy client.
//! - **A header deadline** for every later HTTP/1.1 request on a kept-alive connection
//!   ([`Limits::header_read`]), against clients that trickle their headers.
//! - **HTTP/2 keep-alive pings**, so connections to peers that vanished are closed.
//!
//! A TLS handshake has its own 10 s deadline (axum-server's default).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum_server::accept::{Accept, TcpConfigAcceptor, TcpSocketConfig};
use axum_server::tls_rustls::RustlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::tls::TlsFiles;

/// What one server lets its clients take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; more are closed as they arrive.
    pub max_connections: usize,
    /// From accept (after the TLS handshake) to a complete first request.
    pub first_request: Duration,
    /// From the first byte of a later HTTP/1.1 request to its last header.
    pub header_read: Duration,
}

impl Limits {
    /// The deadlines every Vox server uses, with `max_connections`.
    pub const fn with_max_connections(max_connections: usize) -> Self {
        Limits { max_connections, first_request: Duration::from_secs(10), header_read: Duration::from_secs(10) }
    }
}

/// Serves `app` on `listener` (TLS when `tls` is given) within `limits` until `shutdown`
/// resolves, then lets open requests finish for up to `grace`. Handlers can read the
/// peer's address (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<&TlsFiles>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown.await;
            handle.graceful_shutdown(Some(grace));
        }
    });
    let addr = listener.local_addr().context("read the bound address")?;
    let listener = listener.into_std().context("take the listener")?;
    let tcp = TcpConfigAcceptor::new(TcpSocketConfig::new().nodelay(true));
    let service = app.layer(vox_telemetry::requests::ServerLayer).into_make_service_with_connect_info::<SocketAddr>();
    let cap = Arc::new(Cap::new(addr, limits.max_connections));
    let mut server = axum_server::from_tcp(listener)?.handle(handle).first_request_timeout(limits.first_request);
    let http = server.http_builder();
    http.http1().header_read_timeout(limits.header_read);
    http.http2().keep_alive_interval(Duration::from_secs(20)).keep_alive_timeout(Duration::from_secs(20));
    match tls {
        Some(files) => {
            let config = crate::tls::reloading(files).await?;
            server.acceptor(Capped { inner: RustlsAcceptor::new(config).acceptor(tcp), cap }).serve(service).await
        }
        None => server.acceptor(Capped { inner: tcp, cap }).serve(service).await,
    }
    .context("serve")
}

/// The connection permits of one server.
#[derive(Debug)]
struct Cap {
    addr: SocketAddr,
    max: usize,
    permits: Arc<Semaphore>,
    /// Connections closed for the cap since the last log line, and when that was.
    refused: AtomicU64,
    last_logged: std::sync::Mutex<Option<Instant>>,
}

impl Cap {
    fn new(addr: SocketAddr, max: usize) -> Self {
        Cap {
            addr,
            max,
            permits: Arc::new(Semaphore::new(max.max(1))),
            refused: AtomicU64::new(0),
            last_logged: std::sync::Mutex::new(None),
        }
    }

    fn refuse(&self) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last_logged.lock() else { return };
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(addr = %self.addr, max_connections = self.max, refused, "connection cap reached; new connections are closed");
        }
    }
}

/// An acceptor that takes a permit before the inner one (TLS) runs, and holds it for the
/// connection's life.
#[derive(Debug, Clone)]
struct Capped<A> {
    inner: A,
    cap: Arc<Cap>,
}

type Accepted<St, Sv> = std::io::Result<(Permitted<St>, Sv)>;

impl<A, S> Accept<TcpStream, S> for Capped<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Permitted<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn std::future::Future<Output = Accepted<A::Stream, A::Service>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.cap.permits).try_acquire_owned() else {
            self.cap.refuse();
            drop(stream);
            return Box::pin(std::future::ready(Err(std::io::Error::other("connection cap reached"))));
        };
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((Permitted { stream, _permit: permit }, service))
        })
    }
}

/// A connection's stream with the permit it holds; dropping it frees the permit.
#[derive(Debug)]
pub struct Permitted<S> {
    stream: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Permitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Permitted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, None, limits, async move { drop(stopped.await) }, Duration::ZERO));
        (addr, stop)
    }

    async fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .map_err(std::io::Error::other)??;
        Ok(out)
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_the_rest_served() {
        let (addr, _stop) = start(Limits::with_max_connections(3)).await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The fourth is closed without an answer.
        let refused = get(addr).await.unwrap_or_default();
        assert!(refused.is_empty(), "over the cap, got {refused:?}");
        // One idle connection leaves: a new request is served.
        idle.pop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(get(addr).await.unwrap().ends_with("ok"));
    }

    #[tokio::test]
    async fn silent_and_trickling_clients_are_cut_off() {
        let limits = Limits {
            max_connections: 8,
            first_request: Duration::from_millis(300),
            header_read: Duration::from_millis(300),
        };
        let (addr, _stop) = start(limits).await;
        // Silent: connects and sends nothing.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // Trickling: a header every 100 ms, never finishing.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let trickle = tokio::spawn(async move {
            for i in 0..30 {
                if slow.write_all(format!("x-{i}: y\r\n").as_bytes()).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the silent connection stays open: {n:?}");
        assert!(trickle.await.unwrap(), "the trickling client was never cut off");
        assert!(get(addr).await.unwrap().ends_with("ok"));
    }
}
