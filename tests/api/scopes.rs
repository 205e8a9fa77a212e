//! Read scopes: who may see whom. Two readers with disjoint scopes and one
//! unrestricted reader ask for the same thing on every transport and each
//! sees exactly its own trackers; a scoped reader that lags is told nothing
//! about others' traffic; history, latest and events by id answer within
//! the scope; a JWT's `read` claim works like a token file's `read=`.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::sse::SseReader;
use crate::test_app::{Seen, TestApp, WsClient, spawn_app_with, within};

const TOKENS: &str = "\
fleet-a-reader  subscribe  read=fleet-a.*
fleet-b-reader  subscribe  read=fleet-b.*,bus-7
everyone        subscribe
";

/// The readers, each with the prefixes of what it may read (`None`: all).
const READERS: [(&str, Option<&[&str]>); 3] = [
    ("fleet-a-reader", Some(&["fleet-a."])),
    ("fleet-b-reader", Some(&["fleet-b.", "bus-7"])),
    ("everyone", None),
];

/// A server reading needs a token for, with the tokens above; publishing
/// needs none.
async fn app_with_scopes(name: &str, adjust: impl FnOnce(&mut longlat::config::Config)) -> TestApp {
    let path = crate::test_app::tokens_file(name, TOKENS);
    spawn_app_with(move |c| {
        c.tokens_file = Some(path);
        c.protect = vec!["subscribe".into()];
        adjust(c);
    })
    .await
}

/// Whether a reader allowed `scope` may see a position from `tracker`.
fn in_scope(scope: Option<&[&str]>, tracker: Option<&str>) -> bool {
    match (scope, tracker) {
        (None, _) => true,
        (Some(prefixes), Some(t)) => prefixes.iter().any(|p| t.starts_with(p)),
        (Some(_), None) => false,
    }
}

/// What a subscriber received next: an event's id and tracker, or a notice.
#[derive(Debug, PartialEq)]
enum Item {
    Event(String, Option<String>),
    Notice(Value),
}

impl Item {
    fn of_position(position: &Value) -> Self {
        match position["id"].as_str() {
            Some(id) => Self::Event(
                id.to_owned(),
                position["tracker"].as_str().map(str::to_owned),
            ),
            None => Self::Notice(position.clone()),
        }
    }
}

/// One subscriber, on any transport.
enum Reader {
    Ws(WsClient),
    Sse(SseReader),
    /// GraphQL over SSE, distinct connections mode.
    GraphqlSse(SseReader),
    /// A GraphQL WebSocket, and the type of its result messages (`next`,
    /// or the legacy protocol's `data`).
    Graphql(WsClient, &'static str),
}

const LIVE: &str = "subscription { positions { id tracker } }";

impl Reader {
    async fn ws(app: &TestApp, token: &str) -> Self {
        Self::Ws(app.subscribe(&format!("/ws?access_token={token}")).await)
    }

    async fn sse(app: &TestApp, token: &str) -> Self {
        let (_, reader) = SseReader::open(app, &format!("?access_token={token}"), None).await;
        Self::Sse(reader)
    }

    /// The live subscription over GraphQL over SSE, the token as a bearer.
    async fn graphql_sse(app: &TestApp, token: &str) -> Self {
        let request = app
            .http
            .post(app.url("/graphql"))
            .header("Accept", "text/event-stream")
            .bearer_auth(token)
            .json(&json!({ "query": LIVE }));
        let response = within("the GraphQL over SSE response", request.send())
            .await
            .expect("a GraphQL over SSE response");
        assert_eq!(response.status(), 200);
        Self::GraphqlSse(SseReader::of(response))
    }

    /// A GraphQL WebSocket speaking `subprotocol`, the token in its
    /// `connection_init`, running the live subscription.
    async fn graphql(app: &TestApp, token: &str, subprotocol: &str) -> Self {
        let mut request = app.ws_url("/graphql").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(subprotocol).unwrap(),
        );
        let (socket, _) = within(
            "the GraphQL WebSocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await
        .expect("a GraphQL WebSocket");
        let mut client = WsClient { socket };
        let legacy = subprotocol == "graphql-ws";
        let (start, next) = if legacy {
            ("start", "data")
        } else {
            ("subscribe", "next")
        };
        let init = json!({ "type": "connection_init", "payload": { "token": token } });
        client.send(Message::Text(init.to_string().into())).await;
        assert_eq!(client.next_json().await["type"], "connection_ack");
        let subscribe = json!({ "type": start, "id": "1", "payload": { "query": LIVE } });
        client
            .send(Message::Text(subscribe.to_string().into()))
            .await;
        Self::Graphql(client, next)
    }

    async fn next(&mut self) -> Item {
        match self {
            Self::Ws(client) => match client.next_seen().await {
                Seen::Json(frame) => Item::of_position(&frame),
                Seen::Closed(frame) => Item::Notice(json!({ "closed": format!("{frame:?}") })),
            },
            Self::Sse(reader) => {
                let (_, _, data) = reader.next_event().await;
                Item::of_position(&data)
            }
            Self::GraphqlSse(reader) => {
                let (event, _, data) = reader.next_event().await;
                if event != "next" || data["errors"].is_array() {
                    return Item::Notice(json!({ "event": event, "data": data }));
                }
                Item::of_position(&data["data"]["positions"])
            }
            Self::Graphql(client, next) => {
                let message = client.next_json().await;
                if message["type"] != *next || message["payload"]["errors"].is_array() {
                    return Item::Notice(message);
                }
                Item::of_position(&message["payload"]["data"]["positions"])
            }
        }
    }
}

/// Publishes a position from each scope and one without a tracker until
/// every GraphQL reader has a first result (the protocol does not say when
/// a subscription has started).
async fn until_live(app: &TestApp, readers: &mut [(usize, &'static str, Reader)]) {
    within("every subscription to go live", async {
        let mut live = vec![false; readers.len()];
        while live.contains(&false) {
            for tracker in [Some("fleet-a.warm-up"), Some("fleet-b.warm-up"), None] {
                app.publish(0.0, 0.0, tracker).await;
            }
            for (i, (_, _, reader)) in readers.iter_mut().enumerate() {
                if !live[i] && !matches!(reader, Reader::Graphql(..) | Reader::GraphqlSse(_)) {
                    live[i] = true;
                } else if !live[i] {
                    let first = tokio::time::timeout(Duration::from_millis(100), reader.next());
                    live[i] = first.await.is_ok();
                }
            }
        }
    })
    .await;
}

/// Publishes `count` positions cycling through the trackers (and none),
/// ending with one for each scope so every reader knows where the run ends.
async fn publish_run(app: &TestApp, count: usize) -> Vec<(String, Option<String>)> {
    let trackers = [
        Some("fleet-a.van-1"),
        Some("fleet-b.van-1"),
        Some("fleet-a.van-2"),
        None,
        Some("bus-7"),
        Some("other"),
    ];
    let mut published = Vec::new();
    let run = (0..count).map(|i| trackers[i % trackers.len()]);
    let ends = [Some("fleet-a.end"), Some("fleet-b.end")];
    for tracker in run.chain(ends) {
        let event = app.publish(1.0, 2.0, tracker).await;
        let id = event["id"].as_str().expect("an id").to_owned();
        published.push((id, tracker.map(str::to_owned)));
    }
    published
}

#[tokio::test]
async fn readers_with_disjoint_scopes_each_get_exactly_their_own_events_on_every_transport() {
    let app = app_with_scopes("every-transport", |_| {}).await;
    let mut readers = Vec::new();
    for (scope, (token, _)) in READERS.iter().enumerate() {
        readers.push((scope, "/ws", Reader::ws(&app, token).await));
        readers.push((scope, "/events", Reader::sse(&app, token).await));
        let transport_ws = Reader::graphql(&app, token, "graphql-transport-ws").await;
        readers.push((scope, "graphql-transport-ws", transport_ws));
        let legacy = Reader::graphql(&app, token, "graphql-ws").await;
        readers.push((scope, "graphql-ws (legacy)", legacy));
        let over_sse = Reader::graphql_sse(&app, token).await;
        readers.push((scope, "GraphQL over SSE", over_sse));
    }
    until_live(&app, &mut readers).await;

    let published = publish_run(&app, 30).await;
    for (scope, transport, reader) in &mut readers {
        let (token, allowed) = READERS[*scope];
        let expected: Vec<Item> = published
            .iter()
            .filter(|(_, tracker)| in_scope(allowed, tracker.as_deref()))
            .map(|(id, tracker)| Item::Event(id.clone(), tracker.clone()))
            .collect();
        let [first, .., last] = &expected[..] else {
            unreachable!("each scope has events in the run")
        };
        // What came before the run (warm-up positions) is not compared.
        let mut received = vec![];
        while received.last() != Some(first) {
            received = vec![reader.next().await];
        }
        while received.last() != Some(last) {
            let item = reader.next().await;
            assert!(
                matches!(item, Item::Event(..)),
                "{token} on {transport}: {item:?}"
            );
            received.push(item);
        }
        assert_eq!(
            received, expected,
            "{token} on {transport} gets exactly its own events, in order, once"
        );
    }
}

#[tokio::test]
async fn a_scoped_reader_that_lags_is_told_nothing_about_other_trackers() {
    const HISTORY: u64 = 100;
    const EVENTS: usize = 1200;
    let app = app_with_scopes("lagging", |c| {
        c.history_size = HISTORY;
        c.send_timeout_secs = 60;
        c.socket_send_buffer = 8 * 1024;
    })
    .await;
    let mut stalled = app
        .subscribe_with_small_buffer("/ws?access_token=fleet-a-reader", None)
        .await;
    // Mostly others' traffic: the scoped reader falls behind through it.
    let mut mine = Vec::new();
    for i in 0..EVENTS {
        let tracker = if i % 4 == 0 {
            "fleet-a.van-1"
        } else {
            "fleet-b.van-1"
        };
        let event = app
            .publish(f64::from(i as u32 % 90), 0.0, Some(tracker))
            .await;
        if tracker.starts_with("fleet-a.") {
            mine.push(event["id"].as_str().expect("an id").to_owned());
        }
    }

    let notice = within("the lagging reader's notice", async {
        loop {
            match stalled.next_seen().await {
                Seen::Json(frame) if frame.get("type").is_none() => {
                    assert_eq!(frame["tracker"], "fleet-a.van-1", "only its own trackers");
                }
                Seen::Json(notice) => break notice,
                Seen::Closed(frame) => panic!("closed without a notice: {frame:?}"),
            }
        }
    })
    .await;
    assert_eq!(notice["type"], "gap", "{notice}");
    assert_eq!(notice["reason"], "lagged", "{notice}");
    assert!(
        notice["missed"].is_null(),
        "no count of missed events, which would tell others' traffic: {notice}"
    );
    for field in ["after", "resumedFrom"] {
        if let Some(id) = notice[field].as_str() {
            assert!(
                mine.iter().any(|m| m == id),
                "{field} {id} is not one of the reader's own events: {notice}"
            );
        }
    }
    assert_eq!(stalled.close_code().await, 4008);
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("a GET");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn ids(events: &Value) -> Vec<&str> {
    let events = events.as_array().expect("an array of events");
    events.iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn history_latest_and_events_by_id_answer_within_the_scope() {
    let app = app_with_scopes("reads", |_| {}).await;
    let a = app.publish(1.0, 1.0, Some("fleet-a.van-1")).await;
    let b = app.publish(2.0, 2.0, Some("fleet-b.van-1")).await;
    let untracked = app.publish(3.0, 3.0, None).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let (_, page) = get(&app, "/longlat/history", "fleet-a-reader").await;
    assert_eq!(ids(&page["events"]), [a_id]);
    let (_, page) = get(&app, "/longlat/history", "everyone").await;
    assert_eq!(ids(&page["events"]).len(), 3);
    let (_, latest) = get(&app, "/longlat/latest", "fleet-a-reader").await;
    assert_eq!(latest["id"], a["id"], "its latest, not the untracked one");
    let (_, latest) = get(&app, "/longlat/latest", "everyone").await;
    assert_eq!(latest["id"], untracked["id"]);

    let (status, _) = get(&app, &format!("/longlat/{b_id}"), "fleet-a-reader").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "as if it did not exist");
    let (status, _) = get(&app, &format!("/longlat/{a_id}"), "fleet-a-reader").await;
    assert_eq!(status, StatusCode::OK);

    for path in [
        "/longlat/history?tracker=fleet-b.van-1",
        "/longlat/latest?tracker=fleet-b.van-1",
        "/events?tracker=fleet-a.van-1,fleet-b.van-1",
        "/ws?tracker=fleet-b.van-1",
    ] {
        let (status, problem) = get(&app, path, "fleet-a-reader").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(problem["code"], "forbidden", "{path}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("fleet-b.van-1"), "{path}: {detail}");
    }

    let query = format!(
        r#"{{ latest {{ id }} history {{ events {{ id }} }} other: event(id: "{b_id}") {{ id }} }}"#
    );
    let answer: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth("fleet-b-reader")
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("a GraphQL answer");
    assert_eq!(answer["data"]["latest"]["id"], b["id"], "{answer}");
    assert_eq!(ids(&answer["data"]["history"]["events"]), [b_id]);
    assert_eq!(answer["data"]["other"]["id"], b["id"]);
    let outside =
        json!({ "query": r#"{ history(tracker: ["fleet-a.van-1"]) { events { id } } }"# });
    let refused: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth("fleet-b-reader")
        .json(&outside)
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("a GraphQL answer");
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "forbidden",
        "{refused}"
    );
}

#[tokio::test]
async fn a_jwt_with_a_read_claim_reads_only_those_trackers() {
    let app = spawn_app_with(|c| {
        c.jwt_secret = Some("test-secret".into());
        c.protect = vec!["subscribe".into()];
    })
    .await;
    let key = EncodingKey::from_secret(b"test-secret");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({ "sub": "alice", "exp": exp, "read": ["alice/*", "fleet-b.*"] });
    let token = jsonwebtoken::encode(&Header::default(), &claims, &key).expect("a JWT");

    let mut reader = Reader::ws(&app, &token).await;
    app.publish(0.0, 0.0, Some("fleet-a.van-1")).await;
    app.publish(0.0, 0.0, None).await;
    let b = app.publish(0.0, 0.0, Some("fleet-b.van-1")).await;
    let expected = Item::Event(
        b["id"].as_str().unwrap().into(),
        Some("fleet-b.van-1".into()),
    );
    assert_eq!(reader.next().await, expected, "the first event it gets");
    let (_, page) = get(&app, "/longlat/history", &token).await;
    assert_eq!(ids(&page["events"]), [b["id"].as_str().unwrap()]);

    let bad = json!({ "sub": "mallory", "exp": exp, "read": ["a*b"] });
    let bad = jsonwebtoken::encode(&Header::default(), &bad, &key).expect("a JWT");
    let (status, problem) = get(&app, "/longlat/history", &bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
}
