//! The bytes written to subscribers, laid out once per event (or result)
//! and sent as they are to every socket that takes that form: an event's
//! three forms (JSON, WebSocket frame, SSE frame) in one buffer, made at
//! publish; a WebSocket text frame ([`websocket`]: what `/ws` sends, and
//! what a graphql-ws message is wrapped in); an SSE notice ([`sse`]); a
//! chunk of a chunked HTTP/1.1 body ([`http`]: an `/events` frame written
//! after the takeover); graphql-ws messages ([`graphql_ws`]).
//!
//! Written here, not by tungstenite, hyper or axum's `Sse`, because the
//! delivery engine writes one frame, made once, to every parked socket
//! directly, with no task woken and nothing copied per subscriber: the
//! libraries frame per connection, as they write. That design is what
//! makes a delivery to 1,000 subscribers × 100 events/s cost 4.7 µs of
//! CPU against the gorilla/websocket hub's 8.2 µs, and 5.0 µs over
//! graphql-ws against the reference server's 28.7 µs
//! (docs/performance.md); the libraries still frame
//! everything else (handshakes, control frames, a connection's own
//! writes). Tests pin each form to the library's layout or the RFC's.

pub mod graphql_ws;
pub mod http;
pub mod sse;
pub mod websocket;

pub use http::{LAST_CHUNK, chunk, push_chunk};
pub use sse::sse_gap;
pub use websocket::{text_frame, text_frame_header};

use crate::model::EventId;

/// An event's wire forms, in one buffer (see [`event_forms`]).
#[derive(Debug)]
pub struct EventForms {
    /// The event as compact JSON text (valid UTF-8).
    pub json: bytes::Bytes,
    /// The WebSocket text frame carrying `json`.
    pub ws: bytes::Bytes,
    /// The Server-Sent Events frame: `id:`, `event:` its name, `data:` the
    /// JSON.
    pub sse: bytes::Bytes,
}

/// Serialises `event` (a position or a zone event, with this `id` and SSE
/// event `name`) once, and lays out its three wire forms in one buffer:
/// `[ws header][json]` then `[sse prefix][json]\n\n`.
pub fn event_forms(id: EventId, name: &str, event: &impl serde::Serialize) -> EventForms {
    // The JSON goes after room for the longest header it can need; its
    // header is written just in front of it.
    const ROOM: usize = 10;
    let mut buf = Vec::with_capacity(512);
    buf.resize(ROOM, 0);
    serde_json::to_writer(&mut buf, event).expect("an event always serialises");
    let (header, used) = text_frame_header(buf.len() - ROOM);
    let ws_start = ROOM - used;
    buf[ws_start..ROOM].copy_from_slice(&header[..used]);
    let ws_end = buf.len();
    buf.extend_from_slice(b"id: ");
    buf.extend_from_slice(id.text().as_str().as_bytes());
    buf.extend_from_slice(b"\nevent: ");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    buf.extend_from_within(ROOM..ws_end);
    buf.extend_from_slice(b"\n\n");
    let buf = bytes::Bytes::from(buf);
    EventForms {
        json: buf.slice(ROOM..ws_end),
        ws: buf.slice(ws_start..ws_end),
        sse: buf.slice(ws_end..),
    }
}
