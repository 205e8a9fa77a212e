//! The command-line client, the real binary against a real server: what a
//! user typing `longlat publish`, `longlat watch` or `longlat bench` sees.

use std::net::SocketAddr;
use std::process::{ExitStatus, Output, Stdio};

use longlat::config::Config;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::test_app::{TestApp, serve_on, spawn_app, spawn_app_with, within};

/// `longlat <command> <args> --url <the test server>`.
fn longlat(app: &TestApp, command: &str, args: &[&str]) -> Command {
    longlat_at(&app.url(""), command, args)
}

/// `longlat <command> <args> --url <url>`, the URL as a user would type it.
fn longlat_at(url: &str, command: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_longlat"));
    cmd.arg(command)
        .args(args)
        .args(["--url", url])
        .env_remove("LONGLAT_URL")
        .env_remove("LONGLAT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a command to its end.
async fn output(mut cmd: Command) -> Output {
    within("the command to finish", cmd.output())
        .await
        .expect("run longlat")
}

/// A `longlat watch` running in the background, read line by line.
struct Watcher {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl Watcher {
    /// Starts `longlat watch <args>` and waits until it says it is watching.
    async fn start(app: &TestApp, args: &[&str]) -> Watcher {
        let mut child = longlat(app, "watch", args).spawn().expect("start watch");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut watcher = Watcher {
            child,
            stdout,
            stderr,
        };
        let said = watcher.next_notice().await;
        assert!(said.starts_with("watching "), "watch said {said:?}");
        watcher
    }

    /// The next event printed on stdout, as JSON.
    async fn next_event(&mut self) -> Value {
        let line = within("a line from watch", self.stdout.next_line())
            .await
            .expect("read stdout")
            .expect("watch ended early");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?} is not JSON"))
    }

    /// The next line on stderr.
    async fn next_notice(&mut self) -> String {
        within("a line from watch on stderr", self.stderr.next_line())
            .await
            .expect("read stderr")
            .expect("watch ended early")
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit.
    async fn interrupt(mut self) -> ExitStatus {
        let pid = self.child.id().expect("watch is running").to_string();
        let kill = Command::new("kill").args(["-INT", &pid]).status();
        assert!(within("kill", kill).await.expect("run kill").success());
        within("watch to exit", self.child.wait())
            .await
            .expect("wait for watch")
    }
}

#[tokio::test]
async fn publish_prints_the_stored_event_and_the_server_keeps_it() {
    let app = spawn_app().await;
    let run = output(longlat(
        &app,
        "publish",
        &["--lat", "59.33", "--lon", "-18.06", "--tracker", "bus-42"],
    ))
    .await;
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8(run.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    let event: Value = serde_json::from_str(&stdout).expect("a JSON event");
    assert_eq!(
        (&event["latitude"], &event["longitude"], &event["tracker"]),
        (
            &Value::from(59.33),
            &Value::from(-18.06),
            &Value::from("bus-42")
        )
    );
    let id = event["id"].as_str().expect("an id");
    let stored: Value = app.get_json(&format!("/longlat/{id}")).await;
    assert_eq!(stored, event);
}

#[tokio::test]
async fn publish_of_a_latitude_out_of_range_fails_with_the_problems_detail() {
    let app = spawn_app().await;
    let run = output(longlat(&app, "publish", &["--lat", "91", "--lon", "18"])).await;
    assert!(!run.status.success(), "{run:?}");
    assert!(run.stdout.is_empty(), "nothing on stdout: {run:?}");
    let stderr = String::from_utf8(run.stderr).expect("utf-8");
    assert!(
        stderr.contains("latitude must be a number from -90 to 90, got 91"),
        "{stderr}"
    );
    let history: Value = app.get_json("/longlat/history").await;
    assert_eq!(
        history["events"],
        serde_json::json!([]),
        "nothing published"
    );
}

#[tokio::test]
async fn publish_to_an_address_typed_without_a_scheme_works() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for typed in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}/"),
    ] {
        let run = output(longlat_at(&typed, "publish", &["--lat", "1", "--lon", "2"])).await;
        assert!(run.status.success(), "--url {typed}: {run:?}");
    }
    let history: Value = app.get_json("/longlat/history").await;
    assert_eq!(history["events"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn publish_to_a_port_where_nothing_listens_names_the_address_and_asks_if_longlat_runs_there()
{
    let closed = port_no_other_test_is_given().await;
    let run = output(longlat_at(
        &closed.to_string(),
        "publish",
        &["--lat", "1", "--lon", "2"],
    ))
    .await;
    assert!(!run.status.success(), "{run:?}");
    let stderr = String::from_utf8(run.stderr).expect("utf-8");
    assert!(
        stderr.contains(&format!(
            "cannot reach http://{closed}: connection refused — is longlat running there?"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_host_name_that_does_not_resolve_is_named_as_such_and_not_taken_for_a_stopped_server() {
    // `.invalid` never resolves (RFC 2606), with or without a network.
    let publish: &[&str] = &["--lat", "1", "--lon", "2"];
    for (command, args) in [("publish", publish), ("watch", &[])] {
        let run = output(longlat_at("nonexistent.invalid:8844", command, args)).await;
        assert!(!run.status.success(), "{command}: {run:?}");
        let stderr = String::from_utf8(run.stderr).expect("utf-8");
        assert!(
            stderr.contains(
                "cannot reach http://nonexistent.invalid:8844: the name nonexistent.invalid \
                 could not be resolved"
            ),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains("is longlat running"),
            "{command}: {stderr}"
        );
    }
}

#[tokio::test]
async fn publish_without_a_token_to_a_server_that_wants_one_suggests_the_token_option() {
    let path = crate::test_app::tokens_file("cli", "secret publish\n");
    let app = spawn_app_with(move |c| c.tokens_file = Some(path)).await;
    let run = output(longlat(&app, "publish", &["--lat", "1", "--lon", "2"])).await;
    assert!(!run.status.success(), "{run:?}");
    let stderr = String::from_utf8(run.stderr).expect("utf-8");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");

    let run = output(longlat(
        &app,
        "publish",
        &["--lat", "1", "--lon", "2", "--token", "secret"],
    ))
    .await;
    assert!(run.status.success(), "{run:?}");
}

#[tokio::test]
async fn watch_tells_in_words_when_it_reconnects_after_the_server_stops() {
    let (app, stopped) = start_server_on(port_no_other_test_is_given().await).await;
    let mut watcher = Watcher::start(&app, &[]).await;
    let event = app.publish(1.0, 1.0, None).await;
    assert_eq!(watcher.next_event().await, event);
    let addr = app.addr;
    drop(app);
    within("the server to stop", stopped).await.unwrap();

    let ended = watcher.next_notice().await;
    assert!(ended.ends_with("; reconnecting now"), "{ended}");
    // The first attempt may reach the server while it is still closing
    // its listener (a reset); the wait before the next is said in words.
    let mut failed = watcher.next_notice().await;
    assert!(failed.ends_with("reconnecting in 250 ms"), "{failed}");
    let refused =
        format!("cannot reach http://{addr}: connection refused — is longlat running there?");
    if !failed.contains(&refused) {
        assert!(failed.contains("reset by peer"), "{failed}");
        failed = watcher.next_notice().await;
    }
    assert!(failed.contains(&refused), "{failed}");
}

/// Publishes two positions while `watcher` runs and checks it printed them.
async fn prints_what_is_published(app: &TestApp, watcher: &mut Watcher) {
    let first = app.publish(18.06324, 59.334591, Some("bus-1")).await;
    let second = app.publish(-74.0445, 40.6892, None).await;
    assert_eq!(watcher.next_event().await, first);
    assert_eq!(watcher.next_event().await, second);
}

/// Watches over `transport`, checks it prints what is published, and that
/// Ctrl-C ends it cleanly.
async fn watch_prints_what_is_published_until_interrupted(app: &TestApp, transport: &str) {
    let mut watcher = Watcher::start(app, &["--transport", transport]).await;
    prints_what_is_published(app, &mut watcher).await;
    assert!(
        watcher.interrupt().await.success(),
        "Ctrl-C ends it cleanly"
    );
}

#[tokio::test]
async fn watch_over_a_websocket_prints_every_position_published_while_it_runs() {
    let app = spawn_app().await;
    // /ws subscribes before answering the handshake: once watch says it is
    // watching, nothing published can be missed.
    watch_prints_what_is_published_until_interrupted(&app, "ws").await;
}

#[tokio::test]
async fn watch_over_server_sent_events_prints_every_position_published_while_it_runs() {
    let app = spawn_app().await;
    watch_prints_what_is_published_until_interrupted(&app, "sse").await;
}

#[tokio::test]
async fn watch_over_graphql_prints_every_position_published_while_it_runs() {
    let app = spawn_app().await;
    // graphql-transport-ws does not acknowledge a subscription, so watch
    // starts after a marker event: whatever follows it is delivered, even
    // if published before the subscription is live.
    let marker = app.publish(0.0, 0.0, None).await;
    let after = marker["id"].as_str().expect("an id");
    let mut watcher = Watcher::start(&app, &["--transport", "graphql", "--after", after]).await;
    prints_what_is_published(&app, &mut watcher).await;
    assert!(
        watcher.interrupt().await.success(),
        "Ctrl-C ends it cleanly"
    );
}

#[tokio::test]
async fn watch_after_an_id_replays_what_followed_it_then_goes_on_live() {
    for transport in ["ws", "sse", "graphql"] {
        let app = spawn_app().await;
        let first = app.publish(1.0, 1.0, None).await;
        let second = app.publish(2.0, 2.0, None).await;
        let third = app.publish(3.0, 3.0, None).await;
        let after = first["id"].as_str().expect("an id");
        let mut watcher = Watcher::start(&app, &["--transport", transport, "--after", after]).await;
        assert_eq!(watcher.next_event().await, second, "over {transport}");
        assert_eq!(watcher.next_event().await, third, "over {transport}");
        let live = app.publish(4.0, 4.0, None).await;
        assert_eq!(watcher.next_event().await, live, "over {transport}");
    }
}

/// A free address whose port is below the kernel's ephemeral range, so
/// that once its server stops, no other test binding port 0 is given it
/// before the server starts again there.
pub(crate) async fn port_no_other_test_is_given() -> SocketAddr {
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    for port in (start..32_000).chain(20_000..start) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).await.is_ok() {
            return addr;
        }
    }
    panic!("no free port from 20000 to 32000");
}

/// Starts a server on `addr` (port 0: a free one). The handle resolves
/// once the server has stopped, after the app is dropped.
async fn start_server_on(addr: SocketAddr) -> (TestApp, JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let config = Config {
        broker: "memory".into(),
        ..Config::defaults()
    };
    serve_on(listener, config)
}

#[tokio::test]
async fn watch_reconnects_after_a_server_restart_and_goes_on_printing() {
    for transport in ["ws", "sse", "graphql"] {
        let (first, stopped) = start_server_on(port_no_other_test_is_given().await).await;
        let mut watcher = Watcher::start(&first, &["--transport", transport]).await;
        let before = first.publish(1.0, 1.0, None).await;
        assert_eq!(watcher.next_event().await, before, "over {transport}");
        let addr = first.addr;
        drop(first);
        within("the first server to stop", stopped).await.unwrap();

        let (second, _stopped) = start_server_on(addr).await;
        while !watcher.next_notice().await.starts_with("watching ") {}
        // Resumed after an id the new server never issued: whatever it
        // publishes comes through, even before a GraphQL subscription is live.
        let after = second.publish(2.0, 2.0, None).await;
        assert_eq!(watcher.next_event().await, after, "over {transport}");
    }
}

#[tokio::test]
async fn watch_only_prints_the_trackers_asked_for() {
    let app = spawn_app().await;
    let mut watcher = Watcher::start(&app, &["--tracker", "bus-1", "--tracker", "bus-2"]).await;
    app.publish(1.0, 1.0, Some("tram-7")).await;
    let wanted = app.publish(2.0, 2.0, Some("bus-2")).await;
    assert_eq!(watcher.next_event().await, wanted);
}

#[tokio::test]
async fn watch_with_a_bad_cursor_fails_with_the_problems_detail() {
    let app = spawn_app().await;
    for transport in ["ws", "sse", "graphql"] {
        let run = output(longlat(
            &app,
            "watch",
            &["--transport", transport, "--after", "yesterday"],
        ))
        .await;
        assert!(!run.status.success(), "over {transport}: {run:?}");
        let stderr = String::from_utf8(run.stderr).expect("utf-8");
        assert!(
            stderr.contains("an event id looks like"),
            "over {transport}: {stderr}"
        );
    }
}

/// Runs a small `longlat bench --json` and returns its report.
async fn bench(app: &TestApp, transport: &str) -> Value {
    let pid = std::process::id().to_string();
    bench_with(app, &["--transport", transport, "--pid", &pid]).await
}

/// Runs a small `longlat bench --json <args>` and returns its report.
async fn bench_with(app: &TestApp, args: &[&str]) -> Value {
    let small = ["--subs", "20", "--rate", "50", "--duration", "1", "--json"];
    let run = output(longlat(app, "bench", &[&small[..], args].concat())).await;
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8(run.stdout).expect("utf-8");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?} is one JSON object"))
}

/// Checks a bench report says every position reached every subscriber once.
fn assert_nothing_lost(report: &Value) {
    let count = |field: &str| {
        report[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} is a count in {report}"))
    };
    assert_eq!(count("subscribers"), 20, "{report}");
    assert_eq!(count("connect_failed"), 0, "{report}");
    assert_eq!(count("published"), 50, "{report}");
    assert_eq!(count("publish_errors"), 0, "{report}");
    assert_eq!(count("expected"), 1000, "{report}");
    assert_eq!(count("received"), 1000, "{report}");
    assert_eq!(report["loss_pct"], 0.0, "{report}");
    assert_eq!(count("duplicates"), 0, "{report}");
    assert_eq!(count("out_of_order"), 0, "{report}");
    for field in [
        "publish_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "kib_per_conn",
        "cpu_us_per_delivery",
    ] {
        assert!(report[field].is_f64(), "{field} is a number in {report}");
    }
    for field in ["rss_before_kib", "rss_idle_kib", "server_cpu_ticks"] {
        assert!(report[field].is_u64(), "{field} is a count in {report}");
    }
}

#[tokio::test]
async fn bench_measures_the_server_and_not_a_watch_running_beside_it() {
    // The server runs in this test's process; `pidof longlat` would name it
    // and the watch together.
    let app = spawn_app().await;
    let watcher = Watcher::start(&app, &[]).await;
    let server = std::process::id();
    let watch = watcher.child.id().expect("watch runs");
    let both = format!("{watch} {server}");
    for args in [&["--pid", both.as_str()][..], &[]] {
        let report = bench_with(&app, args).await;
        assert_eq!(report["server_pid"], server, "{args:?}: {report}");
        assert!(report["rss_before_kib"].is_u64(), "{args:?}: {report}");
        assert!(report["cpu_us_per_delivery"].is_f64(), "{args:?}: {report}");
    }
    watcher.interrupt().await;
}

#[tokio::test]
async fn bench_over_websockets_reports_every_delivery_and_its_latency() {
    let app = spawn_app().await;
    let report = bench(&app, "ws").await;
    assert_nothing_lost(&report);
    assert_eq!(report["transport"], "ws");
}

#[tokio::test]
async fn bench_subscribers_with_a_scoped_token_get_every_position_of_a_tracker_in_their_scope() {
    let tokens =
        crate::test_app::tokens_file("bench", "pub publish\nfleet subscribe read=bench.*\n");
    let app = spawn_app_with(|c| c.tokens_file = Some(tokens)).await;
    let pid = std::process::id().to_string();
    let scoped = [
        "--transport",
        "ws",
        "--pid",
        &pid,
        "--token",
        "pub",
        "--sub-token",
        "fleet",
        "--tracker",
        "bench.1",
    ];
    assert_nothing_lost(&bench_with(&app, &scoped).await);
}

#[tokio::test]
async fn bench_over_server_sent_events_reports_every_delivery_and_its_latency() {
    let app = spawn_app().await;
    assert_nothing_lost(&bench(&app, "sse").await);
}

#[tokio::test]
async fn bench_over_graphql_reports_every_delivery_and_its_latency() {
    let app = spawn_app().await;
    assert_nothing_lost(&bench(&app, "graphql").await);
}

#[tokio::test]
async fn bench_prints_a_readable_table_without_json() {
    let app = spawn_app().await;
    let run = output(longlat(
        &app,
        "bench",
        &["--subs", "2", "--rate", "20", "--duration", "0.5"],
    ))
    .await;
    assert!(run.status.success(), "{run:?}");
    let table = String::from_utf8(run.stdout).expect("utf-8");
    for row in ["subscribers", "published", "deliveries", "latency (ms)"] {
        assert!(
            table.lines().any(|line| line.starts_with(row)),
            "{row} in {table}"
        );
    }
    assert!(
        table.contains("20 expected, 20 received, loss 0.000 %"),
        "{table}"
    );
}
