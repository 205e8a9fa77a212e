//! The live fan-out for `/ws` and `/events`: subscribers that are caught up
//! are written to directly, from a few shard tasks, with each event's frame
//! made once.
//!
//! A `/ws` or `/events` connection starts by reading history from its own
//! cursor (see [`Subscription`]). Once it has read everything, it parks its
//! socket in a shard: a task that follows the hub like one more subscriber
//! and, for each event, writes the event's ready-made frame to every parked
//! socket whose filter matches: the WebSocket frame
//! ([`Event::ws`](crate::model::Event)), or the SSE frame as one chunk of
//! the chunked response body (made once per event and shard). Per event
//! and subscriber that is one filter check and one `send`: no task wakes,
//! no frame encoding, no copy. Where the kernel allows it (and unless
//! `--io-uring off`), a shard makes the sends to up to 256 sockets with
//! one io_uring submission (see [`Batch`]): one system call, not one each.
//!
//! A socket the kernel does not take a whole frame from is handed back to
//! its connection with the cursor after that frame: the connection drains
//! the rest under its send timeout and goes on from its cursor, so a slow
//! subscriber holds up no one and is told about a gap exactly as before.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{counter, histogram};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};

use crate::broker::{Broker, Delivery, Subscription};
use crate::conn::{Batch, Pushed, Writer};
use crate::model::{EventId, Filter};
use crate::shutdown::Shutdown;
use crate::stats;
use crate::wire;

/// Pushes written between two yields to the runtime, so a long pass over
/// many sockets does not hold a worker thread for all of it; also the most
/// in one batch.
const PUSHES_PER_YIELD: usize = 256;

/// The shards; cheap to clone.
#[derive(Debug, Clone)]
pub struct Fanout {
    shards: Arc<[mpsc::UnboundedSender<Command>]>,
    next: Arc<AtomicUsize>,
}

/// How a parked socket takes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `/ws`: the event's WebSocket text frame.
    WebSocket,
    /// `/events`: the event's SSE frame as one chunk of an HTTP/1.1
    /// chunked response body.
    SseChunk,
}

/// A connection's place in a shard.
#[derive(Debug)]
pub struct Seat {
    socket: Writer,
    filter: Filter,
    framing: Framing,
    shard: usize,
    /// Index in the shard's list while parked; written by the shard only.
    slot: AtomicUsize,
    handback: Mutex<Option<Handback>>,
    notify: Notify,
}

/// Why a shard gave a socket back to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handback {
    /// Events arrived between the connection's last read and parking: it
    /// reads on from its own cursor and parks again later.
    NotCaughtUp,
    /// The socket did not take a frame whole (or the shard fell behind):
    /// the connection drains what is pending and reads on from `cursor`.
    Resume {
        /// The next sequence number to read.
        cursor: u64,
        /// The last event the shard went past.
        last_id: Option<EventId>,
    },
}

#[derive(Debug)]
enum Command {
    Park(Arc<Seat>, u64),
    Leave(Arc<Seat>),
}

const UNSEATED: usize = usize::MAX;

impl Fanout {
    /// One shard per runtime worker, each following `broker`'s hub until
    /// `shutdown`; sending through io_uring if `io_uring` and the kernel
    /// allows it.
    pub fn start(broker: &Arc<dyn Broker>, shutdown: &Shutdown, io_uring: bool) -> Self {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let mut unavailable = None;
        let shards: Arc<[_]> = (0..workers.max(1))
            .map(|_| {
                let batch = match io_uring.then(Batch::io_uring) {
                    Some(Ok(batch)) => batch,
                    Some(Err(err)) => {
                        unavailable = Some(err);
                        Batch::sequential()
                    }
                    None => Batch::sequential(),
                };
                let (commands, receiver) = mpsc::unbounded_channel();
                let Ok(feed) = broker.subscribe(None, Filter::default()) else {
                    unreachable!("only a cursor can be refused, and this asks for none");
                };
                tokio::spawn(run_shard(feed, receiver, batch, shutdown.clone()));
                commands
            })
            .collect();
        match unavailable {
            None if io_uring => tracing::info!(
                shards = shards.len(),
                "live fan-out sends through io_uring, one submission per batch"
            ),
            None => tracing::info!("live fan-out sends one `send` per socket (--io-uring off)"),
            Some(err) => tracing::info!(
                error = %err,
                "io_uring unavailable: live fan-out sends one `send` per socket"
            ),
        }
        Self {
            shards,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A seat for `socket`, in the next shard round the ring; one per
    /// connection, parked and handed back as often as it comes to that.
    pub fn seat(&self, socket: Writer, filter: Filter, framing: Framing) -> Arc<Seat> {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        Arc::new(Seat {
            socket,
            filter,
            framing,
            shard,
            slot: AtomicUsize::new(UNSEATED),
            handback: Mutex::new(None),
            notify: Notify::new(),
        })
    }

    /// Parks `seat`, whose connection has read everything up to `cursor`
    /// (exclusive): from then on its shard writes to it. It stays parked
    /// until handed back (see [`Seat::handed_back`]) or [`leave`](Self::leave).
    pub fn park(&self, seat: &Arc<Seat>, cursor: u64) {
        self.send(seat, Command::Park(seat.clone(), cursor));
    }

    /// Stops every push to `seat`'s socket, and takes it out of its shard
    /// if `parked`: the connection is closing.
    pub fn leave(&self, seat: &Arc<Seat>, parked: bool) {
        seat.socket.stop_pushes();
        if parked {
            self.send(seat, Command::Leave(seat.clone()));
        }
    }

    fn send(&self, seat: &Arc<Seat>, command: Command) {
        if self.shards[seat.shard].send(command).is_err() {
            // The shard stopped (shutdown): the connection reads for itself.
            seat.hand_back(Handback::NotCaughtUp);
        }
    }
}

impl Seat {
    fn hand_back(&self, handback: Handback) {
        self.slot.store(UNSEATED, Ordering::Relaxed);
        *self
            .handback
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(handback);
        self.notify.notify_one();
    }

    /// Waits until the shard gives the socket back. Cancel-safe.
    pub async fn handed_back(&self) -> Handback {
        loop {
            let taken = self
                .handback
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take();
            if let Some(handback) = taken {
                return handback;
            }
            self.notify.notified().await;
        }
    }
}

/// Resolves when the fan-out gives `parked` back; never without one (the
/// connection is not parked). Cancel-safe.
pub async fn handed_back(parked: Option<&Seat>) -> Handback {
    match parked {
        Some(seat) => seat.handed_back().await,
        None => std::future::pending().await,
    }
}

/// The parked seats of one shard.
#[derive(Default)]
struct Seats {
    parked: Vec<Arc<Seat>>,
    /// Seats whose cursor is ahead of the shard: parked once it gets there.
    waiting: Vec<(Arc<Seat>, u64)>,
}

impl Seats {
    fn is_idle(&self) -> bool {
        self.parked.is_empty() && self.waiting.is_empty()
    }

    fn add(&mut self, seat: Arc<Seat>) {
        seat.slot.store(self.parked.len(), Ordering::Relaxed);
        self.parked.push(seat);
    }

    fn remove(&mut self, index: usize) -> Arc<Seat> {
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
    fn remove_passed(&mut self, index: usize, passed: &mut usize) -> Arc<Seat> {
        *passed -= 1;
        let last = *passed;
        debug_assert!(index <= last);
        self.parked.swap(index, last);
        self.parked[index].slot.store(index, Ordering::Relaxed);
        self.remove(last)
    }

    fn leave(&mut self, seat: &Arc<Seat>) {
        let slot = seat.slot.load(Ordering::Relaxed);
        if self.parked.get(slot).is_some_and(|s| Arc::ptr_eq(s, seat)) {
            self.remove(slot);
            seat.slot.store(UNSEATED, Ordering::Relaxed);
        }
        self.waiting.retain(|(s, _)| !Arc::ptr_eq(s, seat));
    }

    /// Parks the waiting seats whose cursor the shard has reached.
    fn arrive(&mut self, position: u64) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].1 == position {
                let (seat, _) = self.waiting.swap_remove(i);
                self.add(seat);
            } else {
                i += 1;
            }
        }
    }

    /// Gives every seat back to its connection.
    fn hand_all_back(&mut self, cursor: u64, last_id: Option<EventId>) {
        for seat in self.parked.drain(..) {
            seat.hand_back(Handback::Resume { cursor, last_id });
        }
        for (seat, _) in self.waiting.drain(..) {
            seat.hand_back(Handback::NotCaughtUp);
        }
    }
}

async fn run_shard(
    mut feed: Subscription,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut batch: Batch,
    shutdown: Shutdown,
) {
    let delivered_ws = counter!(stats::DELIVERED, "transport" => "ws");
    let delivered_sse = counter!(stats::DELIVERED, "transport" => "sse");
    let handed_back = counter!(stats::HANDED_BACK);
    let pass_seconds = histogram!(stats::FANOUT_SECONDS);
    let mut seats = Seats::default();
    // One batch's pushes: their seats' places in the list, and results.
    let mut places = Vec::with_capacity(PUSHES_PER_YIELD);
    let mut results = Vec::with_capacity(PUSHES_PER_YIELD);
    // The shard has gone past every event before `position`.
    let mut position = feed.cursor();
    let mut last_id = None;
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            biased;
            () = &mut stopping => break,
            command = commands.recv() => match command {
                Some(Command::Park(seat, cursor)) => {
                    if seats.is_idle() && cursor > position {
                        // Nobody was parked: jump to the newcomer instead
                        // of reading events no one here is waiting for.
                        feed.resume_at(cursor, None);
                        position = cursor;
                    }
                    if cursor == position {
                        seats.add(seat);
                    } else if cursor > position {
                        seats.waiting.push((seat, cursor));
                    } else {
                        seat.hand_back(Handback::NotCaughtUp);
                    }
                }
                Some(Command::Leave(seat)) => seats.leave(&seat),
                None => break,
            },
            // An idle shard does not follow the hub: a publish with no
            // parked sockets wakes no shard.
            delivery = feed.recv(), if !seats.is_idle() => match delivery {
                Delivery::Event(event) => {
                    let mut pushes = 0;
                    let mut sse_pushes = 0;
                    // Made for the first SSE socket, shared by the rest.
                    let sse_chunk = OnceCell::new();
                    // The seats before `passed` have been given the event.
                    let mut passed = 0;
                    let after = feed.cursor();
                    last_id = Some(event.id());
                    while passed < seats.parked.len() {
                        let mut sockets = Vec::with_capacity(
                            PUSHES_PER_YIELD.min(seats.parked.len() - passed),
                        );
                        places.clear();
                        while passed < seats.parked.len() && sockets.len() < PUSHES_PER_YIELD {
                            let seat = &seats.parked[passed];
                            if seat.filter.matches(&event.position) {
                                let frame: &[u8] = match seat.framing {
                                    Framing::WebSocket => &event.ws,
                                    Framing::SseChunk => {
                                        sse_pushes += 1;
                                        sse_chunk.get_or_init(|| wire::chunk(&event.sse))
                                    }
                                };
                                sockets.push((&seat.socket, frame));
                                places.push(passed);
                            }
                            passed += 1;
                        }
                        batch.push_all(&sockets, &mut results);
                        pushes += sockets.len();
                        let full = sockets.len() == PUSHES_PER_YIELD;
                        // Queued: the connection drains the rest and reads
                        // on after this event. Closed: it finds out as it
                        // does so. Highest place first, so the places still
                        // to take out stay where they are.
                        for (&place, _) in places
                            .iter()
                            .zip(&results)
                            .rev()
                            .filter(|&(_, &pushed)| pushed != Pushed::Sent)
                        {
                            seats
                                .remove_passed(place, &mut passed)
                                .hand_back(Handback::Resume { cursor: after, last_id });
                            handed_back.increment(1);
                        }
                        if full {
                            tokio::task::yield_now().await;
                        }
                    }
                    if pushes > 0 {
                        let since = OffsetDateTime::now_utc() - event.position.received_at;
                        pass_seconds.record(since.as_seconds_f64().max(0.0));
                    }
                    delivered_ws.increment((pushes - sse_pushes) as u64);
                    delivered_sse.increment(sse_pushes as u64);
                    position = after;
                    seats.arrive(position);
                }
                Delivery::Gap(_) => {
                    // The shard fell further behind than history: each
                    // connection reads on from where the shard was and is
                    // told what it missed by its own cursor.
                    seats.hand_all_back(position, last_id);
                    position = feed.cursor();
                }
            },
        }
    }
    seats.hand_all_back(position, last_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Socket;

    /// A seat on a real loopback socket.
    async fn seat(listener: &tokio::net::TcpListener) -> Arc<Seat> {
        let (client, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        drop(client);
        let socket = Socket::new(accepted.unwrap().0);
        Arc::new(Seat {
            socket: socket.writer(),
            filter: Filter::default(),
            framing: Framing::WebSocket,
            shard: 0,
            slot: AtomicUsize::new(UNSEATED),
            handback: Mutex::new(None),
            notify: Notify::new(),
        })
    }

    #[tokio::test]
    async fn seats_taken_out_of_a_pass_leave_the_rest_in_place() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut seats = Seats::default();
        let mut all = Vec::new();
        for _ in 0..8 {
            let seat = seat(&listener).await;
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
        let is = |seat: &Arc<Seat>, of: &[usize]| of.iter().any(|&i| Arc::ptr_eq(seat, &all[i]));
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
