//! [`LiveStream`]: the one park / hand-back / resume loop, for every
//! transport.
//!
//! A subscriber reads from its own cursor until it has read everything;
//! then, if its socket can be written to directly and took every byte so
//! far, it parks its seat and waits: its shard writes to the socket. When
//! the shard hands it back (its socket did not take a frame whole, or the
//! shard fell behind), it drains its socket under the send timeout, reads
//! on from where the shard left it, and parks again once caught up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Feed, Seat};
use crate::broker::{Delivery, Place, Subscription};

/// A subscriber's own reader of what a shard follows.
pub trait Follow: Send {
    /// What the shards it parks in follow.
    type Feed: Feed;
    /// What one read gives.
    type Item: Send;

    /// The cursor to park with, when the reader has read everything and
    /// has nothing of its own left to deliver; `None` otherwise. A reader
    /// may give up its place in what it reads while parked.
    fn park_at(&mut self) -> Option<<Self::Feed as Feed>::Cursor>;
    /// Reads on from `cursor`, where a shard left it.
    fn resume(&mut self, cursor: <Self::Feed as Feed>::Cursor);
    /// The next item, once there is one. Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Self::Item> + Send;
    /// The next item if one is ready now.
    fn try_recv(&mut self) -> Option<Self::Item>;
}

/// Why a [`LiveStream`] cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The socket took nothing for the send timeout: the subscriber is cut.
    Stalled,
    /// The connection broke.
    Broken,
}

/// One live subscriber: its reader, and its seat if its socket can be
/// written to directly. Leaves its shard when dropped.
pub struct LiveStream<R: Follow> {
    reader: R,
    seat: Option<Arc<Seat<R::Feed>>>,
    parked: bool,
    /// Handed back with bytes maybe pending on the socket.
    draining: bool,
    /// Its shard stopped (shutdown): the subscriber reads by itself.
    shard_stopped: bool,
    send_timeout: Duration,
}

impl<R: Follow> LiveStream<R> {
    /// A stream reading from `reader`, parking `seat` whenever caught up
    /// (never without one); a socket handed back has `send_timeout` to
    /// take what is pending.
    pub fn new(reader: R, seat: Option<Arc<Seat<R::Feed>>>, send_timeout: Duration) -> Self {
        Self {
            reader,
            seat,
            parked: false,
            draining: false,
            shard_stopped: false,
            send_timeout,
        }
    }

    /// The next item the subscriber's connection must write itself; while
    /// caught up, parked until handed back. Cancel-safe.
    pub async fn next(&mut self) -> Result<R::Item, Gone> {
        loop {
            if self.draining {
                // Boxed: a handback is rare, and its timer would otherwise
                // take room in every idle subscriber's future.
                Box::pin(self.drain()).await?;
            }
            self.park_if_caught_up();
            let Some(seat) = self.seat.as_ref().filter(|_| self.parked) else {
                return Ok(self.reader.recv().await);
            };
            let cursor = seat.handed_back().await;
            self.parked = false;
            self.draining = true;
            self.reader.resume(cursor);
        }
    }

    /// The next item if one is ready now and the stream is not parked: a
    /// connection woken for one item writes those behind it in one go.
    pub fn try_next(&mut self) -> Option<R::Item> {
        if self.parked {
            return None;
        }
        self.reader.try_recv()
    }

    fn park_if_caught_up(&mut self) {
        let Some(seat) = self
            .seat
            .as_ref()
            .filter(|_| !self.parked && !self.shard_stopped)
        else {
            return;
        };
        if !seat.socket().is_drained() {
            return;
        }
        if let Some(cursor) = self.reader.park_at() {
            // Handed back at once if the shard has stopped; then it never
            // parks again, or it would be handed back again and again
            // without ever waiting.
            self.shard_stopped = !seat.park(cursor);
            self.parked = true;
        }
    }

    /// The socket holds the rest of a frame the kernel would not take: the
    /// subscriber has as long to take it as any frame.
    async fn drain(&mut self) -> Result<(), Gone> {
        let Some(seat) = &self.seat else {
            self.draining = false;
            return Ok(());
        };
        match tokio::time::timeout(self.send_timeout, seat.socket().send(&[])).await {
            Ok(Ok(())) => {
                self.draining = false;
                Ok(())
            }
            Ok(Err(_)) => Err(Gone::Broken),
            Err(_) => Err(Gone::Stalled),
        }
    }
}

impl<R: Follow> Drop for LiveStream<R> {
    fn drop(&mut self) {
        if let Some(seat) = &self.seat {
            seat.leave(self.parked);
        }
    }
}

impl Follow for Subscription {
    type Feed = super::Events;
    type Item = Delivery;

    fn park_at(&mut self) -> Option<Place> {
        self.caught_up()
    }

    fn resume(&mut self, cursor: Place) {
        self.resume_at(cursor);
    }

    fn recv(&mut self) -> impl Future<Output = Delivery> + Send {
        Subscription::recv(self)
    }

    fn try_recv(&mut self) -> Option<Delivery> {
        Subscription::try_recv(self)
    }
}
