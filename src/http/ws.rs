//! `GET /ws`: the raw WebSocket. Each event is one JSON text frame, the very
//! bytes the publish answered with; the socket is read-only.
//!
//! Frames other than events are notices with a `"type"` field:
//! `{"type":"gap",…}` when events were lost (see [`crate::broker::Gap`]).
//! Close codes: 1001 server shutting down, 1003 the client sent a data frame,
//! 4008 the subscriber fell further behind than history reaches.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
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
        .write_buffer_size(0)
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
    let end = loop {
        tokio::select! {
            () = shutdown.wait() => break End::Close(CLOSE_GOING_AWAY, "server shutting down"),
            incoming = socket.recv() => match incoming {
                // Pings are answered by the protocol layer as they are read.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    break End::Close(CLOSE_UNSUPPORTED_DATA, "this socket is read-only")
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break End::Gone,
            },
            delivery = subscription.recv() => {
                let (frame, then_close) = frame_for(delivery);
                match tokio::time::timeout(send_timeout, socket.send(Message::Text(frame))).await {
                    Ok(Ok(())) => stats.delivered.increment(1),
                    Ok(Err(_)) => break End::Gone,
                    // So stalled it cannot take one frame.
                    Err(_) => {
                        stats.dropped();
                        break End::Gone;
                    }
                }
                if then_close {
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
        let _ = tokio::time::timeout(send_timeout, socket.send(Message::Close(Some(frame)))).await;
    }
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
