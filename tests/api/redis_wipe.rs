//! Redis comes back without its data (restarted without persistence): what
//! was acknowledged before is gone, and every client is told so.

use serde_json::Value;

use crate::redis_server::RedisServer;
use crate::test_app::{TestApp, spawn_app_with, within};

async fn instance(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app_with(move |c| c.broker = url).await
}

fn id(event: &Value) -> &str {
    event["id"].as_str().expect("an id")
}

/// Publishes through `app` until Redis takes the event: the instance may
/// not have noticed yet that Redis is back.
async fn publish_once_redis_is_back(app: &TestApp, longitude: f64) -> Value {
    within("a publish to succeed again", async {
        loop {
            let response = app
                .post_position(&serde_json::json!({"longitude": longitude, "latitude": 1.0}))
                .await;
            if response.status() == 201 {
                return response.json::<Value>().await.unwrap();
            }
            assert_eq!(response.status(), 503);
        }
    })
    .await
}

fn assert_cursor_too_old(gap: &Value, after: &str) {
    assert_eq!(gap["type"], "gap", "a gap notice, got {gap}");
    assert_eq!(gap["reason"], "cursor-too-old", "{gap}");
    assert_eq!(gap["after"], after, "{gap}");
}

#[tokio::test]
async fn a_client_resuming_from_before_redis_lost_its_data_is_told_its_cursor_is_too_old() {
    let mut redis = RedisServer::start().await;
    let a = instance(&redis).await;
    let before = a.publish(1.0, 1.0, None).await;
    a.publish(2.0, 1.0, None).await;
    let cursor = id(&before).to_owned();
    redis.kill().await;
    redis.restart_empty().await;
    // An instance started after the wipe, on an empty stream.
    let b = instance(&redis).await;
    let after = [
        b.publish(3.0, 1.0, None).await,
        b.publish(4.0, 1.0, None).await,
    ];

    let mut resumed = b.subscribe(&format!("/ws?after={cursor}")).await;
    assert_cursor_too_old(&resumed.next_json().await, &cursor);
    for expected in &after {
        assert_eq!(&resumed.next_json().await, expected);
    }
    let history = b
        .get_json(&format!("/longlat/history?after={cursor}"))
        .await;
    assert_cursor_too_old(&history["gap"], &cursor);
    assert_eq!(history["events"], Value::from(after.to_vec()));
}

#[tokio::test]
async fn a_live_subscriber_is_told_when_redis_loses_its_data_and_then_gets_new_events() {
    let mut redis = RedisServer::start().await;
    let a = instance(&redis).await;
    let mut live = a.subscribe("/ws").await;
    let before = a.publish(1.0, 1.0, None).await;
    assert_eq!(live.next_json().await, before);

    redis.kill().await;
    redis.restart_empty().await;
    let after = publish_once_redis_is_back(&a, 2.0).await;
    assert_cursor_too_old(&live.next_json().await, id(&before));
    assert_eq!(live.next_json().await, after);
    let history = a
        .get_json(&format!("/longlat/history?after={}", id(&before)))
        .await;
    assert_cursor_too_old(&history["gap"], id(&before));
}

#[tokio::test]
async fn two_instances_agree_on_history_after_redis_lost_its_data() {
    let mut redis = RedisServer::start().await;
    let a = instance(&redis).await;
    let mut on_a = a.subscribe("/ws").await;
    let before = a.publish(1.0, 1.0, None).await;
    assert_eq!(on_a.next_json().await, before);

    redis.kill().await;
    redis.restart_empty().await;
    let b = instance(&redis).await;
    let after = b.publish(2.0, 1.0, None).await;
    // Instance A has taken in the new event once its live subscriber has it.
    let mut next = on_a.next_json().await;
    if next["type"] == "gap" {
        next = on_a.next_json().await;
    }
    assert_eq!(next, after);
    let on_a = a.get_json("/longlat/history").await;
    let on_b = b.get_json("/longlat/history").await;
    assert_eq!(
        on_a["events"], on_b["events"],
        "both instances keep the same history"
    );
    assert_eq!(on_b["events"], Value::from(vec![after]));
}

#[tokio::test]
async fn the_first_publish_after_redis_comes_back_is_accepted() {
    let mut redis = RedisServer::start().await;
    let a = instance(&redis).await;
    a.publish(1.0, 1.0, None).await;

    redis.kill().await;
    let refused = a
        .post_position(&serde_json::json!({"longitude": 2.0, "latitude": 2.0}))
        .await;
    assert_eq!(refused.status(), 503);
    // A long outage: the instance has tried to reconnect several times.
    redis.turn_away(5).await;
    redis.restart_empty().await;
    redis.wait_for_ping().await;

    let first = a
        .post_position(&serde_json::json!({"longitude": 3.0, "latitude": 3.0}))
        .await;
    assert_eq!(first.status(), 201, "{:?}", first.text().await);
}
