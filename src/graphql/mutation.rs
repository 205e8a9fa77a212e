//! `Mutation`: publishing, through the same validation and broker as
//! `POST /longlat`.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object};

use super::authorize;
use crate::access::{Access, Caller, Scope};
use crate::broker::Broker;
use crate::error::Error;
use crate::model::{PositionEvent, PositionInput};

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
        authorize(ctx, Scope::Publish)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let access = ctx.data::<Arc<Access>>()?;
        let caller = ctx.data_opt::<Caller>();
        let started = std::time::Instant::now();
        let published = async {
            if let Some(caller) = caller {
                access.check_publish_rate(caller)?;
                access.authorize_tracker(caller, input.tracker.as_deref())?;
            }
            let valid = input.validate()?;
            Ok::<_, Error>(broker.publish(valid).await?)
        }
        .await;
        crate::stats::publish("graphql", started, published.is_ok());
        let event = published.map_err(|e| {
            crate::stats::rejected(e.code());
            e.extend()
        })?;
        Ok(event.position.clone())
    }
}
