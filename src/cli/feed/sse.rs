//! The Server-Sent Events feed: a streaming `GET /events` read line by line
//! into messages, as the EventSource specification reads them.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::Method;
use reqwest::header::ACCEPT;

use super::{Item, Wanted};
use crate::cli::endpoint::{ClientError, Endpoint, refused};

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseMessage {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `id:` field, when the message had one.
    pub id: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Reads a byte stream into [`SseMessage`]s: lines ending in LF, CRLF or CR,
/// a blank line dispatching what the fields before it gathered. Comments and
/// `retry:` are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    pending: SseMessage,
    has_data: bool,
}

impl SseParser {
    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message in what was pushed so far.
    pub fn next_message(&mut self) -> Option<SseMessage> {
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut skip = 1;
            if self.buffer[end] == b'\r' {
                match self.buffer.get(end + 1) {
                    Some(b'\n') => skip = 2,
                    // A CR at the end of what arrived may be half of a CRLF.
                    None => return None,
                    Some(_) => {}
                }
            }
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            if let Some(message) = self.line(&String::from_utf8_lossy(&line)) {
                return Some(message);
            }
        }
        None
    }

    fn line(&mut self, line: &str) -> Option<SseMessage> {
        if line.is_empty() {
            let message = std::mem::take(&mut self.pending);
            let had_data = std::mem::take(&mut self.has_data);
            return had_data.then(|| SseMessage {
                event: if message.event.is_empty() {
                    "message".into()
                } else {
                    message.event
                },
                ..message
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.pending.event = value.to_owned(),
            "id" => self.pending.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

/// An open `/events` stream.
pub struct SseFeed {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
}

impl SseFeed {
    /// Opens `/events`; a cursor is sent as `Last-Event-ID`, as a
    /// reconnecting EventSource does.
    pub async fn open(
        endpoint: &Endpoint,
        http: &reqwest::Client,
        wanted: &Wanted,
    ) -> Result<Self, ClientError> {
        let mut url = endpoint.http("/events");
        let pairs: Vec<_> = wanted
            .query_pairs()
            .into_iter()
            .filter(|(name, _)| *name != "after")
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let mut request = endpoint
            .request(http, Method::GET, url)?
            .header(ACCEPT, "text/event-stream");
        if let Some(after) = &wanted.after {
            request = request.header("last-event-id", after);
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        Ok(Self {
            body: response.bytes_stream().boxed(),
            parser: SseParser::default(),
        })
    }

    /// The next event or notice; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Item>, ClientError> {
        loop {
            while let Some(message) = self.parser.next_message() {
                match message.event.as_str() {
                    "position" | "message" => return Ok(Some(Item::Event(message.data))),
                    "gap" => return Ok(Some(Item::Notice(message.data))),
                    _ => {}
                }
            }
            match self.body.next().await {
                Some(chunk) => self.parser.push(&chunk?),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&str]) -> Vec<SseMessage> {
        let mut parser = SseParser::default();
        let mut messages = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes());
            while let Some(message) = parser.next_message() {
                messages.push(message);
            }
        }
        messages
    }

    #[test]
    fn frames_split_anywhere_are_read_whole() {
        let messages = parse_all(&[
            "retry: 2000\n\nid: 1-0\nevent: posi",
            "tion\ndata: {\"id\":\"1-0\"}\n",
            "\n: keep-alive\n\r\nevent: gap\r",
            "\ndata: {\"type\":\"gap\"}\r\n\r\ndata: a\ndata: b\n\n",
        ]);
        assert_eq!(
            messages,
            vec![
                SseMessage {
                    event: "position".into(),
                    id: Some("1-0".into()),
                    data: "{\"id\":\"1-0\"}".into()
                },
                SseMessage {
                    event: "gap".into(),
                    id: None,
                    data: "{\"type\":\"gap\"}".into()
                },
                SseMessage {
                    event: "message".into(),
                    id: None,
                    data: "a\nb".into()
                },
            ]
        );
    }
}
