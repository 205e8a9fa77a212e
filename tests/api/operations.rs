//! What an operator sees: health, Prometheus metrics, request ids.
//!
//! The metrics recorder is global to the test process, so metric checks
//! compare before and after and allow for other tests running alongside.

use crate::test_app::{sample, spawn_app, within};

#[tokio::test]
async fn metrics_count_connections_publishes_deliveries_and_refusals() {
    let app = spawn_app().await;
    let before = app.metrics().await;
    let mut subscriber = app.subscribe("/ws").await;
    let event = app.publish(18.06324, 59.334591, None).await;
    assert_eq!(subscriber.next_json().await, event);
    let refused = app
        .http
        .post(app.url("/longlat"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    // The fan-out counts a pass once its writes are done, which may be just
    // after the subscriber read the frame: wait for the count.
    let delivered = r#"longlat_events_delivered_total{transport="ws"}"#;
    let after = within("the delivery to be counted", async {
        loop {
            let now = app.metrics().await;
            if sample(&now, delivered) >= sample(&before, delivered) + 1.0 {
                break now;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;

    let grew = |series: &str, by: f64| {
        let (was, is) = (sample(&before, series), sample(&after, series));
        assert!(
            is >= was + by,
            "{series}: {was} -> {is}, expected +{by}\n{after}"
        );
    };
    grew(r#"longlat_events_published_total{via="rest"}"#, 1.0);
    grew(delivered, 1.0);
    grew("longlat_fanout_pass_duration_seconds_count", 1.0);
    grew(
        r#"longlat_rejected_requests_total{code="invalid-body"}"#,
        1.0,
    );
    grew(r#"longlat_publish_duration_seconds_count{via="rest"}"#, 2.0);
    assert!(
        sample(&after, r#"longlat_connections{transport="ws"}"#) >= 1.0,
        "{after}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_given_one_is_echoed() {
    let app = spawn_app().await;
    let first = app.http.get(app.url("/healthz")).send().await.unwrap();
    let second = app.http.get(app.url("/nowhere")).send().await.unwrap();
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|r| r.headers()["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        !ids[0].is_empty() && ids[0] != ids[1],
        "distinct ids: {ids:?}"
    );
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");
}

#[tokio::test]
async fn health_and_readiness_answer_ok_with_the_embedded_broker() {
    let app = spawn_app().await;
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
    }
}

/// Starts the real binary (text logs, a free port), its output a pipe or,
/// `in_terminal`, a pseudo-terminal made by `script`, with `NO_COLOR` set
/// to `no_color` if given, and returns the log lines up to the one naming
/// `/graphql`.
async fn start_up_lines(in_terminal: bool, no_color: Option<&str>) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let binary = env!("CARGO_BIN_EXE_longlat");
    let args = "--listen 127.0.0.1:0 --broker memory";
    let mut command = if in_terminal {
        let mut command = tokio::process::Command::new("script");
        command.args(["-qfec", &format!("{binary} {args}"), "/dev/null"]);
        command
    } else {
        let mut command = tokio::process::Command::new(binary);
        command.args(args.split(' '));
        command
    };
    command.env_remove("NO_COLOR");
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start longlat");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    within("the addresses to open", async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.expect("read the log") {
            let done = line.contains("/graphql");
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("the server stopped before printing where to open it: {seen:?}");
    })
    .await
}

#[tokio::test]
async fn at_start_the_addresses_to_open_are_printed_with_the_real_port_and_no_colour_codes_in_a_pipe()
 {
    let lines = start_up_lines(false, None).await;
    let all = lines.join("\n");
    assert!(!all.contains('\u{1b}'), "escape codes in a pipe: {all:?}");
    let port = all
        .split("addr=127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .expect("the listening address");
    for path in ["/ ", "/map", "/docs", "/graphql"] {
        let url = format!("http://127.0.0.1:{port}{path}");
        assert!(all.contains(&url), "{url} not in {all}");
    }
}

#[tokio::test]
async fn at_a_terminal_logs_are_coloured_unless_no_color_is_set() {
    let coloured = start_up_lines(true, None).await.join("\n");
    assert!(
        coloured.contains('\u{1b}'),
        "no colour at a terminal: {coloured:?}"
    );
    let plain = start_up_lines(true, Some("1")).await.join("\n");
    assert!(
        !plain.contains('\u{1b}'),
        "colour despite NO_COLOR: {plain:?}"
    );
}
