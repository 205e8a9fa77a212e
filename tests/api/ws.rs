//! The raw WebSocket: a read-only stream of JSON frames that never lets one
//! reader hold up the others.

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::test_app::{Seen, spawn_app, spawn_app_for_slow_readers, spawn_app_with, within};

#[tokio::test]
async fn a_client_that_sends_data_is_closed_with_1003() {
    let app = spawn_app().await;
    let mut client = app.subscribe("/ws").await;
    client.send(Message::text("hello?")).await;
    assert_eq!(client.close_code().await, 1003);
}

#[tokio::test]
async fn pings_are_answered_with_pongs() {
    let app = spawn_app().await;
    let mut client = app.subscribe("/ws").await;
    client
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await;
    let pong = within("a pong", async {
        loop {
            match client.socket.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => {}
                other => panic!("socket ended before the pong: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(&pong[..], b"are you there");
}

#[tokio::test]
async fn a_plain_get_on_the_websocket_path_is_told_to_upgrade() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/ws")).send().await.unwrap();
    assert_eq!(response.status(), 426);
    assert_eq!(response.headers()["upgrade"], "websocket");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_client_resumes_after_its_last_id_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let events: Vec<Value> =
        futures::future::join_all((0..1).map(|_| async { app.publish(1.0, 1.0, None).await }))
            .await;
    let first_id = events[0]["id"].as_str().unwrap().to_owned();
    let mut later = Vec::new();
    for i in 0..5 {
        later.push(app.publish(f64::from(i), 2.0, None).await);
    }
    let mut resumed = app.subscribe(&format!("/ws?after={first_id}")).await;
    for expected in &later {
        assert_eq!(&resumed.next_json().await, expected);
    }
    let live = app.publish(9.0, 9.0, None).await;
    assert_eq!(resumed.next_json().await, live);
}

#[tokio::test]
async fn a_cursor_older_than_history_is_told_what_was_lost() {
    let app = spawn_app_with(|c| c.history_size = 3).await;
    let first = app.publish(0.0, 0.0, None).await;
    app.publish(0.5, 0.0, None).await; // dropped from history, and never seen
    let mut kept = Vec::new();
    for i in 1..=3 {
        kept.push(app.publish(f64::from(i), 0.0, None).await);
    }
    let mut client = app
        .subscribe(&format!("/ws?after={}", first["id"].as_str().unwrap()))
        .await;
    let notice = client.next_json().await;
    assert_eq!(notice["type"], "gap");
    assert_eq!(notice["reason"], "cursor-too-old");
    assert_eq!(notice["after"], first["id"]);
    assert_eq!(notice["resumedFrom"], kept[0]["id"]);
    for expected in &kept {
        assert_eq!(&client.next_json().await, expected);
    }
}

#[tokio::test]
async fn stream_filters_deliver_only_matching_events() {
    let app = spawn_app().await;
    let mut bus = app.subscribe("/ws?tracker=bus-1,bus-2").await;
    let mut sweden = app.subscribe("/ws?bbox=10.5,55,24.2,69.1").await;
    let stockholm_bus = app.publish(18.06324, 59.334591, Some("bus-1")).await;
    let paris_bus = app.publish(2.2945, 48.8584, Some("bus-2")).await;
    let kiruna_truck = app.publish(20.2253, 67.8558, Some("truck")).await;
    assert_eq!(bus.next_json().await, stockholm_bus);
    assert_eq!(bus.next_json().await, paris_bus);
    assert_eq!(sweden.next_json().await, stockholm_bus);
    assert_eq!(sweden.next_json().await, kiruna_truck);
}

#[tokio::test]
async fn bad_stream_parameters_are_refused_before_upgrading() {
    let app = spawn_app().await;
    for (query, param) in [
        ("after=yesterday", "after"),
        ("tracker=a%20b", "tracker"),
        ("bbox=1,2,3", "bbox"),
    ] {
        let request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                app.ws_url(&format!("/ws?{query}")),
            )
            .unwrap();
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{query}");
                let problem: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(problem["field"], param, "{query}");
            }
            other => panic!("{query}: expected 400, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_holds_up_nobody_and_is_told_what_it_missed() {
    const HISTORY: u64 = 200;
    const EVENTS: usize = 3000;
    let app = spawn_app_for_slow_readers(HISTORY, 60).await;
    let mut stalled = app.subscribe_with_small_buffer("/ws", None).await;
    let mut reader = app.subscribe("/ws").await;
    let reading = tokio::spawn(async move {
        let mut ids = Vec::with_capacity(EVENTS);
        while ids.len() < EVENTS {
            let event = reader.next_json().await;
            assert!(
                event.get("type").is_none(),
                "the keeping-up reader got a notice: {event}"
            );
            ids.push(event["id"].as_str().unwrap().to_owned());
        }
        ids
    });

    // The stalled client reads nothing while every position is published.
    let published = app.publish_many(EVENTS, 0.0).await;
    let received = within("the reader to get every event", reading)
        .await
        .unwrap();
    assert_eq!(received, published, "the reader got every event, in order");

    // When it finally reads: whatever was buffered, then a notice, then close 4008.
    let mut buffered = 0;
    let notice = loop {
        match stalled.next_seen().await {
            Seen::Json(frame) if frame.get("type").is_none() => {
                assert_eq!(frame["id"].as_str(), Some(published[buffered].as_str()));
                buffered += 1;
            }
            Seen::Json(notice) => break notice,
            Seen::Closed(frame) => {
                panic!("closed without a notice after {buffered} events: {frame:?}")
            }
        }
    };
    assert_eq!(notice["type"], "gap");
    assert_eq!(notice["reason"], "lagged");
    let missed = notice["missed"].as_u64().expect("missed count");
    assert!(missed > 0);
    assert_eq!(
        notice["after"].as_str(),
        Some(published[buffered - 1].as_str())
    );
    assert_eq!(stalled.close_code().await, 4008);
}

#[tokio::test]
async fn a_subscriber_that_pauses_within_history_gets_every_event_in_order_when_it_reads_again() {
    // Far more than the socket buffers hold, far less than history.
    const EVENTS: usize = 1500;
    let app = spawn_app_for_slow_readers(4 * EVENTS as u64, 60).await;
    let mut paused = app.subscribe_with_small_buffer("/ws", None).await;
    let mut published = app.publish_many(EVENTS, 1.0).await;
    let mut received = Vec::with_capacity(EVENTS + 1);
    while received.len() < EVENTS {
        let event = paused.next_json().await;
        assert!(event.get("type").is_none(), "a notice: {event}");
        received.push(event["id"].as_str().unwrap().to_owned());
    }
    // Caught up again: live events keep coming.
    let live = app.publish(2.0, 2.0, None).await;
    published.push(live["id"].as_str().unwrap().to_owned());
    received.push(paused.next_json().await["id"].as_str().unwrap().to_owned());
    assert_eq!(received, published, "every event once, in order");
}

#[tokio::test]
async fn a_websocket_client_reconnecting_while_positions_keep_coming_gets_each_exactly_once() {
    const TOTAL: usize = 60;
    let app = spawn_app().await;
    let mut client = app.subscribe("/ws").await;
    let publisher = app.publish_in_background(TOTAL);
    let mut received: Vec<String> = Vec::new();
    for reconnect in [10, 25, 40] {
        while received.len() < reconnect {
            received.push(client.next_json().await["id"].as_str().unwrap().to_owned());
        }
        drop(client);
        client = app
            .subscribe(&format!("/ws?after={}", received.last().unwrap()))
            .await;
    }
    while received.len() < TOTAL {
        let frame = client.next_json().await;
        assert!(frame.get("type").is_none(), "no notice expected: {frame}");
        received.push(frame["id"].as_str().unwrap().to_owned());
    }
    let published = within("the publisher", publisher).await.unwrap();
    assert_eq!(
        received, published,
        "every event exactly once, in order, across reconnections"
    );
}
