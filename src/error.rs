//! One error type for everything a client can get wrong or the server can
//! fail at, and the one place each becomes an HTTP answer
//! (`application/problem+json`, RFC 9457) or a GraphQL error (with the same
//! `code` in `extensions`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::broker::{BrokerError, Gap};
use crate::model::{InvalidPosition, InvalidZone};

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not JSON (or not a form), or is empty.
    #[error("{detail}")]
    MalformedBody {
        /// What is wrong, for the client.
        detail: String,
        /// The field being read when parsing failed, when known.
        field: Option<String>,
    },
    /// The body parsed but has the wrong shape: missing or unknown field, wrong type.
    #[error("{detail}")]
    InvalidBody {
        /// What is wrong, for the client.
        detail: String,
        /// The offending field, when known.
        field: Option<String>,
    },
    /// A well-formed position that breaks a rule.
    #[error(transparent)]
    InvalidPosition(#[from] InvalidPosition),
    /// A well-formed zone that breaks a rule.
    #[error(transparent)]
    InvalidZone(#[from] InvalidZone),
    /// Some positions of a batch were refused, so none was published.
    #[error("{} of the batch's {total} positions were refused, so none was published: {}",
        refused.len(), refused.first().map_or("", |r| r.detail.as_str()))]
    InvalidBatch {
        /// How many positions the batch held.
        total: usize,
        /// Each refused position, in order.
        refused: Vec<RefusedItem>,
    },
    /// A GraphQL document over a size or complexity limit, refused before
    /// it is run (see `graphql::guard`).
    #[error("{0}")]
    DocumentRefused(String),
    /// A query parameter that cannot be used.
    #[error("{}", named(param, detail))]
    InvalidParameter {
        /// The parameter's name.
        param: &'static str,
        /// The rule it breaks.
        detail: String,
    },
    /// The body is larger than the configured limit.
    #[error("the body is larger than the {limit}-byte limit")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body's media type is not one the endpoint reads.
    #[error("send {expected}; got Content-Type {got:?}")]
    UnsupportedMediaType {
        /// What the endpoint reads, for the client.
        expected: &'static str,
        /// The media type sent, lower-cased.
        got: String,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is already there (a stream already
    /// open, an operation id already in use).
    #[error("{0}")]
    Conflict(String),
    /// A browser page from an origin outside the allowlist.
    #[error("pages from {0:?} may not use this server (see --allowed-origins)")]
    OriginNotAllowed(String),
    /// No valid credential for something that needs one.
    #[error("{detail}")]
    Unauthorized {
        /// What is missing or wrong (never the credential itself).
        detail: String,
        /// A credential was presented and refused (rather than missing).
        invalid_token: bool,
    },
    /// A valid credential that does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller publishes faster than `--publish-rate` allows.
    #[error("too many publishes: wait {retry_after_secs} s (see Retry-After)")]
    RateLimited {
        /// Seconds until the next publish will be accepted.
        retry_after_secs: u64,
    },
    /// The caller's address presented too many refused credentials
    /// (`--max-failed-auth-per-minute`); its credentials are not checked
    /// for a while.
    #[error(
        "too many refused credentials from this address: wait {retry_after_secs} s (see Retry-After)"
    )]
    CredentialsThrottled {
        /// Seconds until a credential from this address is checked again.
        retry_after_secs: u64,
    },
    /// The server, or the caller's address, holds as many streams as allowed.
    #[error("{0}")]
    TooManyConnections(String),
    /// The client did not send its request body in time.
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    /// The resource exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A plain request to a WebSocket endpoint.
    #[error("{0} is a WebSocket endpoint: connect with a WebSocket client")]
    UpgradeRequired(&'static str),
    /// The broker cannot take the event right now.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Some events will never reach this subscriber; see [`Gap`].
    #[error("events were lost ({}); resume with the last id received", .0.reason.as_str())]
    EventsLost(Gap),
}

/// `detail`, prefixed with the parameter's name unless it already starts
/// with it ("limit must be…" is not made "limit: limit must be…").
fn named(param: &str, detail: &str) -> String {
    let names_it = detail
        .strip_prefix(param)
        .is_some_and(|rest| rest.starts_with([' ', ':', '=']));
    if names_it {
        detail.to_owned()
    } else {
        format!("{param}: {detail}")
    }
}

/// One refused position of a batch: where it is, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusedItem {
    /// Its place in the batch, from 0 (for NDJSON, the line's, blank lines
    /// not counted).
    pub index: usize,
    /// The code it would get on its own (`invalid-position`, `invalid-body`, …).
    pub code: &'static str,
    /// The field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong with it.
    pub detail: String,
}

impl RefusedItem {
    /// Item `index` of a batch, refused with `error`.
    pub fn new(index: usize, error: &Error) -> Self {
        Self {
            index,
            code: error.code(),
            field: error.field(),
            detail: shorten(error.to_string()),
        }
    }
}

/// Most refused items listed in one answer: enough to fix a batch, while
/// a batch of garbage gets a short answer.
pub const MAX_REFUSED_LISTED: usize = 20;

impl From<crate::broker::CursorAhead> for Error {
    fn from(ahead: crate::broker::CursorAhead) -> Self {
        Error::InvalidParameter {
            param: "after",
            detail: ahead.to_string(),
        }
    }
}

impl From<crate::model::OutOfScope> for Error {
    fn from(outside: crate::model::OutOfScope) -> Self {
        Error::Forbidden(outside.to_string())
    }
}

impl From<crate::model::InvalidParameter> for Error {
    fn from(invalid: crate::model::InvalidParameter) -> Self {
        Error::InvalidParameter {
            param: invalid.param,
            detail: invalid.detail,
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for Error {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Error::InvalidParameter {
            param: "query",
            detail: rejection.body_text(),
        }
    }
}

impl Error {
    /// The error for a request body that could not be read within `limit` bytes.
    pub fn from_body_error(err: &axum::Error, limit: usize) -> Self {
        let too_large = std::error::Error::source(err)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            Error::PayloadTooLarge { limit }
        } else {
            Error::MalformedBody {
                detail: format!("the body could not be read: {err}"),
                field: None,
            }
        }
    }

    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedBody { .. }
            | Self::InvalidParameter { .. }
            | Self::DocumentRefused(_) => StatusCode::BAD_REQUEST,
            Self::InvalidBody { .. }
            | Self::InvalidPosition(_)
            | Self::InvalidZone(_)
            | Self::InvalidBatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::OriginNotAllowed(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } | Self::CredentialsThrottled { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::TooManyConnections(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::EventsLost(_) => StatusCode::GONE,
        }
    }

    /// Stable machine-readable code, the same on every transport.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedBody { .. } => "malformed-body",
            Self::InvalidBody { .. } => "invalid-body",
            Self::InvalidPosition(_) => "invalid-position",
            Self::InvalidZone(_) => "invalid-zone",
            Self::InvalidBatch { .. } => "invalid-batch",
            Self::InvalidParameter { .. } => "invalid-parameter",
            Self::DocumentRefused(_) => "document-refused",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::UnsupportedMediaType { .. } => "unsupported-media-type",
            Self::NotFound(_) => "not-found",
            Self::Conflict(_) => "conflict",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::OriginNotAllowed(_) => "origin-not-allowed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::RequestTimeout(_) => "request-timeout",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } | Self::CredentialsThrottled { .. } => "rate-limited",
            Self::TooManyConnections(_) => "too-many-connections",
            Self::UpgradeRequired(_) => "upgrade-required",
            Self::Broker(_) => "broker-unavailable",
            Self::EventsLost(_) => "events-lost",
        }
    }

    /// The field or parameter at fault, when there is one (in a batch,
    /// the first refused item's, as `[<index>].<field>`).
    pub fn field(&self) -> Option<String> {
        match self {
            Self::InvalidBatch { refused, .. } => refused.first().map(|item| match &item.field {
                Some(field) => format!("[{}].{field}", item.index),
                None => format!("[{}]", item.index),
            }),
            other => other.own_field().map(str::to_owned),
        }
    }

    fn own_field(&self) -> Option<&str> {
        match self {
            Self::MalformedBody { field, .. } | Self::InvalidBody { field, .. } => field.as_deref(),
            Self::InvalidPosition(invalid) => Some(invalid.field()),
            Self::InvalidZone(invalid) => Some(&invalid.field),
            Self::InvalidParameter { param, .. } => Some(param),
            _ => None,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:longlat:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: shorten(self.to_string()),
            code: self.code(),
            field: self.field(),
            refused: match self {
                Self::InvalidBatch { refused, .. } => {
                    refused.iter().take(MAX_REFUSED_LISTED).cloned().collect()
                }
                _ => Vec::new(),
            },
        }
    }
}

/// Longest `detail` sent back: errors may quote the client's input.
const MAX_DETAIL_CHARS: usize = 300;

fn shorten(mut detail: String) -> String {
    if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
        detail.truncate(cut);
        detail.push('…');
    }
    detail
}

/// An RFC 9457 problem document, with longlat's `code` and `field` extensions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "urn:longlat:problem:invalid-position", "title": "Unprocessable Entity",
    "status": 422, "detail": "latitude must be a number from -90 to 90, got 91",
    "code": "invalid-position", "field": "latitude"}))]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:longlat:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, naming the field and the rule.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// The field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a batch (`invalid-batch`): each refused position, with its index
    /// (at most 20 listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedItem>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        crate::stats::rejected(self.code());
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Broker(_) | Self::TooManyConnections(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited { retry_after_secs }
            | Self::CredentialsThrottled { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::Unauthorized { invalid_token, .. } => {
                let challenge = if invalid_token {
                    r#"Bearer realm="longlat", error="invalid_token""#
                } else {
                    r#"Bearer realm="longlat""#
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            Self::RequestTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::UpgradeRequired(_) => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            }
            _ => {}
        }
        response
    }
}

impl async_graphql::ErrorExtensions for Error {
    /// The GraphQL error: the same message, and `extensions.code` (plus
    /// `field`, or a lost-events notice's `reason`, `after`, `resumedFrom`
    /// and `missed`) as in the problem document.
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(shorten(self.to_string())).extend_with(|_, ext| {
            ext.set("code", self.code());
            if let Some(field) = self.field() {
                ext.set("field", field);
            }
            if let Self::RateLimited { retry_after_secs }
            | Self::CredentialsThrottled { retry_after_secs } = self
            {
                ext.set("retryAfter", *retry_after_secs);
            }
            if let Self::EventsLost(gap) = self {
                let id = |id: Option<crate::model::EventId>| id.map(|id| id.to_string());
                ext.set("reason", gap.reason.as_str());
                ext.set("after", id(gap.after));
                ext.set("resumedFrom", id(gap.resumed_from));
                ext.set("missed", gap.missed);
            }
        })
    }
}
