//! The lanes of a shared execution: tasks that write its results to parked
//! sharers' sockets.
//!
//! Each lane follows the results ring like one more reader and, for each
//! result, writes its `next` message to every socket parked in it: one
//! `send` per socket, no task wake-up; up to [`PUSHES_PER_YIELD`] sends go
//! in one io_uring submission, through the ring of the worker thread the
//! lane runs on ([`Batch::with_thread_ring`]). A group starts lanes as sharers
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
use crate::conn::{Batch, Pushed};
use crate::stats;
use crate::wire::text_frame;

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
/// on to its parked seats, until the group is dropped.
pub(super) async fn run(mut parks: mpsc::UnboundedReceiver<Park>, io_uring: bool) {
    let delivered = counter!(stats::DELIVERED, "transport" => "graphql");
    let mut seats = Seats::default();
    // Where the lane reads, while it has seats: an idle lane holds no
    // reader, so it keeps no result in the ring.
    let mut results: Option<Reader<Outcome>> = None;
    // The last outcome has been read: every sharer reads for itself.
    let mut ended = false;
    loop {
        if seats.is_idle() {
            results = None;
        }
        tokio::select! {
            biased;
            park = parks.recv() => {
                let Some((seat, reader)) = park else { break };
                if ended {
                    seat.hand_back(reader);
                    continue;
                }
                // An idle lane starts where the newcomer is.
                let at = results.get_or_insert_with(|| reader.clone());
                match reader.cursor().cmp(&at.cursor()) {
                    std::cmp::Ordering::Equal => seats.parked.push(seat),
                    std::cmp::Ordering::Greater => seats.waiting.push((seat, reader)),
                    // The lane wrote results past it already.
                    std::cmp::Ordering::Less => seat.hand_back(reader),
                }
            }
            read = next(&mut results), if !seats.is_idle() => {
                let (Some(results), Some((at, read))) = (results.as_ref(), read) else { continue };
                match read {
                    Ok(Outcome::Next(payload)) => {
                        let pushes = push(&mut seats.parked, payload, results, io_uring).await;
                        delivered.increment(pushes);
                        seats.arrive(results.cursor());
                    }
                    // The last outcome: every sharer reads it for itself.
                    Ok(_) => {
                        ended = true;
                        seats.hand_all_back(&at, at.cursor());
                    }
                    // Each sharer is told what it missed as it reads on.
                    Err(RecvError::Lagged(missed)) => {
                        seats.hand_all_back(results, results.cursor() - missed);
                    }
                    Err(RecvError::Closed) => {
                        ended = true;
                        seats.hand_all_back(results, results.cursor());
                    }
                }
            },
        }
    }
}

/// The next outcome from `results`, with a reader still at it (so the ring
/// keeps it for whoever is handed that reader); never without a reader.
async fn next(
    results: &mut Option<Reader<Outcome>>,
) -> Option<(Reader<Outcome>, Result<Outcome, RecvError>)> {
    let results = results.as_mut()?;
    let at = results.clone();
    Some((at, results.recv().await))
}

/// Writes the `next` message of the result just read from `results` to
/// every seat in `parked`, a batch of sockets at a time (one io_uring
/// submission each, if `io_uring` and the kernel allows it), handing back
/// (with a reader after this result) those that do not take it whole and
/// dropping those whose sharer left; how many were written to.
async fn push(
    parked: &mut Vec<Arc<Seat>>,
    payload: Arc<str>,
    results: &Reader<Outcome>,
    io_uring: bool,
) -> u64 {
    let mut frames = Frames::new(payload);
    let (mut pushes, mut gone) = (0, false);
    let mut outcomes = Vec::new();
    for group in parked.chunks(PUSHES_PER_YIELD) {
        let (pushed, handed_back) =
            push_group(group, &mut frames, results, io_uring, &mut outcomes);
        pushes += pushed;
        gone |= handed_back;
        if group.len() == PUSHES_PER_YIELD {
            tokio::task::yield_now().await;
        }
    }
    // Some seat was handed back or left.
    if gone {
        parked.retain(|seat| lock(&seat.back).is_some());
    }
    pushes
}

/// [`push`] to one group of seats, in one batch: how many were written to,
/// and whether some seat was handed back or had left.
fn push_group(
    group: &[Arc<Seat>],
    frames: &mut Frames,
    results: &Reader<Outcome>,
    io_uring: bool,
    outcomes: &mut Vec<Pushed>,
) -> (u64, bool) {
    // A push happens only under the seat's lock while it is still there,
    // so none follows a leave.
    let mut backs: Vec<_> = group.iter().map(|seat| lock(&seat.back)).collect();
    frames.clear_spare();
    // None: its sharer left.
    let present: Vec<_> = group
        .iter()
        .zip(&backs)
        .filter(|(_, back)| back.is_some())
        .map(|(seat, _)| (seat, frames.make(&seat.direct.prefix)))
        .collect();
    let items: Vec<_> = present
        .iter()
        .map(|(seat, made)| (&seat.direct.socket, frames.get(made)))
        .collect();
    if io_uring {
        Batch::with_thread_ring(|batch| batch.push_all(&items, outcomes));
    } else {
        Batch::sequential().push_all(&items, outcomes);
    }
    let mut gone = present.len() < group.len();
    let present = backs.iter_mut().filter(|back| back.is_some());
    for (back, pushed) in present.zip(outcomes.iter()) {
        // Queued: the connection drains the rest under its send timeout and
        // reads on after this result. Closed: it finds out as it does so.
        if *pushed != Pushed::Sent
            && let Some(back) = back.take()
        {
            let _ = back.send(results.clone());
            gone = true;
        }
    }
    (outcomes.len() as u64, gone)
}

/// Where one seat's `next` message is in [`Frames`].
enum Made {
    /// The message made for one of the first operation ids met.
    Shared(usize),
    /// A message made for this seat alone, in the spare buffer.
    Alone(std::ops::Range<usize>),
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

    /// Forgets the messages made for one seat alone.
    fn clear_spare(&mut self) {
        self.spare.clear();
    }

    /// Makes the message for `prefix`, unless made already.
    fn make(&mut self, prefix: &Arc<str>) -> Made {
        let payload = &*self.payload;
        let parts = [prefix.as_bytes(), payload.as_bytes(), b"}"];
        let found = self
            .made
            .iter()
            .position(|(made, _)| Arc::ptr_eq(made, prefix) || made == prefix);
        match found {
            Some(index) => Made::Shared(index),
            None if self.made.len() < FRAMES_PER_RESULT => {
                let mut frame = Vec::new();
                text_frame(&mut frame, &parts);
                self.made.push((prefix.clone(), frame));
                Made::Shared(self.made.len() - 1)
            }
            None => {
                let start = self.spare.len();
                text_frame(&mut self.spare, &parts);
                Made::Alone(start..self.spare.len())
            }
        }
    }

    fn get(&self, made: &Made) -> &[u8] {
        match made {
            Made::Shared(index) => &self.made[*index].1,
            Made::Alone(range) => &self.spare[range.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::super::ring;
    use super::*;

    /// A parked seat on a real loopback socket, and the client's end.
    async fn seat() -> (Arc<Seat>, oneshot::Receiver<Reader<Outcome>>, TcpStream) {
        seat_with_id("1").await
    }

    /// A seat whose sharer's operation id is `id`.
    async fn seat_with_id(id: &str) -> (Arc<Seat>, oneshot::Receiver<Reader<Outcome>>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let direct = Direct {
            socket: crate::conn::Socket::new(server).writer(),
            prefix: format!(r#"{{"type":"next","id":"{id}","payload":"#).into(),
        };
        let (seat, handed_back) = Seat::new(direct);
        (seat, handed_back, client)
    }

    #[tokio::test]
    async fn a_parked_sharer_is_written_each_result_and_handed_the_last_one_to_read() {
        let (sender, results, _tap) = ring::channel(8);
        let (parks, receiver) = mpsc::unbounded_channel();
        let lane = tokio::spawn(run(receiver, true));
        let (seat, handed_back, mut client) = seat().await;
        parks.send((seat, results)).unwrap();
        sender.send(Outcome::Next(r#"{"data":1}"#.into()));
        // A refusal is the last outcome; the execution's end follows it at
        // once, so the lane has gone past the refusal by the time the
        // sharer reads.
        sender.send(Outcome::Refused("[]".into()));
        sender.send(Outcome::Complete);
        drop(sender);
        let mut reader = handed_back.await.expect("handed back");
        assert!(
            matches!(reader.recv().await, Ok(Outcome::Refused(errors)) if &*errors == "[]"),
            "the sharer reads the refusal itself"
        );
        let expected = br#"{"type":"next","id":"1","payload":{"data":1}}"#;
        let mut frame = vec![0; 2 + expected.len()];
        client.read_exact(&mut frame).await.unwrap();
        assert_eq!(&frame[2..], expected, "the result before it was pushed");
        lane.abort();
    }

    #[tokio::test]
    async fn each_parked_seat_is_written_its_own_message_and_a_seat_left_is_not() {
        // More operation ids than messages made once per result: some are
        // made for one seat alone, in the same batch as the shared ones.
        for io_uring in [true, false] {
            let (sender, results, _tap) = ring::channel(8);
            let (parks, receiver) = mpsc::unbounded_channel();
            let lane = tokio::spawn(run(receiver, io_uring));
            let mut clients = Vec::new();
            let mut kept = Vec::new();
            for i in 0..FRAMES_PER_RESULT + 4 {
                let id = (i % (FRAMES_PER_RESULT + 3)).to_string();
                let (seat, handed_back, client) = seat_with_id(&id).await;
                parks.send((seat.clone(), results.clone())).unwrap();
                clients.push((id, client));
                kept.push((seat, handed_back));
            }
            let (left, _, mut left_client) = seat_with_id("left").await;
            parks.send((left.clone(), results.clone())).unwrap();
            left.leave();
            for n in 1..=2 {
                sender.send(Outcome::Next(format!(r#"{{"data":{n}}}"#).into()));
                for (id, client) in &mut clients {
                    let expected =
                        format!(r#"{{"type":"next","id":"{id}","payload":{{"data":{n}}}}}"#);
                    let mut frame = vec![0; 2 + expected.len()];
                    client.read_exact(&mut frame).await.unwrap();
                    assert_eq!(
                        std::str::from_utf8(&frame[2..]).unwrap(),
                        expected,
                        "io_uring: {io_uring}"
                    );
                }
            }
            // Its socket closes with the last handle on it: nothing was
            // written to it before.
            lane.abort();
            let _ = lane.await;
            drop(left);
            let mut rest = Vec::new();
            left_client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "io_uring: {io_uring}: {rest:?}");
            drop(kept);
        }
    }
}
