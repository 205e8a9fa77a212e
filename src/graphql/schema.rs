//! The schema, built once at start-up and shared by every transport, with the
//! limits a public endpoint needs.

use std::sync::Arc;

use async_graphql::Schema;

use super::zones::MaxZones;
use super::{Mutation, Query, Subscription};
use crate::access::Access;
use crate::broker::Broker;

/// The longlat GraphQL schema.
pub type LonglatSchema = Schema<Query, Mutation, Subscription>;

/// Deepest selection accepted. The schema itself is shallow; this leaves
/// room for GraphiQL's introspection query and refuses nesting abuse.
pub const MAX_DEPTH: usize = 16;

/// Most fields one operation may select (aliases included), so one request
/// cannot ask for unbounded work.
pub const MAX_COMPLEXITY: usize = 1000;

/// The schema, serving `broker` under the rules of `access`, keeping at
/// most `max_zones` zones (`--max-zones`).
pub fn build(broker: Arc<dyn Broker>, access: Arc<Access>, max_zones: usize) -> LonglatSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(broker)
        .data(access)
        .data(MaxZones(max_zones))
        .extension(super::guard::DocumentGuard)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as checked in at `schema/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}
