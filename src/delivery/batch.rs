//! Pushes to many connections with one system call: the shards' sends,
//! through io_uring where the kernel allows it, each frame pushed in turn
//! where it does not. The socket itself stays behind [`Writer`]: a batch
//! holds each connection's write side ([`Writer::try_hold`]) from its send
//! until the kernel answers.

use std::cell::RefCell;
use std::io;

use crate::conn::{Pushed, Writer};

/// Pushes many frames, each to its connection, as if by [`Writer::push`]
/// on each in turn, but with one io_uring submission (one system call)
/// for a batch of sends instead of one `send` each; or, where there is no
/// io_uring (not Linux, a kernel before 5.6, a seccomp filter such as
/// Docker's default one, the `kernel.io_uring_disabled` sysctl), by
/// pushing each in turn.
///
/// A send through the ring is a `send` with `MSG_DONTWAIT`: the kernel does
/// it inline as the batch is submitted, and a socket that has no room
/// answers `EAGAIN` at once (no poll is armed), so waiting for a batch's
/// completions does not wait on any peer.
///
/// Such an `EAGAIN` goes past tokio's readiness tracking, which still
/// thinks the socket writable. That is harmless: the frame is then kept
/// pending as any push's would be, and the connection's own drain writes
/// it through tokio (`try_write`), which gets `EAGAIN` itself, clears the
/// readiness and waits for the kernel's next write-space wakeup. A stale
/// "writable" only costs that one extra try; no wakeup is lost.
pub struct Batch {
    /// None: a push at a time.
    #[cfg(target_os = "linux")]
    ring: Option<io_uring::IoUring>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("io_uring", &self.uses_io_uring())
            .finish()
    }
}

impl Batch {
    /// A batch through an io_uring of its own; fails where the kernel has
    /// none, or refuses it, or cannot send through it.
    pub fn io_uring() -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        return linux::ring().map(|ring| Self { ring: Some(ring) });
        #[cfg(not(target_os = "linux"))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring is Linux's",
        ));
    }

    /// A batch that pushes each frame in turn, one `send` each.
    pub fn sequential() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            ring: None,
        }
    }

    /// Runs `f` with this thread's batch through io_uring, made the first
    /// time it is asked for (pushing each frame in turn where the kernel
    /// has no io_uring): one ring per thread, for tasks that each send now
    /// and then, many of which would each otherwise keep a ring. `f` must
    /// not ask for it again.
    pub fn with_thread_ring<R>(f: impl FnOnce(&mut Self) -> R) -> R {
        thread_local! {
            static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
        }
        BATCH.with_borrow_mut(|batch| {
            f(
                batch
                    .get_or_insert_with(|| Self::io_uring().unwrap_or_else(|_| Self::sequential())),
            )
        })
    }

    /// Whether sends go through io_uring.
    pub fn uses_io_uring(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.ring.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// Pushes each `(socket, frame)` of `items` in turn, as
    /// [`Writer::push`] does, and puts in `results` what became of each (in
    /// the same order). A socket may come more than once: its frames go in
    /// order.
    pub fn push_all(&mut self, items: &[(&Writer, &[u8])], results: &mut Vec<Pushed>) {
        results.clear();
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            if let Err(err) = linux::push_all(ring, items, results) {
                // Every push was made all the same (see `linux::Broken`);
                // the ring is not used again.
                tracing::error!(%err, "io_uring failed: this batch sends one `send` per socket from now on");
                self.ring = None;
            }
            return;
        }
        results.extend(items.iter().map(|&(socket, frame)| socket.push(frame)));
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;

    use io_uring::{IoUring, opcode, types};

    use crate::conn::{self, Pushed, Writer};

    /// Sends in one submission at most (the ring's size).
    const BATCH_SENDS: u32 = 256;

    /// A ring that can send.
    pub(super) fn ring() -> io::Result<IoUring> {
        let ring = IoUring::new(BATCH_SENDS)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Send::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without IORING_OP_SEND",
            ));
        }
        Ok(ring)
    }

    /// A send queued in a batch: its connection's write side stays locked
    /// until the kernel has answered, so no other write comes between.
    struct Held<'a> {
        /// Where in the batch.
        index: usize,
        socket: conn::Held<'a>,
        frame: &'a [u8],
        answered: bool,
    }

    /// `io_uring_enter` failed in a way that retrying does not mend, before
    /// the kernel took the sends still unanswered. Those were then pushed
    /// one at a time instead; the ring, whose queue still holds them, must
    /// be dropped without entering the kernel again.
    #[derive(Debug)]
    pub(super) struct Broken(io::Error);

    impl std::fmt::Display for Broken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl Held<'_> {
        /// What a push that got `res` from `send` says, after keeping what
        /// the kernel did not take.
        fn complete(&mut self, res: i32) -> Pushed {
            let took = usize::try_from(res).map_err(|_| io::Error::from_raw_os_error(-res));
            self.socket.sent(self.frame, took)
        }
    }

    /// [`Batch::push_all`](super::Batch::push_all) through `ring`;
    /// `results` is empty on entry. Every item is pushed, even when the ring
    /// breaks on the way: then the rest are pushed one at a time, and the
    /// caller must drop the ring.
    pub(super) fn push_all(
        ring: &mut IoUring,
        items: &[(&Writer, &[u8])],
        results: &mut Vec<Pushed>,
    ) -> Result<(), Broken> {
        results.resize(items.len(), Pushed::Closed);
        let mut held = Vec::with_capacity(items.len().min(BATCH_SENDS as usize));
        for (index, &(socket, frame)) in items.iter().enumerate() {
            let mut out = match socket.try_hold() {
                Some(out) => out,
                // Held by the connection writing for itself, or by this
                // batch (the socket came before): send what is held first,
                // so that neither waits on the other, then wait for it.
                None => {
                    if let Err(broken) = send(ring, &mut held, results) {
                        push_rest(&items[index..], &mut results[index..]);
                        return Err(broken);
                    }
                    socket.hold()
                }
            };
            if !out.is_ready() || u32::try_from(frame.len()).is_err() {
                // Nothing to send now, or pending bytes to go first: as a
                // push does it, then and there.
                results[index] = out.push(frame);
                continue;
            }
            if held.len() == BATCH_SENDS as usize
                && let Err(broken) = send(ring, &mut held, results)
            {
                drop(out);
                push_rest(&items[index..], &mut results[index..]);
                return Err(broken);
            }
            held.push(Held {
                index,
                socket: out,
                frame,
                answered: false,
            });
        }
        send(ring, &mut held, results)
    }

    /// Pushes `items` one at a time, after the ring broke.
    fn push_rest(items: &[(&Writer, &[u8])], results: &mut [Pushed]) {
        for (result, &(socket, frame)) in results.iter_mut().zip(items) {
            *result = socket.push(frame);
        }
    }

    /// Sends every frame of `held` through `ring` in one submission, waits
    /// for every answer, sets each one's result, and unlocks them (`held`
    /// is left empty). The ring's queues are empty before and after, unless
    /// it broke (see [`Broken`]).
    #[allow(unsafe_code)]
    fn send(
        ring: &mut IoUring,
        held: &mut Vec<Held<'_>>,
        results: &mut [Pushed],
    ) -> Result<(), Broken> {
        if held.is_empty() {
            return Ok(());
        }
        assert!(held.len() <= ring.params().sq_entries() as usize);
        // From the first send queued until the last answer is reaped, the
        // kernel may read the frames: a panic in between must not unwind
        // into code that frees them.
        let abort = AbortOnUnwind;
        for (at, send) in held.iter().enumerate() {
            let entry = opcode::Send::new(
                types::Fd(send.socket.fd()),
                send.frame.as_ptr(),
                send.frame.len() as u32,
            )
            .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
            .build()
            .user_data(at as u64);
            // SAFETY: the kernel reads `frame` and uses `fd` until it posts
            // the send's completion. `frame` is borrowed, and the socket
            // (whose `Writer` owns the fd) locked, for as long as `held`
            // lives, and this function reaps every completion of what it
            // queues before it returns (a panic before then aborts, see
            // `abort`), so both stay valid for the whole operation. The
            // queue is empty on entry and holds `sq_entries`, so it has room.
            let queued = unsafe { ring.submission().push(&entry) };
            queued.expect("the submission queue has room");
        }
        let mut unanswered = held.len();
        while unanswered > 0 {
            // Every send completes inline (MSG_DONTWAIT), so this waits on
            // no peer. If the kernel stopped short of the whole queue, it
            // returns without waiting and the next round submits the rest.
            match ring.submit_and_wait(unanswered) {
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) =>
                {
                    std::thread::yield_now();
                }
                Err(err) if ring.submission().len() == unanswered => {
                    // The kernel took none of the sends still unanswered
                    // (it reads a send's frame only as it takes it from the
                    // queue, and never will once the ring is dropped):
                    // push them one at a time instead.
                    std::mem::forget(abort);
                    for send in held.iter_mut().filter(|send| !send.answered) {
                        results[send.index] = send.socket.push(send.frame);
                    }
                    held.clear();
                    return Err(Broken(err));
                }
                // Sends the kernel took and has not answered may still read
                // their frames: nothing here can be freed, so nothing may
                // unwind (see `abort`).
                Err(err) => panic!("io_uring_enter failed with sends in flight: {err}"),
            }
            for answer in ring.completion() {
                let send = &mut held[answer.user_data() as usize];
                results[send.index] = send.complete(answer.result());
                send.answered = true;
                unanswered -= 1;
            }
        }
        std::mem::forget(abort);
        held.clear();
        Ok(())
    }

    /// Aborts the process if dropped: by a panic while the kernel may still
    /// use memory that unwinding would free.
    struct AbortOnUnwind;

    impl Drop for AbortOnUnwind {
        fn drop(&mut self) {
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::Batch;
    use crate::conn::tests::{frame, pair};
    use crate::conn::{Pushed, Socket, Writer};

    #[cfg(target_os = "linux")]
    #[tokio::test]
    #[ignore = "needs io_uring: tests/run runs it where the kernel has one"]
    #[allow(unsafe_code)]
    async fn a_ring_that_fails_is_dropped_and_every_frame_still_goes_out() {
        use std::os::fd::AsRawFd;

        let mut batch = Batch::io_uring().expect("io_uring on this kernel");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut pairs = Vec::new();
        for _ in 0..3 {
            let (client, accepted) = tokio::join!(
                TcpStream::connect(listener.local_addr().unwrap()),
                listener.accept()
            );
            pairs.push((Socket::new(accepted.unwrap().0), client.unwrap()));
        }
        // The ring's descriptor now names another file: io_uring_enter
        // fails before the kernel takes a send, as an unexpected error of
        // the kernel's would.
        let null = std::fs::File::open("/dev/null").unwrap();
        let ring = batch.ring.as_ref().unwrap().as_raw_fd();
        // SAFETY: both descriptors are open; `ring` stays open, naming
        // /dev/null, until the ring is dropped.
        assert!(unsafe { libc::dup2(null.as_raw_fd(), ring) } == ring);
        let writers: Vec<_> = pairs.iter().map(|(socket, _)| socket.writer()).collect();
        let items: Vec<_> = writers.iter().map(|w| (w, &b"frame"[..])).collect();
        let mut results = Vec::new();
        batch.push_all(&items, &mut results);
        assert_eq!(results, vec![Pushed::Sent; 3]);
        assert!(!batch.uses_io_uring(), "the broken ring is dropped");
        batch.push_all(&items, &mut results);
        assert_eq!(results, vec![Pushed::Sent; 3], "and sends go on without it");
        for (_, client) in &mut pairs {
            let mut received = [0u8; 10];
            client.read_exact(&mut received).await.unwrap();
            assert_eq!(&received, b"frameframe");
        }
    }

    /// A batch through io_uring, for the tests that need the kernel to
    /// have one: they are ignored unless asked for, which tests/run does
    /// where the kernel has io_uring, so elsewhere they show as ignored
    /// rather than passing untried. Every test of batches holds for a batch
    /// that pushes each frame in turn too.
    fn io_uring() -> Batch {
        Batch::io_uring().expect("io_uring on this kernel")
    }

    /// Reads `frames` (tag, length) from `client`: each whole, in order.
    async fn read_frames(client: &mut TcpStream, frames: &[(u8, usize)]) {
        let total = frames.iter().map(|&(_, len)| len).sum();
        let mut received = vec![0u8; total];
        client.read_exact(&mut received).await.unwrap();
        let mut at = 0;
        for &(tag, len) in frames {
            assert!(
                received[at..at + len].iter().all(|&b| b == tag),
                "frame {tag} is whole and in its place"
            );
            at += len;
        }
    }

    #[tokio::test]
    async fn a_batch_pushes_as_pushing_each_in_turn() {
        batch_pushes_as_pushing_each_in_turn(Batch::sequential()).await;
    }

    #[tokio::test]
    #[ignore = "needs io_uring: tests/run runs it where the kernel has one"]
    async fn a_batch_through_io_uring_pushes_as_pushing_each_in_turn() {
        batch_pushes_as_pushing_each_in_turn(io_uring()).await;
    }

    async fn batch_pushes_as_pushing_each_in_turn(mut batch: Batch) {
        {
            let io_uring = batch.uses_io_uring();
            // A peer that reads nothing until the end: its socket fills up.
            let (mut quiet, mut quiet_client) = pair().await;
            let (open, mut open_client) = pair().await;
            let (closed, _closed_client) = pair().await;
            closed.writer().stop_pushes();
            // A peer that has reset the connection.
            let (mut broken, broken_client) = pair().await;
            socket2::SockRef::from(&broken_client)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(broken_client);
            // Wait until the reset has arrived: the connection reads it.
            let mut byte = [0u8; 1];
            let reset = broken.read(&mut byte).await;
            assert!(reset.is_err(), "the peer reset: {reset:?}");
            let (quiet_writer, open_writer) = (quiet.writer(), open.writer());
            let (closed_writer, broken_writer) = (closed.writer(), broken.writer());
            let mut quiet_frames = Vec::new();
            let mut quiet_results = Vec::new();
            let mut open_frames = Vec::new();
            let mut results = Vec::new();
            for round in 0..40u8 {
                // The quiet socket twice in one batch: its frames go in order.
                let (first, second) = (frame(2 * round + 1, 1000), frame(2 * round + 2, 700));
                let small = frame(round, 10);
                let items = [
                    (&quiet_writer, &first[..]),
                    (&open_writer, &small[..]),
                    (&closed_writer, &small[..]),
                    (&quiet_writer, &second[..]),
                    (&broken_writer, &small[..]),
                ];
                batch.push_all(&items, &mut results);
                assert_eq!(results.len(), items.len(), "io_uring: {io_uring}");
                assert_eq!(results[1], Pushed::Sent, "io_uring: {io_uring}");
                assert_eq!(results[2], Pushed::Closed, "io_uring: {io_uring}");
                assert_eq!(results[4], Pushed::Closed, "io_uring: {io_uring}");
                quiet_frames.extend([(2 * round + 1, 1000), (2 * round + 2, 700)]);
                quiet_results.extend([results[0], results[3]]);
                open_frames.push((round, 10));
            }
            // The kernel took whole frames until the quiet peer's buffers
            // filled; then part of one, or none, and the rest is pending.
            let first_queued = quiet_results
                .iter()
                .position(|&pushed| pushed == Pushed::Queued)
                .expect("the quiet socket fills up");
            assert!(first_queued > 0, "io_uring: {io_uring}: {quiet_results:?}");
            assert!(!quiet_results.contains(&Pushed::Closed));
            assert!(!quiet_writer.is_drained(), "io_uring: {io_uring}");
            assert!(
                !broken_writer.is_drained(),
                "a failed send closes the socket"
            );
            read_frames(&mut open_client, &open_frames).await;
            // Whatever was sent or pending arrives, each frame whole, once
            // the connection drains its pending bytes.
            let flushed = tokio::spawn(async move { quiet.flush().await });
            read_frames(&mut quiet_client, &quiet_frames).await;
            flushed.await.unwrap().unwrap();
            assert!(quiet_writer.is_drained());
        }
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_ring_sends_every_frame() {
        batch_larger_than_the_ring_sends_every_frame(Batch::sequential()).await;
    }

    #[tokio::test]
    #[ignore = "needs io_uring: tests/run runs it where the kernel has one"]
    async fn a_batch_through_io_uring_larger_than_the_ring_sends_every_frame() {
        batch_larger_than_the_ring_sends_every_frame(io_uring()).await;
    }

    async fn batch_larger_than_the_ring_sends_every_frame(mut batch: Batch) {
        {
            let mut pairs = Vec::new();
            for _ in 0..300 {
                pairs.push(pair().await);
            }
            let writers: Vec<Writer> = pairs.iter().map(|(socket, _)| socket.writer()).collect();
            let frames: Vec<Vec<u8>> = (0..300).map(|i| frame(i as u8, 100 + i % 7)).collect();
            let items: Vec<(&Writer, &[u8])> = writers
                .iter()
                .zip(&frames)
                .map(|(writer, frame)| (writer, &frame[..]))
                .collect();
            let mut results = Vec::new();
            batch.push_all(&items, &mut results);
            assert!(results.iter().all(|&pushed| pushed == Pushed::Sent));
            for (i, (_, client)) in pairs.iter_mut().enumerate() {
                read_frames(client, &[(i as u8, 100 + i % 7)]).await;
            }
        }
    }
}
