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
//! and of the buffers it keeps per connection (two of 8 KiB, three times
//! what an idle subscriber costs otherwise). The response says
//! `Connection: close`: when the stream ends, the task writes the last
//! chunk and closes the connection. Its [`LiveStream`] parks the socket in
//! the live fan-out while caught up, which then writes each event's frame
//! to it as one chunk, as it does for `/ws`. `HEAD` (no body) and HTTP/1.0
//! (no chunks) stay with hyper and read every event themselves. No layer
//! may re-encode this route's body (compression, say).
//!
//! The frames and chunks are written by hand ([`crate::wire`]), not by
//! axum's `Sse` and hyper: the fan-out writes one event's bytes, made once,
//! to every parked socket, which a per-connection encoder cannot do.

use std::convert::Infallible;
use std::io::IoSlice;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Version, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Interval, MissedTickBehavior, interval_at};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::parse_cursor;
use super::{AppState, ReaderCaller, StreamParams, TokenParam};
use crate::access::{ConnectionPermit, Scope};
use crate::broker::{Delivery, Subscription};
use crate::conn::{Connection, Writer};
use crate::delivery::{EventForm, Framing, Gone, LiveStream};
use crate::error::{Error, Problem};
use crate::shutdown::Shutdown;
use crate::stats;
use crate::wire;

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
        (status = 403, description = "The token may not subscribe, or not to a tracker asked for (`forbidden`, naming it), or a page from an origin outside the allowlist (`origin-not-allowed`)",
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
    let (after, filter) = params.parse(&caller, &*state.broker)?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let after = parse_cursor("Last-Event-ID", last_event_id)?.or(after);
    let permit = state.access.connect(&caller)?;
    // Subscribe before the 200 goes out, so nothing published after the
    // client connected can be missed.
    let subscription = state.broker.subscribe(after, filter.clone())?;
    // Over TLS the connection is not direct: hyper writes the body.
    let direct = connection.as_ref().is_some_and(|Extension(c)| c.direct);
    let send_timeout = state.config.send_timeout();
    let socket = connection.map(|Extension(Connection { socket, .. })| {
        // A client that stops reading is cut, as on `/ws`, instead of
        // holding its connection for as long as the kernel keeps it.
        socket.set_send_timeout(send_timeout);
        socket
    });
    // A stream that parks also writes its own body.
    let taken_over = socket
        .clone()
        .filter(|_| direct && method == Method::GET && version == Version::HTTP_11);
    let seat = taken_over.clone().map(|socket| {
        let form = EventForm {
            filter,
            framing: Framing::SseChunk,
        };
        state.fanout.seat(socket, form)
    });
    let stream = SseStream {
        stats: stats::Connection::open("sse"),
        _permit: permit,
        live: LiveStream::new(subscription, seat, send_timeout),
        socket,
        shutdown: state.shutdown.clone(),
        keepalive: keepalive(Duration::from_secs(state.config.sse_keepalive_secs)),
        ended: false,
        cut: false,
    };
    let preamble = wire::sse::retry(state.config.sse_retry_ms);
    let connection_close = taken_over.is_some();
    let body = match taken_over {
        Some(socket) => Body::from_stream(hand_over(preamble, stream, socket)),
        None => {
            Body::from_stream(futures::stream::once(async { Ok(preamble) }).chain(frames(stream)))
        }
    };
    Ok(with_headers(
        body.into_response(),
        version,
        connection_close,
    ))
}

/// The response headers of an event stream.
fn with_headers(mut response: Response, version: Version, connection_close: bool) -> Response {
    let headers = response.headers_mut();
    // What a taken-over stream relies on, said rather than left to hyper's
    // choice.
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
    event_stream_headers(headers);
    response
}

/// The headers of every event stream, `/events` and GraphQL over SSE: its
/// type, and no caching or buffering on the way.
pub(super) fn event_stream_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
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

/// One subscriber's stream of frames, whoever writes them.
struct SseStream {
    stats: stats::Connection,
    /// The stream's place under the connection limits, freed with the stream.
    _permit: ConnectionPermit,
    live: LiveStream<Subscription>,
    /// The connection's socket, when the server set it aside.
    socket: Option<Writer>,
    shutdown: Shutdown,
    keepalive: Interval,
    /// A `lagged` gap was the last frame.
    ended: bool,
    /// The socket broke, or took nothing for the send timeout.
    cut: bool,
}

/// Comments sent every `period` on an idle stream, so that proxies and
/// clients keep it open.
fn keepalive(period: Duration) -> Interval {
    let mut keepalive = interval_at(tokio::time::Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    keepalive
}

impl SseStream {
    /// The next frame: a delivery or a keep-alive; `None` once the stream
    /// ends (shutdown, a `lagged` gap, a socket that broke or stalled).
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        tokio::select! {
            biased;
            () = self.shutdown.wait() => None,
            next = self.live.next() => match next {
                Ok(delivery) => Some(self.frame(delivery)),
                Err(gone) => {
                    if gone == Gone::Stalled {
                        self.stats.dropped();
                    }
                    self.cut = true;
                    None
                }
            },
            _ = self.keepalive.tick() => Some(Bytes::from_static(wire::sse::KEEP_ALIVE)),
        }
    }

    /// The next frame if one is ready now.
    fn try_next_frame(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let delivery = self.live.try_next()?;
        Some(self.frame(delivery))
    }

    fn frame(&mut self, delivery: Delivery) -> Bytes {
        match delivery {
            Delivery::Event(event) => {
                self.stats.delivered.increment(1);
                event.sse.clone()
            }
            Delivery::Gap(gap) => {
                self.ended = gap.ends_stream();
                if self.ended {
                    self.stats.lagged();
                }
                wire::sse_gap(&gap)
            }
        }
    }
}

impl Drop for SseStream {
    /// Counts a client cut by hyper for not reading.
    fn drop(&mut self) {
        if self.socket.as_ref().is_some_and(Writer::timed_out) {
            self.stats.dropped();
        }
    }
}

/// The body as hyper writes it: every frame, until the stream ends.
fn frames(stream: SseStream) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(stream, |mut stream| async move {
        let frame = stream.next_frame().await?;
        Some((Ok(frame), stream))
    })
}

/// The body of a stream taken over from hyper: hyper writes the response
/// head and the preamble; once it has flushed them, the connection is
/// [taken over](Writer::take_over_after_flush) and the rest of the stream
/// is written by a task of its own ([`write_body`]). hyper's response then
/// ends (its last chunk dropped), and hyper lets go of the connection.
fn hand_over(
    preamble: Bytes,
    stream: SseStream,
    socket: Writer,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let (taking, taken) = oneshot::channel();
    let asked = socket.clone();
    // Asked as hyper takes the preamble, after the head: the next flush
    // that finds everything written follows both.
    let first = async move {
        let _ = taking.send(asked.take_over_after_flush());
        Ok(preamble)
    };
    let rest = async move {
        if let Ok(takeover) = taken.await
            && takeover.await
        {
            let shutdown = stream.shutdown.clone();
            shutdown.spawn(write_body(stream, socket));
        }
        None
    };
    futures::stream::once(first).chain(futures::stream::once(rest).filter_map(std::future::ready))
}

/// Bytes of frames a taken-over stream writes at once, at most (but always
/// a whole frame).
const BATCH_BYTES: usize = 64 * 1024;

/// Writes the rest of a taken-over stream's body to its socket, each frame
/// as one chunk (with the frames that are ready too, a stream catching up,
/// in one write), until the stream ends (then the last chunk) or the
/// connection does; then closes the connection.
async fn write_body(mut stream: SseStream, socket: Writer) {
    let mut chunks = Vec::new();
    loop {
        let next = tokio::select! {
            next = stream.next_frame() => next,
            () = socket.peer_closed() => break,
        };
        chunks.clear();
        let mut next = next;
        while let Some(frame) = next {
            wire::push_chunk(&mut chunks, &frame);
            next = (chunks.len() < BATCH_BYTES)
                .then(|| stream.try_next_frame())
                .flatten();
        }
        if stream.cut {
            break;
        }
        let ended = stream.ended || chunks.is_empty();
        if ended {
            chunks.extend_from_slice(wire::LAST_CHUNK);
        }
        if socket.send(&[IoSlice::new(&chunks)]).await.is_err() || ended {
            break;
        }
    }
    // Leaves the fan-out before the connection closes.
    drop(stream);
    socket.shut_down();
}
