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

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::time::{Interval, MissedTickBehavior, interval_at};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::parse_cursor;
use super::{AppState, ReaderCaller, StreamParams, TokenParam};
use crate::access::{ConnectionPermit, Scope};
use crate::broker::{Delivery, GapReason, Subscription};
use crate::error::{Error, Problem};
use crate::shutdown::Shutdown;
use crate::stats;

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
    headers: HeaderMap,
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
    let subscription = state.broker.subscribe(after, filter);
    let keepalive = Duration::from_secs(state.config.sse_keepalive_secs);
    let preamble = Bytes::from(format!("retry: {}\n\n", state.config.sse_retry_ms));
    let stream = frames(
        subscription,
        state.shutdown.clone(),
        keepalive,
        preamble,
        permit,
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
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
    shutdown: Shutdown,
    keepalive: Interval,
    preamble: Option<Bytes>,
    ended: bool,
}

/// The body: the preamble, then one frame per delivery or keep-alive,
/// until shutdown or a `lagged` gap.
fn frames(
    subscription: Subscription,
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
        let frame = tokio::select! {
            biased;
            () = st.shutdown.wait() => return None,
            delivery = st.subscription.recv() => match delivery {
                Delivery::Event(event) => {
                    st.stats.delivered.increment(1);
                    event.sse.clone()
                }
                Delivery::Gap(gap) => {
                    st.ended = gap.reason == GapReason::Lagged;
                    if st.ended {
                        st.stats.lagged();
                    }
                    let json = serde_json::to_string(&gap).expect("a gap notice always serialises");
                    Bytes::from(format!("event: gap\ndata: {json}\n\n"))
                }
            },
            _ = st.keepalive.tick() => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((Ok(frame), st))
    })
}
