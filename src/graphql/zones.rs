//! Zones as GraphQL shows them: the model's [`Zone`] with its shape split
//! into `circle` and `polygon`, and `inside`, which asks the broker who is
//! in it now through the same [`crate::zones::occupants`] as REST.

use std::sync::Arc;

use async_graphql::{Context, Object};

use super::{authorize, caller, refused};
use crate::access::Scope;
use crate::broker::Broker;
use crate::model::{Circle, Polygon, Shape, Zone};
use crate::zones::Occupant;

/// `--max-zones`, in the schema's data for `putZone`.
#[derive(Debug, Clone, Copy)]
pub struct MaxZones(pub usize);

/// A zone as a GraphQL object: a view of the broker's zone, not a copy of
/// its fields.
pub struct ZoneView(pub Arc<Zone>);

/// A zone trackers enter and leave: a circle or a GeoJSON polygon.
#[Object(name = "Zone")]
impl ZoneView {
    /// The zone's name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Its centre and radius (metres) when it is a circle, else null.
    async fn circle(&self) -> Option<Circle> {
        match &self.0.shape {
            Shape::Circle(circle) => Some(*circle),
            Shape::Polygon(_) => None,
        }
    }

    /// Its GeoJSON geometry when it is a polygon, else null.
    async fn polygon(&self) -> Option<&Polygon> {
        match &self.0.shape {
            Shape::Polygon(polygon) => Some(polygon),
            Shape::Circle(_) => None,
        }
    }

    /// The trackers inside it now that the caller may read, each with the
    /// id of its `enter` event and its latest position. Needs the
    /// subscribe credential, even on a zone a mutation returned.
    async fn inside(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Occupant>> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let found = crate::zones::occupants(&**broker, &caller(ctx), self.0.name.clone())
            .await
            .map_err(refused)?;
        Ok(found.inside)
    }
}
