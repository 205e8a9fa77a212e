//! A shared execution's results, kept in the one bounded ring
//! ([`crate::broker::ring::Ring`]) and read by positions.
//!
//! Like `tokio::sync::broadcast`, but a reader is only a cursor into the
//! ring, so it can be copied and set: a lane that writes results to many
//! sockets can hand one of them back with a reader positioned just after the
//! last result that socket got, however far the execution has run ahead. A
//! reader that falls more than the ring's capacity behind is told how many
//! items it missed.
//!
//! The ring knows where its readers are, and keeps only what one of them has
//! yet to read (and the last item, which ends an execution): a subscription
//! whose readers keep up holds one result, not a ring full of them, so ten
//! thousand distinct subscriptions do not each keep their last thousand
//! results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::broker::ring::{self, Slot};

/// The items, and the signal that wakes readers.
struct Ring<T> {
    state: Mutex<State<T>>,
    sent: Notify,
}

struct State<T> {
    items: ring::Ring<T>,
    /// The sender is gone: nothing follows the last item.
    closed: bool,
    /// How many readers are at each position.
    readers: BTreeMap<u64, usize>,
}

impl<T> State<T> {
    fn head(&self) -> u64 {
        self.items.head()
    }

    fn join(&mut self, cursor: u64) {
        *self.readers.entry(cursor).or_default() += 1;
    }

    /// Moves a reader from `*cursor` to `to`.
    fn move_reader(&mut self, cursor: &mut u64, to: u64) {
        self.leave(*cursor);
        self.join(to);
        *cursor = to;
        self.trim();
    }

    fn leave(&mut self, cursor: u64) {
        if let Some(count) = self.readers.get_mut(&cursor) {
            *count -= 1;
            if *count == 0 {
                self.readers.remove(&cursor);
            }
        }
    }

    /// Drops the items every reader has gone past, but the last.
    fn trim(&mut self) {
        let wanted = self.readers.keys().next().copied().unwrap_or(u64::MAX);
        while self.items.first() < wanted && self.items.items().len() > 1 {
            self.items.pop_oldest();
        }
    }
}

impl<T> Ring<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        super::lock(&self.state)
    }
}

/// Appends to the ring; dropping it closes the ring.
pub struct Sender<T>(Arc<Ring<T>>);

/// A position in the ring: the next item it reads. What it has not read
/// stays in the ring (up to the capacity) while it exists.
pub struct Reader<T> {
    ring: Arc<Ring<T>>,
    cursor: u64,
}

/// The ring without a position: it keeps nothing, and makes readers.
pub struct Tap<T>(Arc<Ring<T>>);

/// Why a read found no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The ring moved past this many items the reader had not read; it
    /// now reads on from the oldest one kept.
    Lagged(u64),
    /// The sender is gone and every item was read.
    Closed,
}

/// A ring keeping at most the last `capacity` items (at least one), a
/// reader at its start, and a tap.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Reader<T>, Tap<T>) {
    let ring = Arc::new(Ring {
        state: Mutex::new(State {
            items: ring::Ring::new(capacity),
            closed: false,
            readers: BTreeMap::from([(0, 1)]),
        }),
        sent: Notify::new(),
    });
    let reader = Reader {
        ring: ring.clone(),
        cursor: 0,
    };
    (Sender(ring.clone()), reader, Tap(ring))
}

impl<T> Sender<T> {
    /// Appends `item`, dropping the oldest one when the ring is full, and
    /// wakes every waiting reader.
    pub fn send(&self, item: T) {
        let mut state = self.0.lock();
        state.items.push(item);
        state.trim();
        drop(state);
        self.0.sent.notify_waiters();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.sent.notify_waiters();
    }
}

impl<T> Clone for Tap<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Tap<T> {
    /// The position the next item sent will have.
    pub fn head(&self) -> u64 {
        self.0.lock().head()
    }

    /// A reader that reads only what is sent from now on.
    pub fn reader_at_head(&self) -> Reader<T> {
        let mut state = self.0.lock();
        let cursor = state.head();
        state.join(cursor);
        Reader {
            ring: self.0.clone(),
            cursor,
        }
    }
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        self.at(self.cursor)
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        let mut state = self.ring.lock();
        state.leave(self.cursor);
        state.trim();
    }
}

impl<T> Reader<T> {
    /// The position of the next item this reader reads.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// A reader of the same ring at `cursor`. Items before this reader's
    /// own position may be gone already (the new reader is then told it
    /// lagged), except the last one, which stays.
    pub fn at(&self, cursor: u64) -> Self {
        self.ring.lock().join(cursor);
        Self {
            ring: self.ring.clone(),
            cursor,
        }
    }

    /// Whether this reader has read every item sent so far.
    pub fn is_caught_up(&self) -> bool {
        self.cursor >= self.ring.lock().head()
    }
}

impl<T: Clone> Reader<T> {
    /// The next item, or `None` when there is none yet.
    pub fn try_recv(&mut self) -> Option<Result<T, RecvError>> {
        let mut state = self.ring.lock();
        let (read, to) = match state.items.read(self.cursor) {
            Slot::Behind { first } => (Err(RecvError::Lagged(first - self.cursor)), first),
            Slot::Item(item) => (Ok(item.clone()), self.cursor + 1),
            Slot::Pending if state.closed => return Some(Err(RecvError::Closed)),
            Slot::Pending => return None,
        };
        state.move_reader(&mut self.cursor, to);
        Some(read)
    }

    /// The next item, once there is one. Cancel-safe: the cursor moves only
    /// when an item (or a lag) is returned.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        let ring = self.ring.clone();
        loop {
            let sent = ring.sent.notified();
            tokio::pin!(sent);
            // Registered before looking, so a send in between still wakes us.
            sent.as_mut().enable();
            if let Some(read) = self.try_recv() {
                return read;
            }
            sent.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept<T>(tap: &Tap<T>) -> usize {
        tap.0.lock().items.items().len()
    }

    #[tokio::test]
    async fn a_copied_reader_reads_on_from_the_same_place() {
        let (sender, mut reader, tap) = channel(8);
        for i in 0..3 {
            sender.send(i);
        }
        assert_eq!(reader.recv().await, Ok(0));
        let mut copy = reader.clone();
        assert_eq!(reader.recv().await, Ok(1));
        assert_eq!(copy.recv().await, Ok(1));
        assert_eq!(copy.at(2).recv().await, Ok(2));
        let mut late = tap.reader_at_head();
        assert!(late.is_caught_up());
        sender.send(3);
        assert!(!late.is_caught_up());
        assert_eq!(late.recv().await, Ok(3));
        drop(sender);
        assert_eq!(late.recv().await, Err(RecvError::Closed));
        assert_eq!(copy.recv().await, Ok(2));
    }

    #[tokio::test]
    async fn a_reader_the_ring_moved_past_is_told_how_much_it_missed() {
        let (sender, mut reader, _tap) = channel(2);
        for i in 0..5 {
            sender.send(i);
        }
        assert_eq!(reader.recv().await, Err(RecvError::Lagged(3)));
        assert_eq!(reader.recv().await, Ok(3));
        assert_eq!(reader.try_recv(), Some(Ok(4)));
        assert_eq!(reader.try_recv(), None);
    }

    #[tokio::test]
    async fn only_what_a_reader_has_yet_to_read_is_kept_and_the_last_item() {
        let (sender, mut fast, tap) = channel(100);
        let mut slow = fast.clone();
        for i in 0..10 {
            sender.send(i);
        }
        assert_eq!(kept(&tap), 10, "nobody has read anything");
        for i in 0..10 {
            assert_eq!(fast.recv().await, Ok(i));
        }
        assert_eq!(kept(&tap), 10, "the slow reader has read nothing");
        for i in 0..4 {
            assert_eq!(slow.recv().await, Ok(i));
        }
        assert_eq!(kept(&tap), 6);
        drop(slow);
        assert_eq!(kept(&tap), 1, "the last item stays");
        let behind = fast.at(fast.cursor() - 1);
        sender.send(10);
        assert_eq!(kept(&tap), 2, "a reader is behind the new item");
        drop((behind, fast));
        sender.send(11);
        assert_eq!(kept(&tap), 1, "nobody reads: only the last item");
        assert_eq!(tap.reader_at_head().try_recv(), None);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_when_an_item_is_sent() {
        let (sender, mut reader, _tap) = channel(2);
        let waiting = tokio::spawn(async move { reader.recv().await });
        tokio::task::yield_now().await;
        sender.send("x");
        assert_eq!(waiting.await.unwrap(), Ok("x"));
    }
}
