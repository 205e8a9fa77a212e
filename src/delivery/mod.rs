//! The delivery engine: every live subscriber, on every transport, is
//! written to by it.
//!
//! A subscriber reads from its own cursor (history, catching up, or after
//! falling behind) through a [`LiveStream`]. Once it has read everything,
//! and its socket has taken every byte, it parks a [`Seat`] in one of a few
//! [`Shards`]: a shard follows a [`Feed`] (the hub's events, or one shared
//! GraphQL execution's results) like one more reader and, for each item,
//! writes the item's ready-made frame to every parked socket (`shard.rs`).
//! Per item and parked subscriber that is one filter check and one `send`
//! (one io_uring submission per batch of sockets where the kernel allows
//! it): no task wakes, no frame is encoded again, nothing is copied.
//!
//! A socket the kernel does not take a whole frame from, or every socket of
//! a shard that fell behind, is handed back to its [`LiveStream`] with the
//! cursor after the last item it was given: the stream drains the socket
//! under its send timeout, reads on from that cursor (and is told what it
//! missed, as any reader is), and parks again once caught up. That loop is
//! written once, here, for `/ws`, `/events` and GraphQL subscriptions.

mod batch;
pub mod events;
mod live;
mod shard;

use std::future::Future;

pub use batch::Batch;
pub use events::{EventForm, Events, Fanout, Framing, fanout};
pub use live::{Follow, Gone, LiveStream};
pub use shard::{Seat, Shards};

/// What a shard follows, and how it makes an item's frames.
pub trait Feed: Send + Sync + 'static {
    /// A reader's place in what the feed follows: what a seat parks with,
    /// and is handed back with.
    type Cursor: Clone + Send + 'static;
    /// One thing read: an event, a result.
    type Item: Send;
    /// What a seat brings besides its socket: which items it takes, and in
    /// what form.
    type Form: Send + Sync + 'static;
    /// One item's frames, each made once for every seat that takes it.
    type Frames: Frames<Self::Form> + Send;

    /// The sequence number `cursor` reads next.
    fn seq(cursor: &Self::Cursor) -> u64;
    /// The sequence number the feed reads next.
    fn position(&self) -> u64;
    /// No seat is parked, and one parks at `cursor`: the feed goes there
    /// if it can, instead of reading items no one here is waiting for.
    fn start_at(&mut self, cursor: &Self::Cursor);
    /// No seat is left: the feed keeps nothing for them.
    fn rest(&mut self);
    /// The place after the last item read: where a seat handed back reads
    /// on.
    fn here(&self) -> Self::Cursor;
    /// The next item; cancel-safe.
    fn next(&mut self) -> impl Future<Output = Next<Self::Item, Self::Cursor>> + Send;
    /// The frames of `item`, made as seats ask for them.
    fn frames(item: Self::Item) -> Self::Frames;
    /// Counts `pushes` writes of one item's `frames`.
    fn count(&self, frames: &Self::Frames, pushes: usize);
}

/// What a shard's feed gave.
pub enum Next<I, C> {
    /// An item for the parked seats.
    Item(I),
    /// The shard cannot serve its seats from here: it fell behind what the
    /// feed keeps, or the feed has ended (`ended`: no seat parks any more).
    /// Every seat reads on from `from` by itself, and is told there what it
    /// missed, or how the feed ended.
    HandBack {
        /// Where the seats read on.
        from: C,
        /// Nothing follows.
        ended: bool,
    },
}

/// An item's frames, made once each, for seats of form `F`.
pub trait Frames<F> {
    /// Where a seat's frame is among them.
    type Made;
    /// A new batch of seats begins: frames made for one seat of the last
    /// batch alone may go.
    fn next_batch(&mut self) {}
    /// The frame for a seat of `form`, made unless it was; `None` when the
    /// item is not for that seat (its filter).
    fn make(&mut self, form: &F) -> Option<Self::Made>;
    /// The bytes of a frame [made](Self::make).
    fn get(&self, made: &Self::Made) -> &[u8];
}
