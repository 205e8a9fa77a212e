//! Map formats: history and latest as a GeoJSON FeatureCollection, a
//! tracker's trail as a GeoJSON LineString in fix-time order, and the same
//! trail as a GPX track, parsed by a real XML parser.

use serde_json::{Value, json};

use crate::test_app::{TestApp, spawn_app, within};

/// GETs `path` with `accept`; the content type and the body.
async fn get(app: &TestApp, path: &str, accept: &str) -> (String, String) {
    let response = app
        .http
        .get(app.url(path))
        .header("Accept", accept)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    let media = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (media, response.text().await.unwrap())
}

/// Publishes the van's fixes: a fresh one, then two buffered ones late.
async fn van_with_a_late_backlog(app: &TestApp) -> Vec<Value> {
    let mut stored = Vec::new();
    for (longitude, at, altitude) in [
        (18.3, "2026-01-01T10:30:00Z", 30.0),
        (18.1, "2026-01-01T10:10:00Z", 10.0),
        (18.2, "2026-01-01T10:20:00Z", 20.0),
    ] {
        let body = json!({"longitude": longitude, "latitude": 59.3, "tracker": "fleet/van-1",
            "recordedAt": at, "altitude": altitude, "speed": 4.5});
        let response = app.post_position(&body).await;
        assert_eq!(response.status(), 201);
        stored.push(response.json().await.unwrap());
    }
    stored
}

fn assert_point(feature: &Value, event: &Value) {
    assert_eq!(feature["type"], "Feature");
    assert_eq!(feature["id"], event["id"]);
    assert_eq!(feature["geometry"]["type"], "Point");
    assert_eq!(
        feature["geometry"]["coordinates"],
        json!([event["longitude"], event["latitude"]])
    );
    let mut properties = event.clone();
    let fields = properties.as_object_mut().unwrap();
    fields.remove("longitude");
    fields.remove("latitude");
    assert_eq!(feature["properties"], properties);
}

#[tokio::test]
async fn history_and_latest_are_feature_collections_of_points_when_asked_for_geojson() {
    let app = spawn_app().await;
    let stored = van_with_a_late_backlog(&app).await;
    let (media, body) = get(
        &app,
        "/longlat/history?tracker=fleet/van-1",
        "application/geo+json",
    )
    .await;
    assert_eq!(media, "application/geo+json");
    let collection: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(collection["type"], "FeatureCollection");
    let features = collection["features"].as_array().unwrap();
    assert_eq!(features.len(), 3);
    for (feature, event) in features.iter().zip(&stored) {
        assert_point(feature, event);
    }
    assert_eq!(collection["next"], stored[2]["id"]);

    let by_parameter = app
        .get_json("/longlat/history?tracker=fleet/van-1&format=geojson")
        .await;
    assert_eq!(by_parameter, collection);
    let plain = app.get_json("/longlat/history?tracker=fleet/van-1").await;
    assert_eq!(
        plain["events"],
        Value::from(stored.clone()),
        "JSON stays the default"
    );

    let (media, body) = get(
        &app,
        "/longlat/latest?tracker=fleet/van-1",
        "application/geo+json",
    )
    .await;
    assert_eq!(media, "application/geo+json");
    let latest: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(latest["features"].as_array().unwrap().len(), 1);
    assert_point(&latest["features"][0], &stored[0]);
}

#[tokio::test]
async fn a_trackers_trail_is_a_line_string_in_the_order_its_fixes_were_taken() {
    let app = spawn_app().await;
    van_with_a_late_backlog(&app).await;
    let (media, body) = get(&app, "/longlat/trail?tracker=fleet/van-1", "*/*").await;
    assert_eq!(media, "application/geo+json");
    let trail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(trail["type"], "Feature");
    assert_eq!(trail["geometry"]["type"], "LineString");
    assert_eq!(
        trail["geometry"]["coordinates"],
        json!([[18.1, 59.3], [18.2, 59.3], [18.3, 59.3]])
    );
    assert_eq!(trail["properties"]["tracker"], "fleet/van-1");
    assert_eq!(
        trail["properties"]["times"],
        json!([
            "2026-01-01T10:10:00Z",
            "2026-01-01T10:20:00Z",
            "2026-01-01T10:30:00Z"
        ])
    );
    let missing = app
        .http
        .get(app.url("/longlat/trail?tracker=nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The track points of a GPX document, read by Python's XML parser.
async fn gpx_points(document: &str) -> Value {
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
ns = {"g": "http://www.topografix.com/GPX/1/1"}
root = ET.fromstring(sys.stdin.read())
assert root.tag == "{http://www.topografix.com/GPX/1/1}gpx" and root.get("version") == "1.1"
print(json.dumps({
    "name": root.find("g:trk/g:name", ns).text,
    "points": [{"lat": float(p.get("lat")), "lon": float(p.get("lon")),
                "ele": float(p.find("g:ele", ns).text), "time": p.find("g:time", ns).text}
               for p in root.findall("g:trk/g:trkseg/g:trkpt", ns)]}))
"#;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 reads the GPX (tests/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, document.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = within("the GPX parser", child.wait_with_output())
        .await
        .unwrap();
    assert!(output.status.success(), "not GPX 1.1: {document}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn a_trackers_trail_exports_as_a_gpx_track_for_other_tools() {
    let app = spawn_app().await;
    van_with_a_late_backlog(&app).await;
    let response = app
        .http
        .get(app.url("/longlat/trail?tracker=fleet/van-1"))
        .header("Accept", "application/gpx+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/gpx+xml");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"fleet_van-1.gpx\""
    );
    let document = response.text().await.unwrap();
    let track = gpx_points(&document).await;
    assert_eq!(track["name"], "fleet/van-1");
    assert_eq!(
        track["points"],
        json!([
            {"lat": 59.3, "lon": 18.1, "ele": 10.0, "time": "2026-01-01T10:10:00Z"},
            {"lat": 59.3, "lon": 18.2, "ele": 20.0, "time": "2026-01-01T10:20:00Z"},
            {"lat": 59.3, "lon": 18.3, "ele": 30.0, "time": "2026-01-01T10:30:00Z"},
        ])
    );
    let (_, by_parameter) = get(&app, "/longlat/trail?tracker=fleet/van-1&format=gpx", "*/*").await;
    assert_eq!(by_parameter, document);
    let refused = app
        .http
        .get(app.url("/longlat/history?format=gpx"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}
