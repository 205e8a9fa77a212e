//! The messages a GraphQL-over-WebSocket server sends about an operation,
//! in both protocols (graphql-transport-ws, and the legacy
//! subscriptions-transport-ws), around payloads that are JSON text already,
//! serialised once per result. A `next` message is made up to its payload
//! once per operation id, so a shared result is framed once for all the
//! sharers that use the same id.

use serde_json::Value;

use super::websocket::text_frame;

/// A result message for operation `id` up to its payload:
/// `{"type":"<kind>","id":<id>,"payload":`; `kind` is `next`
/// (graphql-transport-ws) or `data` (legacy). The message ends with `}`
/// after the payload.
pub fn next_prefix(kind: &str, id: &str) -> String {
    let id = Value::from(id);
    format!(r#"{{"type":"{kind}","id":{id},"payload":"#)
}

/// The result message of `prefix` (see [`next_prefix`]) with `payload`.
pub fn next(prefix: &str, payload: &str) -> String {
    format!("{prefix}{payload}}}")
}

/// [`next`] as one WebSocket text frame, appended to `out`.
pub fn next_frame(out: &mut Vec<u8>, prefix: &str, payload: &str) {
    text_frame(out, &[prefix.as_bytes(), payload.as_bytes(), b"}"]);
}

/// Operation `id` is done.
pub fn complete(id: &str) -> String {
    let id = Value::from(id);
    format!(r#"{{"type":"complete","id":{id}}}"#)
}

/// Operation `id` was refused before it ran, for `errors` (a JSON array).
pub fn error(id: &str, errors: &str) -> String {
    let id = Value::from(id);
    format!(r#"{{"type":"error","id":{id},"payload":{errors}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_with_the_id_escaped_and_the_payload_as_given() {
        let prefix = next_prefix("next", "a\"b");
        let message: Value = serde_json::from_str(&next(&prefix, r#"{"data":1}"#)).unwrap();
        assert_eq!(
            message,
            serde_json::json!({"type": "next", "id": "a\"b", "payload": {"data": 1}})
        );
        let mut frame = Vec::new();
        next_frame(&mut frame, &prefix, r#"{"data":1}"#);
        let mut whole = Vec::new();
        text_frame(&mut whole, &[next(&prefix, r#"{"data":1}"#).as_bytes()]);
        assert_eq!(frame, whole, "the frame holds the same message");
        let complete: Value = serde_json::from_str(&complete("1")).unwrap();
        assert_eq!(complete, serde_json::json!({"type": "complete", "id": "1"}));
        let error: Value = serde_json::from_str(&error("1", "[]")).unwrap();
        assert_eq!(
            error,
            serde_json::json!({"type": "error", "id": "1", "payload": []})
        );
    }
}
