//! A live feed of events over one connection, whatever the transport: the raw
//! WebSocket (`/ws`), Server-Sent Events (`/events`) or a GraphQL
//! subscription (`/graphql`, graphql-transport-ws). `watch` and `bench` both
//! read feeds; reconnecting is their business, not the feed's.

mod graphql;
mod sse;
mod ws;

use std::fmt;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::endpoint::{ClientError, Endpoint, WebSocket};
use crate::model::BoundingBox;

pub use sse::{SseMessage, SseParser};

/// How to subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The raw WebSocket at `/ws`: one JSON text frame per event.
    Ws,
    /// Server-Sent Events at `/events`.
    Sse,
    /// The GraphQL `positions` subscription at `/graphql` (graphql-transport-ws).
    Graphql,
}

impl Transport {
    /// The path the transport is served at.
    pub fn path(self) -> &'static str {
        match self {
            Self::Ws => "/ws",
            Self::Sse => "/events",
            Self::Graphql => "/graphql",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ws => "ws",
            Self::Sse => "sse",
            Self::Graphql => "graphql",
        })
    }
}

/// Which events to ask for, in the stream parameters every transport takes.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// Resume after this event id.
    pub after: Option<String>,
    /// Only these trackers (all when empty).
    pub trackers: Vec<String>,
    /// Only inside this box.
    pub bbox: Option<BoundingBox>,
    /// The fields a GraphQL subscription selects (all of an event when `None`).
    pub graphql_fields: Option<&'static str>,
}

impl Wanted {
    /// The query string pairs of `/ws` and `/events`.
    fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(after) = &self.after {
            pairs.push(("after", after.clone()));
        }
        if !self.trackers.is_empty() {
            pairs.push(("tracker", self.trackers.join(",")));
        }
        if let Some(b) = &self.bbox {
            let text = format!(
                "{},{},{},{}",
                b.min_longitude, b.min_latitude, b.max_longitude, b.max_latitude
            );
            pairs.push(("bbox", text));
        }
        pairs
    }
}

/// One thing a feed delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event, as the text of its JSON object (or, from servers with the
    /// tutorial's format, its `"%f %f"` text frame).
    Event(String),
    /// A notice that events were lost (a `gap`, or a GraphQL `events-lost`
    /// error), as JSON text.
    Notice(String),
}

/// An open subscription on one connection.
pub enum Feed {
    /// Over `/ws`.
    Ws(ws::WsFeed),
    /// Over `/events`.
    Sse(sse::SseFeed),
    /// Over `/graphql`.
    Graphql(graphql::GraphqlFeed),
}

impl Feed {
    /// Connects and subscribes. `http` is used for Server-Sent Events.
    pub async fn open(
        transport: Transport,
        endpoint: &Endpoint,
        http: &reqwest::Client,
        wanted: &Wanted,
    ) -> Result<Feed, ClientError> {
        Ok(match transport {
            Transport::Ws => Feed::Ws(ws::WsFeed::open(endpoint, wanted).await?),
            Transport::Sse => Feed::Sse(sse::SseFeed::open(endpoint, http, wanted).await?),
            Transport::Graphql => {
                Feed::Graphql(graphql::GraphqlFeed::open(endpoint, wanted).await?)
            }
        })
    }

    /// The next item; `None` once the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Item>, ClientError> {
        match self {
            Feed::Ws(feed) => feed.next().await,
            Feed::Sse(feed) => feed.next().await,
            Feed::Graphql(feed) => feed.next().await,
        }
    }
}

/// The next text frame on `socket`; `None` when it closed. Pings are
/// answered by the protocol layer as they are read.
async fn next_text(socket: &mut WebSocket) -> Result<Option<Utf8Bytes>, ClientError> {
    loop {
        match socket.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(Message::Text(text))) => return Ok(Some(text)),
            Some(Ok(_)) => {}
        }
    }
}
