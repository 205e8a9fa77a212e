//! `/zones` as an operator and a reader meet it: created, replaced, listed
//! and deleted with plain answers; a bad zone refused by the path of what
//! is wrong and changing nothing; only a publisher for every tracker may
//! change zones; a scoped reader sees only its own trackers inside a zone
//! and only their zone events; a deleted zone forgets its occupants
//! without `leave` events; `--max-zones` refuses one more.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::test_app::{TestApp, spawn_app, spawn_app_with, tokens_file};
use crate::zones::{Crossed, crossed, crossings_until, depot, refused_handshake, ws_until, yard};

/// `method` on `/zones/{name}` with `body` and `token`, if given: the status
/// and the JSON body (null when there is none).
async fn zone_request(
    app: &TestApp,
    method: reqwest::Method,
    name: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(&format!("/zones/{name}")));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("a /zones request");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}")),
    };
    (status, body)
}

async fn put(app: &TestApp, name: &str, shape: &Value, token: Option<&str>) -> (StatusCode, Value) {
    zone_request(
        app,
        reqwest::Method::PUT,
        name,
        Some(&shape.to_string()),
        token,
    )
    .await
}

async fn delete(app: &TestApp, name: &str, token: Option<&str>) -> (StatusCode, Value) {
    zone_request(app, reqwest::Method::DELETE, name, None, token).await
}

#[tokio::test]
async fn a_zone_is_created_replaced_listed_and_deleted_and_a_bad_one_is_refused_by_its_path() {
    let app = spawn_app().await;
    let (status, created) = put(&app, "depot", &depot(), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let wider = json!({"circle": {"longitude": 0.05, "latitude": 0.0, "radius": 300.0}});
    let (status, replaced) = put(&app, "depot", &wider, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["circle"]["radius"], 200.0);
    assert_eq!(
        replaced,
        json!({"name": "depot", "circle": wider["circle"]})
    );
    assert_eq!(app.get_json("/zones").await, json!([replaced]));
    assert_eq!(app.get_json("/zones/depot").await, replaced);

    let mut unclosed = yard();
    unclosed["polygon"]["coordinates"][0]
        .as_array_mut()
        .unwrap()
        .pop();
    let (status, problem) = put(&app, "yard", &unclosed, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "invalid-zone");
    assert_eq!(problem["field"], "polygon.coordinates[0]");
    let (status, problem) =
        zone_request(&app, reqwest::Method::PUT, "yard", Some("{circle"), None).await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::BAD_REQUEST, &json!("malformed-body"))
    );
    let both = json!({"circle": depot()["circle"], "polygon": yard()["polygon"]});
    let far = json!({"circle": {"longitude": 0.05, "latitude": 0.0, "radius": 2e6}});
    for (name, shape, status, code, field) in [
        ("yard", &both, 422, "invalid-zone", "circle"),
        ("depot", &far, 422, "invalid-zone", "circle.radius"),
        ("a%20yard", &yard(), 400, "invalid-parameter", "name"),
    ] {
        let (got, problem) = put(&app, name, shape, None).await;
        assert_eq!(got.as_u16(), status, "{name}: {problem}");
        assert_eq!(
            (&problem["code"], &problem["field"]),
            (&json!(code), &json!(field))
        );
    }
    assert_eq!(
        app.get_json("/zones").await,
        json!([replaced]),
        "nothing changed"
    );

    assert_eq!(delete(&app, "depot", None).await.0, StatusCode::NO_CONTENT);
    let (status, problem) = delete(&app, "depot", None).await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::NOT_FOUND, &json!("not-found"))
    );
    let (status, _) = zone_request(&app, reqwest::Method::GET, "depot", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.get_json("/zones").await, json!([]));
}

const TOKENS: &str = "\
admin          publish
bus-1-only     publish    trackers=bus-1
viewer         subscribe
alice-viewer   subscribe  read=alice/*
";

/// Posts a position for `tracker` at `longitude`, on the equator, as `token`.
async fn publish_as(app: &TestApp, token: &str, longitude: f64, tracker: &str) {
    let body = json!({"longitude": longitude, "latitude": 0.0, "tracker": tracker});
    let response = app
        .http
        .post(app.url("/longlat"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn only_a_publisher_for_every_tracker_changes_zones_and_a_scoped_reader_sees_only_its_trackers_in_them()
 {
    let path = tokens_file("zones", TOKENS);
    let app = spawn_app_with(|c| {
        c.tokens_file = Some(path);
        c.protect = vec!["publish".into()];
    })
    .await;
    for (token, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (Some("bus-1-only"), StatusCode::FORBIDDEN, "forbidden"),
        (Some("viewer"), StatusCode::FORBIDDEN, "forbidden"),
    ] {
        let (got, problem) = put(&app, "depot", &depot(), token).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "PUT as {token:?}"
        );
        let (got, _) = delete(&app, "depot", token).await;
        assert_eq!(got, status, "DELETE as {token:?}");
    }
    let (status, _) = zone_request(&app, reqwest::Method::GET, "depot", None, Some("viewer")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    assert_eq!(
        put(&app, "depot", &depot(), Some("admin")).await.0,
        StatusCode::CREATED
    );
    let (status, zone) =
        zone_request(&app, reqwest::Method::GET, "depot", None, Some("viewer")).await;
    assert_eq!((status, &zone["name"]), (StatusCode::OK, &json!("depot")));

    let mut alice_ws = app.subscribe("/ws?zone=*&access_token=alice-viewer").await;
    publish_as(&app, "admin", 0.05, "bob/phone").await;
    publish_as(&app, "admin", 0.05, "alice/phone").await;
    publish_as(&app, "admin", 0.05, "bob/watch").await;
    publish_as(&app, "admin", 0.06, "bob/watch").await;
    publish_as(&app, "admin", 0.05, "alice/watch").await;
    publish_as(&app, "admin", 0.06, "alice/watch").await;
    publish_as(&app, "admin", 0.05, "alice/finish").await;
    let seen: Vec<(String, String)> = ws_until(&mut alice_ws, "alice/finish")
        .await
        .iter()
        .map(crossed)
        .map(|(kind, _, tracker, _): Crossed| (kind, tracker))
        .collect();
    let expected = [
        ("enter", "alice/phone"),
        ("enter", "alice/watch"),
        ("leave", "alice/watch"),
    ];
    assert_eq!(seen, expected.map(|(k, t)| (k.to_owned(), t.to_owned())));

    let inside = |token: &'static str| {
        let request = app
            .http
            .get(app.url("/zones/depot/inside"))
            .bearer_auth(token);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            let trackers = body["inside"].as_array().unwrap().iter();
            trackers
                .map(|o| o["tracker"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        inside("alice-viewer").await,
        ["alice/finish", "alice/phone"]
    );
    let everyone = ["alice/finish", "alice/phone", "bob/phone"];
    assert_eq!(inside("viewer").await, everyone);
    let path = "/ws?zone=*&tracker=bob/phone&access_token=alice-viewer";
    let (status, problem) = refused_handshake(&app, path).await;
    assert_eq!(
        (status, &problem["code"]),
        (403, &json!("forbidden")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_deleted_zone_forgets_who_was_inside_without_leave_events_and_max_zones_refuses_one_more()
{
    let app = spawn_app_with(|c| c.max_zones = 1).await;
    assert_eq!(
        put(&app, "depot", &depot(), None).await.0,
        StatusCode::CREATED
    );
    let (status, problem) = put(&app, "yard", &yard(), None).await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::CONFLICT, &json!("conflict"))
    );
    assert_eq!(
        put(&app, "depot", &depot(), None).await.0,
        StatusCode::OK,
        "replacing is not one more"
    );
    let (status, _) = zone_request(&app, reqwest::Method::GET, "yard", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut ws = app.subscribe("/ws?zone=*").await;
    let entered = app.publish(0.05, 0.0, Some("bus-1")).await;
    assert_eq!(
        app.get_json("/zones/depot/inside").await["inside"][0]["tracker"],
        "bus-1"
    );
    assert_eq!(delete(&app, "depot", None).await.0, StatusCode::NO_CONTENT);
    app.publish(0.06, 0.0, Some("bus-1")).await;
    assert_eq!(
        put(&app, "depot", &depot(), None).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.get_json("/zones/depot/inside").await,
        json!({"zone": "depot", "inside": []})
    );
    let again = app.publish(0.05, 0.0, Some("bus-1")).await;
    app.publish(0.05, 0.0, Some("finish")).await;

    let seen: Vec<Crossed> = crossings_until(&mut ws, "finish").await;
    let enter = |position: &Value| {
        let id = position["id"].as_str().unwrap().to_owned();
        (
            "enter".to_owned(),
            "depot".to_owned(),
            "bus-1".to_owned(),
            id,
        )
    };
    assert_eq!(
        seen,
        [enter(&entered), enter(&again)],
        "no leave in between"
    );
}

/// `GET path`: the zone names listed and the `Link` header's next page, if
/// any (its path and query).
async fn listed(app: &TestApp, path: &str) -> (Vec<String>, Option<String>) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let next = response.headers().get("link").map(|link| {
        let link = link.to_str().unwrap();
        let target = link
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix(">; rel=\"next\""));
        target
            .unwrap_or_else(|| panic!("GET {path}: Link {link}"))
            .to_owned()
    });
    let zones: Vec<Value> = response.json().await.unwrap();
    let names = zones.iter().map(|z| z["name"].as_str().unwrap().to_owned());
    (names.collect(), next)
}

#[tokio::test]
async fn zones_are_listed_within_a_box_page_by_page_by_their_next_links() {
    let app = spawn_app().await;
    // Thirty zones along a street in Stockholm, put out of name order; one
    // in Gothenburg; one on the antimeridian.
    let mut stockholm = Vec::new();
    for i in (0..30).rev() {
        let name = format!("stop-{i:02}");
        let circle = json!({"circle": {"longitude": 18.0 + f64::from(i) * 0.01, "latitude": 59.33, "radius": 100}});
        assert_eq!(put(&app, &name, &circle, None).await.0, StatusCode::CREATED);
        stockholm.push(name);
    }
    stockholm.sort();
    let far = [
        (
            "gothenburg",
            json!({"circle": {"longitude": 11.97, "latitude": 57.70, "radius": 500}}),
        ),
        (
            "dateline",
            json!({"circle": {"longitude": 179.9999, "latitude": -17.0, "radius": 1000}}),
        ),
    ];
    for (name, shape) in &far {
        assert_eq!(put(&app, name, shape, None).await.0, StatusCode::CREATED);
    }

    let (all, next) = listed(&app, "/zones").await;
    let mut every = [&stockholm[..], &["dateline".into(), "gothenburg".into()]].concat();
    every.sort();
    assert_eq!((all, next), (every.clone(), None));
    let city = "bbox=17.9,59.2,18.5,59.4";
    assert_eq!(
        listed(&app, &format!("/zones?{city}")).await,
        (stockholm.clone(), None)
    );
    // A box across the antimeridian (west edge east of the east edge).
    let (across, _) = listed(&app, "/zones?bbox=179.5,-18,-179.5,-16").await;
    assert_eq!(across, ["dateline"]);
    let (nowhere, _) = listed(&app, "/zones?bbox=0,0,1,1").await;
    assert!(nowhere.is_empty());

    // Seven at a time within the box: five pages, each linking the next
    // with the same box and limit, the last linking none.
    let mut paged = Vec::new();
    let mut path = Some(format!("/zones?{city}&limit=7"));
    let mut pages = 0;
    while let Some(current) = path {
        let (names, next) = listed(&app, &current).await;
        assert!(names.len() <= 7, "{current}: {names:?}");
        if let Some(next) = &next {
            assert!(
                next.contains("bbox=17.9,59.2,18.5,59.4") && next.contains("limit=7"),
                "{next}"
            );
        }
        paged.extend(names);
        path = next;
        pages += 1;
    }
    assert_eq!((paged, pages), (stockholm.clone(), 5));
    // Without a box, a page starts after the name given.
    let (page, next) = listed(&app, "/zones?after=stop-27&limit=2").await;
    assert_eq!(page, ["stop-28", "stop-29"]);
    assert_eq!(next, None, "nothing follows the last zone");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("after=a%20b", "after"),
        ("bbox=18,59,18.5", "bbox"),
        ("bbox=18,59,181,60", "bbox"),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/zones?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            (&problem["code"], &problem["field"]),
            (&json!("invalid-parameter"), &json!(field)),
            "{query}"
        );
    }
}
