//! The zone operations every surface shares: REST's `/zones` and GraphQL's
//! `zones`, `putZone`, `Zone.inside` and `zoneEvents` call these, so zones
//! are listed by one set of rules, a zone is put under one limit, who is
//! inside one is read within one scope rule, and a subscriber naming a
//! zone is checked one way, whatever the transport.
//! Like [`crate::publish`], nothing here knows HTTP or GraphQL; each
//! transport authorizes its caller first ([`crate::access::Access::authorize_zones`]
//! to change zones) and turns the [`Error`] into its own answer.

use std::sync::Arc;

use serde::Serialize;

use crate::access::Caller;
use crate::broker::{Broker, ZoneChange, ZoneQuery};
use crate::error::Error;
use crate::model::{
    BoundingBox, EventId, Events, InvalidParameter, PositionEvent, Zone, check_zone_name,
};

/// Who is inside a zone now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ZoneOccupants {
    /// The zone.
    pub zone: String,
    /// Each tracker inside it (that the reader may read), by name.
    pub inside: Vec<Occupant>,
}

/// A tracker inside a zone.
#[derive(Debug, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
#[graphql(complex)]
pub struct Occupant {
    /// The tracker.
    pub tracker: String,
    /// The id of the `enter` event that put it there.
    #[graphql(skip)]
    pub since: EventId,
    /// Its latest position, while the broker keeps it.
    pub position: Option<PositionEvent>,
}

#[async_graphql::ComplexObject]
impl Occupant {
    /// The id of the `enter` event that put it there.
    #[graphql(name = "since")]
    async fn graphql_since(&self) -> async_graphql::ID {
        self.since.into()
    }
}

/// The most zones a page may be asked for (`limit`); without a limit,
/// every zone comes.
pub const MAX_ZONE_PAGE: usize = 10_000;

/// `invalid-parameter` for a page size that is not 1 to [`MAX_ZONE_PAGE`].
pub fn bad_zone_limit() -> InvalidParameter {
    InvalidParameter {
        param: "limit",
        detail: format!("limit must be a whole number from 1 to {MAX_ZONE_PAGE}"),
    }
}

/// A page of zones: at most the limit asked for, and the name to pass as
/// `after` for the next page when there are more.
pub struct ZonePage {
    /// The zones, by name.
    pub zones: Vec<Arc<Zone>>,
    /// The last name of this page, when more zones follow it.
    pub next: Option<String>,
}

/// The zones `query` asks for, its parameters checked (each named as the
/// query string and GraphQL name it: `bbox`, `after`, `limit`).
pub fn list(broker: &dyn Broker, query: ZoneQuery) -> Result<ZonePage, InvalidParameter> {
    if let Some(after) = &query.after {
        check_zone_name("after", after)?;
    }
    let within = query.within.map(BoundingBox::checked).transpose()?;
    if query
        .limit
        .is_some_and(|n| !(1..=MAX_ZONE_PAGE).contains(&n))
    {
        return Err(bad_zone_limit());
    }
    // One more than asked for tells whether another page follows.
    let mut zones = broker.zones(&ZoneQuery {
        within,
        limit: query.limit.map(|n| n.saturating_add(1)),
        ..query
    });
    let next = match query.limit {
        Some(limit) if zones.len() > limit => {
            zones.truncate(limit);
            zones.last().map(|zone| zone.name.clone())
        }
        _ => None,
    };
    Ok(ZonePage { zones, next })
}

/// Puts `zone`, unless that would make more than `max_zones`
/// (`--max-zones`): whether it replaced one of the same name.
pub async fn put(broker: &dyn Broker, max_zones: usize, zone: Zone) -> Result<bool, Error> {
    if broker.zone(&zone.name).is_none() && broker.zone_count() >= max_zones {
        return Err(Error::Conflict(format!(
            "there are already {max_zones} zones, the most this server keeps (--max-zones)"
        )));
    }
    Ok(broker.change_zone(ZoneChange::Put(zone)).await?)
}

/// Who is inside zone `name`, as `caller` may see it: only the trackers
/// its read scope covers.
pub async fn occupants(
    broker: &dyn Broker,
    caller: &Caller,
    name: String,
) -> Result<ZoneOccupants, Error> {
    let found = broker.occupants(name.clone()).await?;
    let found = found.ok_or_else(|| no_zone(&name))?;
    let scope = caller.read_scope();
    let inside = found
        .into_iter()
        .filter(|(tracker, _)| scope.is_none_or(|s| s.allows(Some(tracker))))
        .map(|(tracker, since)| Occupant {
            position: broker
                .latest(Some(&tracker), None)
                .map(|e| e.position.clone()),
            tracker,
            since,
        })
        .collect();
    Ok(ZoneOccupants { zone: name, inside })
}

/// The zone called `name`, or `not-found`.
pub fn existing(broker: &dyn Broker, name: &str) -> Result<Arc<Zone>, Error> {
    broker.zone(name).ok_or_else(|| no_zone(name))
}

/// `not-found` for zone `name`, shown no longer than a client can read.
pub fn no_zone(name: &str) -> Error {
    let shown: String = name.chars().take(80).collect();
    Error::NotFound(format!("there is no zone {shown:?}"))
}

/// The zone events a subscriber asks for, sent as parameter `param`: of
/// the zones named (each a zone of `broker`), or of every zone (`None`). A
/// client that names a zone wrongly is told, not left waiting.
pub fn zone_events(
    param: &'static str,
    zones: Option<Vec<String>>,
    broker: &dyn Broker,
) -> Result<Events, InvalidParameter> {
    if let Some(names) = &zones {
        if names.is_empty() {
            return Err(InvalidParameter {
                param,
                detail: "name at least one zone, or none for every zone".into(),
            });
        }
        for name in names {
            check_zone_name(param, name)?;
            if broker.zone(name).is_none() {
                return Err(unknown(param, name));
            }
        }
    }
    Ok(Events::Zones(zones))
}

/// Zone `name` of `broker` as it is now, for a filter of the events inside
/// it (`inside`, sent as parameter `param`).
pub fn inside_zone(
    param: &'static str,
    name: &str,
    broker: &dyn Broker,
) -> Result<Arc<Zone>, InvalidParameter> {
    check_zone_name(param, name)?;
    broker.zone(name).ok_or_else(|| unknown(param, name))
}

fn unknown(param: &'static str, name: &str) -> InvalidParameter {
    InvalidParameter {
        param,
        detail: format!("there is no zone {name:?}"),
    }
}
