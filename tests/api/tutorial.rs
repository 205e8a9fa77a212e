//! The tutorial's story: a page open in several browsers, a curl command, every page updated.

use tokio::process::Command;

use crate::test_app::{spawn_app, within};

#[tokio::test]
async fn the_tutorials_curl_command_reaches_every_open_page_in_order() {
    let app = spawn_app().await;
    let mut pages = Vec::new();
    for _ in 0..5 {
        pages.push(app.subscribe("/ws").await);
    }

    // The command exactly as the tutorial writes it, with the test's port.
    // `curl -d` labels the JSON body application/x-www-form-urlencoded.
    let target = format!("localhost:{}/longlat", app.addr.port());
    let curl = async |body: &str| {
        let output = Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "-H",
                "Accept: application/json",
                "-XPOST",
            ])
            .args(["-d", body, &target])
            .output();
        let output = within("curl", output).await.expect("run curl");
        let text = String::from_utf8(output.stdout).expect("utf-8");
        let (body, status) = text.rsplit_once('\n').expect("status line");
        assert_eq!(status, "201", "curl got {text}");
        serde_json::from_str::<serde_json::Value>(body).expect("JSON answer")
    };
    let first = curl(r#"{"longitude": 18.063240, "latitude": 59.334591}"#).await;
    assert_eq!(first["longitude"], 18.06324);
    assert_eq!(first["latitude"], 59.334591);
    let second = curl(r#"{"longitude": 2.2945, "latitude": 48.8584}"#).await;
    let third = curl(r#"{"longitude": -74.0445, "latitude": 40.6892}"#).await;

    for page in &mut pages {
        for expected in [&first, &second, &third] {
            assert_eq!(&page.next_json().await, expected);
        }
    }
}

#[tokio::test]
async fn the_tutorial_page_is_served_at_the_root() {
    let app = spawn_app().await;
    let response = within("GET /", app.http.get(app.url("/")).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "the page is HTML"
    );
    let page = response.text().await.unwrap();
    for needle in [
        "id=\"latitude\"",
        "id=\"longitude\"",
        "/ws",
        "ws://localhost:8844",
    ] {
        assert!(page.contains(needle), "the page lacks {needle}");
    }
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/index.html"));
    assert_eq!(
        page,
        on_disk.unwrap(),
        "the served page is static/index.html"
    );
}
