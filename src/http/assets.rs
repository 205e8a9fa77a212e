//! Files compiled into the binary from `static/`, and how they are sent.
//! The large vendored ones (the world outline, GraphiQL, Leaflet) are also
//! kept gzipped, compressed once by their `vendor.sh` into a `.gz` beside
//! each: a browser, which always accepts gzip, gets a quarter of the bytes,
//! and the server spends no CPU compressing them per request.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// One file under `static/`.
pub struct Asset {
    /// Its path under `static/`.
    pub path: &'static str,
    /// Its media type.
    pub media_type: &'static str,
    /// Its contents.
    pub body: &'static [u8],
    /// The same, gzipped, for the large files.
    pub gzip: Option<&'static [u8]>,
}

/// An [`Asset`] compiled in from `static/<path>`; with `gzip`, also from
/// `static/<path>.gz`.
macro_rules! asset {
    ($path:literal, $media_type:expr) => {
        $crate::http::assets::Asset {
            path: $path,
            media_type: $media_type,
            body: include_bytes!(concat!("../../static/", $path)),
            gzip: None,
        }
    };
    ($path:literal, $media_type:expr, gzip) => {
        $crate::http::assets::Asset {
            gzip: Some(include_bytes!(concat!("../../static/", $path, ".gz"))),
            ..asset!($path, $media_type)
        }
    };
}
pub(crate) use asset;

/// Media type of the licences beside vendored files.
pub const LICENCE: &str = "text/plain; charset=utf-8";

/// The asset at `path` among `assets`, sent as the request's headers allow,
/// with `cache_control`.
pub fn send(
    assets: &[Asset],
    path: &str,
    request: &HeaderMap,
    cache_control: &'static str,
) -> Result<Response, Error> {
    let asset = assets
        .iter()
        .find(|asset| asset.path == path)
        .ok_or_else(|| Error::NotFound(format!("no asset {path}")))?;
    let gzip = asset.gzip.filter(|_| accepts_gzip(request));
    let mut response = gzip.unwrap_or(asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// Whether `Accept-Encoding` takes gzip: named, or `*`, with a weight
/// above zero (`gzip;q=0` refuses it).
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut star = false;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or_default().split(',') {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
            let weight = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" => return weight > 0.0,
                "*" => star = weight > 0.0,
                _ => {}
            }
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        accepts_gzip(&headers)
    }

    #[test]
    fn every_gzipped_asset_is_its_file_compressed() {
        let assets = super::super::pages::ASSETS
            .iter()
            .chain(super::super::graphql::ASSETS);
        for asset in assets {
            let Some(gzip) = asset.gzip else { continue };
            let mut gunzip = std::process::Command::new("gzip")
                .arg("-dc")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run gzip");
            let mut stdin = gunzip.stdin.take().expect("gzip's input");
            let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, gzip));
            let output = gunzip.wait_with_output().expect("gzip ends");
            writer.join().expect("write").expect("gzip reads");
            assert!(
                output.status.success() && output.stdout == asset.body,
                "static/{0}.gz is not static/{0} compressed: run its vendor.sh",
                asset.path
            );
        }
    }

    #[test]
    fn gzip_is_sent_only_where_accept_encoding_takes_it() {
        assert!(accepting("gzip, deflate, br, zstd"));
        assert!(accepting("br;q=1.0, gzip;q=0.8"));
        assert!(accepting("*"));
        assert!(!accepting("gzip;q=0"));
        assert!(!accepting("identity"));
        assert!(!accepting("*, gzip;q=0"));
        assert!(!accepting("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
