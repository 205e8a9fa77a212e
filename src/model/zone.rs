//! Zones: named circles and polygons that trackers enter and leave. What a
//! client sends ([`ZoneInput`]) is checked here once, with every refusal
//! naming the field at fault as a path the client can find, and a valid
//! [`Zone`] answers how far a point is from its border.
//!
//! Polygons are GeoJSON (RFC 7946) Polygon geometries. Rings that cross
//! themselves are not refused (checking costs more than it saves): the
//! even-odd rule still gives them a well-defined inside.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod geometry;

pub(crate) use geometry::reach_degrees;

/// The rule for a zone's name, said in errors and docs.
pub const ZONE_NAME_RULE: &str = "1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'";

/// Longest zone name, in bytes (every allowed byte is ASCII).
const NAME_MAX_LEN: usize = 64;
/// Largest circle radius, in metres.
const MAX_RADIUS: f64 = 1_000_000.0;
/// Most rings in one polygon: the exterior and 63 holes.
const MAX_RINGS: usize = 64;
/// Most positions in one polygon, all rings together.
const MAX_POSITIONS: usize = 10_000;
/// Smallest area a ring may enclose, in square metres: less is a line or a
/// point, which nothing can be inside.
const MIN_RING_AREA: f64 = 1.0;

/// Whether `name` follows [`ZONE_NAME_RULE`].
pub fn is_valid_zone_name(name: &str) -> bool {
    (1..=NAME_MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A zone: a name and a shape. JSON:
/// `{"name":"depot","circle":{"longitude":18.06,"latitude":59.33,"radius":150}}`
/// or `{"name":"yard","polygon":{"type":"Polygon","coordinates":[[[lon,lat],...]]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "depot", "circle": {"longitude": 18.06, "latitude": 59.33, "radius": 150.0}}))]
pub struct Zone {
    /// The zone's name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "depot")]
    pub name: String,
    /// Its shape: a `circle` or a `polygon`.
    #[serde(flatten)]
    pub shape: Shape,
}

/// A zone's shape, named by its key: `{"circle":{..}}` or `{"polygon":{..}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Shape {
    /// A circle on the Earth's surface.
    Circle(Circle),
    /// A GeoJSON polygon, holes allowed.
    Polygon(Polygon),
}

/// A circle: a centre and a radius, measured on the sphere.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Serialize,
    Deserialize,
    ToSchema,
    async_graphql::SimpleObject,
    async_graphql::InputObject,
)]
#[serde(deny_unknown_fields)]
#[graphql(input_name = "CircleInput")]
pub struct Circle {
    /// The centre's degrees east of Greenwich, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0, example = 18.06)]
    pub longitude: f64,
    /// The centre's degrees north of the equator, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0, example = 59.33)]
    pub latitude: f64,
    /// The radius in metres, more than 0 and at most 1,000,000.
    #[schema(exclusive_minimum = 0.0, maximum = 1_000_000.0, example = 150.0)]
    pub radius: f64,
}

/// A GeoJSON Polygon geometry (RFC 7946 §3.1.6): the exterior ring, then
/// holes. Each ring is closed (its last position is its first) and has at
/// least 4 positions `[longitude, latitude]`; an altitude sent as a third
/// number is dropped. At most 64 rings and 10,000 positions in all; a ring
/// may not span more than 180 degrees of longitude (zones across the
/// antimeridian are not supported). Rings that cross themselves are not
/// refused: the even-odd rule decides what is inside.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    ToSchema,
    async_graphql::SimpleObject,
    async_graphql::InputObject,
)]
#[serde(deny_unknown_fields)]
#[graphql(input_name = "PolygonInput")]
#[schema(example = json!({"type": "Polygon", "coordinates": [[[18.0, 59.3], [18.1, 59.3], [18.1, 59.35], [18.0, 59.35], [18.0, 59.3]]]}))]
pub struct Polygon {
    /// Always `Polygon`.
    #[serde(rename = "type")]
    #[graphql(name = "type")]
    pub kind: PolygonType,
    /// The rings, each a list of `[longitude, latitude]` positions.
    pub coordinates: Vec<Vec<Vec<f64>>>,
}

/// The GeoJSON geometry type of a polygon: only `Polygon` is taken.
/// GraphQL spells it as GeoJSON does, so a GeoJSON geometry is a
/// `PolygonInput` variable as it stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::Enum,
)]
pub enum PolygonType {
    /// `"Polygon"`.
    #[graphql(name = "Polygon")]
    Polygon,
}

/// What a client sends to create or replace a zone (the name comes from
/// the URL or the GraphQL argument): exactly one of `circle` or `polygon`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"circle": {"longitude": 18.06, "latitude": 59.33, "radius": 150.0}}))]
pub struct ZoneInput {
    /// A circle, or none when a polygon is sent.
    #[serde(default)]
    pub circle: Option<Circle>,
    /// A polygon, or none when a circle is sent.
    #[serde(default)]
    pub polygon: Option<Polygon>,
}

/// Why a zone was refused: `field` names what is wrong as a path a client
/// can find (`name`, `circle.radius`, `polygon.coordinates[0][3]`,
/// `polygon.coordinates[1]`, `circle`), `detail` the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct InvalidZone {
    /// The path of what is wrong.
    pub field: String,
    /// The rule it breaks.
    pub detail: String,
}

fn refuse<T>(field: impl Into<String>, detail: impl Into<String>) -> Result<T, InvalidZone> {
    Err(InvalidZone {
        field: field.into(),
        detail: detail.into(),
    })
}

impl ZoneInput {
    /// The zone named `name`, if the name and the one shape sent are valid.
    /// A polygon comes back with two numbers per position.
    pub fn validate(self, name: &str) -> Result<Zone, InvalidZone> {
        if !is_valid_zone_name(name) {
            // Enough of it to recognise, not all of what a client may send.
            let shown: String = name.chars().take(NAME_MAX_LEN + 8).collect();
            return refuse(
                "name",
                format!("{shown:?} is not a zone name ({ZONE_NAME_RULE})"),
            );
        }
        let shape = match (self.circle, self.polygon) {
            (Some(circle), None) => Shape::Circle(circle.validate()?),
            (None, Some(polygon)) => Shape::Polygon(polygon.validate()?),
            _ => return refuse("circle", "send one of circle or polygon"),
        };
        Ok(Zone {
            name: name.to_owned(),
            shape,
        })
    }
}

/// Refuses a longitude/latitude pair out of range, naming `field`.
fn check_position(
    field: &dyn Fn() -> String,
    longitude: f64,
    latitude: f64,
) -> Result<(), InvalidZone> {
    if !(-180.0..=180.0).contains(&longitude) {
        return refuse(
            field(),
            format!("longitude must be a number from -180 to 180, got {longitude}"),
        );
    }
    if !(-90.0..=90.0).contains(&latitude) {
        return refuse(
            field(),
            format!("latitude must be a number from -90 to 90, got {latitude}"),
        );
    }
    Ok(())
}

impl Circle {
    fn validate(self) -> Result<Self, InvalidZone> {
        check_position(&|| "circle.longitude".into(), self.longitude, 0.0)?;
        check_position(&|| "circle.latitude".into(), 0.0, self.latitude)?;
        if !(self.radius > 0.0 && self.radius <= MAX_RADIUS) {
            return refuse(
                "circle.radius",
                format!(
                    "must be more than 0 and at most {MAX_RADIUS} metres, got {}",
                    self.radius
                ),
            );
        }
        Ok(self)
    }
}

impl Polygon {
    fn validate(self) -> Result<Self, InvalidZone> {
        let rings = self.coordinates;
        if !(1..=MAX_RINGS).contains(&rings.len()) {
            return refuse(
                "polygon.coordinates",
                format!(
                    "must hold 1 to {MAX_RINGS} rings (the exterior, then holes), got {}",
                    rings.len()
                ),
            );
        }
        let positions: usize = rings.iter().map(Vec::len).sum();
        if positions > MAX_POSITIONS {
            return refuse(
                "polygon.coordinates",
                format!("at most {MAX_POSITIONS} positions in all rings together, got {positions}"),
            );
        }
        let coordinates = rings
            .into_iter()
            .enumerate()
            .map(|(i, ring)| validate_ring(i, ring))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            kind: PolygonType::Polygon,
            coordinates,
        })
    }
}

/// Ring `i`, checked and with its positions cut to two numbers.
fn validate_ring(i: usize, ring: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>, InvalidZone> {
    let field = || format!("polygon.coordinates[{i}]");
    if ring.len() < 4 {
        return refuse(
            field(),
            "a ring needs at least 4 positions, the last the same as the first",
        );
    }
    let ring = ring
        .into_iter()
        .enumerate()
        .map(|(j, position)| validate_ring_position(i, j, position))
        .collect::<Result<Vec<_>, _>>()?;
    if ring.first() != ring.last() {
        return refuse(
            field(),
            "a ring must be closed: its last position the same as its first",
        );
    }
    let [west, _, east, _] = geometry::rings_bounds(std::slice::from_ref(&ring));
    if east - west > 180.0 {
        return refuse(
            field(),
            "a ring may not span more than 180 degrees of longitude: zones crossing the antimeridian are not supported",
        );
    }
    if geometry::ring_area(&ring) < MIN_RING_AREA {
        return refuse(
            field(),
            format!("a ring must enclose an area (at least {MIN_RING_AREA} square metre)"),
        );
    }
    Ok(ring)
}

/// Position `j` of ring `i` as `[longitude, latitude]`.
fn validate_ring_position(i: usize, j: usize, position: Vec<f64>) -> Result<Vec<f64>, InvalidZone> {
    let field = || format!("polygon.coordinates[{i}][{j}]");
    let (&[longitude, latitude] | &[longitude, latitude, _]) = position.as_slice() else {
        return refuse(
            field(),
            "a position is [longitude, latitude] or [longitude, latitude, altitude]",
        );
    };
    if position.iter().any(|n| !n.is_finite()) {
        return refuse(field(), "every number must be finite");
    }
    check_position(&field, longitude, latitude)?;
    Ok(vec![longitude, latitude])
}

impl Zone {
    /// Metres from the zone's border: negative (or zero) inside, positive
    /// outside. A circle is measured on the sphere, a polygon in a local
    /// projection centred on the point.
    pub fn signed_distance(&self, longitude: f64, latitude: f64) -> f64 {
        match &self.shape {
            Shape::Circle(c) => {
                geometry::haversine(c.longitude, c.latitude, longitude, latitude) - c.radius
            }
            Shape::Polygon(p) => {
                let distance = geometry::distance_to_edges(&p.coordinates, longitude, latitude);
                if geometry::even_odd_contains(&p.coordinates, longitude, latitude) {
                    -distance
                } else {
                    // Outside is always positive, even on an edge, so that
                    // this agrees with `contains` to the last bit.
                    distance.max(f64::MIN_POSITIVE)
                }
            }
        }
    }

    /// Whether the point is inside (`signed_distance <= 0`); a polygon
    /// answers without measuring the distance.
    pub fn contains(&self, longitude: f64, latitude: f64) -> bool {
        match &self.shape {
            Shape::Circle(_) => self.signed_distance(longitude, latitude) <= 0.0,
            Shape::Polygon(p) => geometry::even_odd_contains(&p.coordinates, longitude, latitude),
        }
    }

    /// `[min_lon, min_lat, max_lon, max_lat]` enclosing the zone. A circle
    /// over a pole or across the antimeridian spans every longitude.
    pub fn bounds(&self) -> [f64; 4] {
        match &self.shape {
            Shape::Circle(c) => geometry::circle_bounds(c.longitude, c.latitude, c.radius),
            Shape::Polygon(p) => geometry::rings_bounds(&p.coordinates),
        }
    }
}

#[cfg(test)]
mod tests;
