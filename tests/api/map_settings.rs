//! The map page's settings: raster tiles only when the operator asks for
//! them, and a tile template that cannot work refused at start.

use serde_json::json;
use tokio::process::Command;

use crate::test_app::{spawn_app, spawn_app_with, within};

#[tokio::test]
async fn the_map_is_offered_no_tiles_unless_the_operator_configures_them() {
    let app = spawn_app().await;
    assert_eq!(
        app.get_json("/map/settings").await,
        json!({ "tiles": null })
    );

    let template = "https://tiles.example.org/{z}/{x}/{y}.png";
    let app = spawn_app_with(|c| {
        c.map_tiles = Some(template.into());
        c.map_tiles_attribution = Some("© Example contributors".into());
    })
    .await;
    assert_eq!(
        app.get_json("/map/settings").await,
        json!({ "tiles": { "url": template, "attribution": "© Example contributors" } })
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
