//! The GraphQL feed: the `positions` subscription over graphql-transport-ws
//! (subprotocol `graphql-transport-ws`): `connection_init`, wait for
//! `connection_ack`, `subscribe`, then `next` items until `complete`.

use futures::SinkExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Item, Wanted, next_text};
use crate::cli::endpoint::{ClientError, Endpoint, WebSocket};

/// The fields of a whole event, in the order `/ws` sends them.
const EVENT_FIELDS: &str = "id longitude latitude tracker receivedAt";

/// A message from the server.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<Box<RawValue>>,
}

/// The payload of a `next` message.
#[derive(Deserialize)]
struct Next {
    data: Option<NextData>,
    errors: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct NextData {
    positions: Option<Box<RawValue>>,
}

/// An open `/graphql` connection with one `positions` subscription.
pub struct GraphqlFeed {
    socket: WebSocket,
}

impl GraphqlFeed {
    /// Connects, initialises the connection and subscribes.
    pub async fn open(endpoint: &Endpoint, wanted: &Wanted) -> Result<Self, ClientError> {
        let socket = endpoint
            .connect_ws(&endpoint.ws("/graphql"), Some("graphql-transport-ws"))
            .await?;
        let mut feed = Self { socket };
        feed.send(json!({"type": "connection_init", "payload": {}}))
            .await?;
        loop {
            match feed.receive().await? {
                Some(message) if message.kind == "connection_ack" => break,
                Some(message) if message.kind == "ping" => feed.pong().await?,
                Some(message) => {
                    return Err(ClientError::Protocol(format!(
                        "expected connection_ack, got {:?}",
                        message.kind
                    )));
                }
                None => return Err(ClientError::Protocol("closed before connection_ack".into())),
            }
        }
        feed.send(json!({"id": "1", "type": "subscribe", "payload": subscribe_payload(wanted)}))
            .await?;
        Ok(feed)
    }

    /// The next event or notice; `None` when the subscription completed or
    /// the socket closed.
    pub async fn next(&mut self) -> Result<Option<Item>, ClientError> {
        loop {
            let Some(message) = self.receive().await? else {
                return Ok(None);
            };
            let payload = message.payload.as_deref().map_or("null", RawValue::get);
            match message.kind.as_str() {
                "next" => {
                    let next: Next = serde_json::from_str(payload)
                        .map_err(|e| ClientError::Protocol(format!("a next message: {e}")))?;
                    if let Some(errors) = next.errors {
                        return events_lost(errors.get()).map(Some);
                    }
                    if let Some(position) = next.data.and_then(|d| d.positions) {
                        return Ok(Some(Item::Event(position.get().to_owned())));
                    }
                }
                "error" => {
                    return Err(ClientError::Protocol(format!(
                        "subscription refused: {payload}"
                    )));
                }
                "complete" => return Ok(None),
                "ping" => self.pong().await?,
                _ => {}
            }
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), ClientError> {
        Ok(self
            .socket
            .send(Message::Text(message.to_string().into()))
            .await?)
    }

    async fn pong(&mut self) -> Result<(), ClientError> {
        self.send(json!({"type": "pong"})).await
    }

    /// The next protocol message; `None` when the socket closed.
    async fn receive(&mut self) -> Result<Option<Incoming>, ClientError> {
        let Some(text) = next_text(&mut self.socket).await? else {
            return Ok(None);
        };
        serde_json::from_str(text.as_str())
            .map(Some)
            .map_err(|e| ClientError::Protocol(format!("{e}: {}", text.as_str())))
    }
}

/// The item for a `next` message's errors: a notice when they all say
/// events were lost (`extensions.code` `events-lost`), otherwise a failure.
fn events_lost(errors: &str) -> Result<Item, ClientError> {
    #[derive(Deserialize)]
    struct GraphqlError {
        message: String,
        #[serde(default)]
        extensions: Value,
    }
    let parsed: Vec<GraphqlError> = serde_json::from_str(errors)
        .map_err(|e| ClientError::Protocol(format!("GraphQL errors: {e}")))?;
    match parsed
        .iter()
        .find(|e| e.extensions["code"] != "events-lost")
    {
        None => Ok(Item::Notice(errors.to_owned())),
        Some(error) => Err(ClientError::Graphql(error.message.clone())),
    }
}

/// The `subscribe` payload: the `positions` subscription declaring only the
/// arguments that are set, so that with none it is the plain
/// `subscription { positions { … } }` other servers understand too.
fn subscribe_payload(wanted: &Wanted) -> Value {
    let fields = wanted.graphql_fields.unwrap_or(EVENT_FIELDS);
    let mut variables = serde_json::Map::new();
    let mut declared = Vec::new();
    if let Some(after) = &wanted.after {
        declared.push(("after", "ID"));
        variables.insert("after".into(), json!(after));
    }
    if !wanted.trackers.is_empty() {
        declared.push(("tracker", "[String!]"));
        variables.insert("tracker".into(), json!(wanted.trackers));
    }
    if let Some(b) = &wanted.bbox {
        declared.push(("bbox", "BoundingBox"));
        variables.insert(
            "bbox".into(),
            json!({"minLongitude": b.min_longitude, "minLatitude": b.min_latitude,
                   "maxLongitude": b.max_longitude, "maxLatitude": b.max_latitude}),
        );
    }
    let query = if declared.is_empty() {
        format!("subscription {{ positions {{ {fields} }} }}")
    } else {
        let list = |f: &dyn Fn(&(&str, &str)) -> String| {
            declared.iter().map(f).collect::<Vec<_>>().join(", ")
        };
        format!(
            "subscription({}) {{ positions({}) {{ {fields} }} }}",
            list(&|(name, kind)| format!("${name}: {kind}")),
            list(&|(name, _)| format!("{name}: ${name}")),
        )
    };
    json!({"query": query, "variables": variables})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_arguments_given_are_declared() {
        let plain = subscribe_payload(&Wanted {
            graphql_fields: Some("longitude latitude"),
            ..Wanted::default()
        });
        assert_eq!(
            plain["query"],
            "subscription { positions { longitude latitude } }"
        );
        let resumed = subscribe_payload(&Wanted {
            after: Some("1-0".into()),
            trackers: vec!["bus-1".into()],
            ..Wanted::default()
        });
        assert_eq!(
            resumed["query"],
            format!(
                "subscription($after: ID, $tracker: [String!]) \
                 {{ positions(after: $after, tracker: $tracker) {{ {EVENT_FIELDS} }} }}"
            )
        );
        assert_eq!(
            resumed["variables"],
            json!({"after": "1-0", "tracker": ["bus-1"]})
        );
    }
}
