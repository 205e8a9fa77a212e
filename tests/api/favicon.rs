//! The icon a browser shows in the tab of every page longlat serves.

use crate::test_app::spawn_app;

const LINK: &str = r#"<link rel="icon" href="/favicon.svg">"#;

#[tokio::test]
async fn every_page_links_an_svg_icon_that_the_server_serves() {
    let app = spawn_app().await;
    for path in ["/favicon.svg", "/favicon.ico"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "image/svg+xml",
            "{path}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.starts_with("<svg") && body.trim_end().ends_with("</svg>"),
            "{path}: {body}"
        );
    }
    for page in ["/", "/map", "/graphql"] {
        let response = app
            .http
            .get(app.url(page))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let html = response.text().await.unwrap();
        assert!(html.contains(LINK), "{page} links the icon");
    }
}
