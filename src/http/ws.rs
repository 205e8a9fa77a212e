//! `GET /ws`: the raw WebSocket. Each event is one JSON text frame, the very
//! bytes the publish answered with; the socket is read-only.
//!
//! Frames other than events are notices with a `"type"` field:
//! `{"type":"gap",…}` when events were lost (see [`crate::broker::Gap`]).
//! Close codes: 1001 server shutting down, 1003 the client sent a data frame,
//! 4008 the subscriber fell further behind than history reaches.

use std::task::Poll;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures::SinkExt;
use tokio::time::error::Elapsed;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, StreamParams};
use crate::broker::{Delivery, GapReason, Subscription};
use crate::error::{Error, Problem};
use crate::model::PositionEvent;
use crate::shutdown::Shutdown;
use crate::stats;

/// Close code: the server is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the client sent data on a read-only socket.
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code: the subscriber fell behind history and was told what it missed.
pub const CLOSE_LAGGED: u16 = 4008;

/// The raw WebSocket route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// The live stream as a WebSocket.
///
/// Upgrades to a WebSocket (send `Connection: Upgrade`, `Upgrade: websocket`)
/// that sends each event as one JSON text frame: exactly the `PositionEvent`
/// that `POST /longlat` answered. Frames with a `type` field are notices: a
/// `Gap` (`{"type":"gap",…}`) when events were lost. The socket is read-only.
/// Close codes: 1001 server shutting down, 1003 the client sent a data frame,
/// 4008 the subscriber fell behind history (after a gap frame; reconnect with
/// `?after=`). Pings are answered.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "streams",
    params(StreamParams),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; then one JSON text frame per event",
            body = PositionEvent),
        (status = 400, description = "A bad stream parameter (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "A plain HTTP request: connect with a WebSocket client (`upgrade-required`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn upgrade(
    State(state): State<AppState>,
    params: Result<Query<StreamParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    let Query(params) = params.map_err(Error::from)?;
    let (after, filter) = params.parse()?;
    let upgrade = upgrade.map_err(|_| Error::UpgradeRequired("/ws"))?;
    // Subscribe before answering 101, so nothing published after the client
    // connected can be missed.
    let subscription = state.broker.subscribe(after, filter);
    let send_timeout = state.config.send_timeout();
    // A read-only socket only ever reads control frames: a small read
    // buffer keeps an idle subscriber cheap, and tungstenite zero-fills its
    // free capacity on every read attempt.
    Ok(upgrade
        .read_buffer_size(256)
        // Frames ready together are written together (see `send_ready`).
        .write_buffer_size(MAX_BATCH_BYTES)
        .max_message_size(64 * 1024)
        .max_frame_size(16 * 1024)
        .on_upgrade(move |socket| {
            stream_events(socket, subscription, state.shutdown, send_timeout)
        }))
}

/// Why a stream ended, and what (if anything) the client is told.
enum End {
    Close(u16, &'static str),
    Gone,
}

async fn stream_events(
    mut socket: WebSocket,
    mut subscription: Subscription,
    shutdown: Shutdown,
    send_timeout: Duration,
) {
    let stats = stats::Connection::open("ws");
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut stopping => break End::Close(CLOSE_GOING_AWAY, "server shutting down"),
            incoming = socket.recv() => match incoming {
                // Pings are answered by the protocol layer as they are read.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    break End::Close(CLOSE_UNSUPPORTED_DATA, "this socket is read-only")
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break End::Gone,
            },
            delivery = subscription.recv() => {
                // Boxed: an idle connection's state holds none of the send's.
                let sent = send_ready(&mut socket, &mut subscription, delivery);
                let sent = match Box::pin(within(send_timeout, sent)).await {
                    Ok(Ok(sent)) => sent,
                    Ok(Err(_)) => break End::Gone,
                    // So stalled it cannot take the frames.
                    Err(_) => {
                        stats.dropped();
                        break End::Gone;
                    }
                };
                stats.delivered.increment(sent.frames);
                if sent.lagged {
                    stats.lagged();
                    break End::Close(CLOSE_LAGGED, "subscriber fell behind; resume with ?after=");
                }
            }
        }
    };
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let close = socket.send(Message::Close(Some(frame)));
        let _ = Box::pin(tokio::time::timeout(send_timeout, close)).await;
    }
}

/// Runs `future` for at most `limit`. A write that completes at its first
/// poll, the usual case, sets no timer.
async fn within<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    if let Poll::Ready(output) = futures::poll!(future.as_mut()) {
        return Ok(output);
    }
    tokio::time::timeout(limit, future).await
}

/// Most frames written before one flush.
const MAX_BATCH: u64 = 32;
/// Bytes buffered before tungstenite writes without waiting for a flush.
const MAX_BATCH_BYTES: usize = 16 * 1024;

/// What one [`send_ready`] wrote.
struct Sent {
    frames: u64,
    /// The last frame was a `lagged` gap notice: the stream ends.
    lagged: bool,
}

/// Writes `first` and every delivery already waiting behind it, then
/// flushes once: a subscriber woken late (or by a burst) takes all its
/// events in one write to the socket instead of one each.
async fn send_ready(
    socket: &mut WebSocket,
    subscription: &mut Subscription,
    first: Delivery,
) -> Result<Sent, axum::Error> {
    let mut sent = Sent {
        frames: 0,
        lagged: false,
    };
    let mut next = Some(first);
    while let Some(delivery) = next.take() {
        let (frame, then_close) = frame_for(delivery);
        socket.feed(Message::Text(frame)).await?;
        sent.frames += 1;
        sent.lagged = then_close;
        if !then_close && sent.frames < MAX_BATCH {
            next = subscription.try_recv();
        }
    }
    socket.flush().await?;
    Ok(sent)
}

/// The text frame for a delivery, and whether the stream ends after it.
fn frame_for(delivery: Delivery) -> (Utf8Bytes, bool) {
    match delivery {
        Delivery::Event(event) => {
            let text = Utf8Bytes::try_from(event.json.clone())
                .expect("event JSON is serialised from a String");
            (text, false)
        }
        Delivery::Gap(gap) => {
            let json = serde_json::to_string(&gap).expect("a gap notice always serialises");
            (json.into(), gap.reason == GapReason::Lagged)
        }
    }
}
