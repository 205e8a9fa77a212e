//! `Mutation`: publishing, through the same steps as `POST /longlat`
//! ([`crate::publish`]), and putting and deleting zones, through the same
//! operations as `/zones` ([`crate::zones`]).

use std::sync::Arc;

use async_graphql::{Context, Object};

use super::zones::{MaxZones, ZoneView};
use super::{caller, refused};
use crate::access::Access;
use crate::broker::{Broker, ZoneChange};
use crate::error::Error;
use crate::model::{Circle, Polygon, PositionEvent, PositionInput, ZoneInput};
use crate::publish::Publisher;

/// Operations that change state.
pub struct Mutation;

/// Operations that change state: publishing positions, putting and
/// deleting zones.
#[Object]
impl Mutation {
    /// Publishes a position to every subscriber, exactly like `POST /longlat`,
    /// and returns the stored event. A rejected input is an error with
    /// `extensions.code` `invalid-position` and `extensions.field` naming the
    /// field; nothing is published then.
    async fn publish(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The position: longitude, latitude and optionally a tracker name.")]
        input: PositionInput,
    ) -> async_graphql::Result<PositionEvent> {
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let access = ctx.data::<Arc<Access>>()?;
        let caller = caller(ctx);
        let event = Publisher::new(access, &**broker)
            .publish(&caller, "graphql", input)
            .await
            .map_err(refused)?;
        Ok(event.position.clone())
    }

    /// Creates or replaces zone `name`, exactly like `PUT /zones/{name}`:
    /// give one of `circle` or `polygon`. From the next position on, a
    /// tracker that comes inside gets an `enter` event, and one that goes
    /// more than `--zone-hysteresis` metres outside a `leave` event. Needs
    /// a publish credential not restricted to some trackers. A shape that
    /// breaks a rule is an error with `extensions.code` `invalid-zone` and
    /// `extensions.field` naming it (`circle.radius`,
    /// `polygon.coordinates[0][3]`, ...); more than `--max-zones` is
    /// `conflict`.
    async fn put_zone(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The zone's name: 1 to 64 of A-Z a-z 0-9 . _ -")] name: String,
        #[graphql(desc = "A circle: centre and radius in metres.")] circle: Option<Circle>,
        #[graphql(desc = "A GeoJSON Polygon: the exterior ring, then holes; each ring closed.")]
        polygon: Option<Polygon>,
    ) -> async_graphql::Result<ZoneView> {
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let access = ctx.data::<Arc<Access>>()?;
        let MaxZones(max_zones) = *ctx.data::<MaxZones>()?;
        access.authorize_zones(&caller(ctx)).map_err(refused)?;
        let zone = ZoneInput { circle, polygon }
            .validate(&name)
            .map_err(|invalid| refused(Error::from(invalid)))?;
        crate::zones::put(&**broker, max_zones, zone.clone())
            .await
            .map_err(refused)?;
        Ok(ZoneView(Arc::new(zone)))
    }

    /// Deletes zone `name`, exactly like `DELETE /zones/{name}`: true when
    /// there was one, false when there was none. Trackers inside it get no
    /// `leave` event: the zone is gone, not left.
    async fn delete_zone(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The zone's name.")] name: String,
    ) -> async_graphql::Result<bool> {
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let access = ctx.data::<Arc<Access>>()?;
        access.authorize_zones(&caller(ctx)).map_err(refused)?;
        let deleted = broker.change_zone(ZoneChange::Delete(name)).await;
        deleted.map_err(|e| refused(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::access::Access;
    use crate::broker::memory::MemoryBroker;
    use crate::broker::{Broker, HubSettings};
    use crate::config::Config;

    const PUBLISH: &str = "mutation { publish(input: {longitude: 18.06, latitude: 59.33}) { id } }";

    #[tokio::test]
    async fn a_mutation_run_without_a_caller_is_still_held_to_the_publish_rate() {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(
            HubSettings {
                capacity: 10,
                max_age: None,
            },
            20.0,
        ));
        let mut config = Config::defaults();
        config.publish_rate = 1;
        config.publish_burst = 1;
        let access = Access::from_config(&config).expect("access rules");
        let schema = crate::graphql::build(broker.clone(), Arc::new(access), 10);
        // No transport put a caller in the request's data.
        let first = schema.execute(PUBLISH).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let second = schema.execute(PUBLISH).await;
        let code = second.errors.first().and_then(|error| {
            let code = error.extensions.as_ref()?.get("code")?;
            Some(code.clone())
        });
        assert_eq!(
            code,
            Some(async_graphql::Value::from("rate-limited")),
            "{second:?}"
        );
        assert_eq!(
            broker
                .history(None, 10, &Default::default())
                .unwrap()
                .events
                .len(),
            1
        );
    }
}
