//! The lanes of a shared execution: tasks that write its results to parked
//! sharers' sockets.
//!
//! Each lane follows the results ring like one more reader and, for each
//! result, writes its `next` message to every socket parked in it: one
//! `send` per socket, no task wake-up. A group starts lanes as sharers
//! come, up to one per runtime worker, and every sharer keeps to one of
//! them, so a large group is written side by side and each socket gets its
//! results in order; a lane held up by a slow pass holds up only its own
//! sockets, and the execution never waits for any lane. A socket that does
//! not take a whole message is handed back to its connection with a reader
//! positioned just after that result.

use std::sync::{Arc, Mutex};

use metrics::counter;
use tokio::sync::{mpsc, oneshot};

use super::ring::{Reader, RecvError};
use super::{Direct, Outcome, lock};
use crate::net::{Pushed, text_frame};
use crate::stats;

/// Pushes written between two yields to the runtime, so a long pass over
/// many sockets does not hold a worker thread for all of it.
const PUSHES_PER_YIELD: usize = 256;

/// Distinct operation ids whose `next` message is made once per result;
/// beyond that (every client picking its own id), each is made in a
/// reused buffer.
const FRAMES_PER_RESULT: usize = 8;

/// A parked sharer.
pub(super) struct Seat {
    pub(super) direct: Direct,
    /// Where its connection waits for the reader to go on with. Taken when
    /// the seat is handed back or the sharer leaves; a push happens only
    /// under this lock while it is still here, so none follows a leave.
    back: Mutex<Option<oneshot::Sender<Reader<Outcome>>>>,
}

impl Seat {
    /// A seat for `direct`, and where its connection waits to be handed
    /// back.
    pub(super) fn new(direct: Direct) -> (Arc<Self>, oneshot::Receiver<Reader<Outcome>>) {
        let (back, handed_back) = oneshot::channel();
        let seat = Arc::new(Self {
            direct,
            back: Mutex::new(Some(back)),
        });
        (seat, handed_back)
    }

    /// Gives the seat back: its sharer reads on with `reader`.
    fn hand_back(&self, reader: Reader<Outcome>) {
        if let Some(back) = lock(&self.back).take() {
            let _ = back.send(reader);
        }
    }

    /// Takes the seat out of every push: its sharer is gone.
    pub(super) fn leave(&self) {
        lock(&self.back).take();
    }
}

/// A sharer asking to park: its seat, and its reader, which has read every
/// result so far.
pub(super) type Park = (Arc<Seat>, Reader<Outcome>);

/// The seats of one lane.
#[derive(Default)]
struct Seats {
    parked: Vec<Arc<Seat>>,
    /// Seats whose reader is ahead of the lane: parked once it gets there.
    waiting: Vec<(Arc<Seat>, Reader<Outcome>)>,
}

impl Seats {
    fn is_idle(&self) -> bool {
        self.parked.is_empty() && self.waiting.is_empty()
    }

    /// Parks the waiting seats whose reader is where the lane is now.
    fn arrive(&mut self, position: u64) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].1.cursor() == position {
                let (seat, _) = self.waiting.swap_remove(i);
                self.parked.push(seat);
            } else {
                i += 1;
            }
        }
    }

    /// Gives every seat back, the parked ones with a reader at `position`.
    fn hand_all_back(&mut self, results: &Reader<Outcome>, position: u64) {
        for seat in self.parked.drain(..) {
            seat.hand_back(results.at(position));
        }
        for (seat, reader) in self.waiting.drain(..) {
            seat.hand_back(reader);
        }
    }
}

/// Runs one lane: takes parking seats from `parks` and writes every result
/// from `results` on to its parked seats, until the group is dropped.
pub(super) async fn run(mut parks: mpsc::UnboundedReceiver<Park>, mut results: Reader<Outcome>) {
    let delivered = counter!(stats::DELIVERED, "transport" => "graphql");
    let mut seats = Seats::default();
    // The last outcome has been read: every sharer reads for itself.
    let mut ended = false;
    loop {
        tokio::select! {
            biased;
            park = parks.recv() => {
                let Some((seat, reader)) = park else { break };
                if ended {
                    seat.hand_back(reader);
                    continue;
                }
                if seats.is_idle() && reader.cursor() > results.cursor() {
                    // Nobody was parked: jump to the newcomer instead of
                    // reading results no one here is waiting for.
                    results = reader.clone();
                }
                match reader.cursor().cmp(&results.cursor()) {
                    std::cmp::Ordering::Equal => seats.parked.push(seat),
                    std::cmp::Ordering::Greater => seats.waiting.push((seat, reader)),
                    // The lane wrote results past it already.
                    std::cmp::Ordering::Less => seat.hand_back(reader),
                }
            }
            // An idle lane does not follow the ring.
            read = results.recv(), if !seats.is_idle() => match read {
                Ok(Outcome::Next(payload)) => {
                    let pushes = push(&mut seats.parked, payload, &results).await;
                    delivered.increment(pushes);
                    seats.arrive(results.cursor());
                }
                // The last outcome: every sharer reads it for itself.
                Ok(_) => {
                    ended = true;
                    seats.hand_all_back(&results, results.cursor() - 1);
                }
                // Each sharer is told what it missed as it reads on.
                Err(RecvError::Lagged(missed)) => {
                    seats.hand_all_back(&results, results.cursor() - missed);
                }
                Err(RecvError::Closed) => {
                    ended = true;
                    seats.hand_all_back(&results, results.cursor());
                }
            },
        }
    }
}

/// Writes the `next` message of the result just read from `results` to
/// every seat in `parked`, handing back (with a reader after this result)
/// those that do not take it whole and dropping those whose sharer left;
/// how many were written to.
async fn push(parked: &mut Vec<Arc<Seat>>, payload: Arc<str>, results: &Reader<Outcome>) -> u64 {
    let mut frames = Frames::new(payload);
    let mut pushes = 0;
    let mut index = 0;
    while index < parked.len() {
        let seat = &parked[index];
        let pushed = {
            let back = lock(&seat.back);
            // None: its sharer left.
            back.is_some()
                .then(|| seat.direct.socket.push(frames.frame(&seat.direct.prefix)))
        };
        match pushed {
            Some(Pushed::Sent) => index += 1,
            // Queued: the connection drains the rest under its send timeout
            // and reads on after this result. Closed: it finds out as it
            // does so.
            Some(_) => parked.swap_remove(index).hand_back(results.clone()),
            None => {
                parked.swap_remove(index);
                continue;
            }
        }
        pushes += 1;
        if pushes % PUSHES_PER_YIELD as u64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    pushes
}

/// The `next` messages of one result, as WebSocket frames, by prefix.
struct Frames {
    payload: Arc<str>,
    made: Vec<(Arc<str>, Vec<u8>)>,
    spare: Vec<u8>,
}

impl Frames {
    fn new(payload: Arc<str>) -> Self {
        Self {
            payload,
            made: Vec::new(),
            spare: Vec::new(),
        }
    }

    fn frame(&mut self, prefix: &Arc<str>) -> &[u8] {
        let payload = &*self.payload;
        let found = self
            .made
            .iter()
            .position(|(made, _)| Arc::ptr_eq(made, prefix) || made == prefix);
        let index = match found {
            Some(index) => index,
            None if self.made.len() < FRAMES_PER_RESULT => {
                let mut frame = Vec::new();
                text_frame(&mut frame, &[prefix.as_bytes(), payload.as_bytes(), b"}"]);
                self.made.push((prefix.clone(), frame));
                self.made.len() - 1
            }
            None => {
                self.spare.clear();
                text_frame(
                    &mut self.spare,
                    &[prefix.as_bytes(), payload.as_bytes(), b"}"],
                );
                return &self.spare;
            }
        };
        &self.made[index].1
    }
}
