//! `Mutation`: publishing, through the same steps as `POST /longlat`
//! ([`crate::publish`]).

use std::sync::Arc;

use async_graphql::{Context, Object};

use super::{caller, refused};
use crate::access::Access;
use crate::broker::Broker;
use crate::model::{PositionEvent, PositionInput};
use crate::publish::Publisher;

/// Operations that change state.
pub struct Mutation;

/// Operations that change state: publishing positions.
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
        let schema = crate::graphql::build(broker.clone(), Arc::new(access));
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
