//! What one client may cost: publish rate, open streams, dead peers, message
//! size, and a flood of garbage and slow connections next to a good client.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::raw_websocket::RawWebSocket;
use crate::test_app::{Seen, TestApp, WsClient, listening_entry, spawn_app_with, within};

async fn post(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/longlat"))
        .json(&json!({"longitude": 18.06, "latitude": 59.33}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST /longlat")
}

#[tokio::test]
async fn a_publisher_over_its_rate_gets_429_with_retry_after_and_others_are_not_held_up() {
    let tokens = crate::test_app::tokens_file("rate", "fast-one publish\nother-one publish\n");
    let app = spawn_app_with(|c| {
        c.tokens_file = Some(tokens);
        c.publish_rate = 1;
        c.publish_burst = 2;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            post(&app, Some("fast-one")).await.status(),
            StatusCode::CREATED
        );
    }
    let limited = post(&app, Some("fast-one")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: Value = limited.json().await.expect("a problem");
    assert_eq!(body["code"], "rate-limited");

    // Another credential has its own allowance.
    assert_eq!(
        post(&app, Some("other-one")).await.status(),
        StatusCode::CREATED
    );
    // The GraphQL mutation counts against the same allowance.
    let answer: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth("fast-one")
        .json(&json!({"query": "mutation { publish(input: {longitude: 1, latitude: 2}) { id } }"}))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("an answer");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "rate-limited");
    assert!(answer["errors"][0]["extensions"]["retryAfter"].as_u64() >= Some(1));

    let page: Value = app.get_json("/longlat/history").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3, "{page}");
}

#[tokio::test]
async fn anonymous_publishers_are_limited_per_address() {
    let app = spawn_app_with(|c| {
        c.publish_rate = 1;
        c.publish_burst = 1;
    })
    .await;
    assert_eq!(post(&app, None).await.status(), StatusCode::CREATED);
    assert_eq!(
        post(&app, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Opens GET /events and returns its status.
async fn open_events(app: &TestApp) -> reqwest::Response {
    app.http
        .get(app.url("/events"))
        .send()
        .await
        .expect("GET /events")
}

#[tokio::test]
async fn streams_beyond_the_per_address_limit_get_1013_or_503_until_one_closes() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = 2).await;
    let first = app.subscribe("/ws").await;
    let events = open_events(&app).await;
    assert_eq!(events.status(), 200);

    let mut third = app.subscribe("/ws").await;
    assert_closed_for_the_limit(&mut third, "open streams").await;
    let refused = open_events(&app).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too-many-connections");
    let mut graphql = app.graphql_raw("graphql-transport-ws", &[]);
    assert_eq!(graphql.close_code().await, 1013);

    // A place frees up when a stream ends.
    drop(first);
    within("a freed place", async {
        loop {
            if open_events(&app).await.status() == 200 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn streams_beyond_the_server_limit_are_refused_whatever_the_address() {
    let app = spawn_app_with(|c| c.max_connections = 1).await;
    let _only = open_events(&app).await;
    let mut refused = app.subscribe("/ws").await;
    assert_closed_for_the_limit(&mut refused, "limit of 1").await;
}

/// The socket's first frame is a close 1013 whose reason says `why`.
async fn assert_closed_for_the_limit(socket: &mut WsClient, why: &str) {
    match socket.next_seen().await {
        Seen::Closed(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1013);
            assert!(frame.reason.contains(why), "{}", frame.reason);
        }
        other => panic!("expected close 1013, got {other:?}"),
    }
}

/// A WebSocket opened by hand that never answers anything: the frames the
/// server sends, as (opcode, payload), until it closes.
async fn silent_websocket(app: &TestApp, path: &str) -> Vec<(u8, Vec<u8>)> {
    RawWebSocket::open(app, path, None).await.frames().await
}

#[tokio::test]
async fn a_peer_that_does_not_answer_pings_is_closed_with_4000() {
    let app = spawn_app_with(|c| c.ping_interval_secs = 1).await;
    for path in ["/ws", "/graphql"] {
        let frames = within(
            "the server to give up on a silent peer",
            silent_websocket(&app, path),
        )
        .await;
        let (opcode, payload) = frames.last().expect("a close frame");
        assert_eq!(*opcode, 8, "{path}: ends with a close frame");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 4000, "{path}");
        assert!(
            frames.iter().any(|(opcode, _)| *opcode == 9),
            "{path}: pinged first"
        );
    }
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_connected() {
    let app = spawn_app_with(|c| c.ping_interval_secs = 1).await;
    let mut client = app.subscribe("/ws").await;
    // The client answers each ping as it reads it; three pings means it
    // outlived two ping periods.
    let mut pings = 0;
    within("three pings", async {
        while pings < 3 {
            match client.socket.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    })
    .await;
    let published = app.publish(1.0, 2.0, None).await;
    assert_eq!(client.next_json().await["id"], published["id"]);
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_is_closed_with_1009() {
    let app = spawn_app_with(|c| c.max_message_bytes = 1024).await;
    let big = "x".repeat(2048);
    let mut raw = app.graphql_raw("graphql-transport-ws", &[&big]);
    assert_eq!(raw.close_code().await, 1009);
    let mut ws = app.subscribe("/ws").await;
    ws.send(Message::Text(big.into())).await;
    assert_eq!(ws.close_code().await, 1009);
}

/// Sends junk until `stop`: broken HTTP, bad JSON, oversized bodies, bad upgrades.
async fn flood(app_addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> usize {
    let http = crate::test_app::http_client();
    let url = format!("http://{app_addr}/longlat");
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let junk: &[u8] = match sent % 4 {
            0 => b"\x00\xff\xfe GARBAGE \r\n\r\n",
            1 => {
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            }
            2 => b"POST /longlat HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{",
            _ => b"POST /longlat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        };
        if let Ok(mut tcp) = TcpStream::connect(app_addr).await {
            let _ = tcp.write_all(junk).await;
            let mut answer = Vec::new();
            let _ = tcp.read_to_end(&mut answer).await;
        }
        let _ = http.post(&url).body("{\"longitude\": nope").send().await;
        sent += 2;
    }
    sent
}

#[tokio::test]
async fn garbage_and_slow_clients_do_not_starve_a_good_one() {
    let app = spawn_app_with(|c| c.header_read_timeout_secs = 1).await;
    // Slow loris: request headers started and never finished.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        tcp.write_all(b"POST /longlat HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("a partial request");
        slow.push(tcp);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|_| tokio::spawn(flood(app.addr, stop.clone())))
        .collect();

    let mut good = app.subscribe("/ws").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let event = app.publish(f64::from(i), 1.0, Some("good")).await;
        ids.push(event["id"].clone());
    }
    for id in &ids {
        assert_eq!(&good.next_json().await["id"], id);
    }
    stop.store(true, Ordering::Relaxed);
    let mut junk = 0;
    for flooder in flooders {
        junk += flooder.await.expect("a flooder");
    }
    assert!(junk > 0);

    // The slow connections were cut off rather than kept forever.
    for tcp in &mut slow {
        let mut rest = Vec::new();
        within(
            "a slow client to be disconnected",
            tcp.read_to_end(&mut rest),
        )
        .await
        .ok();
    }
    // A new connection: the pooled one idled past the one-second header
    // timeout while the slow clients were cut off, and the server may close
    // it just as a request is sent on it (the usual keep-alive race).
    let health = crate::test_app::http_client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn tokens_never_appear_in_the_logs() {
    let tokens = crate::test_app::tokens_file("logs", "file-token-4f1c\n");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_longlat"))
        .args(["--listen", "127.0.0.1:0", "--protect", "publish,subscribe"])
        .args(["--broker", "memory"])
        .args(["--log-format", "json"])
        .arg("--tokens-file")
        .arg(&tokens)
        .env("LONGLAT_JWT_SECRET", "jwt-secret-93b2")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start longlat");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = String::new();
    let entry = listening_entry(&mut stdout, &mut log).await;
    let addr = entry["fields"]["addr"].as_str().unwrap().to_owned();
    let http = crate::test_app::http_client();
    let base = format!("http://{addr}");
    for token in ["file-token-4f1c", "wrong-token-77aa"] {
        let _ = http
            .post(format!("{base}/longlat"))
            .bearer_auth(token)
            .json(&json!({"longitude": 1, "latitude": 2}))
            .send()
            .await
            .unwrap();
        let _ = http
            .get(format!("{base}/longlat/history?access_token={token}"))
            .send()
            .await
            .unwrap();
        let _ =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?access_token={token}")).await;
    }
    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut rest = String::new();
    let mut stderr = String::new();
    let mut err_pipe = child.stderr.take().unwrap();
    within("the server to exit", async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            rest.push_str(&line);
            rest.push('\n');
        }
        err_pipe.read_to_string(&mut stderr).await.unwrap();
    })
    .await;
    let all = format!("{log}{rest}{stderr}");
    assert!(all.contains("longlat listening"), "the log was captured");
    assert!(all.contains("DEBUG"), "debug logs were on:\n{all}");
    for secret in ["file-token-4f1c", "wrong-token-77aa", "jwt-secret-93b2"] {
        assert!(!all.contains(secret), "{secret} is in the log:\n{all}");
    }
}
