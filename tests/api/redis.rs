//! Several instances on one Redis behave as one server.

use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

use crate::redis_server::{RedisServer, free_port};
use crate::test_app::{TestApp, spawn_app_with, within};

async fn instance(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app_with(move |c| c.broker = url).await
}

fn id(event: &Value) -> String {
    event["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn positions_posted_to_either_instance_reach_subscribers_of_both_in_one_order() {
    let redis = RedisServer::start().await;
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    let mut on_a = a.subscribe("/ws").await;
    let mut on_b = b.subscribe("/ws").await;
    let mut published = Vec::new();
    for i in 0..10 {
        let target = if i % 2 == 0 { &a } else { &b };
        published.push(id(&target.publish(f64::from(i), 1.0, Some("bus-1")).await));
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..10 {
        seen_a.push(id(&on_a.next_json().await));
        seen_b.push(id(&on_b.next_json().await));
    }
    assert_eq!(
        seen_a, published,
        "instance A delivers every event once, in publish order"
    );
    assert_eq!(seen_b, published, "instance B delivers the same sequence");
}

#[tokio::test]
async fn a_client_resumes_on_another_instance_after_its_own_stops() {
    let redis = RedisServer::start().await;
    let a = instance(&redis).await;
    let b = instance(&redis).await;
    let mut client = a.subscribe("/ws").await;
    let first = a.publish(1.0, 1.0, None).await;
    assert_eq!(client.next_json().await, first);
    drop(client);
    a.shutdown.trigger();
    let mut missed = Vec::new();
    for i in 2..5 {
        missed.push(b.publish(f64::from(i), 1.0, None).await);
    }
    let mut resumed = b.subscribe(&format!("/ws?after={}", id(&first))).await;
    for expected in &missed {
        assert_eq!(&resumed.next_json().await, expected);
    }
    let history: Value = b.get_json(&format!("/longlat/{}", id(&first))).await;
    let all = b.get_json("/longlat/history?limit=10").await;
    assert_eq!(
        history, first,
        "instance B knows events published through A; B has {all}; missed {missed:?}"
    );
}

/// Polls `/readyz` until it answers `status`.
async fn wait_until_ready_is(app: &TestApp, status: u16) {
    within(&format!("/readyz to answer {status}"), async {
        loop {
            let response = app.http.get(app.url("/readyz")).send().await.unwrap();
            if response.status() == status {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn losing_redis_refuses_publishes_keeps_subscribers_and_recovers_without_duplicates() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    let mut subscriber = b.subscribe("/ws").await;
    let before = a.publish(1.0, 1.0, None).await;
    assert_eq!(subscriber.next_json().await, before);

    redis.kill().await;
    wait_until_ready_is(&a, 503).await;
    let refused = a
        .post_position(&serde_json::json!({"longitude": 2.0, "latitude": 2.0}))
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "broker-unavailable");

    redis.restart().await;
    wait_until_ready_is(&a, 200).await;
    wait_until_ready_is(&b, 200).await;
    let after = within("a publish to succeed again", async {
        loop {
            let response = a
                .post_position(&serde_json::json!({"longitude": 3.0, "latitude": 3.0}))
                .await;
            if response.status() == 201 {
                return response.json::<Value>().await.unwrap();
            }
            assert_eq!(response.status(), 503);
        }
    })
    .await;
    // The subscriber stayed connected; it gets the new event next: nothing
    // refused was published, and nothing is delivered twice.
    assert_eq!(subscriber.next_json().await, after);
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_a_clear_error_and_a_non_zero_exit() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_longlat"))
        .args(["--listen", "127.0.0.1:0", "--broker", &url])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let output = within("longlat to give up", output).await.unwrap();
    assert!(!output.status.success(), "exit status {}", output.status);
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("cannot start the broker"), "output: {text}");
}

/// Puts a circle zone of `radius` metres around (18.06, 59.33) through `app`.
async fn put_circle(app: &TestApp, name: &str, radius: f64) {
    let response = app
        .http
        .put(app.url(&format!("/zones/{name}")))
        .json(&serde_json::json!({
            "circle": {"longitude": 18.06, "latitude": 59.33, "radius": radius}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "the zone is created");
}

/// (type, zone, tracker, id) of a zone event.
fn crossing(event: &Value) -> (String, String, String, String) {
    let field = |name: &str| event[name].as_str().expect(name).to_owned();
    (field("type"), field("zone"), field("tracker"), field("id"))
}

#[tokio::test]
async fn zone_events_are_decided_once_and_delivered_alike_by_instances_sharing_redis() {
    let redis = RedisServer::start().await;
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    put_circle(&a, "depot", 100.0).await;
    let mut on_a = a.subscribe("/ws?zone=*").await;
    // B learns of the zone through the stream; its subscription names it.
    let mut on_b = within("instance B to know the zone", async {
        loop {
            let response = b.http.get(b.url("/zones/depot")).send().await.unwrap();
            if response.status() == 200 {
                return b.subscribe("/ws?zone=depot").await;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    // In, jittering just outside the border (within the hysteresis) from
    // the other instance, out, and in again: each fix through alternating
    // instances, so the tracker's membership lives in Redis, not in one.
    let moves = [
        (18.06, 59.33),    // inside: enter
        (18.061_9, 59.33), // about 106 m east: past the border, within 20 m
        (18.06, 59.330_5), // inside
        (18.07, 59.33),    // about 570 m east: leave
        (18.060_1, 59.33), // inside: enter
    ];
    let mut positions = Vec::new();
    for (i, (longitude, latitude)) in moves.into_iter().enumerate() {
        let target = if i % 2 == 0 { &a } else { &b };
        positions.push(id(&target
            .publish(longitude, latitude, Some("bus-1"))
            .await));
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..3 {
        seen_a.push(crossing(&on_a.next_json().await));
        seen_b.push(crossing(&on_b.next_json().await));
    }
    let kinds: Vec<_> = seen_a
        .iter()
        .map(|(t, z, tr, _)| (t.as_str(), z.as_str(), tr.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("enter", "depot", "bus-1"),
            ("leave", "depot", "bus-1"),
            ("enter", "depot", "bus-1")
        ],
        "one enter, no flapping on the border, one leave, one enter"
    );
    assert_eq!(
        seen_b, seen_a,
        "both instances deliver the same zone events, same ids"
    );
    for (event, position) in seen_a
        .iter()
        .zip([&positions[0], &positions[3], &positions[4]])
    {
        assert!(
            event.3 > *position,
            "a zone event is numbered after the position that crossed"
        );
    }
    for app in [&a, &b] {
        let inside = app.get_json("/zones/depot/inside").await;
        assert_eq!(inside["inside"][0]["tracker"], "bus-1");
        assert_eq!(inside["inside"][0]["since"], seen_a[2].3.as_str());
    }
    // A third instance, started now, knows the zone and who is inside.
    let c = instance(&redis).await;
    assert_eq!(c.get_json("/zones").await[0]["name"], "depot");
    let mut on_c = c.subscribe("/ws?zone=depot").await;
    c.publish(18.08, 59.33, Some("bus-1")).await;
    let (kind, _, _, _) = crossing(&on_c.next_json().await);
    assert_eq!(kind, "leave", "membership is Redis's, not the instance's");
}
