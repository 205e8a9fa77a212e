//! GraphQL over Server-Sent Events with the protocol's reference client
//! (npm `graphql-sse`), in both of its modes, and the protocol's edges
//! with a plain HTTP client.

use std::path::PathBuf;
use std::time::Duration;

use longlat::config::Config;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::cli::port_no_other_test_is_given;
use crate::node_client::{NodeClient, POSITIONS};
use crate::test_app::{TestApp, serve_on, spawn_app, spawn_app_with, within};

impl TestApp {
    /// Runs `query` with the graphql-sse client in `mode` (`distinct` or
    /// `single`), over `url` (the app's own `/graphql` unless given).
    pub fn graphql_sse(&self, query: &str, variables: Value, mode: &str) -> NodeClient {
        let url = self.url("/graphql");
        NodeClient::start(
            "graphql-sse.mjs",
            &[&url, query, &variables.to_string(), mode],
        )
    }
}

/// Publishes a marker event and returns its id, to subscribe `after` it.
async fn marker(app: &TestApp) -> String {
    let event = app.publish(0.0, 0.0, Some("marker")).await;
    event["id"].as_str().expect("an id").to_owned()
}

/// The next `positions` item the client got.
async fn next_position(client: &mut NodeClient) -> Value {
    let next = client.next_with("next").await;
    let position = next["data"]["positions"].clone();
    assert!(position.is_object(), "a position, got {next}");
    position
}

#[tokio::test]
async fn a_graphql_sse_client_gets_positions_on_an_event_stream_of_its_own() {
    let app = spawn_app().await;
    let after = marker(&app).await;
    let first = app.publish(18.06, 59.33, None).await;
    let mut client = app.graphql_sse(POSITIONS, json!({ "after": after }), "distinct");
    assert_eq!(next_position(&mut client).await["id"], first["id"]);
    let second = app.publish(-0.12, 51.5, Some("bus-7")).await;
    let position = next_position(&mut client).await;
    assert_eq!(position["id"], second["id"]);
    assert_eq!(position["tracker"], "bus-7");
}

#[tokio::test]
async fn a_query_and_a_mutation_over_sse_each_answer_once_then_complete() {
    let app = spawn_app().await;
    let mutation = "mutation { publish(input: {longitude: 2.35, latitude: 48.85}) { id } }";
    let mut publishing = app.graphql_sse(mutation, json!({}), "distinct");
    let published = publishing.next_with("next").await;
    let id = published["data"]["publish"]["id"].clone();
    assert!(id.is_string(), "{published}");
    assert_eq!(publishing.next_with("complete").await, true);

    let mut reading = app.graphql_sse("{ latest { id } }", json!({}), "distinct");
    let latest = reading.next_with("next").await;
    assert_eq!(latest["data"]["latest"]["id"], id);
    assert_eq!(reading.next_with("complete").await, true);
}

#[tokio::test]
async fn identical_live_subscriptions_over_sse_in_either_mode_each_get_every_event() {
    let app = spawn_app().await;
    let query = "subscription { positions { id tracker } }";
    let mut first = app.graphql_sse(query, json!({}), "distinct");
    let mut second = app.graphql_sse(query, json!({}), "single");
    until_live(&app, &mut first).await;
    until_live(&app, &mut second).await;
    let mut published = Vec::new();
    for i in 0..20 {
        published.push(app.publish(f64::from(i), 1.0, Some("both")).await["id"].clone());
    }
    for client in [&mut first, &mut second] {
        let mut seen = Vec::new();
        while seen.last() != published.last() {
            let position = next_position(client).await;
            if position["tracker"] == "both" {
                seen.push(position["id"].clone());
            }
        }
        assert_eq!(seen, published);
    }
}

/// Publishes until a live subscriber (no `after`) gets its first event: the
/// protocol does not say when a subscription has started.
async fn until_live(app: &TestApp, client: &mut NodeClient) {
    within("the subscription to go live", async {
        loop {
            app.publish(0.0, 0.0, Some("warm-up")).await;
            if client
                .position_within(Duration::from_millis(100))
                .await
                .is_some()
            {
                return;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn in_single_connection_mode_a_subscription_runs_on_the_reserved_stream_until_stopped() {
    let app = spawn_app().await;
    let after = marker(&app).await;
    let first = app.publish(10.0, 10.0, None).await;
    let mut client = app.graphql_sse(POSITIONS, json!({ "after": after }), "single");
    assert_eq!(next_position(&mut client).await["id"], first["id"]);
    let second = app.publish(11.0, 11.0, None).await;
    assert_eq!(next_position(&mut client).await["id"], second["id"]);
    // Unsubscribing sends DELETE; the client completes once it is answered 200.
    client.say("stop").await;
    assert_eq!(client.next_with("complete").await, true);
}

/// A data directory of its own, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("longlat-sse-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary data directory");
        Self(path)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server with the durable store in `dir`, on `addr`, once it answers.
async fn start_on(
    addr: std::net::SocketAddr,
    dir: &DataDir,
) -> (TestApp, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let config = Config {
        data_dir: dir.0.clone(),
        ..Config::defaults()
    };
    let (app, stopped) = serve_on(listener, config);
    within("the server to answer", async {
        while app.http.get(app.url("/healthz")).send().await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    (app, stopped)
}

#[tokio::test]
async fn a_graphql_sse_client_reconnects_after_a_restart_and_resumes_after_its_last_event() {
    for mode in ["distinct", "single"] {
        let dir = DataDir::new(mode);
        let (app, stopped) = start_on(port_no_other_test_is_given().await, &dir).await;
        let after = marker(&app).await;
        let first = app.publish(1.0, 1.0, None).await;
        let mut client = app.graphql_sse(POSITIONS, json!({ "after": after }), mode);
        assert_eq!(
            next_position(&mut client).await["id"],
            first["id"],
            "{mode}"
        );

        // The stream ends without `complete`: the client means to reconnect.
        let addr = app.addr;
        drop(app);
        within("the server to stop", stopped).await.unwrap();
        assert!(client.next_with("retrying").await.is_number(), "{mode}");

        // Published while the client was away: it gets it by resuming.
        let (app, _stopped) = start_on(addr, &dir).await;
        let missed = app.publish(2.0, 2.0, None).await;
        client.say("retry").await;
        assert_eq!(
            next_position(&mut client).await["id"],
            missed["id"],
            "{mode}"
        );
        let live = app.publish(3.0, 3.0, None).await;
        assert_eq!(next_position(&mut client).await["id"], live["id"], "{mode}");
    }
}

/// Sends `request` to `/graphql` and returns the status, the content type and the body.
async fn send(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let response = request.send().await.expect("a response");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_document_over_the_limits_is_refused_inside_the_event_stream() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ {}latest {{ id }}{} }}",
        "a { ".repeat(80),
        " }".repeat(80)
    );
    let (status, content_type, body) = send(
        app.http
            .post(app.url("/graphql"))
            .header("accept", "text/event-stream")
            .json(&json!({ "query": deep })),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let (next, complete) = body.split_once("\n\n").expect("two events");
    let data: Value = serde_json::from_str(next.strip_prefix("event: next\ndata: ").unwrap())
        .unwrap_or_else(|_| panic!("a next event, got {body}"));
    assert_eq!(
        data["errors"][0]["extensions"]["code"], "document-refused",
        "{data}"
    );
    assert_eq!(complete, "event: complete\ndata:\n\n");
}

#[tokio::test]
async fn a_reservation_opens_one_stream_and_takes_only_operations_that_name_themselves() {
    let app = spawn_app().await;
    let graphql = app.url("/graphql");
    let (status, content_type, token) = send(app.http.put(&graphql)).await;
    assert_eq!(
        (status, content_type.as_str()),
        (201, "text/plain; charset=utf-8")
    );
    assert_eq!(token.len(), 32, "{token}");

    let stream = app
        .http
        .get(&graphql)
        .header("accept", "text/event-stream")
        .header("x-graphql-event-stream-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (status, content_type, body) = send(
        app.http
            .get(format!("{graphql}?token={token}"))
            .header("accept", "text/event-stream"),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (409, "application/problem+json"),
        "{body}"
    );

    let operation = |token: &str, body: Value| {
        app.http
            .post(&graphql)
            .header("x-graphql-event-stream-token", token)
            .json(&body)
    };
    let query = json!({ "query": "{ latest { id } }" });
    let (status, _, body) = send(operation(&token, query.clone())).await;
    assert_eq!(status, 422, "no operationId: {body}");
    assert!(body.contains("extensions.operationId"), "{body}");
    let named = json!({ "query": "{ latest { id } }", "extensions": { "operationId": "a" } });
    let (status, _, body) = send(operation("not-a-token", named.clone())).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = send(operation(&token, named)).await;
    assert_eq!(status, 202, "{body}");

    let (status, _, body) = send(
        app.http
            .delete(&graphql)
            .header("x-graphql-event-stream-token", &token),
    )
    .await;
    assert_eq!(status, 400, "no operationId: {body}");
    drop(stream);
}

#[tokio::test]
async fn an_event_stream_takes_a_place_under_the_stream_limits() {
    let app = spawn_app_with(|config| config.max_connections_per_ip = 1).await;
    let subscribe = || {
        app.http
            .post(app.url("/graphql"))
            .header("accept", "text/event-stream")
            .json(&json!({ "query": "subscription { positions { id } }" }))
    };
    let open = subscribe().send().await.unwrap();
    assert_eq!(open.status(), 200);
    let (status, content_type, body) = send(subscribe()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (503, "application/problem+json")
    );
    assert!(body.contains("too-many-connections"), "{body}");
    let (status, _, _) = send(app.http.put(app.url("/graphql"))).await;
    assert_eq!(status, 503, "a reservation is a stream too");
    drop(open);
}
