//! Which browser pages may use the server: the Origin allowlist and CORS.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::test_app::{TestApp, spawn_app, spawn_app_with};

/// The WebSocket handshake's status for a page from `origin` (or none).
async fn ws_status(app: &TestApp, origin: Option<&str>) -> u16 {
    let mut request = app.ws_url("/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

#[tokio::test]
async fn with_an_allowlist_only_listed_and_own_pages_connect_and_publish() {
    let app =
        spawn_app_with(|c| c.allowed_origins = vec!["https://map.example".into(), "null".into()])
            .await;
    let own = format!("http://{}", app.addr);
    assert_eq!(ws_status(&app, Some("https://evil.example")).await, 403);
    assert_eq!(ws_status(&app, Some("https://map.example")).await, 101);
    assert_eq!(
        ws_status(&app, Some("null")).await,
        101,
        "pages opened from disk, when listed"
    );
    assert_eq!(
        ws_status(&app, Some(&own)).await,
        101,
        "the server's own pages"
    );
    assert_eq!(
        ws_status(&app, None).await,
        101,
        "clients that are not browsers"
    );

    let events = app
        .http
        .get(app.url("/events"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 403);
    let mut watcher = app.subscribe("/ws").await;
    let publish = app
        .http
        .post(app.url("/longlat"))
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({"longitude": 1.0, "latitude": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 403);
    let problem: serde_json::Value = publish.json().await.unwrap();
    assert_eq!(problem["code"], "origin-not-allowed");
    let good = app.publish(2.0, 2.0, None).await;
    assert_eq!(
        watcher.next_json().await,
        good,
        "the refused position was not published"
    );
}

#[tokio::test]
async fn without_an_allowlist_every_page_connects() {
    let app = spawn_app().await;
    assert_eq!(ws_status(&app, Some("null")).await, 101);
    assert_eq!(ws_status(&app, Some("https://anywhere.example")).await, 101);
}

#[tokio::test]
async fn cors_answers_only_for_configured_origins() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://map.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/longlat"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://map.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://map.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let plain = spawn_app().await;
    let response = plain
        .http
        .get(plain.url("/longlat/latest"))
        .header("origin", "https://map.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS unless configured"
    );
}
