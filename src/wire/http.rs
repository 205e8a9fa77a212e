//! Chunks of a chunked HTTP/1.1 body (RFC 9112, 7.1): how an `/events`
//! stream's frames go out once it has taken its connection over from
//! hyper, and how the fan-out pushes them.

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
