//! WebSocket text frames as a server sends them (RFC 6455, 5.2: final,
//! unmasked), laid out once for many sockets.

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
}
