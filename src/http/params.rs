//! The query parameters every stream takes, with one syntax on every transport:
//! `after=<event id>`, `tracker=<name>[,<name>…]`, `bbox=<minLon>,<minLat>,<maxLon>,<maxLat>`,
//! `zone=<zone>[,<zone>…]` (zone events instead of positions), `inside=<zone>`,
//! checked by the same functions GraphQL's arguments are (zones by [`crate::zones`]).

use serde::Deserialize;

use crate::access::Caller;
use crate::broker::Broker;
use crate::error::Error;
pub use crate::model::parse_cursor;
use crate::model::{EventId, Filter, parse_zones};
use crate::zones::{inside_zone, zone_events};

/// Raw stream parameters, as they come in the query string.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Resume: first every event after this id still in history, then live.
    /// An id older than history gets a `gap` notice first; one ahead of
    /// the server's clock and of every id it has issued (by more than 10 s)
    /// is refused with 400.
    #[param(pattern = "^[0-9]{1,19}(-[0-9]{1,19})?$", example = "1795584285108-0")]
    pub after: Option<String>,
    /// The same as `after`, under the name EventSource polyfills use.
    #[serde(rename = "lastEventId")]
    #[param(rename = "lastEventId", pattern = "^[0-9]{1,19}(-[0-9]{1,19})?$")]
    pub last_event_id: Option<String>,
    /// Only these trackers, comma-separated.
    #[param(
        pattern = "^[A-Za-z0-9._:/-]{1,64}(,[A-Za-z0-9._:/-]{1,64})*$",
        example = "bus-1,bus-2"
    )]
    pub tracker: Option<String>,
    /// Only inside `minLon,minLat,maxLon,maxLat` (degrees); a west edge east
    /// of the east edge crosses the antimeridian.
    #[param(
        pattern = r"^-?(180(\.0+)?|(1[0-7][0-9]|[0-9]{1,2})(\.[0-9]+)?),-?(90(\.0+)?|[0-8]?[0-9](\.[0-9]+)?),-?(180(\.0+)?|(1[0-7][0-9]|[0-9]{1,2})(\.[0-9]+)?),-?(90(\.0+)?|[0-8]?[0-9](\.[0-9]+)?)$",
        example = "10.5,55,24.2,69.1"
    )]
    pub bbox: Option<String>,
    /// Zone events (`enter`, `leave`) of these zones, comma-separated, or
    /// of every zone (`*`), instead of positions.
    #[param(
        pattern = r"^(\*|[A-Za-z0-9._-]{1,64}(,[A-Za-z0-9._-]{1,64})*)$",
        example = "depot"
    )]
    pub zone: Option<String>,
    /// Only positions inside this zone (as it is when the stream starts);
    /// with `zone`, only zone events whose position is inside it.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "depot")]
    pub inside: Option<String>,
}

impl StreamParams {
    /// The cursor and filter these parameters ask for, the filter held to
    /// what `caller` may read; zones named must be `broker`'s.
    pub fn parse(
        &self,
        caller: &Caller,
        broker: &dyn Broker,
    ) -> Result<(Option<EventId>, Filter), Error> {
        let after = parse_cursor("after", self.after.as_deref())?;
        let last_event_id = parse_cursor("lastEventId", self.last_event_id.as_deref())?;
        let mut filter = Filter::from_query(self.tracker.as_deref(), self.bbox.as_deref())?;
        if let Some(zones) = self.zone.as_deref() {
            filter.events = zone_events("zone", parse_zones(zones), broker)?;
        }
        if let Some(name) = self.inside.as_deref() {
            filter.inside = Some(inside_zone("inside", name, broker)?);
        }
        Ok((after.or(last_event_id), caller.reader_filter(filter)?))
    }
}

/// A bearer token in the URL, for browsers' WebSocket and EventSource, which
/// cannot send an `Authorization` header. Prefer the header elsewhere: URLs
/// end up in proxies' logs.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TokenParam {
    /// The bearer token, when the server asks for one (as `Authorization: Bearer`).
    access_token: Option<String>,
}
