//! How a WebSocket ends (RFC 6455, 5.5.1 and 7.4.1), on `/ws` and on
//! `/graphql` with either protocol: a client's Close is answered with the
//! same code, so its library reports a clean close rather than 1006; a
//! frame that breaks the protocol gets a Close with 1002, 1007 or 1009
//! rather than a dropped connection; either way the connection then ends.

use serde_json::json;

use crate::node_client::{NodeClient, POSITIONS};
use crate::raw_websocket::{CLOSE, CONTINUATION, Frame, PING, RawWebSocket, TEXT, fragmented_text};
use crate::test_app::{TestApp, spawn_app, within};

const INIT: &str = r#"{"type":"connection_init"}"#;

/// Each endpoint and protocol: path, subprotocol ("-" for none), and what
/// the client sends before it closes (an acknowledged `connection_init`).
const ENDPOINTS: [(&str, &str, &[&str]); 3] = [
    ("/ws", "-", &[]),
    ("/graphql", "graphql-transport-ws", &[INIT, "wait"]),
    ("/graphql", "graphql-ws", &[INIT, "wait"]),
];

#[tokio::test]
async fn a_clients_close_is_answered_with_the_same_code_on_every_websocket() {
    let app = spawn_app().await;
    let mut clients = Vec::new();
    for (path, subprotocol, prelude) in ENDPOINTS {
        for code in [1000, 4321] {
            let close = format!("close:{code}");
            let script = [prelude, &[close.as_str()]].concat();
            let client = app.ws_raw(path, subprotocol, &script);
            clients.push((path, subprotocol, code, client));
        }
    }
    for (path, subprotocol, code, mut client) in clients {
        assert_eq!(
            client.closed().await,
            json!({ "code": code, "reason": "bye", "wasClean": true }),
            "{path} ({subprotocol}), closed by the npm ws client with {code}"
        );
    }
}

#[tokio::test]
async fn a_close_sent_frame_by_frame_is_answered_and_then_the_connection_ends() {
    let app = spawn_app().await;
    for (path, subprotocol) in [
        ("/ws", None),
        ("/graphql", Some("graphql-transport-ws")),
        ("/graphql", Some("graphql-ws")),
    ] {
        let mut socket = RawWebSocket::open(&app, path, subprotocol).await;
        socket.send(&Frame::close(4321, "bye").bytes()).await;
        let frames = within("the answer to a close", socket.frames()).await;
        let answer = [&4321u16.to_be_bytes()[..], b"bye"].concat();
        assert_eq!(frames, [(CLOSE, answer)], "{path} {subprotocol:?}");
        assert!(
            within("the end of the connection", socket.ended()).await,
            "{path} {subprotocol:?}"
        );
    }
}

/// Frames that break RFC 6455, each with the close code it must get. Pings
/// carry the faults where they can: a sound ping is only answered, so the
/// close can come from nothing but the fault.
fn violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    vec![
        (
            "an unmasked frame",
            Frame::new(PING, "").unmasked().bytes(),
            1002,
        ),
        (
            "a reserved bit set",
            Frame::new(PING, "").rsv1().bytes(),
            1002,
        ),
        (
            "unknown data opcode 0x3",
            Frame::new(0x3, "x").bytes(),
            1002,
        ),
        (
            "unknown control opcode 0xB",
            Frame::new(0xB, "").bytes(),
            1002,
        ),
        (
            "a fragmented ping",
            Frame::new(PING, "").unfinished().bytes(),
            1002,
        ),
        (
            "a ping of 126 bytes",
            Frame::new(PING, [b'p'; 126]).bytes(),
            1002,
        ),
        (
            "a continuation of nothing",
            Frame::new(CONTINUATION, "x").bytes(),
            1002,
        ),
        (
            "a close with a one-byte payload",
            Frame::new(CLOSE, [3]).bytes(),
            1002,
        ),
        (
            "a close with code 1005, never sent",
            Frame::close(1005, "").bytes(),
            1002,
        ),
        (
            "text that is not UTF-8",
            Frame::new(TEXT, [b'{', 0xc3, 0x28]).bytes(),
            1007,
        ),
        // 70 KB against the default 64 KiB limit, 10 bytes a frame.
        (
            "70 KB in 7,000 fragments",
            fragmented_text(70_000, 7_000),
            1009,
        ),
    ]
}

/// Sends each violation on a new connection to `path` and checks the close
/// code it gets, and that the connection ends after it.
async fn assert_violations_closed(
    app: &TestApp,
    path: &str,
    subprotocol: Option<&str>,
    violations: &[(&str, Vec<u8>, u16)],
) {
    for (violation, bytes, code) in violations {
        let mut socket = RawWebSocket::open(app, path, subprotocol).await;
        socket.send(bytes).await;
        let what = format!("{path} {subprotocol:?}: {violation}");
        assert_eq!(
            within(&what, socket.close_code()).await,
            Some(*code),
            "{what}"
        );
        assert!(
            within(&what, socket.ended()).await,
            "{what}: the connection ends"
        );
    }
}

#[tokio::test]
async fn frames_that_break_the_websocket_protocol_are_closed_with_1002_1007_or_1009() {
    let app = spawn_app().await;
    let violations = violations();
    assert_violations_closed(&app, "/ws", None, &violations).await;
    let graphql = Some("graphql-transport-ws");
    assert_violations_closed(&app, "/graphql", graphql, &violations).await;
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_closes_protocol_violations_the_same_way() {
    let app = spawn_app().await;
    let some: Vec<_> = violations()
        .into_iter()
        .filter(|(violation, ..)| {
            [
                "an unmasked frame",
                "text that is not UTF-8",
                "70 KB in 7,000 fragments",
            ]
            .contains(violation)
        })
        .collect();
    assert_eq!(some.len(), 3);
    assert_violations_closed(&app, "/graphql", Some("graphql-ws"), &some).await;
}

#[tokio::test]
async fn a_lazy_graphql_ws_client_runs_a_query_right_after_its_last_subscription_ended() {
    let app = spawn_app().await;
    let first = app.publish(1.0, 1.0, None).await;
    let second = app.publish(2.0, 2.0, None).await;
    let url = app.ws_url("/graphql");
    let variables = json!({ "after": first["id"] }).to_string();
    let mut client = NodeClient::start(
        "graphql-lazy.mjs",
        &[&url, POSITIONS, &variables, "{ latest { id } }"],
    );
    let next = client.next_with("next").await;
    assert_eq!(next["data"]["positions"]["id"], second["id"]);
    // graphql-ws opens a new socket for the query only once the first one
    // closed cleanly; after a 1006 it fails the query instead.
    let mut closed = Vec::new();
    let answer = loop {
        let line = client.next_line().await;
        match line.get("closed") {
            Some(close) => closed.push(close.clone()),
            None => break line,
        }
    };
    assert_eq!(
        answer["query"]["data"]["latest"]["id"], second["id"],
        "{answer}"
    );
    assert_eq!(closed, [json!({ "code": 1000, "wasClean": true })]);
}
