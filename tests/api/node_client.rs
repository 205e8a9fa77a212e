//! The npm reference clients in tests/js, driven through Node: each prints one
//! JSON object per line, which the tests read as what the user's client saw.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::test_app::{TestApp, within};

/// A running Node client. Dropping it ends the process.
pub struct NodeClient {
    lines: Lines<BufReader<ChildStdout>>,
    // Held so the client's stdin stays open: it exits when stdin closes.
    child: Child,
}

impl NodeClient {
    /// Starts `tests/js/<script>` with `args`.
    pub fn start(script: &str, args: &[&str]) -> Self {
        Self::start_with_env(script, args, &[])
    }

    /// Starts `tests/js/<script>` with `args` and environment `env`.
    pub fn start_with_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let path = format!("{}/tests/js/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("node")
            .arg(path)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (is Node.js installed? tests/run installs the clients)");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            lines: BufReader::new(stdout).lines(),
            child,
        }
    }

    /// Writes `line` to the client's stdin (the scripts that take
    /// commands read one a line).
    pub async fn say(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        let said = stdin.write_all(format!("{line}\n").as_bytes()).await;
        said.expect("write to the Node client");
    }

    /// The next line the client printed.
    pub async fn next_line(&mut self) -> Value {
        let line = within("a line from the Node client", self.lines.next_line())
            .await
            .expect("read the Node client's output")
            .expect("the Node client exited before printing what was expected");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }

    /// The next line with `key`, skipping `{"connected":true}`.
    pub async fn next_with(&mut self, key: &str) -> Value {
        loop {
            let line = self.next_line().await;
            if line.get("connected").is_some() {
                continue;
            }
            match line.get(key) {
                Some(value) => return value.clone(),
                None => panic!("expected a {key:?} line, got {line}"),
            }
        }
    }

    /// The data of the next `next` message for the `positions` subscription.
    pub async fn next_position(&mut self) -> Value {
        let payload = self.next_with("next").await;
        payload["data"]["positions"].clone()
    }

    /// The next `positions` item, if one arrives within `wait`.
    pub async fn position_within(&mut self, wait: std::time::Duration) -> Option<Value> {
        loop {
            // `next_line` is cancel-safe: a line cut short is read next time.
            let line = tokio::time::timeout(wait, self.lines.next_line())
                .await
                .ok()?;
            let line = line
                .expect("read the Node client")
                .expect("the Node client exited");
            let line: Value = serde_json::from_str(&line).expect("JSON lines");
            if line.get("connected").is_none() {
                return Some(line["next"]["data"]["positions"].clone());
            }
        }
    }

    /// The close code the client finally saw.
    pub async fn close_code(&mut self) -> u64 {
        self.closed().await["code"].as_u64().expect("a close code")
    }

    /// The close the client finally saw (`code`, `reason`, and from
    /// ws-raw.mjs `wasClean`), skipping what came before it.
    pub async fn closed(&mut self) -> Value {
        loop {
            let line = self.next_line().await;
            if let Some(closed) = line.get("closed") {
                return closed.clone();
            }
        }
    }
}

/// The `positions` selection every test asks for: the whole event.
pub const POSITIONS: &str = "subscription($after: ID, $tracker: [String!], $bbox: BoundingBox) {
  positions(after: $after, tracker: $tracker, bbox: $bbox) {
    id longitude latitude tracker receivedAt
  }
}";

impl TestApp {
    /// Subscribes with the graphql-ws reference client.
    pub fn graphql_subscribe(&self, query: &str, variables: Value) -> NodeClient {
        let url = self.ws_url("/graphql");
        NodeClient::start(
            "graphql-subscribe.mjs",
            &[&url, query, &variables.to_string()],
        )
    }

    /// Subscribes with the graphql-ws reference client, sending
    /// `connection_params` as the `connection_init` payload.
    pub fn graphql_subscribe_with(
        &self,
        query: &str,
        variables: Value,
        connection_params: Value,
    ) -> NodeClient {
        let url = self.ws_url("/graphql");
        NodeClient::start(
            "graphql-subscribe.mjs",
            &[
                &url,
                query,
                &variables.to_string(),
                &connection_params.to_string(),
            ],
        )
    }

    /// Opens a raw WebSocket on /graphql with `subprotocol` ("-" for none)
    /// and sends `script` (messages, or "wait" for the next frame).
    pub fn graphql_raw(&self, subprotocol: &str, script: &[&str]) -> NodeClient {
        self.ws_raw("/graphql", subprotocol, script)
    }

    /// Opens a raw `ws` WebSocket on `path` with `subprotocol` ("-" for
    /// none) and runs `script`: messages, "wait" for the next frame,
    /// "close:<code>" to close.
    pub fn ws_raw(&self, path: &str, subprotocol: &str, script: &[&str]) -> NodeClient {
        let url = self.ws_url(path);
        let mut args = vec![url.as_str(), subprotocol];
        args.extend_from_slice(script);
        NodeClient::start("ws-raw.mjs", &args)
    }

    /// Posts a GraphQL request and returns the JSON answer; fails unless 200.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self
            .http
            .post(self.url("/graphql"))
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql");
        assert_eq!(response.status(), 200, "POST /graphql {query}");
        response.json().await.expect("a GraphQL response")
    }
}
