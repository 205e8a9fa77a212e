//! Where the server is and how to authenticate to it: the options every
//! client command shares, the URLs built from them, and the one error type
//! of the clients.

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client WebSocket.
pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The server to talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoint {
    /// The server's base URL; `http://` is assumed when no scheme is given
    /// (`localhost:8844`).
    #[arg(long, env = "LONGLAT_URL", default_value = "http://127.0.0.1:8844", value_parser = parse_base_url)]
    pub url: Url,

    /// Bearer token sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "LONGLAT_TOKEN")]
    pub token: Option<String>,
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `detail` is the problem's detail
    /// when it sent `application/problem+json`, or the body.
    #[error("{detail} (HTTP {status}){}", refusal_hint(*status))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        detail: String,
    },
    /// No connection could be made to the server.
    #[error("cannot reach {address}: {reason} — is longlat running there?")]
    Unreachable {
        /// The server's scheme, host and port.
        address: String,
        /// Why, in a few words ("connection refused").
        reason: String,
    },
    /// The server's host name could not be resolved to an address.
    #[error(
        "cannot reach {address}: the name {host} could not be resolved — check the host in --url"
    )]
    UnknownHost {
        /// The server's scheme, host and port.
        address: String,
        /// The name that did not resolve.
        host: String,
    },
    /// An HTTP request could not be made or its answer read.
    #[error("{0}")]
    Http(reqwest::Error),
    /// A WebSocket could not be opened or broke.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
    /// A GraphQL operation failed; the message of its first error.
    #[error("GraphQL: {0}")]
    Graphql(String),
    /// The server sent something the client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// A local problem (an option, a file, the terminal).
    #[error("{0}")]
    Local(String),
}

impl From<reqwest::Error> for ClientError {
    fn from(err: reqwest::Error) -> Self {
        match err.url().filter(|_| err.is_connect()) {
            Some(url) => Self::unreachable(url, &err),
            None => Self::Http(err),
        }
    }
}

impl ClientError {
    /// A failed connection to `url`, told by its address and its root cause.
    fn unreachable(url: &Url, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut url = url.clone();
        // The address as the user gave it, also when a WebSocket failed.
        let scheme = if matches!(url.scheme(), "https" | "wss") {
            "https"
        } else {
            "http"
        };
        let _ = url.set_scheme(scheme);
        let address = url.origin().ascii_serialization();
        match url.host_str().filter(|_| is_name_not_resolved(err)) {
            Some(host) => Self::UnknownHost {
                address,
                host: host.to_owned(),
            },
            None => Self::Unreachable {
                address,
                reason: root_cause(err),
            },
        }
    }
}

/// Whether `err` says the host name did not resolve. The system resolver's
/// failure has no `ErrorKind` of its own (it is "uncategorized"), so it is
/// known by the words the standard library gives it, which both the HTTP
/// client and the WebSocket client pass on; the HTTP client also wraps it
/// in a "dns error".
fn is_name_not_resolved(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |cause| cause.source()).any(|cause| {
        let text = cause.to_string();
        text == "dns error" || text.starts_with("failed to lookup address information")
    })
}

/// The innermost cause of `err` in plain words: "connection refused" rather
/// than a chain of wrappers.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    match cause.downcast_ref::<std::io::Error>().map(|io| io.kind()) {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".into(),
        _ => cause.to_string(),
    }
}

/// What a user can do about a refusal, when the status says it.
fn refusal_hint(status: u16) -> &'static str {
    match status {
        401 => "; pass a valid token with --token (or LONGLAT_TOKEN)",
        403 => "; the token given with --token does not allow this",
        _ => "",
    }
}

/// Parses `--url`, taking `http://` when no scheme is given, so that
/// `localhost:8844`, `127.0.0.1:8844` and `host:port/` work as typed.
fn parse_base_url(text: &str) -> Result<Url, String> {
    let text = text.trim();
    let url = if text.contains("://") {
        Url::parse(text)
    } else {
        Url::parse(&format!("http://{text}"))
    }
    .map_err(|err| format!("{err}: give the server's address, e.g. http://localhost:8844"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        "http" | "https" => Err("the URL names no host, e.g. http://localhost:8844".into()),
        other => Err(format!(
            "the scheme {other}:// is not served: use http:// or https://"
        )),
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(err: tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(err))
    }
}

impl Endpoint {
    /// The HTTP URL of `path` on the server.
    pub fn http(&self, path: &str) -> Url {
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url.set_query(None);
        url
    }

    /// The WebSocket URL of `path`: `ws://` for `http://`, `wss://` for `https://`.
    pub fn ws(&self, path: &str) -> Url {
        let mut url = self.http(path);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Both schemes are "special" in the URL standard, so this cannot fail.
        let _ = url.set_scheme(scheme);
        url
    }

    /// The `Authorization` header value, when a token is set.
    pub fn authorization(&self) -> Result<Option<HeaderValue>, ClientError> {
        self.token
            .as_deref()
            .map(|token| {
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    ClientError::Local("the token has characters a header cannot carry".into())
                })
            })
            .transpose()
    }

    /// A request with the token attached.
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let request = client.request(method, url);
        Ok(match self.authorization()? {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        })
    }

    /// A WebSocket handshake request for `url`, with the token and, when
    /// given, the subprotocol.
    pub fn ws_request(
        &self,
        url: &Url,
        subprotocol: Option<&'static str>,
    ) -> Result<tungstenite::handshake::client::Request, ClientError> {
        let mut request = url.as_str().into_client_request()?;
        let headers = request.headers_mut();
        if let Some(value) = self.authorization()? {
            headers.insert(AUTHORIZATION, value);
        }
        if let Some(protocol) = subprotocol {
            headers.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        }
        Ok(request)
    }

    /// Opens a WebSocket; a refused handshake becomes [`ClientError::Refused`]
    /// with the problem's detail.
    pub async fn connect_ws(
        &self,
        url: &Url,
        subprotocol: Option<&'static str>,
    ) -> Result<WebSocket, ClientError> {
        let request = self.ws_request(url, subprotocol)?;
        // Frames are small; tungstenite's 128 KiB default read buffer would
        // cost a benchmark with thousands of subscribers gigabytes.
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((socket, _)) => Ok(socket),
            Err(tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                Err(ClientError::Refused {
                    status: response.status().as_u16(),
                    detail: problem_detail(&String::from_utf8_lossy(body)),
                })
            }
            Err(tungstenite::Error::Io(err)) => Err(ClientError::unreachable(url, &err)),
            Err(err) => Err(err.into()),
        }
    }
}

/// Turns an error answer into [`ClientError::Refused`], taking the detail
/// from an `application/problem+json` body when there is one.
pub async fn refused(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    ClientError::Refused {
        status,
        detail: problem_detail(&body),
    }
}

/// The `detail` (or else `title`) of a problem document; otherwise the text itself.
pub fn problem_detail(body: &str) -> String {
    let problem: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    field("detail")
        .or_else(|| field("title"))
        .unwrap_or_else(|| body.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint {
            url: url.parse().unwrap(),
            token: None,
        }
    }

    #[test]
    fn urls_keep_a_base_path_and_switch_scheme_for_websockets() {
        let plain = endpoint("http://127.0.0.1:8844");
        assert_eq!(
            plain.http("/longlat").as_str(),
            "http://127.0.0.1:8844/longlat"
        );
        assert_eq!(plain.ws("/ws").as_str(), "ws://127.0.0.1:8844/ws");
        let proxied = endpoint("https://example.com/longlat/");
        assert_eq!(proxied.ws("/ws").as_str(), "wss://example.com/longlat/ws");
    }

    #[test]
    fn a_url_without_a_scheme_is_taken_as_http() {
        for typed in ["localhost:8844", "127.0.0.1:8844", "localhost:8844/"] {
            let url = parse_base_url(typed).unwrap();
            assert_eq!(url.scheme(), "http", "{typed}");
            assert_eq!(url.port(), Some(8844), "{typed}");
        }
        assert_eq!(
            parse_base_url("https://example.com/base/")
                .unwrap()
                .as_str(),
            "https://example.com/base/"
        );
        assert!(parse_base_url("ftp://example.com").is_err());
    }

    #[test]
    fn a_problem_is_reduced_to_its_detail() {
        let body = r#"{"title":"Unprocessable Entity","detail":"latitude must be a number from -90 to 90, got 91"}"#;
        assert_eq!(
            problem_detail(body),
            "latitude must be a number from -90 to 90, got 91"
        );
        assert_eq!(problem_detail("bad request\n"), "bad request");
    }
}
