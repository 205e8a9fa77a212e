//! `GET /events`: the live stream as Server-Sent Events, for browsers and
//! tools that cannot use WebSockets.
//!
//! Each event is sent as the frame built once at publish
//! (`id:`, `event: position`, `data:` the same JSON as `/ws`), so every SSE
//! subscriber gets the same bytes. A browser's EventSource reconnects by
//! itself and sends `Last-Event-ID`, which resumes exactly after that event.
//! `event: gap` frames carry the same notice as `/ws`; after a `lagged` gap
//! the stream ends and the client's reconnection is told precisely what it
//! missed.
//!
//! Over HTTP/1.1 a `GET` stream is taken out of hyper's hands once hyper
//! has written the response head and the first frame: a task of its own
//! ([`write_body`]) writes the rest of the body to the socket, each frame
//! as one chunk, and hyper, its response ended, lets go of the connection
//! and of the buffers it keeps per connection (two of 8 KiB). The response
//! says `Connection: close`: when the stream ends, the task writes the last
//! chunk and closes the connection. A stream that has read everything parks
//! its socket in the live fan-out (see [`crate::delivery::fanout`]), which then writes
//! each event's frame to it as one chunk, as it does for `/ws`; the stream
//! is handed the socket back when it falls behind. `HEAD` (no body) and
//! HTTP/1.0 (no chunks) stay with hyper and read every event themselves. No
//! layer may re-encode this route's body (compression, say).

use std::convert::Infallible;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Version, header};
use axum::response::{IntoResponse, Response};
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Interval, MissedTickBehavior, interval_at};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::parse_cursor;
use super::{AppState, ReaderCaller, StreamParams, TokenParam};
use crate::access::{ConnectionPermit, Scope};
use crate::broker::{Delivery, Subscription};
use crate::conn::{Connection, Writer};
use crate::delivery::fanout::{Fanout, Framing, Handback, Seat, handed_back};
use crate::error::{Error, Problem};
use crate::shutdown::Shutdown;
use crate::stats;
use crate::wire::push_chunk;

/// The Server-Sent Events route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The live stream as Server-Sent Events.
///
/// `text/event-stream`. Each event: `id: <event id>`, `event: position`,
/// `data: <the PositionEvent JSON, as /ws sends it>`. A notice of lost
/// events: `event: gap`, `data: <Gap JSON>`; after a `lagged` gap the stream
/// ends (reconnect with `Last-Event-ID`). Comments (`: keep-alive`) keep idle
/// connections open; `retry:` suggests the reconnection delay. The
/// `Last-Event-ID` header, sent by a reconnecting EventSource, takes
/// precedence over `after`/`lastEventId`.
#[utoipa::path(
    get,
    path = "/events",
    tag = "streams",
    params(StreamParams, ResumeHeader, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "An endless stream of events",
            body = SseEvent, content_type = "text/event-stream",
            example = "retry: 2000\n\nid: 1795584285108-0\nevent: position\ndata: {\"id\":\"1795584285108-0\",\"longitude\":18.06324,\"latitude\":59.334591,\"receivedAt\":\"2026-11-25T05:24:45.10899209Z\"}\n\n"),
        (status = 400, description = "A bad stream parameter or Last-Event-ID (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`): in `Authorization` or `access_token`",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not subscribe (`forbidden`), or a page from an origin outside the allowlist (`origin-not-allowed`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The server or this address holds as many streams as allowed (`too-many-connections`); retry after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
)]
async fn events(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    method: Method,
    version: Version,
    headers: HeaderMap,
    connection: Option<Extension<Connection>>,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(params) = params.map_err(Error::from)?;
    let (after, filter) = params.parse()?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let after = parse_cursor("Last-Event-ID", last_event_id)?.or(after);
    let permit = state.access.connect(&caller)?;
    // Subscribe before the 200 goes out, so nothing published after the
    // client connected can be missed.
    let subscription = state.broker.subscribe(after, filter.clone())?;
    let socket = connection.map(|Extension(Connection { socket, .. })| {
        // A client that stops reading is cut, as on `/ws`, instead of
        // holding its connection for as long as the kernel keeps it.
        socket.set_send_timeout(state.config.send_timeout());
        socket
    });
    let live = socket
        .clone()
        .filter(|_| method == Method::GET && version == Version::HTTP_11)
        .map(|socket| Live {
            seat: state.fanout.seat(socket, filter, Framing::SseChunk),
            fanout: state.fanout.clone(),
        });
    // A stream that parks also writes its own body.
    let taken_over = socket.clone().filter(|_| live.is_some());
    let keepalive = Duration::from_secs(state.config.sse_keepalive_secs);
    let preamble = Bytes::from(format!("retry: {}\n\n", state.config.sse_retry_ms));
    let stream = frames(
        subscription,
        socket,
        live,
        state.shutdown.clone(),
        keepalive,
        preamble,
        permit,
    );
    let connection_close = taken_over.is_some();
    let mut response = match taken_over {
        Some(socket) => Body::from_stream(hand_over(stream, socket, state.shutdown.clone())),
        None => Body::from_stream(stream),
    }
    .into_response();
    let headers = response.headers_mut();
    // What parking relies on, said rather than left to hyper's choice.
    if version == Version::HTTP_11 {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    if connection_close {
        // The stream's task closes the connection when the stream ends.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The header a reconnecting EventSource sends.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ResumeHeader {
    /// Resume after this event id (what EventSource sends when it reconnects).
    #[param(
        rename = "Last-Event-ID",
        nullable = false,
        pattern = "^[0-9]{1,19}(-[0-9]{1,19})?$"
    )]
    last_event_id: Option<String>,
}

/// One Server-Sent Event as `/events` sends it (the schema of each event in
/// the stream, not of the whole body).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// `position` for an event, `gap` for a notice of lost events.
    #[schema(pattern = "^(position|gap)$")]
    event: String,
    /// The event id (absent on `gap`): the `Last-Event-ID` to resume from.
    #[schema(pattern = "^[0-9]{1,19}(-[0-9]{1,19})?$")]
    id: Option<String>,
    /// The JSON of a `PositionEvent`, or of a `Gap`.
    data: String,
}

struct SseStream {
    stats: stats::Connection,
    /// The stream's place under the connection limits, freed with the stream.
    _permit: ConnectionPermit,
    subscription: Subscription,
    /// The connection's socket, when the server set it aside.
    socket: Option<Writer>,
    live: Option<Live>,
    /// Parked (or about to park) in the fan-out, which writes live events.
    parked: bool,
    shutdown: Shutdown,
    keepalive: Interval,
    preamble: Option<Bytes>,
    ended: bool,
}

/// What a stream needs, besides its socket, to park in the fan-out.
struct Live {
    fanout: Fanout,
    seat: Arc<Seat>,
}

impl SseStream {
    /// Parks the socket if the stream has read everything. The seat goes
    /// to its shard only once hyper has flushed what it was given (the
    /// frames before this point), so pushed chunks come after them.
    fn park_if_caught_up(&mut self) {
        let (Some(live), Some(socket), false) = (&self.live, &self.socket, self.parked) else {
            return;
        };
        let Some(cursor) = self.subscription.caught_up() else {
            return;
        };
        let (fanout, seat) = (live.fanout.clone(), live.seat.clone());
        self.parked = socket.on_next_flush(move || fanout.park(&seat, cursor));
    }
}

impl Drop for SseStream {
    /// No push follows the end of the stream (hyper's last chunk) or the
    /// client's going away (or its being cut for not reading).
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.fanout.leave(&live.seat, self.parked);
        }
        if self.socket.as_ref().is_some_and(Writer::timed_out) {
            self.stats.dropped();
        }
    }
}

/// The body: the preamble, then one frame per delivery or keep-alive,
/// until shutdown or a `lagged` gap.
fn frames(
    subscription: Subscription,
    socket: Option<Writer>,
    live: Option<Live>,
    shutdown: Shutdown,
    period: Duration,
    preamble: Bytes,
    permit: ConnectionPermit,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut keepalive = interval_at(tokio::time::Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = SseStream {
        stats: stats::Connection::open("sse"),
        _permit: permit,
        subscription,
        socket,
        live,
        parked: false,
        shutdown,
        keepalive,
        preamble: Some(preamble),
        ended: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.ended {
            return None;
        }
        if let Some(preamble) = st.preamble.take() {
            return Some((Ok(preamble), st));
        }
        let frame = loop {
            st.park_if_caught_up();
            break tokio::select! {
                biased;
                () = st.shutdown.wait() => return None,
                handback = handed_back(st.live.as_ref().filter(|_| st.parked).map(|live| &*live.seat)) => {
                    st.parked = false;
                    if let Handback::Resume { cursor, last_id } = handback {
                        // hyper writes what follows once the rest of the
                        // chunk the kernel did not take has gone.
                        st.subscription.resume_at(cursor, last_id);
                    }
                    continue;
                }
                delivery = st.subscription.recv(), if !st.parked => match delivery {
                    Delivery::Event(event) => {
                        st.stats.delivered.increment(1);
                        event.sse.clone()
                    }
                    Delivery::Gap(gap) => {
                        st.ended = gap.ends_stream();
                        if st.ended {
                            st.stats.lagged();
                        }
                        Bytes::from(format!("event: gap\ndata: {}\n\n", gap.to_json()))
                    }
                },
                _ = st.keepalive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
        };
        Some((Ok(frame), st))
    })
}

/// The body of a stream that parks: hyper writes the response head and the
/// preamble; once it has flushed them, the connection is
/// [taken over](Writer::take_over) and the rest of the stream is written by
/// a task of its own ([`write_body`]). hyper's response then ends (its last
/// chunk dropped), and hyper lets go of the connection and of the buffers
/// it keeps per connection, some 16 KiB.
fn hand_over<S>(
    stream: S,
    socket: Writer,
    shutdown: Shutdown,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    enum Step<S> {
        Preamble(Pin<Box<S>>),
        Flushing(Pin<Box<S>>, oneshot::Receiver<()>),
    }
    futures::stream::unfold(Step::Preamble(Box::pin(stream)), move |step| {
        let (socket, shutdown) = (socket.clone(), shutdown.clone());
        async move {
            match step {
                Step::Preamble(mut stream) => {
                    let first = stream.next().await?;
                    let (flushed, on_flush) = oneshot::channel();
                    let hooked = socket.on_next_flush(move || {
                        let _ = flushed.send(());
                    });
                    hooked.then_some((first, Step::Flushing(stream, on_flush)))
                }
                Step::Flushing(stream, on_flush) => {
                    // Dropped unrun: the connection is closing.
                    if on_flush.await.is_ok() {
                        socket.take_over();
                        shutdown.spawn(write_body(stream, socket));
                    }
                    None
                }
            }
        }
    })
}

/// Bytes of frames a taken-over stream writes at once, at most (but always
/// a whole frame).
const BATCH_BYTES: usize = 64 * 1024;

/// The chunk that ends a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes the rest of a taken-over stream's body to its socket, each frame
/// as one chunk, until the stream ends (then the last chunk) or the
/// connection does; then closes the connection.
async fn write_body<S>(mut stream: Pin<Box<S>>, socket: Writer)
where
    S: Stream<Item = Result<Bytes, Infallible>>,
{
    loop {
        let next = tokio::select! {
            next = poll_fn(|cx| match stream.as_mut().poll_next(cx) {
                Poll::Ready(next) => Poll::Ready(Some(next)),
                // A push the kernel did not take whole: drained first, as
                // hyper's flush would.
                Poll::Pending if socket.has_pending() => Poll::Ready(None),
                Poll::Pending => {
                    // A stream that has read everything parks now.
                    socket.flushed();
                    Poll::Pending
                }
            }) => next,
            () = socket.peer_closed() => break,
        };
        let Some(mut next) = next else {
            if socket.flush().await.is_err() {
                break;
            }
            continue;
        };
        // With the frames that are ready too (a stream catching up), in
        // one write; the end of the stream as the last chunk.
        let mut chunks = Vec::new();
        let ended = loop {
            let Some(Ok(frame)) = next else {
                chunks.extend_from_slice(LAST_CHUNK);
                break true;
            };
            push_chunk(&mut chunks, &frame);
            if chunks.len() >= BATCH_BYTES {
                break false;
            }
            match stream.next().now_or_never() {
                Some(ready) => next = ready,
                None => break false,
            }
        };
        if socket.send(&[IoSlice::new(&chunks)]).await.is_err() || ended {
            break;
        }
    }
    // Leaves the fan-out before the connection closes.
    drop(stream);
    socket.shut_down();
}
