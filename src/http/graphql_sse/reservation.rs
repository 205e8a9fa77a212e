//! The single connection mode of GraphQL over SSE: one event stream carries
//! the results of every operation a client runs, so a browser on HTTP/1.1
//! (six connections per origin) can run any number of them.
//!
//! `PUT /graphql` reserves a stream and answers `201` with its token (a
//! random 128-bit value, the one secret that ties the requests together);
//! one `GET` that accepts `text/event-stream` and presents the token (in
//! the `X-GraphQL-Event-Stream-Token` header or `?token=`) opens it; each
//! `POST` with the token and `extensions.operationId` adds an operation
//! (`202`), whose `next` and `complete` events carry `{"id": …}`; `DELETE
//! ?operationId=…` stops one. A reservation takes its place under the
//! connection limits when it is made, and gives it up when its stream ends
//! or when no stream opens it within `--graphql-init-timeout-ms`; when
//! the stream ends, its operations stop and the token is forgotten.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;
use axum::response::Response;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamMap;

use super::{Checked, Message, Operation, event_stream, messages};
use crate::access::{Caller, ConnectionPermit};
use crate::conn::Connection;
use crate::error::Error;
use crate::http::AppState;
use crate::http::graphql_ws::MAX_OPERATIONS;

/// The reserved streams, by token.
pub struct Reservations {
    open: Mutex<HashMap<String, Reservation>>,
    /// How long a reservation waits for its stream.
    expiry: Duration,
}

/// One reserved stream.
struct Reservation {
    /// Operations to add to, or remove from, the stream.
    commands: mpsc::UnboundedSender<Command>,
    /// Until the stream opens: its end of `commands`, and its place under
    /// the connection limits.
    waiting: Option<(mpsc::UnboundedReceiver<Command>, ConnectionPermit)>,
    reserved_at: Instant,
    /// Operations added and not yet ended, by id.
    operations: HashSet<String>,
}

enum Command {
    Add(String, BoxStream<'static, Message>),
    Remove(String),
}

impl Reservations {
    /// No reservations yet; each waits `expiry` for its stream.
    pub fn new(expiry: Duration) -> Self {
        Self {
            open: Mutex::default(),
            expiry,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Reservation>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves a stream for `caller`: its token.
    pub fn reserve(&self, state: &AppState, caller: &Caller) -> Result<String, Error> {
        let mut open = self.lock();
        // Reservations no stream took give their places back.
        let expiry = self.expiry;
        open.retain(|_, reservation| {
            reservation.waiting.is_none() || reservation.reserved_at.elapsed() < expiry
        });
        let permit = state.access.connect(caller)?;
        let token = new_token();
        let (commands, receiver) = mpsc::unbounded_channel();
        open.insert(
            token.clone(),
            Reservation {
                commands,
                waiting: Some((receiver, permit)),
                reserved_at: Instant::now(),
                operations: HashSet::new(),
            },
        );
        Ok(token)
    }

    /// Opens the stream reserved under `token`.
    pub fn open(
        self: &Arc<Self>,
        state: &AppState,
        token: &str,
        connection: Option<Connection>,
    ) -> Result<Response, Error> {
        let (commands, permit) = {
            let mut open = self.lock();
            let reservation = self.find(&mut open, token)?;
            reservation.waiting.take().ok_or_else(|| {
                Error::Conflict("the stream of this reservation is already open".into())
            })?
        };
        let stream = stream(commands, Forget(self.clone(), token.to_owned()));
        Ok(event_stream(state, permit, connection, stream))
    }

    /// Adds an operation to the stream reserved under `token`.
    pub fn add(
        &self,
        state: &AppState,
        caller: Caller,
        token: &str,
        operation: Operation,
        extensions: Option<Value>,
    ) -> Result<(), Error> {
        let id = operation_id(extensions)?;
        let checked = Checked::of(state, &caller, &Method::POST, &operation)?;
        let mut open = self.lock();
        let reservation = self.find(&mut open, token)?;
        if reservation.operations.contains(&id) {
            return Err(Error::Conflict(format!(
                "operation {id:?} is already running on this stream"
            )));
        }
        if reservation.operations.len() >= MAX_OPERATIONS {
            return Err(Error::TooManyConnections(format!(
                "at most {MAX_OPERATIONS} operations may run on one stream"
            )));
        }
        let outcomes = checked.outcomes(state, caller, operation);
        let id_json: Arc<str> = Value::from(id.as_str()).to_string().into();
        let messages = messages(outcomes, Some(id_json)).boxed();
        // A stream that has ended has no reservation left, so this is read.
        let _ = reservation
            .commands
            .send(Command::Add(id.clone(), messages));
        reservation.operations.insert(id);
        Ok(())
    }

    /// Stops operation `id` on the stream reserved under `token` (one that
    /// already ended, or never ran, is no error).
    pub fn remove(&self, token: &str, id: &str) -> Result<(), Error> {
        let mut open = self.lock();
        let reservation = self.find(&mut open, token)?;
        if reservation.operations.remove(id) {
            let _ = reservation.commands.send(Command::Remove(id.to_owned()));
        }
        Ok(())
    }

    /// The live reservation under `token`.
    fn find<'a>(
        &self,
        open: &'a mut HashMap<String, Reservation>,
        token: &str,
    ) -> Result<&'a mut Reservation, Error> {
        let expired = |reservation: &Reservation| {
            reservation.waiting.is_some() && reservation.reserved_at.elapsed() >= self.expiry
        };
        match open.get_mut(token) {
            Some(reservation) if !expired(reservation) => Ok(reservation),
            _ => Err(Error::NotFound(
                "no event stream is reserved under this token: reserve one with PUT /graphql"
                    .into(),
            )),
        }
    }

    /// Operation `id` of the stream under `token` ended by itself.
    fn ended(&self, token: &str, id: &str) {
        if let Some(reservation) = self.lock().get_mut(token) {
            reservation.operations.remove(id);
        }
    }
}

/// The `extensions.operationId` of a single connection mode operation.
fn operation_id(extensions: Option<Value>) -> Result<String, Error> {
    let id = extensions
        .as_ref()
        .and_then(|extensions| extensions.get("operationId"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 128);
    id.map(str::to_owned).ok_or_else(|| Error::InvalidBody {
        detail: "an operation on a reserved stream needs extensions.operationId \
                 (a string of 1 to 128 characters)"
            .into(),
        field: Some("extensions.operationId".into()),
    })
}

/// A new reservation token: 128 random bits, in hex.
fn new_token() -> String {
    use std::fmt::Write;
    let mut bytes = [0u8; 16];
    // The system's random source failing is a broken machine, not a client.
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .expect("the system's random source");
    bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Forgets a reservation when its stream ends: its operations stop with it.
struct Forget(Arc<Reservations>, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// The messages of every operation added to a reserved stream, as they
/// come, until the stream's client goes away or the server stops.
fn stream(
    commands: mpsc::UnboundedReceiver<Command>,
    forget: Forget,
) -> impl Stream<Item = Message> + Send + 'static {
    let operations: StreamMap<String, BoxStream<'static, Message>> = StreamMap::new();
    let state = (commands, operations, forget);
    futures::stream::unfold(state, |(mut commands, mut operations, forget)| async move {
        loop {
            tokio::select! {
                command = commands.recv() => match command? {
                    Command::Add(id, messages) => {
                        operations.insert(id, messages);
                    }
                    Command::Remove(id) => {
                        operations.remove(&id);
                    }
                },
                Some((id, message)) = operations.next(), if !operations.is_empty() => {
                    if matches!(message, Message::Complete(_)) {
                        operations.remove(&id);
                        forget.0.ended(&forget.1, &id);
                    }
                    return Some((message, (commands, operations, forget)));
                }
            }
        }
    })
}
