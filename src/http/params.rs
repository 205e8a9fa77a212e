//! The query parameters every stream takes, with one syntax on every transport:
//! `after=<event id>`, `tracker=<name>[,<name>…]`, `bbox=<minLon>,<minLat>,<maxLon>,<maxLat>`.

use serde::Deserialize;

use crate::error::Error;
use crate::model::{BoundingBox, EventId, Filter, is_valid_tracker};

/// Raw stream parameters, as they come in the query string.
#[derive(Debug, Default, Deserialize)]
pub struct StreamParams {
    /// Resume after this event id.
    pub after: Option<String>,
    /// Comma-separated tracker names.
    pub tracker: Option<String>,
    /// Bounding box.
    pub bbox: Option<String>,
}

impl StreamParams {
    /// The cursor and filter these parameters ask for.
    pub fn parse(&self) -> Result<(Option<EventId>, Filter), Error> {
        let after = self
            .after
            .as_deref()
            .map(|a| a.parse::<EventId>())
            .transpose()
            .map_err(|e| Error::InvalidParameter {
                param: "after",
                detail: e.to_string(),
            })?;
        Ok((after, self.filter()?))
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
