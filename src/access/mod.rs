//! Who may publish and subscribe, and what one client may cost.
//!
//! Every request that publishes or reads events asks [`Access`] three
//! things, in this order: who is calling ([`Access::caller`]: the client's
//! address and what its bearer credential proves), whether that caller may do
//! it ([`Access::authorize`]: 401 without a valid credential, 403 with one
//! that does not allow it), and whether it may do it now
//! ([`Access::check_publish_rate`], [`Access::connect`]: 429 and 503 / close
//! 1013 with a reason).
//!
//! Guessing credentials is slowed down per client address: after
//! `--max-failed-auth-per-minute` refused credentials (20 by default) an
//! address is answered 429 (GraphQL WebSocket: close 4429) for every
//! credential it presents, valid ones included and without checking them,
//! until the limit lets one more through; what needs no credential still
//! works. Behind a reverse proxy set `--client-ip-header`, or every client
//! shares the proxy's address and its limit.
//!
//! What a reader may see is its credential's read scope (`read=` in a
//! token file, a `read` claim in a JWT; see [`crate::model::ReadScope`]):
//! every read path holds the filter it asks for to the scope with
//! [`Caller::reader_filter`], so a scope is enforced wherever a filter is,
//! by the one check each delivery makes. A presented credential's scope
//! applies whether or not `--protect` asks for one to read.
//!
//! Everything is off by default, as the tutorial's page and curl command
//! need: credentials are checked once tokens or a JWT key are configured
//! (`--tokens`, `--tokens-file`, `--jwt-secret`, `--jwt-public-key`), and
//! limits once they are set.

mod credentials;
mod limits;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};

pub use credentials::{Credentials, Grant};
pub use limits::ConnectionPermit;

use crate::config::Config;
use crate::conn::Connection;
use crate::error::Error;
use crate::model::{Filter, ReadScope};
use limits::{ConnectionLimits, FailedCredentials, PublishRate};

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Publish positions (`POST /longlat`, the GraphQL mutation).
    Publish,
    /// Read events: the streams, history, GraphQL queries and subscriptions.
    Subscribe,
}

impl Scope {
    /// The scope's name in token files, JWT `scope` claims and `--protect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
        }
    }
}

/// What a caller's credential proved.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No credential was presented.
    Missing,
    /// A valid credential and what it allows.
    Valid(Grant),
    /// A credential was presented and refused; the reason, for the client
    /// (never the credential itself).
    Invalid(String),
    /// A credential was presented from an address that had too many
    /// refused (`--max-failed-auth-per-minute`), and was not looked at.
    Throttled {
        /// Seconds until the address may present one again.
        retry_after_secs: u64,
    },
}

/// Who is calling: the client's address and its credential.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's address (from `--client-ip-header` behind a proxy).
    pub ip: IpAddr,
    /// What the presented credential proved.
    pub credential: Credential,
}

impl Caller {
    /// A caller nothing is known about: no credential, from `0.0.0.0`.
    /// Work that reaches no transport's caller runs as this one, so it is
    /// held to every rule an anonymous client is (and all such work shares
    /// one rate allowance).
    pub fn anonymous() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            credential: Credential::Missing,
        }
    }

    /// A caller already checked by its connection (a GraphQL WebSocket after
    /// `connection_init`), reading within `read`, for work shared between
    /// connections with that scope.
    pub fn connection_checked(read: Option<ReadScope>) -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            credential: Credential::Valid(Grant::everything("connection").reading(read)),
        }
    }

    /// The trackers this caller may read: its credential's read scope;
    /// `None` (every tracker) when it has none.
    pub fn read_scope(&self) -> Option<&ReadScope> {
        match &self.credential {
            Credential::Valid(grant) => grant.read_scope(),
            _ => None,
        }
    }

    /// `wanted` held to what this caller may read: the one place a read
    /// request meets the reader's scope, on every read path. A tracker
    /// asked for by name outside the scope is refused (403 `forbidden`,
    /// naming it).
    pub fn reader_filter(&self, wanted: Filter) -> Result<Filter, Error> {
        Ok(wanted.within(self.read_scope())?)
    }
}

/// Configuration errors found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AccessConfigError {
    /// A credential file or key, or an access setting, cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// The access rules in force, built once from the configuration.
#[derive(Debug)]
pub struct Access {
    credentials: Option<Credentials>,
    protect_publish: bool,
    protect_subscribe: bool,
    client_ip_header: Option<HeaderName>,
    rate: Option<PublishRate>,
    failed_credentials: Option<FailedCredentials>,
    connections: Arc<ConnectionLimits>,
}

impl Access {
    /// The rules `config` asks for; fails when a credential file or key
    /// cannot be used.
    pub fn from_config(config: &Config) -> Result<Self, AccessConfigError> {
        let credentials = Credentials::from_config(config)?;
        let protects = |scope: Scope| {
            credentials.is_some() && config.protect.iter().any(|p| p == scope.as_str())
        };
        let client_ip_header = match config.client_ip_header.as_deref() {
            None | Some("") => None,
            Some(name) => Some(HeaderName::try_from(name).map_err(|_| {
                AccessConfigError::Invalid(format!(
                    "--client-ip-header {name:?} is not a header name"
                ))
            })?),
        };
        Ok(Self {
            protect_publish: protects(Scope::Publish),
            protect_subscribe: protects(Scope::Subscribe),
            credentials,
            client_ip_header,
            rate: PublishRate::new(config.publish_rate, config.publish_burst),
            failed_credentials: FailedCredentials::new(config.max_failed_auth_per_minute),
            connections: Arc::new(ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_ip,
            )),
        })
    }

    /// Caps open streams at `streams` too: as many as the open-file limit
    /// leaves room for (see [`crate::fds`]).
    pub fn cap_streams(&mut self, streams: usize) {
        self.connections = Arc::new(self.connections.capped(streams));
    }

    /// Whether any credential (a token or a JWT key) is configured, so that
    /// a bearer token can mean something.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether `scope` needs a credential.
    pub fn protects(&self, scope: Scope) -> bool {
        match scope {
            Scope::Publish => self.protect_publish,
            Scope::Subscribe => self.protect_subscribe,
        }
    }

    /// The caller of a request: its address, and its bearer credential from
    /// `Authorization: Bearer …` or, where browsers cannot set headers
    /// (`allow_query_token`: WebSocket and EventSource requests), the
    /// `access_token` query parameter.
    pub fn caller(&self, parts: &Parts, allow_query_token: bool) -> Caller {
        self.caller_with(parts, |parts| {
            match parts.headers.get(header::AUTHORIZATION) {
                Some(value) => Some(bearer(value.to_str().unwrap_or(""))),
                None if allow_query_token => {
                    query_token(parts.uri.query(), &["access_token"]).map(Ok)
                }
                None => None,
            }
        })
    }

    /// The caller of a tracker app's request (the ingest endpoints): apps
    /// cannot send a bearer token, so the token may also be the password
    /// of HTTP Basic authentication (OwnTracks) or the `token` (or
    /// `access_token`) query parameter (OsmAnd, Traccar Client).
    pub fn app_caller(&self, parts: &Parts) -> Caller {
        self.caller_with(parts, |parts| {
            match parts.headers.get(header::AUTHORIZATION) {
                Some(value) => Some(app_authorization(value.to_str().unwrap_or(""))),
                None => query_token(parts.uri.query(), &["token", "access_token"]).map(Ok),
            }
        })
    }

    /// The caller of a request whose credential `token` finds.
    fn caller_with(
        &self,
        parts: &Parts,
        token: impl FnOnce(&Parts) -> Option<Result<String, String>>,
    ) -> Caller {
        let remote = parts
            .extensions
            .get::<Connection>()
            .map(|connection| connection.remote.ip());
        let ip = self.client_ip(&parts.headers, remote);
        if self.credentials.is_none() {
            // Nothing to check a credential against: it neither helps nor hurts.
            return Caller {
                ip,
                credential: Credential::Missing,
            };
        }
        let credential = match token(parts) {
            None => Credential::Missing,
            Some(Err(why)) => Credential::Invalid(why),
            Some(Ok(token)) => self.verify(ip, &token),
        };
        Caller { ip, credential }
    }

    /// What `token`, presented from `ip`, proves: the one place credentials
    /// are checked (request headers, `access_token`, GraphQL
    /// `connection_init`), and refused ones counted against
    /// `--max-failed-auth-per-minute`. From an address over that limit it
    /// is not looked at.
    pub fn verify(&self, ip: IpAddr, token: &str) -> Credential {
        // Nothing to check against: a credential neither helps nor hurts.
        let Some(credentials) = &self.credentials else {
            return Credential::Missing;
        };
        let failed = self.failed_credentials.as_ref();
        if let Some(retry_after_secs) = failed.and_then(|f| f.blocked(ip)) {
            return Credential::Throttled { retry_after_secs };
        }
        match credentials.verify(token) {
            Ok(grant) => Credential::Valid(grant),
            Err(why) => match failed.and_then(|f| f.failed(ip)) {
                Some(retry_after_secs) => Credential::Throttled { retry_after_secs },
                None => Credential::Invalid(why),
            },
        }
    }

    fn client_ip(&self, headers: &HeaderMap, remote: Option<IpAddr>) -> IpAddr {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| {
            // The last address is the one the nearest proxy added.
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        forwarded
            .or(remote)
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Refuses `caller` unless it may do `scope`: 401 without a valid
    /// credential, 403 with one that does not allow it.
    pub fn authorize(&self, caller: &Caller, scope: Scope) -> Result<(), Error> {
        if !self.protects(scope) {
            return Ok(());
        }
        match &caller.credential {
            Credential::Missing => Err(Error::Unauthorized {
                detail: format!(
                    "a bearer token is required to {}: send Authorization: Bearer <token>",
                    scope.as_str()
                ),
                invalid_token: false,
            }),
            Credential::Invalid(why) => Err(Error::Unauthorized {
                detail: format!("the bearer token was refused: {why}"),
                invalid_token: true,
            }),
            Credential::Throttled { retry_after_secs } => Err(Error::CredentialsThrottled {
                retry_after_secs: *retry_after_secs,
            }),
            Credential::Valid(grant) if !grant.allows(scope) => Err(Error::Forbidden(format!(
                "this token may not {}",
                scope.as_str()
            ))),
            Credential::Valid(_) => Ok(()),
        }
    }

    /// Refuses `caller` when it may do none of `scopes`: the check an
    /// endpoint that runs several kinds of operation (GraphQL over HTTP)
    /// makes before it reads what the request asks for. The refusal is the
    /// first scope's.
    pub fn authorize_any(&self, caller: &Caller, scopes: &[Scope]) -> Result<(), Error> {
        let mut refusals = scopes.iter().map(|&scope| self.authorize(caller, scope));
        match refusals.next() {
            Some(Err(first)) if refusals.all(|other| other.is_err()) => Err(first),
            _ => Ok(()),
        }
    }

    /// Refuses `caller` unless it may change zones: a publish credential
    /// not restricted to some trackers (a phone's token may publish as
    /// itself, not draw the zones everyone's positions are judged by).
    pub fn authorize_zones(&self, caller: &Caller) -> Result<(), Error> {
        self.authorize(caller, Scope::Publish)?;
        match &caller.credential {
            Credential::Valid(grant) if self.protect_publish && !grant.allows_tracker(None) => {
                Err(Error::Forbidden(
                    "this token may publish only for some trackers, and may not change zones"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a publish for `tracker` that `caller`'s credential does not
    /// cover (a token or JWT restricted to some trackers).
    pub fn authorize_tracker(&self, caller: &Caller, tracker: Option<&str>) -> Result<(), Error> {
        if !self.protect_publish {
            return Ok(());
        }
        match &caller.credential {
            Credential::Valid(grant) if !grant.allows_tracker(tracker) => {
                Err(Error::Forbidden(match tracker {
                    Some(t) => format!("this token may not publish for tracker {t:?}"),
                    None => "this token may only publish with a tracker it names".into(),
                }))
            }
            _ => Ok(()),
        }
    }

    /// Counts one publish by `caller` against `--publish-rate`: 429 with the
    /// seconds to wait when over it. Callers are told apart by credential
    /// subject, else by address.
    pub fn check_publish_rate(&self, caller: &Caller) -> Result<(), Error> {
        match &self.rate {
            None => Ok(()),
            Some(rate) => rate.check(caller),
        }
    }

    /// Counts `more` publishes by `caller` beyond the one
    /// [`Access::check_publish_rate`] counted: the rest of a batch.
    pub fn check_more_publishes(&self, caller: &Caller, more: usize) -> Result<(), Error> {
        let more = u32::try_from(more).ok().and_then(std::num::NonZeroU32::new);
        match (&self.rate, more) {
            (Some(rate), Some(more)) => rate.check_more(caller, more),
            _ => Ok(()),
        }
    }

    /// Takes a place for one long-lived connection (a stream) of `caller`,
    /// held until the permit is dropped; refused when the server or this
    /// address is at its `--max-connections` / `--max-connections-per-ip`.
    pub fn connect(&self, caller: &Caller) -> Result<ConnectionPermit, Error> {
        ConnectionLimits::acquire(&self.connections, caller.ip)
    }

    /// Forgets rate-limit state of callers not seen for a while.
    pub fn housekeeping(&self) {
        if let Some(rate) = &self.rate {
            rate.forget_idle();
        }
        if let Some(failed) = &self.failed_credentials {
            failed.forget_idle();
        }
    }
}

/// The token of an `Authorization` header value, or why it is not one.
fn bearer(value: &str) -> Result<String, String> {
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("use the Bearer scheme: Authorization: Bearer <token>".into());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("the Bearer token is empty".into());
    }
    Ok(token.to_owned())
}

/// The token of an app's `Authorization` header value: a bearer token, or
/// the password of HTTP Basic authentication; or why it is neither.
fn app_authorization(value: &str) -> Result<String, String> {
    use base64::Engine;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return bearer(value).map_err(|_| {
            "use Basic authentication with the token as password, or Authorization: Bearer <token>"
                .to_owned()
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| "the Basic credentials are not base64 of user:password".to_owned())?;
    match decoded.split_once(':') {
        Some((_, password)) if !password.is_empty() => Ok(password.to_owned()),
        _ => Err("the Basic password is empty: put the token there".into()),
    }
}

/// The first of the query parameters `names` present, if any.
fn query_token(query: Option<&str>, names: &[&str]) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    names.iter().find_map(|wanted| {
        pairs
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.clone())
    })
}

/// The token in a GraphQL `connection_init` payload: `{"authorization":
/// "Bearer …"}` (any case of the key, with or without the scheme) or
/// `{"token": "…"}`.
pub fn token_in_payload(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    object.iter().find_map(|(key, value)| {
        let value = value.as_str()?;
        if key.eq_ignore_ascii_case("authorization") {
            Some(bearer(value).unwrap_or_else(|_| value.trim().to_owned()))
        } else if key == "token" || key == "access_token" {
            Some(value.to_owned())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header_value() {
        assert_eq!(bearer("Bearer abc"), Ok("abc".into()));
        assert_eq!(bearer("bearer   abc "), Ok("abc".into()));
        assert!(bearer("Basic abc").is_err());
        assert!(bearer("Bearer ").is_err());
    }

    #[test]
    fn connection_init_payloads_carry_tokens_in_several_shapes() {
        let token = |v: serde_json::Value| token_in_payload(&v);
        assert_eq!(
            token(serde_json::json!({"Authorization": "Bearer t1"})),
            Some("t1".into())
        );
        assert_eq!(
            token(serde_json::json!({"authorization": "t2"})),
            Some("t2".into())
        );
        assert_eq!(token(serde_json::json!({"token": "t3"})), Some("t3".into()));
        assert_eq!(token(serde_json::json!({"other": "x"})), None);
        assert_eq!(token(serde_json::json!(null)), None);
    }

    #[test]
    fn access_token_is_found_among_other_parameters() {
        let names = ["access_token"];
        assert_eq!(
            query_token(Some("after=1-0&access_token=a%2Bb"), &names),
            Some("a+b".into())
        );
        assert_eq!(query_token(Some("after=1-0"), &names), None);
        assert_eq!(query_token(None, &names), None);
        assert_eq!(
            query_token(Some("id=1&token=t"), &["token", "access_token"]),
            Some("t".into())
        );
    }

    #[test]
    fn an_app_sends_its_token_as_the_basic_password_or_a_bearer_token() {
        // base64("alice:s3cret") and base64("alice:").
        assert_eq!(
            app_authorization("Basic YWxpY2U6czNjcmV0"),
            Ok("s3cret".into())
        );
        assert!(app_authorization("Basic YWxpY2U6").is_err());
        assert!(app_authorization("Basic !!").is_err());
        assert_eq!(app_authorization("Bearer t1"), Ok("t1".into()));
        assert!(app_authorization("Digest x").is_err());
    }
}
