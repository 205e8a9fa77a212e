//! The files under the data directory: an append-only log of CRC-checked
//! records in numbered segments, a snapshot of each tracker's latest
//! position, and a lock. Blocking I/O only; the writer task calls it from a
//! blocking thread.
//!
//! Layout of `--data-dir`:
//!
//! - `LOCK`: held with an exclusive `flock` while a process uses the
//!   directory, so a second one refuses to start.
//! - `<first sequence number, 20 digits>.log`: a segment. A 16-byte header
//!   (`longlat-events1\n`), then records: payload length (u32 LE), CRC-32 of
//!   the length and payload (u32 LE), payload. The payload is the event:
//!   id millis and seq (u64 LE each), arrival time (i64 seconds, u32
//!   nanoseconds), longitude and latitude (f64 LE), tracker length (u8) and
//!   its bytes; then, only when the device sent any of them, the optional
//!   section: a byte of flags naming which follow, in this order, the fix
//!   time (i64 seconds, u32 nanoseconds), accuracy, altitude, speed,
//!   heading and battery (f64 LE each), and for a zone event (flag 64) its
//!   crossing (a byte: 0 enter, 1 leave), its position's id (u64 LE millis
//!   and seq; the record's own id is the zone event's) and the zone's name
//!   (length u8, bytes). A record says its length, so
//!   records written before the section existed read with those fields
//!   absent, and a record without them is written exactly as it was then.
//!   A zone put or deleted is a record too (flag 128 alone, the fixed part
//!   holding its id and time): a byte (0 put, 1 delete), the zone's name
//!   (length u8, bytes), and for a put the zone's JSON (length u32 LE,
//!   bytes).
//! - `zones.json`: every zone as of an event id (`through`), and
//!   `inside.json`: which trackers were inside which as of an event id;
//!   written (temporary file, synced, renamed) before segments are deleted,
//!   `zones.json` only when a zone changed since it was last written.
//!   Recovery replays onto them the zone changes and zone events after
//!   their ids that the log holds.
//! - `latest.snapshot`: the same header shape (`longlat-latest1\n`) and
//!   records, one per tracker: written (to a temporary file, synced, then
//!   renamed) before segments are deleted, so a tracker's last position
//!   outlives the events that aged out.
//!
//! Recovery: only the last segment may end in a torn write (a crash while
//! a batch was being written, before it was synced and acknowledged). A
//! damaged record there with no valid record anywhere after it is cut off,
//! and the cut is logged. Damage followed by valid records, damage in any
//! other segment, or a file that does not start with the header is
//! corruption: opening fails and nothing is changed.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::broker::ZoneChange;
use crate::geofence::{KeptInside, KeptZones};
use crate::model::{Crossing, EventId, PositionEvent, Transition};

const SEGMENT_MAGIC: &[u8; 16] = b"longlat-events1\n";
const SNAPSHOT_MAGIC: &[u8; 16] = b"longlat-latest1\n";
const SNAPSHOT: &str = "latest.snapshot";
const ZONES: &str = "zones.json";
const INSIDE: &str = "inside.json";
const LOCK: &str = "LOCK";
/// Length and CRC in front of every payload.
const RECORD_HEADER: usize = 8;
/// Fixed part of a payload: id, arrival time, coordinates, tracker length.
const PAYLOAD_FIXED: usize = 16 + 12 + 16 + 1;
/// Largest optional section: flags, fix time, five numbers, a zone event's
/// crossing, position id and zone name.
const OPTIONAL_MAX: usize = 1 + 12 + 5 * 8 + 1 + 16 + 1 + 255;
/// Largest payload: a zone's record, whose JSON may be long (a polygon of
/// 10,000 positions is under 1 MiB); an event's is much shorter (the fixed
/// part, the longest tracker name and the optional section).
const PAYLOAD_MAX: usize = 16 << 20;
const _: () = assert!(PAYLOAD_FIXED + 255 + OPTIONAL_MAX < PAYLOAD_MAX);
/// Flag of the fix time in the optional section; the numbers follow it
/// (`NUMBER_FLAGS`).
const RECORDED_AT: u8 = 1;
/// Flags of the optional numbers, in the order they are written.
const NUMBER_FLAGS: [u8; 5] = [2, 4, 8, 16, 32];
/// Flag of a zone event's part, after the numbers.
const ZONE_EVENT: u8 = 64;
/// Flag of a zone change's record: alone, and what follows is the change.
const ZONE_CHANGE: u8 = 128;
/// Every flag of an event's optional section.
const KNOWN_FLAGS: u8 = 0b0111_1111;
/// Bytes of zeros the active segment is extended by at a time.
const PREALLOCATE: u64 = 1 << 20;

/// Why the data directory cannot be used; opening changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the directory's lock.
    #[error("{0} is in use by another longlat process (its LOCK is held)")]
    Locked(PathBuf),
    /// A file is damaged, or is not one longlat wrote.
    #[error("{path} is {what}: longlat will not change it; restore it or move it away")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        what: String,
    },
    /// The directory or a file in it cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How much the log keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events kept at least (`--history-size`); older whole segments go.
    pub events: u64,
    /// Segments whose newest event is older than this go, when set.
    pub max_age: Option<Duration>,
}

impl Retention {
    /// Events per segment: a quarter of what is kept, so the disk holds at
    /// most about 1¼ times the history, within sensible file sizes.
    fn segment_events(self) -> u64 {
        (self.events / 4).clamp(1024, 1 << 20)
    }
}

/// A record of the log: a position, or a zone event (its transition) with
/// the position that crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The position.
    pub position: PositionEvent,
    /// Set on a zone event.
    pub transition: Option<Transition>,
}

impl Record {
    /// The record's id: the zone event's, else the position's.
    pub fn id(&self) -> EventId {
        self.transition.as_ref().map_or(self.position.id, |t| t.id)
    }
}

/// A zone put or deleted, as the log keeps it.
#[derive(Debug, Clone)]
pub struct ZoneRecord {
    /// Its id, in the events' sequence.
    pub id: EventId,
    /// When it was made.
    pub at: OffsetDateTime,
    /// The change.
    pub change: ZoneChange,
}

/// What a record of the log holds: an event, or a zone change.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A position, or a zone event.
    Event(Record),
    /// A zone put or deleted.
    Zone(ZoneRecord),
}

impl Entry {
    /// The record's id.
    pub fn id(&self) -> EventId {
        match self {
            Self::Event(record) => record.id(),
            Self::Zone(zone) => zone.id,
        }
    }
}

/// What the log held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The newest events (at most `Retention::events`), oldest first.
    pub events: Vec<Record>,
    /// The latest event of each tracker, from the snapshot and the events
    /// read.
    pub latest: Vec<PositionEvent>,
    /// The greatest id stored, even if its segment was not read.
    pub last_id: Option<EventId>,
    /// Bytes of a torn final write that were cut off.
    pub repaired: u64,
    /// Zones as last written.
    pub zones: KeptZones,
    /// Who was inside which zone as last written.
    pub inside: KeptInside,
    /// Every zone change the log holds after `zones.through`, and every
    /// zone event after `inside.through`, oldest first: what recovery
    /// replays onto them.
    pub replay: Vec<Entry>,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

/// The open log. See the module documentation.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Holds the `flock` for as long as the store is open.
    _lock: File,
    /// Every segment, oldest first; the last is the one appended to.
    segments: VecDeque<Segment>,
    /// Shared with syncs still running while the next batch is written.
    active: Arc<File>,
    /// Where the next record goes: the end of the last good one.
    active_len: u64,
    /// The active segment's file length: zeros follow `active_len`.
    allocated: u64,
    /// Sequence number of the next record (records ever appended).
    next_seq: u64,
    /// Bytes of every segment but the active one.
    closed_bytes: u64,
    retention: Retention,
    /// A failed append could not be cut back: the log must not grow.
    broken: bool,
}

impl Store {
    /// Opens (creating if needed) the log in `dir`, locks it, repairs a torn
    /// final write, and reads back what a hub of `retention.events` holds.
    pub fn open(dir: &Path, retention: Retention) -> Result<(Self, Recovered), OpenError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock = lock(dir)?;
        let mut segments = list_segments(dir)?;
        let mut recovered = Recovered::default();
        if segments.is_empty() {
            let path = segment_path(dir, 0);
            create_segment(&path).map_err(io_at(&path))?;
            sync_dir(dir).map_err(io_at(dir))?;
            segments.push_back(Segment { first_seq: 0, path });
        }
        let last = segments.back().expect("at least one segment");
        let (active_len, tail, repaired) = check_last_segment(&last.path)?;
        recovered.repaired = repaired;
        let next_seq = last.first_seq + tail.len() as u64;
        let wanted = next_seq.saturating_sub(retention.events);
        let mut latest = read_snapshot(&dir.join(SNAPSHOT))?;
        recovered.zones = read_json(&dir.join(ZONES))?;
        recovered.inside = read_json(&dir.join(INSIDE))?;
        let (zones_through, inside_through) = (recovered.zones.through, recovered.inside.through);
        let mut keep = |first_seq: u64, entries: Vec<Entry>| {
            // Events older than history still count for their tracker's
            // latest position: they are on disk until their segment goes.
            let skip = wanted.saturating_sub(first_seq) as usize;
            for (at, entry) in entries.into_iter().enumerate() {
                recovered.last_id = recovered.last_id.max(Some(entry.id()));
                // Zones are replayed from wherever they are on disk.
                let replayed = match &entry {
                    Entry::Zone(zone) => zone.id > zones_through,
                    Entry::Event(record) => {
                        record.transition.is_some() && record.id() > inside_through
                    }
                };
                if replayed {
                    recovered.replay.push(entry.clone());
                }
                match entry {
                    Entry::Event(record) if at < skip => remember(&mut latest, &record),
                    Entry::Event(record) => recovered.events.push(record),
                    Entry::Zone(_) => {}
                }
            }
        };
        // Segments wholly older than history are there only when
        // `--history-size` was lowered; they go at the first write.
        for segment in segments.iter().take(segments.len() - 1) {
            keep(
                segment.first_seq,
                read_records(&segment.path, SEGMENT_MAGIC, false)?.0,
            );
        }
        keep(last.first_seq, tail);
        for record in &recovered.events {
            remember(&mut latest, record);
        }
        recovered.latest = latest.into_values().collect();
        let active_path = &segments.back().expect("at least one segment").path;
        let active = OpenOptions::new()
            .write(true)
            .open(active_path)
            .map_err(io_at(active_path))?;
        let allocated = active.metadata().map_err(io_at(active_path))?.len();
        let active = Arc::new(active);
        let mut closed_bytes = 0;
        for segment in segments.iter().take(segments.len() - 1) {
            closed_bytes += std::fs::metadata(&segment.path)
                .map_err(io_at(&segment.path))?
                .len();
        }
        let store = Self {
            dir: dir.to_owned(),
            _lock: lock,
            segments,
            active,
            active_len,
            allocated,
            next_seq,
            closed_bytes,
            retention,
            broken: false,
        };
        Ok((store, recovered))
    }

    /// Writes `events` at the end of the log (not synced). On failure what
    /// was written of them is zeroed, so a later append follows the last
    /// good record and recovery never reads an unacknowledged one; if even
    /// that fails, [`Store::is_broken`] turns true and nothing more is
    /// appended.
    pub fn append(&mut self, events: &[Record]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 64);
        for record in events {
            encode(&mut buf, &record.position, record.transition.as_ref());
        }
        self.write(&buf, events.len())
    }

    /// Writes a zone change at the end of the log (not synced), as
    /// [`Store::append`] writes events.
    pub fn append_zone(&mut self, zone: &ZoneRecord) -> io::Result<()> {
        let mut buf = Vec::new();
        encode_zone(&mut buf, zone)?;
        self.write(&buf, 1)
    }

    /// Writes `count` encoded records; see [`Store::append`].
    fn write(&mut self, buf: &[u8], count: usize) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "an earlier failed write could not be undone",
            ));
        }
        if self.next_seq - self.active_first_seq() >= self.retention.segment_events() {
            self.roll()?;
        }
        let end = self.active_len + buf.len() as u64;
        if end > self.allocated {
            // Best effort: without room for a whole chunk the records
            // below still extend the file themselves.
            let _ = self.preallocate(end);
        }
        let (written, result) = write_at(&self.active, buf, self.active_len);
        if let Err(err) = result {
            if written > 0
                && let Err(undo) = write_at(&self.active, &vec![0; written], self.active_len).1
            {
                self.broken = true;
                return Err(io::Error::other(format!(
                    "{err}; and the partial write could not be undone ({undo})"
                )));
            }
            return Err(err);
        }
        self.active_len = end;
        self.allocated = self.allocated.max(end);
        self.next_seq += count as u64;
        Ok(())
    }

    /// Extends the active segment with zeros past `end`. Overwriting
    /// allocated blocks lets a sync flush data alone: a sync that also
    /// records a larger file costs about 60% more here.
    fn preallocate(&mut self, end: u64) -> io::Result<()> {
        let chunk = PREALLOCATE.max(end - self.allocated);
        let zeros = vec![0; chunk as usize];
        let (written, result) = write_at(&self.active, &zeros, self.allocated);
        self.allocated += written as u64;
        result
    }

    /// The file the last append went to, to sync it while the next batch
    /// is written.
    pub fn syncer(&self) -> Arc<File> {
        self.active.clone()
    }

    /// Whether a failed append left bytes that could not be removed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.active.sync_data()
    }

    fn active_first_seq(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.first_seq)
    }

    /// Closes the active segment (synced) and starts a new one.
    fn roll(&mut self) -> io::Result<()> {
        // The zeros past the last record are not kept in a closed segment.
        self.active.set_len(self.active_len)?;
        self.active.sync_data()?;
        let path = segment_path(&self.dir, self.next_seq);
        let file = create_segment(&path).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
        sync_dir(&self.dir)?;
        self.closed_bytes += self.active_len;
        self.active = Arc::new(file);
        self.active_len = SEGMENT_MAGIC.len() as u64;
        self.allocated = self.active_len;
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            path,
        });
        Ok(())
    }

    /// Whether a segment is due to go: more than enough events are kept
    /// without it, or its newest event is older than the maximum age.
    pub fn has_expired_segment(&self) -> bool {
        let Some(oldest) = self.segments.front() else {
            return false;
        };
        if self.segments.len() < 2 {
            return false;
        }
        let next_first = self.segments[1].first_seq;
        if self.next_seq - next_first >= self.retention.events {
            return true;
        }
        let Some(max_age) = self.retention.max_age else {
            return false;
        };
        // A closed segment is not written again: its modification time is
        // when its newest event arrived.
        std::fs::metadata(&oldest.path)
            .and_then(|m| m.modified())
            .is_ok_and(|at| {
                SystemTime::now()
                    .duration_since(at)
                    .is_ok_and(|age| age > max_age)
            })
    }

    /// Deletes the segments that are due to go, after saving `latest` (the
    /// latest event of every tracker), `inside` (who is inside which zone)
    /// and `zones` (when a zone changed since they were last written), so
    /// none is lost with them.
    pub fn drop_expired<'a>(
        &mut self,
        latest: impl Iterator<Item = &'a PositionEvent>,
        zones: Option<&KeptZones>,
        inside: &KeptInside,
    ) -> io::Result<()> {
        if !self.has_expired_segment() {
            return Ok(());
        }
        write_snapshot(&self.dir, latest)?;
        if let Some(zones) = zones {
            write_json(&self.dir, ZONES, zones)?;
        }
        write_json(&self.dir, INSIDE, inside)?;
        while self.has_expired_segment() {
            let Some(oldest) = self.segments.pop_front() else {
                break;
            };
            let len = std::fs::metadata(&oldest.path).map_or(0, |m| m.len());
            std::fs::remove_file(&oldest.path)?;
            self.closed_bytes = self.closed_bytes.saturating_sub(len);
        }
        sync_dir(&self.dir)
    }

    /// Bytes of all segments.
    pub fn bytes(&self) -> u64 {
        self.closed_bytes + self.active_len
    }

    /// Events in all segments.
    pub fn events(&self) -> u64 {
        self.next_seq - self.segments.front().map_or(0, |s| s.first_seq)
    }
}

/// Keeps `record` as its tracker's latest if it is a position and a later
/// fix than the one kept.
fn remember(latest: &mut HashMap<String, PositionEvent>, record: &Record) {
    let (Some(tracker), None) = (&record.position.tracker, &record.transition) else {
        return;
    };
    let event = &record.position;
    match latest.get_mut(tracker) {
        Some(kept) if event.is_later_fix_than(kept) => *kept = event.clone(),
        Some(_) => {}
        None => {
            latest.insert(tracker.clone(), event.clone());
        }
    }
}

fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(err)) => Err(io_at(&path)(err)),
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

fn list_segments(dir: &Path) -> Result<VecDeque<Segment>, OpenError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        let first_seq = stem
            .parse::<u64>()
            .ok()
            .filter(|_| stem.len() == 20)
            .ok_or_else(|| OpenError::Corrupt {
                path: entry.path(),
                what: "not a segment name longlat writes (20 digits, `.log`)".into(),
            })?;
        segments.push(Segment {
            first_seq,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments.into())
}

fn create_segment(path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    file.write_all(SEGMENT_MAGIC)?;
    file.sync_data()?;
    Ok(file)
}

/// Writes `buf` at `offset`: how much was written, and the error that
/// stopped it.
fn write_at(file: &File, buf: &[u8], offset: u64) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < buf.len() {
        match file.write_at(&buf[written..], offset + written as u64) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (written, Err(err)),
        }
    }
    (written, Ok(()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads the active segment, cutting off a torn final write: its valid
/// length, its events, and the bytes cut.
fn check_last_segment(path: &Path) -> Result<(u64, Vec<Entry>, u64), OpenError> {
    let (events, valid, total) = read_records(path, SEGMENT_MAGIC, true)?;
    if valid < total {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_at(path))?;
        if valid < SEGMENT_MAGIC.len() as u64 {
            file.set_len(0).map_err(io_at(path))?;
            file.write_all(SEGMENT_MAGIC).map_err(io_at(path))?;
        } else {
            file.set_len(valid).map_err(io_at(path))?;
        }
        file.sync_all().map_err(io_at(path))?;
        tracing::warn!(
            path = %path.display(),
            cut = total - valid,
            "cut off a torn final write (a crash during a write that was never acknowledged)"
        );
    }
    Ok((valid.max(SEGMENT_MAGIC.len() as u64), events, total - valid))
}

/// Reads every record of a file: the events, the length of the valid
/// prefix, and the file's length. With `tail_may_tear`, damage with nothing
/// valid after it ends the valid prefix instead of being corruption.
fn read_records(
    path: &Path,
    magic: &[u8; 16],
    tail_may_tear: bool,
) -> Result<(Vec<Entry>, u64, u64), OpenError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_at(path))?;
    let total = bytes.len() as u64;
    let corrupt = |what: String| OpenError::Corrupt {
        path: path.to_owned(),
        what,
    };
    if !bytes.starts_with(magic) {
        if tail_may_tear && magic.starts_with(&bytes) {
            return Ok((Vec::new(), 0, total));
        }
        return Err(corrupt("not a longlat file (its header is wrong)".into()));
    }
    let mut at = magic.len();
    let mut events = Vec::new();
    while at < bytes.len() {
        if bytes[at..].iter().all(|b| *b == 0) {
            // Room made ahead of the records (see `Store::preallocate`).
            return Ok((events, at as u64, at as u64));
        }
        match record_at(&bytes, at) {
            Some((payload, next)) => match decode(payload) {
                Some(event) => {
                    events.push(event);
                    at = next;
                }
                None => {
                    return Err(corrupt(format!(
                        "damaged: the record at byte {at} passes its check but is not an event"
                    )));
                }
            },
            None if tail_may_tear && !any_record_after(&bytes, at) => break,
            None => {
                return Err(corrupt(format!(
                    "damaged: the record at byte {at} fails its check{}",
                    if tail_may_tear {
                        ", and valid records follow it"
                    } else {
                        ""
                    }
                )));
            }
        }
    }
    Ok((events, at as u64, total))
}

/// The payload of the record starting at `at` if it is whole and its CRC
/// matches, and where the next record starts.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + RECORD_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    if !(PAYLOAD_FIXED..=PAYLOAD_MAX).contains(&len) {
        return None;
    }
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = bytes.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
    (checksum(&header[..4], payload) == crc).then_some((payload, at + RECORD_HEADER + len))
}

/// Whether a valid record starts anywhere after the damaged one at `at`.
fn any_record_after(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len()).any(|start| record_at(bytes, start).is_some())
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

fn encode(buf: &mut Vec<u8>, event: &PositionEvent, transition: Option<&Transition>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    let id = transition.map_or(event.id, |t| t.id);
    buf.extend_from_slice(&id.millis.to_le_bytes());
    buf.extend_from_slice(&id.seq.to_le_bytes());
    buf.extend_from_slice(&event.received_at.unix_timestamp().to_le_bytes());
    buf.extend_from_slice(&event.received_at.nanosecond().to_le_bytes());
    buf.extend_from_slice(&event.longitude.to_le_bytes());
    buf.extend_from_slice(&event.latitude.to_le_bytes());
    // Tracker names are at most 64 bytes (validated at publish).
    let tracker = event.tracker.as_deref().unwrap_or("").as_bytes();
    let tracker = &tracker[..tracker.len().min(255)];
    buf.push(tracker.len() as u8);
    buf.extend_from_slice(tracker);
    encode_optional(buf, event, transition);
    let len = ((buf.len() - start - RECORD_HEADER) as u32).to_le_bytes();
    let crc = checksum(&len, &buf[start + RECORD_HEADER..]);
    buf[start..start + 4].copy_from_slice(&len);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The numbers of the optional section, in the order they are written.
fn optional_numbers(event: &PositionEvent) -> [Option<f64>; 5] {
    [
        event.accuracy,
        event.altitude,
        event.speed,
        event.heading,
        event.battery,
    ]
}

/// Writes the optional section, when there is anything to write.
fn encode_optional(buf: &mut Vec<u8>, event: &PositionEvent, transition: Option<&Transition>) {
    let numbers = optional_numbers(event);
    let mut flags = 0;
    if transition.is_some() {
        flags |= ZONE_EVENT;
    }
    if event.recorded_at.is_some() {
        flags |= RECORDED_AT;
    }
    for (flag, number) in NUMBER_FLAGS.iter().zip(&numbers) {
        if number.is_some() {
            flags |= flag;
        }
    }
    if flags == 0 {
        return;
    }
    buf.push(flags);
    if let Some(at) = event.recorded_at {
        buf.extend_from_slice(&at.unix_timestamp().to_le_bytes());
        buf.extend_from_slice(&at.nanosecond().to_le_bytes());
    }
    for number in numbers.into_iter().flatten() {
        buf.extend_from_slice(&number.to_le_bytes());
    }
    if let Some(transition) = transition {
        buf.push(match transition.crossing {
            Crossing::Enter => 0,
            Crossing::Leave => 1,
        });
        buf.extend_from_slice(&event.id.millis.to_le_bytes());
        buf.extend_from_slice(&event.id.seq.to_le_bytes());
        // Zone names are at most 64 bytes (validated when put).
        let zone = transition.zone.as_bytes();
        let zone = &zone[..zone.len().min(255)];
        buf.push(zone.len() as u8);
        buf.extend_from_slice(zone);
    }
}

/// Reads the optional section (empty in a record that has none) into
/// `event`, and a zone event's part into `Some` transition (the record's
/// id becomes the transition's, the position's id is read); `None` when
/// it is not one `encode_optional` writes.
fn decode_optional(section: &[u8], event: &mut PositionEvent) -> Option<Option<Transition>> {
    let Some((&flags, mut rest)) = section.split_first() else {
        return Some(None);
    };
    if flags == 0 || flags & !KNOWN_FLAGS != 0 {
        return None;
    }
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    if flags & RECORDED_AT != 0 {
        let seconds = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let nanos = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let at = OffsetDateTime::from_unix_timestamp(seconds)
            .ok()?
            .replace_nanosecond(nanos)
            .ok()?;
        event.recorded_at = Some(at);
    }
    let mut numbers = [None; 5];
    for (flag, number) in NUMBER_FLAGS.iter().zip(&mut numbers) {
        if flags & flag != 0 {
            *number = Some(f64::from_le_bytes(take(8)?.try_into().ok()?));
        }
    }
    [
        event.accuracy,
        event.altitude,
        event.speed,
        event.heading,
        event.battery,
    ] = numbers;
    let mut transition = None;
    if flags & ZONE_EVENT != 0 {
        let crossing = match take(1)?[0] {
            0 => Crossing::Enter,
            1 => Crossing::Leave,
            _ => return None,
        };
        let millis = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let zone_len = usize::from(take(1)?[0]);
        let zone = std::str::from_utf8(take(zone_len)?).ok()?.to_owned();
        transition = Some(Transition {
            id: event.id,
            crossing,
            zone,
        });
        event.id = EventId { millis, seq };
    }
    rest.is_empty().then_some(transition)
}

fn decode(payload: &[u8]) -> Option<Entry> {
    let u64_at = |at: usize| {
        Some(u64::from_le_bytes(
            payload.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let f64_at = |at: usize| u64_at(at).map(f64::from_bits);
    let seconds = i64::from_le_bytes(payload.get(16..24)?.try_into().ok()?);
    let nanos = u32::from_le_bytes(payload.get(24..28)?.try_into().ok()?);
    let received_at = OffsetDateTime::from_unix_timestamp(seconds)
        .ok()?
        .replace_nanosecond(nanos)
        .ok()?;
    let tracker_len = usize::from(*payload.get(44)?);
    let tracker = payload.get(PAYLOAD_FIXED..PAYLOAD_FIXED + tracker_len)?;
    let tracker = match tracker_len {
        0 => None,
        _ => Some(std::str::from_utf8(tracker).ok()?.to_owned()),
    };
    let mut event = PositionEvent {
        id: EventId {
            millis: u64_at(0)?,
            seq: u64_at(8)?,
        },
        received_at,
        longitude: f64_at(28)?,
        latitude: f64_at(36)?,
        tracker,
        recorded_at: None,
        accuracy: None,
        altitude: None,
        speed: None,
        heading: None,
        battery: None,
    };
    let section = &payload[PAYLOAD_FIXED + tracker_len..];
    if let Some((&ZONE_CHANGE, change)) = section.split_first() {
        let change = decode_zone(change)?;
        let (id, at) = (event.id, event.received_at);
        return Some(Entry::Zone(ZoneRecord { id, at, change }));
    }
    let transition = decode_optional(section, &mut event)?;
    Some(Entry::Event(Record {
        position: event,
        transition,
    }))
}

/// Writes a zone change's record: the fixed part of an event at (0, 0)
/// with no tracker, carrying its id and time, then its own section.
fn encode_zone(buf: &mut Vec<u8>, zone: &ZoneRecord) -> io::Result<()> {
    let (name, json) = match &zone.change {
        ZoneChange::Put(put) => (put.name.as_str(), Some(serde_json::to_vec(put)?)),
        ZoneChange::Delete(name) => (name.as_str(), None),
    };
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    buf.extend_from_slice(&zone.id.millis.to_le_bytes());
    buf.extend_from_slice(&zone.id.seq.to_le_bytes());
    buf.extend_from_slice(&zone.at.unix_timestamp().to_le_bytes());
    buf.extend_from_slice(&zone.at.nanosecond().to_le_bytes());
    buf.extend_from_slice(&[0; 16]);
    buf.push(0);
    buf.push(ZONE_CHANGE);
    buf.push(u8::from(json.is_none()));
    // Zone names are at most 64 bytes (validated when put).
    let name = &name.as_bytes()[..name.len().min(255)];
    buf.push(name.len() as u8);
    buf.extend_from_slice(name);
    if let Some(json) = json {
        if json.len() > PAYLOAD_MAX / 2 {
            buf.truncate(start);
            return Err(io::Error::other("the zone is too large to store"));
        }
        buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
        buf.extend_from_slice(&json);
    }
    let len = ((buf.len() - start - RECORD_HEADER) as u32).to_le_bytes();
    let crc = checksum(&len, &buf[start + RECORD_HEADER..]);
    buf[start..start + 4].copy_from_slice(&len);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Reads a zone change's own section (after its flag).
fn decode_zone(section: &[u8]) -> Option<ZoneChange> {
    let (&kind, rest) = section.split_first()?;
    let (&name_len, rest) = rest.split_first()?;
    let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
    let name = std::str::from_utf8(name).ok()?.to_owned();
    match kind {
        1 if rest.is_empty() => Some(ZoneChange::Delete(name)),
        0 => {
            let (len, json) = rest.split_at_checked(4)?;
            let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
            if json.len() != len {
                return None;
            }
            let zone = crate::geofence::stored_zone(serde_json::from_slice(json).ok()?).ok()?;
            (zone.name == name).then_some(ZoneChange::Put(zone))
        }
        _ => None,
    }
}

fn read_snapshot(path: &Path) -> Result<HashMap<String, PositionEvent>, OpenError> {
    let mut latest = HashMap::new();
    if path.exists() {
        for entry in read_records(path, SNAPSHOT_MAGIC, false)?.0 {
            if let Entry::Event(record) = entry {
                remember(&mut latest, &record);
            }
        }
    }
    Ok(latest)
}

/// Replaces the snapshot atomically: a crash leaves the old one or the new.
fn write_snapshot<'a>(
    dir: &Path,
    latest: impl Iterator<Item = &'a PositionEvent>,
) -> io::Result<()> {
    let mut buf = SNAPSHOT_MAGIC.to_vec();
    for event in latest {
        encode(&mut buf, event, None);
    }
    replace_file(dir, SNAPSHOT, &buf)
}

/// Replaces `dir/name` with `contents` atomically: a crash leaves the old
/// file or the new one.
fn replace_file(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, &path)?;
    sync_dir(dir)
}

/// Replaces `dir/name` with `value` as JSON, atomically.
fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    replace_file(dir, name, &json)
}

/// What `write_json` last wrote to `path`, or the default when none.
fn read_json<T: Default + serde::de::DeserializeOwned>(path: &Path) -> Result<T, OpenError> {
    if !path.exists() {
        return Ok(T::default());
    }
    let bytes = std::fs::read(path).map_err(io_at(path))?;
    serde_json::from_slice(&bytes).map_err(|err| OpenError::Corrupt {
        path: path.to_owned(),
        what: format!("not what longlat writes there: {err}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PositionInput;

    fn event(millis: u64, tracker: Option<&str>) -> PositionEvent {
        let received_at = OffsetDateTime::from_unix_timestamp(1_764_000_000).unwrap();
        PositionInput {
            tracker: tracker.map(str::to_owned),
            ..PositionInput::at(18.5, -33.25)
        }
        .validate()
        .unwrap()
        .into_event(EventId { millis, seq: 0 }, received_at)
    }

    #[test]
    fn a_record_round_trips_with_and_without_its_optional_fields() {
        let bare = event(7, Some("bus-42"));
        let mut full = event(8, Some("alice/phone"));
        full.recorded_at = Some(full.received_at - time::Duration::milliseconds(1500));
        (full.accuracy, full.altitude, full.speed) = (Some(4.5), Some(-12.0), Some(0.0));
        full.battery = Some(100.0);
        let mut some = event(9, None);
        some.heading = Some(359.5);
        for original in [bare, full, some] {
            let mut buf = Vec::new();
            encode(&mut buf, &original, None);
            let (payload, next) = record_at(&buf, 0).unwrap();
            assert_eq!(next, buf.len());
            let Some(Entry::Event(record)) = decode(payload) else {
                panic!("an event reads back as one");
            };
            assert_eq!(record, position(original));
        }
    }

    fn position(position: PositionEvent) -> Record {
        Record {
            position,
            transition: None,
        }
    }

    #[test]
    fn a_zone_event_round_trips_with_its_id_and_its_positions() {
        let mut full = event(8, Some("alice/phone"));
        full.battery = Some(50.0);
        for position in [event(7, Some("bus-42")), full] {
            for crossing in [Crossing::Enter, Crossing::Leave] {
                let transition = Transition {
                    id: position.id.next_after(0),
                    crossing,
                    zone: "depot.north_2".into(),
                };
                let mut buf = Vec::new();
                encode(&mut buf, &position, Some(&transition));
                let (payload, _) = record_at(&buf, 0).unwrap();
                let Some(Entry::Event(record)) = decode(payload) else {
                    panic!("a zone event reads back as an event");
                };
                assert_eq!(record.id(), transition.id);
                assert_eq!(
                    record,
                    Record {
                        position: position.clone(),
                        transition: Some(transition),
                    }
                );
            }
        }
    }

    #[test]
    fn a_zone_change_round_trips_and_is_told_from_an_event() {
        let circle =
            serde_json::json!({"circle": {"longitude": 18.06, "latitude": 59.33, "radius": 150.0}});
        let zone: crate::model::ZoneInput = serde_json::from_value(circle).unwrap();
        let zone = zone.validate("depot.north_2").unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_764_000_000).unwrap();
        for change in [ZoneChange::Put(zone), ZoneChange::Delete("depot".into())] {
            let id = EventId { millis: 9, seq: 4 };
            let mut buf = Vec::new();
            encode_zone(
                &mut buf,
                &ZoneRecord {
                    id,
                    at,
                    change: change.clone(),
                },
            )
            .unwrap();
            let (payload, next) = record_at(&buf, 0).unwrap();
            assert_eq!(next, buf.len());
            let Some(Entry::Zone(read)) = decode(payload) else {
                panic!("a zone change reads back as one");
            };
            assert_eq!((read.id, read.at), (id, at));
            assert_eq!(format!("{:?}", read.change), format!("{change:?}"));
        }
    }

    #[test]
    fn a_record_without_optional_fields_is_the_old_format_byte_for_byte() {
        let mut buf = Vec::new();
        encode(&mut buf, &event(7, Some("ab")), None);
        assert_eq!(buf.len(), RECORD_HEADER + PAYLOAD_FIXED + 2);
        let mut bad = buf.clone();
        // An optional section whose flags name nothing is not one we write.
        bad.push(0);
        bad[..4].copy_from_slice(&((PAYLOAD_FIXED + 3) as u32).to_le_bytes());
        let crc = checksum(&bad[..4], &bad[RECORD_HEADER..]);
        bad[4..8].copy_from_slice(&crc.to_le_bytes());
        let (payload, _) = record_at(&bad, 0).unwrap();
        assert!(decode(payload).is_none());
    }

    #[test]
    fn a_lowered_history_size_reads_less_but_keeps_every_trackers_latest() {
        let dir = std::env::temp_dir().join(format!("longlat-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wide = Retention {
            events: 10_000,
            max_age: None,
        };
        let (mut store, _) = Store::open(&dir, wide).unwrap();
        let mut events = vec![position(event(1, Some("a")))];
        events.extend((2..3000).map(|millis| position(event(millis, None))));
        for batch in events.chunks(100) {
            store.append(batch).unwrap();
        }
        store.sync().unwrap();
        drop(store);
        let narrow = Retention {
            events: 10,
            max_age: None,
        };
        let (store, recovered) = Store::open(&dir, narrow).unwrap();
        assert_eq!(recovered.events.len(), 10);
        assert_eq!(
            recovered.last_id,
            Some(EventId {
                millis: 2999,
                seq: 0
            })
        );
        assert_eq!(recovered.latest, vec![events[0].position.clone()]);
        assert_eq!(store.events(), 2999);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damage_before_valid_records_is_not_taken_for_a_torn_tail() {
        let mut buf = Vec::new();
        for millis in 1..4 {
            encode(&mut buf, &event(millis, None), None);
        }
        let second = buf.len() / 3;
        buf[second + 12] ^= 1;
        assert!(record_at(&buf, second).is_none());
        assert!(any_record_after(&buf, second));
        let third = 2 * second;
        buf.truncate(third + 20);
        assert!(!any_record_after(&buf, third));
    }
}
