//! Server-Sent Events frames other than an event's own (which is made at
//! publish, see [`super::event_forms`]).

use bytes::Bytes;

use crate::model::Gap;

/// The Server-Sent Events frame of a notice of lost events: `event: gap`,
/// `data:` the notice's JSON.
pub fn sse_gap(gap: &Gap) -> Bytes {
    Bytes::from(format!("event: gap\ndata: {}\n\n", gap.to_json()))
}

/// The comment that keeps an idle stream open through proxies.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The first frame of a stream: how long a client waits before it
/// reconnects, in milliseconds.
pub fn retry(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}
