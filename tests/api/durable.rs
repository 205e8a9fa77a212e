//! The durable default broker: what was acknowledged survives a restart, a
//! kill -9, a full disk and a read-only directory; damage is refused, not
//! repaired silently; one process per data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::future::join_all;
use longlat::config::Config;
use longlat::shutdown::Shutdown;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::sse::SseReader;
use crate::test_app::{TestApp, listening_entry, sample, serve_on, within};

/// A fresh data directory, removed when dropped (after unmounting what a
/// test mounted on it and clearing the immutable attribute).
pub(crate) struct DataDir {
    pub(crate) path: PathBuf,
    mounted: bool,
    immutable: bool,
}

impl DataDir {
    pub(crate) fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("longlat-durable-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary data directory");
        Self {
            path,
            mounted: false,
            immutable: false,
        }
    }

    /// A small tmpfs of `size` on the directory, so the disk can fill up or
    /// turn read-only (tests run as root, which ignores file permissions).
    fn mount_tmpfs(&mut self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs on {}", self.path.display());
        self.mounted = true;
    }

    /// Sets or clears the immutable attribute of the directory and its files.
    fn chattr(&self, flag: &str) {
        let status = std::process::Command::new("chattr")
            .args(["-R", flag])
            .arg(&self.path)
            .status()
            .expect("run chattr");
        assert!(status.success(), "chattr {flag} {}", self.path.display());
    }

    fn make_immutable(&mut self) {
        self.immutable = true;
        self.chattr("+i");
    }

    fn make_mutable(&mut self) {
        self.chattr("-i");
        self.immutable = false;
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        segments
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.immutable {
            self.chattr("-i");
        }
        if self.mounted {
            // Lazily: a failed test may leave a server holding files there.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server in this process on `dir`; the handle resolves once it stopped.
pub(crate) async fn start(
    dir: &Path,
    adjust: impl FnOnce(&mut Config),
) -> (TestApp, JoinHandle<()>) {
    let mut config = Config::defaults();
    config.data_dir = dir.to_owned();
    adjust(&mut config);
    assert_eq!(config.broker, "durable");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (app, stopped) = serve_on(listener, config);
    // Serving starts after the store is open: wait until it answers.
    within("the server to answer", async {
        while app.http.get(app.url("/healthz")).send().await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    (app, stopped)
}

pub(crate) async fn stop(app: TestApp, stopped: JoinHandle<()>) {
    drop(app);
    within("the server to stop", stopped).await.unwrap();
}

/// The real binary on `dir`, with `extra` arguments, and its address.
pub(crate) async fn start_binary(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = binary(dir, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start longlat");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let entry = listening_entry(&mut lines, &mut String::new()).await;
    let addr = entry["fields"]["addr"].as_str().unwrap().parse().unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn binary(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_longlat"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env_remove("LONGLAT_BROKER")
        .stdin(Stdio::null());
    command
}

/// Runs the binary on `dir`, expecting it to refuse to start; what it said.
async fn refused_start(dir: &Path) -> String {
    let output = within(
        "the server to refuse to start",
        binary(dir, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("run longlat");
    assert!(!output.status.success(), "the server started");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn app_at(addr: SocketAddr) -> TestApp {
    TestApp {
        addr,
        http: crate::test_app::http_client(),
        shutdown: Shutdown::new(),
        scheme: "http",
    }
}

/// Every event kept, oldest first, read page by page through `/longlat/history`.
async fn all_history(app: &TestApp) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .get_json(&format!("/longlat/history?limit=1000{after}"))
            .await;
        let batch = page["events"].as_array().expect("events").clone();
        if batch.is_empty() {
            return events;
        }
        after = format!("&after={}", batch.last().unwrap()["id"].as_str().unwrap());
        events.extend(batch);
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Ids as `(millis, seq)`, to compare in order.
fn order(id: &str) -> (u64, u64) {
    let (millis, seq) = id.split_once('-').expect("an id <millis>-<seq>");
    (millis.parse().unwrap(), seq.parse().unwrap())
}

#[tokio::test]
async fn websocket_and_event_stream_clients_resume_across_a_restart_with_nothing_lost_or_repeated()
{
    let dir = DataDir::new("restart");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let before = app.publish_many(5, 1.0).await;
    let mut ws = app.subscribe("/ws").await;
    let live = app.publish(9.0, 1.0, Some("bus-1")).await;
    assert_eq!(ws.next_json().await["id"], live["id"]);
    stop(app, stopped).await;

    let (app, stopped) = start(&dir.path, |_| {}).await;
    let after = app.publish_many(2, 2.0).await;
    let last_before = before[2].clone();
    let mut expected: Vec<String> = before[3..].to_vec();
    expected.push(live["id"].as_str().unwrap().to_owned());
    expected.extend(after.iter().cloned());
    assert!(
        order(&after[0]) > order(live["id"].as_str().unwrap()),
        "ids keep increasing across the restart"
    );

    let mut ws = app.subscribe(&format!("/ws?after={last_before}")).await;
    let (_, mut sse) = SseReader::open(&app, "", Some(&last_before)).await;
    let mut over_ws = Vec::new();
    let mut over_sse = Vec::new();
    for _ in &expected {
        over_ws.push(ws.next_json().await["id"].as_str().unwrap().to_owned());
        let (kind, id, _) = sse.next_event().await;
        assert_eq!(kind, "position");
        over_sse.push(id.unwrap());
    }
    assert_eq!(over_ws, expected, "/ws after the restart");
    assert_eq!(over_sse, expected, "/events after the restart");
    let next = app.publish(3.0, 3.0, None).await;
    assert_eq!(
        ws.next_json().await["id"],
        next["id"],
        "then live, nothing repeated"
    );
    assert_eq!(sse.next_event().await.1.as_deref(), next["id"].as_str());
    let latest = app.get_json("/longlat/latest?tracker=bus-1").await;
    assert_eq!(latest["id"], live["id"]);
    stop(app, stopped).await;
}

#[tokio::test]
async fn a_graphql_history_query_pages_after_a_cursor_from_before_a_restart() {
    let dir = DataDir::new("graphql");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let before = app.publish_many(3, 1.0).await;
    stop(app, stopped).await;
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let query = format!(
        r#"{{ history(after: "{}") {{ events {{ id }} }} }}"#,
        before[0]
    );
    let answer: Value = app
        .http
        .post(app.url("/graphql"))
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got: Vec<&str> = answer["data"]["history"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("history events in {answer}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [before[1].as_str(), before[2].as_str()]);
    stop(app, stopped).await;
}

#[tokio::test]
async fn old_segments_are_deleted_yet_each_trackers_last_position_survives_a_restart() {
    let dir = DataDir::new("retention");
    let (app, stopped) = start(&dir.path, |c| c.history_size = 1).await;
    let first = app.publish(5.0, 5.0, Some("parked")).await;
    // A segment holds 1,024 events at least: three segments' worth.
    for chunk in 0..3 * 1024 / 64 {
        let publishes = (0..64).map(|i| app.publish(f64::from(i), f64::from(chunk % 90), None));
        join_all(publishes).await;
    }
    let metrics = app.metrics().await;
    let kept = sample(&metrics, "longlat_store_events");
    assert!(
        (1.0..=2048.0).contains(&kept),
        "at most two segments are kept: {kept} events"
    );
    assert!(sample(&metrics, "longlat_store_bytes") > 0.0);
    assert!(
        !dir.segments()[0].ends_with("00000000000000000000.log"),
        "the first segment is gone"
    );
    stop(app, stopped).await;

    let (app, stopped) = start(&dir.path, |c| c.history_size = 1).await;
    let latest = app.get_json("/longlat/latest?tracker=parked").await;
    assert_eq!(
        latest, first,
        "the tracker's last position outlived its segment"
    );
    assert_eq!(
        all_history(&app).await.len(),
        1,
        "history holds --history-size"
    );
    stop(app, stopped).await;
}

#[tokio::test]
async fn after_kill_9_under_load_every_acknowledged_event_is_there_once_in_order() {
    let dir = DataDir::new("kill9");
    let (mut child, addr) = start_binary(&dir.path, &[]).await;
    let app = app_at(addr);
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let publishers: Vec<_> = (0..16)
        .map(|p| {
            let http = app.http.clone();
            let url = app.url("/longlat");
            let acked = acked_tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let body = serde_json::json!({"longitude": 1.0, "latitude": 1.0, "tracker": format!("t{p}-{i}")});
                    let Ok(response) = http.post(&url).json(&body).send().await else {
                        return;
                    };
                    let Ok(event) = response.json::<Value>().await else {
                        return;
                    };
                    if acked.send(event["id"].as_str().unwrap().to_owned()).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(acked_tx);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 400 {
        acknowledged.push(within("publishes", acked_rx.recv()).await.unwrap());
    }
    child.start_kill().expect("kill -9");
    child.wait().await.unwrap();
    for publisher in publishers {
        let _ = publisher.await;
    }
    while let Ok(id) = acked_rx.try_recv() {
        acknowledged.push(id);
    }

    let (_child, addr) = start_binary(&dir.path, &[]).await;
    let app = app_at(addr);
    let stored = ids(&all_history(&app).await);
    let mut sorted = stored.clone();
    sorted.sort_by_key(|id| order(id));
    sorted.dedup();
    assert_eq!(stored, sorted, "stored once each, in order");
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id} was lost");
    }
    let next = app.publish(2.0, 2.0, None).await;
    assert!(order(next["id"].as_str().unwrap()) > order(stored.last().unwrap()));
}

/// Publishes until one is refused; the ids acknowledged and the refusal.
async fn publish_until_refused(app: &TestApp) -> (Vec<String>, Value) {
    let mut acknowledged = Vec::new();
    within("a publish to be refused", async {
        loop {
            let response = app
                .post_position(&serde_json::json!({"longitude": 1.0, "latitude": 2.0}))
                .await;
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            if status != 201 {
                assert_eq!(status, 503, "{body}");
                return (acknowledged, body);
            }
            acknowledged.push(body["id"].as_str().unwrap().to_owned());
        }
    })
    .await
}

#[tokio::test]
async fn a_full_disk_refuses_publishes_with_503_and_keeps_what_was_acknowledged() {
    let mut dir = DataDir::new("full");
    dir.mount_tmpfs("64k");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let (acknowledged, problem) = publish_until_refused(&app).await;
    assert!(!acknowledged.is_empty());
    assert_eq!(problem["code"], "broker-unavailable", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("No space left on device"), "{detail}");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ids(&all_history(&app).await), acknowledged);
    stop(app, stopped).await;

    let (app, stopped) = start(&dir.path, |_| {}).await;
    assert_eq!(
        ids(&all_history(&app).await),
        acknowledged,
        "after a restart"
    );
    stop(app, stopped).await;
}

#[tokio::test]
async fn a_file_size_limit_refuses_publishes_with_503_instead_of_killing_the_server() {
    let dir = DataDir::new("fsize");
    // SIGXFSZ ignored (kept across exec): writes past the limit fail with EFBIG.
    let script = format!(
        "trap '' XFSZ; exec prlimit --fsize=2048 -- {} --listen 127.0.0.1:0 --log-format json --data-dir {}",
        env!("CARGO_BIN_EXE_longlat"),
        dir.path.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .env_remove("LONGLAT_BROKER")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start longlat under prlimit");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let entry = listening_entry(&mut lines, &mut String::new()).await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let app = app_at(entry["fields"]["addr"].as_str().unwrap().parse().unwrap());
    let (acknowledged, problem) = publish_until_refused(&app).await;
    assert!(!acknowledged.is_empty());
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("File too large"), "{detail}");
    assert_eq!(ids(&all_history(&app).await), acknowledged);
    assert!(child.try_wait().unwrap().is_none(), "the server still runs");
}

#[tokio::test]
async fn a_directory_made_read_only_refuses_publishes_with_503_and_readyz_says_why() {
    let mut dir = DataDir::new("readonly");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let kept = app.publish(1.0, 1.0, None).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Root ignores file modes: the immutable attribute stops even root,
    // and even on files already open for writing.
    dir.make_immutable();
    let (acknowledged, problem) = publish_until_refused(&app).await;
    assert!(acknowledged.is_empty());
    assert_eq!(problem["code"], "broker-unavailable", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("could not be written to the data directory")
            && detail.contains("Operation not permitted"),
        "{detail}"
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["detail"], problem["detail"], "{body}");
    assert_eq!(all_history(&app).await, vec![kept.clone()]);
    dir.make_mutable();
    let again = app.publish(2.0, 2.0, None).await;
    assert_eq!(all_history(&app).await, vec![kept, again]);
    stop(app, stopped).await;
}

#[tokio::test]
async fn a_damaged_segment_stops_the_server_at_start_and_is_left_untouched() {
    let dir = DataDir::new("corrupt");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    app.publish_many(3, 1.0).await;
    stop(app, stopped).await;
    let segment = dir.segments().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // A flipped bit in the first record's coordinates; valid records follow.
    bytes[16 + 8 + 30] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let said = refused_start(&dir.path).await;
    assert!(said.contains("damaged") && said.contains(".log"), "{said}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "left as it was");

    std::fs::write(&segment, b"PK\x03\x04 not a longlat file at all").unwrap();
    let said = refused_start(&dir.path).await;
    assert!(said.contains("not a longlat file"), "{said}");
}

#[tokio::test]
async fn a_torn_final_write_is_cut_off_and_the_rest_is_kept() {
    let dir = DataDir::new("torn");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    // With a tracker, a record ends in a byte that is not zero.
    let mut published = Vec::new();
    for i in 0..3 {
        let event = app.publish(f64::from(i), 1.0, Some("bus-7")).await;
        published.push(event["id"].as_str().unwrap().to_owned());
    }
    stop(app, stopped).await;
    let segment = dir.segments().pop().unwrap();
    let mut whole = std::fs::read(&segment).unwrap();
    // The segment is extended with zeros ahead of its records.
    while whole.last() == Some(&0) {
        whole.pop();
    }
    // Half of a fourth record, as a crash in the middle of a write leaves it.
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[16..16 + 30]);
    std::fs::write(&segment, &torn).unwrap();
    let (app, stopped) = start(&dir.path, |_| {}).await;
    assert_eq!(ids(&all_history(&app).await), published);
    let repaired = std::fs::read(&segment).unwrap();
    assert_eq!(repaired[..whole.len()], whole[..], "the records are kept");
    assert!(
        repaired[whole.len()..].iter().all(|b| *b == 0),
        "the torn part is cut off"
    );
    let next = app.publish(2.0, 2.0, None).await;
    assert!(order(next["id"].as_str().unwrap()) > order(&published[2]));
    stop(app, stopped).await;
}

#[tokio::test]
async fn a_second_process_on_the_same_data_directory_refuses_to_start() {
    let dir = DataDir::new("locked");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let said = refused_start(&dir.path).await;
    assert!(said.contains("in use by another longlat process"), "{said}");
    app.publish(1.0, 1.0, None).await;
    stop(app, stopped).await;
}

/// What the server that wrote `fixtures/old-format-log` answered.
const OLD_FORMAT_EVENTS: [&str; 3] = [
    r#"{"id":"1795979375451-0","longitude":18.06324,"latitude":59.334591,"receivedAt":"2026-11-29T19:09:35.451768148Z"}"#,
    r#"{"id":"1795979375492-0","longitude":-0.1276,"latitude":51.5072,"tracker":"bus-7","receivedAt":"2026-11-29T19:09:35.492167436Z"}"#,
    r#"{"id":"1795979375537-0","longitude":2.3522,"latitude":48.8566,"tracker":"tram-1","receivedAt":"2026-11-29T19:09:35.537846022Z"}"#,
];

#[tokio::test]
async fn a_log_written_before_positions_had_optional_fields_opens_and_reads_back_unchanged() {
    let dir = DataDir::new("old-format");
    let segment = "00000000000000000000.log";
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures/old-format-log");
    std::fs::copy(fixture.join(segment), dir.path.join(segment)).expect("copy the old segment");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    let old: Vec<Value> = OLD_FORMAT_EVENTS
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    assert_eq!(all_history(&app).await, old);
    assert_eq!(app.get_json("/longlat/latest?tracker=bus-7").await, old[1]);

    let full = serde_json::json!({"longitude": 13.4, "latitude": 52.5, "tracker": "alice/phone",
        "recordedAt": "2026-11-29T19:00:00Z", "accuracy": 5.0, "altitude": 34.0, "speed": 1.5,
        "heading": 90.0, "battery": 77.0});
    let response = app.post_position(&full).await;
    assert_eq!(response.status(), 201);
    let new: Value = response.json().await.unwrap();
    stop(app, stopped).await;

    let (app, stopped) = start(&dir.path, |_| {}).await;
    let mut expected = old;
    expected.push(new);
    assert_eq!(all_history(&app).await, expected);
    stop(app, stopped).await;
}

#[tokio::test]
async fn a_batch_is_written_in_one_append_and_is_all_there_after_a_restart() {
    let dir = DataDir::new("batch");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    crate::batches::a_batch_arrives_everywhere_in_order(&app).await;
    let before = all_history(&app).await;
    assert_eq!(before.len(), 4, "the marker and the batch");
    stop(app, stopped).await;
    let (app, stopped) = start(&dir.path, |_| {}).await;
    assert_eq!(all_history(&app).await, before);
    stop(app, stopped).await;
}

#[tokio::test]
async fn a_trackers_latest_position_is_its_newest_fix_before_and_after_a_restart() {
    let dir = DataDir::new("late");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    crate::late_points::a_late_backlog_never_replaces_the_newest_fix(&app).await;
    let newest = app.get_json("/longlat/latest?tracker=alice/phone").await;
    stop(app, stopped).await;
    let (app, stopped) = start(&dir.path, |_| {}).await;
    assert_eq!(
        app.get_json("/longlat/latest?tracker=alice/phone").await,
        newest
    );
    stop(app, stopped).await;
}
