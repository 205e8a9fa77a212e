//! One way to start the server for a test, and the clients tests talk to it with.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use longlat::config::Config;
use longlat::shutdown::Shutdown;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected thing may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Awaits `future`, failing the test with `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Reads the real binary's JSON log lines (`--log-format json`) up to the
/// "listening" one and returns that entry; every line read is added to
/// `log`.
pub async fn listening_entry(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    log: &mut String,
) -> Value {
    within("the listening log line", async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("a log line before exit");
            log.push_str(&line);
            log.push('\n');
            let entry: Value = serde_json::from_str(&line).expect("JSON log lines");
            if entry["fields"]["addr"].is_string() {
                return entry;
            }
        }
    })
    .await
}

/// An HTTP client for a test. rustls, which the HTTPS tests' client is
/// built with, needs a crypto provider before any client is built: ring,
/// the server's.
pub fn http_client() -> reqwest::Client {
    longlat::tls::install_default_provider();
    reqwest::Client::new()
}

/// A running server and an HTTP client for it. Dropping it stops the server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
    /// `http`, or `https` for a server with TLS (and `http` a client that
    /// trusts its certificate).
    pub scheme: &'static str,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts the server with `history_size` events kept, subscribers given
/// `send_timeout_secs` to take a frame, and 8 KiB socket send buffers, so
/// a client that stops reading backs the server's writes up soon.
pub async fn spawn_app_for_slow_readers(history_size: u64, send_timeout_secs: u64) -> TestApp {
    spawn_app_with(|c| {
        c.history_size = history_size;
        c.send_timeout_secs = send_timeout_secs;
        c.socket_send_buffer = 8 * 1024;
    })
    .await
}

/// Starts the server with default settings on a free port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with settings adjusted by `adjust`, on a free port.
/// The broker is the in-memory one unless `adjust` says otherwise, so tests
/// write no data directory.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::defaults();
    config.broker = "memory".into();
    adjust(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let shutdown = Shutdown::new();
    tokio::spawn(longlat::run(listener, config, shutdown.clone()));
    TestApp {
        addr,
        http: crate::test_app::http_client(),
        shutdown,
        scheme: "http",
    }
}

/// Serves `config` on `listener`, for tests that stop a server and look
/// at what remains (a restart on the same port or data directory). The
/// handle resolves once the server has stopped, after the app is dropped.
pub fn serve_on(listener: TcpListener, config: Config) -> (TestApp, tokio::task::JoinHandle<()>) {
    let addr = listener.local_addr().expect("local address");
    let shutdown = Shutdown::new();
    let running = longlat::run(listener, config, shutdown.clone());
    let stopped = tokio::spawn(async move {
        running.await.expect("the server ran");
    });
    let app = TestApp {
        addr,
        http: crate::test_app::http_client(),
        shutdown,
        scheme: "http",
    };
    (app, stopped)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if self.scheme == "https" { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// GETs `path` and returns its JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// Posts `body` as JSON to `/longlat`; the answer, whatever its status.
    pub async fn post_position(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/longlat"))
            .json(body)
            .send()
            .await
            .expect("POST /longlat")
    }

    /// Posts a position as JSON and returns the stored event; fails unless 201.
    pub async fn publish(&self, longitude: f64, latitude: f64, tracker: Option<&str>) -> Value {
        let mut body = serde_json::json!({ "longitude": longitude, "latitude": latitude });
        if let Some(t) = tracker {
            body["tracker"] = t.into();
        }
        let response = self.post_position(&body).await;
        assert_eq!(response.status(), 201, "publishing {body}");
        response.json().await.expect("event JSON")
    }

    /// The Prometheus exposition from `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    }

    /// Publishes `count` positions one after another, at `latitude` and
    /// longitudes 0, 1, 2, …; their ids, in order.
    pub async fn publish_many(&self, count: usize, latitude: f64) -> Vec<String> {
        let mut ids = Vec::with_capacity(count + 1);
        for i in 0..count {
            let event = self.publish((i % 180) as f64, latitude, None).await;
            ids.push(event["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// Publishes `total` positions one after another in a task of their own,
    /// as fast as the server answers; the task returns their ids in order.
    pub fn publish_in_background(&self, total: usize) -> tokio::task::JoinHandle<Vec<String>> {
        let http = self.http.clone();
        let url = self.url("/longlat");
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(total);
            for i in 0..total {
                let body = serde_json::json!({"longitude": (i % 180) as f64, "latitude": 1.0});
                let response = http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .expect("POST /longlat");
                assert_eq!(response.status(), 201);
                let event: Value = response.json().await.expect("event JSON");
                ids.push(event["id"].as_str().expect("an id").to_owned());
            }
            ids
        })
    }

    /// Opens a WebSocket on `path` (with its query string).
    pub async fn subscribe(&self, path: &str) -> WsClient {
        let (socket, response) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(self.ws_url(path)),
        )
        .await
        .expect("WebSocket handshake");
        assert_eq!(response.status(), 101);
        WsClient { socket }
    }

    /// Opens a WebSocket on `path` from a socket with a 4 KiB receive
    /// buffer (so the server's writes stop being taken soon after the client
    /// stops reading), offering `subprotocol` if given.
    pub async fn subscribe_with_small_buffer(
        &self,
        path: &str,
        subprotocol: Option<&str>,
    ) -> WsClient {
        let mut request = self.ws_url(path).into_client_request().unwrap();
        if let Some(subprotocol) = subprotocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(subprotocol).unwrap(),
            );
        }
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(self.addr).await.unwrap();
        let (socket, response) = within(
            "the WebSocket handshake",
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .expect("WebSocket handshake");
        if let Some(subprotocol) = subprotocol {
            assert_eq!(response.headers()["Sec-WebSocket-Protocol"], subprotocol);
        }
        let socket = WebSocketStream::from_raw_socket(
            MaybeTlsStream::Plain(socket.into_inner()),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        WsClient { socket }
    }
}

/// The value of the sample `series` (name and labels as rendered) in a
/// `/metrics` text, 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A raw WebSocket client.
pub struct WsClient {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a subscriber saw next, ignoring pings and pongs.
#[derive(Debug)]
pub enum Seen {
    Json(Value),
    Closed(Option<CloseFrame>),
}

impl WsClient {
    /// The next text frame as JSON or the close frame.
    pub async fn next_seen(&mut self) -> Seen {
        loop {
            let message = within("a WebSocket frame", self.socket.next()).await;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Seen::Json(serde_json::from_str(&text).expect("frames are JSON"));
                }
                Some(Ok(Message::Close(frame))) => return Seen::Closed(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                None => return Seen::Closed(None),
                other => panic!("unexpected WebSocket message {other:?}"),
            }
        }
    }

    /// The next text frame as JSON; fails on anything else.
    pub async fn next_json(&mut self) -> Value {
        match self.next_seen().await {
            Seen::Json(value) => value,
            Seen::Closed(frame) => panic!("socket closed ({frame:?}) while waiting for a frame"),
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        match self.next_seen().await {
            Seen::Closed(Some(frame)) => frame.code.into(),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: Message) {
        self.socket.send(message).await.expect("send a frame");
    }
}

/// A token file holding `text`, named after `name` and this process, for a
/// server started with `--tokens-file`.
pub fn tokens_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("longlat-{}-{name}.tokens", std::process::id()));
    std::fs::write(&path, text).expect("write a token file");
    path
}
