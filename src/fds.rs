//! File descriptors: every connection holds one, and a process at its limit
//! cannot even accept a health check. At start the soft limit is raised to
//! the hard one, and a reserve is kept back from long-lived streams, so that
//! when streams fill the rest, new ones are refused (503, close 1013) while
//! short requests (`/healthz`, publishes) still find a descriptor.

/// Most descriptors kept back from streams (a quarter of a smaller limit).
const RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard one; the limit in force
/// afterwards, when it is known.
pub fn raise_limit() -> Option<u64> {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).ok()?;
    if soft < hard && rlimit::setrlimit(Resource::NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// How many descriptors this process has open now, where the system says.
fn open_now() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count() as u64)
}

/// Descriptors kept back from streams under `limit`.
pub fn reserve(limit: u64) -> u64 {
    RESERVE.min(limit / 4)
}

/// Raises the limit, then how many streams may be open at once so that
/// [`reserve`] descriptors stay free for everything else: the limit, less
/// what is open now (listener, broker, runtime), less the reserve (at
/// least one). `None` when the limit or the open count cannot be read.
pub fn stream_capacity() -> Option<usize> {
    let limit = raise_limit()?;
    let open = open_now()?;
    // At least one, as a limit of 0 would mean none.
    let streams = limit.saturating_sub(open + reserve(limit)).max(1);
    let streams = usize::try_from(streams).ok()?;
    tracing::info!(
        open_file_limit = limit,
        kept_for_requests = reserve(limit),
        streams,
        "streams are limited by the open-file limit"
    );
    Some(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_a_quarter_of_a_small_limit_and_64_of_a_large_one() {
        assert_eq!(reserve(128), 32);
        assert_eq!(reserve(1_048_576), 64);
        assert_eq!(reserve(0), 0);
    }
}
