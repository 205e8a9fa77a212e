//! Server-Sent Events: the same stream as /ws for clients that cannot use
//! WebSockets, resumable with the browser's own Last-Event-ID.

use std::process::Stdio;

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::test_app::{TestApp, spawn_app, spawn_app_for_slow_readers, spawn_app_with, within};

/// The first whole frame in `text` (the lines before a blank line), taken
/// out of it.
fn take_frame(text: &mut String) -> Option<String> {
    let end = text.find("\n\n")?;
    let frame = text[..end].to_owned();
    text.drain(..end + 2);
    Some(frame)
}

/// A minimal SSE reader over reqwest, for checks below the EventSource's view.
pub(crate) struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    pub(crate) async fn open(
        app: &TestApp,
        query: &str,
        last_event_id: Option<&str>,
    ) -> (reqwest::header::HeaderMap, Self) {
        let mut request = app.http.get(app.url(&format!("/events{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = within("the SSE response", request.send()).await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        let mut reader = Self::of(response);
        assert_eq!(
            reader.next_frame().await.as_deref(),
            Some("retry: 2000"),
            "the retry hint comes first"
        );
        (headers, reader)
    }

    /// A reader of the event stream `response` carries.
    pub(crate) fn of(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next frame (the lines before a blank line), or `None` at the end of the stream.
    async fn next_frame(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = take_frame(&mut self.buffer) {
                return Some(frame);
            }
            match within("an SSE frame", self.body.next()).await {
                Some(chunk) => self
                    .buffer
                    .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap()),
                None => return None,
            }
        }
    }

    /// The next `(event, id, data)`, skipping comments.
    pub(crate) async fn next_event(&mut self) -> (String, Option<String>, Value) {
        loop {
            let frame = self.next_frame().await.expect("the stream ended early");
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(str::to_owned))
            };
            if let Some(data) = field("data: ") {
                let event = field("event: ").expect("a named event");
                return (event, field("id: "), serde_json::from_str(&data).unwrap());
            }
        }
    }
}

#[tokio::test]
async fn curl_reads_each_event_as_a_frame_with_the_same_json_as_the_websocket() {
    let app = spawn_app().await;
    let mut ws = app.subscribe("/ws").await;
    let mut curl = Command::new("curl")
        .args(["-sN", "-i", &app.url("/events")])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run curl");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    let mut headers = Vec::new();
    within("curl to connect", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("curl output");
            if line.starts_with("retry: ") {
                return;
            }
            headers.push(line.to_ascii_lowercase());
        }
    })
    .await;
    for expected in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
    ] {
        assert!(
            headers.iter().any(|h| h.trim() == expected),
            "{expected} in {headers:?}"
        );
    }
    assert!(
        !headers.iter().any(|h| h.starts_with("content-encoding")),
        "the stream is not compressed"
    );

    let event = app.publish(18.06324, 59.334591, Some("bus-42")).await;
    let frame = within("the event from curl", async {
        let mut frame = Vec::new();
        loop {
            let line = lines.next_line().await.unwrap().expect("curl output");
            if line.is_empty() && !frame.is_empty() {
                return frame;
            }
            if !line.is_empty() {
                frame.push(line);
            }
        }
    })
    .await;
    assert_eq!(frame[0], format!("id: {}", event["id"].as_str().unwrap()));
    assert_eq!(frame[1], "event: position");
    let data: Value = serde_json::from_str(frame[2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data, event);
    assert_eq!(ws.next_json().await, data, "the same JSON as /ws");
}

/// Drives `tests/js/sse-reconnect.mjs`: the npm EventSource behind a cuttable proxy.
struct EventSourceClient {
    child: tokio::process::Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl EventSourceClient {
    async fn start(app: &TestApp, query: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/sse-reconnect.mjs");
        let mut child = Command::new("node")
            .args([script, &app.url(""), query])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (tests/run installs the npm packages)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut client = Self { child, lines };
        assert_eq!(client.next().await["open"], 1);
        client
    }

    async fn next(&mut self) -> Value {
        let line = within("the EventSource client", self.lines.next_line())
            .await
            .unwrap();
        serde_json::from_str(&line.expect("the client exited")).unwrap()
    }

    async fn command(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_eventsource_cut_off_while_positions_keep_coming_reconnects_and_misses_nothing() {
    const TOTAL: usize = 60;
    let app = spawn_app_with(|c| c.sse_retry_ms = 50).await;
    let mut client = EventSourceClient::start(&app, "").await;
    let publisher = app.publish_in_background(TOTAL);
    let mut received = Vec::new();
    let mut opens = 1;
    while received.len() < TOTAL {
        let line = client.next().await;
        if line.get("open").is_some() {
            opens += 1;
        } else if line.get("event").is_some() {
            assert_eq!(line["event"], "position", "no gap: {line}");
            received.push(line["id"].as_str().unwrap().to_owned());
            if received.len() == 10 {
                client.command("cut").await;
            }
        }
    }
    let published = within("the publisher", publisher).await.unwrap();
    assert_eq!(
        received, published,
        "every event exactly once, in order, across the reconnection"
    );
    assert!(opens >= 2, "the EventSource reconnected");
    client.command("close").await;
}

#[tokio::test]
async fn a_last_event_id_older_than_history_gets_a_gap_event_then_what_is_kept() {
    let app = spawn_app_with(|c| c.history_size = 2).await;
    let first = app.publish(0.0, 0.0, None).await;
    app.publish(1.0, 0.0, None).await;
    let kept = [
        app.publish(2.0, 0.0, None).await,
        app.publish(3.0, 0.0, None).await,
    ];
    let (_, mut reader) = SseReader::open(&app, "", first["id"].as_str()).await;
    let (event, id, gap) = reader.next_event().await;
    assert_eq!(
        (event.as_str(), id),
        ("gap", None),
        "a gap carries no id, so Last-Event-ID stays put"
    );
    assert_eq!(gap["reason"], "cursor-too-old");
    assert_eq!(gap["resumedFrom"], kept[0]["id"]);
    for expected in &kept {
        assert_eq!(&reader.next_event().await.2, expected);
    }
}

#[tokio::test]
async fn the_last_event_id_header_wins_over_the_query_and_resumes_exactly() {
    let app = spawn_app().await;
    let a = app.publish(0.0, 0.0, None).await;
    let b = app.publish(1.0, 0.0, None).await;
    let c = app.publish(2.0, 0.0, None).await;
    let query = format!("?after={}", a["id"].as_str().unwrap());
    let (_, mut reader) = SseReader::open(&app, &query, b["id"].as_str()).await;
    assert_eq!(reader.next_event().await.2, c);
    let (_, mut by_query) = SseReader::open(
        &app,
        &format!("?lastEventId={}", a["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(by_query.next_event().await.2, b);
}

#[tokio::test]
async fn sse_filters_deliver_only_matching_events() {
    let app = spawn_app().await;
    let (_, mut bus) = SseReader::open(&app, "?tracker=bus-1", None).await;
    let (_, mut sweden) = SseReader::open(&app, "?bbox=10.5,55,24.2,69.1", None).await;
    let stockholm_bus = app.publish(18.06324, 59.334591, Some("bus-1")).await;
    app.publish(2.2945, 48.8584, Some("bus-2")).await;
    let paris_bus = app.publish(2.2945, 48.8584, Some("bus-1")).await;
    let kiruna = app.publish(20.2253, 67.8558, Some("truck")).await;
    assert_eq!(bus.next_event().await.2, stockholm_bus);
    assert_eq!(bus.next_event().await.2, paris_bus);
    assert_eq!(sweden.next_event().await.2, stockholm_bus);
    assert_eq!(sweden.next_event().await.2, kiruna);
}

#[tokio::test]
async fn a_bad_last_event_id_is_refused_with_a_problem() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/events"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "Last-Event-ID");
}

#[tokio::test]
async fn stopping_the_server_ends_open_event_streams() {
    let app = spawn_app().await;
    let (_, mut first) = SseReader::open(&app, "", None).await;
    let (_, mut second) = SseReader::open(&app, "", None).await;
    app.shutdown.trigger();
    assert_eq!(first.next_frame().await, None);
    assert_eq!(second.next_frame().await, None);
}

/// An SSE client on a raw socket with a 4 KiB receive buffer, so it can
/// stop reading and make the server's writes back up. Over HTTP/1.1 it
/// decodes the chunked body itself, strictly, so a chunk written out of
/// turn shows; over HTTP/1.0 the body is the rest of the connection.
struct SmallBufferSse {
    stream: BufReader<tokio::net::TcpStream>,
    /// The response head's lines, lower-cased.
    head: Vec<String>,
    text: String,
    chunked: bool,
}

impl SmallBufferSse {
    async fn open(app: &TestApp) -> Self {
        Self::open_over(app, "1.1").await
    }

    /// Opens `/events` over HTTP/`version` (`1.1` or `1.0`).
    async fn open_over(app: &TestApp, version: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        let request = format!(
            "GET /events HTTP/{version}\r\nHost: longlat\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            within("the response head", stream.read_line(&mut line))
                .await
                .unwrap();
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_ascii_lowercase());
        }
        assert_eq!(head[0], format!("http/{version} 200 ok"));
        let chunked = head.iter().any(|h| h == "transfer-encoding: chunked");
        assert_eq!(chunked, version == "1.1", "{head:?}");
        let mut client = Self {
            stream,
            head,
            text: String::new(),
            chunked,
        };
        assert_eq!(client.next_frame().await.as_deref(), Some("retry: 2000"));
        client
    }

    /// Reads more of the body onto `text`; `false` once the connection has
    /// ended.
    async fn read_more(&mut self) -> bool {
        if self.chunked {
            return self.read_chunk().await;
        }
        let mut data = [0; 4096];
        match within("more of the body", self.stream.read(&mut data)).await {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.text
                    .push_str(std::str::from_utf8(&data[..read]).unwrap());
                true
            }
        }
    }

    /// Reads one chunk, `<size in hex>\r\n<data>\r\n`, onto `text`;
    /// `false` when the connection ends instead (the last chunk never
    /// comes on a live stream).
    async fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        match within("a chunk", self.stream.read_line(&mut size)).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let Some(size) = size.strip_suffix("\r\n") else {
            // Cut off in the middle of the line.
            return false;
        };
        let size = usize::from_str_radix(size, 16)
            .unwrap_or_else(|_| panic!("a chunk size in hex, got {size:?}"));
        assert!(size > 0, "the body ended");
        let mut data = vec![0; size + 2];
        if within("a chunk's data", self.stream.read_exact(&mut data))
            .await
            .is_err()
        {
            return false;
        }
        assert_eq!(&data[size..], b"\r\n", "a chunk ends with CRLF");
        data.truncate(size);
        self.text.push_str(std::str::from_utf8(&data).unwrap());
        true
    }

    /// The rest of the bytes, as they come, until the server closes the
    /// connection.
    async fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        within(
            "the connection to close",
            self.stream.read_to_end(&mut rest),
        )
        .await
        .unwrap();
        rest
    }

    /// The next frame; `None` once the connection has ended.
    async fn next_frame(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = take_frame(&mut self.text) {
                return Some(frame);
            }
            if !self.read_more().await {
                return None;
            }
        }
    }

    /// The next event's id, skipping comments; panics on a notice, `None`
    /// once the connection has ended.
    async fn next_id(&mut self) -> Option<String> {
        loop {
            let frame = self.next_frame().await?;
            if frame.starts_with(':') {
                continue;
            }
            assert!(frame.contains("event: position"), "not a position: {frame}");
            let id = frame.lines().find_map(|l| l.strip_prefix("id: "));
            return Some(id.expect("an id").to_owned());
        }
    }
}

#[tokio::test]
async fn an_event_stream_that_pauses_within_history_gets_every_event_in_order_when_it_reads_again()
{
    // Far more than the socket buffers hold, far less than history: the
    // live writes to the caught-up stream back up, and it reads on itself.
    const EVENTS: usize = 1500;
    let app = spawn_app_for_slow_readers(4 * EVENTS as u64, 60).await;
    let mut paused = SmallBufferSse::open(&app).await;
    let mut published = app.publish_many(EVENTS, 1.0).await;
    let mut received = Vec::with_capacity(EVENTS + 1);
    while received.len() < EVENTS {
        received.push(paused.next_id().await.expect("the stream goes on"));
    }
    // Caught up again: live events keep coming.
    let live = app.publish(2.0, 2.0, None).await;
    published.push(live["id"].as_str().unwrap().to_owned());
    received.push(paused.next_id().await.expect("the stream goes on"));
    assert_eq!(received, published, "every event once, in order");
}

#[tokio::test]
async fn a_client_that_closes_a_caught_up_stream_frees_its_place_at_once() {
    // One stream per address, and no keep-alive comment to find the
    // closed connection by: only the close itself frees the place.
    let app = spawn_app_with(|c| {
        c.max_connections_per_ip = 1;
        c.sse_keepalive_secs = 3600;
    })
    .await;
    let mut first = SmallBufferSse::open(&app).await;
    assert!(
        first.head.iter().any(|h| h == "connection: close"),
        "the server closes the connection when the stream ends: {:?}",
        first.head
    );
    // Caught up: the live event comes through the fan-out.
    let published = app.publish(1.0, 2.0, None).await;
    assert_eq!(first.next_id().await.as_deref(), published["id"].as_str());
    drop(first);
    within("a freed place", async {
        loop {
            let second = app.http.get(app.url("/events")).send().await.unwrap();
            if second.status() == 200 {
                return;
            }
            assert_eq!(second.status(), 503);
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_ends_sends_the_last_chunk_then_closes_the_connection() {
    let app = spawn_app().await;
    let mut stream = SmallBufferSse::open(&app).await;
    let published = app.publish(1.0, 2.0, None).await;
    assert_eq!(stream.next_id().await.as_deref(), published["id"].as_str());
    app.shutdown.trigger();
    let rest = stream.rest().await;
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Event streams cut for not taking frames, so far (all tests together).
#[tokio::test]
async fn an_event_stream_that_stops_reading_is_cut_after_the_send_timeout_and_holds_up_nobody() {
    for version in ["1.1", "1.0"] {
        a_stalled_stream_is_cut(version).await;
    }
}

/// A client over HTTP/`version` stops reading while positions are
/// published: it is cut after the send timeout, a reader beside it gets
/// every event, and what the stalled one was sent is a prefix, in order.
async fn a_stalled_stream_is_cut(version: &str) {
    const EVENTS: usize = 1500;
    // Two streams from one address at most: the stalled one and the
    // reader. Another is taken only once the server let go of one.
    let app = spawn_app_with(|c| {
        c.history_size = 4 * EVENTS as u64;
        c.send_timeout_secs = 1;
        c.socket_send_buffer = 8 * 1024;
        c.max_connections_per_ip = 2;
    })
    .await;
    let mut stalled = SmallBufferSse::open_over(&app, version).await;
    let (_, mut reader) = SseReader::open(&app, "", None).await;
    let reading = tokio::spawn(async move {
        let mut ids = Vec::with_capacity(EVENTS);
        while ids.len() < EVENTS {
            let (kind, id, _) = reader.next_event().await;
            assert_eq!(kind, "position");
            ids.push(id.expect("an id"));
        }
        (ids, reader)
    });
    // The stalled client reads nothing while every position is published.
    let published = app.publish_many(EVENTS, 1.0).await;
    let (received, _reader) = within("the reader to get every event", reading)
        .await
        .unwrap();
    assert_eq!(received, published, "the reader got every event, in order");
    within("the stalled stream to be cut, freeing its place", async {
        loop {
            let probe = app.http.get(app.url("/events")).send().await;
            if probe.is_ok_and(|probe| probe.status() == 200) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;

    // What it had been sent before the cut, in order, then the end.
    let mut buffered = Vec::new();
    while let Some(id) = stalled.next_id().await {
        buffered.push(id);
    }
    assert!(
        !buffered.is_empty() && buffered.len() < EVENTS,
        "{} events",
        buffered.len()
    );
    assert_eq!(buffered, published[..buffered.len()]);
}
