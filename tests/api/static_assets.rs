//! The pages' large assets on the wire: gzipped for a client that accepts
//! it (every browser does), whole for one that does not.

use tokio::process::Command;

use crate::test_app::{spawn_app, within};

/// `curl` of `url`, with `--compressed` or not: (the bytes it read off the
/// wire, the body it got, the `Content-Encoding` header).
async fn fetch(url: &str, compressed: bool) -> (u64, Vec<u8>, String) {
    let dir = std::env::temp_dir().join(format!("longlat-{}-assets", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let body = dir.join(if compressed { "compressed" } else { "plain" });
    let mut curl = Command::new("curl");
    curl.args(["-s", "--fail", "-o"]).arg(&body).args([
        "-w",
        "%{size_download} %header{content-encoding}",
        url,
    ]);
    if compressed {
        curl.arg("--compressed");
    }
    let output = within("curl", curl.output()).await.expect("run curl");
    assert!(output.status.success(), "curl {url}: {output:?}");
    let written = String::from_utf8(output.stdout).expect("utf-8");
    let (size, encoding) = written.split_once(' ').unwrap_or((&written, ""));
    let bytes = std::fs::read(&body).expect("curl's output");
    (size.parse().expect("a size"), bytes, encoding.to_owned())
}

#[tokio::test]
async fn large_assets_go_gzipped_to_a_client_that_accepts_it_and_whole_to_one_that_does_not() {
    let app = spawn_app().await;
    for path in [
        "/assets/vendor/world-atlas/countries-10m.json",
        "/assets/vendor/leaflet/leaflet.js",
        "/graphiql/graphiql.min.js",
    ] {
        let (plain_size, plain, plain_encoding) = fetch(&app.url(path), false).await;
        let (wire_size, unpacked, encoding) = fetch(&app.url(path), true).await;
        assert_eq!(plain_encoding, "", "{path}");
        assert_eq!(plain_size, plain.len() as u64, "{path}");
        assert_eq!(encoding, "gzip", "{path}");
        assert!(
            unpacked == plain,
            "{path}: the gzipped body is the same file"
        );
        assert!(
            wire_size * 3 < plain_size,
            "{path}: {wire_size} bytes on the wire of {plain_size}"
        );
        println!("{path}: {plain_size} bytes, {wire_size} gzipped");
    }
}
