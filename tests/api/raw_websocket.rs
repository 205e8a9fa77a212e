//! A WebSocket client written by hand over a plain TCP socket: the upgrade
//! request, then frames byte by byte. Client libraries refuse to send a
//! frame that breaks RFC 6455 (unmasked, reserved bits, unknown opcodes,
//! bad UTF-8) or to leave a ping unanswered; this one does what it is told,
//! and reads back exactly what the server sends.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::test_app::TestApp;

/// Opcodes (RFC 6455, 5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;

/// One frame as a client sends it: final, no reserved bits, masked (with
/// the all-zero key, so the payload reads as it is written), until told
/// otherwise.
#[derive(Debug, Clone)]
pub struct Frame {
    fin: bool,
    rsv1: bool,
    masked: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            rsv1: false,
            masked: true,
            opcode,
            payload: payload.into(),
        }
    }

    /// A Close frame with `code` and `reason`.
    pub fn close(code: u16, reason: &str) -> Self {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        Self::new(CLOSE, payload)
    }

    /// More fragments of the message follow.
    pub fn unfinished(mut self) -> Self {
        self.fin = false;
        self
    }

    /// With the first reserved bit set, which no extension here defines.
    pub fn rsv1(mut self) -> Self {
        self.rsv1 = true;
        self
    }

    /// Without a mask, as only a server may send.
    pub fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }

    /// The frame on the wire.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.fin) << 7 | u8::from(self.rsv1) << 6 | self.opcode];
        let mask = u8::from(self.masked) << 7;
        let len = self.payload.len();
        match (u8::try_from(len), u16::try_from(len)) {
            (Ok(short), _) if short < 126 => out.push(mask | short),
            (_, Ok(medium)) => {
                out.push(mask | 126);
                out.extend_from_slice(&medium.to_be_bytes());
            }
            _ => {
                out.push(mask | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if self.masked {
            out.extend_from_slice(&[0; 4]);
        }
        out.extend_from_slice(&self.payload);
        out
    }
}

/// One text message of `total` bytes in `count` fragments, on the wire.
pub fn fragmented_text(total: usize, count: usize) -> Vec<u8> {
    let size = total / count;
    (0..count)
        .flat_map(|i| {
            let opcode = if i == 0 { TEXT } else { CONTINUATION };
            let frame = Frame::new(opcode, vec![b'x'; size]);
            let frame = if i + 1 < count {
                frame.unfinished()
            } else {
                frame
            };
            frame.bytes()
        })
        .collect()
}

/// An upgraded connection, spoken to frame by frame.
pub struct RawWebSocket {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl RawWebSocket {
    /// Upgrades a new connection to `path`, offering `subprotocol` if given;
    /// fails unless the server answers 101.
    pub async fn open(app: &TestApp, path: &str, subprotocol: Option<&str>) -> Self {
        let tcp = TcpStream::connect(app.addr).await.expect("connect");
        let (read, mut write) = tcp.into_split();
        let protocol = subprotocol
            .map(|name| format!("Sec-WebSocket-Protocol: {name}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {protocol}\r\n",
            app.addr
        );
        write
            .write_all(request.as_bytes())
            .await
            .expect("send the upgrade request");
        let mut read = BufReader::new(read);
        let mut status = String::new();
        read.read_line(&mut status).await.expect("status line");
        assert!(status.contains(" 101 "), "{path}: {status}");
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.expect("a header");
            if line == "\r\n" {
                break;
            }
        }
        Self { read, write }
    }

    /// Writes `bytes`. A write the server cut short is not a failure: it
    /// may close before it read everything (a message over the limit);
    /// what it said is read after.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.write.write_all(bytes).await;
    }

    /// The frames the server sends, as (opcode, payload), up to its Close
    /// or the end of the connection.
    pub async fn frames(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while let Some((opcode, payload)) = self.next_frame().await {
            frames.push((opcode, payload));
            if opcode == CLOSE {
                break;
            }
        }
        frames
    }

    /// The code of the server's Close, after any other frames; `None` if
    /// the connection ends without one.
    pub async fn close_code(&mut self) -> Option<u16> {
        match self.frames().await.last() {
            Some((CLOSE, payload)) if payload.len() >= 2 => {
                Some(u16::from_be_bytes([payload[0], payload[1]]))
            }
            _ => None,
        }
    }

    /// Whether the server ended the connection: nothing more to read.
    pub async fn ended(&mut self) -> bool {
        let mut rest = Vec::new();
        // A reset ends it too.
        let _ = self.read.read_to_end(&mut rest).await;
        rest.is_empty()
    }

    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.read.read_exact(&mut head).await.ok()?;
        let len = match head[1] & 0x7f {
            126 => usize::from(self.read.read_u16().await.ok()?),
            127 => usize::try_from(self.read.read_u64().await.ok()?).ok()?,
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        self.read.read_exact(&mut payload).await.ok()?;
        Some((head[0] & 0x0f, payload))
    }
}
