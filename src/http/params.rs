//! The query parameters every stream takes, with one syntax on every transport:
//! `after=<event id>`, `tracker=<name>[,<name>…]`, `bbox=<minLon>,<minLat>,<maxLon>,<maxLat>`.

use serde::Deserialize;

use crate::error::Error;
use crate::model::{BoundingBox, EventId, Filter, is_valid_tracker};

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
        pattern = "^[A-Za-z0-9._:-]{1,64}(,[A-Za-z0-9._:-]{1,64})*$",
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
}

/// Parses an event id given as parameter `param`.
pub fn parse_cursor(param: &'static str, value: Option<&str>) -> Result<Option<EventId>, Error> {
    value
        .map(str::parse::<EventId>)
        .transpose()
        .map_err(|e| Error::InvalidParameter {
            param,
            detail: e.to_string(),
        })
}

impl StreamParams {
    /// The cursor and filter these parameters ask for.
    pub fn parse(&self) -> Result<(Option<EventId>, Filter), Error> {
        let after = parse_cursor("after", self.after.as_deref())?;
        let last_event_id = parse_cursor("lastEventId", self.last_event_id.as_deref())?;
        Ok((after.or(last_event_id), self.filter()?))
    }

    fn filter(&self) -> Result<Filter, Error> {
        let trackers = match self.tracker.as_deref() {
            None => None,
            Some(list) => {
                let names: Vec<String> = list.split(',').map(str::to_owned).collect();
                if let Some(bad) = names.iter().find(|n| !is_valid_tracker(n)) {
                    return Err(Error::InvalidParameter {
                        param: "tracker",
                        detail: format!(
                            "{bad:?} is not a tracker name (1 to 64 characters from A-Z a-z 0-9 . _ : -, comma-separated)"
                        ),
                    });
                }
                Some(names)
            }
        };
        let bbox = self
            .bbox
            .as_deref()
            .map(|b| b.parse::<BoundingBox>())
            .transpose()
            .map_err(|e| Error::InvalidParameter {
                param: "bbox",
                detail: e.to_string(),
            })?;
        Ok(Filter { trackers, bbox })
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
