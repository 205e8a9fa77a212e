//! Geofences through GraphQL: zones put, read and deleted with the schema's
//! mutations and queries, and a tracker's crossings watched with
//! `zoneEvents` on each GraphQL transport (the `graphql-ws` reference
//! client, the legacy Apollo subprotocol, GraphQL over SSE), every event
//! the one REST's history reports.
//!
//! The protocols do not acknowledge a subscription, so each subscriber
//! starts `after` a marker published before the tracker moves: it replays
//! whatever came after, and misses nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::node_client::NodeClient;
use crate::test_app::{TestApp, spawn_app, spawn_app_with, tokens_file, within};

/// The depot: a circle of 100 m; a tracker leaves it only once more than
/// 20 m (the default `--zone-hysteresis`) outside.
const DEPOT: (f64, f64, f64) = (18.06, 59.33, 100.0);

/// Metres per degree of latitude, on the sphere the server measures on.
const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

const PUT_DEPOT: &str = "mutation($name: String!, $circle: CircleInput, $polygon: PolygonInput) {
  putZone(name: $name, circle: $circle, polygon: $polygon) {
    name circle { longitude latitude radius } polygon { type coordinates }
  }
}";

const ZONE_EVENTS: &str = "subscription($zone: [String!], $tracker: [String!], $after: ID) {
  zoneEvents(zone: $zone, tracker: $tracker, after: $after) {
    type id zone tracker at position { id tracker }
  }
}";

/// Puts the depot with the mutation; fails unless it was put.
async fn put_depot(app: &TestApp) {
    let (longitude, latitude, radius) = DEPOT;
    let circle = json!({ "longitude": longitude, "latitude": latitude, "radius": radius });
    let answer = app
        .graphql(PUT_DEPOT, json!({ "name": "depot", "circle": circle }))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(answer["data"]["putZone"]["name"], "depot");
}

/// Publishes `tracker` `metres` north of the depot's centre.
async fn north_of_depot(app: &TestApp, tracker: &str, metres: f64) -> Value {
    let (longitude, latitude, _) = DEPOT;
    app.publish(
        longitude,
        latitude + metres / METRES_PER_DEGREE,
        Some(tracker),
    )
    .await
}

/// The id of a marker published now, for subscribers to start after.
async fn marker(app: &TestApp) -> Value {
    app.publish(0.0, 0.0, Some("marker")).await["id"].clone()
}

/// Moves bus-1 from outside into the depot, along its border (in and out
/// by less than the hysteresis), and out; then bus-2 in, to show nothing
/// came between. Returns the positions that should cross: bus-1's enter
/// and leave, bus-2's enter.
async fn cross_the_depot(app: &TestApp) -> [Value; 3] {
    north_of_depot(app, "bus-1", 300.0).await;
    let entered = north_of_depot(app, "bus-1", 0.0).await;
    for metres in [95.0, 105.0, 97.0, 115.0, 90.0, 112.0] {
        north_of_depot(app, "bus-1", metres).await;
    }
    let left = north_of_depot(app, "bus-1", 200.0).await;
    let other = north_of_depot(app, "bus-2", 10.0).await;
    [entered, left, other]
}

/// The depot's zone events after `after`, as REST's history reports them.
async fn history_of_depot(app: &TestApp, after: &Value) -> Vec<Value> {
    let after = after.as_str().expect("an id");
    let page = app
        .get_json(&format!("/longlat/history?zone=depot&after={after}"))
        .await;
    page["events"].as_array().expect("events").clone()
}

/// Asserts `seen` (what a subscriber got) are exactly enter, leave, enter
/// for the crossings of `positions`, with the ids history gave them.
fn assert_crossings(seen: &[Value], positions: &[Value; 3], history: &[Value]) {
    // A GraphQL enum: `ENTER` where JSON says `enter`.
    let expected = [("ENTER", "bus-1"), ("LEAVE", "bus-1"), ("ENTER", "bus-2")];
    assert_eq!(
        history.len(),
        3,
        "history holds three zone events: {history:?}"
    );
    for (i, (kind, tracker)) in expected.iter().enumerate() {
        let event = &seen[i];
        assert_eq!(event["type"], *kind, "event {i}: {event}");
        assert_eq!(event["zone"], "depot", "event {i}: {event}");
        assert_eq!(event["tracker"], *tracker, "event {i}: {event}");
        assert_eq!(event["position"]["id"], positions[i]["id"], "event {i}");
        assert_eq!(
            event["id"], history[i]["id"],
            "event {i}: the id history reports"
        );
        assert!(event["at"].is_string(), "event {i}: {event}");
    }
}

/// The next `zoneEvents` item a graphql-ws or graphql-sse client printed.
async fn next_zone_event(client: &mut NodeClient) -> Value {
    let next = client.next_with("next").await;
    let event = next["data"]["zoneEvents"].clone();
    assert!(event.is_object(), "a zone event, got {next}");
    event
}

#[tokio::test]
async fn a_zone_events_subscriber_sees_a_tracker_enter_then_leave_once_despite_jitter_on_the_border()
 {
    let app = spawn_app().await;
    put_depot(&app).await;
    let after = marker(&app).await;
    let mut subscriber =
        app.graphql_subscribe(ZONE_EVENTS, json!({ "zone": ["depot"], "after": after }));
    let positions = cross_the_depot(&app).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_zone_event(&mut subscriber).await);
    }
    assert_crossings(&seen, &positions, &history_of_depot(&app, &after).await);
}

#[tokio::test]
async fn zone_events_over_the_legacy_graphql_ws_subprotocol_are_the_same_crossings() {
    let app = spawn_app().await;
    put_depot(&app).await;
    let after = marker(&app).await;
    let start = json!({
        "type": "start",
        "id": "z",
        "payload": { "query": ZONE_EVENTS, "variables": { "after": after } },
    })
    .to_string();
    let init = r#"{"type":"connection_init"}"#;
    let mut client = app.graphql_raw("graphql-ws", &[init, "wait", &start]);
    assert_eq!(
        client.next_with("message").await,
        json!({ "type": "connection_ack" })
    );
    let positions = cross_the_depot(&app).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let data = client.next_with("message").await;
        assert_eq!(data["type"], "data", "{data}");
        seen.push(data["payload"]["data"]["zoneEvents"].clone());
    }
    assert_crossings(&seen, &positions, &history_of_depot(&app, &after).await);
}

#[tokio::test]
async fn zone_events_over_graphql_sse_are_the_same_crossings() {
    let app = spawn_app().await;
    put_depot(&app).await;
    let after = marker(&app).await;
    let mut client = app.graphql_sse(
        ZONE_EVENTS,
        json!({ "zone": ["depot"], "tracker": ["bus-1", "bus-2"], "after": after }),
        "distinct",
    );
    let positions = cross_the_depot(&app).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_zone_event(&mut client).await);
    }
    assert_crossings(&seen, &positions, &history_of_depot(&app, &after).await);
}

/// Moves a `warm-up` tracker in and out of the depot until `client`, a
/// live subscriber (no `after`), gets a zone event: from then on it is
/// live.
async fn until_live(app: &TestApp, client: &mut NodeClient) {
    within("the zone events subscription to go live", async {
        loop {
            for metres in [0.0, 300.0] {
                north_of_depot(app, "warm-up", metres).await;
            }
            // Any `next` will do: it is a warm-up's zone event.
            let seen = client.position_within(Duration::from_millis(100)).await;
            if seen.is_some() {
                return;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn identical_live_zone_events_subscriptions_each_see_the_enter() {
    let app = spawn_app().await;
    put_depot(&app).await;
    let live = json!({ "zone": ["depot"] });
    let mut first = app.graphql_subscribe(ZONE_EVENTS, live.clone());
    let mut second = app.graphql_subscribe(ZONE_EVENTS, live);
    until_live(&app, &mut first).await;
    until_live(&app, &mut second).await;
    let after = marker(&app).await;
    let entered = north_of_depot(&app, "bus-1", 0.0).await;
    let enter = history_of_depot(&app, &after).await;
    let enter = enter
        .iter()
        .find(|e| e["tracker"] == "bus-1")
        .expect("an enter");
    for client in [&mut first, &mut second] {
        let event = loop {
            let event = next_zone_event(client).await;
            if event["tracker"] == "bus-1" {
                break event;
            }
        };
        assert_eq!(event["type"], "ENTER");
        assert_eq!(event["id"], enter["id"]);
        assert_eq!(event["position"]["id"], entered["id"]);
    }
}

#[tokio::test]
async fn a_zone_events_subscription_naming_an_unknown_zone_is_refused_naming_it() {
    let app = spawn_app().await;
    put_depot(&app).await;
    let mut client = app.graphql_subscribe(ZONE_EVENTS, json!({ "zone": ["depot", "nowhere"] }));
    let refused = client.next_with("next").await;
    let error = &refused["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "invalid-parameter",
        "{refused}"
    );
    assert_eq!(error["extensions"]["field"], "zone");
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("nowhere"), "{message}");
}

#[tokio::test]
async fn who_is_inside_a_zone_is_answered_after_an_enter() {
    let app = spawn_app().await;
    put_depot(&app).await;
    let after = marker(&app).await;
    let [_, _, bus2] = cross_the_depot(&app).await;
    let enter = &history_of_depot(&app, &after).await[2];
    let answer = app
        .graphql(
            "{ zone(name: \"depot\") { name circle { radius } polygon { type }
                 inside { tracker since position { id } } }
               zones { name } }",
            json!({}),
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let zone = &answer["data"]["zone"];
    assert_eq!(zone["circle"]["radius"].as_f64(), Some(DEPOT.2));
    assert_eq!(zone["polygon"], Value::Null);
    // bus-1 left again; bus-2 is inside since its enter.
    assert_eq!(zone["inside"].as_array().map(Vec::len), Some(1), "{zone}");
    assert_eq!(zone["inside"][0]["tracker"], "bus-2");
    assert_eq!(zone["inside"][0]["since"], enter["id"]);
    assert_eq!(zone["inside"][0]["position"]["id"], bus2["id"]);
    assert_eq!(answer["data"]["zones"], json!([{ "name": "depot" }]));
}

#[tokio::test]
async fn positions_can_be_asked_for_only_inside_a_zone() {
    let app = spawn_app().await;
    put_depot(&app).await;
    let after = marker(&app).await;
    let outside = north_of_depot(&app, "bus-1", 300.0).await;
    let inside = north_of_depot(&app, "bus-1", 50.0).await;
    let answer = app
        .graphql(
            "query($after: ID) { history(after: $after, inside: \"depot\") { events { id } } }",
            json!({ "after": after }),
        )
        .await;
    assert_eq!(
        answer["data"]["history"]["events"],
        json!([{ "id": inside["id"] }]),
        "{answer}"
    );
    let mut subscriber = app.graphql_subscribe(
        "subscription($after: ID) { positions(after: $after, inside: \"depot\") { id } }",
        json!({ "after": after }),
    );
    let first = subscriber.next_with("next").await;
    assert_eq!(first["data"]["positions"]["id"], inside["id"], "{first}");
    assert_ne!(outside["id"], inside["id"]);
}

/// The `putZone` error's extensions, asserting nothing was returned.
async fn put_zone_refusal(app: &TestApp, variables: Value) -> Value {
    let answer = app.graphql(PUT_DEPOT, variables).await;
    assert_eq!(answer["data"], Value::Null, "{answer}");
    answer["errors"][0]["extensions"].clone()
}

#[tokio::test]
async fn a_bad_zone_is_refused_with_the_field_named_and_nothing_is_put() {
    let app = spawn_app().await;
    let open_ring = json!({ "type": "Polygon",
        "coordinates": [[[18.0, 59.3], [18.1, 59.3], [18.1, 59.35], [18.0, 59.35]]] });
    let extensions = put_zone_refusal(&app, json!({ "name": "yard", "polygon": open_ring })).await;
    assert_eq!(extensions["code"], "invalid-zone");
    assert_eq!(extensions["field"], "polygon.coordinates[0]");

    let circle = json!({ "longitude": 18.0, "latitude": 59.3, "radius": -5.0 });
    let extensions = put_zone_refusal(&app, json!({ "name": "yard", "circle": circle })).await;
    assert_eq!(extensions["field"], "circle.radius");
    let extensions = put_zone_refusal(&app, json!({ "name": "yard" })).await;
    assert_eq!(extensions["field"], "circle");
    let extensions = put_zone_refusal(&app, json!({ "name": "no room", "circle": circle })).await;
    assert_eq!(extensions["field"], "name");

    let zones = app.graphql("{ zones { name } }", json!({})).await;
    assert_eq!(zones["data"]["zones"], json!([]), "{zones}");
}

#[tokio::test]
async fn a_polygon_is_put_as_geojson_and_deleted_once() {
    let app = spawn_app().await;
    let yard = json!({ "type": "Polygon",
        "coordinates": [[[18.0, 59.3], [18.1, 59.3], [18.1, 59.35], [18.0, 59.35], [18.0, 59.3]]] });
    let answer = app
        .graphql(PUT_DEPOT, json!({ "name": "yard", "polygon": yard }))
        .await;
    assert_eq!(answer["data"]["putZone"]["polygon"], yard, "{answer}");
    let rest = app.get_json("/zones/yard").await;
    assert_eq!(rest["polygon"], yard);

    let delete = "mutation { deleteZone(name: \"yard\") }";
    let first = app.graphql(delete, json!({})).await;
    assert_eq!(first["data"]["deleteZone"], true, "{first}");
    let second = app.graphql(delete, json!({})).await;
    assert_eq!(second["data"]["deleteZone"], false, "{second}");
}

#[tokio::test]
async fn changing_zones_needs_a_publish_credential_for_every_tracker() {
    let tokens = tokens_file(
        "graphql-zones",
        "pub-all publish\npub-bus publish trackers=bus-1\nread-only subscribe\n",
    );
    let app = spawn_app_with(move |c| {
        c.tokens_file = Some(tokens);
        c.protect = vec!["publish".into()];
    })
    .await;
    let circle = json!({ "longitude": 18.06, "latitude": 59.33, "radius": 100.0 });
    let put = json!({ "query": PUT_DEPOT, "variables": { "name": "depot", "circle": circle } });
    let delete = json!({ "query": "mutation { deleteZone(name: \"depot\") }" });
    let send = |body: &Value, token: Option<&str>| {
        let mut request = app.http.post(app.url("/graphql")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("POST /graphql");
            response.json::<Value>().await.expect("a GraphQL answer")
        }
    };
    let code = |answer: &Value| answer["errors"][0]["extensions"]["code"].clone();
    for body in [&put, &delete] {
        assert_eq!(code(&send(body, None).await), "unauthorized", "{body}");
        assert_eq!(code(&send(body, Some("read-only")).await), "forbidden");
        assert_eq!(code(&send(body, Some("pub-bus")).await), "forbidden");
    }
    let zones = app.graphql("{ zones { name } }", json!({})).await;
    assert_eq!(
        zones["data"]["zones"],
        json!([]),
        "nothing was put: {zones}"
    );

    let put = send(&put, Some("pub-all")).await;
    assert_eq!(put["data"]["putZone"]["name"], "depot", "{put}");
    let deleted = send(&delete, Some("pub-all")).await;
    assert_eq!(deleted["data"]["deleteZone"], true, "{deleted}");
}

#[tokio::test]
async fn zones_are_listed_within_a_box_after_a_name_and_a_bad_limit_is_refused() {
    let app = spawn_app().await;
    for (name, longitude) in [
        ("c-kiosk", 18.08),
        ("a-depot", 18.06),
        ("b-yard", 18.07),
        ("far", 11.97),
    ] {
        let circle = json!({ "longitude": longitude, "latitude": 59.33, "radius": 100.0 });
        let answer = app
            .graphql(PUT_DEPOT, json!({ "name": name, "circle": circle }))
            .await;
        assert_eq!(answer["data"]["putZone"]["name"], name, "{answer}");
    }
    let list = "query($bbox: BoundingBox, $after: String, $limit: Int) {
        zones(bbox: $bbox, after: $after, limit: $limit) { name } }";
    let names = |answer: &Value| -> Vec<String> {
        let zones = answer["data"]["zones"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"));
        zones
            .iter()
            .map(|z| z["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let city = json!({ "minLongitude": 18.0, "minLatitude": 59.3, "maxLongitude": 18.2, "maxLatitude": 59.4 });
    let all = app.graphql(list, json!({})).await;
    assert_eq!(names(&all), ["a-depot", "b-yard", "c-kiosk", "far"]);
    let within = app.graphql(list, json!({ "bbox": city })).await;
    assert_eq!(names(&within), ["a-depot", "b-yard", "c-kiosk"]);
    let page = app
        .graphql(
            list,
            json!({ "bbox": city, "after": "a-depot", "limit": 1 }),
        )
        .await;
    assert_eq!(names(&page), ["b-yard"]);

    for (variables, field) in [
        (json!({ "limit": 0 }), "limit"),
        (json!({ "limit": -3 }), "limit"),
        (json!({ "after": "no room" }), "after"),
        (
            json!({ "bbox": { "minLongitude": 18.0, "minLatitude": 59.3, "maxLongitude": 200.0, "maxLatitude": 59.4 } }),
            "bbox",
        ),
    ] {
        let answer = app.graphql(list, variables.clone()).await;
        let extensions = &answer["errors"][0]["extensions"];
        assert_eq!(
            (&extensions["code"], &extensions["field"]),
            (&json!("invalid-parameter"), &json!(field)),
            "{variables}: {answer}"
        );
    }
}
