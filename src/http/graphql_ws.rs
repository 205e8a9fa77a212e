//! GraphQL over WebSocket on `/graphql`: the `graphql-transport-ws` protocol
//! (npm `graphql-ws`, what GraphiQL speaks) and the legacy
//! `subscriptions-transport-ws` (subprotocol `graphql-ws`). Operations run
//! through [`SharedExecutions`], so identical live subscriptions on any
//! number of sockets cost one execution.
//!
//! Close codes (`graphql-transport-ws`): 4400 malformed message, 4401
//! subscribe before `connection_ack`, or a `connection_init` without a valid
//! token when reading needs one, 4403 a token that may not subscribe, 4408
//! no `connection_init` in time, 4409 an operation id already in use, 4429 a
//! second `connection_init` or too many refused credentials from the
//! client's address, 4000 no answer to a ping, 1013 at a connection limit,
//! 1001 server shutting down; and on both protocols those of [`ws::End`]: a
//! client's Close is answered with the same code, 1002 a frame that breaks
//! the WebSocket protocol, 1007 text that is not UTF-8, 1009 a message over
//! `--max-message-bytes`.
//!
//! Both protocols are served here rather than by async-graphql-axum's
//! `GraphQLWebSocket`, which runs every operation of every socket on its
//! own and writes its results itself: here identical live subscriptions
//! share one execution whose `next` messages the delivery engine writes to
//! every sharer's socket directly: 5.0 µs of CPU per delivery against the
//! reference graphql-ws server's 28.7 µs at 1,000 subscribers × 100
//! events/s (docs/performance.md).
//!
//! The connection's credential is the token in the `connection_init` payload
//! (see [`crate::access::token_in_payload`]), else the one of the upgrade
//! request; every operation on the socket runs as that caller.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Data;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use futures::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamMap;

use super::ws::{self, CLOSE_PING_TIMEOUT, End, Heartbeat};
use crate::access::{Access, Caller, Scope, token_in_payload};
use crate::conn::Writer;
use crate::error::Error;
use crate::graphql::shared::{Direct, Outcome, SharedExecutions, SharedKey};
use crate::shutdown::Shutdown;
use crate::wire::graphql_ws;

/// The two GraphQL-over-WebSocket protocols, by subprotocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`: the graphql-ws protocol.
    TransportWs,
    /// `graphql-ws`: the legacy Apollo subscriptions-transport-ws protocol.
    Legacy,
}

impl Protocol {
    /// Subprotocol names, the preferred one first.
    pub const NAMES: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

    /// The protocol for the negotiated subprotocol; graphql-transport-ws
    /// when the client named none.
    pub fn from_subprotocol(name: Option<&[u8]>) -> Self {
        match name {
            Some(b"graphql-ws") => Self::Legacy,
            _ => Self::TransportWs,
        }
    }

    fn next_type(self) -> &'static str {
        match self {
            Self::TransportWs => "next",
            Self::Legacy => "data",
        }
    }
}

/// Timing of one connection: the socket's, as on `/ws`, and the protocol's.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a client has to send `connection_init`.
    pub init_timeout: Duration,
    /// Send timeout and ping period.
    pub socket: ws::Timing,
}

/// What one connection serves, and for whom.
pub struct Session {
    /// The negotiated protocol.
    pub protocol: Protocol,
    /// Where operations run.
    pub shared: Arc<SharedExecutions>,
    /// The access rules.
    pub access: Arc<Access>,
    /// The upgrade request's caller (address, and credential if it had one).
    pub caller: Caller,
    /// Timing of the connection.
    pub timing: Timing,
    /// The socket under the WebSocket, for shared executions to write
    /// results to directly (absent: every result goes through the
    /// connection).
    pub raw: Option<Writer>,
}

/// A message from the client; `payload` is read according to `type`.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// Most operations one socket may run at once; each costs a broker cursor.
pub const MAX_OPERATIONS: usize = 100;

/// One connection's protocol state.
struct Connection {
    socket: WebSocket,
    protocol: Protocol,
    shared: Arc<SharedExecutions>,
    access: Arc<Access>,
    caller: Caller,
    timing: Timing,
    heartbeat: Heartbeat,
    /// Set by `connection_init`; present once acknowledged.
    data: Option<Arc<Data>>,
    init_received: bool,
    /// Running operations by client id.
    operations: StreamMap<String, BoxStream<'static, Outcome>>,
    /// See [`Session::raw`].
    socket_writer: Option<Writer>,
    /// Counts results written by this connection (pushed ones are counted
    /// where they are pushed), and the connection's being cut.
    stats: crate::stats::Connection,
}

/// A `next` (legacy: `data`) message for operation `id`, up to its payload.
fn next_prefix(protocol: Protocol, id: &str) -> String {
    graphql_ws::next_prefix(protocol.next_type(), id)
}

/// Serves one upgraded socket until the client leaves, breaks the protocol,
/// or the server shuts down.
pub async fn serve(socket: WebSocket, session: Session, shutdown: Shutdown) {
    let stats = crate::stats::Connection::open("graphql");
    let timing = session.timing;
    let mut connection = Connection {
        socket,
        protocol: session.protocol,
        shared: session.shared,
        access: session.access,
        caller: session.caller,
        timing,
        heartbeat: Heartbeat::new(timing.socket.ping),
        data: None,
        init_received: false,
        operations: StreamMap::new(),
        socket_writer: session.raw,
        stats,
    };
    let end = connection.run(&shutdown).await;
    // No result is pushed after this: the close frame is the last.
    connection.operations.clear();
    if let Some(raw) = &connection.socket_writer {
        raw.stop_pushes();
    }
    end.tell(&mut connection.socket, timing.socket.send).await;
}

impl Connection {
    async fn run(&mut self, shutdown: &Shutdown) -> End {
        let init_deadline = tokio::time::sleep(self.timing.init_timeout);
        tokio::pin!(init_deadline);
        loop {
            let step = tokio::select! {
                () = shutdown.wait() => Err(End::close(1001, "server shutting down")),
                () = &mut init_deadline, if !self.init_received => {
                    Err(End::close(4408, "Connection initialisation timeout"))
                }
                alive = self.heartbeat.due() => {
                    if alive {
                        self.send_message(Message::Ping(Bytes::new())).await
                    } else {
                        Err(End::close(CLOSE_PING_TIMEOUT, "no answer to ping"))
                    }
                }
                incoming = self.socket.recv() => {
                    self.heartbeat.heard();
                    match incoming {
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => Err(End::close(4400, "Binary frames are not part of the protocol")),
                        // Pings are answered by the WebSocket layer as they are read.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                        Some(Ok(Message::Close(_))) => Err(End::Answer),
                        Some(Err(err)) => Err(End::after_read_error(&err)),
                        None => Err(End::Gone),
                    }
                },
                Some((id, item)) = self.operations.next(), if !self.operations.is_empty() => {
                    self.on_result(id, item).await
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
            return Err(End::close(4400, "Invalid message received"));
        };
        match (self.protocol, message.kind.as_str()) {
            (_, "connection_init") => self.on_init(message.payload).await,
            (Protocol::TransportWs, "ping") => self.send(json!({ "type": "pong" })).await,
            (Protocol::TransportWs, "pong") => Ok(()),
            (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
                self.on_subscribe(message.id, message.payload)
            }
            (Protocol::TransportWs, "complete") => {
                self.operations
                    .remove(message.id.as_deref().unwrap_or_default());
                Ok(())
            }
            (Protocol::Legacy, "stop") => {
                let id = message.id.unwrap_or_default();
                match self.operations.remove(&id) {
                    Some(_) => self.send(json!({ "type": "complete", "id": id })).await,
                    None => Ok(()),
                }
            }
            (Protocol::Legacy, "connection_terminate") => Err(End::close(1000, "terminated")),
            _ => Err(End::close(4400, "Invalid message received")),
        }
    }

    async fn on_init(&mut self, payload: Option<Value>) -> Result<(), End> {
        if self.init_received {
            return Err(End::close(4429, "Too many initialisation requests"));
        }
        self.init_received = true;
        let payload = payload.unwrap_or_default();
        if let Some(token) = token_in_payload(&payload) {
            self.caller.credential = self.access.verify(self.caller.ip, &token);
        }
        match self.access.authorize(&self.caller, Scope::Subscribe) {
            Ok(()) => {
                let mut data = Data::default();
                data.insert(self.caller.clone());
                self.data = Some(Arc::new(data));
                self.send(json!({ "type": "connection_ack" })).await
            }
            Err(refused) => {
                crate::stats::rejected(refused.code());
                let code = match refused {
                    Error::Forbidden(_) => 4403,
                    Error::CredentialsThrottled { .. } => 4429,
                    _ => 4401,
                };
                Err(End::close(code, refused.to_string()))
            }
        }
    }

    fn on_subscribe(&mut self, id: Option<String>, payload: Option<Value>) -> Result<(), End> {
        let Some(data) = self.data.clone() else {
            return Err(End::close(4401, "Unauthorized"));
        };
        let (Some(id), Some(payload)) = (id, payload) else {
            return Err(End::close(4400, "Invalid message received"));
        };
        if self.operations.contains_key(&id) {
            return Err(End::close(
                4409,
                format!("Subscriber for {id} already exists"),
            ));
        }
        if self.operations.len() >= MAX_OPERATIONS {
            let refusal = format!(
                r#"[{{"message":"at most {MAX_OPERATIONS} operations may run on one socket","extensions":{{"code":"too-many-operations"}}}}]"#
            );
            let outcomes = futures::stream::once(async move { Outcome::Refused(refusal.into()) });
            self.operations.insert(id, outcomes.boxed());
            return Ok(());
        }
        let key = SharedKey::new(payload.to_string(), &self.caller);
        let Ok(request) = serde_json::from_value::<async_graphql::Request>(payload) else {
            return Err(End::close(4400, "Invalid message received"));
        };
        let direct = self.socket_writer.clone().map(|socket| Direct {
            socket,
            prefix: next_prefix(self.protocol, &id).into(),
        });
        let outcomes = self.shared.join(key, request, data, direct);
        self.operations.insert(id, outcomes);
        Ok(())
    }

    /// Sends one outcome of operation `id`.
    async fn on_result(&mut self, id: String, outcome: Outcome) -> Result<(), End> {
        let message = match outcome {
            Outcome::Complete => {
                self.operations.remove(&id);
                graphql_ws::complete(&id)
            }
            // Refused before it ran (syntax, validation, limits): the
            // protocol's terminal `error` message, with no `complete`.
            Outcome::Refused(errors) => {
                self.operations.remove(&id);
                graphql_ws::error(&id, &errors)
            }
            // The socket took nothing for the send timeout.
            Outcome::Stalled => {
                self.stats.dropped();
                return Err(End::Gone);
            }
            Outcome::Next(payload) => {
                self.stats.delivered.increment(1);
                graphql_ws::next(&next_prefix(self.protocol, &id), &payload)
            }
        };
        self.send_text(message).await
    }

    async fn send(&mut self, message: Value) -> Result<(), End> {
        self.send_text(message.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), End> {
        self.send_message(Message::Text(text.into())).await
    }

    async fn send_message(&mut self, message: Message) -> Result<(), End> {
        let send = self.socket.send(message);
        match tokio::time::timeout(self.timing.socket.send, send).await {
            Ok(Ok(())) => Ok(()),
            // The client is gone, or so stalled it cannot take a frame.
            Ok(Err(_)) | Err(_) => Err(End::Gone),
        }
    }
}
