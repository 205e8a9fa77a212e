//! Batches: `POST /longlat` with a JSON array or NDJSON publishes every
//! position in one append, or none of them, naming each refused one.

use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::test_app::{TestApp, spawn_app, spawn_app_with};
use crate::watchers::Watchers;

/// Posts `body` to `/longlat` as `content_type`; the status and the JSON answer.
async fn post(app: &TestApp, content_type: &str, body: String) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/longlat"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST /longlat");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

fn ids(events: &Value) -> Vec<String> {
    events
        .as_array()
        .expect("an array of events")
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Three positions of one tracker, with a fix time and a speed each.
fn three_positions() -> Value {
    json!([
        {"longitude": 18.06, "latitude": 59.33, "tracker": "van-1", "recordedAt": "2026-01-01T10:00:00Z", "speed": 1.5},
        {"longitude": 18.07, "latitude": 59.34, "tracker": "van-1", "recordedAt": "2026-01-01T10:00:10Z", "speed": 2.5},
        {"longitude": 18.08, "latitude": 59.35, "tracker": "van-1", "recordedAt": "2026-01-01T10:00:20Z", "speed": 3.5},
    ])
}

/// Posts the three positions as a JSON array and checks that every
/// transport delivers them in order, as answered.
pub(crate) async fn a_batch_arrives_everywhere_in_order(app: &TestApp) {
    let mut watchers = Watchers::open(app).await;
    let (status, answer) = post(app, "application/json", three_positions().to_string()).await;
    assert_eq!(status, 201, "{answer}");
    let stored = answer.as_array().expect("the stored events");
    for (event, sent) in stored.iter().zip(three_positions().as_array().unwrap()) {
        for field in ["longitude", "latitude", "tracker", "recordedAt", "speed"] {
            assert_eq!(event[field], sent[field], "{field}");
        }
    }
    let delivered = watchers.take(3).await;
    assert_eq!(Value::from(delivered), answer);
    let sorted = {
        let mut sorted = ids(&answer);
        sorted.sort_by_key(|id| {
            let (millis, seq) = id.split_once('-').unwrap();
            (millis.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
        });
        sorted
    };
    assert_eq!(ids(&answer), sorted, "ids in the order sent");
}

#[tokio::test]
async fn a_batch_posted_as_a_json_array_reaches_ws_events_and_graphql_in_order() {
    let app = spawn_app().await;
    a_batch_arrives_everywhere_in_order(&app).await;
}

#[tokio::test]
async fn a_batch_on_redis_is_stored_whole_and_reaches_every_transport() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let app = spawn_app_with(move |c| c.broker = url).await;
    a_batch_arrives_everywhere_in_order(&app).await;
}

#[tokio::test]
async fn an_ndjson_batch_is_read_a_line_at_a_time_blank_lines_and_crlf_included() {
    let app = spawn_app().await;
    let mut watchers = Watchers::open(&app).await;
    let body = "{\"longitude\": 1.5, \"latitude\": 2.5, \"tracker\": \"alice/phone\"}\r\n\n\
                {\"longitude\": 3.5, \"latitude\": 4.5, \"battery\": 80}\n";
    let (status, answer) = post(&app, "application/x-ndjson", body.into()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer[0]["tracker"], "alice/phone");
    assert_eq!(answer[1]["battery"], 80.0);
    assert_eq!(Value::from(watchers.take(2).await), answer);
}

#[tokio::test]
async fn a_batch_with_one_bad_position_publishes_nothing_and_names_its_index_and_field() {
    let app = spawn_app().await;
    let mut watchers = Watchers::open(&app).await;
    let mut batch = three_positions();
    batch[1]["latitude"] = json!(91);
    batch[2]["heading"] = json!("north");
    let (status, problem) = post(&app, "application/json", batch.to_string()).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "invalid-batch");
    assert_eq!(problem["field"], "[1].latitude");
    let refused = problem["refused"].as_array().expect("refused items");
    assert_eq!(refused.len(), 2, "{problem}");
    assert_eq!(
        (
            &refused[0]["index"],
            &refused[0]["field"],
            &refused[0]["code"]
        ),
        (&json!(1), &json!("latitude"), &json!("invalid-position"))
    );
    assert_eq!(
        (
            &refused[1]["index"],
            &refused[1]["field"],
            &refused[1]["code"]
        ),
        (&json!(2), &json!("heading"), &json!("invalid-body"))
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("2 of the batch's 3 positions were refused"),
        "{problem}"
    );

    // Nothing was published: the next event anyone sees is the one after.
    let after = app.publish(5.0, 5.0, Some("after")).await;
    assert_eq!(watchers.next().await, after);
    let history = app.get_json("/longlat/history?tracker=van-1").await;
    assert_eq!(history["events"], json!([]));
}

#[tokio::test]
async fn batches_are_capped_at_1000_positions_and_empty_ones_are_refused() {
    let app = spawn_app().await;
    let one = json!({"longitude": 1, "latitude": 1});
    let (status, answer) = post(
        &app,
        "application/json",
        Value::from(vec![one.clone(); 1000]).to_string(),
    )
    .await;
    assert_eq!((status, ids(&answer).len()), (201, 1000));
    let (status, problem) = post(
        &app,
        "application/json",
        Value::from(vec![one; 1001]).to_string(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("at most 1000"),
        "{problem}"
    );
    let (status, problem) = post(&app, "application/json", "[]".into()).await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("empty"),
        "{problem}"
    );
    let (status, _) = post(&app, "application/x-ndjson", "\n\n".into()).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_batch_counts_one_publish_per_position_against_the_rate() {
    let app = spawn_app_with(|c| {
        c.publish_rate = 1;
        c.publish_burst = 5;
    })
    .await;
    let one = json!({"longitude": 1, "latitude": 1});
    let (status, problem) = post(
        &app,
        "application/json",
        Value::from(vec![one.clone(); 6]).to_string(),
    )
    .await;
    assert_eq!(status, 422, "more than the burst at once: {problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("--publish-burst"),
        "{problem}"
    );
    let (status, _) = post(
        &app,
        "application/json",
        Value::from(vec![one.clone(); 4]).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, problem) = post(
        &app,
        "application/json",
        Value::from(vec![one; 2]).to_string(),
    )
    .await;
    assert_eq!(status, 429, "{problem}");
}
