//! GraphQL documents built to cost the server: fragments that double at each
//! level, cycles, oversized and overnested text, over HTTP (`POST`, `GET`)
//! and both WebSocket protocols. Each is refused within a time budget, and
//! the server goes on answering everyone else meanwhile. And the
//! GraphQL-over-HTTP specification's own audit suite.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::node_client::NodeClient;
use crate::test_app::{TestApp, spawn_app};

/// How long refusing a hostile document may take. A debug build refuses
/// each in a few milliseconds; before the documents were bounded, the
/// smallest of them kept a worker busy for seconds and the largest for ever.
const BUDGET: Duration = Duration::from_secs(2);

/// `levels` fragments on `on`, each spreading the next twice (its cost
/// doubles with each level when fragments are expanded), the last one
/// selecting `leaf`; `root` is the operation, which spreads `...F0`.
pub fn doubling(root: &str, on: &str, levels: usize, leaf: &str) -> String {
    let mut document = String::from(root);
    for level in 0..levels {
        let next = level + 1;
        document.push_str(&format!(
            " fragment F{level} on {on} {{ ...F{next} ...F{next} }}"
        ));
    }
    document.push_str(&format!(" fragment F{levels} on {on} {{ {leaf} }}"));
    document
}

/// The hostile shapes, each a query.
fn hostile_queries() -> Vec<(&'static str, String)> {
    let mut mixed = String::from("query { ...F0 }");
    for level in 0..30 {
        let next = level + 1;
        mixed.push_str(&format!(
            " fragment F{level} on Query {{ a{level}: __typename ... on Query {{ ...F{next} }} ...F{next} }}"
        ));
    }
    mixed.push_str(" fragment F30 on Query { latest { id } }");
    vec![
        (
            "fragments on the root",
            doubling("query { ...F0 }", "Query", 30, "latest { id }"),
        ),
        (
            "fragments on a nested type",
            doubling("query { latest { ...F0 } }", "PositionEvent", 30, "id"),
        ),
        ("fragments mixed with aliases and inline fragments", mixed),
        (
            "a fragment cycle",
            "query { ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }"
                .into(),
        ),
    ]
}

/// The first error's `extensions.code` of a GraphQL answer.
fn first_code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

async fn post(app: &TestApp, query: &str, accept: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("accept", accept)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn documents_whose_fragments_double_at_each_level_are_refused_at_once_over_http() {
    let app = spawn_app().await;
    for (shape, query) in hostile_queries() {
        let started = Instant::now();
        let (status, answer) = post(&app, &query, "application/json").await;
        assert_eq!(status, 200, "{shape}: {answer}");
        assert_eq!(first_code(&answer), "document-refused", "{shape}: {answer}");
        assert!(answer.get("data").is_none(), "{shape}: {answer}");

        let response = app
            .http
            .get(app.url(&graphql_get(&query)))
            .header("accept", "application/graphql-response+json")
            .send()
            .await
            .expect("GET /graphql");
        assert_eq!(response.status(), 400, "{shape} over GET");
        let answer: Value = response.json().await.expect("a GraphQL answer");
        assert_eq!(first_code(&answer), "document-refused", "{shape}: {answer}");
        let took = started.elapsed();
        assert!(took < BUDGET, "{shape}: refusing it twice took {took:?}");
    }
}

#[tokio::test]
async fn while_hostile_documents_arrive_every_other_client_is_served() {
    let app = spawn_app().await;
    let attacks = hostile_queries().into_iter().map(|(_, query)| {
        let app = &app;
        async move { post(app, &query, "application/json").await }
    });
    let health = async {
        let started = Instant::now();
        let response = app.http.get(app.url("/healthz")).send().await.unwrap();
        (response.status(), started.elapsed())
    };
    let (answers, (health, took)) = tokio::join!(futures::future::join_all(attacks), health);
    assert_eq!(health, 200);
    assert!(took < BUDGET, "/healthz took {took:?} beside the attacks");
    for (status, answer) in answers {
        assert_eq!(status, 200);
        assert_eq!(first_code(&answer), "document-refused", "{answer}");
    }
    let published = app.publish(18.06, 59.33, None).await;
    assert!(published["id"].is_string());
}

#[tokio::test]
async fn hostile_subscriptions_are_refused_at_once_over_both_websocket_protocols() {
    let app = spawn_app().await;
    let subscription = doubling(
        "subscription { positions { ...F0 } }",
        "PositionEvent",
        30,
        "id",
    );
    for (protocol, init, subscribe) in [
        ("graphql-transport-ws", "connection_init", "subscribe"),
        ("graphql-ws", "connection_init", "start"),
    ] {
        let init = json!({ "type": init }).to_string();
        let subscribe =
            json!({ "type": subscribe, "id": "1", "payload": { "query": subscription } })
                .to_string();
        let started = Instant::now();
        let mut client = app.graphql_raw(protocol, &[&init, "wait", &subscribe]);
        assert_eq!(
            client.next_with("message").await["type"],
            "connection_ack",
            "{protocol}"
        );
        let error = client.next_with("message").await;
        let took = started.elapsed();
        assert_eq!(error["type"], "error", "{protocol}: {error}");
        assert_eq!(error["id"], "1", "{protocol}: {error}");
        assert_eq!(
            error["payload"][0]["extensions"]["code"], "document-refused",
            "{protocol}: {error}"
        );
        // Node's start-up is inside the budget too.
        assert!(took < BUDGET * 2, "{protocol}: refused after {took:?}");
    }
}

#[tokio::test]
async fn documents_over_the_size_token_or_nesting_limit_are_refused_before_parsing() {
    let app = spawn_app().await;
    let long_comment = format!("{{ latest {{ id }} }} #{}", "x".repeat(13 * 1024));
    let many_tokens = format!("{{ latest {{ {} }} }}", "a ".repeat(4_100));
    let deep = format!("{{ latest{} }}", "{ id ".repeat(70) + &"}".repeat(70));
    for (limit, query, said) in [
        ("size", long_comment, "larger than"),
        ("tokens", many_tokens, "tokens"),
        ("nesting", deep, "nests brackets"),
    ] {
        let (status, answer) = post(&app, &query, "application/graphql-response+json").await;
        assert_eq!(status, 400, "{limit}: {answer}");
        assert_eq!(first_code(&answer), "document-refused", "{limit}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(said), "{limit}: {answer}");
    }
}

#[tokio::test]
async fn a_subscription_with_two_root_fields_is_refused() {
    let app = spawn_app().await;
    let init = json!({ "type": "connection_init" }).to_string();
    let subscribe = json!({ "type": "subscribe", "id": "two", "payload": {
        "query": "subscription { a: positions { id } b: positions { id } }"
    }})
    .to_string();
    let mut client = app.graphql_raw("graphql-transport-ws", &[&init, "wait", &subscribe]);
    assert_eq!(client.next_with("message").await["type"], "connection_ack");
    let error = client.next_with("message").await;
    assert_eq!(error["type"], "error", "{error}");
    let message = error["payload"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("exactly one root field"), "{error}");
}

#[tokio::test]
async fn a_request_error_is_a_400_without_data_only_for_clients_that_accept_graphql_responses() {
    let app = spawn_app().await;
    for (query, what) in [
        ("{ latest { id }", "a syntax error"),
        ("{ latest { nosuchfield } }", "a validation error"),
    ] {
        let (status, answer) = post(&app, query, "application/graphql-response+json").await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer.get("data").is_none(), "{what}: {answer}");
        assert!(answer["errors"][0]["message"].is_string(), "{what}");

        let (status, answer) = post(&app, query, "application/json").await;
        assert_eq!(status, 200, "{what}: {answer}");
        assert!(answer["errors"][0]["message"].is_string(), "{what}");
    }
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body(r#"{"query": "{ latest { id } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn every_graphql_over_http_audit_passes() {
    let app = spawn_app().await;
    let url = app.url("/graphql");
    let mut audit = NodeClient::start("graphql-http-audit.mjs", &[&url]);
    let report = audit.next_with("audits").await;
    let audits = report.as_array().expect("a list of audits");
    assert!(audits.len() >= 40, "{report}");
    let failed: Vec<&Value> = audits.iter().filter(|a| a["status"] != "ok").collect();
    assert!(failed.is_empty(), "audits not ok: {failed:#?}");
}

/// The path of a GraphQL `GET` for `query`.
pub fn graphql_get(query: &str) -> String {
    let params = serde_urlencoded::to_string([("query", query)]).expect("a query string");
    format!("/graphql?{params}")
}
