//! Stopping: every open stream is told goodbye (1001) and the process exits 0.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::test_app::{listening_entry, spawn_app, within};

#[tokio::test]
async fn stopping_the_server_closes_every_websocket_with_1001() {
    let app = spawn_app().await;
    let mut first = app.subscribe("/ws").await;
    let mut second = app.subscribe("/ws").await;
    app.shutdown.trigger();
    assert_eq!(first.close_code().await, 1001);
    assert_eq!(second.close_code().await, 1001);
}

#[tokio::test]
async fn sigterm_closes_websockets_ends_event_streams_and_exits_zero() {
    // One worker: the smallest runtime the server runs on.
    let mut child = Command::new(env!("CARGO_BIN_EXE_longlat"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--workers",
            "1",
            "--broker",
            "memory",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start longlat");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let entry = listening_entry(&mut lines, &mut String::new()).await;
    assert_eq!(entry["fields"]["workers"], 1, "{entry}");
    let addr = entry["fields"]["addr"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let events = crate::test_app::http_client()
        .get(format!("http://{addr}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let published = crate::test_app::http_client()
        .post(format!("http://{addr}/longlat"))
        .body(r#"{"longitude": 18.06, "latitude": 59.33}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    let published: serde_json::Value = published.json().await.unwrap();
    use futures::StreamExt;
    let live = within("the event on /ws", async {
        loop {
            match socket.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    return serde_json::from_str::<serde_json::Value>(&text).unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended before the event: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(live, published);

    let pid = child.id().expect("a running child").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    let close = within("the close frame", async {
        loop {
            match socket.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let rest = within("the event stream to end", events.bytes()).await;
    assert!(rest.is_ok(), "the event stream ended cleanly: {rest:?}");
    let status = within("the process to exit", child.wait()).await.unwrap();
    assert!(status.success(), "exit status {status}");
}
