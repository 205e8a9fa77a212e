//! The Redis Streams broker, for several longlat instances behind a load
//! balancer.
//!
//! Publishing appends to one stream (`XADD … MAXLEN ~ <history size>`), and
//! the stream id is the event id. Each process runs one reader task that
//! follows the stream (`XREAD BLOCK`) from the last id it saw and appends to
//! the local [`Hub`]; every subscriber of every transport is served from
//! there. So Redis sees one reader per process, not one per client, and an
//! instance delivers its own publishes only when they come back through its
//! reader: one ordered source, no double delivery.
//!
//! When Redis goes away, publishing fails fast (503 at the HTTP layer),
//! subscribers stay connected, [`Broker::is_ready`] turns false, and the
//! reader reconnects with backoff and resumes from its last id, so nothing
//! appended meanwhile is missed or delivered twice. The first publish after
//! Redis is back is taken (see `RedisBroker::reconnect_publisher`): the
//! publishing connection is made again at once, not left to a backoff.
//!
//! When Redis comes back without the stream (restarted without
//! persistence, flushed), the events it held are gone: the `generation`
//! module says how every instance finds out and tells its clients.
//!
//! **Zones.** Zones are kept in the hash `<stream>:zones`, and a change
//! is also appended to the stream, so every instance's reader applies it
//! to its local zone index in order with the positions. The publishing
//! instance finds the zones a position is in or near in that index, and
//! the publish script decides the zone events from the tracker's
//! membership kept in Redis and appends them right after the position:
//! every instance delivers the same zone events with the same ids. Who is
//! inside a zone is read from Redis. These keys are beside the stream,
//! not declared to the scripts: longlat needs a Redis that is not a
//! cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::generation::{Keys, Publishing, Scripts};
use super::{Broker, BrokerError, Hub, HubSettings, Occupants, ZoneChange};
use crate::geofence::{Geofences, stored_zone};
use crate::model::{Crossing, Event, EventId, PositionEvent, Transition, ValidPosition, Zone};
use crate::shutdown::Shutdown;
use crate::stats;

/// How long a publish may wait for Redis before it is refused.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one `XREAD` blocks before it is issued again.
const READ_BLOCK_MS: u64 = 5_000;
/// Most entries taken by one `XREAD`.
const READ_BATCH: usize = 512;
/// Longest wait between two reconnection attempts: an attempt on a Redis
/// that is down costs one refused connection, and a Redis that is back
/// should be used at once.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

mod generation;

/// The stored fields of a position; the id is the stream entry's. The
/// optional fields are left out when absent, so an entry written before
/// they existed reads with them absent.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPosition {
    longitude: f64,
    latitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracker: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    received_at: OffsetDateTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    recorded_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    altitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    speed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    heading: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    battery: Option<f64>,
}

impl StoredPosition {
    /// What is stored of `event`: all but its id.
    fn of(event: &PositionEvent) -> Self {
        Self {
            longitude: event.longitude,
            latitude: event.latitude,
            tracker: event.tracker.clone(),
            received_at: event.received_at,
            recorded_at: event.recorded_at,
            accuracy: event.accuracy,
            altitude: event.altitude,
            speed: event.speed,
            heading: event.heading,
            battery: event.battery,
        }
    }

    /// The event stored under stream id `id`.
    fn into_event(self, id: EventId) -> PositionEvent {
        PositionEvent {
            id,
            longitude: self.longitude,
            latitude: self.latitude,
            tracker: self.tracker,
            received_at: self.received_at,
            recorded_at: self.recorded_at,
            accuracy: self.accuracy,
            altitude: self.altitude,
            speed: self.speed,
            heading: self.heading,
            battery: self.battery,
        }
    }
}

/// The Redis Streams broker. See the module documentation.
pub struct RedisBroker {
    hub: Arc<Hub>,
    /// The zones, as this instance's reader last applied them.
    geofences: Arc<RwLock<Geofences>>,
    /// The last stream id this instance's reader has read.
    read_through: watch::Receiver<EventId>,
    publisher: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    max_len: usize,
    ready: Arc<AtomicBool>,
    /// Redis was lost since the publishing connection last worked.
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("stream", &self.keys.stream)
            .finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}

impl RedisBroker {
    /// Connects to Redis at `url`, loads the last `settings.capacity` events
    /// of `stream` into the hub, and starts the reader task, which ends on
    /// `shutdown`. Fails when Redis cannot be reached.
    pub async fn connect(
        url: &str,
        stream: &str,
        settings: HubSettings,
        hysteresis: f64,
        shutdown: Shutdown,
    ) -> Result<(Arc<Self>, JoinHandle<()>), BrokerError> {
        let client = Client::open(url).map_err(unavailable)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF);
        let publisher = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(unavailable)?;
        let mut reader = reader_connection(&client).await?;
        let keys = Keys::new(stream);
        let scripts = Scripts::load(&mut reader).await.map_err(unavailable)?;
        let generation = scripts
            .generation(&mut reader, &keys, EventId::default())
            .await
            .map_err(unavailable)?;
        let (events, horizon) = load_history(&mut reader, stream, settings.capacity).await?;
        // After the history: a change made in between is in both, and
        // applying it again is the same.
        let mut geofences = Geofences::new(hysteresis);
        geofences.reset(load_zones(&mut reader, &keys).await?);
        let geofences = Arc::new(RwLock::new(geofences));
        let hub = Hub::new(settings, horizon);
        let last = append_all(&hub, events, horizon);
        let (read_through, seen) = watch::channel(last);
        let ready = Arc::new(AtomicBool::new(true));
        let lost = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            client,
            keys: keys.clone(),
            scripts: scripts.clone(),
            generation,
            capacity: settings.capacity,
            hub: hub.clone(),
            geofences: geofences.clone(),
            read_through,
            ready: ready.clone(),
            lost: lost.clone(),
            last,
        };
        let task = tokio::spawn(follower.run(reader, shutdown));
        let broker = Arc::new(Self {
            hub,
            geofences,
            read_through: seen,
            publisher,
            keys,
            scripts,
            max_len: settings.capacity,
            ready,
            lost,
        });
        Ok((broker, task))
    }

    /// Makes sure the publishing connection works again after Redis was
    /// lost. redis-rs's connection manager keeps the error of its last
    /// reconnection attempt and returns it to the next command, which only
    /// then sets off a new attempt: so the first publish after Redis came
    /// back would be refused, however long ago it came back. An `XADD` must
    /// not be sent twice, so an idempotent `PING` goes first, and a second
    /// one waits for the reconnection the first set off.
    async fn reconnect_publisher(&self) -> Result<(), BrokerError> {
        let mut conn = self.publisher.clone();
        let ping = || redis::cmd("PING");
        let probe = async {
            match ping().query_async::<()>(&mut conn).await {
                Ok(()) => Ok(()),
                Err(_) => ping().query_async::<()>(&mut conn).await,
            }
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, probe).await {
            Ok(Ok(())) => {
                self.lost.store(false, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(err)) => Err(unavailable(err)),
            Err(_) => Err(unavailable("no answer from redis")),
        }
    }
}

/// Appends `events` (oldest first) to `hub`, and returns the last id seen:
/// the last event's, or `horizon` when there are none.
fn append_all(hub: &Hub, events: Vec<Arc<Event>>, horizon: EventId) -> EventId {
    let mut last = horizon;
    for event in events {
        last = event.id();
        hub.append_with(|_| Some(event));
    }
    last
}

async fn reader_connection(client: &Client) -> Result<MultiplexedConnection, BrokerError> {
    // XREAD BLOCK must not be cut short by the default response timeout.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(unavailable)
}

/// The newest `count` entries, oldest first, and the horizon below which a
/// cursor is older than what is kept.
async fn load_history(
    conn: &mut MultiplexedConnection,
    stream: &str,
    count: usize,
) -> Result<(Vec<Arc<Event>>, EventId), BrokerError> {
    // The stream's last id first, then the entries up to it: an entry added
    // in between lies above it, where the reader starts, rather than being
    // taken for one from before the history and missed.
    let newest = last_generated_id(conn, stream).await?;
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg(newest.to_string())
        .arg("-")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let mut events: Vec<Arc<Event>> = reply
        .ids
        .iter()
        .rev()
        .filter_map(|entry| match decode(entry) {
            Entry::Event(event) => Some(event),
            // Zones are read whole after the history.
            Entry::Zone(_) | Entry::Other => None,
        })
        .collect();
    events.dedup_by_key(|e| e.id());
    let horizon = match events.first() {
        Some(oldest) => oldest.id().just_before(),
        None => newest,
    };
    Ok((events, horizon))
}

/// The last id the stream ever issued (its entries may all be trimmed), or
/// `0-0` when the stream does not exist yet.
async fn last_generated_id(
    conn: &mut MultiplexedConnection,
    stream: &str,
) -> Result<EventId, BrokerError> {
    let exists: bool = redis::cmd("EXISTS")
        .arg(stream)
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    if !exists {
        return Ok(EventId::default());
    }
    let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let id: Option<String> = info
        .get("last-generated-id")
        .and_then(|v| redis::from_redis_value(v.clone()).ok());
    Ok(id.and_then(|id| id.parse().ok()).unwrap_or_default())
}

/// Rebuilds an event from a stream entry; entries that are not longlat's
/// (written by hand, say) are skipped with a warning.
/// What a stream entry is.
enum Entry {
    /// A position, or a zone event.
    Event(Arc<Event>),
    /// A change of a zone.
    Zone(ZoneChange),
    /// Not one longlat wrote (said in the log).
    Other,
}

fn decode(entry: &StreamId) -> Entry {
    let Ok(id) = entry.id.parse::<EventId>() else {
        return Entry::Other;
    };
    if let Some(change) = entry.get::<String>("c") {
        return match zone_change(&change, entry) {
            Some(change) => Entry::Zone(change),
            None => {
                tracing::warn!(%id, "skipping a zone change longlat cannot read");
                Entry::Other
            }
        };
    }
    let stored = entry
        .get::<String>("p")
        .and_then(|json| serde_json::from_str::<StoredPosition>(&json).ok());
    let Some(stored) = stored else {
        tracing::warn!(%id, "skipping a stream entry that is not a longlat position");
        return Entry::Other;
    };
    let Some(crossing) = entry.get::<String>("z") else {
        return Entry::Event(Arc::new(Event::new(stored.into_event(id))));
    };
    match zone_event(id, &crossing, entry) {
        Some((of, transition)) => {
            Entry::Event(Arc::new(Event::zone(stored.into_event(of), transition)))
        }
        None => {
            tracing::warn!(%id, "skipping a zone event longlat cannot read");
            Entry::Other
        }
    }
}

/// A zone event entry's own part: `z` (`enter` or `leave`), `zone`, and
/// `of`, its position's id.
fn zone_event(id: EventId, crossing: &str, entry: &StreamId) -> Option<(EventId, Transition)> {
    let crossing = Crossing::named(crossing)?;
    let zone = entry.get::<String>("zone")?;
    let of: EventId = entry.get::<String>("of")?.parse().ok()?;
    let transition = Transition { id, crossing, zone };
    Some((of, transition))
}

/// A zone change entry: `c` (`put` or `delete`), `zone`, `def`.
fn zone_change(change: &str, entry: &StreamId) -> Option<ZoneChange> {
    let name = entry.get::<String>("zone")?;
    match change {
        "put" => {
            let def = entry.get::<String>("def")?;
            let zone = stored_zone(serde_json::from_str(&def).ok()?).ok()?;
            Some(ZoneChange::Put(zone))
        }
        "delete" => Some(ZoneChange::Delete(name)),
        _ => None,
    }
}

/// Applies a zone change to this instance's zones.
fn apply(geofences: &RwLock<Geofences>, change: ZoneChange) {
    super::write(geofences).change(change);
}

/// Every zone in `<stream>:zones`; one that no longer validates is left
/// out, and said so.
async fn load_zones(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
) -> Result<Vec<Zone>, BrokerError> {
    let stored: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.zones())
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let zones = stored.into_iter().filter_map(|(name, def)| {
        let zone = serde_json::from_str(&def)
            .map_err(|err| err.to_string())
            .and_then(stored_zone);
        zone.inspect_err(|err| tracing::warn!(zone = %name, %err, "a zone in redis was left out"))
            .ok()
    });
    Ok(zones.collect())
}

/// The one reader of the stream in this process.
struct Follower {
    client: Client,
    keys: Keys,
    scripts: Scripts,
    /// The token of the generation the hub holds.
    generation: String,
    /// How many events to load when history starts again.
    capacity: usize,
    hub: Arc<Hub>,
    geofences: Arc<RwLock<Geofences>>,
    /// Tells waiting zone changes how far the stream has been read.
    read_through: watch::Sender<EventId>,
    ready: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    last: EventId,
}

impl Follower {
    async fn run(mut self, first: MultiplexedConnection, shutdown: Shutdown) {
        let mut conn = Some(first);
        let mut backoff = Duration::from_millis(100);
        loop {
            let step = async {
                match conn.as_mut() {
                    Some(c) => self.read_once(c).await,
                    None => self.reconnect().await.map(|c| conn = Some(c)),
                }
            };
            let result = tokio::select! {
                () = shutdown.wait() => return,
                result = step => result,
            };
            match result {
                Ok(()) => {
                    self.ready.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                }
                Err(err) => {
                    self.lost.store(true, Ordering::Relaxed);
                    if self.ready.swap(false, Ordering::Relaxed) {
                        tracing::warn!(%err, "lost redis; subscribers stay connected, publishing is refused");
                    }
                    conn = None;
                    tokio::select! {
                        () = shutdown.wait() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn reconnect(&mut self) -> Result<MultiplexedConnection, BrokerError> {
        let mut conn = reader_connection(&self.client).await?;
        tracing::info!("reconnected to redis; resuming from {}", self.last);
        self.check_generation(&mut conn).await?;
        Ok(conn)
    }

    /// Starts history again when the stream is not the one the hub holds
    /// (see the `generation` module), starting a generation if there is none.
    async fn check_generation(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), BrokerError> {
        let token = self
            .scripts
            .generation(conn, &self.keys, self.last)
            .await
            .map_err(unavailable)?;
        if token == self.generation {
            return Ok(());
        }
        let (events, horizon) = load_history(conn, &self.keys.stream, self.capacity).await?;
        tracing::warn!(
            stream = %self.keys.stream,
            "the redis stream was lost or replaced: history starts again, \
             and clients are told their cursors are too old"
        );
        self.hub.restart(horizon);
        self.last = append_all(&self.hub, events, horizon);
        let zones = load_zones(conn, &self.keys).await?;
        super::write(&self.geofences).reset(zones);
        self.generation = token;
        self.read_through.send_replace(self.last);
        Ok(())
    }

    /// One blocking read from the last id seen; appends what arrived.
    async fn read_once(&mut self, conn: &mut MultiplexedConnection) -> Result<(), BrokerError> {
        // The marker is read after the entries, in the same pipeline: if it
        // still names the hub's generation, so did the stream they came from.
        let (reply, marker): (Option<StreamReadReply>, Option<String>) = redis::pipe()
            .cmd("XREAD")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(self.last.to_string())
            .cmd("GET")
            .arg(self.keys.marker())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if marker.as_deref() != Some(self.generation.as_str()) {
            // The entries may be from either generation: history is read
            // again from the stream as it is now.
            return self.check_generation(conn).await;
        }
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        for entry in entries {
            if let Ok(id) = entry.id.parse::<EventId>() {
                self.last = self.last.max(id);
            }
            match decode(&entry) {
                // The hub ignores ids it already has.
                Entry::Event(event) => {
                    self.hub
                        .append_with(|last| (event.id() > last).then_some(event));
                }
                Entry::Zone(change) => apply(&self.geofences, change),
                Entry::Other => {}
            }
        }
        self.read_through.send_replace(self.last);
        Ok(())
    }
}

impl RedisBroker {
    /// What the publish script takes for each position: its stored JSON,
    /// and for a tracker's position when there are zones, the zones it is
    /// in and near.
    fn publishing(&self, drafts: &[PositionEvent]) -> serde_json::Result<Vec<Publishing>> {
        let geofences = super::read(&self.geofences);
        drafts
            .iter()
            .map(|draft| {
                let json = serde_json::to_string(&StoredPosition::of(draft))?;
                let (tracker, near) = match (&draft.tracker, geofences.is_empty()) {
                    (Some(tracker), false) => {
                        let near = geofences.near(draft.longitude, draft.latitude);
                        let names = |zones: &[Arc<Zone>]| {
                            let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
                            names.join(",")
                        };
                        let near = format!("{}|{}", names(&near.inside), names(&near.border));
                        (tracker.clone(), near)
                    }
                    _ => (String::new(), "|".into()),
                };
                let fix = (draft.fix_time().unix_timestamp_nanos() / 1_000).to_string();
                Ok(Publishing {
                    json,
                    tracker,
                    fix,
                    near,
                })
            })
            .collect()
    }
}

impl Broker for RedisBroker {
    fn publish_batch(
        &self,
        positions: Vec<ValidPosition>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, BrokerError>> {
        Box::pin(async move {
            let received_at = OffsetDateTime::now_utc();
            let drafts: Vec<PositionEvent> = positions
                .into_iter()
                .map(|position| position.into_event(EventId::default(), received_at))
                .collect();
            let stored = self.publishing(&drafts).map_err(unavailable)?;
            if self.lost.load(Ordering::Relaxed) {
                self.reconnect_publisher().await?;
            }
            let mut conn = self.publisher.clone();
            let seen = self.hub.last_id();
            let ids = self
                .scripts
                .publish(&mut conn, &self.keys, seen, self.max_len, &stored)
                .await
                .map_err(|err| {
                    if err.is_io_error() || err.is_timeout() {
                        self.lost.store(true, Ordering::Relaxed);
                    }
                    unavailable(err)
                })?;
            if ids.len() != drafts.len() {
                return Err(unavailable("redis stored a batch only in part"));
            }
            // After each position's id, `<id> <enter|leave> <zone>` for
            // each zone event it made.
            let made = ids.iter().flat_map(|ids| ids.iter().skip(1));
            for crossing in made.filter_map(|e| Crossing::named(e.split(' ').nth(1)?)) {
                stats::zone_event(crossing);
            }
            ids.iter()
                .zip(drafts)
                .map(|(ids, draft)| {
                    let id = ids.first().ok_or_else(|| unavailable("no id"))?;
                    let id = id.parse().map_err(unavailable)?;
                    Ok(Arc::new(Event::new(PositionEvent { id, ..draft })))
                })
                .collect()
        })
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn geofences(&self) -> &RwLock<Geofences> {
        &self.geofences
    }

    /// Changed in Redis, then answered once this instance's reader has
    /// applied the change (in stream order), so a position published here
    /// next is judged by it.
    fn change_zone(&self, change: ZoneChange) -> BoxFuture<'_, Result<bool, BrokerError>> {
        Box::pin(async move {
            let (name, def) = match &change {
                ZoneChange::Put(zone) => (
                    zone.name.clone(),
                    Some(serde_json::to_string(zone).map_err(unavailable)?),
                ),
                ZoneChange::Delete(name) => (name.clone(), None),
            };
            let mut conn = self.publisher.clone();
            let (existed, id) = self
                .scripts
                .change_zone(
                    &mut conn,
                    &self.keys,
                    self.hub.last_id(),
                    self.max_len,
                    &name,
                    def.as_deref(),
                )
                .await
                .map_err(unavailable)?;
            if let Ok(id) = id.parse::<EventId>() {
                let mut read = self.read_through.clone();
                let applied = read.wait_for(|through| *through >= id);
                if tokio::time::timeout(COMMAND_TIMEOUT, applied)
                    .await
                    .is_err()
                {
                    // Applied here now; the reader applies it again in order.
                    apply(&self.geofences, change);
                }
            }
            Ok(existed)
        })
    }

    /// Read from Redis, where the publish script keeps membership.
    fn occupants(&self, name: String) -> BoxFuture<'_, Result<Option<Occupants>, BrokerError>> {
        Box::pin(async move {
            if self.zone(&name).is_none() {
                return Ok(None);
            }
            let mut conn = self.publisher.clone();
            let stored: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(self.keys.occupants(&name))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let mut occupants: Occupants = stored
                .into_iter()
                .filter_map(|(tracker, id)| Some((tracker, id.parse().ok()?)))
                .collect();
            occupants.sort();
            Ok(Some(occupants))
        })
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
