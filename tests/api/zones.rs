//! Geofences end to end: a tracker driven in and out of a polygon and a
//! circle, and along their borders, gives exactly the expected `enter` and
//! `leave` events on `/ws`, `/events` and history, with the same ids,
//! narrowed by `zone=`, `tracker=` and `inside=`, resumed by id, and kept
//! across a restart of the durable store. The REST surface and who may
//! change and read zones are in `zone_admin.rs`.

use serde_json::{Value, json};

use crate::durable::{DataDir, start, stop};
use crate::sse::SseReader;
use crate::test_app::{TestApp, WsClient, spawn_app, spawn_app_with, within};

/// A crossing as compared: `(type, zone, tracker, position id)`.
pub type Crossed = (String, String, String, String);

/// An L-shaped yard of 1.1 km a side at (0, 0), its notch (the square from
/// (0.004, 0.004) to (0.01, 0.01)) outside it.
pub fn yard() -> Value {
    json!({"polygon": {"type": "Polygon", "coordinates": [[
        [0.0, 0.0], [0.01, 0.0], [0.01, 0.004], [0.004, 0.004],
        [0.004, 0.01], [0.0, 0.01], [0.0, 0.0]
    ]]}})
}

/// A depot 200 m around (0.05, 0): 5.5 km east of the yard.
pub fn depot() -> Value {
    json!({"circle": {"longitude": 0.05, "latitude": 0.0, "radius": 200.0}})
}

/// A fix `x`, `y` thousandths of a degree (111 m on the equator) east and
/// north of (0, 0), and the crossings it must make, in order.
pub type Step = (f64, f64, &'static [(&'static str, &'static str)]);

/// Into the yard and out through its notch, back in, jittering on the
/// notch's edge (within 20 m outside and just inside), out and in again;
/// straight into the depot, jittering on its border, and out.
pub const ROUTE: &[Step] = &[
    (-5.0, 2.0, &[]),
    (2.0, 2.0, &[("enter", "yard")]),
    (7.0, 2.0, &[]),
    // The notch: 333 m outside the polygon, inside its bounds.
    (7.0, 7.0, &[("leave", "yard")]),
    (2.0, 7.0, &[("enter", "yard")]),
    // 11 m outside, inside, 17 m outside: within the hysteresis.
    (4.1, 7.0, &[]),
    (3.9, 7.0, &[]),
    (4.15, 7.0, &[]),
    // 33 m outside; back within 20 m (not inside: no enter); inside.
    (4.3, 7.0, &[("leave", "yard")]),
    (4.1, 7.0, &[]),
    (3.95, 7.0, &[("enter", "yard")]),
    // One fix out of the yard and into the depot: the leave comes first.
    (50.0, 0.0, &[("leave", "yard"), ("enter", "depot")]),
    // 211 m from the centre (11 m outside), 189 m (inside).
    (51.9, 0.0, &[]),
    (51.7, 0.0, &[]),
    // 278 m: 78 m outside; then 217 m, within 20 m but not inside.
    (52.5, 0.0, &[("leave", "depot")]),
    (51.95, 0.0, &[]),
];

/// Where `ROUTE` is inside the depot (the positions `inside=depot` gets).
const INSIDE_DEPOT: [usize; 2] = [11, 13];

/// What driving a tracker along some steps made.
pub struct Drive {
    /// The positions' ids, one per step.
    pub positions: Vec<String>,
    /// The crossings the steps say they make.
    pub crossings: Vec<Crossed>,
}

/// Publishes `tracker` along `steps`, one fix after another.
pub async fn drive(app: &TestApp, tracker: &str, steps: &[Step]) -> Drive {
    let mut drive = Drive {
        positions: Vec::new(),
        crossings: Vec::new(),
    };
    for (x, y, crossings) in steps {
        let event = app.publish(x / 1000.0, y / 1000.0, Some(tracker)).await;
        let id = event["id"].as_str().expect("an id").to_owned();
        for (kind, zone) in *crossings {
            let crossed = (
                kind.to_string(),
                zone.to_string(),
                tracker.into(),
                id.clone(),
            );
            drive.crossings.push(crossed);
        }
        drive.positions.push(id);
    }
    drive
}

/// Creates the yard and the depot.
pub async fn put_zones(app: &TestApp) {
    for (name, shape) in [("yard", yard()), ("depot", depot())] {
        let response = app
            .http
            .put(app.url(&format!("/zones/{name}")))
            .json(&shape)
            .send()
            .await
            .expect("PUT a zone");
        assert_eq!(response.status(), 201, "creating {name}");
    }
}

/// Publishes `tracker` at the depot's centre: an event every stream of
/// this file sees last (it enters the depot the first time), so a reader
/// that reaches it has seen everything before.
pub async fn finish(app: &TestApp, tracker: &str) {
    app.publish(0.05, 0.0, Some(tracker)).await;
}

/// A zone event as compared.
pub fn crossed(event: &Value) -> Crossed {
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("text in {event}"))
            .to_owned()
    };
    (
        text(&event["type"]),
        text(&event["zone"]),
        text(&event["tracker"]),
        text(&event["position"]["id"]),
    )
}

/// The frames on `ws` before the first one from tracker `last`.
pub async fn ws_until(ws: &mut WsClient, last: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = ws.next_json().await;
        if frame["tracker"] == last {
            return seen;
        }
        seen.push(frame);
    }
}

/// The crossings on `ws` before the first frame from tracker `last`.
pub async fn crossings_until(ws: &mut WsClient, last: &str) -> Vec<Crossed> {
    ws_until(ws, last).await.iter().map(crossed).collect()
}

/// The SSE events `(event, id, data)` before the first one from tracker `last`.
async fn sse_until(sse: &mut SseReader, last: &str) -> Vec<(String, Option<String>, Value)> {
    let mut seen = Vec::new();
    loop {
        let event = sse.next_event().await;
        if event.2["tracker"] == last {
            return seen;
        }
        seen.push(event);
    }
}

/// Every event of `/longlat/history?{query}`, oldest first.
pub async fn history(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .get_json(&format!("/longlat/history?limit=1000&{query}"))
        .await;
    page["events"].as_array().expect("events").clone()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn parse_id(id: &Value) -> (u64, u64) {
    let (millis, seq) = id.as_str().unwrap().split_once('-').unwrap();
    (millis.parse().unwrap(), seq.parse().unwrap())
}

/// Each zone event is numbered right after its position, or right after
/// the zone event before it from the same position: nothing comes between.
fn assert_numbered_right_after_their_positions(events: &[Value]) {
    for (i, event) in events.iter().enumerate() {
        let position = &event["position"]["id"];
        let before = match i.checked_sub(1).map(|j| &events[j]) {
            Some(previous) if previous["position"]["id"] == *position => &previous["id"],
            _ => position,
        };
        let (millis, seq) = parse_id(before);
        assert_eq!(parse_id(&event["id"]), (millis, seq + 1), "{event}");
    }
}

#[tokio::test]
async fn a_tracker_crossing_a_polygon_and_a_circle_and_jittering_on_their_borders_gives_exactly_the_expected_events_on_every_transport()
 {
    let app = spawn_app().await;
    put_zones(&app).await;
    let mut zones_ws = app.subscribe("/ws?zone=*").await;
    let mut plain_ws = app.subscribe("/ws").await;
    let (_, mut zones_sse) = SseReader::open(&app, "?zone=*", None).await;
    let (_, mut plain_sse) = SseReader::open(&app, "", None).await;

    // A fix without a tracker crosses nothing, even inside the yard.
    let untracked = app.publish(0.002, 0.002, None).await;
    let route = drive(&app, "bus-1", ROUTE).await;
    finish(&app, "finish").await;

    let on_ws = ws_until(&mut zones_ws, "finish").await;
    let got: Vec<Crossed> = on_ws.iter().map(crossed).collect();
    assert_eq!(got, route.crossings);
    assert_numbered_right_after_their_positions(&on_ws);

    let on_sse = sse_until(&mut zones_sse, "finish").await;
    for (name, id, data) in &on_sse {
        assert_eq!(*name, data["type"], "the SSE event is named after its type");
        assert_eq!(
            id.as_deref(),
            data["id"].as_str(),
            "the id: line is the event's"
        );
    }
    let data: Vec<Value> = on_sse.into_iter().map(|(_, _, data)| data).collect();
    assert_eq!(data, on_ws, "the same zone events on /events as on /ws");

    let mut kept = history(&app, "zone=*").await;
    assert_eq!(
        kept.pop().map(|e| e["tracker"].clone()),
        Some("finish".into())
    );
    assert_eq!(ids(&kept), ids(&on_ws), "history has the same ids");
    assert_eq!(kept, on_ws, "and the same events");

    // The tutorial's streams carry positions only, as before zones.
    let mut positions = vec![untracked["id"].as_str().unwrap().to_owned()];
    positions.extend(route.positions);
    let plain = ws_until(&mut plain_ws, "finish").await;
    assert_eq!(ids(&plain), positions);
    assert!(plain.iter().all(|p| p.get("type").is_none()), "{plain:?}");
    let plain = sse_until(&mut plain_sse, "finish").await;
    assert!(plain.iter().all(|(name, _, _)| name == "position"));
    let plain: Vec<Value> = plain.into_iter().map(|(_, _, data)| data).collect();
    assert_eq!(ids(&plain), positions);
}

/// The status and problem of a WebSocket handshake that must be refused.
pub async fn refused_handshake(app: &TestApp, path: &str) -> (u16, Value) {
    match tokio_tungstenite::connect_async(app.ws_url(path)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            let problem = serde_json::from_slice(body).expect("a problem document");
            (response.status().as_u16(), problem)
        }
        other => panic!("{path}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn zone_tracker_and_inside_narrow_the_streams_and_an_unknown_zone_is_refused_by_name() {
    let app = spawn_app().await;
    put_zones(&app).await;
    let mut depot_ws = app.subscribe("/ws?zone=depot").await;
    let mut bus_2_ws = app.subscribe("/ws?zone=*&tracker=bus-2,finish").await;
    let mut inside_ws = app.subscribe("/ws?inside=depot").await;

    let bus_2 = drive(&app, "bus-2", &[(50.0, 0.0, &[("enter", "depot")])]).await;
    let bus_1 = drive(&app, "bus-1", ROUTE).await;
    let bus_2_out = drive(
        &app,
        "bus-2",
        &[(2.0, 2.0, &[("leave", "depot"), ("enter", "yard")])],
    )
    .await;
    finish(&app, "finish").await;

    let all: Vec<Crossed> = [&bus_2, &bus_1, &bus_2_out]
        .into_iter()
        .flat_map(|d| d.crossings.clone())
        .collect();
    let depot_only: Vec<Crossed> = all.iter().filter(|c| c.1 == "depot").cloned().collect();
    let got: Vec<Crossed> = crossings_until(&mut depot_ws, "finish").await;
    assert_eq!(got, depot_only);
    let kept: Vec<Crossed> = history(&app, "zone=depot&tracker=bus-1,bus-2")
        .await
        .iter()
        .map(crossed)
        .collect();
    assert_eq!(kept, depot_only, "history narrows alike");

    let bus_2_only: Vec<Crossed> = all.iter().filter(|c| c.2 == "bus-2").cloned().collect();
    let got: Vec<Crossed> = crossings_until(&mut bus_2_ws, "finish").await;
    assert_eq!(got, bus_2_only);

    let inside = ws_until(&mut inside_ws, "finish").await;
    let mut expected = vec![bus_2.positions[0].clone()];
    expected.extend(INSIDE_DEPOT.map(|i| bus_1.positions[i].clone()));
    assert_eq!(
        ids(&inside),
        expected,
        "positions inside the depot, no zone events"
    );

    for (query, field) in [
        ("zone=nowhere", "zone"),
        ("zone=depot,nowhere", "zone"),
        ("inside=nowhere", "inside"),
        ("zone=*&inside=nowhere", "inside"),
    ] {
        let (status, problem) = refused_handshake(&app, &format!("/ws?{query}")).await;
        assert_eq!(
            (status, &problem["code"], &problem["field"]),
            (400, &json!("invalid-parameter"), &json!(field)),
            "/ws?{query}"
        );
        for path in ["/events", "/longlat/history"] {
            let response = app
                .http
                .get(app.url(&format!("{path}?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{path}?{query}");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(
                (&problem["code"], &problem["field"]),
                (&json!("invalid-parameter"), &json!(field)),
                "{path}?{query}"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains("nowhere"),
                "{problem}"
            );
        }
    }
}

#[tokio::test]
async fn a_zone_event_stream_that_reconnects_after_an_id_gets_exactly_the_zone_events_after_it() {
    let app = spawn_app().await;
    put_zones(&app).await;
    let (_, mut sse) = SseReader::open(&app, "?zone=*", None).await;
    let first = drive(&app, "bus-1", &ROUTE[..6]).await;
    let mut seen = Vec::new();
    for _ in &first.crossings {
        seen.push(sse.next_event().await);
    }
    let last_seen = seen
        .last()
        .and_then(|(_, id, _)| id.clone())
        .expect("an id");
    drop(sse);

    let rest = drive(&app, "bus-1", &ROUTE[6..]).await;
    finish(&app, "finish").await;

    let (_, mut sse) = SseReader::open(&app, "?zone=*", Some(&last_seen)).await;
    let resumed: Vec<Crossed> = sse_until(&mut sse, "finish")
        .await
        .iter()
        .map(|(_, _, d)| crossed(d))
        .collect();
    assert_eq!(resumed, rest.crossings);
    let mut ws = app
        .subscribe(&format!("/ws?zone=*&after={last_seen}"))
        .await;
    let resumed: Vec<Crossed> = crossings_until(&mut ws, "finish").await;
    assert_eq!(resumed, rest.crossings);

    // After the id of a position that crossed: that position's zone events first.
    let into_depot = &rest.positions[11 - 6];
    let mut ws = app
        .subscribe(&format!("/ws?zone=*&after={into_depot}"))
        .await;
    let resumed: Vec<Crossed> = crossings_until(&mut ws, "finish").await;
    assert_eq!(resumed, rest.crossings[rest.crossings.len() - 3..]);
}

#[tokio::test]
async fn zones_and_who_is_inside_survive_a_restart_and_the_next_fix_outside_is_a_leave() {
    let dir = DataDir::new("zones");
    let (app, stopped) = start(&dir.path, |_| {}).await;
    put_zones(&app).await;
    let zones = app.get_json("/zones").await;
    let bus_1 = drive(&app, "bus-1", &ROUTE[..12]).await;
    let bus_2 = drive(&app, "bus-2", &[(2.0, 2.0, &[("enter", "yard")])]).await;
    let in_depot = app.get_json("/zones/depot/inside").await;
    let in_yard = app.get_json("/zones/yard/inside").await;
    assert_eq!(in_depot["inside"][0]["tracker"], "bus-1", "{in_depot}");
    assert_eq!(in_yard["inside"][0]["tracker"], "bus-2", "{in_yard}");
    let before = history(&app, "zone=*").await;
    stop(app, stopped).await;

    let (app, stopped) = start(&dir.path, |_| {}).await;
    assert_eq!(app.get_json("/zones").await, zones);
    assert_eq!(app.get_json("/zones/depot/inside").await, in_depot);
    assert_eq!(app.get_json("/zones/yard/inside").await, in_yard);
    assert_eq!(history(&app, "zone=*").await, before);

    let mut ws = app.subscribe("/ws?zone=*").await;
    let bus_1_out = drive(&app, "bus-1", &ROUTE[14..]).await;
    let bus_2_out = drive(&app, "bus-2", &[(7.0, 7.0, &[("leave", "yard")])]).await;
    finish(&app, "finish").await;
    let after = ws_until(&mut ws, "finish").await;
    let mut expected = bus_1_out.crossings.clone();
    expected.extend(bus_2_out.crossings);
    assert_eq!(after.iter().map(crossed).collect::<Vec<_>>(), expected);
    assert_eq!(
        expected[0].0, "leave",
        "the first fix outside is a leave, not an enter"
    );
    let last_before = before.last().map(|e| parse_id(&e["id"])).unwrap();
    assert!(
        after.iter().all(|e| parse_id(&e["id"]) > last_before),
        "ids keep increasing"
    );

    let mut all: Vec<Crossed> = bus_1.crossings;
    all.extend(bus_2.crossings);
    all.extend(expected);
    let mut kept: Vec<Crossed> = history(&app, "zone=*").await.iter().map(crossed).collect();
    assert_eq!(kept.pop().map(|c| c.2), Some("finish".into()));
    assert_eq!(
        kept, all,
        "history holds the zone events from both sides of the restart"
    );
    stop(app, stopped).await;
}

/// Publishes a fix of `tracker` at `x`, `y` (as in [`Step`]) taken at
/// `recorded_at`; its id.
async fn publish_fix(app: &TestApp, tracker: &str, x: f64, y: f64, recorded_at: &str) -> String {
    let response = app
        .post_position(&json!({
            "longitude": x / 1000.0, "latitude": y / 1000.0,
            "tracker": tracker, "recordedAt": recorded_at,
        }))
        .await;
    assert_eq!(response.status(), 201);
    let event: Value = response.json().await.expect("the stored event");
    event["id"].as_str().expect("an id").to_owned()
}

/// A bus inside the depot, then a fix buffered ten minutes ago from far
/// outside, then a fresh one inside: the late fix is stored and delivered,
/// but where the bus was then is not where it is now.
async fn a_late_fix_crosses_nothing_on(app: &TestApp) {
    put_zones(app).await;
    let mut zone_events = app.subscribe("/ws?zone=*").await;
    let now = time::OffsetDateTime::now_utc();
    let at = |minutes_ago: i64| {
        (now - time::Duration::minutes(minutes_ago))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("an RFC 3339 time")
    };
    let entered = publish_fix(app, "bus-7", 50.0, 0.0, &at(1)).await;
    publish_fix(app, "bus-7", -5.0, 2.0, &at(10)).await;
    publish_fix(app, "bus-7", 50.1, 0.0, &at(0)).await;
    // Then really out, so the stream has something to end on.
    let left = publish_fix(app, "bus-7", 60.0, 0.0, &at(0)).await;
    let seen: Vec<Crossed> = vec![
        crossed(&zone_events.next_json().await),
        crossed(&zone_events.next_json().await),
    ];
    let expected: Vec<Crossed> = vec![
        ("enter".into(), "depot".into(), "bus-7".into(), entered),
        ("leave".into(), "depot".into(), "bus-7".into(), left),
    ];
    assert_eq!(seen, expected, "no leave and enter again for the late fix");
}

#[tokio::test]
async fn a_fix_sent_late_from_outside_does_not_take_a_tracker_out_of_its_zone() {
    a_late_fix_crosses_nothing_on(&spawn_app().await).await;
    let memory = spawn_app_with(|c| c.broker = "memory".into()).await;
    a_late_fix_crosses_nothing_on(&memory).await;
}

#[tokio::test]
async fn a_fix_sent_late_crosses_nothing_with_redis_either() {
    let redis = crate::redis_server::RedisServer::start().await;
    let url = redis.url();
    a_late_fix_crosses_nothing_on(&spawn_app_with(move |c| c.broker = url).await).await;
}

/// Publishes `count` positions of untracked devices in batches of 1000.
async fn fill_log(app: &TestApp, count: usize) {
    for first in (0..count).step_by(1000) {
        let batch: Vec<Value> = (first..count.min(first + 1000))
            .map(|i| json!({"longitude": 10.0, "latitude": (i % 80) as f64}))
            .collect();
        let response = app
            .http
            .post(app.url("/longlat"))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
}

#[tokio::test]
async fn zones_changed_and_entered_long_ago_survive_the_deletion_of_the_segments_that_held_them() {
    let dir = DataDir::new("zones-old-segments");
    // History of 10 events: a segment holds 1024, and the oldest goes once
    // the newer ones hold more than history.
    let small = |c: &mut longlat::config::Config| c.history_size = 10;
    let (app, stopped) = start(&dir.path, small).await;
    put_zones(&app).await;
    let replaced = json!({"circle": {"longitude": 0.05, "latitude": 0.0, "radius": 300.0}});
    let response = app
        .http
        .put(app.url("/zones/depot"))
        .json(&replaced)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .http
        .delete(app.url("/zones/yard"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    drive(&app, "bus-1", &[(52.5, 0.0, &[("enter", "depot")])]).await;
    let zones = app.get_json("/zones").await;
    let inside = app.get_json("/zones/depot/inside").await;
    fill_log(&app, 3000).await;
    // Segments go after the batch that filled them is answered.
    let first_segment = dir.path.join("00000000000000000000.log");
    within(
        "the first segment, with the zones' records, to be deleted",
        async {
            while first_segment.exists() {
                tokio::task::yield_now().await;
            }
        },
    )
    .await;
    assert!(dir.path.join("zones.json").exists());
    assert!(dir.path.join("inside.json").exists());
    stop(app, stopped).await;

    let (app, stopped) = start(&dir.path, small).await;
    assert_eq!(
        app.get_json("/zones").await,
        zones,
        "the replaced depot, no yard"
    );
    assert_eq!(
        app.get_json("/zones/depot/inside").await["inside"],
        inside["inside"]
    );
    let mut ws = app.subscribe("/ws?zone=depot").await;
    app.publish(0.06, 0.0, Some("bus-1")).await;
    assert_eq!(ws.next_json().await["type"], "leave");
    stop(app, stopped).await;
}

/// The real binary with `--broker <broker>` (the durable default when
/// `None`), as a [`TestApp`]: a process of its own, so its metrics count
/// only what this test does.
async fn own_process(dir: &DataDir, broker: Option<&str>) -> (tokio::process::Child, TestApp) {
    let extra: Vec<&str> = broker.map(|b| vec!["--broker", b]).unwrap_or_default();
    let (child, addr) = crate::durable::start_binary(&dir.path, &extra).await;
    let app = TestApp {
        addr,
        http: crate::test_app::http_client(),
        shutdown: longlat::shutdown::Shutdown::new(),
        scheme: "http",
    };
    (child, app)
}

#[tokio::test]
async fn every_broker_counts_the_zone_events_its_publishes_made() {
    let redis = crate::redis_server::RedisServer::start().await;
    let url = redis.url();
    for (name, broker) in [
        ("memory", Some("memory")),
        ("durable", None),
        ("redis", Some(url.as_str())),
    ] {
        let dir = DataDir::new(&format!("zone-metrics-{name}"));
        let (_child, app) = own_process(&dir, broker).await;
        // One enter and one leave, and a late fix that crosses nothing.
        a_late_fix_crosses_nothing_on(&app).await;
        let metrics = app.metrics().await;
        let count = |kind: &str| {
            crate::test_app::sample(
                &metrics,
                &format!("longlat_zone_events_total{{type=\"{kind}\"}}"),
            )
        };
        assert_eq!(
            (count("enter"), count("leave")),
            (1.0, 1.0),
            "{name}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_zone_event_is_read_back_by_its_id_as_its_stream_sent_it() {
    let app = spawn_app().await;
    put_zones(&app).await;
    let mut zone_events = app.subscribe("/ws?zone=*").await;
    let inside = json!({"longitude": 0.05, "latitude": 0.0, "tracker": "bus-9"});
    let position: Value = app.post_position(&inside).await.json().await.unwrap();
    let enter = zone_events.next_json().await;
    assert_eq!(
        (&enter["type"], &enter["position"]),
        (&json!("enter"), &position)
    );
    let id = enter["id"].as_str().expect("an id");
    assert_eq!(app.get_json(&format!("/longlat/{id}")).await, enter);
}
