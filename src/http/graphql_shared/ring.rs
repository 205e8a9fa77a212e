//! A bounded broadcast ring whose readers are positions.
//!
//! Like `tokio::sync::broadcast`, but a reader is only a cursor into the
//! ring, so it can be copied and set: a lane that writes results to many
//! sockets can hand one of them back with a reader positioned just after the
//! last result that socket got, however far the execution has run ahead. A
//! reader that falls more than the ring's capacity behind is told how many
//! items it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The items, and the signal that wakes readers.
struct Ring<T> {
    state: Mutex<State<T>>,
    sent: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// Position (in the whole stream) of `items[0]`.
    first: u64,
    /// The sender is gone: nothing follows the last item.
    closed: bool,
}

impl<T> State<T> {
    fn head(&self) -> u64 {
        self.first + self.items.len() as u64
    }
}

impl<T> Ring<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Appends to the ring; dropping it closes the ring.
pub struct Sender<T>(Arc<Ring<T>>);

/// A position in the ring: the next item it reads.
pub struct Reader<T> {
    ring: Arc<Ring<T>>,
    cursor: u64,
}

/// Why a read found no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The ring moved past this many items the reader had not read; it
    /// now reads on from the oldest one kept.
    Lagged(u64),
    /// The sender is gone and every item was read.
    Closed,
}

/// A ring keeping the last `capacity` items (at least one), and a reader at
/// its start.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Reader<T>) {
    let ring = Arc::new(Ring {
        state: Mutex::new(State {
            items: VecDeque::new(),
            first: 0,
            closed: false,
        }),
        sent: Notify::new(),
        capacity: capacity.max(1),
    });
    let reader = Reader {
        ring: ring.clone(),
        cursor: 0,
    };
    (Sender(ring), reader)
}

impl<T> Sender<T> {
    /// Appends `item`, dropping the oldest one when the ring is full, and
    /// wakes every waiting reader.
    pub fn send(&self, item: T) {
        let mut state = self.0.lock();
        if state.items.len() == self.0.capacity {
            state.items.pop_front();
            state.first += 1;
        }
        state.items.push_back(item);
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

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Self {
            ring: self.ring.clone(),
            cursor: self.cursor,
        }
    }
}

impl<T: Clone> Reader<T> {
    /// The position of the next item this reader reads.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// A reader of the same ring at `cursor`.
    pub fn at(&self, cursor: u64) -> Self {
        Self {
            cursor,
            ..self.clone()
        }
    }

    /// A reader of the same ring that reads only what is sent from now on.
    pub fn at_head(&self) -> Self {
        self.at(self.ring.lock().head())
    }

    /// Whether this reader has read every item sent so far.
    pub fn is_caught_up(&self) -> bool {
        self.cursor >= self.ring.lock().head()
    }

    /// The next item, or `None` when there is none yet.
    pub fn try_recv(&mut self) -> Option<Result<T, RecvError>> {
        let state = self.ring.lock();
        if self.cursor < state.first {
            let missed = state.first - self.cursor;
            self.cursor = state.first;
            return Some(Err(RecvError::Lagged(missed)));
        }
        match state.items.get((self.cursor - state.first) as usize) {
            Some(item) => {
                self.cursor += 1;
                Some(Ok(item.clone()))
            }
            None if state.closed => Some(Err(RecvError::Closed)),
            None => None,
        }
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

    #[tokio::test]
    async fn a_copied_reader_reads_on_from_the_same_place() {
        let (sender, mut reader) = channel(8);
        for i in 0..3 {
            sender.send(i);
        }
        assert_eq!(reader.recv().await, Ok(0));
        let mut copy = reader.clone();
        assert_eq!(reader.recv().await, Ok(1));
        assert_eq!(copy.recv().await, Ok(1));
        assert_eq!(reader.at(0).recv().await, Ok(0));
        let mut late = reader.at_head();
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
        let (sender, mut reader) = channel(2);
        for i in 0..5 {
            sender.send(i);
        }
        assert_eq!(reader.recv().await, Err(RecvError::Lagged(3)));
        assert_eq!(reader.recv().await, Ok(3));
        assert_eq!(reader.try_recv(), Some(Ok(4)));
        assert_eq!(reader.try_recv(), None);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_when_an_item_is_sent() {
        let (sender, mut reader) = channel(2);
        let waiting = tokio::spawn(async move { reader.recv().await });
        tokio::task::yield_now().await;
        sender.send("x");
        assert_eq!(waiting.await.unwrap(), Ok("x"));
    }
}
