//! Every HTTP listener of the hub (the portal's API, each service's
//! operations endpoints) is served by [`serve`], so no client can hold one
//! hostage:
//!
//! - at most `max_connections` are open at once; more wait in the kernel's
//!   accept queue until one closes;
//! - a TLS handshake, and each request's headers, must arrive within
//!   `header_read_timeout_secs` (hyper's header read timeout, which on a
//!   kept-alive connection also bounds the wait for the next request);
//! - a connection with no request in flight and no bytes moving for
//!   `idle_timeout_secs` is closed (a client that connects and sends
//!   nothing at all, say). A long answer (an SSE feed, a streaming produce)
//!   is a request in flight and is never cut by this.
//!
//! Every accepted socket has `TCP_NODELAY`: answers are small writes, and
//! with Nagle's algorithm a write after a write waits for the client's
//! delayed ACK (about 40 ms on Linux). With TLS, the client certificate it
//! showed travels to every request as a [`PeerCertificate`] extension.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Problems;

/// The first certificate the client presented (DER), if any, on every
/// request of a TLS connection. rustls has checked it against the
/// listener's client CA during the handshake.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate(pub Option<Arc<Vec<u8>>>);

/// How long, and how many, connections one HTTP listener keeps.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Seconds a client has for a TLS handshake, and for a request's
    /// headers once a request may start; beyond, the connection is closed.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may sit with no request in flight and nothing
    /// sent or received before it is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Connections open at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_idle_timeout_secs() -> u64 {
    60
}

fn default_max_connections() -> usize {
    1024
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout_secs: default_header_read_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            max_connections: default_max_connections(),
        }
    }
}

impl ConnectionLimits {
    /// Every problem with these limits, found under `key`.
    pub fn validate(&self, key: &str, problems: &mut Problems) {
        problems.at_least(
            &format!("{key}.header_read_timeout_secs"),
            self.header_read_timeout_secs,
            1,
        );
        problems.at_least(
            &format!("{key}.idle_timeout_secs"),
            self.idle_timeout_secs,
            1,
        );
        problems.at_least(
            &format!("{key}.max_connections"),
            u64::try_from(self.max_connections).unwrap_or(u64::MAX),
            1,
        );
    }

    fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

/// Serves `app` on `listener` until `shutdown` fires: over TLS with `tls`,
/// plain HTTP without. Then stops accepting, lets open requests finish for
/// up to `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    app: Router,
    limits: &ConnectionLimits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let tls = tls.map(|config| tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: wait instead of spinning.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            limits: limits.clone(),
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            connection.run(stream, tls).await;
            drop(slot);
        });
    }
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
}

struct Connection {
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, stream: tokio::net::TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let activity = Activity::new();
        let stream = Tracked {
            inner: stream,
            activity: activity.clone(),
        };
        let Some(tls) = tls else {
            return self.http(stream, activity, PeerCertificate(None)).await;
        };
        let handshake =
            tokio::time::timeout(self.limits.header_read_timeout(), tls.accept(stream)).await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| Arc::new(der.to_vec()));
        self.http(stream, activity, PeerCertificate(certificate))
            .await;
    }

    /// HTTP/1.1 or HTTP/2 on `io` until the client goes, the connection
    /// idles out, or shutdown.
    async fn http<I>(self, io: I, activity: Activity, certificate: PeerCertificate)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let app = self.app.clone();
        let counter = in_flight.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(certificate.clone());
            let answering = InFlight::enter(&counter);
            let app = app.clone();
            async move {
                let response = match app.oneshot(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // In flight until the last byte of the answer is sent (or
                // the client goes away): a long stream is never idle.
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &answering;
                        frame
                    }))
                }))
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout());
        builder.http2().timer(TokioTimer::new());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let idle = self.limits.idle_timeout();
        let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut closing = false;
        loop {
            tokio::select! {
                finished = connection.as_mut() => {
                    if let Err(error) = finished {
                        tracing::debug!(%error, "connection ended");
                    }
                    return;
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tokio::time::sleep(tick), if !closing => {
                    if in_flight.load(Ordering::Acquire) == 0 && activity.quiet_for() >= idle {
                        tracing::debug!("closing an idle connection");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// When a connection last moved a byte either way.
#[derive(Clone)]
struct Activity {
    since: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            since: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Release);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        self.since.elapsed().saturating_sub(last)
    }
}

/// A socket that records its traffic in an [`Activity`].
struct Tracked<I> {
    inner: I,
    activity: Activity,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(limits: ConnectionLimits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    // One byte a second for five seconds.
                    let ticks = futures::stream::unfold(0, |n| async move {
                        if n == 5 {
                            return None;
                        }
                        // Quiet for longer than the idle timeout.
                        tokio::time::sleep(Duration::from_millis(if n == 0 { 2500 } else { 300 }))
                            .await;
                        Some((
                            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b".")),
                            n + 1,
                        ))
                    });
                    Body::from_stream(ticks)
                }),
            );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            serve(listener, None, app, &limits, stop, Duration::from_secs(1)).await;
        });
        (addr, shutdown)
    }

    /// Reads until the server closes the connection; how long that took.
    async fn closed_after(stream: &mut tokio::net::TcpStream) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("the server never closed the connection"),
            }
        }
    }

    async fn get(addr: std::net::SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_others_are_served() {
        let limits = ConnectionLimits {
            idle_timeout_secs: 1,
            ..ConnectionLimits::default()
        };
        let (addr, shutdown) = start(limits).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(get(addr).await.ends_with("hello"));
        let waited = closed_after(&mut silent).await;
        assert!(
            waited >= Duration::from_millis(500),
            "closed after {waited:?}"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_long_answer_outlives_every_timeout() {
        let limits = ConnectionLimits {
            header_read_timeout_secs: 1,
            idle_timeout_secs: 1,
            ..ConnectionLimits::default()
        };
        let (addr, shutdown) = start(limits).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("the answer goes on")
                .unwrap();
            assert!(
                n > 0,
                "cut off after {:?}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buf[..n]);
        }
        let head = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let dots = answer[head..].iter().filter(|b| **b == b'.').count();
        assert_eq!(dots, 5, "{}", String::from_utf8_lossy(&answer));
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_full_house_waits_for_a_free_slot() {
        let limits = ConnectionLimits {
            idle_timeout_secs: 1,
            max_connections: 1,
            ..ConnectionLimits::default()
        };
        let (addr, shutdown) = start(limits).await;
        let _holder = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Served only once the idle holder is closed.
        let started = Instant::now();
        assert!(get(addr).await.ends_with("hello"));
        assert!(started.elapsed() >= Duration::from_millis(500));
        shutdown.cancel();
    }
}
