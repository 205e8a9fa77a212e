//! The one bounded ring: the hub's history and a shared GraphQL
//! execution's results are both kept in it.
//!
//! Items are numbered by their place in the whole stream (a sequence
//! number that never goes back), the oldest is dropped first when the ring
//! is full, and a reader is nothing but the sequence number it reads next.
//! A read tells a reader the ring moved past it, and where it begins now,
//! so how much it missed is worked out in one place.

use std::collections::VecDeque;

/// Items numbered from `first`, at most `capacity` of them.
#[derive(Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    /// Sequence number of `items[0]`.
    first: u64,
    capacity: usize,
}

/// What a read at a sequence number found.
#[derive(Debug)]
pub enum Slot<'a, T> {
    /// The item there.
    Item(&'a T),
    /// The ring moved past it: it now begins at `first`.
    Behind {
        /// The sequence number of the oldest item kept.
        first: u64,
    },
    /// Nothing there yet.
    Pending,
}

impl<T> Ring<T> {
    /// An empty ring for at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: VecDeque::with_capacity(capacity.min(1024)),
            first: 0,
            capacity,
        }
    }

    /// The sequence number of the oldest item kept.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The sequence number the next item will get.
    pub fn head(&self) -> u64 {
        self.first + self.items.len() as u64
    }

    /// The items kept, oldest first.
    pub fn items(&self) -> &VecDeque<T> {
        &self.items
    }

    /// Appends `item`; the oldest one, dropped to make room, if any.
    pub fn push(&mut self, item: T) -> Option<T> {
        let evicted = (self.items.len() == self.capacity)
            .then(|| self.pop_oldest())
            .flatten();
        self.items.push_back(item);
        evicted
    }

    /// Drops the oldest item.
    pub fn pop_oldest(&mut self) -> Option<T> {
        let oldest = self.items.pop_front()?;
        self.first += 1;
        Some(oldest)
    }

    /// What is at sequence number `seq`.
    pub fn read(&self, seq: u64) -> Slot<'_, T> {
        if seq < self.first {
            return Slot::Behind { first: self.first };
        }
        match self.items.get((seq - self.first) as usize) {
            Some(item) => Slot::Item(item),
            None => Slot::Pending,
        }
    }

    /// Forgets every item; numbering goes on from `first`, which is at
    /// least the head, so every reader finds itself behind or at the head.
    pub fn clear_from(&mut self, first: u64) {
        debug_assert!(first >= self.head());
        self.items.clear();
        self.first = first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_drops_the_oldest_and_tells_a_reader_it_moved_past() {
        let mut ring = Ring::new(2);
        assert!(matches!(ring.read(0), Slot::Pending));
        for i in 0..3 {
            let evicted = ring.push(i);
            assert_eq!(evicted, (i == 2).then_some(0));
        }
        assert!(matches!(ring.read(0), Slot::Behind { first: 1 }));
        assert!(matches!(ring.read(2), Slot::Item(&2)));
        assert!(matches!(ring.read(3), Slot::Pending));
        ring.clear_from(4);
        assert!(matches!(ring.read(3), Slot::Behind { first: 4 }));
        assert_eq!(ring.head(), 4);
    }
}
