//! Reading a batch of positions from a `POST /longlat` body: a JSON array,
//! or NDJSON (one JSON object a line, `application/x-ndjson`).
//!
//! Each position is read by the same reader as a single publish, so a bad
//! one is refused in the same words, and the refusals are kept per item for
//! [`crate::publish::Admitted::publish_batch`] to name them all at once.

use super::body_refusal::not_json;
use super::rest::parse_json;
use crate::error::Error;
use crate::publish::{BatchItems, MAX_BATCH};

/// How a batch is laid out in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// A JSON array of position objects.
    JsonArray,
    /// One position object a line.
    Ndjson,
}

/// Whether `media_type` (lower or mixed case, no parameters) is NDJSON.
pub fn is_ndjson(media_type: &str) -> bool {
    [
        "application/x-ndjson",
        "application/jsonl",
        "application/ndjson",
    ]
    .iter()
    .any(|known| media_type.eq_ignore_ascii_case(known))
}

/// Whether a JSON body holds an array rather than one object.
pub fn is_json_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Reads every position of a batch; an item that cannot be read is kept as
/// its refusal. Fails as a whole when the body is not a batch at all, or
/// holds more than [`MAX_BATCH`] positions.
pub fn read_batch(format: BatchFormat, body: &[u8]) -> Result<BatchItems, Error> {
    let items: Vec<&[u8]> = match format {
        BatchFormat::JsonArray => {
            let raw: Vec<&serde_json::value::RawValue> =
                serde_json::from_slice(body).map_err(|err| match err.classify() {
                    serde_json::error::Category::Data => Error::InvalidBody {
                        detail: "a batch is a JSON array of position objects".into(),
                        field: None,
                    },
                    _ => not_json(&err, "."),
                })?;
            raw.into_iter().map(|item| item.get().as_bytes()).collect()
        }
        BatchFormat::Ndjson => body
            .split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .collect(),
    };
    if items.len() > MAX_BATCH {
        return Err(Error::InvalidBody {
            detail: format!(
                "the batch holds {} positions; send at most {MAX_BATCH} at a time",
                items.len()
            ),
            field: None,
        });
    }
    Ok(items.into_iter().map(parse_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_read_the_same_positions_and_keep_each_refusal_in_place() {
        let array = br#"[{"longitude":1,"latitude":2},{"longitude":1,"latitude":"x"}]"#;
        let lines = b"{\"longitude\":1,\"latitude\":2}\r\n\n{\"longitude\":1,\"latitude\":\"x\"}\n";
        for (format, body) in [
            (BatchFormat::JsonArray, &array[..]),
            (BatchFormat::Ndjson, &lines[..]),
        ] {
            let items = read_batch(format, body).unwrap();
            assert_eq!(items.len(), 2, "{format:?}");
            assert!(items[0].is_ok());
            assert_eq!(
                items[1].as_ref().unwrap_err().field().as_deref(),
                Some("latitude")
            );
        }
        assert!(read_batch(BatchFormat::JsonArray, b"[1,").is_err());
        let too_many = format!("[{}]", vec!["{}"; MAX_BATCH + 1].join(","));
        assert!(read_batch(BatchFormat::JsonArray, too_many.as_bytes()).is_err());
    }
}
