//! The raw WebSocket feed: every text frame is an event, except JSON objects
//! with a `"type"` field, which are notices (`{"type":"gap",…}`).

use super::{Item, Wanted, next_text};
use crate::cli::endpoint::{ClientError, Endpoint, WebSocket};

/// An open `/ws` connection.
pub struct WsFeed {
    socket: WebSocket,
}

impl WsFeed {
    /// Opens `/ws` with the stream parameters as the query string.
    pub async fn open(endpoint: &Endpoint, wanted: &Wanted) -> Result<Self, ClientError> {
        let mut url = endpoint.ws("/ws");
        if !wanted.query_pairs().is_empty() {
            url.query_pairs_mut().extend_pairs(wanted.query_pairs());
        }
        let socket = endpoint.connect_ws(&url, None).await?;
        Ok(Self { socket })
    }

    /// The next event or notice; `None` when the socket closed.
    pub async fn next(&mut self) -> Result<Option<Item>, ClientError> {
        Ok(next_text(&mut self.socket)
            .await?
            .map(|text| classify(text.as_str())))
    }
}

/// A frame is a notice when it is a JSON object with a `type` field. (The
/// substring test first spares parsing every event twice.)
fn classify(text: &str) -> Item {
    let is_notice = text.contains("\"type\"")
        && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .is_ok_and(|object| object.contains_key("type"));
    if is_notice {
        Item::Notice(text.to_owned())
    } else {
        Item::Event(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_frames_are_notices_and_everything_else_is_an_event() {
        let gap = r#"{"type":"gap","reason":"lagged","after":"1-0"}"#;
        assert_eq!(classify(gap), Item::Notice(gap.into()));
        let event = r#"{"id":"1-0","longitude":1.0,"latitude":2.0}"#;
        assert_eq!(classify(event), Item::Event(event.into()));
        assert_eq!(
            classify("59.334591 18.063240"),
            Item::Event("59.334591 18.063240".into())
        );
    }
}
