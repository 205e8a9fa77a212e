//! Built-in TLS and HTTP/2: curl over `--http2` and `--http1.1`, and with
//! prior knowledge in plain text, gets `/events` and GraphQL over SSE; a
//! WebSocket and the graphql-sse client work over HTTPS; a renewed
//! certificate is served without a restart; a stalled stream is cut by the
//! send timeout and shutdown ends every stream. Each test makes its own
//! certificate (rcgen).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use longlat::config::Config;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::node_client::{NodeClient, POSITIONS};
use crate::test_app::{TestApp, spawn_app, spawn_app_with, within};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in a
/// directory of their own, removed when dropped.
pub struct Certificate {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certificate {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("longlat-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let certificate = Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        certificate.renew();
        certificate
    }

    /// Writes a new certificate and key over the files; the new
    /// certificate's DER.
    pub fn renew(&self) -> Vec<u8> {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
        std::fs::write(&self.cert, made.cert.pem()).expect("write the certificate");
        std::fs::write(&self.key, made.signing_key.serialize_pem()).expect("write the key");
        made.cert.der().to_vec()
    }

    fn path(&self) -> &str {
        self.cert.to_str().expect("a UTF-8 path")
    }

    /// The certificate in the file now, as DER.
    pub fn der(&self) -> Vec<u8> {
        let pem = std::fs::read(&self.cert).expect("read the certificate");
        use rustls::pki_types::pem::PemObject;
        let first = rustls::pki_types::CertificateDer::pem_slice_iter(&pem).next();
        first.expect("a certificate").expect("PEM").to_vec()
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server on HTTPS with a certificate of its own, settings adjusted by
/// `adjust`; its client speaks HTTPS, HTTP/2 by ALPN, and trusts it.
pub async fn spawn_tls_app(name: &str, adjust: impl FnOnce(&mut Config)) -> (TestApp, Certificate) {
    let certificate = Certificate::new(name);
    let (cert, key) = (certificate.cert.clone(), certificate.key.clone());
    let mut app = spawn_app_with(|config| {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
        adjust(config);
    })
    .await;
    let root = certificate.der();
    app.http = reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(&[&root], &[b"h2", b"http/1.1"]))
        .build()
        .expect("an HTTPS client");
    app.scheme = "https";
    (app, certificate)
}

/// `https://127.0.0.1:<port><path>`.
pub fn https(app: &TestApp, path: &str) -> String {
    app.url(path)
}

/// Publishes a marker event and returns its id, to subscribe `after` it.
async fn marker(app: &TestApp) -> String {
    let event = app.publish(0.0, 0.0, Some("marker")).await;
    event["id"].as_str().expect("an id").to_owned()
}

/// curl reading a stream, its response head included (`-i`), line by line.
struct Curl {
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl Curl {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "-i"])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run curl");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            lines: BufReader::new(stdout).lines(),
            _child: child,
        }
    }

    /// Streams `/events` after `after`.
    fn events(url: &str, after: &str, extra: &[&str]) -> Self {
        let url = format!("{url}/events?after={after}");
        Self::start(&[extra, &[url.as_str()]].concat())
    }

    /// Subscribes to `positions` after `after` with GraphQL over SSE.
    fn graphql_sse(url: &str, after: &str, extra: &[&str]) -> Self {
        let body = json!({ "query": POSITIONS, "variables": { "after": after } }).to_string();
        let url = format!("{url}/graphql");
        let args = [
            "-H",
            "accept: text/event-stream",
            "-H",
            "content-type: application/json",
            "--data-binary",
            body.as_str(),
            url.as_str(),
        ];
        Self::start(&[extra, &args].concat())
    }

    /// The next line; `None` once curl has ended.
    async fn next_line(&mut self) -> Option<String> {
        within("a line from curl", self.lines.next_line())
            .await
            .expect("read curl's output")
            .map(|line| line.trim_end().to_owned())
    }

    /// The status line.
    async fn status(&mut self) -> String {
        self.next_line().await.expect("a status line")
    }

    /// The JSON of the next `data:` line.
    async fn next_data(&mut self) -> Value {
        loop {
            let line = self.next_line().await.expect("curl ended early");
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str(data).expect("JSON data");
            }
        }
    }

    /// Waits for curl's output to end.
    async fn ended(&mut self) {
        while self.next_line().await.is_some() {}
    }
}

#[tokio::test]
async fn curl_over_https_streams_events_and_graphql_over_http2_and_over_http1_1() {
    let (app, certificate) = spawn_tls_app("curl", |_| {}).await;
    let after = marker(&app).await;
    let first = app.publish(1.0, 2.0, None).await;
    let base = https(&app, "");
    for (flag, status) in [("--http2", "HTTP/2 200"), ("--http1.1", "HTTP/1.1 200 OK")] {
        let extra = [flag, "--cacert", certificate.path()];
        let mut events = Curl::events(&base, &after, &extra);
        assert_eq!(events.status().await, status);
        assert_eq!(events.next_data().await["id"], first["id"], "{flag}");
        let mut graphql = Curl::graphql_sse(&base, &after, &extra);
        assert_eq!(graphql.status().await, status);
        let next = graphql.next_data().await;
        assert_eq!(next["data"]["positions"]["id"], first["id"], "{flag}");
    }
}

#[tokio::test]
async fn curl_with_http2_prior_knowledge_gets_the_same_streams_in_plain_text() {
    let app = spawn_app().await;
    let after = marker(&app).await;
    let first = app.publish(1.0, 2.0, None).await;
    let base = app.url("");
    let extra = ["--http2-prior-knowledge"];
    let mut events = Curl::events(&base, &after, &extra);
    assert_eq!(events.status().await, "HTTP/2 200");
    assert_eq!(events.next_data().await["id"], first["id"]);
    let mut graphql = Curl::graphql_sse(&base, &after, &extra);
    assert_eq!(graphql.status().await, "HTTP/2 200");
    assert_eq!(
        graphql.next_data().await["data"]["positions"]["id"],
        first["id"]
    );
    let second = app.publish(3.0, 4.0, None).await;
    assert_eq!(events.next_data().await["id"], second["id"]);
    assert_eq!(
        graphql.next_data().await["data"]["positions"]["id"],
        second["id"]
    );
}

#[tokio::test]
async fn stopping_the_server_ends_event_streams_over_http2_and_tls() {
    let (app, certificate) = spawn_tls_app("stop", |_| {}).await;
    let after = marker(&app).await;
    let first = app.publish(1.0, 2.0, None).await;
    let extra = ["--http2", "--cacert", certificate.path()];
    let mut events = Curl::events(&https(&app, ""), &after, &extra);
    let mut graphql = Curl::graphql_sse(&https(&app, ""), &after, &extra);
    assert_eq!(events.next_data().await["id"], first["id"]);
    assert_eq!(
        graphql.next_data().await["data"]["positions"]["id"],
        first["id"]
    );
    app.shutdown.trigger();
    events.ended().await;
    graphql.ended().await;
}

#[tokio::test]
async fn websockets_graphql_ws_and_the_graphql_sse_client_work_over_https() {
    let (app, certificate) = spawn_tls_app("node", |_| {}).await;
    let after = marker(&app).await;
    let first = app.publish(5.0, 6.0, None).await;
    let env = [("NODE_EXTRA_CA_CERTS", certificate.path())];

    let ws_url = format!("wss://127.0.0.1:{}/ws?after={after}", app.addr.port());
    let mut ws = NodeClient::start_with_env("ws-raw.mjs", &[&ws_url, "-", "wait"], &env);
    assert_eq!(ws.next_with("message").await["id"], first["id"]);

    let graphql_ws = format!("wss://127.0.0.1:{}/graphql", app.addr.port());
    let variables = json!({ "after": after }).to_string();
    let args = [graphql_ws.as_str(), POSITIONS, variables.as_str()];
    let mut subscriber = NodeClient::start_with_env("graphql-subscribe.mjs", &args, &env);
    assert_eq!(subscriber.next_position().await["id"], first["id"]);

    let url = https(&app, "/graphql");
    for mode in ["distinct", "single"] {
        let args = [url.as_str(), POSITIONS, variables.as_str(), mode];
        let mut client = NodeClient::start_with_env("graphql-sse.mjs", &args, &env);
        let next = client.next_with("next").await;
        assert_eq!(next["data"]["positions"]["id"], first["id"], "{mode}");
    }
}

/// A TLS client trusting `roots`, offering `alpn`.
fn connector(roots: &[&[u8]], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(client_config(roots, alpn)))
}

/// TLS client settings trusting `roots`, offering `alpn`.
fn client_config(roots: &[&[u8]], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
            .expect("a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// The certificate the server presents, and the protocol it chose.
async fn handshake(app: &TestApp, roots: &[&[u8]]) -> (Vec<u8>, Option<Vec<u8>>) {
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connector = connector(roots, &[b"h2", b"http/1.1"]);
    let stream = connector.connect(name, tcp).await.expect("a TLS handshake");
    let (_, session) = stream.get_ref();
    let presented = session.peer_certificates().expect("a certificate")[0].to_vec();
    (presented, session.alpn_protocol().map(<[u8]>::to_vec))
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let (app, certificate) = spawn_tls_app("renew", |_| {}).await;
    let first = certificate.der();
    let (presented, alpn) = handshake(&app, &[&first]).await;
    assert_eq!(presented, first);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "HTTP/2 by ALPN");

    let renewed = certificate.renew();
    within("the renewed certificate to be served", async {
        while handshake(&app, &[&first, &renewed]).await.0 != renewed {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// Reads an HTTP/1.1 response head from `stream`: its lines.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut BufReader<S>) -> Vec<String> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        within("the response head", stream.read_line(&mut line))
            .await
            .unwrap();
        if line == "\r\n" {
            return head;
        }
        head.push(line.trim_end().to_owned());
    }
}

#[tokio::test]
async fn an_https_event_stream_that_stops_reading_is_cut_after_the_send_timeout() {
    const EVENTS: usize = 1500;
    let (app, certificate) = spawn_tls_app("stall", |config| {
        config.history_size = 4 * EVENTS as u64;
        config.send_timeout_secs = 1;
        config.socket_send_buffer = 8 * 1024;
    })
    .await;
    let root = certificate.der();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector(&[&root], &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: longlat\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut stalled = BufReader::new(stream);
    assert_eq!(read_head(&mut stalled).await[0], "HTTP/1.1 200 OK");

    // The stalled client reads nothing while every position is published,
    // and a reader beside it is not held up.
    let (_, mut reader) = crate::sse::SseReader::open(&app, "", None).await;
    let published = app.publish_many(EVENTS, 1.0).await;
    let (_, id, _) = reader.next_event().await;
    assert_eq!(id.as_ref(), published.first());

    // Cut: what it was sent before, then the end (not an endless stream).
    let mut rest = Vec::new();
    let _ = within(
        "the stalled stream to be cut",
        stalled.read_to_end(&mut rest),
    )
    .await;
    let text = String::from_utf8_lossy(&rest);
    let received = text.matches("event: position").count();
    assert!(received < EVENTS, "cut before the end: {received} events");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_disconnected_after_the_header_read_timeout() {
    let plain = spawn_app_with(|config| config.header_read_timeout_secs = 1).await;
    let (tls, certificate) =
        spawn_tls_app("silent", |config| config.header_read_timeout_secs = 1).await;
    // Not a byte: neither HTTP/1.1 nor HTTP/2 can be told yet, nor TLS begun.
    for app in [&plain, &tls] {
        let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let mut rest = Vec::new();
        let closed = within(
            "a silent client to be disconnected",
            tcp.read_to_end(&mut rest),
        );
        let _ = closed.await;
    }
    // A TLS handshake, then nothing.
    let tcp = tokio::net::TcpStream::connect(tls.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let root = certificate.der();
    let mut stream = connector(&[&root], &[b"h2", b"http/1.1"])
        .connect(name, tcp)
        .await
        .expect("a TLS handshake");
    let mut rest = Vec::new();
    let closed = within(
        "a silent client to be disconnected",
        stream.read_to_end(&mut rest),
    );
    let _ = closed.await;
}

#[tokio::test]
async fn bench_measures_event_streams_over_https() {
    let (app, certificate) = spawn_tls_app("bench", |_| {}).await;
    let pid = std::process::id().to_string();
    let url = app.url("");
    let args = [
        "bench",
        "--transport",
        "sse",
        "--subs",
        "20",
        "--rate",
        "50",
        "--duration",
        "1",
        "--json",
        "--pid",
        &pid,
        "--url",
        &url,
    ];
    let run = Command::new(env!("CARGO_BIN_EXE_longlat"))
        .args(args)
        // The certificate the test made, trusted as a system one would be.
        .env("SSL_CERT_FILE", certificate.path())
        .env_remove("LONGLAT_URL")
        .env_remove("LONGLAT_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let run = within("the bench to finish", run)
        .await
        .expect("run longlat bench");
    assert!(run.status.success(), "{run:?}");
    let report: Value = serde_json::from_slice(&run.stdout).expect("one JSON report");
    assert_eq!(report["connect_failed"], 0, "{report}");
    assert_eq!(report["expected"], 1000, "{report}");
    assert_eq!(report["received"], 1000, "{report}");
}
