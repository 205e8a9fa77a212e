//! `longlat publish`: one position in, the stored event out, as one JSON line,
//! so the command composes with shell pipes the way `curl` does.

use std::io::Write;

use reqwest::Method;
use serde::Serialize;

use super::endpoint::{ClientError, Endpoint, refused};

/// Options of `longlat publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Latitude, degrees north (-90 to 90).
    #[arg(long, allow_negative_numbers = true)]
    pub lat: f64,

    /// Longitude, degrees east (-180 to 180).
    #[arg(long, allow_negative_numbers = true)]
    pub lon: f64,

    /// Name of the device sending the position.
    #[arg(long)]
    pub tracker: Option<String>,

    /// The server.
    #[command(flatten)]
    pub endpoint: Endpoint,
}

/// The body of `POST /longlat`.
#[derive(Debug, Serialize)]
struct Position<'a> {
    longitude: f64,
    latitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracker: Option<&'a str>,
}

/// Posts the position; prints the 201 body, or fails with the problem's detail.
pub async fn run(args: PublishArgs) -> Result<(), ClientError> {
    let body = Position {
        longitude: args.lon,
        latitude: args.lat,
        tracker: args.tracker.as_deref(),
    };
    let client = reqwest::Client::new();
    let url = args.endpoint.http("/longlat");
    let response = args
        .endpoint
        .request(&client, Method::POST, url)?
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(refused(response).await);
    }
    let event = response.text().await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", event.trim_end())
        .map_err(|e| ClientError::Local(format!("cannot write the event: {e}")))
}
