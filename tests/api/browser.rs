//! The pages in a real browser: headless Chromium driven by playwright-core
//! from the scenarios in `tests/js/browser/`, each against a longlat process
//! of its own. Screenshots land in `tests/artifacts/` (not committed).

use std::path::Path;

use tokio::process::Command;

/// Runs one browser scenario and fails with its output unless it passes.
async fn scenario(name: &str) {
    scenario_with(name, &[]).await;
}

/// Runs one browser scenario with `env` (the servers it starts read their
/// `LONGLAT_…` settings from it too).
async fn scenario_with(name: &str, env: &[(&str, &Path)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/js/browser").join(format!("{name}.mjs"));
    let run = Command::new("node")
        .arg(&script)
        .current_dir(root)
        .env("LONGLAT_BIN", env!("CARGO_BIN_EXE_longlat"))
        .env("LONGLAT_BROKER", "memory")
        .env("LONGLAT_ARTIFACTS", root.join("tests/artifacts"))
        .envs(env.iter().copied())
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("{name} took over two minutes"))
        .expect("run node (tests/run installs the npm packages and Chromium)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("passed"),
        "{name} failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn the_tutorial_page_updates_in_two_tabs_after_the_tutorials_curl_command() {
    scenario("tutorial-page").await;
}

#[tokio::test]
async fn the_home_page_shows_the_latest_position_and_how_to_publish_to_this_server() {
    scenario("home-page").await;
}

#[tokio::test]
async fn the_map_shows_markers_and_catches_up_after_a_cut_and_a_restart() {
    scenario("map-page").await;
}

#[tokio::test]
async fn swagger_ui_try_it_out_publishes_for_real() {
    scenario("swagger-ui").await;
}

#[tokio::test]
async fn a_graphiql_subscription_shows_a_position_posted_with_curl() {
    scenario("graphiql").await;
}

#[tokio::test]
async fn graphiql_on_a_phone_shows_the_editor_the_run_button_and_the_results_on_screen() {
    scenario("graphiql-phone").await;
}

#[tokio::test]
async fn three_trackers_a_kilometre_apart_are_three_readable_markers_with_trails_to_follow_and_replay()
 {
    scenario("map-city").await;
}

#[tokio::test]
async fn the_tracker_list_scrolls_and_filters_and_the_map_fits_a_phone() {
    scenario("map-list").await;
}

#[tokio::test]
async fn the_map_shows_the_raster_tiles_an_operator_configures() {
    scenario("map-tiles").await;
}

#[tokio::test]
async fn a_city_basemap_given_as_one_pmtiles_file_is_drawn_from_longlat_itself() {
    scenario("map-basemap").await;
}

#[tokio::test]
async fn eight_map_pages_over_https_stream_over_http2_and_each_shows_a_posted_position() {
    let certificate = crate::tls::Certificate::new("browser");
    let env = [
        ("LONGLAT_TLS_CERT", certificate.cert.as_path()),
        ("LONGLAT_TLS_KEY", certificate.key.as_path()),
    ];
    scenario_with("sse-pages-https", &env).await;
}

#[tokio::test]
async fn the_map_draws_zones_and_lists_trackers_entering_and_leaving_them_as_it_happens() {
    scenario("map-zones").await;
}
