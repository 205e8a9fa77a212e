//! Late points: a phone that was offline sends its buffered fixes when it
//! is back. They are stored and delivered like any other, but a tracker's
//! latest position stays its newest fix, by fix time rather than arrival.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::test_app::TestApp;
use crate::watchers::Watchers;

/// `minutes` from now, as RFC 3339.
fn at(minutes: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
        .format(&Rfc3339)
        .expect("a time")
}

/// Publishes a fix of `tracker` taken at `recorded_at` (none: unsaid).
async fn fix(app: &TestApp, tracker: &str, longitude: f64, recorded_at: Option<String>) -> Value {
    let mut body = json!({"longitude": longitude, "latitude": 50.0, "tracker": tracker});
    if let Some(at) = recorded_at {
        body["recordedAt"] = at.into();
    }
    let response = app.post_position(&body).await;
    assert_eq!(response.status(), 201, "{body}");
    response.json().await.expect("the stored event")
}

async fn latest(app: &TestApp, tracker: &str) -> Value {
    app.get_json(&format!("/longlat/latest?tracker={tracker}"))
        .await
}

/// The story on any broker: a fresh fix, then a backlog out of order.
pub(crate) async fn a_late_backlog_never_replaces_the_newest_fix(app: &TestApp) {
    let mut watchers = Watchers::open(app).await;
    let fresh = fix(app, "alice/phone", 1.0, Some(at(-1))).await;
    let backlog = [
        fix(app, "alice/phone", 2.0, Some(at(-180))).await,
        fix(app, "alice/phone", 3.0, Some(at(-60))).await,
        fix(app, "alice/phone", 4.0, Some(at(-120))).await,
    ];
    let mut stored = vec![fresh.clone()];
    stored.extend(backlog);
    assert_eq!(
        watchers.take(4).await,
        stored,
        "every fix is delivered, as it arrived"
    );
    assert_eq!(latest(app, "alice/phone").await, fresh);
    let graphql = app
        .graphql(
            "query($t: String) { latest(tracker: $t) { id } }",
            json!({"t": "alice/phone"}),
        )
        .await;
    assert_eq!(graphql["data"]["latest"]["id"], fresh["id"]);

    // A fix that does not say when it was taken was taken as it arrived.
    let unsaid = fix(app, "alice/phone", 5.0, None).await;
    assert_eq!(latest(app, "alice/phone").await, unsaid);
    // A clock running an hour ahead does not pin the latest position.
    let ahead = fix(app, "alice/phone", 6.0, Some(at(60))).await;
    assert_eq!(latest(app, "alice/phone").await, ahead);
    let next = fix(app, "alice/phone", 7.0, None).await;
    assert_eq!(latest(app, "alice/phone").await, next);
}

#[tokio::test]
async fn a_buffered_backlog_arriving_out_of_order_is_delivered_but_latest_stays_the_newest_fix() {
    let app = crate::test_app::spawn_app().await;
    a_late_backlog_never_replaces_the_newest_fix(&app).await;
}
