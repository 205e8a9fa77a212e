//! The publishers: `P` tasks, each with its own keep-alive connection, that
//! between them POST sequence numbers `1..=total` at a fixed total rate.
//!
//! Publisher `p` owns every `P`th number and sends number `n` at
//! `start + (n - 1) / rate`, or at once when it is behind: the schedule does
//! not drift with the server's answer times.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::tally::Shared;
use crate::cli::endpoint::{ClientError, Endpoint};

/// What the publishers achieved.
#[derive(Debug, Default)]
pub struct Published {
    /// Positions the server accepted (a 2xx answer).
    pub ok: u64,
    /// Positions refused or not answered.
    pub errors: u64,
    /// The first error, to show.
    pub first_error: Option<String>,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
}

/// Counters the progress line reads while publishing.
#[derive(Debug, Default)]
pub struct PublishProgress {
    /// Accepted so far.
    pub ok: AtomicU64,
    /// Failed so far.
    pub errors: AtomicU64,
}

/// One publisher's connection and target.
#[derive(Clone)]
pub struct Publisher {
    client: reqwest::Client,
    endpoint: Endpoint,
    url: Url,
    /// `,"tracker":"…"`, added to every body, when positions name one.
    tracker_field: Option<Arc<str>>,
}

impl Publisher {
    /// A publisher with a connection of its own, kept alive, publishing
    /// positions of `tracker` (none when `None`).
    pub fn new(endpoint: &Endpoint, tracker: Option<&str>) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            client,
            endpoint: endpoint.clone(),
            url: endpoint.http("/longlat"),
            tracker_field: tracker
                .map(|t| format!(r#","tracker":{}"#, serde_json::json!(t)).into()),
        })
    }

    /// POSTs `seq`, noting its send time just before; reads the whole answer
    /// so the connection can be reused.
    pub async fn publish(&self, seq: u64, shared: &Shared) -> Result<(), String> {
        let request = self
            .endpoint
            .request(&self.client, Method::POST, self.url.clone())
            .map_err(|e| e.to_string())?
            .header(CONTENT_TYPE, "application/json")
            .body(self.body(seq, shared));
        shared.mark_sent(seq);
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body);
            Err(format!("HTTP {status}: {}", text.trim()))
        }
    }
}

impl Publisher {
    fn body(&self, seq: u64, shared: &Shared) -> String {
        let mut body = shared.codec.body(seq);
        if let Some(field) = &self.tracker_field {
            // Before the object's closing brace.
            body.insert_str(body.len() - 1, field);
        }
        body
    }
}

/// Publishes `1..=total` at `rate` per second from `count` publishers, as
/// `tracker` when given.
pub async fn publish_all(
    endpoint: &Endpoint,
    tracker: Option<&str>,
    count: u64,
    rate: f64,
    shared: Arc<Shared>,
    progress: Arc<PublishProgress>,
) -> Result<Published, ClientError> {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = JoinSet::new();
    for first in 1..=count.min(shared.total()) {
        let publisher = Publisher::new(endpoint, tracker)?;
        let (shared, progress) = (shared.clone(), progress.clone());
        tasks.spawn(async move {
            let mut first_error = None;
            let mut seq = first;
            while seq <= shared.total() {
                let interval_count = u32::try_from(seq - 1).unwrap_or(u32::MAX);
                tokio::time::sleep_until(start + interval * interval_count).await;
                match publisher.publish(seq, &shared).await {
                    Ok(()) => progress.ok.fetch_add(1, Ordering::Relaxed),
                    Err(error) => {
                        first_error.get_or_insert(error);
                        progress.errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
                seq += count;
            }
            first_error
        });
    }
    let mut first_error = None;
    while let Some(result) = tasks.join_next().await {
        let error = result.map_err(|e| ClientError::Local(format!("a publisher failed: {e}")))?;
        first_error = first_error.or(error);
    }
    Ok(Published {
        ok: progress.ok.load(Ordering::Relaxed),
        errors: progress.errors.load(Ordering::Relaxed),
        first_error,
        elapsed: start.elapsed(),
    })
}
