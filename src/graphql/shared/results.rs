//! A shared execution's results, as what its lanes follow ([`Results`],
//! a [`Feed`]) and as what each sharer reads by itself ([`Sharer`], which
//! [`Follow`]s it); and a result's `next` messages, made once per
//! operation id (clients usually all use the same one).
//!
//! A lane is a shard of the one delivery engine ([`crate::delivery`]): it
//! writes each result's `next` message to every sharer parked in it, with
//! one `send` each and no task wake-up, as the fan-out does events. It
//! hands a sharer back with a reader positioned just after the last result
//! that sharer got; a lane that falls behind the ring, or reads the last
//! outcome, hands every sharer back to read it by itself.

use std::sync::Arc;

use metrics::Counter;

use super::Outcome;
use super::ring::{Reader, RecvError, Tap};
use crate::delivery::{Feed, Follow, Frames, Next};
use crate::wire::graphql_ws::next_frame;

/// Distinct operation ids whose `next` message is made once per result;
/// beyond that (every client picking its own id), each is made in a
/// reused buffer.
const FRAMES_PER_RESULT: usize = 8;

/// A lane's reader of one execution's results. An idle lane holds no
/// reader, so it keeps no result in the ring.
pub struct Results {
    reader: Option<Reader<Outcome>>,
    tap: Tap<Outcome>,
    delivered: Counter,
}

impl Results {
    /// A lane's reader of what `tap` gives, counting its writes in
    /// `delivered`.
    pub fn new(tap: Tap<Outcome>, delivered: Counter) -> Self {
        Self {
            reader: None,
            tap,
            delivered,
        }
    }
}

impl Feed for Results {
    type Cursor = Reader<Outcome>;
    type Item = Arc<str>;
    /// A sharer's `next` messages up to the payload:
    /// `{"type":"next","id":…,"payload":`.
    type Form = Arc<str>;
    type Frames = NextMessages;

    fn seq(cursor: &Reader<Outcome>) -> u64 {
        cursor.cursor()
    }

    fn position(&self) -> u64 {
        self.reader
            .as_ref()
            .map_or_else(|| self.tap.head(), Reader::cursor)
    }

    fn start_at(&mut self, cursor: &Reader<Outcome>) {
        self.reader.get_or_insert_with(|| cursor.clone());
    }

    fn rest(&mut self) {
        self.reader = None;
    }

    fn here(&self) -> Reader<Outcome> {
        self.reader
            .as_ref()
            .map_or_else(|| self.tap.reader_at_head(), Reader::clone)
    }

    async fn next(&mut self) -> Next<Arc<str>, Reader<Outcome>> {
        let Some(reader) = self.reader.as_mut() else {
            return std::future::pending().await;
        };
        // Still at the item read, so the ring keeps it for whoever is
        // handed this.
        let at = reader.clone();
        match reader.recv().await {
            Ok(Outcome::Next(payload)) => Next::Item(payload),
            // The last outcome: every sharer reads it for itself.
            Ok(_) | Err(RecvError::Closed) => Next::HandBack {
                from: at,
                ended: true,
            },
            // Each sharer is told what it missed as it reads on.
            Err(RecvError::Lagged(_)) => Next::HandBack {
                from: at,
                ended: false,
            },
        }
    }

    fn frames(payload: Arc<str>) -> NextMessages {
        NextMessages {
            payload,
            made: Vec::new(),
            spare: Vec::new(),
        }
    }

    fn count(&self, _: &NextMessages, pushes: usize) {
        self.delivered.increment(pushes as u64);
    }
}

/// One sharer's own reader; given up while it is parked.
pub struct Sharer(Option<Reader<Outcome>>);

impl Sharer {
    /// A sharer reading from `reader`.
    pub fn new(reader: Reader<Outcome>) -> Self {
        Self(Some(reader))
    }
}

impl Follow for Sharer {
    type Feed = Results;
    type Item = Result<Outcome, RecvError>;

    fn park_at(&mut self) -> Option<Reader<Outcome>> {
        self.0.take_if(|reader| reader.is_caught_up())
    }

    fn resume(&mut self, cursor: Reader<Outcome>) {
        self.0 = Some(cursor);
    }

    async fn recv(&mut self) -> Result<Outcome, RecvError> {
        match self.0.as_mut() {
            Some(reader) => reader.recv().await,
            None => std::future::pending().await,
        }
    }

    fn try_recv(&mut self) -> Option<Result<Outcome, RecvError>> {
        self.0.as_mut()?.try_recv()
    }
}

/// Where one seat's `next` message is in [`NextMessages`].
pub enum Made {
    /// The message made for one of the first operation ids met.
    Shared(usize),
    /// A message made for this seat alone, in the spare buffer.
    Alone(std::ops::Range<usize>),
}

/// The `next` messages of one result, as WebSocket frames, by prefix.
pub struct NextMessages {
    payload: Arc<str>,
    made: Vec<(Arc<str>, Vec<u8>)>,
    spare: Vec<u8>,
}

impl Frames<Arc<str>> for NextMessages {
    type Made = Made;

    fn next_batch(&mut self) {
        self.spare.clear();
    }

    fn make(&mut self, prefix: &Arc<str>) -> Option<Made> {
        let payload = &*self.payload;
        let found = self
            .made
            .iter()
            .position(|(made, _)| Arc::ptr_eq(made, prefix) || made == prefix);
        Some(match found {
            Some(index) => Made::Shared(index),
            None if self.made.len() < FRAMES_PER_RESULT => {
                let mut frame = Vec::new();
                next_frame(&mut frame, prefix, payload);
                self.made.push((prefix.clone(), frame));
                Made::Shared(self.made.len() - 1)
            }
            None => {
                let start = self.spare.len();
                next_frame(&mut self.spare, prefix, payload);
                Made::Alone(start..self.spare.len())
            }
        })
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
    use crate::delivery::{Seat, Shards};
    use crate::shutdown::Shutdown;

    fn lanes(tap: &Tap<Outcome>, io_uring: bool) -> Shards<Results> {
        let tap = tap.clone();
        Shards::new(1, 64, io_uring, Shutdown::new(), move || {
            Results::new(tap.clone(), Counter::noop())
        })
    }

    /// A seat whose sharer's operation id is `id`, on a real loopback
    /// socket, and the client's end.
    async fn seat(lanes: &Shards<Results>, id: &str) -> (Arc<Seat<Results>>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let socket = crate::conn::Socket::new(server).writer();
        let prefix = format!(r#"{{"type":"next","id":"{id}","payload":"#).into();
        (lanes.seat(socket, prefix), client)
    }

    #[tokio::test]
    async fn a_parked_sharer_is_written_each_result_and_handed_the_last_one_to_read() {
        let (sender, results, tap) = ring::channel(8);
        let lanes = lanes(&tap, true);
        let (seat, mut client) = seat(&lanes, "1").await;
        seat.park(results);
        sender.send(Outcome::Next(r#"{"data":1}"#.into()));
        // A refusal is the last outcome; the execution's end follows it at
        // once, so the lane has gone past the refusal by the time the
        // sharer reads.
        sender.send(Outcome::Refused("[]".into()));
        sender.send(Outcome::Complete);
        drop(sender);
        let mut reader = seat.handed_back().await;
        assert!(
            matches!(reader.recv().await, Ok(Outcome::Refused(errors)) if &*errors == "[]"),
            "the sharer reads the refusal itself"
        );
        let expected = br#"{"type":"next","id":"1","payload":{"data":1}}"#;
        let mut frame = vec![0; 2 + expected.len()];
        client.read_exact(&mut frame).await.unwrap();
        assert_eq!(&frame[2..], expected, "the result before it was pushed");
    }

    #[tokio::test]
    async fn each_parked_seat_is_written_its_own_message_and_a_seat_left_is_not() {
        // More operation ids than messages made once per result: some are
        // made for one seat alone, in the same batch as the shared ones.
        for io_uring in [true, false] {
            let (sender, results, tap) = ring::channel(8);
            let lanes = lanes(&tap, io_uring);
            let mut clients = Vec::new();
            let mut kept = Vec::new();
            for i in 0..FRAMES_PER_RESULT + 4 {
                let id = (i % (FRAMES_PER_RESULT + 3)).to_string();
                let (seat, client) = seat(&lanes, &id).await;
                seat.park(results.clone());
                clients.push((id, client));
                kept.push(seat);
            }
            let (left, mut left_client) = seat(&lanes, "left").await;
            left.park(results.clone());
            left.leave(true);
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
            drop(left);
            drop((kept, lanes, sender));
            let mut rest = Vec::new();
            left_client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "io_uring: {io_uring}: {rest:?}");
        }
    }

    #[tokio::test]
    async fn a_seat_whose_socket_does_not_take_a_message_whole_reads_on_right_after_it() {
        const RESULTS: usize = 50;
        let (sender, results, tap) = ring::channel(1024);
        let lanes = lanes(&tap, true);
        let (reading, mut reading_client) = seat(&lanes, "r").await;
        // A client that reads nothing yet, behind small socket buffers.
        let (quiet_socket, mut quiet_client) = crate::conn::tests::pair().await;
        let prefix: Arc<str> = r#"{"type":"next","id":"q","payload":"#.into();
        let quiet = lanes.seat(quiet_socket.writer(), prefix.clone());
        reading.park(results.clone());
        quiet.park(results);
        let payload = format!(r#"{{"data":"{}"}}"#, "x".repeat(1000));
        let mut one = Vec::new();
        next_frame(&mut one, r#"{"type":"next","id":"r","payload":"#, &payload);
        for _ in 0..RESULTS {
            sender.send(Outcome::Next(payload.as_str().into()));
            let mut frame = vec![0; one.len()];
            reading_client.read_exact(&mut frame).await.unwrap();
            assert_eq!(frame, one, "the reading seat gets every result");
        }
        let mut back = quiet.handed_back().await;
        // What the socket kept goes out; then the connection ends.
        let writer = quiet_socket.writer();
        tokio::spawn(async move {
            writer.send(&[]).await.unwrap();
            writer.shut_down();
        });
        let mut received = Vec::new();
        quiet_client.read_to_end(&mut received).await.unwrap();
        let mut frame = Vec::new();
        next_frame(&mut frame, &prefix, &payload);
        assert_eq!(received.len() % frame.len(), 0, "whole messages only");
        let got = received.len() / frame.len();
        assert!(got < RESULTS, "the quiet seat was handed back early");
        assert_eq!(
            back.cursor(),
            got as u64,
            "it reads on right after the last"
        );
        assert!(matches!(back.try_recv(), Some(Ok(Outcome::Next(_)))));
    }
}
