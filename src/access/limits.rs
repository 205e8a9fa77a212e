//! What one client may cost: publishes per second, refused credentials per
//! minute, and open streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Caller, Credential};
use crate::error::Error;

/// Who a publish counts against: a credential's subject, else an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RateKey {
    Subject(Arc<str>),
    Address(IpAddr),
}

/// `--publish-rate`: a token bucket per caller (GCRA, from `governor`).
pub struct PublishRate {
    limiter: DefaultKeyedRateLimiter<RateKey>,
    clock: DefaultClock,
    burst: NonZeroU32,
}

impl std::fmt::Debug for PublishRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishRate")
            .field("callers", &self.limiter.len())
            .finish()
    }
}

impl PublishRate {
    /// `per_second` publishes per second per caller with bursts of `burst`
    /// (`per_second` when 0); `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let clock = DefaultClock::default();
        let limiter = RateLimiter::dashmap_with_clock(
            Quota::per_second(rate).allow_burst(burst),
            clock.clone(),
        );
        Some(Self {
            limiter,
            clock,
            burst,
        })
    }

    /// Counts one publish by `caller`.
    pub fn check(&self, caller: &Caller) -> Result<(), Error> {
        self.check_n(caller, NonZeroU32::MIN)
    }

    /// Counts the `more` publishes of a batch beyond the one [`Self::check`]
    /// counted when it was admitted: all of them are allowed now, or none
    /// is counted. A batch larger than the burst could never be, and is
    /// refused as such.
    pub fn check_more(&self, caller: &Caller, more: NonZeroU32) -> Result<(), Error> {
        if more.get() >= self.burst.get() {
            return Err(Error::InvalidBody {
                detail: format!(
                    "the batch is larger than one caller may publish at once \
                     (--publish-burst allows {}): send smaller batches",
                    self.burst
                ),
                field: None,
            });
        }
        self.check_n(caller, more)
    }

    /// Counts `count` publishes by `caller` at once.
    fn check_n(&self, caller: &Caller, count: NonZeroU32) -> Result<(), Error> {
        let key = match &caller.credential {
            Credential::Valid(grant) => grant
                .subject
                .clone()
                .map_or(RateKey::Address(caller.ip), RateKey::Subject),
            _ => RateKey::Address(caller.ip),
        };
        let wait = match self.limiter.check_key_n(&key, count) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()),
            // More than the burst: `check_more` refuses that first.
            Err(_) => Duration::from_secs(1),
        };
        Err(Error::RateLimited {
            retry_after_secs: retry_after_secs(wait),
        })
    }

    /// Drops the state of callers whose bucket is full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Whole seconds to wait for `wait`, rounded up (for `Retry-After`).
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// `--max-failed-auth-per-minute`: refused credentials per client address,
/// against guessing tokens. An address over the limit is refused (429) for
/// every credential it presents, valid ones included and without looking
/// at them, until the limiter would take one more failure from it.
pub struct FailedCredentials {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    /// Addresses over the limit, until when. Read on every credential, so
    /// a read lock; written only when an address goes over.
    blocked: RwLock<HashMap<IpAddr, Instant>>,
}

impl std::fmt::Debug for FailedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailedCredentials")
            .field("addresses", &self.limiter.len())
            .finish()
    }
}

impl FailedCredentials {
    /// At most `per_minute` refused credentials per address, all at once or
    /// spread out; `None` when `per_minute` is 0 (no limit).
    pub fn new(per_minute: u32) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        let clock = DefaultClock::default();
        Some(Self {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            blocked: RwLock::default(),
        })
    }

    /// The seconds `ip` must wait before presenting a credential, if it is
    /// over the limit.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let blocked = self.blocked.read().unwrap_or_else(|p| p.into_inner());
        let until = *blocked.get(&ip)?;
        let wait = until.checked_duration_since(Instant::now())?;
        Some(retry_after_secs(wait))
    }

    /// Counts one refused credential from `ip`; the seconds to wait when
    /// this one puts it over the limit.
    pub fn failed(&self, ip: IpAddr) -> Option<u64> {
        let not_until = self.limiter.check_key(&ip).err()?;
        let wait = not_until.wait_time_from(self.clock.now());
        let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
        blocked.insert(ip, Instant::now() + wait);
        tracing::warn!(%ip, wait_secs = wait.as_secs_f64(), "too many refused credentials from one address; refusing its credentials for a while");
        Some(retry_after_secs(wait))
    }

    /// Drops the state of addresses no longer over the limit.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
        blocked.retain(|_, until| *until > now);
    }
}

/// `--max-connections` and `--max-connections-per-ip`: open streams.
#[derive(Debug, Default)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One open stream's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: Option<IpAddr>,
}

impl ConnectionLimits {
    /// Limits of `max_total` streams and `max_per_ip` per address (0: none).
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            ..Self::default()
        }
    }

    /// The same limits, with at most `streams` in total as well.
    pub fn capped(&self, streams: usize) -> Self {
        let max_total = match self.max_total {
            0 => streams,
            configured => configured.min(streams),
        };
        Self::new(max_total, self.max_per_ip)
    }

    /// A place for one more stream from `ip`, or 503 `too-many-connections`.
    pub fn acquire(limits: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Error> {
        let total = limits.total.fetch_add(1, Ordering::AcqRel) + 1;
        // From here on the permit undoes what was counted, whatever happens.
        let mut permit = ConnectionPermit {
            limits: limits.clone(),
            ip: None,
        };
        if limits.max_total > 0 && total > limits.max_total {
            return Err(Error::TooManyConnections(format!(
                "the server is at its limit of {} open streams; retry later",
                limits.max_total
            )));
        }
        if limits.max_per_ip > 0 {
            let mut per_ip = limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let open = per_ip.entry(ip).or_default();
            if *open >= limits.max_per_ip {
                return Err(Error::TooManyConnections(format!(
                    "{ip} already has {} open streams, the most one address may hold",
                    limits.max_per_ip
                )));
            }
            *open += 1;
            permit.ip = Some(ip);
        }
        Ok(permit)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(open) = per_ip.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn places_are_given_back_when_permits_drop() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let first = ConnectionLimits::acquire(&limits, a).expect("first");
        let second = ConnectionLimits::acquire(&limits, a).expect("second");
        assert!(
            ConnectionLimits::acquire(&limits, a).is_err(),
            "per address"
        );
        let third = ConnectionLimits::acquire(&limits, b).expect("another address");
        assert!(ConnectionLimits::acquire(&limits, b).is_err(), "in total");
        drop(first);
        let _again = ConnectionLimits::acquire(&limits, a).expect("a place was freed");
        drop((second, third));
        assert_eq!(limits.total.load(Ordering::Acquire), 1);
        assert_eq!(limits.per_ip.lock().unwrap().get(&a), Some(&1));
        assert_eq!(limits.per_ip.lock().unwrap().get(&b), None);
    }

    #[test]
    fn an_address_over_its_refused_credentials_is_blocked_and_others_are_not() {
        let failed = FailedCredentials::new(3).expect("a limit");
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for _ in 0..3 {
            assert_eq!(failed.failed(a), None);
            assert_eq!(failed.blocked(a), None);
        }
        // One failure per 20 s comes back: the fourth waits for it.
        assert_eq!(failed.failed(a), Some(20));
        assert_eq!(failed.blocked(a), Some(20));
        assert_eq!(failed.blocked(b), None);
        assert_eq!(failed.failed(b), None);
        failed.forget_idle();
        assert_eq!(failed.blocked(a), Some(20), "still blocked");
    }

    #[test]
    fn a_caller_over_its_rate_is_told_how_long_to_wait() {
        let rate = PublishRate::new(1, 2).expect("a limit");
        let caller = Caller {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            credential: Credential::Missing,
        };
        assert!(rate.check(&caller).is_ok());
        assert!(rate.check(&caller).is_ok());
        match rate.check(&caller) {
            Err(Error::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        let other = Caller {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
            credential: Credential::Missing,
        };
        assert!(
            rate.check(&other).is_ok(),
            "each address has its own bucket"
        );
    }
}
