//! The GraphQL face of longlat: one schema over the same model types and the
//! same broker as REST and the raw WebSocket.
//!
//! [`schema::build`] makes the schema once at start-up, with depth and
//! complexity limits, behind [`guard::DocumentGuard`], which bounds a
//! document's cost before anything expands its fragments; the transports
//! live in `crate::http::graphql`.
//! Resolvers only translate arguments and call the broker: validation stays
//! in [`crate::model`], the mutation publishes through
//! [`crate::publish`], like `POST /longlat`, and zones are put and read
//! through [`crate::zones`], like `/zones`. Each resolver first asks
//! [`crate::access`] whether the operation's [`Caller`] (put in the
//! request's data by the transport; anonymous when none was) may do it.

pub mod guard;
mod mutation;
mod query;
pub mod schema;
pub mod shared;
mod subscription;
mod zones;

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions};

pub use mutation::Mutation;
pub use query::Query;
pub use schema::{LonglatSchema, MAX_COMPLEXITY, MAX_DEPTH, build, sdl};
pub use subscription::Subscription;

use crate::access::{Access, Caller, Scope};
use crate::broker::Broker;
use crate::error::Error;
use crate::model::{Filter, InvalidParameter, Zone};

/// The operation's caller, as the transport put it in the request's data.
/// An operation that reaches none (the schema executed directly) runs as
/// [`Caller::anonymous`], held to every rule an anonymous client is.
fn caller<'a>(ctx: &Context<'a>) -> Cow<'a, Caller> {
    ctx.data_opt::<Caller>()
        .map_or_else(|| Cow::Owned(Caller::anonymous()), Cow::Borrowed)
}

/// Whether `response` is a request error: the request was refused before
/// anything ran (it did not parse, validate or fit the limits, or a
/// variable could not be coerced). Anything that ran and failed has a path.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// Refuses the operation unless its caller may do `scope` (see
/// [`crate::access`]): `extensions.code` `unauthorized` or `forbidden`.
fn authorize(ctx: &Context<'_>, scope: Scope) -> async_graphql::Result<()> {
    let access = ctx.data::<Arc<Access>>()?;
    access.authorize(&caller(ctx), scope).map_err(refused)
}

/// `wanted` held to what the operation's caller may read (see
/// [`Caller::reader_filter`]): `forbidden` for a tracker outside its scope.
fn reader_filter(ctx: &Context<'_>, wanted: Filter) -> async_graphql::Result<Filter> {
    caller(ctx).reader_filter(wanted).map_err(refused)
}

/// A refusal as a GraphQL error, counted like an HTTP refusal.
fn refused(error: Error) -> async_graphql::Error {
    crate::stats::rejected(error.code());
    error.extend()
}

/// A bad argument as a GraphQL error: `invalid-parameter`, with
/// `extensions.field` naming it, as the HTTP transports answer it.
fn invalid(refusal: InvalidParameter) -> async_graphql::Error {
    Error::from(refusal).extend()
}

/// The zone an `inside` argument names, as it is now, for a filter; an
/// unknown zone is `invalid-parameter` naming it.
fn inside_filter(
    broker: &dyn Broker,
    inside: Option<&str>,
) -> async_graphql::Result<Option<Arc<Zone>>> {
    inside
        .map(|name| crate::zones::inside_zone("inside", name, broker))
        .transpose()
        .map_err(invalid)
}
