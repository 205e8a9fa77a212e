//! The bytes written to subscribers, laid out once per event (or result)
//! and sent as they are to every socket that takes that form: a WebSocket
//! text frame (what `/ws` sends, and what a graphql-ws `next` message is
//! wrapped in), a chunk of a chunked HTTP/1.1 body (an `/events` frame
//! pushed by the fan-out), and an event's three forms (JSON, WebSocket
//! frame, SSE frame) in one buffer.
//!
//! Written by hand, not by tungstenite or hyper, because those forms are
//! made once and written by the fan-out to many sockets directly: the
//! libraries frame per connection, as they write. Tests pin the WebSocket
//! frame to tungstenite's layout and the chunk to RFC 9112's.

use bytes::Bytes;

use crate::model::{Gap, PositionEvent};

/// The header of one final, unmasked WebSocket text frame (RFC 6455, 5.2:
/// a server's frames) with `len` bytes of payload: its bytes, and how many.
pub fn text_frame_header(len: usize) -> ([u8; 10], usize) {
    let mut header = [0; 10];
    header[0] = 0x81;
    let used = match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if short < 126 => {
            header[1] = short;
            2
        }
        (_, Ok(medium)) => {
            header[1] = 126;
            header[2..4].copy_from_slice(&medium.to_be_bytes());
            4
        }
        _ => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    (header, used)
}

/// Appends to `out` one final, unmasked WebSocket text frame whose payload
/// is `parts`, one after the other.
pub fn text_frame(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let (header, used) = text_frame_header(len);
    out.reserve(used + len);
    out.extend_from_slice(&header[..used]);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// An event's wire forms, in one buffer (see [`event_forms`]).
#[derive(Debug)]
pub struct EventForms {
    /// The event as compact JSON text (valid UTF-8).
    pub json: bytes::Bytes,
    /// The WebSocket text frame carrying `json`.
    pub ws: bytes::Bytes,
    /// The Server-Sent Events frame: `id:`, `event: position`, `data:` the
    /// JSON.
    pub sse: bytes::Bytes,
}

/// Serialises `position` once, and lays out its three wire forms in one
/// buffer: `[ws header][json]` then `[sse prefix][json]\n\n`.
pub fn event_forms(position: &PositionEvent) -> EventForms {
    // The JSON goes after room for the longest header it can need; its
    // header is written just in front of it.
    const ROOM: usize = 10;
    let mut buf = Vec::with_capacity(512);
    buf.resize(ROOM, 0);
    serde_json::to_writer(&mut buf, position).expect("a position event always serialises");
    let (header, used) = text_frame_header(buf.len() - ROOM);
    let ws_start = ROOM - used;
    buf[ws_start..ROOM].copy_from_slice(&header[..used]);
    let ws_end = buf.len();
    buf.extend_from_slice(b"id: ");
    buf.extend_from_slice(position.id.text().as_str().as_bytes());
    buf.extend_from_slice(b"\nevent: position\ndata: ");
    buf.extend_from_within(ROOM..ws_end);
    buf.extend_from_slice(b"\n\n");
    let buf = bytes::Bytes::from(buf);
    EventForms {
        json: buf.slice(ROOM..ws_end),
        ws: buf.slice(ws_start..ws_end),
        sse: buf.slice(ws_end..),
    }
}

/// The Server-Sent Events frame of a notice of lost events: `event: gap`,
/// `data:` the notice's JSON.
pub fn sse_gap(gap: &Gap) -> Bytes {
    Bytes::from(format!("event: gap\ndata: {}\n\n", gap.to_json()))
}

/// The chunk that ends a chunked HTTP/1.1 body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `data` as one chunk of a chunked HTTP/1.1 body (RFC 9112, 7.1).
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 20);
    push_chunk(&mut chunk, data);
    chunk
}

/// Appends `data` to `out` as one chunk of a chunked HTTP/1.1 body.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{:X}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};

    #[test]
    fn text_frames_are_laid_out_as_tungstenite_lays_them_out() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let (head, tail) = text.split_at(len / 3);
            let mut ours = Vec::new();
            text_frame(&mut ours, &[head.as_bytes(), tail.as_bytes()]);
            let mut theirs = Vec::new();
            Frame::message(text.into_bytes(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .unwrap();
            assert!(ours == theirs, "frame for {len} bytes differs");
        }
    }
    #[test]
    fn a_chunk_is_its_size_in_hex_then_the_data_then_crlf() {
        assert_eq!(chunk(b"data: 1\n\n"), b"9\r\ndata: 1\n\n\r\n");
        let big = vec![b'x'; 300];
        let made = chunk(&big);
        assert_eq!(&made[..5], b"12C\r\n");
        assert_eq!(&made[5..305], &big[..]);
        assert_eq!(&made[305..], b"\r\n");
    }
}
