//! Results of a shared live subscription are written straight to the
//! sockets of the sharers that keep up. Over a raw socket: a sharer that
//! stops reading gets every result in order once it reads again and then
//! goes on live, the legacy protocol gets its own message type that way
//! too, and nothing for an operation follows its `complete`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::test_app::{Seen, TestApp, WsClient, spawn_app, spawn_app_for_slow_readers, within};

const LIVE: &str = "subscription { positions { id } }";

/// A WebSocket on /graphql speaking `subprotocol`, acknowledged, with the
/// live subscription started as operation `id` (`start`: the legacy
/// protocol's message type), and live.
async fn live_subscriber(app: &TestApp, client: &mut WsClient, start: &str, kind: &str, id: &str) {
    send(client, json!({ "type": "connection_init" })).await;
    assert_eq!(client.next_json().await["type"], "connection_ack");
    send(
        client,
        json!({ "type": start, "id": id, "payload": { "query": LIVE } }),
    )
    .await;
    until_live(app, client, kind, id).await;
}

async fn send(client: &mut WsClient, message: Value) {
    client.send(Message::Text(message.to_string().into())).await;
}

/// The id of the position in a `next`/`data` message for operation `id`.
fn position_id(message: &Value, kind: &str, id: &str) -> String {
    assert_eq!(message["type"], kind, "{message}");
    assert_eq!(message["id"], id, "{message}");
    message["payload"]["data"]["positions"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a position: {message}"))
        .to_owned()
}

/// Publishes until the live subscription `id` gets its first event (the
/// protocol does not say when a subscription has started), then reads up to
/// a marker published after that: nothing is left in flight.
async fn until_live(app: &TestApp, client: &mut WsClient, kind: &str, id: &str) {
    within("the subscription to go live", async {
        loop {
            app.publish(0.0, 0.0, Some("warm-up")).await;
            let first = tokio::time::timeout(Duration::from_millis(100), client.next_json());
            if let Ok(message) = first.await {
                position_id(&message, kind, id);
                return;
            }
        }
    })
    .await;
    let marker = app.publish(0.0, 0.0, Some("marker")).await;
    while position_id(&client.next_json().await, kind, id) != marker["id"] {}
}

#[tokio::test]
async fn a_graphql_subscriber_that_pauses_gets_every_result_in_order_when_it_reads_again() {
    // Far more than the socket buffers hold, fewer than the shared ring.
    const EVENTS: usize = 800;
    let app = spawn_app_for_slow_readers(4 * EVENTS as u64, 60).await;
    let mut paused = app
        .subscribe_with_small_buffer("/graphql", Some("graphql-transport-ws"))
        .await;
    live_subscriber(&app, &mut paused, "subscribe", "next", "1").await;

    let mut published = app.publish_many(EVENTS, 1.0).await;
    let mut received = Vec::with_capacity(EVENTS + 1);
    while received.len() < EVENTS {
        received.push(position_id(&paused.next_json().await, "next", "1"));
    }
    // Caught up again: results keep coming.
    let live = app.publish(2.0, 2.0, None).await;
    published.push(live["id"].as_str().unwrap().to_owned());
    received.push(position_id(&paused.next_json().await, "next", "1"));
    assert_eq!(received, published, "every result once, in order");
}

#[tokio::test]
async fn a_legacy_live_subscription_gets_data_messages_and_nothing_after_its_complete() {
    let app = spawn_app().await;
    let mut client = app
        .subscribe_with_small_buffer("/graphql", Some("graphql-ws"))
        .await;
    live_subscriber(&app, &mut client, "start", "data", "a").await;

    let event = app.publish(1.0, 2.0, Some("legacy")).await;
    assert_eq!(
        position_id(&client.next_json().await, "data", "a"),
        event["id"]
    );
    send(&mut client, json!({ "type": "stop", "id": "a" })).await;
    assert_eq!(
        client.next_json().await,
        json!({ "type": "complete", "id": "a" })
    );

    // Published after the stop: it must not reach "a". The query's answer
    // shows it was stored before the answer was written.
    let after_stop = app.publish(3.0, 4.0, Some("after-stop")).await;
    let query = json!({ "type": "start", "id": "q", "payload": { "query": "{ latest { id } }" } });
    send(&mut client, query).await;
    loop {
        let Seen::Json(message) = client.next_seen().await else {
            panic!("the socket closed");
        };
        assert_eq!(message["id"], "q", "only the query's messages: {message}");
        if message["type"] == "complete" {
            break;
        }
        assert_eq!(message["payload"]["data"]["latest"]["id"], after_stop["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_shared_subscription_written_by_several_tasks_gives_each_sharer_every_result_once_in_order()
 {
    // Spread over the execution's lanes (one per worker), each writing its
    // share of the sockets on its own.
    const SHARERS: usize = 150;
    const RESULTS: usize = 20;
    let app = spawn_app().await;
    let mut sharers = Vec::with_capacity(SHARERS);
    for _ in 0..SHARERS {
        let mut client = app
            .subscribe_with_small_buffer("/graphql", Some("graphql-transport-ws"))
            .await;
        send(&mut client, json!({ "type": "connection_init" })).await;
        assert_eq!(client.next_json().await["type"], "connection_ack");
        send(
            &mut client,
            json!({ "type": "subscribe", "id": "1", "payload": { "query": LIVE } }),
        )
        .await;
        sharers.push(client);
    }
    // The last to join shares the execution the others joined before it.
    let last = sharers.last_mut().unwrap();
    until_live(&app, last, "next", "1").await;
    let marker = app.publish(0.0, 0.0, Some("marker")).await;
    let published = app.publish_many(RESULTS, 1.0).await;
    for (n, client) in sharers.iter_mut().enumerate() {
        while position_id(&client.next_json().await, "next", "1") != marker["id"] {}
        let mut received = Vec::with_capacity(RESULTS);
        while received.len() < RESULTS {
            received.push(position_id(&client.next_json().await, "next", "1"));
        }
        assert_eq!(
            received, published,
            "sharer {n}: every result once, in order"
        );
    }
}
