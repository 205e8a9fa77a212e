//! GraphQL subscriptions with the protocol's reference client (npm
//! `graphql-ws`): positions posted by curl or by the mutation arrive live,
//! filtered and resumable.
//!
//! The protocol does not acknowledge a subscription, so each test starts its
//! subscriber with `after` set to a known event and waits for the first
//! `next`: from then on the subscription is live.

use serde_json::{Value, json};

use std::time::Duration;

use crate::node_client::{NodeClient, POSITIONS};
use crate::test_app::{TestApp, spawn_app, spawn_app_with, within};

/// Asserts that a GraphQL `positions` item is the event REST answered with.
fn assert_same_event(graphql: &Value, rest: &Value) {
    for field in ["id", "receivedAt"] {
        assert_eq!(
            graphql[field], rest[field],
            "{field} of {graphql} vs {rest}"
        );
    }
    // JavaScript prints 10.0 as 10: compare the numbers, not their spelling.
    for field in ["longitude", "latitude"] {
        assert_eq!(graphql[field].as_f64(), rest[field].as_f64(), "{field}");
    }
    assert_eq!(
        graphql["tracker"],
        rest.get("tracker").cloned().unwrap_or(Value::Null)
    );
}

/// Publishes a marker event and returns its id, to subscribe `after` it.
async fn marker(app: &TestApp) -> String {
    let event = app.publish(0.0, 0.0, Some("marker")).await;
    event["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn positions_posted_with_curl_and_by_the_mutation_reach_a_graphql_subscriber() {
    let app = spawn_app().await;
    let after = marker(&app).await;
    let first = app.publish(18.06324, 59.334591, None).await;
    let mut subscriber = app.graphql_subscribe(POSITIONS, json!({ "after": after }));
    assert_same_event(&subscriber.next_position().await, &first);

    let by_curl = app.publish(-0.1276, 51.5072, Some("bus-7")).await;
    assert_same_event(&subscriber.next_position().await, &by_curl);

    let published = app
        .graphql(
            "mutation { publish(input: {longitude: 2.35, latitude: 48.85, tracker: \"tram-1\"}) { id longitude latitude tracker receivedAt } }",
            json!({}),
        )
        .await;
    let by_mutation = &published["data"]["publish"];
    assert_eq!(subscriber.next_position().await, *by_mutation);
}

#[tokio::test]
async fn a_subscriber_gets_only_the_trackers_and_the_box_it_asked_for() {
    let app = spawn_app().await;
    let after = marker(&app).await;
    let bus1 = app.publish(10.0, 10.0, Some("bus-1")).await;
    app.publish(10.0, 10.0, Some("tram-9")).await;
    app.publish(10.0, 10.0, None).await;
    let bus2_far = app.publish(-120.0, 40.0, Some("bus-2")).await;
    let inside = app.publish(15.0, 45.0, None).await;

    let mut trackers = app.graphql_subscribe(
        POSITIONS,
        json!({ "after": after, "tracker": ["bus-1", "bus-2"] }),
    );
    let europe = json!({ "minLongitude": -10.0, "minLatitude": 35.0, "maxLongitude": 30.0, "maxLatitude": 60.0 });
    let mut boxed = app.graphql_subscribe(POSITIONS, json!({ "after": after, "bbox": europe }));

    assert_same_event(&trackers.next_position().await, &bus1);
    assert_same_event(&trackers.next_position().await, &bus2_far);
    assert_same_event(&boxed.next_position().await, &inside);

    app.publish(-120.0, 40.0, Some("tram-9")).await; // neither tracker nor box
    let live = app.publish(20.0, 50.0, Some("bus-2")).await;
    assert_same_event(&trackers.next_position().await, &live);
    assert_same_event(&boxed.next_position().await, &live);
}

#[tokio::test]
async fn a_subscriber_resumes_after_its_last_id_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(app.publish(f64::from(i), 1.0, None).await);
    }
    let mut resumed = app.graphql_subscribe(POSITIONS, json!({ "after": events[1]["id"] }));
    for expected in &events[2..] {
        assert_same_event(&resumed.next_position().await, expected);
    }
    let live = app.publish(9.0, 9.0, None).await;
    assert_same_event(&resumed.next_position().await, &live);
}

#[tokio::test]
async fn a_cursor_older_than_history_is_an_events_lost_error_and_the_stream_goes_on() {
    let app = spawn_app_with(|c| c.history_size = 3).await;
    let first = app.publish(0.0, 0.0, None).await;
    app.publish(0.5, 0.0, None).await; // dropped from history, never seen
    let mut kept = Vec::new();
    for i in 1..=3 {
        kept.push(app.publish(f64::from(i), 0.0, None).await);
    }
    let mut subscriber = app.graphql_subscribe(POSITIONS, json!({ "after": first["id"] }));

    let notice = subscriber.next_with("next").await;
    let error = &notice["errors"][0];
    assert_eq!(error["path"], json!(["positions"]));
    assert_eq!(error["extensions"]["code"], "events-lost");
    assert_eq!(error["extensions"]["reason"], "cursor-too-old");
    assert_eq!(error["extensions"]["after"], first["id"]);
    assert_eq!(error["extensions"]["resumedFrom"], kept[0]["id"]);
    for expected in &kept {
        assert_same_event(&subscriber.next_position().await, expected);
    }
}

#[tokio::test]
async fn a_query_sent_over_the_websocket_answers_once_and_completes() {
    let app = spawn_app().await;
    let latest = app.publish(3.0, 4.0, Some("ferry")).await;
    let mut client = app.graphql_subscribe("{ latest(tracker: \"ferry\") { id } }", json!({}));
    let answer = client.next_with("next").await;
    assert_eq!(answer["data"]["latest"]["id"], latest["id"]);
    assert_eq!(client.next_with("complete").await, true);
}

#[tokio::test]
async fn an_invalid_subscription_is_refused_with_the_field_named() {
    let app = spawn_app().await;
    let mut bad_after = app.graphql_subscribe(POSITIONS, json!({ "after": "yesterday" }));
    let refused = bad_after.next_with("next").await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "invalid-parameter"
    );
    assert_eq!(refused["errors"][0]["extensions"]["field"], "after");

    let mut unknown_field =
        app.graphql_subscribe("subscription { positions { elevation } }", json!({}));
    let errors = unknown_field.next_with("error").await;
    assert!(
        errors[0]["message"].as_str().unwrap().contains("elevation"),
        "{errors}"
    );
}

/// Publishes until a live subscriber (no `after`) gets its first event: the
/// protocol does not say when a subscription has started.
async fn until_live(app: &TestApp, subscriber: &mut NodeClient) {
    within("the subscription to go live", async {
        loop {
            app.publish(0.0, 0.0, Some("warm-up")).await;
            if subscriber
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

/// Publishes `count` positions for `tracker`; their ids, in order.
async fn publish_run(app: &TestApp, count: usize, tracker: &str) -> Vec<Value> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let event = app.publish(i as f64, 1.0, Some(tracker)).await;
        ids.push(event["id"].clone());
    }
    ids
}

/// The ids `subscriber` gets up to and including `last`, past the warm-up
/// ones that made it live: any other event missed, doubled or out of order
/// shows as a difference from what was published.
async fn ids_until(subscriber: &mut NodeClient, last: &Value) -> Vec<Value> {
    let mut ids = Vec::new();
    while ids.last() != Some(last) {
        let position = subscriber.next_position().await;
        if position["tracker"] != "warm-up" {
            ids.push(position["id"].clone());
        }
    }
    ids
}

#[tokio::test]
async fn subscribers_sending_the_same_live_subscription_each_get_every_event() {
    let app = spawn_app().await;
    let query = "subscription { positions { id tracker } }";
    let mut first = app.graphql_subscribe(query, json!({}));
    until_live(&app, &mut first).await;
    let mut second = app.graphql_subscribe(query, json!({}));
    until_live(&app, &mut second).await;

    let both = publish_run(&app, 30, "both").await;
    let last = both.last().unwrap();
    assert_eq!(ids_until(&mut first, last).await, both);
    assert_eq!(ids_until(&mut second, last).await, both);

    drop(first);
    let after_leaving = publish_run(&app, 10, "still-here").await;
    let last = after_leaving.last().unwrap();
    assert_eq!(ids_until(&mut second, last).await, after_leaving);
}

#[tokio::test]
async fn stopping_the_server_closes_graphql_websockets_with_1001() {
    let app = spawn_app().await;
    let after = marker(&app).await;
    app.publish(1.0, 1.0, None).await;
    let mut subscriber = app.graphql_subscribe(POSITIONS, json!({ "after": after }));
    subscriber.next_position().await;
    app.shutdown.trigger();
    assert_eq!(subscriber.close_code().await, 1001);
}
