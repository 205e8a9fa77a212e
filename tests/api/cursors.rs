//! Resume cursors from the future: a client told plainly that the id it
//! resumes from was never issued here, on every transport, instead of a
//! stream that stays silent until the clock catches up.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::node_client::POSITIONS;
use crate::test_app::{TestApp, spawn_app};

/// Year 5138: no server has issued it yet.
const FAR_AHEAD: &str = "99999999999999-0";

/// The id as `(millis, seq)`, to compare ids in order.
fn id_of(id: &str) -> (u64, u64) {
    let (millis, seq) = id.split_once('-').expect("an event id");
    (millis.parse().unwrap(), seq.parse().unwrap())
}

/// Asserts a 400 problem naming the `after` parameter.
fn assert_refused_cursor(status: u16, content_type: Option<&str>, body: &[u8], what: &str) {
    assert_eq!(status, 400, "{what}");
    assert_eq!(content_type, Some("application/problem+json"), "{what}");
    let problem: Value = serde_json::from_slice(body).expect("a problem document");
    assert_eq!(problem["code"], "invalid-parameter", "{what}: {problem}");
    assert_eq!(problem["field"], "after", "{what}: {problem}");
}

async fn assert_get_refused(app: &TestApp, path: &str, last_event_id: Option<&str>) {
    let mut request = app.http.get(app.url(path));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.expect("a body");
    assert_refused_cursor(status, content_type.as_deref(), &body, path);
}

#[tokio::test]
async fn a_cursor_from_the_future_is_refused_on_every_transport() {
    let app = spawn_app().await;
    app.publish(1.0, 1.0, None).await;

    match tokio_tungstenite::connect_async(app.ws_url(&format!("/ws?after={FAR_AHEAD}"))).await {
        Err(tungstenite::Error::Http(response)) => {
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap());
            let body = response.body().clone().unwrap_or_default();
            assert_refused_cursor(response.status().as_u16(), content_type, &body, "/ws");
        }
        other => panic!("expected the /ws handshake to be refused, got {other:?}"),
    }
    assert_get_refused(&app, &format!("/events?after={FAR_AHEAD}"), None).await;
    assert_get_refused(&app, "/events", Some(FAR_AHEAD)).await;
    assert_get_refused(&app, &format!("/longlat/history?after={FAR_AHEAD}"), None).await;

    let mut subscriber = app.graphql_subscribe(POSITIONS, json!({ "after": FAR_AHEAD }));
    let answer = subscriber.next_with("next").await;
    let errors = &answer["errors"];
    assert_eq!(
        errors[0]["extensions"]["code"], "invalid-parameter",
        "{answer}"
    );
    assert_eq!(errors[0]["extensions"]["field"], "after", "{answer}");
    assert_eq!(answer["data"], Value::Null, "{answer}");
}

#[tokio::test]
async fn a_cursor_a_moment_ahead_of_this_server_still_resumes() {
    let app = spawn_app().await;
    let last = app.publish(1.0, 1.0, None).await;
    // As from another instance whose reader saw an event this one has not
    // read yet: a millisecond past the newest id here.
    let (millis, _) = id_of(last["id"].as_str().unwrap());
    let ahead = format!("{}-0", millis + 1);
    let mut watcher = app.subscribe(&format!("/ws?after={ahead}")).await;
    let history = app
        .http
        .get(app.url(&format!("/longlat/history?after={ahead}")))
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), 200);
    let after_cursor = loop {
        let event = app.publish(2.0, 2.0, None).await;
        if id_of(event["id"].as_str().unwrap()) > id_of(&ahead) {
            break event;
        }
    };
    assert_eq!(watcher.next_json().await["id"], after_cursor["id"]);
}
