//! What the server writes on the wire, byte for byte, for clients that read
//! it more strictly than HTTP asks.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::test_app::{TestApp, spawn_app, within};

/// Sends `request` on a fresh connection and returns the response head.
async fn response_head(app: &TestApp, request: &str) -> String {
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    within("the response head", async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "the connection closed before the head ended");
            head.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn an_upgrade_is_answered_with_header_names_spelt_as_the_request_spelt_them() {
    let app = spawn_app().await;
    // Python gql's WebSocket transport looks for `Sec-WebSocket-Protocol`
    // spelt just so.
    let upgrade = format!(
        "GET /graphql HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
        app.addr
    );
    let head = response_head(&app, &upgrade).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
}
