//! Geofences: zones, where trackers are, and the enter and leave events
//! between.
//!
//! One rule for every broker, in two steps: the zones a position is in or
//! near are found by the publishing task ([`Geofences::classify`], under
//! a read lock, so this work is spread over the cores), and the crossings
//! decided where positions are numbered, in order ([`Geofences::cross`]:
//! the memory broker's append, the durable broker's writer; Redis applies
//! the same rule in its publish script): a tracker
//! enters a zone with its first position inside it, and leaves it with its
//! first position more than the hysteresis (`--zone-hysteresis`, metres)
//! outside. A fix jittering on the border therefore enters once and does
//! not flap. The zones a position could be in or near are found in an
//! R-tree ([`index::ZoneIndex`]), never by testing every zone. A position
//! without a tracker crosses nothing: membership is a tracker's.
//!
//! Crossings of one position come leaves first, then enters, each in zone
//! name order, so every broker numbers them alike. A fix older than one
//! already judged for its tracker (buffered offline, sent late) crosses
//! nothing: it is stored and delivered, but where the tracker was then is
//! not where it is now (the rule of
//! [`crate::model::PositionEvent::is_later_fix_than`]).

pub mod index;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Crossing, EventId, PositionEvent, Transition, ValidPosition, Zone, ZoneInput};

use self::index::ZoneIndex;
pub use self::index::ZoneQuery;

/// The hysteresis when none is configured, in metres: a little more than a
/// phone's typical fix error outdoors.
pub const DEFAULT_HYSTERESIS: f64 = 20.0;

/// The zones a point is in, and those it is outside of by no more than the
/// hysteresis (where a tracker already inside stays inside).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Near {
    /// Zones the point is inside, by name.
    pub inside: Vec<Arc<Zone>>,
    /// Zones the point is just outside of, by name.
    pub border: Vec<Arc<Zone>>,
}

impl Near {
    /// Whether a tracker inside zone `name` stays inside.
    fn keeps(&self, name: &str) -> bool {
        self.inside
            .iter()
            .chain(&self.border)
            .any(|z| z.name == name)
    }
}

/// What changes a zone: put (add or replace) or delete.
#[derive(Debug, Clone)]
pub enum ZoneChange {
    /// Adds the zone, or replaces the one with its name.
    Put(Zone),
    /// Deletes the zone with this name.
    Delete(String),
}

/// Every zone, and which trackers are inside which. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct Geofences {
    index: ZoneIndex,
    hysteresis: f64,
    /// Each tracker inside some zone: the zones, with the id of the enter
    /// event that put it there.
    inside: HashMap<String, BTreeMap<String, EventId>>,
    /// Each zone's trackers inside.
    occupants: HashMap<String, BTreeSet<String>>,
    /// Each tracker's latest fix judged: an older one crosses nothing.
    last_fix: HashMap<String, OffsetDateTime>,
}

/// What a tracker's membership was, to put back when what changed it was
/// not stored (see [`Geofences::save`]).
#[derive(Debug)]
pub struct Saved {
    tracker: String,
    zones: Option<BTreeMap<String, EventId>>,
    last_fix: Option<OffsetDateTime>,
}

/// Every zone as the durable broker keeps it on disk; see
/// [`Geofences::zones_kept`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KeptZones {
    /// The last event id the zones account for.
    pub through: EventId,
    /// Every zone: its name, then its shape as a client sends it.
    pub zones: Vec<serde_json::Value>,
}

/// Who is inside which zone, as the durable broker keeps it on disk; see
/// [`Geofences::inside_kept`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KeptInside {
    /// The last event id the membership accounts for.
    pub through: EventId,
    /// Each tracker's zones, with the id of the enter event.
    pub inside: HashMap<String, BTreeMap<String, EventId>>,
}

impl Geofences {
    /// No zones, leaving a zone `hysteresis` metres past its border.
    pub fn new(hysteresis: f64) -> Self {
        Self {
            index: ZoneIndex::new(),
            hysteresis,
            inside: HashMap::new(),
            occupants: HashMap::new(),
            last_fix: HashMap::new(),
        }
    }

    /// The zones `(longitude, latitude)` is in or near.
    pub fn near(&self, longitude: f64, latitude: f64) -> Near {
        let mut near = Near::default();
        for (zone, distance) in self.index.near(longitude, latitude, self.hysteresis) {
            match distance <= 0.0 {
                true => near.inside.push(zone),
                false => near.border.push(zone),
            }
        }
        near
    }

    /// The zones `position` is in or near, for [`Geofences::cross`]:
    /// `None` when it has no tracker or there are no zones (it crosses
    /// nothing).
    pub fn classify(&self, position: &ValidPosition) -> Option<Near> {
        position.tracker()?;
        if self.index.is_empty() {
            return None;
        }
        let (longitude, latitude) = position.coordinates();
        Some(self.near(longitude, latitude))
    }

    /// The zone events `position` makes, it being in or `near` the zones
    /// [`Geofences::classify`] found, numbered by `next` (called once for
    /// each, in order), and applied: leaves first, then enters. A zone
    /// deleted since it was found is not entered.
    pub fn cross(
        &mut self,
        position: &PositionEvent,
        near: Option<&Near>,
        mut next: impl FnMut() -> EventId,
    ) -> Vec<Transition> {
        let (Some(tracker), Some(near)) = (position.tracker.as_deref(), near) else {
            return Vec::new();
        };
        let fix = position.fix_time();
        if !self.judge_fix(tracker, fix) {
            return Vec::new();
        }
        let was = self.inside.get(tracker);
        let mut transitions = Vec::new();
        for zone in was.into_iter().flat_map(BTreeMap::keys) {
            if !near.keeps(zone) {
                transitions.push(Transition {
                    id: next(),
                    crossing: Crossing::Leave,
                    zone: zone.clone(),
                });
            }
        }
        for zone in &near.inside {
            let already = was.is_some_and(|zones| zones.contains_key(&zone.name));
            if !already && self.index.get(&zone.name).is_some() {
                transitions.push(Transition {
                    id: next(),
                    crossing: Crossing::Enter,
                    zone: zone.name.clone(),
                });
            }
        }
        for transition in &transitions {
            self.apply(tracker, transition);
        }
        transitions
    }

    /// Whether a fix taken at `fix` is to be judged for `tracker`: not
    /// older than the latest judged, which it then is.
    pub fn judge_fix(&mut self, tracker: &str, fix: OffsetDateTime) -> bool {
        match self.last_fix.get_mut(tracker) {
            Some(last) if fix < *last => false,
            Some(last) => {
                *last = fix;
                true
            }
            None => {
                self.last_fix.insert(tracker.to_owned(), fix);
                true
            }
        }
    }

    /// Moves `tracker` in or out of a zone as `transition` says: what
    /// [`Geofences::cross`] does, and what recovery replays.
    pub fn apply(&mut self, tracker: &str, transition: &Transition) {
        let zone = &transition.zone;
        match transition.crossing {
            Crossing::Enter => {
                if self.index.get(zone).is_none() {
                    return;
                }
                self.inside
                    .entry(tracker.to_owned())
                    .or_default()
                    .insert(zone.clone(), transition.id);
                self.occupants
                    .entry(zone.clone())
                    .or_default()
                    .insert(tracker.to_owned());
            }
            Crossing::Leave => {
                if let Some(zones) = self.inside.get_mut(tracker) {
                    zones.remove(zone);
                    if zones.is_empty() {
                        self.inside.remove(tracker);
                    }
                }
                if let Some(trackers) = self.occupants.get_mut(zone) {
                    trackers.remove(tracker);
                    if trackers.is_empty() {
                        self.occupants.remove(zone);
                    }
                }
            }
        }
    }

    /// What `tracker`'s membership is now, to [`Geofences::restore`].
    pub fn save(&self, tracker: &str) -> Saved {
        Saved {
            tracker: tracker.to_owned(),
            zones: self.inside.get(tracker).cloned(),
            last_fix: self.last_fix.get(tracker).copied(),
        }
    }

    /// Puts back a membership [`Geofences::save`]d.
    pub fn restore(&mut self, saved: Saved) {
        let Saved {
            tracker,
            zones,
            last_fix,
        } = saved;
        match last_fix {
            Some(fix) => self.last_fix.insert(tracker.clone(), fix),
            None => self.last_fix.remove(&tracker),
        };
        for zone in self
            .inside
            .remove(&tracker)
            .into_iter()
            .flat_map(|z| z.into_keys())
        {
            if let Some(trackers) = self.occupants.get_mut(&zone) {
                trackers.remove(&tracker);
                if trackers.is_empty() {
                    self.occupants.remove(&zone);
                }
            }
        }
        for (zone, id) in zones.into_iter().flatten() {
            let transition = Transition {
                id,
                crossing: Crossing::Enter,
                zone,
            };
            self.apply(&tracker, &transition);
        }
    }

    /// Adds or replaces a zone; `true` when it is new. Trackers inside a
    /// replaced zone stay inside until a position says otherwise.
    pub fn put(&mut self, zone: Zone) -> bool {
        self.index.insert(Arc::new(zone)).is_none()
    }

    /// Applies `change`: whether it changed a zone that was there (one
    /// replaced, or deleted).
    pub fn change(&mut self, change: ZoneChange) -> bool {
        match change {
            ZoneChange::Put(zone) => !self.put(zone),
            ZoneChange::Delete(name) => self.remove(&name),
        }
    }

    /// Removes a zone, and every tracker's membership of it (no leave
    /// events: the zone is gone, not left); `false` when there was none.
    pub fn remove(&mut self, name: &str) -> bool {
        if self.index.remove(name).is_none() {
            return false;
        }
        for tracker in self.occupants.remove(name).into_iter().flatten() {
            if let Some(zones) = self.inside.get_mut(&tracker) {
                zones.remove(name);
                if zones.is_empty() {
                    self.inside.remove(&tracker);
                }
            }
        }
        true
    }

    /// Replaces every zone with `zones`, and forgets who was inside (a
    /// broker that keeps membership elsewhere, as Redis does, follows
    /// only the zones).
    pub fn reset(&mut self, zones: Vec<Zone>) {
        *self = Self::new(self.hysteresis);
        for zone in zones {
            self.put(zone);
        }
    }

    /// Every zone, by name.
    pub fn zones(&self) -> Vec<Arc<Zone>> {
        self.index.zones()
    }

    /// The zones `query` asks for, by name.
    pub fn listed(&self, query: &ZoneQuery) -> Vec<Arc<Zone>> {
        self.index.listed(query)
    }

    /// The zone with this name.
    pub fn zone(&self, name: &str) -> Option<Arc<Zone>> {
        self.index.get(name).cloned()
    }

    /// How many zones there are.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no zones.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The trackers inside a zone, by name, each with the id of the enter
    /// event that put it there; `None` when there is no such zone.
    pub fn occupants(&self, zone: &str) -> Option<Vec<(String, EventId)>> {
        self.index.get(zone)?;
        let trackers = self.occupants.get(zone).into_iter().flatten();
        Some(
            trackers
                .filter_map(|tracker| {
                    let id = *self.inside.get(tracker)?.get(zone)?;
                    Some((tracker.clone(), id))
                })
                .collect(),
        )
    }

    /// Every zone as of event `through`, to keep on disk.
    pub fn zones_kept(&self, through: EventId) -> KeptZones {
        let zones = self.zones();
        let zones = zones
            .iter()
            .filter_map(|z| serde_json::to_value(z.as_ref()).ok());
        KeptZones {
            through,
            zones: zones.collect(),
        }
    }

    /// Who is inside which zone as of event `through`, to keep on disk.
    pub fn inside_kept(&self, through: EventId) -> KeptInside {
        KeptInside {
            through,
            inside: self.inside.clone(),
        }
    }

    /// Zones and membership as kept on disk; a zone that no longer
    /// validates is left out, and said so.
    pub fn from_kept(zones: KeptZones, inside: KeptInside, hysteresis: f64) -> Self {
        let mut geofences = Self::new(hysteresis);
        for value in zones.zones {
            match stored_zone(value) {
                Ok(zone) => {
                    geofences.put(zone);
                }
                Err(err) => tracing::warn!(%err, "a stored zone was left out"),
            }
        }
        for (tracker, zones) in inside.inside {
            for (zone, id) in zones {
                let transition = Transition {
                    id,
                    crossing: Crossing::Enter,
                    zone,
                };
                geofences.apply(&tracker, &transition);
            }
        }
        geofences
    }
}

/// A zone as it is kept (by [`Geofences::zones_kept`], and in Redis): its JSON,
/// its name beside its shape.
pub fn stored_zone(mut value: serde_json::Value) -> Result<Zone, String> {
    let name = value
        .as_object_mut()
        .and_then(|zone| zone.remove("name"))
        .and_then(|name| name.as_str().map(str::to_owned))
        .ok_or("a zone without a name")?;
    let input: ZoneInput = serde_json::from_value(value).map_err(|err| err.to_string())?;
    input.validate(&name).map_err(|err| err.to_string())
}
