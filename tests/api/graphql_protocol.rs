//! The WebSocket protocol on /graphql, broken on purpose with a raw `ws`
//! socket (the reference client never misbehaves): each mistake gets the
//! graphql-transport-ws close code. And the legacy `graphql-ws` subprotocol.

use serde_json::json;

use crate::test_app::{spawn_app, spawn_app_with};

const INIT: &str = r#"{"type":"connection_init"}"#;
const SUBSCRIBE: &str =
    r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { positions { id } }"}}"#;

#[tokio::test]
async fn a_client_that_never_sends_connection_init_is_closed_with_4408() {
    let app = spawn_app_with(|c| c.graphql_init_timeout_ms = 200).await;
    let mut client = app.graphql_raw("graphql-transport-ws", &[]);
    assert_eq!(client.close_code().await, 4408);
}

#[tokio::test]
async fn a_second_connection_init_is_closed_with_4429() {
    let app = spawn_app().await;
    let mut client = app.graphql_raw("graphql-transport-ws", &[INIT, "wait", INIT]);
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "connection_ack" })
    );
    assert_eq!(client.close_code().await, 4429);
}

#[tokio::test]
async fn a_subscribe_before_the_acknowledgement_is_closed_with_4401() {
    let app = spawn_app().await;
    let mut client = app.graphql_raw("graphql-transport-ws", &[SUBSCRIBE]);
    assert_eq!(client.close_code().await, 4401);
}

#[tokio::test]
async fn a_subscription_id_already_in_use_is_closed_with_4409() {
    let app = spawn_app().await;
    let mut client = app.graphql_raw(
        "graphql-transport-ws",
        &[INIT, "wait", SUBSCRIBE, SUBSCRIBE],
    );
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "connection_ack" })
    );
    assert_eq!(client.close_code().await, 4409);
}

#[tokio::test]
async fn malformed_messages_are_closed_with_4400() {
    let app = spawn_app().await;
    let not_json = app.graphql_raw("graphql-transport-ws", &["{not json"]);
    let unknown_type = app.graphql_raw("graphql-transport-ws", &[r#"{"type":"hello"}"#]);
    let no_payload = app.graphql_raw(
        "graphql-transport-ws",
        &[INIT, "wait", r#"{"type":"subscribe","id":"1"}"#],
    );
    for mut client in [not_json, unknown_type, no_payload] {
        assert_eq!(client.close_code().await, 4400);
    }
}

#[tokio::test]
async fn pings_are_answered_with_pongs() {
    let app = spawn_app().await;
    let mut client = app.graphql_raw("graphql-transport-ws", &[r#"{"type":"ping"}"#]);
    assert_eq!(client.next_with("message").await, json!({ "type": "pong" }));
}

#[tokio::test]
async fn the_legacy_graphql_ws_subprotocol_streams_positions_until_stopped() {
    let app = spawn_app().await;
    let marker = app.publish(0.0, 0.0, None).await;
    let event = app.publish(1.0, 2.0, Some("legacy")).await;
    let start = json!({
        "type": "start",
        "id": "a",
        "payload": {
            "query": "subscription($after: ID) { positions(after: $after) { id tracker } }",
            "variables": { "after": marker["id"] },
        },
    })
    .to_string();
    let stop = r#"{"type":"stop","id":"a"}"#;
    let mut client = app.graphql_raw("graphql-ws", &[INIT, "wait", &start, "wait", stop]);
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "connection_ack" })
    );
    let data = client.next_with("message").await;
    assert_eq!(data["type"], "data");
    assert_eq!(data["id"], "a");
    assert_eq!(
        data["payload"]["data"]["positions"],
        json!({ "id": event["id"], "tracker": "legacy" })
    );
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "complete", "id": "a" })
    );
}

#[tokio::test]
async fn a_socket_runs_at_most_a_hundred_operations_at_once() {
    let app = spawn_app().await;
    let subscribes: Vec<String> = (0..101)
        .map(|i| {
            json!({
                "type": "subscribe",
                "id": format!("op-{i}"),
                "payload": { "query": "subscription { positions { id } }" },
            })
            .to_string()
        })
        .collect();
    let mut script = vec![INIT, "wait"];
    script.extend(subscribes.iter().map(String::as_str));
    let mut client = app.graphql_raw("graphql-transport-ws", &script);
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "connection_ack" })
    );
    let refused = client.next_with("message").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "op-100");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "too-many-operations"
    );
}

#[tokio::test]
async fn a_completed_subscription_frees_its_id_for_the_next_one() {
    let app = spawn_app().await;
    let complete = r#"{"type":"complete","id":"1"}"#;
    let ping = r#"{"type":"ping"}"#;
    let mut client = app.graphql_raw(
        "graphql-transport-ws",
        &[INIT, "wait", SUBSCRIBE, complete, SUBSCRIBE, ping],
    );
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "connection_ack" })
    );
    // Had the id still been in use, the socket would have closed with 4409
    // before answering the ping.
    assert_eq!(client.next_with("message").await, json!({ "type": "pong" }));
}
