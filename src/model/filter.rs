//! What a subscriber or a reader asks for, parsed once for every transport:
//! the cursor (`after`, `Last-Event-ID`, an id to look up), tracker names
//! and the bounding box. `/ws`, `/events`, history and GraphQL each take
//! these in their own syntax and hand the parts here, so a bad value gets
//! the same rule and the same `invalid-parameter` answer naming it
//! everywhere.

use super::{
    BoundingBox, EventId, Filter, ReadScope, TRACKER_MAX_LEN, TRACKER_RULE, ZONE_NAME_RULE,
    is_valid_tracker, is_valid_zone_name,
};

/// A parameter that cannot be used: answered as `invalid-parameter` with
/// `field` set to `param`, on every transport.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{param}: {detail}")]
pub struct InvalidParameter {
    /// The parameter, as the client named it.
    pub param: &'static str,
    /// The rule it breaks.
    pub detail: String,
}

/// An event id sent as parameter `param`.
pub fn parse_id(param: &'static str, value: &str) -> Result<EventId, InvalidParameter> {
    value
        .parse()
        .map_err(|e: super::InvalidEventId| InvalidParameter {
            param,
            detail: e.to_string(),
        })
}

/// An event id sent as parameter `param`, when one was sent.
pub fn parse_cursor(
    param: &'static str,
    value: Option<&str>,
) -> Result<Option<EventId>, InvalidParameter> {
    value.map(|id| parse_id(param, id)).transpose()
}

/// Refuses `name`, sent as parameter `param`, unless it is a tracker name.
pub fn check_tracker(param: &'static str, name: &str) -> Result<(), InvalidParameter> {
    if is_valid_tracker(name) {
        return Ok(());
    }
    // Enough of it to recognise, not all of what a client may send.
    let shown: String = name.chars().take(TRACKER_MAX_LEN + 16).collect();
    Err(InvalidParameter {
        param,
        detail: format!("{shown:?} is not a tracker name ({TRACKER_RULE})"),
    })
}

/// Refuses `name`, sent as parameter `param`, unless it is a zone name.
pub fn check_zone_name(param: &'static str, name: &str) -> Result<(), InvalidParameter> {
    if is_valid_zone_name(name) {
        return Ok(());
    }
    let shown: String = name.chars().take(80).collect();
    Err(InvalidParameter {
        param,
        detail: format!("{shown:?} is not a zone name ({ZONE_NAME_RULE})"),
    })
}

/// The zones a subscriber of zone events asks for, as a query parameter
/// sends them: comma-separated names, or `*` for every zone (`None`).
/// The names are checked where the zones are looked up
/// ([`crate::zones::zone_events`]).
pub fn parse_zones(value: &str) -> Option<Vec<String>> {
    (value != "*").then(|| value.split(',').map(str::to_owned).collect())
}

/// A tracker asked for by name that the reader's scope does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this token may not read tracker {tracker:?}")]
pub struct OutOfScope {
    /// The tracker, as asked for (already checked to be a tracker name).
    pub tracker: String,
}

impl Filter {
    /// The filter for these trackers and this box, every name and the box's
    /// ranges checked (a box may come from a client unchecked, as a GraphQL
    /// input object does).
    pub fn checked(
        trackers: Option<Vec<String>>,
        bbox: Option<BoundingBox>,
    ) -> Result<Self, InvalidParameter> {
        for name in trackers.iter().flatten() {
            check_tracker("tracker", name)?;
        }
        let bbox = bbox.map(BoundingBox::checked).transpose()?;
        Ok(Self {
            trackers,
            bbox,
            ..Self::default()
        })
    }

    /// This filter held to a reader's read `scope` (`None`: unrestricted):
    /// what it asks for, intersected with what the reader may read. A
    /// tracker asked for by name that the scope does not cover is refused
    /// rather than quietly never delivered, so a client with the wrong
    /// credential is told instead of waiting forever.
    pub fn within(mut self, scope: Option<&ReadScope>) -> Result<Self, OutOfScope> {
        let Some(scope) = scope else {
            return Ok(self);
        };
        if let Some(outside) = self
            .trackers
            .iter()
            .flatten()
            .find(|name| !scope.allows(Some(name)))
        {
            return Err(OutOfScope {
                tracker: outside.clone(),
            });
        }
        self.scope = Some(scope.clone());
        Ok(self)
    }

    /// The filter a query string asks for: `tracker=<name>[,<name>…]` and
    /// `bbox=<minLon>,<minLat>,<maxLon>,<maxLat>`.
    pub fn from_query(
        trackers: Option<&str>,
        bbox: Option<&str>,
    ) -> Result<Self, InvalidParameter> {
        let trackers = trackers.map(|list| list.split(',').map(str::to_owned).collect());
        let bbox = bbox
            .map(str::parse::<BoundingBox>)
            .transpose()
            .map_err(|e| InvalidParameter {
                param: "bbox",
                detail: e.to_string(),
            })?;
        Self::checked(trackers, bbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_syntaxes_give_the_same_filter_and_the_same_refusals() {
        let from_query = Filter::from_query(Some("bus-1,bus-2"), Some("10,60,20,50")).unwrap();
        let box_input = BoundingBox {
            min_longitude: 10.0,
            min_latitude: 60.0,
            max_longitude: 20.0,
            max_latitude: 50.0,
        };
        let trackers = Some(vec!["bus-1".to_owned(), "bus-2".to_owned()]);
        assert_eq!(Filter::checked(trackers, Some(box_input)), Ok(from_query));

        let query_refusal = Filter::from_query(Some("bus-1,no space"), None).unwrap_err();
        let input_refusal =
            Filter::checked(Some(vec!["bus-1".into(), "no space".into()]), None).unwrap_err();
        assert_eq!(query_refusal, input_refusal);
        assert_eq!(query_refusal.param, "tracker");
        assert!(
            Filter::from_query(Some("a,,b"), None).is_err(),
            "empty name"
        );

        let bad_box = BoundingBox {
            min_latitude: 91.0,
            ..box_input
        };
        let query_refusal = Filter::from_query(None, Some("10,91,20,50")).unwrap_err();
        assert_eq!(Filter::checked(None, Some(bad_box)), Err(query_refusal));

        let cursor = parse_cursor("after", Some("yesterday")).unwrap_err();
        assert_eq!(cursor.param, "after");
        assert_eq!(parse_cursor("after", None), Ok(None));
    }

    #[test]
    fn a_scope_narrows_a_filter_and_refuses_a_tracker_outside_it() {
        let scope = ReadScope::parse_list("fleet-a.*").unwrap();
        let event = |tracker: Option<&str>| {
            let input = crate::model::PositionInput {
                longitude: 1.0,
                latitude: 1.0,
                tracker: tracker.map(str::to_owned),
                ..Default::default()
            };
            let valid = input.validate().unwrap();
            valid.into_event(EventId::default(), time::OffsetDateTime::UNIX_EPOCH)
        };
        let everything = Filter::default().within(Some(&scope)).unwrap();
        assert!(everything.matches_position(&event(Some("fleet-a.van-1"))));
        assert!(!everything.matches_position(&event(Some("fleet-b.van-1"))));
        assert!(!everything.matches_position(&event(None)));
        assert!(everything.is_scoped());

        let asked = Filter::from_query(Some("fleet-a.van-1,fleet-b.van-1"), None).unwrap();
        let refused = asked.within(Some(&scope)).unwrap_err();
        assert_eq!(refused.tracker, "fleet-b.van-1");

        let unscoped = Filter::default().within(None).unwrap();
        assert!(!unscoped.is_scoped());
        assert!(unscoped.matches_position(&event(Some("fleet-b.van-1"))));
    }
}
