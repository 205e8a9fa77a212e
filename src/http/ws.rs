//! `GET /ws`: the raw WebSocket. Each event is one JSON text frame, the very
//! bytes the publish answered with; the socket is read-only.
//!
//! Frames other than events are notices with a `"type"` field:
//! `{"type":"gap",…}` when events were lost (see [`crate::broker::Gap`]).
//! Close codes: 1001 server shutting down, 1003 the client sent a data frame,
//! 4008 the subscriber fell further behind than history reaches, and those
//! of [`End`] for any WebSocket: a client's Close is answered with the same
//! code, a frame that breaks the protocol is closed with 1002, text that is
//! not UTF-8 with 1007, a message over the limit with 1009 (RFC 6455, 7.4.1).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use futures::SinkExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::within;
use super::{AppState, ReaderCaller, StreamParams, TokenParam};
use crate::access::Scope;
use crate::broker::{Delivery, Subscription};
use crate::config::Config;
use crate::conn::Connection;
use crate::delivery::{EventForm, Framing, Gone, LiveStream};
use crate::error::{Error, Problem};
use crate::model::PositionEvent;
use crate::shutdown::Shutdown;
use crate::stats;

/// Close code: the server is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the client broke the WebSocket protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: the client sent data on a read-only socket.
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code: the client sent a text message that is not UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: the client sent a message over `--max-message-bytes`.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the server is at a connection limit; try again later.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Close code: the peer did not answer a ping before the next one was due.
pub const CLOSE_PING_TIMEOUT: u16 = 4000;
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
/// `?after=`), 1013 the server or this address holds as many streams as
/// allowed (the reason says which), 4000 no answer to the server's ping
/// before the next one, 1002 a frame that breaks the WebSocket protocol,
/// 1007 text that is not UTF-8, 1009 a message over the size limit. A
/// client's Close is answered with the same code. Pings are answered.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "streams",
    params(StreamParams, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; then one JSON text frame per event",
            body = PositionEvent),
        (status = 400, description = "A bad stream parameter (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`): in `Authorization` or `access_token`",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not subscribe, or not to a tracker asked for (`forbidden`, naming it), or a page from an origin outside the allowlist (`origin-not-allowed`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "A plain HTTP request: connect with a WebSocket client (`upgrade-required`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn upgrade(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    params: Result<Query<StreamParams>, QueryRejection>,
    connection: Option<Extension<Connection>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(params) = params.map_err(Error::from)?;
    let (after, filter) = params.parse(&caller, &*state.broker)?;
    let upgrade = upgrade.map_err(|_| Error::UpgradeRequired("/ws"))?;
    // A read-only socket only ever reads control frames: 256 bytes will do.
    // Frames ready together are written together (see `send_ready`).
    let upgrade = configure(upgrade, 256, &state.config).write_buffer_size(MAX_BATCH_BYTES);
    let permit = match state.access.connect(&caller) {
        Ok(permit) => permit,
        Err(refused) => return Ok(refuse(upgrade, &refused)),
    };
    // Subscribe before answering 101, so nothing published after the client
    // connected can be missed.
    let subscription = state.broker.subscribe(after, filter.clone())?;
    // With the raw socket under the WebSocket, the fan-out writes to it
    // while the stream is caught up.
    // Over TLS the connection is not direct: hyper writes every frame.
    let seat = connection
        .filter(|Extension(connection)| connection.direct)
        .map(|Extension(Connection { socket, .. })| {
            let form = EventForm {
                filter,
                framing: Framing::WebSocket,
            };
            state.fanout.seat(socket, form)
        });
    let timing = Timing::of(&state.config);
    let live = LiveStream::new(subscription, seat, timing.send);
    Ok(upgrade.on_upgrade(move |socket| async move {
        // Boxed: the task then holds one allocation of the stream's own
        // size, instead of the stream's state laid out beside its inputs.
        Box::pin(stream_events(socket, live, state.shutdown.clone(), timing)).await;
        drop(permit);
    }))
}

/// The WebSocket settings every endpoint uses: a small read buffer (an idle
/// subscriber should cost a few KiB; tungstenite zero-fills its free
/// capacity on every read attempt), no write buffer, and the incoming
/// message limit.
pub fn configure(
    upgrade: WebSocketUpgrade,
    read_buffer: usize,
    config: &Config,
) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
}

/// Completes the handshake only to close at once with 1013 and the reason:
/// a browser's WebSocket cannot read an HTTP error's body, but it does get
/// the close code and reason.
pub fn refuse(upgrade: WebSocketUpgrade, refused: &Error) -> Response {
    crate::stats::rejected(refused.code());
    let reason = refused.to_string();
    upgrade.on_upgrade(move |mut socket| async move {
        let frame = CloseFrame {
            code: CLOSE_TRY_AGAIN_LATER,
            reason: close_reason(reason).into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    })
}

/// A close frame's reason: at most 123 bytes, cut at a character boundary.
pub fn close_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let cut = (0..=120)
            .rev()
            .find(|&i| reason.is_char_boundary(i))
            .unwrap_or(0);
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

/// The timing of one subscriber's socket.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long one frame may take to send before the subscriber is dropped.
    pub send: Duration,
    /// How often the socket is pinged, if at all.
    pub ping: Option<Duration>,
}

impl Timing {
    /// The timing `config` asks for.
    pub fn of(config: &Config) -> Self {
        Self {
            send: config.send_timeout(),
            ping: config.ping_interval(),
        }
    }
}

/// Pings a peer every period and tells when one went unanswered until the
/// next was due. Any frame from the peer counts as an answer.
pub struct Heartbeat {
    interval: Option<tokio::time::Interval>,
    answered: bool,
}

impl Heartbeat {
    /// Pings every `period`, or never.
    pub fn new(period: Option<Duration>) -> Self {
        let interval = period.map(|period| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        Self {
            interval,
            answered: true,
        }
    }

    /// The peer sent something: it is alive.
    pub fn heard(&mut self) {
        self.answered = true;
    }

    /// Waits until a ping is due; `false` when the last one went unanswered.
    pub async fn due(&mut self) -> bool {
        match &mut self.interval {
            Some(interval) => {
                interval.tick().await;
                std::mem::replace(&mut self.answered, false)
            }
            None => std::future::pending().await,
        }
    }
}

/// How a WebSocket ends, and what the client is told: on `/ws` and on
/// `/graphql` alike.
pub enum End {
    /// The server closes with this code and reason.
    Close(u16, String),
    /// The client closed: its Close is answered with the same code.
    Answer,
    /// The client is gone: nothing can reach it.
    Gone,
}

impl End {
    /// The server closes with `code` and `reason` (cut to fit a frame).
    pub fn close(code: u16, reason: impl Into<String>) -> Self {
        Self::Close(code, close_reason(reason.into()))
    }

    /// The end a failed read calls for (RFC 6455, 7.4.1): 1002 for a frame
    /// that breaks the protocol, 1007 for text that is not UTF-8, 1009 for
    /// a message over `--max-message-bytes`. tungstenite stays open for
    /// writing after such an error, so the close frame can still be sent.
    pub fn after_read_error(err: &axum::Error) -> Self {
        use tungstenite::error::{Error as WsError, ProtocolError};
        let err = std::error::Error::source(err).and_then(|e| e.downcast_ref::<WsError>());
        match err {
            // The peer dropped the connection: there is no one to tell.
            Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) | None => {
                Self::Gone
            }
            Some(WsError::Protocol(err)) => Self::close(CLOSE_PROTOCOL_ERROR, err.to_string()),
            Some(WsError::Utf8(_)) => Self::close(CLOSE_INVALID_DATA, "text is not UTF-8"),
            Some(WsError::Capacity(_)) => Self::close(CLOSE_TOO_BIG, "message over the size limit"),
            Some(_) => Self::Gone,
        }
    }

    /// Tells the client, taking at most `timeout`. The answer to a client's
    /// Close was queued by tungstenite as it read that Close (the same
    /// code and reason); a flush writes it, after which the connection is
    /// done and dropping the socket closes it. After a Close of the
    /// server's own, the client's answer is awaited for a moment (see
    /// [`LINGER`]).
    pub async fn tell(self, socket: &mut WebSocket, timeout: Duration) {
        let close = match self {
            Self::Close(code, reason) => Some(CloseFrame {
                code,
                reason: reason.into(),
            }),
            Self::Answer => None,
            Self::Gone => return,
        };
        let ours = close.is_some();
        let told = async {
            if let Some(frame) = close {
                socket.feed(Message::Close(Some(frame))).await?;
            }
            socket.flush().await
        };
        // Boxed: an idle connection's state holds none of the send's.
        let told = Box::pin(tokio::time::timeout(timeout, told)).await;
        if ours && matches!(told, Ok(Ok(()))) {
            let _ = Box::pin(tokio::time::timeout(LINGER, answered(socket))).await;
        }
    }
}

/// How long a connection waits for the client's answer to the server's
/// Close, reading and dropping whatever the client still sends. Closing a
/// socket with unread bytes makes the kernel reset the connection, and a
/// reset may cost the client the Close it has not read yet (the rest of an
/// oversized message, say, is still on its way when 1009 is sent).
pub const LINGER: Duration = Duration::from_secs(1);

/// Reads until the client's Close, or the end of the connection. A read
/// that fails on a bad frame has used that frame up, so reading goes on;
/// but only so many times, in case one ever does not.
async fn answered(socket: &mut WebSocket) {
    for _ in 0..1024 {
        match socket.recv().await {
            Some(Ok(Message::Close(_))) | None => return,
            Some(Err(err)) if matches!(End::after_read_error(&err), End::Gone) => return,
            Some(_) => {}
        }
    }
}

async fn stream_events(
    mut socket: WebSocket,
    mut live: LiveStream<Subscription>,
    shutdown: Shutdown,
    timing: Timing,
) {
    let stats = stats::Connection::open("ws");
    let send_timeout = timing.send;
    let mut heartbeat = Heartbeat::new(timing.ping);
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut stopping => break End::close(CLOSE_GOING_AWAY, "server shutting down"),
            alive = heartbeat.due() => {
                if !alive {
                    break End::close(CLOSE_PING_TIMEOUT, "no answer to ping");
                }
                match tokio::time::timeout(send_timeout, socket.send(Message::Ping(Bytes::new()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break End::Gone,
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the protocol layer as they are read.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => heartbeat.heard(),
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    break End::close(CLOSE_UNSUPPORTED_DATA, "this socket is read-only")
                }
                Some(Ok(Message::Close(_))) => break End::Answer,
                Some(Err(err)) => break End::after_read_error(&err),
                None => break End::Gone,
            },
            delivery = live.next() => {
                let delivery = match delivery {
                    Ok(delivery) => delivery,
                    Err(gone) => break gone_end(gone, &stats),
                };
                // Boxed: an idle connection's state holds none of the send's.
                let sent = send_ready(&mut socket, &mut live, delivery);
                let sent = match Box::pin(within(send_timeout, sent)).await {
                    Ok(Ok(sent)) => sent,
                    Ok(Err(_)) => break End::Gone,
                    // So stalled it cannot take the frames.
                    Err(_) => break gone_end(Gone::Stalled, &stats),
                };
                stats.delivered.increment(sent.frames);
                if sent.lagged {
                    stats.lagged();
                    break End::close(CLOSE_LAGGED, "subscriber fell behind; resume with ?after=");
                }
            }
        }
    };
    // Out of the fan-out first, so no event frame follows the close.
    drop(live);
    end.tell(&mut socket, send_timeout).await;
}

/// The end of a connection whose socket broke, or took nothing for the
/// send timeout (counted as dropped).
fn gone_end(gone: Gone, stats: &stats::Connection) -> End {
    if gone == Gone::Stalled {
        stats.dropped();
    }
    End::Gone
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
    live: &mut LiveStream<Subscription>,
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
            next = live.try_next();
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
        Delivery::Gap(gap) => (gap.to_json().into(), gap.ends_stream()),
    }
}
