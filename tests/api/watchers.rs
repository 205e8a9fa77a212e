//! A subscriber on each transport at once (`/ws`, `/events` and a GraphQL
//! subscription through the graphql-ws reference client), for tests that
//! check a position arrives everywhere with every field it was stored with.

use serde_json::{Value, json};

use crate::node_client::NodeClient;
use crate::sse::SseReader;
use crate::test_app::{TestApp, WsClient};

/// The GraphQL selection of every field of a position.
pub const EVERY_FIELD: &str = "subscription($after: ID) {
  positions(after: $after) {
    id longitude latitude tracker receivedAt
    recordedAt accuracy altitude speed heading battery
  }
}";

/// One subscriber per transport, all resuming after the same event.
pub struct Watchers {
    ws: WsClient,
    sse: SseReader,
    graphql: NodeClient,
}

impl Watchers {
    /// Publishes a marker and subscribes on every transport after it, so
    /// each is live (GraphQL sends no acknowledgement: its first `next` is
    /// the first event after the marker) and none can miss what follows.
    pub async fn open(app: &TestApp) -> Self {
        Self::open_as(app, None).await
    }

    /// The same, publishing the marker with `token` when the server asks
    /// for one.
    pub async fn open_as(app: &TestApp, token: Option<&str>) -> Self {
        let mut request = app
            .http
            .post(app.url("/longlat"))
            .json(&json!({"longitude": 0.0, "latitude": 0.0, "tracker": "marker"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /longlat");
        assert_eq!(response.status(), 201, "publishing the marker");
        let marker: Value = response.json().await.expect("the marker");
        let after = marker["id"].as_str().expect("an id");
        Self {
            ws: app.subscribe(&format!("/ws?after={after}")).await,
            sse: SseReader::open(app, "", Some(after)).await.1,
            graphql: app.graphql_subscribe(EVERY_FIELD, json!({ "after": after })),
        }
    }

    /// The next event, the same on every transport (GraphQL's absent
    /// fields are null, and its numbers printed by JavaScript).
    pub async fn next(&mut self) -> Value {
        let frame = self.ws.next_json().await;
        let (kind, id, data) = self.sse.next_event().await;
        assert_eq!(kind, "position");
        assert_eq!(
            id.as_ref(),
            frame["id"].as_str().map(str::to_owned).as_ref()
        );
        assert_eq!(data, frame, "/events and /ws sent different events");
        let graphql = self.graphql.next_position().await;
        assert_same(&graphql, &frame);
        frame
    }

    /// The next `count` events, in order.
    pub async fn take(&mut self, count: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            events.push(self.next().await);
        }
        events
    }
}

/// Asserts a GraphQL `positions` item holds the event `frame` (the JSON
/// the other transports send).
fn assert_same(graphql: &Value, frame: &Value) {
    let fields = graphql.as_object().expect("a GraphQL position");
    for (name, value) in fields {
        let sent = frame.get(name).unwrap_or(&Value::Null);
        match (value.as_f64(), sent.as_f64()) {
            (Some(a), Some(b)) => assert_eq!(a, b, "{name} of {graphql} vs {frame}"),
            _ => assert_eq!(value, sent, "{name} of {graphql} vs {frame}"),
        }
    }
    for name in frame.as_object().expect("a position").keys() {
        assert!(fields.contains_key(name), "GraphQL lacks {name}: {graphql}");
    }
}
