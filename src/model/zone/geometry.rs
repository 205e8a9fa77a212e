//! The few spherical and planar formulas a zone needs, written by hand: the
//! `geo` crate would bring a large dependency tree for two functions.
//!
//! A circle is measured on the sphere (haversine). A polygon is measured in
//! a local equirectangular projection centred on the point asked about:
//! exact enough within the few kilometres where a border matters (the
//! enter and leave hysteresis), and it keeps the polygon's edges straight
//! in longitude and latitude, as GeoJSON draws them.

/// Mean Earth radius in metres (IUGG), as most mapping software uses.
pub const EARTH_RADIUS: f64 = 6_371_008.8;

/// Metres per degree of latitude (and of longitude at the equator).
pub const METRES_PER_DEGREE: f64 = EARTH_RADIUS * std::f64::consts::PI / 180.0;

/// Great-circle distance in metres between two longitude/latitude points.
pub fn haversine(lon_a: f64, lat_a: f64, lon_b: f64, lat_b: f64) -> f64 {
    let (phi_a, phi_b) = (lat_a.to_radians(), lat_b.to_radians());
    let half_dphi = (phi_b - phi_a) / 2.0;
    let half_dlambda = (lon_b - lon_a).to_radians() / 2.0;
    let h = half_dphi.sin().powi(2) + phi_a.cos() * phi_b.cos() * half_dlambda.sin().powi(2);
    2.0 * EARTH_RADIUS * h.sqrt().min(1.0).asin()
}

/// How far, in degrees of latitude and of longitude, a point may lie from
/// one at `latitude` and still be within `metres` of it on the sphere.
/// The longitude reach is `None` when the whole circle of that latitude
/// may be within reach (a pole is, or the distance is a quarter of the
/// Earth or more).
pub fn reach_degrees(latitude: f64, metres: f64) -> (f64, Option<f64>) {
    let angle = metres / EARTH_RADIUS;
    let dlat = angle.to_degrees();
    if angle >= std::f64::consts::FRAC_PI_2 || latitude.abs() + dlat >= 90.0 {
        return (dlat, None);
    }
    // The widest longitude of a spherical cap (Matuschek, "Finding points
    // within a distance of a latitude/longitude"); never less than the
    // equirectangular reach a polygon is measured with.
    let cos_lat = latitude.to_radians().cos();
    let spherical = (angle.sin() / cos_lat).min(1.0).asin().to_degrees();
    let planar = metres / (METRES_PER_DEGREE * cos_lat);
    (dlat, Some(spherical.max(planar)))
}

/// `[min_lon, min_lat, max_lon, max_lat]` of a circle. A circle over a pole
/// or across the antimeridian spans every longitude, so that a rectangle
/// without wrap-around still holds all of it.
pub fn circle_bounds(longitude: f64, latitude: f64, radius: f64) -> [f64; 4] {
    let (dlat, dlon) = reach_degrees(latitude, radius);
    let (south, north) = ((latitude - dlat).max(-90.0), (latitude + dlat).min(90.0));
    match dlon {
        Some(dlon) if longitude - dlon >= -180.0 && longitude + dlon <= 180.0 => {
            [longitude - dlon, south, longitude + dlon, north]
        }
        _ => [-180.0, south, 180.0, north],
    }
}

/// `[min_lon, min_lat, max_lon, max_lat]` of a set of rings.
pub fn rings_bounds(rings: &[Vec<Vec<f64>>]) -> [f64; 4] {
    let start = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    rings.iter().flatten().fold(start, |[w, s, e, n], p| {
        [w.min(p[0]), s.min(p[1]), e.max(p[0]), n.max(p[1])]
    })
}

/// Whether the point is inside by the even-odd rule over every ring: a
/// point in a hole crosses the exterior and the hole, an even count.
pub fn even_odd_contains(rings: &[Vec<Vec<f64>>], lon: f64, lat: f64) -> bool {
    let mut inside = false;
    for ring in rings {
        for edge in ring.windows(2) {
            let ([x1, y1], [x2, y2]) = ([edge[0][0], edge[0][1]], [edge[1][0], edge[1][1]]);
            if (y1 > lat) != (y2 > lat) && lon < x1 + (lat - y1) / (y2 - y1) * (x2 - x1) {
                inside = !inside;
            }
        }
    }
    inside
}

/// Metres from the point to the nearest edge of any ring, in the
/// equirectangular projection centred on the point.
pub fn distance_to_edges(rings: &[Vec<Vec<f64>>], lon: f64, lat: f64) -> f64 {
    let x_scale = lat.to_radians().cos() * METRES_PER_DEGREE;
    let project = |p: &[f64]| ((p[0] - lon) * x_scale, (p[1] - lat) * METRES_PER_DEGREE);
    rings
        .iter()
        .flat_map(|ring| ring.windows(2))
        .map(|edge| distance_from_origin(project(&edge[0]), project(&edge[1])))
        .fold(f64::INFINITY, f64::min)
}

/// Distance from (0, 0) to the segment from `a` to `b`.
fn distance_from_origin((ax, ay): (f64, f64), (bx, by): (f64, f64)) -> f64 {
    let (dx, dy) = (bx - ax, by - ay);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (-(ax * dx + ay * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (ax + t * dx).hypot(ay + t * dy)
}

/// The area a closed ring encloses, in square metres, in the
/// equirectangular projection at its first position (shoelace formula).
pub fn ring_area(ring: &[Vec<f64>]) -> f64 {
    let Some(origin) = ring.first() else {
        return 0.0;
    };
    let x_scale = origin[1].to_radians().cos() * METRES_PER_DEGREE;
    let project = |p: &[f64]| {
        (
            (p[0] - origin[0]) * x_scale,
            (p[1] - origin[1]) * METRES_PER_DEGREE,
        )
    };
    let twice: f64 = ring
        .windows(2)
        .map(|edge| {
            let ((x1, y1), (x2, y2)) = (project(&edge[0]), project(&edge[1]));
            x1 * y2 - x2 * y1
        })
        .sum();
    twice.abs() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude_is_about_111_km_on_the_sphere_and_in_the_projection() {
        let sphere = haversine(18.0, 59.0, 18.0, 60.0);
        assert!((sphere - METRES_PER_DEGREE).abs() < 1e-6, "{sphere}");
        let square = vec![vec![
            vec![0.0, 0.0],
            vec![1.0, 0.0],
            vec![1.0, 1.0],
            vec![0.0, 1.0],
            vec![0.0, 0.0],
        ]];
        let area = ring_area(&square[0]);
        assert!(
            (area / METRES_PER_DEGREE.powi(2) - 1.0).abs() < 1e-9,
            "{area}"
        );
        let north = distance_to_edges(&square, 0.5, 2.0);
        assert!((north - METRES_PER_DEGREE).abs() < 1e-6, "{north}");
    }

    #[test]
    fn a_circle_over_a_pole_or_the_antimeridian_spans_every_longitude() {
        assert_eq!(circle_bounds(10.0, 89.99, 5_000.0)[0], -180.0);
        assert_eq!(circle_bounds(10.0, 89.99, 5_000.0)[3], 90.0);
        assert_eq!(circle_bounds(179.99, 0.0, 5_000.0)[2], 180.0);
        let [w, s, e, n] = circle_bounds(18.0, 59.0, 1_000.0);
        assert!(w < 18.0 && e > 18.0 && s < 59.0 && n > 59.0);
        assert!(haversine(18.0, 59.0, e, 59.0) >= 1_000.0);
    }
}
