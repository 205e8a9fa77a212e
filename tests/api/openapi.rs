//! The API's description: generated from the code, checked in, served, and
//! held to what the server really does by schemathesis.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use serde_json::Value;

use crate::test_app::{spawn_app, spawn_app_with};

fn checked_in_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/openapi.json")
}

fn generated_spec() -> String {
    let mut spec = longlat::http::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    spec.push('\n');
    spec
}

#[test]
fn the_checked_in_openapi_document_is_current() {
    let path = checked_in_spec();
    let generated = generated_spec();
    if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
        std::fs::write(&path, &generated).expect("write schema/openapi.json");
        panic!("schema/openapi.json was stale and has been regenerated: review and commit it");
    }
}

/// `spec` with no security requirement and no `bearer` scheme.
fn without_bearer(mut spec: Value) -> Value {
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("security");
    }
    for item in spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            if let Some(operation) = operation.as_object_mut() {
                operation.remove("security");
            }
        }
    }
    if let Some(schemes) = spec["components"].as_object_mut() {
        schemes.remove("securitySchemes");
    }
    spec
}

/// How many operations ask for a credential, and whether `bearer` is declared.
fn locks(spec: &Value) -> (usize, bool) {
    let operations = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values());
    let locked = operations.filter(|op| op.get("security").is_some()).count();
    let declared = spec["components"]["securitySchemes"]
        .get("bearer")
        .is_some();
    (locked, declared)
}

#[tokio::test]
async fn swagger_ui_shows_locks_only_on_a_server_that_checks_credentials() {
    let open = spawn_app().await;
    let served: Value = open.get_json("/openapi.json").await;
    assert_eq!(locks(&served), (0, false), "no credentials: no lock");

    let guarded = spawn_app_with(|c| c.tokens = vec!["secret".into()]).await;
    let served: Value = guarded.get_json("/openapi.json").await;
    let generated: Value = serde_json::from_str(&generated_spec()).unwrap();
    assert_eq!(
        served, generated,
        "with credentials: the document as generated"
    );
    let (locked, declared) = locks(&served);
    assert!(locked > 0 && declared, "with credentials: locks ({locked})");
}

#[tokio::test]
async fn the_server_serves_its_openapi_document_and_swagger_ui_offline() {
    let app = spawn_app().await;
    let served: serde_json::Value = app.get_json("/openapi.json").await;
    let generated: serde_json::Value = serde_json::from_str(&generated_spec()).unwrap();
    assert_eq!(served, without_bearer(generated));
    for path in [
        "/longlat",
        "/longlat/{id}",
        "/longlat/history",
        "/longlat/latest",
        "/ws",
        "/events",
        "/graphql",
        "/healthz",
        "/readyz",
        "/",
        "/map",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} is documented");
    }
    assert_eq!(
        served["components"]["schemas"]["PositionInput"]["example"]["latitude"], 59.334591,
        "the tutorial's Stockholm is the example"
    );

    let page = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "Swagger UI's page");
    let initializer = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        initializer.contains("/openapi.json"),
        "Swagger UI loads our document"
    );
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "no call to an online validator"
    );
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let response = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset} is served by longlat");
    }
    for text in [&html, &initializer] {
        assert!(
            !text.contains("https://") && !text.contains("http://"),
            "nothing is loaded from elsewhere"
        );
    }
}

/// The schemathesis command `tests/run` installs, in `target/schemathesis/`.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("LONGLAT_SCHEMATHESIS") {
        return path.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis")
}

#[tokio::test]
async fn schemathesis_finds_no_difference_between_the_document_and_the_server() {
    let command = schemathesis();
    assert!(
        command.exists(),
        "{} is missing: tests/run installs it (pip, tests/requirements.txt)",
        command.display()
    );
    let app = spawn_app().await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(600),
        Command::new(&command)
            .arg("--config-file")
            .arg(&config)
            .args([
                "run",
                &app.url("/openapi.json"),
                "--checks",
                "all",
                "--max-examples",
                "60",
            ])
            .env("NO_COLOR", "1")
            .output(),
    )
    .await
    .expect("schemathesis finished within 10 minutes")
    .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("passed"),
        "schemathesis ran tests:\n{report}"
    );
}
