//! Every way in publishes through the same steps: `POST /longlat`, the
//! GraphQL mutation over HTTP and the same mutation over the graphql-ws
//! WebSocket are authorised, rate-limited and tracker-checked alike, and
//! count against one allowance.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::test_app::{TestApp, WsClient, spawn_app_with, within};

const TOKENS: &str = "\
pub-bus   publish   trackers=bus-1 name=buses
pub-all   publish   name=all
";

const MUTATION: &str = "mutation($tracker: String) { \
    publish(input: {longitude: 18.06, latitude: 59.33, tracker: $tracker}) { id } }";

/// The problem `code` of `POST /longlat` with `token` for `tracker`
/// (`created` when it was stored).
async fn rest(app: &TestApp, token: &str, tracker: &str) -> String {
    let response = app
        .http
        .post(app.url("/longlat"))
        .bearer_auth(token)
        .json(&json!({"longitude": 18.06, "latitude": 59.33, "tracker": tracker}))
        .send()
        .await
        .expect("POST /longlat");
    if response.status() == StatusCode::CREATED {
        return "created".into();
    }
    let problem: Value = response.json().await.expect("a problem document");
    problem["code"].as_str().expect("a code").to_owned()
}

/// What a GraphQL answer to the mutation says: `created`, or its error code.
fn outcome(answer: &Value) -> String {
    match answer["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => code.to_owned(),
        None if answer["data"]["publish"]["id"].is_string() => "created".into(),
        None => panic!("neither an event nor an error: {answer}"),
    }
}

/// The mutation over `POST /graphql` with `token`.
async fn graphql_http(app: &TestApp, token: &str, tracker: &str) -> String {
    let answer: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": MUTATION, "variables": {"tracker": tracker}}))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("a GraphQL answer");
    outcome(&answer)
}

/// A graphql-transport-ws connection, acknowledged, with `token` in its
/// `connection_init` payload.
async fn graphql_socket(app: &TestApp, token: &str) -> WsClient {
    let mut request = app.ws_url("/graphql").into_client_request().expect("a URL");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("a header value"),
    );
    let (socket, _) = within("the handshake", tokio_tungstenite::connect_async(request))
        .await
        .expect("a graphql-ws socket");
    let mut client = WsClient { socket };
    let init =
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
    client.send(Message::text(init.to_string())).await;
    assert_eq!(client.next_json().await["type"], "connection_ack");
    client
}

/// The mutation as operation `id` over an acknowledged graphql-ws socket.
async fn graphql_ws(client: &mut WsClient, id: &str, tracker: &str) -> String {
    let subscribe = json!({"type": "subscribe", "id": id,
        "payload": {"query": MUTATION, "variables": {"tracker": tracker}}});
    client.send(Message::text(subscribe.to_string())).await;
    let next = client.next_json().await;
    assert_eq!((&next["type"], &next["id"]), (&json!("next"), &json!(id)));
    let complete = client.next_json().await;
    assert_eq!(complete["type"], "complete", "{complete}");
    outcome(&next["payload"])
}

#[tokio::test]
async fn the_graphql_mutation_is_rate_limited_and_tracker_checked_exactly_like_post_longlat() {
    let tokens = crate::test_app::tokens_file("paths", TOKENS);
    let app = spawn_app_with(|c| {
        c.tokens_file = Some(tokens);
        c.protect = vec!["publish".into()];
        c.publish_rate = 1;
        c.publish_burst = 5;
    })
    .await;

    // A token for bus-1 only: refused for another tracker on every path.
    let mut buses = graphql_socket(&app, "pub-bus").await;
    assert_eq!(rest(&app, "pub-bus", "taxi-7").await, "forbidden");
    assert_eq!(graphql_http(&app, "pub-bus", "taxi-7").await, "forbidden");
    assert_eq!(graphql_ws(&mut buses, "1", "taxi-7").await, "forbidden");
    assert_eq!(graphql_ws(&mut buses, "2", "bus-1").await, "created");

    // One allowance, drained through all three paths, then refused on each.
    let mut all = graphql_socket(&app, "pub-all").await;
    let drained = [
        rest(&app, "pub-all", "bus-1").await,
        graphql_http(&app, "pub-all", "bus-1").await,
        graphql_ws(&mut all, "1", "bus-1").await,
        rest(&app, "pub-all", "bus-2").await,
        graphql_ws(&mut all, "2", "bus-2").await,
    ];
    assert_eq!(drained, ["created"; 5].map(String::from));
    assert_eq!(rest(&app, "pub-all", "bus-1").await, "rate-limited");
    assert_eq!(graphql_http(&app, "pub-all", "bus-1").await, "rate-limited");
    assert_eq!(graphql_ws(&mut all, "3", "bus-1").await, "rate-limited");

    let page = app.get_json("/longlat/history").await;
    let stored = page["events"].as_array().expect("events").len();
    assert_eq!(stored, 6, "only what was created is stored: {page}");
}
