//! Which browser pages may use the server: the Origin allowlist and CORS.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::test_app::{TestApp, spawn_app, spawn_app_with};

/// The WebSocket handshake's status for a page from `origin` (or none).
async fn ws_status(app: &TestApp, origin: Option<&str>) -> u16 {
    ws_status_as(app, origin, None).await
}

/// The same, with the request's `Host` header set to `host` when given.
async fn ws_status_as(app: &TestApp, origin: Option<&str>, host: Option<&str>) -> u16 {
    let mut request = app.ws_url("/ws").into_client_request().unwrap();
    if let Some(host) = host {
        request.headers_mut().insert("host", host.parse().unwrap());
    }
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
async fn with_an_allowlist_a_page_is_judged_by_its_whole_origin_not_by_the_host_it_reached() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://map.example".into()]).await;
    let port = app.addr.port();
    // DNS rebinding: evil.example resolves to this server, so the page's
    // origin and the Host header agree, but the page is the attacker's.
    assert_eq!(
        ws_status_as(&app, Some("http://evil.example"), Some("evil.example")).await,
        403
    );
    let evil = format!("evil.example:{port}");
    assert_eq!(
        ws_status_as(&app, Some(&format!("http://{evil}")), Some(&evil)).await,
        403
    );
    let own = app.addr.to_string();
    for scheme in ["gopher", "https", "ws"] {
        assert_eq!(
            ws_status(&app, Some(&format!("{scheme}://{own}"))).await,
            403,
            "{scheme} is not the scheme of the server's own pages"
        );
    }
    assert_eq!(
        ws_status(&app, Some("http://map.example")).await,
        403,
        "listed with https only"
    );
    assert_eq!(ws_status(&app, Some("HTTPS://MAP.EXAMPLE")).await, 101);
    let localhost = format!("localhost:{port}");
    assert_eq!(
        ws_status_as(&app, Some(&format!("http://{localhost}")), Some(&localhost)).await,
        101,
        "the server's own pages, opened as localhost"
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
