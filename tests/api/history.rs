//! History and latest: what the broker still keeps, page by page.

use serde_json::Value;

use crate::test_app::{TestApp, spawn_app, spawn_app_with, within};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn history_pages_through_every_kept_event_oldest_first() {
    let app = spawn_app().await;
    let mut published = Vec::new();
    for i in 0..5 {
        published.push(app.publish(f64::from(i), 0.0, None).await);
    }
    let mut seen = Vec::new();
    let mut path = "/longlat/history?limit=2".to_owned();
    loop {
        let (status, page) = get(&app, &path).await;
        assert_eq!(status, 200);
        assert_eq!(page["gap"], Value::Null);
        let events = page["events"].as_array().unwrap().clone();
        assert!(events.len() <= 2);
        if events.is_empty() {
            assert_eq!(
                page["next"], published[4]["id"],
                "an empty page keeps the cursor"
            );
            break;
        }
        seen.extend(events);
        path = format!(
            "/longlat/history?limit=2&after={}",
            page["next"].as_str().unwrap()
        );
    }
    assert_eq!(seen, published);
}

#[tokio::test]
async fn history_filters_like_the_streams() {
    let app = spawn_app().await;
    let stockholm_bus = app.publish(18.06324, 59.334591, Some("bus-1")).await;
    app.publish(2.2945, 48.8584, Some("bus-2")).await;
    let kiruna = app.publish(20.2253, 67.8558, Some("truck")).await;
    let (_, page) = get(&app, "/longlat/history?tracker=bus-1").await;
    assert_eq!(page["events"], serde_json::json!([stockholm_bus]));
    let (_, page) = get(&app, "/longlat/history?bbox=10.5,55,24.2,69.1").await;
    assert_eq!(page["events"], serde_json::json!([stockholm_bus, kiruna]));
}

#[tokio::test]
async fn a_page_size_out_of_bounds_or_not_a_number_is_refused_in_one_plain_sentence() {
    let app = spawn_app().await;
    for limit in ["0", "1001", "many", "-1"] {
        let (status, problem) = get(&app, &format!("/longlat/history?limit={limit}")).await;
        assert_eq!(status, 400, "limit={limit}");
        assert_eq!(problem["field"], "limit", "limit={limit}: {problem}");
        assert_eq!(
            problem["detail"], "limit must be a whole number from 1 to 1000",
            "limit={limit}: said once, with no parser's words"
        );
    }
    let (status, page) = get(&app, "/longlat/history?limit=1000").await;
    assert_eq!(
        (status, page["events"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

#[tokio::test]
async fn a_history_cursor_older_than_history_says_so() {
    let app = spawn_app_with(|c| c.history_size = 2).await;
    let first = app.publish(0.0, 0.0, None).await;
    app.publish(1.0, 0.0, None).await;
    let kept = [
        app.publish(2.0, 0.0, None).await,
        app.publish(3.0, 0.0, None).await,
    ];
    let (_, page) = get(
        &app,
        &format!("/longlat/history?after={}", first["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(page["gap"]["reason"], "cursor-too-old");
    assert_eq!(page["gap"]["resumedFrom"], kept[0]["id"]);
    assert_eq!(page["events"], serde_json::json!(kept));
}

#[tokio::test]
async fn latest_answers_the_newest_event_overall_and_per_tracker() {
    let app = spawn_app().await;
    let (status, problem) = get(&app, "/longlat/latest").await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not-found")));
    let bus = app.publish(1.0, 1.0, Some("bus-1")).await;
    let truck = app.publish(2.0, 2.0, Some("truck")).await;
    assert_eq!(get(&app, "/longlat/latest").await, (200, truck));
    assert_eq!(get(&app, "/longlat/latest?tracker=bus-1").await, (200, bus));
    assert_eq!(get(&app, "/longlat/latest?tracker=ferry").await.0, 404);
    assert_eq!(get(&app, "/longlat/latest?tracker=a%20b").await.0, 400);
}

#[tokio::test]
async fn events_older_than_the_maximum_age_leave_history() {
    let app = spawn_app_with(|c| c.history_max_age_secs = 1).await;
    let old = app.publish(1.0, 1.0, None).await;
    assert_eq!(get(&app, "/longlat/latest").await, (200, old.clone()));
    // Wait on the event itself: the old position leaving history.
    within("the old event to expire", async {
        while get(&app, "/longlat/latest").await.0 != 404 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let (_, page) = get(
        &app,
        &format!("/longlat/history?after={}", old["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(page["events"], serde_json::json!([]));
    assert_eq!(
        page["gap"],
        Value::Null,
        "nothing after the client's cursor was lost"
    );
}
