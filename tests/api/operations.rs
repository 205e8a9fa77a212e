//! What an operator sees: health, Prometheus metrics, request ids.
//!
//! The metrics recorder is global to the test process, so metric checks
//! compare before and after and allow for other tests running alongside.

use crate::test_app::{sample, spawn_app, within};

#[tokio::test]
async fn metrics_count_connections_publishes_deliveries_and_refusals() {
    let app = spawn_app().await;
    let before = app.metrics().await;
    let mut subscriber = app.subscribe("/ws").await;
    let event = app.publish(18.06324, 59.334591, None).await;
    assert_eq!(subscriber.next_json().await, event);
    let refused = app
        .http
        .post(app.url("/longlat"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    // The fan-out counts a pass once its writes are done, which may be just
    // after the subscriber read the frame: wait for the count.
    let delivered = r#"longlat_events_delivered_total{transport="ws"}"#;
    let after = within("the delivery to be counted", async {
        loop {
            let now = app.metrics().await;
            if sample(&now, delivered) >= sample(&before, delivered) + 1.0 {
                break now;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;

    let grew = |series: &str, by: f64| {
        let (was, is) = (sample(&before, series), sample(&after, series));
        assert!(
            is >= was + by,
            "{series}: {was} -> {is}, expected +{by}\n{after}"
        );
    };
    grew(r#"longlat_events_published_total{via="rest"}"#, 1.0);
    grew(delivered, 1.0);
    grew("longlat_fanout_pass_duration_seconds_count", 1.0);
    grew(
        r#"longlat_rejected_requests_total{code="invalid-body"}"#,
        1.0,
    );
    grew(r#"longlat_publish_duration_seconds_count{via="rest"}"#, 2.0);
    assert!(
        sample(&after, r#"longlat_connections{transport="ws"}"#) >= 1.0,
        "{after}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_given_one_is_echoed() {
    let app = spawn_app().await;
    let first = app.http.get(app.url("/healthz")).send().await.unwrap();
    let second = app.http.get(app.url("/nowhere")).send().await.unwrap();
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|r| r.headers()["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        !ids[0].is_empty() && ids[0] != ids[1],
        "distinct ids: {ids:?}"
    );
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");
}

#[tokio::test]
async fn health_and_readiness_answer_ok_with_the_embedded_broker() {
    let app = spawn_app().await;
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
    }
}
