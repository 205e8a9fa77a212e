//! Why a publish body was refused, in the client's words rather than serde's.
//!
//! Serde reports a wrong body as "invalid type: string \"x\", expected f64"
//! or "missing field `latitude`", naming Rust types and no field. A person
//! sending their first position should read which field is wrong and what
//! it must hold, so each refusal is rewritten here from the field's rule
//! ([`PositionInput::rule`]) and the kind of value that was sent.

use crate::error::Error;
use crate::model::PositionInput;

/// What a client should send, ending every message that is not about one field.
pub const EXPECTED: &str =
    r#"send a JSON object like {"longitude": 18.06324, "latitude": 59.334591}"#;

/// A body that parsed but does not fit a position: `path` is where the
/// reader was ("." at the top), `message` the deserializer's own words, and
/// `value` the text a form sent for that field (a form's parse error does
/// not say it).
pub fn invalid_body(path: &str, message: &str, value: Option<&str>) -> Error {
    if let Some(field) = quoted_after(message, "missing field ") {
        return refusal(field, format!("{field} is missing: {EXPECTED}"));
    }
    if let Some(field) = quoted_after(message, "unknown field ") {
        let known = PositionInput::FIELDS.join(", ");
        return refusal(
            field,
            format!("{field} is not a field of a position; its fields are {known}"),
        );
    }
    if let Some(field) = quoted_after(message, "duplicate field ") {
        return refusal(field, format!("{field} is given twice"));
    }
    let field = (path != ".").then_some(path);
    match field.and_then(|f| Some((f, PositionInput::rule(f)?))) {
        Some((field, rule)) => refusal(
            field,
            format!("{field} must be {rule}, got {}", sent(message, value)),
        ),
        None => Error::InvalidBody {
            detail: format!("the body is not a position: {EXPECTED}"),
            field: field.map(str::to_owned),
        },
    }
}

fn refusal(field: &str, detail: String) -> Error {
    Error::InvalidBody {
        detail,
        field: Some(field.to_owned()),
    }
}

/// The name in backquotes after `prefix`, as serde writes field names.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

/// What was sent instead: the form's value when known, else the kind of
/// value from serde's "invalid type: <kind> …".
fn sent(message: &str, value: Option<&str>) -> String {
    if let Some(value) = value {
        let shown: String = value.chars().take(40).collect();
        return format!("{shown:?}");
    }
    let kind = message.strip_prefix("invalid type: ").unwrap_or_default();
    let words = match kind.split([' ', ',']).next() {
        Some("string" | "char") => "a string",
        Some("integer" | "floating") => "a number",
        Some("boolean") => "true or false",
        Some("null") => "null",
        Some("map") => "an object",
        Some("sequence") => "an array",
        _ => "something else",
    };
    words.to_owned()
}

/// A body that is not JSON at all, located by line and column rather than
/// by the parser's grammar ("expected ident"); `path` names the field being
/// read, when there was one.
pub fn not_json(err: &serde_json::Error, path: &str) -> Error {
    let field = (path != ".").then(|| path.to_owned());
    let rule = field.as_deref().and_then(PositionInput::rule);
    let at = format!("line {}, column {}", err.line(), err.column());
    let detail = match (
        err.to_string().starts_with("number out of range"),
        &field,
        rule,
    ) {
        _ if err.is_eof() => format!("the body ends before its JSON does: {EXPECTED}"),
        (true, Some(field), Some(rule)) => format!("{field} is out of range: it must be {rule}"),
        (true, ..) => format!("a number is out of range ({at})"),
        _ => format!("the body is not valid JSON ({at}): {EXPECTED}"),
    };
    Error::MalformedBody { detail, field }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(path: &str, message: &str) -> (String, Option<String>) {
        match invalid_body(path, message, None) {
            Error::InvalidBody { detail, field } => (detail, field),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serde_words_become_the_fields_rule() {
        let (text, field) = detail("longitude", r#"invalid type: string "x", expected f64"#);
        assert_eq!(
            text,
            "longitude must be a number from -180 to 180, got a string"
        );
        assert_eq!(field.as_deref(), Some("longitude"));
        let (text, field) = detail(".", "missing field `latitude`");
        assert!(text.starts_with("latitude is missing"), "{text}");
        assert_eq!(field.as_deref(), Some("latitude"));
        let (text, _) = detail("latitude", "invalid float literal");
        assert_eq!(
            text,
            "latitude must be a number from -90 to 90, got something else"
        );
        match invalid_body("latitude", "invalid float literal", Some("north")) {
            Error::InvalidBody { detail, .. } => assert!(detail.ends_with(r#"got "north""#)),
            other => panic!("{other:?}"),
        }
    }
}
