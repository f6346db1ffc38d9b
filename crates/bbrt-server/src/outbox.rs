//! A connection's outbound queue, shared by the hub task (which pushes) and the
//! connection task (which writes).
//!
//! Frames are the Hub's shared `Bytes` (encoded once for all recipients), so a push is a
//! reference-count increment. The queue is bounded in bytes: a client that lets it fill
//! is a slow consumer and is closed (4011) without the hub task ever waiting for it. An
//! empty queue holds no allocation.
//!
//! **Direct writes.** Waking a connection's task costs about as much as its write, and at
//! moderate rates every delivery paid for one. So when a push finds the queue empty and
//! the connection's task holding nothing it has not written, the hub task writes the
//! frames itself at the end of its batch ([`Outbox::flush_direct`]: one vectored
//! `try_write`, never waiting) and the task is not woken. Order is kept by the `busy` flag,
//! under the same mutex as the queue: the task sets it before any write of its own (and
//! whenever it takes frames), the hub task writes only while it is clear and holds the
//! mutex for its one syscall, so the two never write at once. What a direct write leaves
//! (a partial write, `WouldBlock`, an error) stays queued, already framed, ahead of
//! later frames, and the task is woken to write it as before (and to see the error).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bbrt_protocol::wire::CloseCode;
use bbrt_ws::frame as ws;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

use futures_util::task::AtomicWaker;

use crate::metrics::Metrics;

/// Most frames in one direct write (two slices each, as the connection task's `IOV_MAX`).
const DIRECT_FRAMES: usize = 64;

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued.
    Queued,
    /// Queued, and the connection's task was not woken: the caller must call
    /// [`Outbox::flush_direct`] once its batch is done (one write for all of the batch's
    /// frames to this connection).
    Direct,
    /// The queue was over its bound: it was dropped and the connection told to close
    /// with 4011.
    Overflow,
    /// The connection is closing; the frame was dropped.
    Closed,
}

/// A close the connection task must perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    /// The close code (its reason goes with it).
    pub(crate) code: CloseCode,
    /// Whether queued frames are written first (false for a slow consumer).
    pub(crate) flush: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Chunks a direct write left, already framed (headers included): they go first.
    unwritten: VecDeque<Bytes>,
    /// Frame payloads, without headers.
    frames: VecDeque<Bytes>,
    bytes: usize,
    close: Option<CloseRequest>,
    /// The socket, for direct writes (`None` once the connection task is closing).
    stream: Option<Arc<TcpStream>>,
    /// The connection task holds bytes it has not fully written, or is closing: only it
    /// writes.
    busy: bool,
    /// A [`Push::Direct`] was returned and its `flush_direct` has not run yet.
    flush_pending: bool,
}

/// The outbound queue of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    max_bytes: usize,
    /// Wakes the connection task: frames or a close are waiting.
    notify: Wake,
}

/// A wake-up for the one task that serves the connection, kept until it is seen (as
/// `Notify::notify_one`'s permit). Not `tokio::sync::Notify`: waiting on it needs a
/// 64-byte `Notified` future in every idle connection's task, polling this needs none.
#[derive(Debug, Default)]
struct Wake {
    waker: AtomicWaker,
    pending: AtomicBool,
}

impl Wake {
    fn notify_one(&self) {
        self.pending
            .store(true, std::sync::atomic::Ordering::Release);
        self.waker.wake();
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Checked again after registering: a wake-up between the two is not lost.
        if self.take() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.take() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn take(&self) -> bool {
        self.pending
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}

impl Outbox {
    /// An outbox the hub task may write through into `stream` (`None`: never).
    pub(crate) fn new(max_bytes: usize, stream: Option<Arc<TcpStream>>) -> Self {
        Self {
            state: Mutex::new(State {
                stream,
                ..State::default()
            }),
            max_bytes,
            notify: Wake::default(),
        }
    }

    /// Ready once frames or a close were queued since it was last ready (for the
    /// connection task, the only one that waits).
    pub(crate) fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.notify.poll(cx)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` (a text frame's payload).
    pub(crate) fn push(&self, frame: Bytes) -> Push {
        let mut s = self.lock();
        if s.close.is_some() {
            return Push::Closed;
        }
        if s.bytes + frame.len() > self.max_bytes {
            s.unwritten = VecDeque::new();
            s.frames = VecDeque::new();
            s.bytes = 0;
            s.close = Some(CloseRequest {
                code: CloseCode::SlowConsumer,
                flush: false,
            });
            drop(s);
            self.notify.notify_one();
            return Push::Overflow;
        }
        let was_empty = s.frames.is_empty();
        s.bytes += frame.len();
        s.frames.push_back(frame);
        if was_empty && !s.busy && s.unwritten.is_empty() && s.stream.is_some() {
            // The hub task writes it at the end of its batch; the task is not woken.
            let first = !s.flush_pending;
            s.flush_pending = true;
            return if first { Push::Direct } else { Push::Queued };
        }
        drop(s);
        if was_empty {
            self.notify.notify_one();
        }
        Push::Queued
    }

    /// Writes the queued frames straight into the socket if the connection's task holds
    /// nothing unwritten (else wakes it). One vectored `try_write`: never waits. What is
    /// not written stays queued (framed, in order) and the task is woken to write it.
    pub(crate) fn flush_direct(&self, metrics: &Metrics) {
        let mut s = self.lock();
        s.flush_pending = false;
        if s.close.is_some() || s.frames.is_empty() {
            // A close has woken the task already; no frames: the task took them.
            return;
        }
        if s.busy || !s.unwritten.is_empty() || s.stream.is_none() {
            drop(s);
            self.notify.notify_one();
            return;
        }
        let count = s.frames.len().min(DIRECT_FRAMES);
        let mut headers = BytesMut::with_capacity(count * ws::MAX_HEADER);
        let mut chunks = VecDeque::with_capacity(count * 2);
        for _ in 0..count {
            let Some(frame) = s.frames.pop_front() else {
                break;
            };
            s.bytes -= frame.len();
            ws::put_header(&mut headers, ws::OP_TEXT, frame.len());
            chunks.push_back(headers.split().freeze());
            chunks.push_back(frame);
        }
        metrics.frames_written.fetch_add(count as u64, Relaxed);
        let written = match &s.stream {
            Some(stream) => write_once(stream, &chunks),
            None => Ok(0),
        };
        let left = match written {
            Ok(n) if n > 0 => {
                metrics.writes.fetch_add(1, Relaxed);
                metrics.direct_writes.fetch_add(1, Relaxed);
                metrics.bytes_written.fetch_add(n as u64, Relaxed);
                n
            }
            // Full, or failed: the task writes it (and sees the error).
            _ => 0,
        };
        consume(&mut chunks, left);
        let rest = !chunks.is_empty() || !s.frames.is_empty();
        s.bytes += chunks.iter().map(Bytes::len).sum::<usize>();
        // Emptied queues are freed, not kept with their capacity: an idle connection's
        // outbox holds no allocation (a joined connection kept ~500 bytes of them after
        // its last burst, scenario 4 under massif).
        s.unwritten = if chunks.is_empty() {
            VecDeque::new()
        } else {
            chunks
        };
        if s.frames.is_empty() {
            s.frames = VecDeque::new();
        }
        drop(s);
        if rest {
            self.notify.notify_one();
        }
    }

    /// The connection task is about to write bytes of its own (a pong, a ping): no direct
    /// write until [`Outbox::release`]. What a direct write left is appended to `framed`:
    /// it may end in the middle of a frame, so it goes before anything of the task's.
    pub(crate) fn claim(&self, framed: &mut VecDeque<Bytes>) {
        let mut s = self.lock();
        s.busy = true;
        if !s.unwritten.is_empty() {
            let unwritten = std::mem::take(&mut s.unwritten);
            s.bytes -= unwritten.iter().map(Bytes::len).sum::<usize>();
            framed.extend(unwritten);
        }
    }

    /// The connection task has written everything it held.
    pub(crate) fn release(&self) {
        self.lock().busy = false;
    }

    /// The connection task is closing: from now on only it writes, and the outbox no
    /// longer holds the socket open.
    pub(crate) fn detach(&self) {
        let mut s = self.lock();
        s.busy = true;
        s.stream = None;
    }

    /// Asks the connection to close (the first request wins).
    pub(crate) fn close(&self, request: CloseRequest) {
        let mut s = self.lock();
        if s.close.is_none() {
            s.close = Some(request);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// The close request, if any, without taking frames.
    pub(crate) fn close_requested(&self) -> Option<CloseRequest> {
        self.lock().close
    }

    /// Takes what a direct write left (already framed, appended to `framed`), every
    /// queued frame (appended to `into`) and the close request, if any. The task holds
    /// what it took until it is written: no direct write until [`Outbox::release`].
    pub(crate) fn take(
        &self,
        framed: &mut VecDeque<Bytes>,
        into: &mut VecDeque<Bytes>,
    ) -> Option<CloseRequest> {
        let mut s = self.lock();
        if !s.unwritten.is_empty() || !s.frames.is_empty() {
            s.busy = true;
        }
        framed.extend(std::mem::take(&mut s.unwritten));
        if into.is_empty() {
            std::mem::swap(into, &mut s.frames);
        } else {
            // Taken, not drained: the emptied queue keeps no capacity.
            into.extend(std::mem::take(&mut s.frames));
        }
        s.bytes = 0;
        s.close
    }
}

/// Drops the first `written` bytes of `chunks` (what a write took).
pub(crate) fn consume(chunks: &mut VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        let Some(front) = chunks.front_mut() else {
            break;
        };
        if written >= front.len() {
            written -= front.len();
            chunks.pop_front();
        } else {
            front.advance(written);
            written = 0;
        }
    }
}

/// One vectored write of `chunks` (at most `2 * DIRECT_FRAMES` of them).
fn write_once(stream: &TcpStream, chunks: &VecDeque<Bytes>) -> io::Result<usize> {
    let mut iov = [IoSlice::new(&[]); 2 * DIRECT_FRAMES];
    let mut n = 0;
    for (slot, chunk) in iov.iter_mut().zip(chunks.iter()) {
        *slot = IoSlice::new(chunk);
        n += 1;
    }
    loop {
        match stream.try_write_vectored(&iov[..n]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes() {
        let o = Outbox::new(10, None);
        assert_eq!(o.push(Bytes::from_static(b"12345")), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"12345")), Push::Queued);
        let mut got = VecDeque::new();
        assert_eq!(o.take(&mut VecDeque::new(), &mut got), None);
        assert_eq!(got.len(), 2);
        assert_eq!(o.push(Bytes::from_static(b"1234567890")), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"1")), Push::Overflow);
        assert_eq!(o.push(Bytes::from_static(b"1")), Push::Closed);
        let mut rest = VecDeque::new();
        assert_eq!(
            o.take(&mut VecDeque::new(), &mut rest).map(|c| c.code),
            Some(CloseCode::SlowConsumer)
        );
        assert!(rest.is_empty(), "a slow consumer's queue is dropped");
    }

    /// The payloads of unmasked server text frames, in order.
    fn payloads(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0], 0x81, "a final text frame");
            let (len, header) = match bytes[1] {
                126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
                127 => panic!("no frame here is that large"),
                len => (usize::from(len), 2),
            };
            out.push(bytes[header..header + len].to_vec());
            bytes = &bytes[header + len..];
        }
        out
    }

    /// Frames with their headers, as the connection task writes them.
    fn framed(frames: VecDeque<Bytes>) -> VecDeque<Bytes> {
        let mut out = VecDeque::new();
        for f in frames {
            let mut header = BytesMut::new();
            ws::put_header(&mut header, ws::OP_TEXT, f.len());
            out.push_back(header.freeze());
            out.push_back(f);
        }
        out
    }

    /// Writes `chunks` out, waiting for the socket, as the connection task does.
    async fn write_all(stream: &TcpStream, chunks: VecDeque<Bytes>) -> usize {
        let mut total = 0;
        for mut chunk in chunks {
            while !chunk.is_empty() {
                stream.writable().await.unwrap();
                match stream.try_write(&chunk) {
                    Ok(n) => {
                        total += n;
                        chunk.advance(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("write: {e}"),
                }
            }
        }
        total
    }

    /// A direct write that takes everything leaves the outbox holding no allocation.
    #[tokio::test]
    async fn a_written_out_outbox_holds_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let metrics = Metrics::default();
        let o = Outbox::new(1 << 20, Some(Arc::new(server)));
        assert_eq!(o.push(Bytes::from_static(b"one")), Push::Direct);
        for _ in 0..9 {
            assert_eq!(o.push(Bytes::from_static(b"more")), Push::Queued);
        }
        o.flush_direct(&metrics);
        assert_eq!(metrics.direct_writes.load(Relaxed), 1);
        let s = o.lock();
        assert!(s.frames.is_empty() && s.unwritten.is_empty());
        assert_eq!((s.frames.capacity(), s.unwritten.capacity()), (0, 0));
    }

    /// A direct write that fills the socket leaves the rest framed and queued; the task
    /// then writes it ahead of later frames; while it holds bytes the hub task does not
    /// write; once it is through, direct writes resume. The reader sees every frame once,
    /// in order.
    #[tokio::test]
    async fn direct_and_queued_writes_keep_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let server = Arc::new(server);
        let metrics = Metrics::default();
        let o = Outbox::new(1 << 30, Some(Arc::clone(&server)));
        // 800 bytes: a 4-byte header, so a partial write can end inside one.
        let frame = |i: usize| Bytes::from(format!("{i:08}").repeat(100));
        let mut next = 0;
        let mut pushed = 0;

        // The client does not read yet: direct writes until the socket is full.
        let mut filled = false;
        for _ in 0..100_000 {
            assert_eq!(o.push(frame(next)), Push::Direct);
            assert_eq!(o.push(frame(next + 1)), Push::Queued, "one flush per batch");
            next += 2;
            let writes = metrics.writes.load(Relaxed);
            o.flush_direct(&metrics);
            assert!(
                metrics.writes.load(Relaxed) <= writes + 1,
                "one write per batch"
            );
            if !o.lock().unwritten.is_empty() {
                filled = true;
                break;
            }
        }
        assert!(filled, "the socket filled up");
        let direct = metrics.direct_writes.load(Relaxed);
        assert!(direct > 0);
        pushed += metrics.bytes_written.load(Relaxed) as usize;
        assert_eq!(o.push(frame(next)), Push::Queued, "behind what is left");
        next += 1;

        // The client reads everything from here on.
        let (read_tx, mut read_rx) = tokio::sync::watch::channel(0usize);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                client.readable().await.unwrap();
                match client.try_read(&mut buf) {
                    Ok(0) => return got,
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        read_tx.send_replace(got.len());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        });

        // The task takes the rest and the queued frame, framed in order.
        let mut pending = VecDeque::new();
        let mut frames = VecDeque::new();
        assert_eq!(o.take(&mut pending, &mut frames), None);
        assert!(!pending.is_empty() && frames.len() == 1);
        pending.extend(framed(frames));
        // While it holds them, the hub task only queues.
        assert_eq!(o.push(frame(next)), Push::Queued);
        next += 1;
        o.flush_direct(&metrics);
        assert_eq!(
            metrics.direct_writes.load(Relaxed),
            direct,
            "busy: no write"
        );
        pushed += write_all(&server, pending).await;
        let mut pending = VecDeque::new();
        let mut frames = VecDeque::new();
        assert_eq!(o.take(&mut pending, &mut frames), None);
        assert!(pending.is_empty() && frames.len() == 1);
        pushed += write_all(&server, framed(frames)).await;
        o.release();

        // Everything so far has reached the client: a direct write goes through whole.
        read_rx.wait_for(|&n| n == pushed).await.unwrap();
        assert_eq!(o.push(frame(next)), Push::Direct);
        next += 1;
        o.flush_direct(&metrics);
        assert_eq!(metrics.direct_writes.load(Relaxed), direct + 1);
        {
            let s = o.lock();
            assert!(s.unwritten.is_empty() && s.frames.is_empty() && !s.busy);
        }

        drop(o);
        drop(server);
        let got = payloads(&reader.await.unwrap());
        let want: Vec<Vec<u8>> = (0..next).map(|i| frame(i).to_vec()).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "every frame once, in order");
    }
}
