//! The accept loop: HTTP/1.1 with upgrades and HTTP/2 (with prior
//! knowledge in plain text, by ALPN over TLS: see [`crate::tls`]), each
//! request knowing its client's address, slow clients cut off, and a
//! graceful stop.
//!
//! `axum::serve` has no header read timeout, so a client that opens
//! connections and sends headers one byte at a time (slow loris) would keep
//! them forever. Here hyper's own timer closes a connection whose request
//! headers do not arrive within `--header-read-timeout-secs`, idle
//! keep-alive connections included. Upgraded WebSockets and event streams
//! taken over from hyper are out of hyper's hands from then on; they close
//! themselves on shutdown (the event streams are waited for, as requests
//! are) and on a missing pong or the send timeout.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use std::convert::Infallible;

use axum::body::Body;
use axum::http::Request;
use axum::http::header::UPGRADE;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

use crate::conn::{Connection, Socket};
use crate::shutdown::Shutdown;
use crate::tls::Tls;

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS on every connection, if set.
    pub tls: Option<Arc<Tls>>,
    /// How often an idle HTTP/2 connection is pinged (a peer that does not
    /// answer within the send timeout is cut); none: never.
    pub ping_interval: Option<Duration>,
    /// How long a write may wait on a peer that takes nothing.
    pub send_timeout: Duration,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Kernel send buffer per connection (0: the kernel's autotuning).
    pub socket_send_buffer: usize,
    /// How long to let open requests finish once `shutdown` is triggered.
    pub grace: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then waits up to
/// `options.grace` for requests in flight.
pub async fn serve<App>(
    listener: TcpListener,
    app: App,
    options: ServeOptions,
    shutdown: Shutdown,
) -> io::Result<()>
where
    App: Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    App::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.ping_interval)
        .keep_alive_timeout(options.send_timeout)
        .max_concurrent_streams(MAX_HTTP2_STREAMS);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        // Header names are case-insensitive, but some clients look them up
        // spelt just so (Python gql's WebSocket transport wants
        // `Sec-WebSocket-Protocol`): an upgrade's answer is spelt as its
        // request was (see below). Other answers stay in lower case: title
        // case for every response cost about 2,000 instructions a publish
        // (7%, callgrind), for no client that needs it.
        .preserve_header_case(true);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        let (tcp, remote) = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_errors.on(&err).await;
                    continue;
                }
            },
        };
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = options.tls.as_ref().map(|tls| tls.acceptor());
        let (send_buffer, handshake_timeout) =
            (options.socket_send_buffer, options.header_read_timeout);
        // Set up in the connection's own task: what lives as long as the
        // connection is allocated on a worker thread, beside the rest of
        // the connection's state, not wedged between short-lived
        // allocations of the accept loop.
        tokio::spawn(async move {
            tune(&tcp, send_buffer);
            let socket = Socket::new(tcp);
            let handle = socket.writer();
            let direct = tls.is_none();
            let started = Arc::new(AtomicBool::new(false));
            let requested = started.clone();
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                requested.store(true, Ordering::Relaxed);
                // Every route may take the connection over; those that do
                // (an upgrade, an event stream) ask for it by type.
                request.extensions_mut().insert(Connection {
                    remote,
                    socket: handle.clone(),
                    direct,
                });
                let upgrade = request.headers().contains_key(UPGRADE);
                // The request's extensions hold how the client spelt its
                // header names (`preserve_header_case`): given to the 101,
                // hyper writes `Sec-WebSocket-Protocol` back as the client
                // wrote it, for clients that look it up case-sensitively.
                let spelling = upgrade.then(|| request.extensions().clone());
                let answer = app.clone().oneshot(request.map(Body::new));
                async move {
                    let mut response = answer.await?;
                    if let Some(spelling) = spelling {
                        response.extensions_mut().extend(spelling);
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let served: Served<'_> = match tls {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(socket), service);
                    Box::pin(watcher.watch(connection))
                }
                Some(tls) => {
                    // A handshake is cut off as slow request headers are.
                    let accepted = tokio::time::timeout(handshake_timeout, tls.accept(socket));
                    let Ok(Ok(stream)) = accepted.await else {
                        tracing::trace!(%remote, "TLS handshake failed or timed out");
                        return;
                    };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    Box::pin(watcher.watch(connection))
                }
            };
            if let Err(err) = first_request_within(served, handshake_timeout, &started).await {
                tracing::trace!(%remote, %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let in_flight = async {
        graceful.shutdown().await;
        shutdown.tasks_ended().await;
    };
    tokio::select! {
        () = in_flight => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!(grace = ?options.grace, "requests still open after the shutdown timeout; closing them");
        }
    }
    Ok(())
}

/// A connection being served, until it ends.
type Served<'a> = std::pin::Pin<
    Box<dyn Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>,
>;

/// Serves a connection, cut off (dropped) if no request has begun within
/// `limit`: hyper's header read timeout starts only once it has read
/// enough to tell HTTP/1.1 from HTTP/2, so a client that sends nothing
/// would otherwise keep its connection for ever. Once a request has begun
/// the timer is no longer looked at, so it costs a keep-alive connection
/// nothing per request.
async fn first_request_within(
    mut served: Served<'_>,
    limit: Duration,
    started: &AtomicBool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut timer = Some(Box::pin(tokio::time::sleep(limit)));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = served.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if started.load(Ordering::Relaxed) {
            timer = None;
        }
        match timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            // Nothing asked in time: the connection is dropped.
            Some(Poll::Ready(())) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    })
    .await
}

/// Most streams a client may open at once on one HTTP/2 connection (each
/// event stream also holds a place under the stream limits).
pub const MAX_HTTP2_STREAMS: u32 = 256;

/// The URL a person on this machine opens to reach a server listening on
/// `addr`: `localhost` for an address that listens everywhere; `https`
/// with TLS.
pub fn base_url(addr: std::net::SocketAddr, tls: bool) -> String {
    let port = addr.port();
    let scheme = if tls { "https" } else { "http" };
    match addr.ip() {
        ip if ip.is_unspecified() => format!("{scheme}://localhost:{port}"),
        std::net::IpAddr::V4(ip) => format!("{scheme}://{ip}:{port}"),
        std::net::IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{port}"),
    }
}

fn tune(tcp: &TcpStream, send_buffer: usize) {
    // Positions are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    if send_buffer > 0 {
        let _ = socket2::SockRef::from(tcp).set_send_buffer_size(send_buffer);
    }
}

/// How often a lasting accept failure is logged.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Failed accepts, logged at most once per [`ACCEPT_ERROR_LOG_INTERVAL`]
/// with the count of those not logged: out of descriptors, the loop fails
/// ten times a second for as long as it lasts.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    /// A failed accept: the client gave up (nothing to do), or the process
    /// is out of file descriptors (wait a little rather than spin).
    async fn on(&mut self, err: &io::Error) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            err.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        let now = tokio::time::Instant::now();
        if self
            .last_logged
            .is_none_or(|last| now - last >= ACCEPT_ERROR_LOG_INTERVAL)
        {
            tracing::error!(%err, not_logged_since_last = self.unlogged,
                "accepting a connection failed; retrying (logged at most every 10 s)");
            self.last_logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
