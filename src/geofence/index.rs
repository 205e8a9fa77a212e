//! Every zone, by name and in an R-tree of their bounds, so that finding
//! the zones near a position costs one tree query and an exact test of the
//! few zones whose bounds are close, never a pass over all zones.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use rstar::{AABB, RTree, RTreeObject};

use crate::model::{BoundingBox, Zone, reach_degrees};

/// How much wider than needed a query's rectangle is drawn, so that
/// rounding never makes it miss a zone at exactly the margin.
const SAFETY: f64 = 1.01;

/// A zone as the tree holds it: the zone and the rectangle it was filed
/// under, kept so it can be found again to be removed.
#[derive(Debug, Clone)]
struct Entry {
    zone: Arc<Zone>,
    envelope: AABB<[f64; 2]>,
}

impl Entry {
    fn new(zone: Arc<Zone>) -> Self {
        let [west, south, east, north] = zone.bounds();
        let envelope = AABB::from_corners([west, south], [east, north]);
        Self { zone, envelope }
    }
}

impl RTreeObject for Entry {
    type Envelope = AABB<[f64; 2]>;

    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// The same entry, not merely an equal zone: what the tree removes.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.zone, &other.zone)
    }
}

/// Which zones a listing asks for (`GET /zones`, GraphQL `zones`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneQuery {
    /// Only zones whose bounds meet this box, when set.
    pub within: Option<BoundingBox>,
    /// Only zones named after this (in byte order), when set: the last
    /// name of the page before.
    pub after: Option<String>,
    /// At most this many, when set.
    pub limit: Option<usize>,
}

/// Every zone, by name and in an R-tree of their bounds.
#[derive(Debug, Default, Clone)]
pub struct ZoneIndex {
    by_name: BTreeMap<String, Entry>,
    tree: RTree<Entry>,
}

impl ZoneIndex {
    /// An index without zones.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the zone with this name; returns the one replaced.
    pub fn insert(&mut self, zone: Arc<Zone>) -> Option<Arc<Zone>> {
        let entry = Entry::new(zone);
        self.tree.insert(entry.clone());
        let replaced = self.by_name.insert(entry.zone.name.clone(), entry)?;
        self.tree.remove(&replaced);
        Some(replaced.zone)
    }

    /// Removes the zone with this name; returns it, if there was one.
    pub fn remove(&mut self, name: &str) -> Option<Arc<Zone>> {
        let entry = self.by_name.remove(name)?;
        self.tree.remove(&entry);
        Some(entry.zone)
    }

    /// The zone with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Zone>> {
        self.by_name.get(name).map(|entry| &entry.zone)
    }

    /// How many zones there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no zones.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every zone, ordered by name.
    pub fn zones(&self) -> Vec<Arc<Zone>> {
        self.listed(&ZoneQuery::default())
    }

    /// The zones `query` asks for, ordered by name: those whose bounds meet
    /// its box (one R-tree query, two when the box crosses the
    /// antimeridian), after its name, at most its limit. Without a box it
    /// walks the names from `after` on, never the zones before.
    pub fn listed(&self, query: &ZoneQuery) -> Vec<Arc<Zone>> {
        let limit = query.limit.unwrap_or(usize::MAX);
        let after = query.after.as_deref();
        let Some(within) = &query.within else {
            let from = match after {
                Some(name) => Bound::Excluded(name),
                None => Bound::Unbounded,
            };
            return self
                .by_name
                .range::<str, _>((from, Bound::Unbounded))
                .take(limit)
                .map(|(_, entry)| entry.zone.clone())
                .collect();
        };
        let (south, north) = (within.min_latitude, within.max_latitude);
        let rectangle = |west: f64, east: f64| AABB::from_corners([west, south], [east, north]);
        let envelopes = match within.min_longitude <= within.max_longitude {
            true => vec![rectangle(within.min_longitude, within.max_longitude)],
            false => vec![
                rectangle(within.min_longitude, 180.0),
                rectangle(-180.0, within.max_longitude),
            ],
        };
        let mut found: Vec<&Arc<Zone>> = envelopes
            .iter()
            .flat_map(|envelope| self.tree.locate_in_envelope_intersecting(envelope))
            .map(|entry| &entry.zone)
            .filter(|zone| after.is_none_or(|after| zone.name.as_str() > after))
            .collect();
        found.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // A zone across the antimeridian meets both halves of a split box.
        found.dedup_by(|a, b| a.name == b.name);
        found.into_iter().take(limit).cloned().collect()
    }

    /// Every zone whose signed distance from the point is at most `margin`
    /// metres, with that distance, ordered by zone name. Costs one R-tree
    /// query on the bounds grown by `margin` (two beside the antimeridian)
    /// and an exact test of the few candidates: never all zones.
    pub fn near(&self, longitude: f64, latitude: f64, margin: f64) -> Vec<(Arc<Zone>, f64)> {
        let envelopes = query_envelopes(longitude, latitude, margin);
        let mut found: Vec<(Arc<Zone>, f64)> = envelopes
            .iter()
            .flat_map(|envelope| self.tree.locate_in_envelope_intersecting(envelope))
            .map(|entry| {
                let distance = entry.zone.signed_distance(longitude, latitude);
                (entry.zone.clone(), distance)
            })
            .filter(|(_, distance)| *distance <= margin)
            .collect();
        found.sort_by(|(a, _), (b, _)| a.name.cmp(&b.name));
        // A zone spanning every longitude meets both halves of a query
        // split at the antimeridian.
        found.dedup_by(|(a, _), (b, _)| a.name == b.name);
        found
    }
}

/// The rectangles within which any point `margin` metres or less from the
/// given one lies: the point grown by the margin in degrees, split in two
/// where it crosses the antimeridian, every longitude where it reaches a
/// pole.
fn query_envelopes(longitude: f64, latitude: f64, margin: f64) -> Vec<AABB<[f64; 2]>> {
    let (dlat, dlon) = reach_degrees(latitude, margin.max(0.0));
    let (south, north) = (latitude - dlat * SAFETY, latitude + dlat * SAFETY);
    let rectangle = |west: f64, east: f64| AABB::from_corners([west, south], [east, north]);
    let Some(dlon) = dlon.map(|d| d * SAFETY) else {
        return vec![rectangle(-180.0, 180.0)];
    };
    let (west, east) = (longitude - dlon, longitude + dlon);
    let mut envelopes = vec![rectangle(west, east)];
    if west < -180.0 {
        envelopes.push(rectangle(west + 360.0, 180.0));
    }
    if east > 180.0 {
        envelopes.push(rectangle(-180.0, east - 360.0));
    }
    envelopes
}

#[cfg(test)]
mod tests;
