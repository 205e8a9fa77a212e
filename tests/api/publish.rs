//! Publishing over REST: what a careful client gets back, and what a careless one is told.

use serde_json::Value;

use crate::test_app::{spawn_app, spawn_app_with, within};

#[tokio::test]
async fn a_published_position_is_answered_201_with_the_stored_event_and_its_location() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/longlat"))
        .json(
            &serde_json::json!({"longitude": 18.06324, "latitude": 59.334591, "tracker": "bus-42"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["longitude"], 18.06324);
    assert_eq!(event["latitude"], 59.334591);
    assert_eq!(event["tracker"], "bus-42");
    let id = event["id"].as_str().expect("an id");
    assert_eq!(location, format!("/longlat/{id}"));
    let received_at = event["receivedAt"].as_str().expect("receivedAt");
    assert!(received_at.ends_with('Z'), "UTC, RFC 3339: {received_at}");
    time::OffsetDateTime::parse(received_at, &time::format_description::well_known::Rfc3339)
        .expect("receivedAt is RFC 3339");

    let fetched: Value = app.get_json(&location).await;
    assert_eq!(fetched, event, "the Location serves the same event");
}

#[tokio::test]
async fn ids_increase_with_every_publish() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let event = app.publish(f64::from(i), 0.0, None).await;
        ids.push(
            event["id"]
                .as_str()
                .unwrap()
                .parse::<longlat::model::EventId>()
                .unwrap(),
        );
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids are ordered: {ids:?}"
    );
}

#[tokio::test]
async fn an_html_form_body_is_read_as_a_form() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/longlat"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("longitude=18.06324&latitude=59.334591&tracker=phone")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let event: Value = response.json().await.unwrap();
    assert_eq!(
        (event["longitude"].as_f64(), event["tracker"].as_str()),
        (Some(18.06324), Some("phone"))
    );
}

struct BadInput {
    what: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    field: Option<&'static str>,
    detail_mentions: &'static str,
}

fn bad(
    what: &'static str,
    body: &str,
    status: u16,
    field: Option<&'static str>,
    detail_mentions: &'static str,
) -> BadInput {
    BadInput {
        what,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        field,
        detail_mentions,
    }
}

fn bad_inputs() -> Vec<BadInput> {
    let long_tracker = format!(
        r#"{{"longitude": 1, "latitude": 1, "tracker": "{}"}}"#,
        "t".repeat(65)
    );
    let mut cases = vec![
        bad("not JSON", "longitude is 18", 400, None, "not valid JSON"),
        bad("an empty body", "", 400, None, "empty"),
        bad(
            "a JSON array of numbers",
            "[18.06, 59.33]",
            422,
            Some("[0]"),
            "not an object",
        ),
        bad(
            "a JSON string",
            r#""18.06 59.33""#,
            422,
            None,
            "not an object",
        ),
        bad(
            "a missing field",
            r#"{"longitude": 18.06}"#,
            422,
            Some("latitude"),
            "latitude is missing",
        ),
        bad(
            "a wrong type",
            r#"{"longitude": "east", "latitude": 1}"#,
            422,
            Some("longitude"),
            "longitude must be a number from -180 to 180, got a string",
        ),
        bad(
            "a longitude out of range",
            r#"{"longitude": 180.5, "latitude": 1}"#,
            422,
            Some("longitude"),
            "-180 to 180",
        ),
        bad(
            "a latitude out of range",
            r#"{"longitude": 1, "latitude": -91}"#,
            422,
            Some("latitude"),
            "-90 to 90",
        ),
        bad(
            "1e999",
            r#"{"longitude": 1e999, "latitude": 1}"#,
            400,
            Some("longitude"),
            "out of range",
        ),
        bad(
            "a tracker with a space",
            r#"{"longitude": 1, "latitude": 1, "tracker": "my phone"}"#,
            422,
            Some("tracker"),
            "A-Z a-z 0-9",
        ),
        bad(
            "an unknown field",
            r#"{"longitude": 1, "latitude": 1, "elevation": 3}"#,
            422,
            Some("elevation"),
            "elevation is not a field of a position",
        ),
        bad(
            "trailing data",
            r#"{"longitude": 1, "latitude": 1} {}"#,
            400,
            None,
            "goes on after its JSON object",
        ),
        bad(
            "null coordinates",
            r#"{"longitude": null, "latitude": 1}"#,
            422,
            Some("longitude"),
            "null",
        ),
    ];
    cases.push(BadInput {
        what: "an over-long tracker",
        body: long_tracker.into_bytes(),
        ..bad("", "", 422, Some("tracker"), "1 to 64 characters")
    });
    cases.push(BadInput {
        what: "a body over 16 KiB",
        body: format!(
            r#"{{"longitude": 1, "latitude": 1, "tracker": "{}"}}"#,
            "t".repeat(17 * 1024)
        )
        .into_bytes(),
        ..bad("", "", 413, None, "16384-byte limit")
    });
    cases.extend(bad_forms());
    cases.push(BadInput {
        what: "an unsupported media type",
        content_type: Some("text/csv"),
        ..bad("", "18.06,59.33", 415, None, "text/csv")
    });
    cases
}

/// Words of the parser or of Rust that a person sending a position should
/// never have to read.
const RUST_WORDS: [&str; 11] = [
    "f64",
    "f32",
    "i32",
    "u32",
    "u64",
    "struct",
    "enum",
    "invalid type",
    "expected ident",
    "`",
    "form body",
];

/// Bad form bodies: each names its field as a JSON body would.
fn bad_forms() -> Vec<BadInput> {
    let form = |what, body: &str, field, detail_mentions| BadInput {
        what,
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.as_bytes().to_vec(),
        status: 422,
        field: Some(field),
        detail_mentions,
    };
    vec![
        form(
            "a form with a word for a longitude",
            "longitude=east&latitude=1",
            "longitude",
            r#"longitude must be a number from -180 to 180, got "east""#,
        ),
        form(
            "a form without a latitude",
            "longitude=1",
            "latitude",
            "latitude is missing",
        ),
        form(
            "a form with an unknown field",
            "longitude=1&latitude=1&velocity=3",
            "velocity",
            "velocity is not a field of a position",
        ),
        form(
            "a form with an empty tracker",
            "longitude=1&latitude=1&tracker=",
            "tracker",
            "tracker must be 1 to 64 characters",
        ),
    ]
}

#[tokio::test]
async fn bad_input_gets_a_problem_document_naming_the_field_and_publishes_nothing() {
    let app = spawn_app().await;
    let mut watcher = app.subscribe("/ws").await;
    for case in bad_inputs() {
        let mut request = app.http.post(app.url("/longlat")).body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        let response = within(case.what, request.send()).await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{}",
            case.what
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], case.status, "{}", case.what);
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:longlat:problem:")
        );
        assert!(
            problem["title"].is_string() && problem["code"].is_string(),
            "{}",
            case.what
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(case.detail_mentions),
            "{}: detail {detail:?} lacks {:?}",
            case.what,
            case.detail_mentions
        );
        assert!(detail.len() < 400, "{}: detail is bounded", case.what);
        for jargon in RUST_WORDS {
            assert!(
                !detail.contains(jargon),
                "{}: detail {detail:?} speaks of {jargon:?}",
                case.what
            );
        }
        let field = problem["field"].as_str().unwrap_or("no field");
        assert!(
            !detail.contains(&format!("{field}: {field}")),
            "{}: detail {detail:?} names its field twice",
            case.what
        );
        match case.field {
            Some(field) => assert_eq!(problem["field"], field, "{}", case.what),
            None => assert!(problem.get("field").is_none(), "{}", case.what),
        }
    }
    // Nothing was published: the first event a subscriber sees is the next good one.
    let good = app.publish(18.06324, 59.334591, None).await;
    assert_eq!(watcher.next_json().await, good);
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn_app_with(|c| c.max_body_bytes = 64).await;
    let body = format!(
        r#"{{"longitude": 1, "latitude": 1, "tracker": "{}"}}"#,
        "t".repeat(40)
    );
    let response = app
        .http
        .post(app.url("/longlat"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_answered_with_problems() {
    let app = spawn_app().await;
    let missing = app.http.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let wrong_method = app.http.delete(app.url("/longlat")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    let unknown_event = app.http.get(app.url("/longlat/1-0")).send().await.unwrap();
    assert_eq!(unknown_event.status(), 404);
    let bad_id = app
        .http
        .get(app.url("/longlat/yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 400);
}
