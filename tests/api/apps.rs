//! Tracker apps publish in their own protocols, with the payloads, headers
//! and credentials they really send: OwnTracks (HTTP mode: JSON, Basic
//! authentication, `X-Limit-U` / `X-Limit-D`), OsmAnd (a GET with query
//! parameters and a `token`), Traccar Client (a form POST, and version 9's
//! JSON). Each position reaches `/ws`, `/events` and GraphQL.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::test_app::{TestApp, spawn_app_with};
use crate::watchers::Watchers;

/// Tokens: one for Alice's phone only, one for the buses, and the
/// watchers' own (for the marker).
const TOKENS: &str = "\
alice-secret   publish   trackers=alice/phone name=alice
bus-token      publish   trackers=bus-42,48241179 name=buses
watcher        publish   trackers=marker name=watcher
";

async fn app_with_tokens(name: &str) -> TestApp {
    let path = crate::test_app::tokens_file(name, TOKENS);
    spawn_app_with(|c| c.tokens_file = Some(path)).await
}

/// Unix seconds `minutes` from now.
fn unix(minutes: i64) -> i64 {
    (OffsetDateTime::now_utc() + time::Duration::minutes(minutes)).unix_timestamp()
}

/// The RFC 3339 form of Unix seconds `seconds`, as longlat writes it.
fn rfc3339(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// What OwnTracks sends for one location, with the app's own extra fields.
fn owntracks_location(tst: i64) -> Value {
    json!({"_type": "location", "BSSID": "b0:be:76:a7:31:f4", "SSID": "home", "acc": 12,
        "alt": 28, "batt": 87, "bs": 1, "cog": 270, "conn": "w", "created_at": tst + 2,
        "lat": 59.3345, "lon": 18.0632, "m": 1, "t": "u", "tid": "ph", "tst": tst, "vac": 3,
        "vel": 36})
}

/// POSTs `body` to `/ingest/owntracks` as the app does: Basic
/// authentication with `password`, the user and device in `X-Limit-*`.
async fn owntracks(app: &TestApp, password: &str, device: &str, body: &str) -> reqwest::Response {
    app.http
        .post(app.url("/ingest/owntracks"))
        .basic_auth("alice", Some(password))
        .header("X-Limit-U", "alice")
        .header("X-Limit-D", device)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /ingest/owntracks")
}

#[tokio::test]
async fn an_owntracks_location_posted_with_basic_auth_reaches_every_transport_as_user_slash_device()
{
    let app = app_with_tokens("owntracks").await;
    let mut watchers = Watchers::open_as(&app, Some("watcher")).await;
    let tst = unix(-2);
    let response = owntracks(
        &app,
        "alice-secret",
        "phone",
        &owntracks_location(tst).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        "[]",
        "the array OwnTracks expects"
    );

    let event = watchers.next().await;
    assert_eq!(event["tracker"], "alice/phone");
    assert_eq!(
        (event["latitude"].as_f64(), event["longitude"].as_f64()),
        (Some(59.3345), Some(18.0632))
    );
    assert_eq!(event["recordedAt"], rfc3339(tst));
    assert_eq!(event["speed"].as_f64(), Some(10.0), "36 km/h in m/s");
    assert_eq!(
        [
            &event["accuracy"],
            &event["altitude"],
            &event["heading"],
            &event["battery"]
        ],
        [&json!(12.0), &json!(28.0), &json!(270.0), &json!(87.0)]
    );

    // Other messages and empty bodies are acknowledged, and publish nothing.
    let lwt = json!({"_type": "lwt", "tst": tst}).to_string();
    for ignored in [lwt.as_str(), ""] {
        let response = owntracks(&app, "alice-secret", "phone", ignored).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "[]");
    }
    // A wrong password, and another device than the token's, are refused.
    let body = owntracks_location(tst).to_string();
    let wrong = owntracks(&app, "guess", "phone", &body).await;
    assert_eq!(wrong.status(), 401);
    let other = owntracks(&app, "alice-secret", "tablet", &body).await;
    assert_eq!(other.status(), 403);
    let problem: Value = other.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("alice/tablet"),
        "{problem}"
    );

    // An app that names the user and device in its URL instead.
    let by_url = app
        .http
        .post(app.url("/ingest/owntracks?u=alice&d=phone"))
        .basic_auth("alice", Some("alice-secret"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_url.status(), 200);
    assert_eq!(watchers.next().await["tracker"], "alice/phone");

    let after = app
        .http
        .post(app.url("/longlat"))
        .bearer_auth("watcher")
        .json(&json!({"longitude": 1, "latitude": 1, "tracker": "marker"}))
        .send()
        .await
        .unwrap();
    let after: Value = after.json().await.unwrap();
    assert_eq!(
        watchers.next().await,
        after,
        "nothing was published in between"
    );
}

#[tokio::test]
async fn osmand_and_traccar_client_publish_by_query_form_and_json_with_a_token_in_the_url() {
    let app = app_with_tokens("osmand").await;
    let mut watchers = Watchers::open_as(&app, Some("watcher")).await;
    let url = |query: &str| app.url(&format!("/ingest/osmand?{query}"));
    let tst = unix(-5);

    // OsmAnd's online tracking: a GET with everything in the query.
    let get = app
        .http
        .get(url(&format!(
            "id=bus-42&lat=59.3345&lon=18.0632&timestamp={tst}&hdop=1.5&altitude=28&speed=10&bearing=90&batt=64&token=bus-token"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let event = watchers.next().await;
    assert_eq!(
        (&event["tracker"], &event["recordedAt"]),
        (&json!("bus-42"), &json!(rfc3339(tst)))
    );
    assert!(
        (event["speed"].as_f64().unwrap() - 5.1444).abs() < 1e-3,
        "10 knots: {event}"
    );
    assert_eq!(
        (&event["heading"], &event["battery"]),
        (&json!(90.0), &json!(64.0))
    );

    // Traccar Client before version 9: a form POST, time in milliseconds.
    let form = app
        .http
        .post(url("token=bus-token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("id=bus-42&timestamp={}&lat=59.34&lon=18.07&speed=0.0&bearing=0.0&altitude=30.0&accuracy=4.5&batt=63.0", tst * 1000 + 250))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let event = watchers.next().await;
    assert_eq!(
        (&event["accuracy"], &event["speed"]),
        (&json!(4.5), &json!(0.0))
    );
    assert!(
        event["recordedAt"].as_str().unwrap().ends_with(".25Z"),
        "{event}"
    );

    // Traccar Client 9: its location SDK's JSON.
    let body = json!({"location": {"timestamp": rfc3339(tst + 60), "coords": {"latitude": 59.35,
        "longitude": 18.08, "accuracy": 5, "speed": 8.5, "heading": -1, "altitude": 31,
        "ellipsoidal_altitude": 55}, "is_moving": true, "odometer": 1200, "event": "motionchange",
        "battery": {"level": 0.62, "is_charging": false}, "activity": {"type": "in_vehicle"},
        "extras": {}}, "device_id": "48241179"});
    let json = app
        .http
        .post(url("token=bus-token"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
    let event = watchers.next().await;
    assert_eq!(event["tracker"], "48241179");
    assert_eq!(
        (&event["speed"], &event["battery"]),
        (&json!(8.5), &json!(62.0))
    );
    assert!(event.get("heading").is_none(), "-1 means unknown: {event}");

    // A bad parameter is named; no token is refused.
    let bad = app
        .http
        .get(url("id=bus-42&lat=north&lon=18&token=bus-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "lat");
    let anonymous = app
        .http
        .get(url("id=bus-42&lat=1&lon=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn an_osmand_backlog_sent_late_and_out_of_order_is_delivered_but_latest_stays_the_newest_fix()
{
    let app = app_with_tokens("backlog").await;
    let mut watchers = Watchers::open_as(&app, Some("watcher")).await;
    let send = |minutes: i64, longitude: f64| {
        let url = app.url(&format!(
            "/ingest/osmand?id=bus-42&lat=59.3&lon={longitude}&timestamp={}&token=bus-token",
            unix(minutes)
        ));
        let http = app.http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    // Back online: the current fix first, then the buffer, one request each.
    send(0, 18.0).await;
    for (minutes, longitude) in [(-30, 17.7), (-10, 17.9), (-20, 17.8)] {
        send(minutes, longitude).await;
    }
    let delivered = watchers.take(4).await;
    let longitudes: Vec<f64> = delivered
        .iter()
        .map(|e| e["longitude"].as_f64().unwrap())
        .collect();
    assert_eq!(
        longitudes,
        [18.0, 17.7, 17.9, 17.8],
        "every fix, as it arrived"
    );
    let latest = app.get_json("/longlat/latest?tracker=bus-42").await;
    assert_eq!(
        latest, delivered[0],
        "the newest fix, not the last to arrive"
    );
}

/// A family's phones and a neighbour's: each phone publishes only as itself
/// (`trackers=`) and reads what its `read=` scope gives it.
const FAMILY: &str = "\
alice-family   publish subscribe   trackers=alice/phone  read=alice/*,bob/*
bob-family     publish subscribe   trackers=bob/phone    read=alice/*,bob/*
carol-own      publish subscribe   trackers=carol/phone  read=carol/*
";

/// POSTs an OwnTracks location as `user`'s phone, authenticated as `login`
/// with `password`.
async fn owntracks_as(app: &TestApp, login: &str, password: &str, user: &str) -> u16 {
    let response = app
        .http
        .post(app.url("/ingest/owntracks"))
        .basic_auth(login, Some(password))
        .header("X-Limit-U", user)
        .header("X-Limit-D", "phone")
        .header("Content-Type", "application/json")
        .body(owntracks_location(unix(0)).to_string())
        .send()
        .await
        .expect("POST /ingest/owntracks");
    response.status().as_u16()
}

#[tokio::test]
async fn a_familys_phones_publish_as_themselves_and_read_the_family_and_no_one_else() {
    let path = crate::test_app::tokens_file("family", FAMILY);
    let app = spawn_app_with(|c| {
        c.tokens_file = Some(path);
        c.protect = vec!["publish".into(), "subscribe".into()];
    })
    .await;
    let mut alice_reads = app.subscribe("/ws?access_token=alice-family").await;

    for (login, password) in [("carol", "carol-own"), ("bob", "bob-family")] {
        assert_eq!(owntracks_as(&app, login, password, login).await, 200);
    }
    assert_eq!(
        owntracks_as(&app, "bob", "bob-family", "alice").await,
        403,
        "Bob's phone may not publish as Alice's"
    );
    assert_eq!(
        owntracks_as(&app, "alice", "alice-family", "alice").await,
        200
    );

    // Alice's own phone reads Bob's position and then her own; Carol's,
    // published first, never reaches it.
    assert_eq!(alice_reads.next_json().await["tracker"], "bob/phone");
    assert_eq!(alice_reads.next_json().await["tracker"], "alice/phone");

    let latest = |token: &'static str, query: &'static str| {
        app.http
            .get(app.url(&format!("/longlat/latest{query}")))
            .bearer_auth(token)
            .send()
    };
    let family_latest: Value = latest("bob-family", "")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(family_latest["tracker"], "alice/phone");
    let carols = latest("alice-family", "?tracker=carol/phone")
        .await
        .unwrap();
    assert_eq!(
        carols.status(),
        403,
        "the neighbour's phone is outside the family's scope"
    );
    let own: Value = latest("carol-own", "").await.unwrap().json().await.unwrap();
    assert_eq!(own["tracker"], "carol/phone", "Carol reads only her own");
}
