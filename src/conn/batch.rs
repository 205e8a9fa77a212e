//! Pushes to many connections with one system call: the live fan-out's
//! sends, through io_uring where the kernel allows it.

use std::cell::RefCell;
use std::io;

use super::{Pushed, Writer};

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
    use std::os::fd::AsRawFd;
    use std::sync::{MutexGuard, TryLockError};

    use io_uring::{IoUring, opcode, types};
    use tokio::net::TcpStream;

    use super::super::{Out, Pushed, Writer};

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
        out: MutexGuard<'a, Out>,
        tcp: &'a TcpStream,
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
        /// the kernel did not take (as [`Out::write_whole`] does).
        fn complete(&mut self, res: i32) -> Pushed {
            match usize::try_from(res) {
                Ok(taken) if taken >= self.frame.len() => Pushed::Sent,
                Ok(taken) => {
                    self.out.pending.extend_from_slice(&self.frame[taken..]);
                    Pushed::Queued
                }
                Err(_) if res == -libc::EAGAIN => {
                    self.out.pending.extend_from_slice(self.frame);
                    Pushed::Queued
                }
                Err(_) => {
                    self.out.closed = true;
                    Pushed::Closed
                }
            }
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
            let mut out = match socket.0.out.try_lock() {
                Ok(out) => out,
                Err(TryLockError::Poisoned(poison)) => poison.into_inner(),
                // Locked by the connection writing for itself, or by this
                // batch (the socket came before): send what is held first,
                // so that neither waits on the other, then wait for it.
                Err(TryLockError::WouldBlock) => {
                    if let Err(broken) = send(ring, &mut held, results) {
                        push_rest(&items[index..], &mut results[index..]);
                        return Err(broken);
                    }
                    socket.out()
                }
            };
            if out.closed || !out.is_drained() || u32::try_from(frame.len()).is_err() {
                // Nothing to send now, or pending bytes to go first: as a
                // push does it, then and there.
                results[index] = out.push(socket.tcp(), frame);
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
                out,
                tcp: socket.tcp(),
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
                types::Fd(send.tcp.as_raw_fd()),
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
                        results[send.index] = send.out.push(send.tcp, send.frame);
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::super::{Pushed, Socket};
    use super::Batch;

    #[tokio::test]
    #[ignore = "needs io_uring: tests/run runs it where the kernel has one"]
    #[allow(unsafe_code)]
    async fn a_ring_that_fails_is_dropped_and_every_frame_still_goes_out() {
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
}
