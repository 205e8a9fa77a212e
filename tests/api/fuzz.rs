//! Property-based fuzzing against the real server: generated publish bodies
//! over HTTP, and generated messages over /ws and the graphql-ws socket.
//! Whatever comes in, the answer is one of the documented ones, nothing
//! rejected is published, and the server keeps serving.
//!
//! `LONGLAT_FUZZ_CASES` sets the number of inputs per property (default
//! 400); each property prints how many it tried.

use std::cell::Cell;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::test_app::{TestApp, spawn_app_with, within};

fn cases() -> u32 {
    std::env::var("LONGLAT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

/// A server on its own runtime, shared by every generated case.
fn server() -> (Runtime, TestApp) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let app = runtime.block_on(spawn_app_with(|c| c.max_body_bytes = 512));
    (runtime, app)
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("longitude".to_owned()),
                    Just("latitude".to_owned()),
                    Just("tracker".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A position-shaped input and whether the server must accept it.
fn position() -> impl Strategy<Value = (Value, bool)> {
    let coordinate = prop_oneof![-200.0..200.0f64, any::<f64>(), Just(180.0), Just(-90.0)];
    let tracker = prop::option::of(prop_oneof!["[A-Za-z0-9._:/-]{1,64}", "[ -~]{0,70}"]);
    (coordinate.clone(), coordinate, tracker).prop_map(|(longitude, latitude, tracker)| {
        let valid = longitude.is_finite()
            && latitude.is_finite()
            && (-180.0..=180.0).contains(&longitude)
            && (-90.0..=90.0).contains(&latitude)
            && tracker.as_deref().is_none_or(|t| {
                (1..=64).contains(&t.len())
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".:_-/".contains(&b))
            });
        let mut body = json!({"longitude": longitude, "latitude": latitude});
        if let Some(tracker) = tracker {
            body["tracker"] = tracker.into();
        }
        (body, valid)
    })
}

#[derive(Debug, Clone)]
enum Body {
    /// Bytes and a declared media type; the answer is anything documented.
    Raw(Vec<u8>, Option<String>),
    /// A position sent as JSON; accepted exactly when valid.
    Position(Value, bool),
}

fn body() -> impl Strategy<Value = Body> {
    let media_type = prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("text/plain".to_owned()),
        Just("application/geo+json; charset=utf-8".to_owned()),
        "[a-z/+;= -]{0,30}",
    ]);
    prop_oneof![
        (
            prop::collection::vec(any::<u8>(), 0..600),
            media_type.clone()
        )
            .prop_map(|(bytes, t)| Body::Raw(bytes, t)),
        (any_json(), media_type.clone())
            .prop_map(|(v, t)| Body::Raw(v.to_string().into_bytes(), t)),
        (
            "[a-z=&.0-9-]{0,60}",
            Just(Some("application/x-www-form-urlencoded".to_owned()))
        )
            .prop_map(|(form, t)| Body::Raw(form.into_bytes(), t)),
        position().prop_map(|(v, valid)| Body::Position(v, valid)),
    ]
}

#[test]
fn generated_publish_bodies_get_documented_answers_and_only_valid_ones_are_stored() {
    let (runtime, app) = server();
    let accepted = Cell::new(0usize);
    let tried = Cell::new(0usize);
    let result = runner().run(&body(), |body| {
        tried.set(tried.get() + 1);
        let (status, answer) = runtime.block_on(async {
            let mut request = app.http.post(app.url("/longlat"));
            request = match &body {
                Body::Raw(bytes, media_type) => {
                    let request = request.body(bytes.clone());
                    match media_type {
                        Some(t) => request.header("content-type", t),
                        None => request,
                    }
                }
                Body::Position(value, _) => request.json(value),
            };
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let media_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let answer: Value = response.json().await.expect("a JSON answer");
            if status != 201 {
                assert_eq!(media_type, "application/problem+json");
            }
            (status, answer)
        });
        prop_assert!(
            [201, 400, 413, 415, 422].contains(&status),
            "status {status}: {answer}"
        );
        if status == 201 {
            // A JSON array is a batch: each of its positions is stored.
            accepted.set(accepted.get() + answer.as_array().map_or(1, Vec::len));
        } else {
            prop_assert!(answer["code"].is_string(), "{answer}");
        }
        if let Body::Position(value, valid) = &body {
            prop_assert_eq!(status == 201, *valid, "{} -> {} {}", value, status, answer);
            if *valid {
                prop_assert_eq!(&answer["longitude"], &value["longitude"]);
                prop_assert_eq!(&answer["latitude"], &value["latitude"]);
            }
        }
        Ok(())
    });
    eprintln!(
        "publish fuzz: {} bodies tried, {} accepted",
        tried.get(),
        accepted.get()
    );
    result.unwrap();
    // Nothing rejected was published.
    let stored = runtime.block_on(async {
        let mut count = 0;
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(id) => format!("/longlat/history?limit=1000&after={id}"),
                None => "/longlat/history?limit=1000".to_owned(),
            };
            let page = app.get_json(&path).await;
            let events = page["events"].as_array().unwrap().len();
            if events == 0 {
                return count;
            }
            count += events;
            after = page["next"].as_str().map(str::to_owned);
        }
    });
    assert_eq!(stored, accepted.get());
}

/// A client message: well-formed protocol messages with generated parts,
/// arbitrary JSON, or arbitrary text.
fn graphql_ws_message() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("connection_init"),
        Just("subscribe"),
        Just("complete"),
        Just("ping"),
        Just("pong"),
        Just("start"),
        Just("next"),
        Just("bogus"),
    ];
    let query = prop_oneof![
        Just("subscription { positions { id } }".to_owned()),
        Just("{ latest { id } }".to_owned()),
        Just("mutation { publish(input: {longitude: 1, latitude: 2}) { id } }".to_owned()),
        "[ -~]{0,40}",
    ];
    prop_oneof![
        (kind, prop::option::of("[0-9a-z]{0,4}"), query).prop_map(|(kind, id, query)| {
            json!({"type": kind, "id": id, "payload": {"query": query}}).to_string()
        }),
        any_json().prop_map(|v| v.to_string()),
        "\\PC{0,60}",
    ]
}

/// Close codes a misbehaving graphql-transport-ws client may get.
const PROTOCOL_CLOSES: [u16; 4] = [4400, 4401, 4409, 4429];

#[test]
fn generated_graphql_ws_messages_get_protocol_answers_and_the_server_keeps_serving() {
    let (runtime, app) = server();
    let tried = Cell::new(0usize);
    let closed = Cell::new(0usize);
    let strategy = (
        any::<bool>(),
        prop::collection::vec(graphql_ws_message(), 1..4),
    );
    let result = runner().run(&strategy, |(init_first, messages)| {
        tried.set(tried.get() + 1);
        let outcome = runtime.block_on(async {
            let mut request = app.ws_url("/graphql").into_client_request().unwrap();
            request.headers_mut().insert(
                "sec-websocket-protocol",
                "graphql-transport-ws".parse().unwrap(),
            );
            let (mut socket, _) = within("a handshake", tokio_tungstenite::connect_async(request))
                .await
                .expect("a WebSocket");
            if init_first {
                socket
                    .send(Message::text(r#"{"type":"connection_init"}"#))
                    .await
                    .unwrap();
            }
            for message in &messages {
                if socket.send(Message::text(message.clone())).await.is_err() {
                    break;
                }
            }
            // Read what comes back for a moment: a close, or protocol messages.
            let mut close = None;
            while let Ok(Some(frame)) =
                tokio::time::timeout(Duration::from_millis(50), socket.next()).await
            {
                match frame {
                    Ok(Message::Close(frame)) => {
                        close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                        break;
                    }
                    Ok(Message::Text(text)) => {
                        let message: Value =
                            serde_json::from_str(&text).expect("server messages are JSON");
                        let kind = message["type"].as_str().unwrap_or_default().to_owned();
                        assert!(
                            ["connection_ack", "next", "error", "complete", "pong"]
                                .contains(&kind.as_str()),
                            "unexpected {message}"
                        );
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            close
        });
        if let Some(code) = outcome {
            closed.set(closed.get() + 1);
            prop_assert!(
                PROTOCOL_CLOSES.contains(&code),
                "close {code} for {messages:?}"
            );
        }
        Ok(())
    });
    eprintln!(
        "graphql-ws fuzz: {} message sequences tried, {} closed by the server",
        tried.get(),
        closed.get()
    );
    result.unwrap();
    // The server still serves: a well-behaved client is acknowledged.
    runtime.block_on(async {
        let health = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let mut client =
            app.graphql_raw("graphql-transport-ws", &[r#"{"type":"connection_init"}"#]);
        assert_eq!(
            client.next_with("message").await,
            json!({ "type": "connection_ack" })
        );
    });
}

#[test]
fn generated_frames_on_the_read_only_websocket_close_it_with_1003_or_are_answered() {
    let (runtime, app) = server();
    let tried = Cell::new(0usize);
    let frame = prop_oneof![
        "\\PC{0,40}".prop_map(Message::text),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Message::binary),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| Message::Ping(b.into())),
    ];
    let result = runner().run(&frame, |frame| {
        tried.set(tried.get() + 1);
        let data = matches!(frame, Message::Text(_) | Message::Binary(_));
        let answer = runtime.block_on(async {
            let mut client = app.subscribe("/ws").await;
            client.send(frame).await;
            within("an answer", client.socket.next()).await
        });
        match answer {
            Some(Ok(Message::Close(Some(close)))) => {
                prop_assert!(data);
                prop_assert_eq!(u16::from(close.code), 1003);
            }
            Some(Ok(Message::Pong(_))) => prop_assert!(!data),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        Ok(())
    });
    eprintln!("/ws fuzz: {} frames tried", tried.get());
    result.unwrap();
}
