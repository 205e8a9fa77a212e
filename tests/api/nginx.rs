//! The nginx sample in docs/operations.md, run as written in front of the real server:
//! publishing, /ws, /events and GraphQL over WebSocket all work through it.

use std::process::Stdio;

use serde_json::json;
use tokio::net::TcpStream;

use crate::node_client::{NodeClient, POSITIONS};
use crate::test_app::{TestApp, spawn_app_with, within};

/// The ```nginx block of docs/operations.md.
fn readme_sample() -> String {
    let readme = include_str!("../../docs/operations.md");
    let start = readme
        .find("```nginx\n")
        .expect("an nginx sample in docs/operations.md")
        + 9;
    let end = start + readme[start..].find("```").expect("the end of the sample");
    readme[start..end].to_owned()
}

/// nginx running the sample, in front of `app`; stopped when dropped.
struct Proxy {
    port: u16,
    _nginx: tokio::process::Child,
}

async fn start_proxy(app: &TestApp) -> Proxy {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let sample = readme_sample()
        .replace("server 127.0.0.1:8844;", &format!("server {};", app.addr))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let dir = std::env::temp_dir().join(format!("longlat-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for nginx");
    let d = dir.display();
    let config = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n{sample}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let child = tokio::process::Command::new(nginx)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nginx (tests/run installs nginx-light)");
    within("nginx to listen", async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    Proxy {
        port,
        _nginx: child,
    }
}

#[tokio::test]
async fn the_readme_nginx_sample_carries_every_transport() {
    let app = spawn_app_with(|c| c.client_ip_header = Some("X-Real-IP".into())).await;
    let proxy = start_proxy(&app).await;
    let base = format!("http://127.0.0.1:{}", proxy.port);
    let ws_base = format!("ws://127.0.0.1:{}", proxy.port);

    let (socket, _) = within(
        "a WebSocket through nginx",
        tokio_tungstenite::connect_async(format!("{ws_base}/ws")),
    )
    .await
    .expect("/ws through nginx");
    let mut ws = crate::test_app::WsClient { socket };
    let mut sse = app
        .http
        .get(format!("{base}/events"))
        .send()
        .await
        .expect("/events through nginx");
    assert_eq!(sse.status(), 200);
    assert_eq!(sse.headers()["content-type"], "text/event-stream");

    let published: serde_json::Value = app
        .http
        .post(format!("{base}/longlat"))
        .json(&json!({"longitude": 18.06, "latitude": 59.33}))
        .send()
        .await
        .expect("POST through nginx")
        .json()
        .await
        .expect("the stored event");
    let id = published["id"].as_str().expect("an id").to_owned();
    assert_eq!(ws.next_json().await["id"], id);
    let mut seen = String::new();
    within("the event over SSE through nginx", async {
        while !seen.contains(&format!("id: {id}")) {
            let chunk = sse
                .chunk()
                .await
                .expect("read SSE")
                .expect("an open stream");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;

    let url = format!("{ws_base}/graphql");
    let mut graphql = NodeClient::start("graphql-subscribe.mjs", &[&url, POSITIONS, "{}"]);
    let position = within("a GraphQL event through nginx", async {
        loop {
            app.publish(1.0, 2.0, Some("via-nginx")).await;
            if let Some(p) = graphql
                .position_within(std::time::Duration::from_millis(200))
                .await
            {
                return p;
            }
        }
    })
    .await;
    assert_eq!(position["tracker"], "via-nginx");
}
