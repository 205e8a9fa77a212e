use super::*;
use crate::model::{BoundingBox, Circle, Polygon, PolygonType, ZoneInput};

/// A linear congruential generator (Knuth's MMIX constants): the same
/// "random" zones and points on every run, without a crate for it.
struct Lcg(u64);

impl Lcg {
    /// A number in `low..high`.
    fn next(&mut self, low: f64, high: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 11) as f64 / (1u64 << 53) as f64 * (high - low)
    }
}

fn circle(name: &str, longitude: f64, latitude: f64, radius: f64) -> Arc<Zone> {
    let circle = Circle {
        longitude,
        latitude,
        radius,
    };
    let input = ZoneInput {
        circle: Some(circle),
        polygon: None,
    };
    Arc::new(input.validate(name).unwrap())
}

/// A right triangle with its right angle at the point, `size` degrees a side.
fn triangle(name: &str, longitude: f64, latitude: f64, size: f64) -> Arc<Zone> {
    let corners = [[0.0, 0.0], [size, 0.0], [0.0, size], [0.0, 0.0]];
    let ring = corners
        .iter()
        .map(|[x, y]| vec![longitude + x, latitude + y])
        .collect();
    let polygon = Polygon {
        kind: PolygonType::Polygon,
        coordinates: vec![ring],
    };
    let input = ZoneInput {
        circle: None,
        polygon: Some(polygon),
    };
    Arc::new(input.validate(name).unwrap())
}

/// What `near` must answer, found by testing every zone.
fn brute_force(
    index: &ZoneIndex,
    longitude: f64,
    latitude: f64,
    margin: f64,
) -> Vec<(String, f64)> {
    index
        .zones()
        .iter()
        .map(|zone| (zone.name.clone(), zone.signed_distance(longitude, latitude)))
        .filter(|(_, distance)| *distance <= margin)
        .collect()
}

fn names(found: Vec<(Arc<Zone>, f64)>) -> Vec<(String, f64)> {
    found
        .into_iter()
        .map(|(zone, distance)| (zone.name.clone(), distance))
        .collect()
}

#[test]
fn near_finds_exactly_the_zones_a_test_of_every_zone_finds() {
    let mut random = Lcg(26);
    let mut index = ZoneIndex::new();
    // Small zones around Stockholm, close enough to overlap, and a few
    // beside the antimeridian and the poles, where degrees stretch.
    for i in 0..10_000 {
        let (lon, lat) = (random.next(17.5, 18.5), random.next(59.0, 59.6));
        let zone = match i % 4 {
            0 => triangle(&format!("t{i}"), lon, lat, random.next(0.001, 0.02)),
            _ => circle(&format!("c{i}"), lon, lat, random.next(5.0, 2_000.0)),
        };
        index.insert(zone);
    }
    index.insert(circle("east-edge", 179.9995, 10.0, 30.0));
    index.insert(circle("west-edge", -179.9995, 10.0, 30.0));
    index.insert(circle("north-pole", 100.0, 89.995, 100.0));
    index.insert(triangle("north-cap", -80.0, 89.99, 0.005));
    assert_eq!(index.len(), 10_004);
    let edges = [
        (180.0, 10.0),
        (-180.0, 10.0),
        (179.999, 10.0),
        (-100.0, 89.996),
        (80.0, 89.99),
    ];
    let mut seen = 0;
    for point in 0..300 {
        let (lon, lat) = match edges.get(point) {
            Some(&edge) => edge,
            None => (random.next(17.4, 18.6), random.next(58.95, 59.65)),
        };
        for margin in [0.0, 25.0, 300.0] {
            let expected = brute_force(&index, lon, lat, margin);
            seen += expected.len();
            assert_eq!(
                names(index.near(lon, lat, margin)),
                expected,
                "{lon},{lat} within {margin}"
            );
        }
    }
    assert!(seen > 1_000, "the points meet zones: {seen}");
}

#[test]
fn zones_beside_the_antimeridian_and_a_pole_are_near_across_them() {
    let mut index = ZoneIndex::new();
    index.insert(circle("west-edge", -179.9999, 0.0, 5.0));
    index.insert(circle("across-pole", -90.0, 89.9999, 5.0));
    let across = names(index.near(179.9999, 0.0, 50.0));
    assert_eq!(across.len(), 1, "{across:?}");
    assert!(across[0].1 > 0.0 && across[0].1 < 50.0);
    let over = names(index.near(90.0, 89.9999, 50.0));
    assert_eq!(over.len(), 1, "{over:?}");
}

#[test]
fn inserting_a_name_again_replaces_the_zone_everywhere() {
    let mut index = ZoneIndex::new();
    assert!(index.is_empty());
    let first = circle("depot", 18.06, 59.33, 150.0);
    assert_eq!(index.insert(first.clone()), None);
    let moved = circle("depot", 11.97, 57.70, 150.0);
    assert_eq!(index.insert(moved.clone()), Some(first));
    assert_eq!(index.len(), 1);
    assert_eq!(index.get("depot"), Some(&moved));
    assert!(
        index.near(18.06, 59.33, 1_000.0).is_empty(),
        "not where it was"
    );
    assert_eq!(
        names(index.near(11.97, 57.70, 0.0)),
        [("depot".to_owned(), -150.0)]
    );
    assert_eq!(index.insert(moved.clone()), Some(moved.clone()));
    assert_eq!(
        index.near(11.97, 57.70, 0.0).len(),
        1,
        "the same zone twice is one zone"
    );
}

#[test]
fn a_removed_zone_is_gone_from_names_and_places() {
    let mut index = ZoneIndex::new();
    index.insert(circle("b-depot", 18.06, 59.33, 150.0));
    index.insert(circle("a-yard", 18.0601, 59.33, 100.0));
    let listed: Vec<String> = index.zones().iter().map(|z| z.name.clone()).collect();
    assert_eq!(listed, ["a-yard", "b-depot"]);
    assert_eq!(index.near(18.06, 59.33, 0.0).len(), 2);
    assert_eq!(
        index.remove("b-depot").map(|z| z.name.clone()),
        Some("b-depot".into())
    );
    assert_eq!(index.remove("b-depot"), None);
    assert_eq!(index.get("b-depot"), None);
    assert_eq!(names(index.near(18.06, 59.33, 0.0)).len(), 1);
    assert_eq!(index.len(), 1);
}

/// The names `listed` must give for a box, found by testing every zone's
/// bounds.
fn meeting(index: &ZoneIndex, within: &BoundingBox, after: Option<&str>) -> Vec<String> {
    let [west, south, east, north] = [
        within.min_longitude,
        within.min_latitude,
        within.max_longitude,
        within.max_latitude,
    ];
    let lon_meets = |low: f64, high: f64| match west <= east {
        true => low <= east && high >= west,
        false => low <= east || high >= west,
    };
    index
        .zones()
        .iter()
        .filter(|zone| {
            let [low, bottom, high, top] = zone.bounds();
            lon_meets(low, high) && bottom <= north && top >= south
        })
        .map(|zone| zone.name.clone())
        .filter(|name| after.is_none_or(|after| name.as_str() > after))
        .collect()
}

#[test]
fn a_listing_gives_the_zones_meeting_its_box_in_name_order_page_by_page() {
    let mut random = Lcg(11);
    let mut index = ZoneIndex::new();
    for i in 0..2_000 {
        let (lon, lat) = (random.next(-180.0, 180.0), random.next(-80.0, 80.0));
        match i % 3 {
            0 => index.insert(triangle(&format!("t{i}"), lon.min(170.0), lat, 2.0)),
            _ => index.insert(circle(&format!("c{i}"), lon, lat, random.next(1e3, 5e5))),
        };
    }
    index.insert(circle("across", 179.99, 10.0, 5_000.0));
    let names = |zones: Vec<Arc<Zone>>| -> Vec<String> {
        zones.iter().map(|zone| zone.name.clone()).collect()
    };
    let mut boxes: Vec<BoundingBox> = (0..50)
        .map(|_| {
            let (west, south) = (random.next(-180.0, 170.0), random.next(-80.0, 70.0));
            let east = (west + random.next(0.1, 30.0)).min(180.0);
            BoundingBox::new(west, south, east, south + 10.0).unwrap()
        })
        .collect();
    // Across the antimeridian, and the whole world.
    boxes.push(BoundingBox::new(170.0, 0.0, -170.0, 20.0).unwrap());
    boxes.push(BoundingBox::new(-180.0, -90.0, 180.0, 90.0).unwrap());
    let mut seen = 0;
    for within in boxes {
        let expected = meeting(&index, &within, None);
        seen += expected.len();
        let query = |after: Option<String>, limit| ZoneQuery {
            within: Some(within),
            after,
            limit,
        };
        assert_eq!(names(index.listed(&query(None, None))), expected);
        // Page by page, each after the last name of the one before.
        let mut paged = Vec::new();
        loop {
            let page = names(index.listed(&query(paged.last().cloned(), Some(7))));
            assert!(page.len() <= 7);
            let done = page.len() < 7;
            paged.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(paged, expected, "{within:?} page by page");
    }
    assert!(seen > 2_000, "the boxes meet zones: {seen}");
    let across = BoundingBox::new(179.0, 9.0, -179.0, 11.0).unwrap();
    let listed = names(index.listed(&ZoneQuery {
        within: Some(across),
        ..ZoneQuery::default()
    }));
    assert_eq!(listed.iter().filter(|n| *n == "across").count(), 1);
    // No box: every name after `after`, at most `limit`.
    let all = names(index.zones());
    let page = names(index.listed(&ZoneQuery {
        after: Some(all[99].clone()),
        limit: Some(50),
        ..ZoneQuery::default()
    }));
    assert_eq!(page, all[100..150]);
}
