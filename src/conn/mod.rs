//! A client connection's socket. hyper reads requests from it and writes
//! responses to it; once a subscriber on `/ws`, `/events` or a GraphQL
//! subscription has caught up, the delivery engine ([`crate::delivery`])
//! also writes each item's ready-made frame to it directly, through a
//! [`Writer`] handle, from a shard's task. An `/events` stream also takes
//! the connection over from hyper ([`Writer::take_over_after_flush`]) and writes the
//! rest of its response itself. A route opts in by extracting the typed
//! [`Connection`]: no other code writes to the socket.
//!
//! Two writers on one byte stream must never interleave inside a frame. So
//! every write here is whole: a write either goes to the kernel entirely, or
//! the part the kernel would not take is kept in `pending` and written
//! before anything else. A write that finds `pending` not yet drained waits
//! (or, for a push, queues behind it and says so). A connection may set a
//! send timeout: a write of hyper's that waits that long without the kernel
//! taking a byte fails, and the connection ends.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::time::Sleep;

/// One accepted TCP connection, as hyper reads and writes it. Reading is
/// tokio's own (it knows a short read drained the socket); writing goes
/// through the [`Writer`] it shares.
#[derive(Debug)]
pub struct Socket {
    read: OwnedReadHalf,
    writer: Writer,
    /// Running while a write waits on a peer that takes nothing, once a
    /// send timeout is set (see [`Writer::set_send_timeout`]).
    stalled: Option<Pin<Box<Sleep>>>,
}

/// A cloneable handle on a connection's writing side.
#[derive(Debug, Clone)]
pub struct Writer(Arc<Shared>);

/// The connection a request came in on, put in every request's extensions
/// by the accept loop: the client's address, and the writing side of its
/// socket. A route that writes to the connection itself (a WebSocket, an
/// event stream) opts in by extracting it; no other code writes to it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address, as the TCP peer.
    pub remote: std::net::SocketAddr,
    /// The socket's writing side.
    pub socket: Writer,
    /// Whether frames may be written to `socket` directly, past hyper:
    /// not over TLS, where every byte on the socket is the TLS session's.
    /// Without it a route leaves its response to hyper, and uses `socket`
    /// only for its send timeout.
    pub direct: bool,
}

#[derive(Debug)]
struct Shared {
    write: OwnedWriteHalf,
    out: Mutex<Out>,
    /// The connection is no longer hyper's (see
    /// [`Writer::take_over_after_flush`]).
    taken: AtomicBool,
}

/// Pending capacity kept once drained; more is given back.
const KEPT_PENDING_CAPACITY: usize = 4 * 1024;

#[derive(Default)]
struct Out {
    /// Bytes of a write the kernel did not take yet, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    /// No more pushes: the connection is closing.
    closed: bool,
    /// Run once by the next flush that finds everything written.
    on_flush: Option<OnFlush>,
    /// How long a write through the connection may wait without the
    /// kernel taking a byte before it fails (none: as long as it takes).
    send_timeout: Option<Duration>,
    /// A write failed for that.
    timed_out: bool,
    /// The kernel took bytes since the connection last waited.
    progressed: bool,
}

type OnFlush = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out")
            .field("pending", &(self.pending.len() - self.sent))
            .field("closed", &self.closed)
            .field("on_flush", &self.on_flush.is_some())
            .field("send_timeout", &self.send_timeout)
            .field("timed_out", &self.timed_out)
            .field("progressed", &self.progressed)
            .finish()
    }
}

impl Out {
    fn is_drained(&self) -> bool {
        self.sent == self.pending.len()
    }

    /// Writes as much of `pending` as the kernel takes now; whether all.
    fn drain(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while !self.is_drained() {
            match tcp.try_write(&self.pending[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    self.progressed = true;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        // A connection that once fell behind does not keep the memory.
        if self.pending.capacity() > KEPT_PENDING_CAPACITY {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
        self.sent = 0;
        Ok(true)
    }

    /// Writes `bufs` whole, in order: what the kernel does not take now is
    /// kept. `Ok(false)` when nothing could be written (nothing kept).
    fn write_whole(&mut self, tcp: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<bool> {
        debug_assert!(self.is_drained());
        let written = match bufs {
            [one] => tcp.try_write(one),
            _ => tcp.try_write_vectored(bufs),
        };
        match written {
            Ok(mut skip) => {
                for buf in bufs {
                    let taken = skip.min(buf.len());
                    skip -= taken;
                    self.pending.extend_from_slice(&buf[taken..]);
                }
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// [`Writer::push`], under the lock.
    fn push(&mut self, tcp: &TcpStream, frame: &[u8]) -> Pushed {
        if self.closed {
            return Pushed::Closed;
        }
        let written = match self.drain(tcp) {
            Ok(true) => self.write_whole(tcp, &[IoSlice::new(frame)]),
            Ok(false) => Ok(false),
            Err(err) => Err(err),
        };
        match written {
            Ok(true) if self.is_drained() => Pushed::Sent,
            Ok(true) => Pushed::Queued,
            Ok(false) => {
                self.pending.extend_from_slice(frame);
                Pushed::Queued
            }
            Err(_) => {
                self.closed = true;
                Pushed::Closed
            }
        }
    }
}

/// A connection's write side, held locked for a send made elsewhere (a
/// batch through io_uring): no other write comes between, and the frame
/// goes whole, as a push does.
pub(crate) struct Held<'a> {
    out: MutexGuard<'a, Out>,
    tcp: &'a TcpStream,
}

impl Held<'_> {
    /// Whether a frame may be sent now by whoever holds the connection:
    /// nothing is pending before it, and pushes are taken.
    pub(crate) fn is_ready(&self) -> bool {
        !self.out.closed && self.out.is_drained()
    }

    /// The socket's descriptor, for the send; valid while held.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.tcp.as_raw_fd()
    }

    /// Pushes `frame` here and now, as [`Writer::push`] does.
    pub(crate) fn push(&mut self, frame: &[u8]) -> Pushed {
        self.out.push(self.tcp, frame)
    }

    /// What a send of `frame` made elsewhere that `took` bytes (or
    /// failed) comes to: what the kernel did not take is kept, as a push
    /// keeps it.
    pub(crate) fn sent(&mut self, frame: &[u8], took: io::Result<usize>) -> Pushed {
        match took {
            Ok(taken) if taken >= frame.len() => Pushed::Sent,
            Ok(taken) => {
                self.out.pending.extend_from_slice(&frame[taken..]);
                Pushed::Queued
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                self.out.pending.extend_from_slice(frame);
                Pushed::Queued
            }
            Err(_) => {
                self.out.closed = true;
                Pushed::Closed
            }
        }
    }
}

/// What [`Writer::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The kernel took all of it.
    Sent,
    /// Some or all of it waits in the socket's pending bytes: the peer is
    /// not keeping up. Whoever owns the connection must drain it (a flush).
    Queued,
    /// The connection is closing or broken; nothing was written.
    Closed,
}

impl Socket {
    /// Wraps an accepted connection.
    pub fn new(tcp: TcpStream) -> Self {
        let (read, write) = tcp.into_split();
        Self {
            read,
            stalled: None,
            writer: Writer(Arc::new(Shared {
                write,
                out: Mutex::new(Out::default()),
                taken: AtomicBool::new(false),
            })),
        }
    }

    /// The handle that writes to this connection from elsewhere.
    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }
}

impl Writer {
    fn tcp(&self) -> &TcpStream {
        self.0.write.as_ref()
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.0
            .out
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Writes one whole frame without waiting, between other writes.
    pub fn push(&self, frame: &[u8]) -> Pushed {
        self.out().push(self.tcp(), frame)
    }

    /// The write side, held for a send made elsewhere; `None` when someone
    /// else holds it now.
    pub(crate) fn try_hold(&self) -> Option<Held<'_>> {
        let out = match self.0.out.try_lock() {
            Ok(out) => out,
            Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(Held {
            out,
            tcp: self.tcp(),
        })
    }

    /// The write side, held for a send made elsewhere, once free.
    pub(crate) fn hold(&self) -> Held<'_> {
        Held {
            out: self.out(),
            tcp: self.tcp(),
        }
    }

    /// Whether every byte written so far went to the kernel (and the
    /// connection is not closing).
    pub fn is_drained(&self) -> bool {
        let out = self.out();
        !out.closed && out.is_drained()
    }

    /// Refuses every later [`push`](Self::push); writes through the
    /// connection itself still go out (a close frame, say). A pending
    /// [takeover](Self::take_over_after_flush) does not happen.
    pub fn stop_pushes(&self) {
        let hook = {
            let mut out = self.out();
            out.closed = true;
            out.on_flush.take()
        };
        drop(hook);
    }

    /// Takes the connection over from its [`Socket`] (hyper) at the next
    /// flush of hyper's that finds every byte it wrote gone to the kernel:
    /// hyper flushes only once its buffer is empty (a test pins this), so
    /// nothing hyper was given before can follow what the caller writes
    /// from then on. Ask as hyper takes the last bytes it should write.
    /// Once taken, the socket reads nothing more for hyper and drops its
    /// writes, flushes and shutdown, so hyper can end its response and let
    /// go of the connection (and its buffers) while the caller writes
    /// through [`send`](Self::send). Resolves `true` once taken over,
    /// `false` if pushes stopped first (the connection is closing).
    pub fn take_over_after_flush(&self) -> impl Future<Output = bool> + Send + use<> {
        let (flushed, on_flush) = oneshot::channel::<()>();
        let earlier = {
            let mut out = self.out();
            // Closing: the hook, and with it `flushed`, is dropped unrun.
            (!out.closed).then(|| {
                out.on_flush.replace(Box::new(move || {
                    let _ = flushed.send(());
                }))
            })
        };
        drop(earlier);
        let shared = self.0.clone();
        async move {
            if on_flush.await.is_err() {
                return false;
            }
            shared.taken.store(true, Ordering::Release);
            true
        }
    }

    /// From now on a write through the connection (hyper's) that waits
    /// `timeout` without the kernel taking a byte fails, so the connection
    /// ends; [`timed_out`](Self::timed_out) then says so.
    pub fn set_send_timeout(&self, timeout: Duration) {
        self.out().send_timeout = Some(timeout);
    }

    /// Whether a write failed for the send timeout.
    pub fn timed_out(&self) -> bool {
        self.out().timed_out
    }

    fn is_taken(&self) -> bool {
        self.0.taken.load(Ordering::Acquire)
    }

    /// Writes `bufs` whole, after whatever is pending, and waits until the
    /// kernel has taken all of it: a connection's own write, for whoever
    /// [took it over](Self::take_over_after_flush). Fails (and refuses later pushes)
    /// when the connection breaks, or when the kernel takes nothing for
    /// the send timeout, which [`timed_out`](Self::timed_out) then says.
    pub async fn send(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let sent = self.send_whole(bufs).await;
        if sent.is_err() {
            self.out().closed = true;
        }
        sent
    }

    async fn send_whole(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let mut written = bufs.is_empty();
        loop {
            {
                let mut out = self.out();
                if out.drain(self.tcp())? {
                    if written {
                        return Ok(());
                    }
                    if out.write_whole(self.tcp(), bufs)? {
                        written = true;
                        continue;
                    }
                }
            }
            let timeout = self.out().send_timeout;
            let Some(timeout) = timeout else {
                self.tcp().writable().await?;
                continue;
            };
            match tokio::time::timeout(timeout, self.tcp().writable()).await {
                Ok(Ok(())) => {}
                // The runtime's I/O driver is gone (shutting down): waiting
                // again would fail again at once, for ever.
                Ok(Err(err)) => return Err(err),
                Err(_) => {
                    self.out().timed_out = true;
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        }
    }

    /// Resolves once the peer has closed or reset the connection; whatever
    /// it sends meanwhile is read and dropped. For whoever took the
    /// connection over.
    pub async fn peer_closed(&self) {
        let mut scratch = [0; 256];
        loop {
            if self.tcp().readable().await.is_err() {
                return;
            }
            match self.tcp().try_read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Ends the writing side (the peer reads the end of the stream) and
    /// refuses later pushes: for whoever took the connection over.
    pub fn shut_down(&self) {
        self.out().closed = true;
        let _ = socket2::SockRef::from(self.tcp()).shutdown(std::net::Shutdown::Write);
    }

    /// Drains pending bytes; ready once there are none.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<MutexGuard<'_, Out>>> {
        loop {
            let mut out = self.out();
            if out.drain(self.tcp())? {
                return Poll::Ready(Ok(out));
            }
            drop(out);
            ready!(self.tcp().poll_write_ready(cx))?;
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.writer.is_taken() {
            // Whoever took the connection over reads it now.
            return Poll::Pending;
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Takes all of `bufs` or none of them, so frames written here and
    /// frames pushed never interleave.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.writer.is_taken() {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let written = self.as_mut().poll_write_whole(cx, bufs);
        self.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.writer.is_taken() {
            return Poll::Ready(Ok(()));
        }
        let drained = self
            .writer
            .poll_drain(cx)
            .map_ok(|mut out| out.on_flush.take());
        let hook = ready!(self.watch(cx, drained))?;
        if let Some(hook) = hook {
            hook();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.writer.is_taken() {
            return Poll::Ready(Ok(()));
        }
        let drained = self
            .writer
            .poll_drain(cx)
            .map_ok(|mut out| out.closed = true);
        ready!(self.watch(cx, drained))?;
        Poll::Ready(socket2::SockRef::from(self.writer.tcp()).shutdown(std::net::Shutdown::Write))
    }
}

impl Socket {
    fn poll_write_whole(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let writer = &self.writer;
        loop {
            let mut out = ready!(writer.poll_drain(cx))?;
            if out.write_whole(writer.tcp(), bufs)? {
                return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
            }
            drop(out);
            ready!(writer.tcp().poll_write_ready(cx))?;
        }
    }

    /// Applies the send timeout to a write's outcome: a write that waits
    /// runs the clock (restarted whenever the kernel takes bytes), and
    /// fails once it runs out; one that is done stops it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let (timeout, progressed) = {
            let mut out = self.writer.out();
            (out.send_timeout, std::mem::take(&mut out.progressed))
        };
        let Some(timeout) = timeout else {
            return Poll::Pending;
        };
        if progressed {
            self.stalled = None;
        }
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if clock.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stalled = None;
        let mut out = self.writer.out();
        out.timed_out = true;
        out.closed = true;
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What `take_over_after_flush` (and so an event stream's takeover)
    /// relies on: hyper flushes its connection only once it has written
    /// everything it was given, so a push made after that flush follows all of it,
    /// however slowly the peer reads.
    #[tokio::test]
    async fn hyper_flushes_only_after_writing_everything_it_was_given() {
        use std::convert::Infallible;

        use bytes::Bytes;
        use futures::StreamExt;
        use http_body_util::StreamBody;
        use hyper::body::Frame;

        let (socket, mut client) = pair().await;
        let writer = socket.writer();
        let pusher = writer.clone();
        let takeover = writer.take_over_after_flush();
        tokio::spawn(async move {
            assert!(takeover.await, "taken over");
            assert_eq!(pusher.push(b"5\r\nhook!\r\n"), Pushed::Sent);
        });
        // A first chunk far larger than the socket's buffers, then nothing
        // more for as long as the test runs.
        let big = Bytes::from(vec![b'x'; 256 * 1024]);
        let service = hyper::service::service_fn(move |_request| {
            let first = futures::stream::iter([Ok::<_, Infallible>(Frame::data(big.clone()))]);
            let body = StreamBody::new(first.chain(futures::stream::pending()));
            let response = hyper::Response::builder()
                .header("transfer-encoding", "chunked")
                .body(body)
                .unwrap();
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
        );
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let expected_chunk = format!("{:x}\r\n", 256 * 1024);
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        // Read slowly: the server's writes back up on the way.
        while !received.ends_with(b"hook!\r\n") {
            let n = client.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection ended early");
            received.extend_from_slice(&buffer[..n]);
            tokio::task::yield_now().await;
        }
        let head_end = received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let body = &received[head_end..];
        let chunk_start = expected_chunk.len();
        assert!(body.starts_with(expected_chunk.as_bytes()), "one chunk");
        let chunk_end = chunk_start + 256 * 1024;
        assert!(body[chunk_start..chunk_end].iter().all(|&b| b == b'x'));
        assert_eq!(&body[chunk_end..], b"\r\n5\r\nhook!\r\n");
    }

    /// A connection and its client, each with small socket buffers.
    pub(crate) async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server, _) = accepted.unwrap();
        let client = client.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(4096)
            .unwrap();
        (Socket::new(server), client)
    }

    /// Frames of `len` bytes, all of byte `tag`.
    pub(crate) fn frame(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    #[tokio::test]
    async fn pushes_and_writes_never_interleave_inside_a_frame() {
        let (mut writer, mut client) = pair().await;
        let socket = writer.writer();
        // Push until the kernel stops taking frames whole.
        let mut frames = Vec::new();
        for tag in 1..=254u8 {
            let pushed = socket.push(&frame(tag, 1000));
            frames.push(tag);
            if pushed == Pushed::Queued {
                break;
            }
        }
        assert_eq!(
            socket.push(&frame(0, 10)),
            Pushed::Queued,
            "a push waits behind pending bytes"
        );
        frames.push(0);
        // A write through the connection must wait for pending bytes.
        let written = tokio::spawn(async move {
            writer.write_all(&frame(255, 3000)).await.unwrap();
            writer.flush().await.unwrap();
        });
        let expected: usize = frames
            .iter()
            .map(|&t| if t == 0 { 10 } else { 1000 })
            .sum::<usize>()
            + 3000;
        let mut received = vec![0u8; expected];
        client.read_exact(&mut received).await.unwrap();
        written.await.unwrap();
        let mut at = 0;
        for tag in frames {
            let len = if tag == 0 { 10 } else { 1000 };
            assert!(
                received[at..at + len].iter().all(|&b| b == tag),
                "frame {tag} is whole"
            );
            at += len;
        }
        assert!(received[at..].iter().all(|&b| b == 255));
    }

    #[tokio::test]
    async fn a_closed_socket_takes_no_pushes() {
        let (socket, _client) = pair().await;
        let socket = socket.writer();
        assert_eq!(socket.push(b"one"), Pushed::Sent);
        socket.stop_pushes();
        assert_eq!(socket.push(b"two"), Pushed::Closed);
    }
}
