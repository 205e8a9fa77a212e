//! The map page's settings: raster tiles and a basemap archive only when
//! the operator asks for them, the archive served in byte ranges, and
//! settings that cannot work refused at start.

use serde_json::json;
use tokio::process::Command;

use crate::test_app::{spawn_app, spawn_app_with, within};

#[tokio::test]
async fn the_map_is_offered_no_tiles_unless_the_operator_configures_them() {
    let app = spawn_app().await;
    assert_eq!(
        app.get_json("/map/settings").await,
        json!({ "tiles": null, "basemap": null })
    );

    let template = "https://tiles.example.org/{z}/{x}/{y}.png";
    let app = spawn_app_with(|c| {
        c.map_tiles = Some(template.into());
        c.map_tiles_attribution = Some("© Example contributors".into());
    })
    .await;
    assert_eq!(
        app.get_json("/map/settings").await,
        json!({
            "tiles": { "url": template, "attribution": "© Example contributors" },
            "basemap": null
        })
    );
}

#[tokio::test]
async fn a_tile_template_without_z_x_and_y_is_refused_at_start() {
    let run = Command::new(env!("CARGO_BIN_EXE_longlat"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--map-tiles", "https://tiles.example.org/tile.png"])
        .output();
    let output = within("longlat to refuse the setting", run)
        .await
        .expect("run longlat");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("--map-tiles") && stderr.contains("{z}, {x} and {y}"),
        "{stderr}"
    );
}

/// A file that starts as a PMTiles v3 archive does, then `len` bytes more.
fn archive_file(name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let path = std::env::temp_dir().join(format!("longlat-{}-{name}", std::process::id()));
    let mut bytes = b"PMTiles\x03".to_vec();
    bytes.extend((0..len).map(|i| (i % 251) as u8));
    std::fs::write(&path, &bytes).expect("write the archive");
    (path, bytes)
}

#[tokio::test]
async fn a_basemap_archive_is_served_in_the_byte_ranges_the_map_asks_for() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/map/basemap.pmtiles"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let (path, bytes) = archive_file("ranges.pmtiles", 40_000);
    let app = spawn_app_with(|c| c.map_basemap = Some(path)).await;
    assert_eq!(
        app.get_json("/map/settings").await["basemap"],
        "/map/basemap.pmtiles"
    );
    let response = app
        .http
        .get(app.url("/map/basemap.pmtiles"))
        .header("range", "bytes=16384-16483")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.pmtiles"
    );
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 16384-16483/{}", bytes.len()).as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), bytes[16384..16484]);
}

#[tokio::test]
async fn a_basemap_that_is_not_a_pmtiles_v3_archive_is_refused_at_start() {
    let (v2, _) = archive_file("v2.pmtiles", 10);
    let mut bytes = std::fs::read(&v2).unwrap();
    bytes[7] = 2;
    std::fs::write(&v2, bytes).unwrap();
    let (not_pmtiles, _) = archive_file("not.pmtiles", 10);
    std::fs::write(&not_pmtiles, "<html>not found</html>").unwrap();
    for (file, says) in [
        (v2.to_str().unwrap(), "version 2; only version 3"),
        (not_pmtiles.to_str().unwrap(), "is not a PMTiles archive"),
        (
            "/nonexistent/city.pmtiles",
            "cannot read /nonexistent/city.pmtiles",
        ),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_longlat"))
            .args(["--listen", "127.0.0.1:0", "--map-basemap", file])
            .output();
        let output = within("longlat to refuse the setting", run)
            .await
            .expect("run longlat");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "it started with {file}: {stderr}");
        assert!(
            stderr.contains("--map-basemap") && stderr.contains(says),
            "{stderr}"
        );
    }
}
