//! `longlat watch`: every event as one JSON line on stdout, notices on
//! stderr, for as long as it runs.
//!
//! When the connection ends (the server restarted, or the subscriber fell
//! behind and was cut off) it reconnects and resumes after the last event it
//! printed: `?after=` on `/ws`, `Last-Event-ID` on `/events`, `after` on the
//! GraphQL subscription. So the output has no duplicate, and no hole the
//! server does not announce with a gap notice. Ctrl-C or SIGTERM ends it.

use std::io::Write;
use std::time::Duration;

use super::endpoint::{ClientError, Endpoint};
use super::feed::{Feed, Item, Transport, Wanted};
use crate::model::{BoundingBox, PositionEvent};
use crate::shutdown::Shutdown;

/// Longest wait between two failed reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Options of `longlat watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// How to subscribe.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,

    /// Start after this event id: first the events still in history, then live.
    #[arg(long)]
    pub after: Option<String>,

    /// Only events from this tracker; repeat for several.
    #[arg(long = "tracker", value_name = "TRACKER")]
    pub trackers: Vec<String>,

    /// Only events inside `minLon,minLat,maxLon,maxLat` (degrees).
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: Option<BoundingBox>,

    /// The server.
    #[command(flatten)]
    pub endpoint: Endpoint,
}

/// Watches until Ctrl-C, SIGTERM, a closed stdout or a refusal by the server.
pub async fn run(args: WatchArgs) -> Result<(), ClientError> {
    let shutdown = Shutdown::new();
    let signals = tokio::spawn(shutdown.clone().trigger_on_signal());
    let result = tokio::select! {
        result = watch(&args) => result,
        () = shutdown.wait() => Ok(()),
    };
    shutdown.trigger();
    let _ = signals.await;
    result
}

/// How a connection ended.
enum End {
    /// The stream ended or broke; `delivered` says whether it carried anything.
    Lost {
        delivered: bool,
        error: Option<ClientError>,
    },
    /// Nobody reads stdout any more.
    StdoutClosed,
}

async fn watch(args: &WatchArgs) -> Result<(), ClientError> {
    let http = reqwest::Client::new();
    let mut wanted = Wanted {
        after: args.after.clone(),
        trackers: args.trackers.clone(),
        bbox: args.bbox,
        graphql_fields: None,
    };
    let target = args.endpoint.http(args.transport.path());
    let mut connected_once = false;
    let mut failures = 0u32;
    loop {
        let end = match Feed::open(args.transport, &args.endpoint, &http, &wanted).await {
            Ok(mut feed) => {
                connected_once = true;
                eprintln!("watching {target} over {}", args.transport);
                follow(&mut feed, &mut wanted).await
            }
            Err(error) if !connected_once || is_permanent(&error) => return Err(error),
            Err(error) => End::Lost {
                delivered: false,
                error: Some(error),
            },
        };
        match end {
            End::StdoutClosed => return Ok(()),
            End::Lost {
                error: Some(error), ..
            } if is_permanent(&error) => return Err(error),
            End::Lost { delivered, error } => {
                failures = if delivered { 0 } else { failures + 1 };
                let delay = backoff(failures);
                let when = when(delay);
                match error {
                    Some(error) => eprintln!("connection lost ({error}); reconnecting {when}"),
                    None => eprintln!("the server ended the stream; reconnecting {when}"),
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Prints what the feed delivers until it ends, moving the cursor along.
async fn follow(feed: &mut Feed, wanted: &mut Wanted) -> End {
    let mut delivered = false;
    loop {
        let item = match feed.next().await {
            Ok(Some(item)) => item,
            Ok(None) => {
                return End::Lost {
                    delivered,
                    error: None,
                };
            }
            Err(error) => {
                return End::Lost {
                    delivered,
                    error: Some(error),
                };
            }
        };
        delivered = true;
        match item {
            Item::Event(text) => {
                let line = match serde_json::from_str::<PositionEvent>(&text) {
                    Ok(event) => {
                        wanted.after = Some(event.id.to_string());
                        serde_json::to_string(&event).unwrap_or(text)
                    }
                    // Not a longlat event: shown as the server sent it.
                    Err(_) => text,
                };
                if writeln!(std::io::stdout(), "{line}").is_err() {
                    return End::StdoutClosed;
                }
            }
            Item::Notice(text) => eprintln!("gap: {text}"),
        }
    }
}

/// Errors that reconnecting cannot cure: the server refused the request
/// (a bad parameter or token; not a 5xx), a failed GraphQL operation, or a
/// local problem.
fn is_permanent(error: &ClientError) -> bool {
    match error {
        ClientError::Refused { status, .. } => *status < 500,
        ClientError::Graphql(_) | ClientError::Local(_) => true,
        _ => false,
    }
}

/// The wait before the next attempt: none after a connection that carried
/// events, then doubling from a quarter second up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let millis = 250u64.saturating_mul(1 << failures.min(10).saturating_sub(1));
    Duration::from_millis(millis).min(MAX_BACKOFF)
}

/// A wait in words: "now", "in 250 ms", "in 2 s".
fn when(delay: Duration) -> String {
    match delay.as_millis() {
        0 => "now".into(),
        millis @ 1..1_000 => format!("in {millis} ms"),
        _ => format!("in {} s", delay.as_secs_f64().round()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_backs_off_only_while_nothing_arrives() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn waits_are_told_in_words() {
        assert_eq!(when(Duration::ZERO), "now");
        assert_eq!(when(Duration::from_millis(250)), "in 250 ms");
        assert_eq!(when(Duration::from_secs(1)), "in 1 s");
        assert_eq!(when(MAX_BACKOFF), format!("in {} s", MAX_BACKOFF.as_secs()));
    }
}
