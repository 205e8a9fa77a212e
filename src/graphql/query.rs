//! `Query`: reading back what the broker still keeps, and its zones.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, ID, Object, SimpleObject};

use super::zones::ZoneView;
use super::{authorize, inside_filter, invalid, reader_filter};
use crate::access::Scope;
use crate::broker::{Broker, ZoneQuery};
use crate::error::Error;
use crate::model::{BoundingBox, Filter, PositionEvent, check_tracker, parse_cursor, parse_id};
use crate::zones;

/// Events one `history` call returns when it gives no `limit`.
pub const DEFAULT_HISTORY_LIMIT: i32 = 100;

/// Most events one `history` call returns.
pub const MAX_HISTORY_LIMIT: i32 = 1000;

/// Read-only operations.
pub struct Query;

/// A page costs its selection once per ten events asked for, so the
/// complexity limit bounds the events one request can make the server copy.
fn history_complexity(limit: Option<i32>, child_complexity: usize) -> usize {
    let limit = limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .clamp(1, MAX_HISTORY_LIMIT);
    child_complexity * usize::try_from(limit / 10).unwrap_or(1).max(1)
}

/// One page of history, oldest event first.
#[derive(SimpleObject)]
pub struct HistoryPage {
    /// The events, oldest first. Pass the last one's `id` as `after` for the next page.
    events: Vec<PositionEvent>,
    /// True when `after` is older than the history the server keeps: events
    /// between it and the first event returned are lost.
    cursor_too_old: bool,
}

/// Read-only operations: the latest event, one event by id, recent history,
/// and zones.
#[Object]
impl Query {
    /// The latest position, optionally only from one tracker, by fix time
    /// (`recordedAt` when sent, else arrival): a buffered fix that arrives
    /// late does not replace a newer one. Null when nothing (matching) is
    /// in history.
    async fn latest(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this tracker's latest event.")] tracker: Option<String>,
    ) -> async_graphql::Result<Option<PositionEvent>> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        if let Some(name) = &tracker {
            check_tracker("tracker", name).map_err(invalid)?;
        }
        let wanted = Filter {
            trackers: tracker.clone().map(|name| vec![name]),
            ..Filter::default()
        };
        let readable = reader_filter(ctx, wanted)?;
        Ok(broker
            .latest(tracker.as_deref(), readable.scope.as_ref())
            .map(|event| event.position.clone()))
    }

    /// The event with this id, while it is still in history.
    async fn event(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An event id, like `1764000000000-0`.")] id: ID,
    ) -> async_graphql::Result<Option<PositionEvent>> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let id = parse_id("id", id.as_str()).map_err(invalid)?;
        // Outside the caller's scope reads as not found: nothing told.
        let readable = reader_filter(ctx, Filter::default())?;
        Ok(broker
            .get(id)
            .filter(|event| readable.matches(event))
            .map(|event| event.position.clone()))
    }

    /// Recent events, oldest first, at most `limit` (1 to 1000) per page.
    /// The server keeps a bounded history (`--history-size`).
    #[graphql(complexity = "history_complexity(limit, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only events after this id; from the oldest kept when absent.")]
        after: Option<ID>,
        #[graphql(desc = "Largest number of events returned, 1 to 1000 (100 when absent).")]
        limit: Option<i32>,
        #[graphql(desc = "Only events from one of these trackers.")] tracker: Option<Vec<String>>,
        #[graphql(desc = "Only events inside this box.")] bbox: Option<BoundingBox>,
        #[graphql(desc = "Only positions inside this zone (as it is now).")] inside: Option<String>,
    ) -> async_graphql::Result<HistoryPage> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
            return Err(Error::InvalidParameter {
                param: "limit",
                detail: format!("must be from 1 to {MAX_HISTORY_LIMIT}, got {limit}"),
            }
            .extend());
        }
        let after = parse_cursor("after", after.as_deref().map(String::as_str)).map_err(invalid)?;
        let mut wanted = Filter::checked(tracker, bbox).map_err(invalid)?;
        wanted.inside = inside_filter(&**broker, inside.as_deref())?;
        let filter = reader_filter(ctx, wanted)?;
        let limit = usize::try_from(limit).unwrap_or(1);
        let page = broker
            .history(after, limit, &filter)
            .map_err(|e| Error::from(e).extend())?;
        Ok(HistoryPage {
            events: page.events.iter().map(|e| e.position.clone()).collect(),
            cursor_too_old: page.cursor_too_old,
        })
    }

    /// The zones, by name: every one, or those whose bounds meet `bbox`
    /// (say a map's view), at most `limit`, after `after` (the last name of
    /// the page before).
    async fn zones(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only zones whose bounds meet this box.")] bbox: Option<BoundingBox>,
        #[graphql(desc = "Only zones named after this one: the last name of the page before.")]
        after: Option<String>,
        #[graphql(desc = "At most this many zones, 1 to 10000; every one when absent.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<ZoneView>> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let query = ZoneQuery {
            within: bbox,
            after,
            // A negative limit is as wrong as 0, which `list` refuses.
            limit: limit.map(|n| usize::try_from(n).unwrap_or(0)),
        };
        let page = zones::list(&**broker, query).map_err(invalid)?;
        Ok(page.zones.into_iter().map(ZoneView).collect())
    }

    /// The zone with this name; null when there is none.
    async fn zone(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The zone's name.")] name: String,
    ) -> async_graphql::Result<Option<ZoneView>> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        Ok(broker.zone(&name).map(ZoneView))
    }
}
