//! At the open-file limit: the real binary under a low hard limit keeps
//! answering health checks, refuses new streams plainly, and does not flood
//! its log.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::test_app::{listening_entry, within};

/// The hard limit the server runs under: it raises its soft limit to the
/// hard one at start, so the hard one is what must be low.
const NOFILE: &str = "--nofile=128:128";

/// Starts the binary under [`NOFILE`]; its address and JSON log lines.
async fn start_limited() -> (Child, String, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new("prlimit")
        .args([NOFILE, env!("CARGO_BIN_EXE_longlat")])
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--workers", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start longlat under prlimit (util-linux)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let entry = listening_entry(&mut lines, &mut String::new()).await;
    let addr = entry["fields"]["addr"].as_str().unwrap().to_owned();
    (child, addr, lines)
}

#[tokio::test]
async fn near_the_open_file_limit_new_streams_are_refused_and_health_checks_still_answer() {
    let (_child, addr, mut log) = start_limited().await;
    let http = crate::test_app::http_client();
    let events = format!("http://{addr}/events");
    let mut open = Vec::new();
    let refused = loop {
        assert!(open.len() < 128, "no stream was refused below the limit");
        let response = within("an answer to GET /events", http.get(&events).send())
            .await
            .expect("GET /events");
        if response.status() != 200 {
            break response;
        }
        open.push(response);
    };
    assert!(open.len() >= 32, "only {} streams fit", open.len());
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "too-many-connections", "{problem}");

    let (mut socket, _) = within(
        "the /ws handshake",
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("a handshake");
    let close = within("the close frame", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1013));

    for _ in 0..3 {
        let health = within(
            "/healthz at the limit",
            http.get(format!("http://{addr}/healthz")).send(),
        )
        .await
        .expect("GET /healthz");
        assert_eq!(health.status(), 200);
    }

    // Connections that never send a request use up what is left: accepting
    // now fails, and the log says so once, not ten times a second.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let is_accept_error = |line: &str| line.contains("accepting a connection failed");
    within("the accept error in the log", async {
        loop {
            let line = log.next_line().await.unwrap().expect("a log line");
            if is_accept_error(&line) {
                return;
            }
        }
    })
    .await;
    // Failures go on every 100 ms while the idle connections are held: a
    // second's worth of log shows whether each one is logged.
    let mut repeated = 0;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(Some(line)) = log.next_line().await {
            repeated += usize::from(is_accept_error(&line));
        }
    })
    .await;
    assert_eq!(repeated, 0, "accept errors logged again within a second");
    drop(idle);
}
