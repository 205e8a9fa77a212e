use super::*;

/// A polygon's rings, as sent.
type Rings = Vec<Vec<Vec<f64>>>;

/// A square around central Stockholm, 18.00..18.10 east, 59.30..59.35 north.
fn square() -> Vec<Vec<f64>> {
    let corners = [
        [18.0, 59.3],
        [18.1, 59.3],
        [18.1, 59.35],
        [18.0, 59.35],
        [18.0, 59.3],
    ];
    corners.iter().map(|c| c.to_vec()).collect()
}

fn polygon(coordinates: Rings) -> ZoneInput {
    ZoneInput {
        circle: None,
        polygon: Some(Polygon {
            kind: PolygonType::Polygon,
            coordinates,
        }),
    }
}

fn circle(longitude: f64, latitude: f64, radius: f64) -> ZoneInput {
    ZoneInput {
        circle: Some(Circle {
            longitude,
            latitude,
            radius,
        }),
        polygon: None,
    }
}

/// The field a refusal names.
fn refused(input: ZoneInput) -> String {
    input.validate("zone").expect_err("refused").field
}

#[test]
fn a_circle_is_negative_inside_and_positive_outside_by_the_metres_to_its_border() {
    let zone = circle(18.06, 59.33, 150.0).validate("depot").unwrap();
    assert_eq!(zone.signed_distance(18.06, 59.33), -150.0);
    // 140 m and 160 m north of the centre.
    let north = |metres: f64| 59.33 + metres / geometry::METRES_PER_DEGREE;
    let inside = zone.signed_distance(18.06, north(140.0));
    assert!((inside + 10.0).abs() < 0.01, "{inside}");
    assert!(zone.contains(18.06, north(140.0)));
    let outside = zone.signed_distance(18.06, north(160.0));
    assert!((outside - 10.0).abs() < 0.01, "{outside}");
    assert!(!zone.contains(18.06, north(160.0)));
}

#[test]
fn a_square_polygon_has_its_centre_inside_and_a_point_1_km_east_1_km_outside() {
    let zone = polygon(vec![square()]).validate("city").unwrap();
    assert!(zone.contains(18.05, 59.325));
    assert!(zone.signed_distance(18.05, 59.325) < 0.0);
    let east_degrees = 1_000.0 / (geometry::METRES_PER_DEGREE * 59.325f64.to_radians().cos());
    let east = 18.1 + east_degrees;
    assert!(!zone.contains(east, 59.325));
    let distance = zone.signed_distance(east, 59.325);
    assert!((distance - 1_000.0).abs() < 10.0, "{distance}");
    // And on the sphere too: the projection is not off by more than 1%.
    let sphere = geometry::haversine(18.1, 59.325, east, 59.325);
    assert!(
        (distance - sphere).abs() < 10.0,
        "{distance} against {sphere}"
    );
}

#[test]
fn a_point_in_a_hole_is_outside_at_the_distance_to_the_hole_edge() {
    let hole = [
        [18.04, 59.32],
        [18.04, 59.33],
        [18.06, 59.33],
        [18.06, 59.32],
        [18.04, 59.32],
    ];
    let hole = hole.iter().map(|c| c.to_vec()).collect();
    let zone = polygon(vec![square(), hole]).validate("ring").unwrap();
    assert!(!zone.contains(18.05, 59.325));
    let distance = zone.signed_distance(18.05, 59.325);
    // Half the hole's height, 0.005 degrees of latitude.
    assert!(
        (distance - 0.005 * geometry::METRES_PER_DEGREE).abs() < 1.0,
        "{distance}"
    );
    assert!(zone.contains(18.02, 59.325));
    assert!(zone.signed_distance(18.02, 59.325) < 0.0);
}

#[test]
fn a_point_on_a_polygon_edge_is_inside_exactly_when_contains_says_so() {
    let zone = polygon(vec![square()]).validate("city").unwrap();
    for (lon, lat) in [(18.0, 59.3), (18.1, 59.32), (18.05, 59.35), (18.0, 59.32)] {
        assert_eq!(
            zone.contains(lon, lat),
            zone.signed_distance(lon, lat) <= 0.0,
            "{lon},{lat}"
        );
        assert!(zone.signed_distance(lon, lat).abs() < 1e-6);
    }
}

#[test]
fn bounds_enclose_the_zone() {
    let city = polygon(vec![square()]).validate("city").unwrap();
    assert_eq!(city.bounds(), [18.0, 59.3, 18.1, 59.35]);
    let depot = circle(18.06, 59.33, 150.0).validate("depot").unwrap();
    let [w, s, e, n] = depot.bounds();
    assert!(w < 18.06 && e > 18.06 && s < 59.33 && n > 59.33);
    // The bounds touch the circle (to rounding) north and south, and lie
    // outside it east and west, where its widest longitude is nearer a pole.
    assert!(depot.signed_distance(18.06, n).abs() < 1e-6);
    assert!(depot.signed_distance(18.06, s).abs() < 1e-6);
    assert!(depot.signed_distance(e, 59.33) > 0.0 && depot.signed_distance(w, 59.33) > 0.0);
}

#[test]
fn a_polygon_is_kept_with_two_numbers_a_position_and_serialises_as_geojson() {
    let mut ring = square();
    ring.iter_mut().for_each(|p| p.push(28.0));
    let zone = polygon(vec![ring]).validate("yard").unwrap();
    let json = serde_json::to_value(&zone).unwrap();
    assert_eq!(json["name"], "yard");
    assert_eq!(json["polygon"]["type"], "Polygon");
    assert_eq!(
        json["polygon"]["coordinates"][0][1],
        serde_json::json!([18.1, 59.3])
    );
    let depot = circle(18.06, 59.33, 150.0).validate("depot").unwrap();
    assert_eq!(
        serde_json::to_string(&depot).unwrap(),
        r#"{"name":"depot","circle":{"longitude":18.06,"latitude":59.33,"radius":150.0}}"#
    );
}

#[test]
fn zone_input_json_takes_one_shape_and_refuses_unknown_fields_and_other_geometries() {
    let sent: ZoneInput = serde_json::from_str(
        r#"{"polygon":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}"#,
    )
    .unwrap();
    assert!(sent.validate("tri").is_ok());
    let sent: ZoneInput =
        serde_json::from_str(r#"{"circle":{"longitude":1,"latitude":2,"radius":3}}"#).unwrap();
    assert!(sent.validate("c").is_ok());
    for bad in [
        r#"{"circle":{"longitude":1,"latitude":2,"radius":3},"colour":"red"}"#,
        r#"{"circle":{"longitude":1,"latitude":2,"radius":3,"z":0}}"#,
        r#"{"polygon":{"type":"Point","coordinates":[1,2]}}"#,
        r#"{"polygon":{"type":"MultiPolygon","coordinates":[]}}"#,
        r#"{"polygon":{"type":"Polygon","coordinates":[],"bbox":[]}}"#,
    ] {
        assert!(serde_json::from_str::<ZoneInput>(bad).is_err(), "{bad}");
    }
}

#[test]
fn names_follow_the_rule() {
    for name in ["depot", "A-z_0.9", &"x".repeat(64)] {
        assert!(is_valid_zone_name(name), "{name}");
    }
    for name in ["", "has space", "a/b", "ä", &"x".repeat(65)] {
        assert!(!is_valid_zone_name(name), "{name}");
    }
    let refusal = circle(1.0, 2.0, 3.0).validate("a b").unwrap_err();
    assert_eq!(refusal.field, "name");
    assert!(refusal.detail.contains(ZONE_NAME_RULE));
}

#[test]
fn each_circle_rule_names_its_field() {
    let both = ZoneInput {
        polygon: polygon(vec![square()]).polygon,
        ..circle(1.0, 2.0, 3.0)
    };
    let neither = ZoneInput {
        circle: None,
        polygon: None,
    };
    assert_eq!(refused(both), "circle");
    assert_eq!(refused(neither), "circle");
    assert_eq!(refused(circle(180.5, 0.0, 1.0)), "circle.longitude");
    assert_eq!(refused(circle(f64::NAN, 0.0, 1.0)), "circle.longitude");
    assert_eq!(refused(circle(0.0, -90.5, 1.0)), "circle.latitude");
    assert_eq!(refused(circle(0.0, f64::INFINITY, 1.0)), "circle.latitude");
    assert_eq!(refused(circle(0.0, 0.0, 0.0)), "circle.radius");
    assert_eq!(refused(circle(0.0, 0.0, 1_000_000.5)), "circle.radius");
    assert_eq!(refused(circle(0.0, 0.0, f64::NAN)), "circle.radius");
    assert!(circle(-180.0, 90.0, 1_000_000.0).validate("edge").is_ok());
}

#[test]
fn each_polygon_rule_names_its_ring_or_position() {
    let with = |edit: &dyn Fn(&mut Rings)| {
        let mut rings = vec![square(), square()];
        edit(&mut rings);
        refused(polygon(rings))
    };
    assert_eq!(with(&|r| r.clear()), "polygon.coordinates");
    assert_eq!(with(&|r| r.resize(65, square())), "polygon.coordinates");
    assert_eq!(
        with(&|r| r[1] = vec![vec![18.0, 59.3]; 10_000]),
        "polygon.coordinates"
    );
    assert_eq!(with(&|r| r[1].truncate(3)), "polygon.coordinates[1]");
    assert_eq!(
        with(&|r| r[1][4] = vec![18.0, 59.31]),
        "polygon.coordinates[1]"
    );
    assert_eq!(with(&|r| r[0][3] = vec![18.0]), "polygon.coordinates[0][3]");
    assert_eq!(
        with(&|r| r[0][3] = vec![18.0, 59.3, 1.0, 2.0]),
        "polygon.coordinates[0][3]"
    );
    assert_eq!(
        with(&|r| r[0][2] = vec![18.0, 59.3, f64::NAN]),
        "polygon.coordinates[0][2]"
    );
    assert_eq!(
        with(&|r| r[1][2][0] = f64::INFINITY),
        "polygon.coordinates[1][2]"
    );
    assert_eq!(with(&|r| r[1][2][0] = 180.5), "polygon.coordinates[1][2]");
    assert_eq!(with(&|r| r[1][2][1] = 90.5), "polygon.coordinates[1][2]");
    let line = vec![
        vec![18.0, 59.3],
        vec![18.1, 59.3],
        vec![18.05, 59.3],
        vec![18.0, 59.3],
    ];
    assert_eq!(with(&|r| r[1] = line.clone()), "polygon.coordinates[1]");
    let pacific = vec![
        vec![179.0, 0.0],
        vec![-179.0, 0.0],
        vec![-179.0, 1.0],
        vec![179.0, 0.0],
    ];
    let refusal = polygon(vec![pacific]).validate("pacific").unwrap_err();
    assert_eq!(refusal.field, "polygon.coordinates[0]");
    assert!(
        refusal.detail.contains("antimeridian"),
        "{}",
        refusal.detail
    );
    assert!(polygon(vec![square(); 64]).validate("many").is_ok());
}
