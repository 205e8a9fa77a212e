//! The subscribers: `N` feeds opened at most `C` at a time (so the server
//! sees a ramp, not a stampede), each read by its own task into its own
//! [`Tally`] until the run stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::tally::{Shared, Tally};
use crate::cli::endpoint::Endpoint;
use crate::cli::feed::{Feed, Item, Transport, Wanted};

/// How long one subscriber may take to connect and subscribe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters the progress line reads.
#[derive(Debug, Default)]
pub struct SubscriberProgress {
    /// Subscribers connected.
    pub connected: AtomicU64,
    /// Subscribers that could not connect.
    pub failed: AtomicU64,
    /// Connected subscribers whose stream ended before the run did.
    pub disconnected: AtomicU64,
}

/// What opening the feeds gave.
pub struct Subscribers {
    /// One task per connected subscriber; each returns its tally at `stop`.
    pub tasks: JoinSet<Tally>,
    /// The first connection error, to show.
    pub first_error: Option<String>,
}

/// How the subscribers connect.
pub struct Connecting {
    /// The server.
    pub endpoint: Endpoint,
    /// The transport.
    pub transport: Transport,
    /// How many subscribers.
    pub count: u64,
    /// How many handshakes may be in flight at once.
    pub concurrency: usize,
}

/// Subscribers that share one HTTP client (one HTTP/2 connection).
const STREAMS_PER_CLIENT: u64 = 100;

/// Opens every feed and returns once each has connected or failed.
pub async fn connect_all(
    how: Connecting,
    shared: Arc<Shared>,
    progress: Arc<SubscriberProgress>,
    stop: CancellationToken,
) -> Subscribers {
    // Over HTTP/2 (https) a client multiplexes its streams on one
    // connection, at most as many as the server allows (256): a client per
    // group of subscribers, so that any number of them can connect. Over
    // HTTP/1.1 each stream has its own connection either way.
    let clients: Vec<reqwest::Client> = (0..how.count.div_ceil(STREAMS_PER_CLIENT).max(1))
        .map(|_| {
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .unwrap_or_default()
        })
        .collect();
    let wanted = Arc::new(Wanted {
        graphql_fields: Some("longitude latitude"),
        ..Wanted::default()
    });
    let how = Arc::new(how);
    let permits = Arc::new(Semaphore::new(how.concurrency.max(1)));
    let (ready, mut outcomes) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = JoinSet::new();
    for n in 0..how.count {
        let http = clients[usize::try_from(n / STREAMS_PER_CLIENT).unwrap_or(0)].clone();
        let (how, wanted) = (how.clone(), wanted.clone());
        let (shared, progress, stop) = (shared.clone(), progress.clone(), stop.clone());
        let (permits, ready) = (permits.clone(), ready.clone());
        tasks.spawn(async move {
            let opened = {
                let _permit = permits.acquire().await;
                let open = Feed::open(how.transport, &how.endpoint, &http, &wanted);
                match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
                    Ok(Ok(feed)) => Ok(feed),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err(format!("no answer in {CONNECT_TIMEOUT:?}")),
                }
            };
            let counter = match &opened {
                Ok(_) => &progress.connected,
                Err(_) => &progress.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = ready.send(opened.as_ref().map(|_| ()).map_err(Clone::clone));
            drop(ready);
            match opened {
                Ok(feed) => receive(feed, &shared, &progress, &stop).await,
                Err(_) => Tally::default(),
            }
        });
    }
    drop(ready);
    let mut first_error = None;
    for _ in 0..how.count {
        match outcomes.recv().await {
            Some(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Some(Ok(())) => {}
            None => break,
        }
    }
    Subscribers { tasks, first_error }
}

/// Reads one feed into a tally until `stop`, or until the stream ends.
async fn receive(
    mut feed: Feed,
    shared: &Shared,
    progress: &SubscriberProgress,
    stop: &CancellationToken,
) -> Tally {
    let mut tally = Tally::new(shared.total());
    loop {
        let item = tokio::select! {
            biased;
            () = stop.cancelled() => return tally,
            item = feed.next() => item,
        };
        match item {
            Ok(Some(Item::Event(frame))) => {
                if let Some(seq) = shared.codec.decode_frame(&frame) {
                    tally.record(seq, shared);
                }
            }
            Ok(Some(Item::Notice(_))) => tally.notices += 1,
            Ok(None) | Err(_) => {
                progress.disconnected.fetch_add(1, Ordering::Relaxed);
                return tally;
            }
        }
    }
}
