//! The one shard loop: a task that follows a [`Feed`] and writes each item
//! to every seat parked in it, a batch of sockets at a time.
//!
//! A seat is parked when its cursor is where the shard is; one whose cursor
//! is ahead waits until the shard gets there; one behind is handed back at
//! once (it reads on by itself, and parks again later). An idle shard reads
//! nothing: a publish with no parked seat wakes no shard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use metrics::{Counter, counter};
use tokio::sync::{Notify, mpsc};

use super::Batch;
use super::{Feed, Frames, Next};
use crate::conn::{Pushed, Writer};
use crate::shutdown::Shutdown;
use crate::stats;

/// Pushes written between two yields to the runtime, so a long pass over
/// many sockets does not hold a worker thread for all of it; also the most
/// in one batch.
const PUSHES_PER_YIELD: usize = 256;

const UNSEATED: usize = usize::MAX;

/// A few shards following one feed, started as seats come; cheap to
/// clone.
pub struct Shards<F: Feed>(Arc<Inner<F>>);

impl<F: Feed> Clone for Shards<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Inner<F: Feed> {
    started: Mutex<Vec<mpsc::UnboundedSender<Command<F>>>>,
    count: usize,
    /// Seats that keep to one shard before the next shard takes the next.
    block: usize,
    /// Seats ever made: where the next one goes.
    seated: AtomicUsize,
    /// A new shard's own reader of what they all follow.
    feed: Box<dyn Fn() -> F + Send + Sync>,
    io_uring: bool,
    shutdown: Shutdown,
}

/// A subscriber's place in a shard, for as long as it lives: parked and
/// handed back as often as it comes to that.
pub struct Seat<F: Feed> {
    socket: Writer,
    form: F::Form,
    shard: mpsc::UnboundedSender<Command<F>>,
    /// Index in the shard's list while parked; written by the shard only.
    slot: AtomicUsize,
    /// A push happens only under this lock, and only while the seat has
    /// not left: no push follows [`Seat::leave`].
    back: Mutex<Back<F::Cursor>>,
    notify: Notify,
}

struct Back<C> {
    /// Where the subscriber reads on, once the shard gave the seat back.
    handed: Option<C>,
    left: bool,
}

enum Command<F: Feed> {
    Park(Arc<Seat<F>>, F::Cursor),
    Leave(Arc<Seat<F>>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl<F: Feed> Shards<F> {
    /// Up to `count` shards (at least one), each a block of `block` seats
    /// in turn, each following a reader made by `feed`, until `shutdown`;
    /// sending through io_uring if `io_uring` and the kernel allows it.
    pub fn new(
        count: usize,
        block: usize,
        io_uring: bool,
        shutdown: Shutdown,
        feed: impl Fn() -> F + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(Inner {
            started: Mutex::default(),
            count: count.max(1),
            block: block.max(1),
            seated: AtomicUsize::new(0),
            feed: Box::new(feed),
            io_uring,
            shutdown,
        }))
    }

    /// A seat for `socket`, taking items in `form`, in the next shard.
    pub fn seat(&self, socket: Writer, form: F::Form) -> Arc<Seat<F>> {
        let inner = &*self.0;
        let index = inner.seated.fetch_add(1, Ordering::Relaxed) / inner.block % inner.count;
        let shard = {
            let mut started = lock(&inner.started);
            while started.len() <= index {
                let (commands, receiver) = mpsc::unbounded_channel();
                let feed = (inner.feed)();
                tokio::spawn(run(feed, receiver, inner.io_uring, inner.shutdown.clone()));
                started.push(commands);
            }
            started[index].clone()
        };
        Arc::new(Seat {
            socket,
            form,
            shard,
            slot: AtomicUsize::new(UNSEATED),
            back: Mutex::new(Back {
                handed: None,
                left: false,
            }),
            notify: Notify::new(),
        })
    }
}

impl<F: Feed> Seat<F> {
    /// The socket the shard writes to.
    pub fn socket(&self) -> &Writer {
        &self.socket
    }

    /// Parks the seat, whose subscriber has read everything before
    /// `cursor`: from then on its shard writes to it, until it is handed
    /// back (see [`handed_back`](Self::handed_back)). `false` when the
    /// shard has stopped (shutdown): the seat is handed back at once, and
    /// the subscriber reads by itself from then on.
    pub fn park(self: &Arc<Self>, cursor: F::Cursor) -> bool {
        match self.shard.send(Command::Park(self.clone(), cursor)) {
            Ok(()) => true,
            Err(mpsc::error::SendError(Command::Park(_, cursor))) => {
                self.hand_back(cursor);
                false
            }
            Err(_) => unreachable!("the command sent was a park"),
        }
    }

    /// Waits until the shard gives the seat back: where to read on.
    /// Cancel-safe.
    pub async fn handed_back(&self) -> F::Cursor {
        loop {
            if let Some(cursor) = lock(&self.back).handed.take() {
                return cursor;
            }
            self.notify.notified().await;
        }
    }

    /// Takes the seat out of every push, and out of its shard if
    /// `parked`: the subscriber is gone.
    pub fn leave(self: &Arc<Self>, parked: bool) {
        {
            let mut back = lock(&self.back);
            back.left = true;
            back.handed = None;
        }
        if parked {
            let _ = self.shard.send(Command::Leave(self.clone()));
        }
    }

    fn hand_back(&self, cursor: F::Cursor) {
        self.slot.store(UNSEATED, Ordering::Relaxed);
        Self::give_back(&mut lock(&self.back), cursor);
        self.notify.notify_one();
    }

    /// [`hand_back`](Self::hand_back), under the lock a push holds.
    fn give_back(back: &mut Back<F::Cursor>, cursor: F::Cursor) {
        if !back.left {
            back.handed = Some(cursor);
        }
    }
}

/// The seats of one shard.
struct Seats<F: Feed> {
    parked: Vec<Arc<Seat<F>>>,
    /// Seats whose cursor is ahead of the shard: parked once it gets there.
    waiting: Vec<(Arc<Seat<F>>, F::Cursor)>,
}

impl<F: Feed> Seats<F> {
    fn is_idle(&self) -> bool {
        self.parked.is_empty() && self.waiting.is_empty()
    }

    fn add(&mut self, seat: Arc<Seat<F>>) {
        seat.slot.store(self.parked.len(), Ordering::Relaxed);
        self.parked.push(seat);
    }

    fn remove(&mut self, index: usize) -> Arc<Seat<F>> {
        let seat = self.parked.swap_remove(index);
        if let Some(moved) = self.parked.get(index) {
            moved.slot.store(index, Ordering::Relaxed);
        }
        seat
    }

    /// Takes out the seat at `index`, one of the first `*passed` (those a
    /// pass over the list has gone past), so that the first `*passed` (one
    /// fewer) are still the ones it went past and every other stays after
    /// them. Seats before `index` keep their places: several are taken out
    /// highest index first.
    fn remove_passed(&mut self, index: usize, passed: &mut usize) -> Arc<Seat<F>> {
        *passed -= 1;
        let last = *passed;
        debug_assert!(index <= last);
        self.parked.swap(index, last);
        self.parked[index].slot.store(index, Ordering::Relaxed);
        self.remove(last)
    }

    fn leave(&mut self, seat: &Arc<Seat<F>>) {
        let slot = seat.slot.load(Ordering::Relaxed);
        if self.parked.get(slot).is_some_and(|s| Arc::ptr_eq(s, seat)) {
            self.remove(slot);
            seat.slot.store(UNSEATED, Ordering::Relaxed);
        }
        self.waiting.retain(|(s, _)| !Arc::ptr_eq(s, seat));
    }

    /// Parks `seat`, whose subscriber reads next at `cursor`, as far as
    /// the shard at `feed` can take it now.
    fn park(&mut self, feed: &mut F, seat: Arc<Seat<F>>, cursor: F::Cursor, ended: bool) {
        if ended {
            return seat.hand_back(cursor);
        }
        if self.is_idle() {
            feed.start_at(&cursor);
        }
        match F::seq(&cursor).cmp(&feed.position()) {
            std::cmp::Ordering::Equal => self.add(seat),
            std::cmp::Ordering::Greater => self.waiting.push((seat, cursor)),
            // The shard wrote items past it already.
            std::cmp::Ordering::Less => seat.hand_back(cursor),
        }
    }

    /// Parks the waiting seats whose cursor the shard has reached.
    fn arrive(&mut self, position: u64) {
        let mut i = 0;
        while i < self.waiting.len() {
            if F::seq(&self.waiting[i].1) == position {
                let (seat, _) = self.waiting.swap_remove(i);
                self.add(seat);
            } else {
                i += 1;
            }
        }
    }

    /// Gives every seat back: the parked ones to read on from `from`.
    fn hand_all_back(&mut self, from: impl FnOnce() -> F::Cursor) {
        if !self.parked.is_empty() {
            let from = from();
            for seat in self.parked.drain(..) {
                seat.hand_back(from.clone());
            }
        }
        for (seat, cursor) in self.waiting.drain(..) {
            seat.hand_back(cursor);
        }
    }

    /// Writes `frames` to every parked seat that takes them, a batch at a
    /// time, and hands back (to read on after this item) each seat whose
    /// socket did not take its frame whole; how many were written to.
    async fn pass(&mut self, frames: &mut F::Frames, feed: &F, pushing: &mut Pushing) -> usize {
        let mut pushes = 0;
        // The seats before `passed` have been given the item.
        let mut passed = 0;
        let mut after = None;
        while passed < self.parked.len() {
            let (pushed, full) = self.push_batch(&mut passed, frames, feed, &mut after, pushing);
            pushes += pushed;
            if full {
                tokio::task::yield_now().await;
            }
        }
        pushes
    }

    /// [`pass`](Self::pass) over one batch of seats from `*passed` on,
    /// with one lock on each seat for all of it; moves `*passed` past the
    /// seats it kept, and says how many it wrote to, and whether the batch
    /// was a full one.
    fn push_batch(
        &mut self,
        passed: &mut usize,
        frames: &mut F::Frames,
        feed: &F,
        after: &mut Option<F::Cursor>,
        pushing: &mut Pushing,
    ) -> (usize, bool) {
        let start = *passed;
        *passed = self.parked.len().min(start + PUSHES_PER_YIELD);
        let seats = &self.parked[start..*passed];
        let full = seats.len() == PUSHES_PER_YIELD;
        let mut backs: Vec<_> = seats.iter().map(|seat| lock(&seat.back)).collect();
        pushing.places.clear();
        frames.next_batch();
        let mut made = Vec::with_capacity(seats.len());
        for (place, seat) in seats.iter().enumerate() {
            if let (false, Some(frame)) = (backs[place].left, frames.make(&seat.form)) {
                made.push(frame);
                pushing.places.push(place);
            }
        }
        let sockets: Vec<_> = (pushing.places.iter().zip(&made))
            .map(|(&place, made)| (&seats[place].socket, frames.get(made)))
            .collect();
        pushing.push_all(&sockets);
        let pushes = sockets.len();
        // Queued: the subscriber drains the rest and reads on after this
        // item. Closed: it finds out as it does so.
        for place in pushing.not_sent() {
            let cursor = after.get_or_insert_with(|| feed.here()).clone();
            Seat::<F>::give_back(&mut backs[place], cursor);
            pushing.handed_back.increment(1);
        }
        drop((sockets, backs));
        // Highest place first, so the places still to take out stay where
        // they are.
        for place in pushing.not_sent().rev() {
            let seat = self.remove_passed(start + place, passed);
            seat.slot.store(UNSEATED, Ordering::Relaxed);
            seat.notify.notify_one();
        }
        (pushes, full)
    }
}

/// How a shard sends, and what one batch's pushes became.
struct Pushing {
    io_uring: bool,
    /// The pushes' seats, by place in the batch.
    places: Vec<usize>,
    results: Vec<Pushed>,
    handed_back: Counter,
}

impl Pushing {
    fn push_all(&mut self, sockets: &[(&Writer, &[u8])]) {
        if self.io_uring {
            Batch::with_thread_ring(|batch| batch.push_all(sockets, &mut self.results));
        } else {
            Batch::sequential().push_all(sockets, &mut self.results);
        }
    }

    /// The places, in the batch, of the pushes the kernel did not take
    /// whole, in order.
    fn not_sent(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.places
            .iter()
            .zip(&self.results)
            .filter(|&(_, &pushed)| pushed != Pushed::Sent)
            .map(|(&place, _)| place)
    }
}

/// Runs one shard: takes seats from `commands` and writes every item of
/// `feed` to the parked ones, until `shutdown` or every handle is gone.
async fn run<F: Feed>(
    mut feed: F,
    mut commands: mpsc::UnboundedReceiver<Command<F>>,
    io_uring: bool,
    shutdown: Shutdown,
) {
    let mut pushing = Pushing {
        io_uring,
        places: Vec::with_capacity(PUSHES_PER_YIELD),
        results: Vec::with_capacity(PUSHES_PER_YIELD),
        handed_back: counter!(stats::HANDED_BACK),
    };
    let mut seats = Seats::<F> {
        parked: Vec::new(),
        waiting: Vec::new(),
    };
    // The feed has ended: every seat reads by itself.
    let mut ended = false;
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    loop {
        if seats.is_idle() {
            feed.rest();
        }
        tokio::select! {
            biased;
            () = &mut stopping => break,
            command = commands.recv() => match command {
                Some(Command::Park(seat, cursor)) => seats.park(&mut feed, seat, cursor, ended),
                Some(Command::Leave(seat)) => seats.leave(&seat),
                None => break,
            },
            next = feed.next(), if !seats.is_idle() => match next {
                Next::Item(item) => {
                    let mut frames = F::frames(item);
                    let pushes = seats.pass(&mut frames, &feed, &mut pushing).await;
                    feed.count(&frames, pushes);
                    seats.arrive(feed.position());
                }
                Next::HandBack { from, ended: end } => {
                    ended |= end;
                    seats.hand_all_back(|| from);
                }
            },
        }
    }
    seats.hand_all_back(|| feed.here());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Socket;

    /// A feed that gives nothing: for seats alone.
    struct Quiet;

    impl Feed for Quiet {
        type Cursor = u64;
        type Item = ();
        type Form = ();
        type Frames = Vec<u8>;

        fn seq(cursor: &u64) -> u64 {
            *cursor
        }
        fn position(&self) -> u64 {
            0
        }
        fn start_at(&mut self, _: &u64) {}
        fn rest(&mut self) {}
        fn here(&self) -> u64 {
            0
        }
        async fn next(&mut self) -> Next<(), u64> {
            std::future::pending().await
        }
        fn frames((): ()) -> Vec<u8> {
            Vec::new()
        }
        fn count(&self, _: &Vec<u8>, _: usize) {}
    }

    impl Frames<()> for Vec<u8> {
        type Made = ();
        fn make(&mut self, (): &()) -> Option<()> {
            Some(())
        }
        fn get(&self, (): &()) -> &[u8] {
            self
        }
    }

    /// A seat on a real loopback socket.
    async fn seat(shards: &Shards<Quiet>, listener: &tokio::net::TcpListener) -> Arc<Seat<Quiet>> {
        let (client, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        drop(client);
        shards.seat(Socket::new(accepted.unwrap().0).writer(), ())
    }

    #[tokio::test]
    async fn seats_taken_out_of_a_pass_leave_the_rest_in_place() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shards = Shards::new(1, 1, false, Shutdown::new(), || Quiet);
        let mut seats = Seats::<Quiet> {
            parked: Vec::new(),
            waiting: Vec::new(),
        };
        let mut all = Vec::new();
        for _ in 0..8 {
            let seat = seat(&shards, &listener).await;
            seats.add(seat.clone());
            all.push(seat);
        }
        // A pass has gone past the first 6; 1, 3 and 4 are handed back,
        // highest first.
        let mut passed = 6;
        for place in [4, 3, 1] {
            let taken = seats.remove_passed(place, &mut passed);
            assert!(
                Arc::ptr_eq(&taken, &all[place]),
                "seat {place} is the one taken"
            );
        }
        assert_eq!(passed, 3);
        let is =
            |seat: &Arc<Seat<Quiet>>, of: &[usize]| of.iter().any(|&i| Arc::ptr_eq(seat, &all[i]));
        assert!(
            seats.parked[..passed].iter().all(|s| is(s, &[0, 2, 5])),
            "passed: 0, 2, 5"
        );
        assert!(
            seats.parked[passed..].iter().all(|s| is(s, &[6, 7])),
            "not passed: 6, 7"
        );
        assert_eq!(seats.parked.len(), 5);
        for (index, seat) in seats.parked.iter().enumerate() {
            assert_eq!(
                seat.slot.load(Ordering::Relaxed),
                index,
                "each seat knows its slot"
            );
        }
    }
}
