//! Per-connection I/O after the upgrade: one task per connection, no per-connection
//! buffers while idle.
//!
//! - **Reads**: wait for `readable()`, then `try_read` into this worker thread's 64 KiB
//!   scratch buffer; frames are unmasked and parsed in place ([`FrameReader`]) and
//!   decoded to client frames right here (in parallel across workers), so the hub task
//!   gets typed inputs. Only an incomplete frame's tail is kept per connection.
//! - **Writes**: the hub task pushes shared frame bytes onto the [`Outbox`]. If this task
//!   holds nothing unwritten, the hub task writes them itself at the end of its batch (one
//!   non-blocking vectored write, no wake-up here); otherwise, or for what that write
//!   left, it notifies, and this task takes everything queued and writes it as one
//!   vectored write of `[header, frame, header, frame, ...]` (many frames per syscall
//!   under load). Before any write of its own this task claims the socket in the outbox,
//!   so the two never write at once and frames stay in order.
//! - **Slow consumers**: the outbox is bounded in bytes and `SO_SNDBUF` is capped, so a
//!   client that does not read fills its queue and is closed with 4011; a write that
//!   makes no progress for the write timeout is closed the same way. While a write is
//!   stuck nothing more is read from the client, so its requests cannot pile up replies.
//! - **Control frames**: a ping is answered by one pong slot (the latest ping wins, as
//!   RFC 6455 §5.5.3 allows), and pings and pongs have a rate limit of their own here (the
//!   Hub never sees them): past it they are ignored, and a client that keeps on is closed
//!   with 4008.
//! - **Liveness**: a connection silent for the ping interval is pinged; one silent for the
//!   idle timeout is closed with 4012.
//! - **Closing**: after its close frame the server reads and discards (never buffers) for
//!   at most [`CLOSE_WAIT`] and [`CLOSE_DISCARD_BYTES`], so that a peer still sending reads
//!   the close code instead of a reset.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bbrt_buddyboss::{AuthScheme, Credential};
use bbrt_protocol::hub::Input;
use bbrt_protocol::ids::ConnId;
use bbrt_protocol::wire::{self, CloseCode, DecodeError, DecodeErrorKind};
use bbrt_ws::frame::{self as ws, FrameError, FrameReader, WsEvent};
use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::hub_task::ConnEvent;
use crate::metrics::CloseReason;
use crate::outbox::{CloseRequest, Outbox, consume};
use crate::server::Shared;

/// Size of each worker thread's read buffer.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Reads per wake-up before yielding to other connections.
const READS_PER_WAKE: usize = 16;
/// Most frames decoded per wake-up. Why: a 64 KiB read of 7-byte frames is 9,000 decoded
/// events, each far larger than its bytes, held until the hub task takes them; past this
/// many, the rest of the read waits undecoded in the reader's backlog (at most one read)
/// and the socket is not read again until the backlog is through.
const EVENTS_PER_WAKE: usize = 64;
/// Slices per vectored write.
const IOV_MAX: usize = 128;
/// How long a closing connection writes its close frame and waits for the peer's.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Most bytes read (and discarded) after the server's close frame: more than the 16 MiB
/// frame a tungstenite or browser client may be in the middle of sending.
const CLOSE_DISCARD_BYTES: usize = 32 * 1024 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_BYTES].into_boxed_slice());
}

/// How the connection ends.
#[derive(Debug)]
enum End {
    /// The peer sent a close frame (with this code, if any): echo it.
    PeerClosed(Option<u16>),
    /// The peer went away without a close frame, or the socket failed.
    Gone,
    /// The server closes: send this close frame.
    Close {
        request: CloseRequest,
        why: CloseReason,
    },
}

/// One upgraded connection.
pub(crate) struct Connection {
    /// Shared with the outbox, for the hub task's direct writes.
    stream: Arc<TcpStream>,
    conn: ConnId,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    reader: FrameReader,
    /// Chunks being written: header, payload, header, payload...
    pending: VecDeque<Bytes>,
    /// The pong for the latest ping not yet written (boxed: no space while empty).
    pong: Option<Box<[u8]>>,
    control: ControlRate,
    last_read: Instant,
    pinged: bool,
    stall_since: Option<Instant>,
    /// This task has claimed the socket's write side in the outbox (see
    /// [`Outbox::claim`]): always while `pending` is not empty.
    claimed: bool,
}

/// The transport's rate limit on pings and pongs, with the Hub's frame rate and burst.
/// Refilled at each read from the time since the previous one (`last_read`), so it needs
/// no clock of its own.
#[derive(Debug)]
struct ControlRate {
    tokens: f32,
    /// Over-limit control frames in a row.
    violations: u32,
}

impl ControlRate {
    fn new(burst: f64) -> Self {
        Self {
            tokens: burst as f32,
            violations: 0,
        }
    }

    fn refill(&mut self, elapsed: Duration, rate: f64, burst: f64) {
        let tokens = f64::from(self.tokens) + elapsed.as_secs_f64() * rate;
        self.tokens = tokens.min(burst) as f32;
    }

    /// Whether one more control frame may be answered.
    fn admit(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.violations = 0;
            true
        } else {
            self.violations = self.violations.saturating_add(1);
            false
        }
    }
}

/// What one read burst produced for the hub task.
enum ReadOutcome {
    /// Inputs for the Hub (possibly none).
    Inputs(Vec<ConnEvent>),
    /// Inputs, then the end of the connection.
    End(Vec<ConnEvent>, End),
}

impl Connection {
    pub(crate) fn new(
        stream: Arc<TcpStream>,
        conn: ConnId,
        shared: Arc<Shared>,
        outbox: Arc<Outbox>,
    ) -> Self {
        let reader =
            FrameReader::new(shared.config.max_frame_bytes).with_events_per_feed(EVENTS_PER_WAKE);
        let control = ControlRate::new(shared.config.frame_burst);
        Self {
            stream,
            conn,
            shared,
            outbox,
            reader,
            pending: VecDeque::new(),
            pong: None,
            control,
            last_read: Instant::now(),
            pinged: false,
            stall_since: None,
            claimed: false,
        }
    }

    /// Runs the connection to its end, then tells the Hub it is gone.
    ///
    /// `guard` (the connection's slot in the server's counts) is dropped at the end.
    ///
    /// Not an `async fn`: an `async fn` keeps its arguments twice in its future (once as
    /// passed, once moved into the body; rust-lang/rust#62958), 256 bytes more in every
    /// connection's task. An `async move` block uses what it captured in place.
    #[allow(clippy::manual_async_fn)] // the point: see above
    pub(crate) fn run<G: Send>(
        mut self,
        early: Vec<u8>,
        guard: G,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let end = self.serve(early).await;
            // Boxed: closing happens once, and its timers need not weigh on every idle task.
            Box::pin(self.finish(end)).await;
            let _ = self
                .forward(vec![ConnEvent::Input(Input::Close { conn: self.conn })])
                .await;
            drop(guard);
        }
    }

    /// Hands what a read produced to the hub task; `Some` when the connection ends.
    ///
    /// Not an `async fn` (as [`Self::run`]): the inputs are handed over before the future
    /// is made, so it holds only what crosses the await.
    fn after_read(&mut self, outcome: ReadOutcome) -> impl Future<Output = Option<End>> + '_ {
        let (inputs, end) = match outcome {
            ReadOutcome::Inputs(inputs) => (inputs, None),
            ReadOutcome::End(inputs, end) => (inputs, Some(end)),
        };
        let forwarded = self.forward(inputs);
        async move {
            if let Some(end) = forwarded.await {
                return Some(end);
            }
            if end.is_some() {
                return end;
            }
            // Pongs to the client's pings.
            self.flush().err()
        }
    }

    /// Serves until the connection ends. `early`: bytes the client sent right behind its
    /// upgrade request (its first frames).
    ///
    /// Not an `async fn` (as [`Self::run`]), and `early` becomes the reader's backlog
    /// (parsed before anything is read from the socket, as a read's rest would be): the
    /// task keeps no copy of it.
    fn serve(&mut self, early: Vec<u8>) -> impl Future<Output = End> + '_ {
        self.reader.defer(early);
        async move {
            let sleep = tokio::time::sleep_until(self.next_deadline());
            tokio::pin!(sleep);
            loop {
                let deadline = self.next_deadline();
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                let want_write = !self.pending.is_empty();
                // Replies waiting for the socket: read nothing more until they are written.
                let want_read = !want_write;
                // Frames of the last read still undecoded: they come before the socket's.
                let backlog = self.reader.has_backlog();
                tokio::select! {
                    biased;
                    // Polled in place (no `Notified` future held in the task).
                    () = std::future::poll_fn(|cx| self.outbox.poll_notified(cx)) => {
                        // While a batch is stuck, frames stay in the outbox, where they count
                        // against its bound; only a close is looked at.
                        if !self.pending.is_empty() {
                            if let Some(request) = self.outbox.close_requested() {
                                return end_for(request);
                            }
                            continue;
                        }
                        // One scheduler pass before writing: the hub task may still be
                        // adding frames for this connection, and every write syscall costs
                        // about as much as the whole TCP path on loopback (fan-out benchmark,
                        // two 3 s runs each: 15.5-15.7 -> 16.5-17.7 frames per write, 0.84 ->
                        // 0.80 µs of CPU per delivery).
                        tokio::task::yield_now().await;
                        if let Some(end) = self.pull() {
                            return end;
                        }
                        if let Err(end) = self.flush() {
                            return end;
                        }
                    }
                    // poll_fn over the poll_*_ready methods: no per-branch waiter nodes, so the
                    // task of an idle connection stays small.
                    () = std::future::ready(()), if want_read && backlog => {
                        let outcome = self.process(Source::Backlog);
                        if let Some(end) = self.after_read(outcome).await {
                            return end;
                        }
                    }
                    ready = std::future::poll_fn(|cx| self.stream.poll_read_ready(cx)), if want_read && !backlog => {
                        if ready.is_err() {
                            return End::Gone;
                        }
                        let outcome = self.read();
                        if let Some(end) = self.after_read(outcome).await {
                            return end;
                        }
                    }
                    ready = std::future::poll_fn(|cx| self.stream.poll_write_ready(cx)), if want_write => {
                        if ready.is_err() {
                            return End::Gone;
                        }
                        if let Err(end) = self.flush() {
                            return end;
                        }
                        // Frames queued while this batch was stuck.
                        if self.pending.is_empty() {
                            if let Some(end) = self.pull() {
                                return end;
                            }
                            if let Err(end) = self.flush() {
                                return end;
                            }
                        }
                    }
                    () = &mut sleep => {
                        if let Some(end) = self.tick() {
                            return end;
                        }
                    }
                }
            }
        }
    }

    /// When the next timer is due: ping, idle timeout or write stall.
    fn next_deadline(&self) -> Instant {
        let cfg = &self.shared.config;
        let idle_at = self.last_read + cfg.idle_timeout;
        let ping_at = self.last_read + cfg.ping_interval;
        let mut at = if self.pinged || ping_at >= idle_at {
            idle_at
        } else {
            ping_at
        };
        if let Some(since) = self.stall_since {
            at = at.min(since + cfg.write_timeout);
        }
        at
    }

    fn tick(&mut self) -> Option<End> {
        let now = Instant::now();
        let cfg = &self.shared.config;
        if let Some(since) = self.stall_since
            && now >= since + cfg.write_timeout
        {
            let request = CloseRequest {
                code: CloseCode::SlowConsumer,
                flush: false,
            };
            return Some(End::Close {
                request,
                why: CloseReason::WriteStall,
            });
        }
        if now >= self.last_read + cfg.idle_timeout {
            let request = CloseRequest {
                code: CloseCode::IdleTimeout,
                flush: true,
            };
            return Some(End::Close {
                request,
                why: CloseReason::Idle,
            });
        }
        if !self.pinged && now >= self.last_read + cfg.ping_interval {
            self.pinged = true;
            // Whatever a direct write left goes before the ping.
            self.claim();
            self.pending
                .push_back(ws::control_frame(ws::OP_PING, b"").freeze());
            if let Err(end) = self.flush() {
                return Some(end);
            }
        }
        None
    }

    /// Moves queued frames from the outbox to the write batch, with their headers.
    fn pull(&mut self) -> Option<End> {
        let mut batch = VecDeque::new();
        let close = self.outbox.take(&mut self.pending, &mut batch);
        self.claimed |= !self.pending.is_empty() || !batch.is_empty();
        if !batch.is_empty() {
            let count = batch.len();
            let mut headers = BytesMut::with_capacity(count * ws::MAX_HEADER);
            for frame in batch {
                ws::put_header(&mut headers, ws::OP_TEXT, frame.len());
                self.pending.push_back(headers.split().freeze());
                self.pending.push_back(frame);
            }
            self.shared
                .metrics
                .frames_written
                .fetch_add(count as u64, Relaxed);
        }
        close.map(end_for)
    }

    /// Writes as much of the batch as the socket takes without waiting, then the pong
    /// (it joins the batch only once the batch is written, so at most one waits).
    fn flush(&mut self) -> Result<(), End> {
        loop {
            if self.pending.is_empty() {
                let Some(pong) = self.pong.take() else {
                    self.stall_since = None;
                    if self.claimed {
                        // Written out: the hub task may write directly again.
                        self.claimed = false;
                        self.outbox.release();
                    }
                    return Ok(());
                };
                self.claim();
                if !self.pending.is_empty() {
                    // A direct write's rest, which may end mid-frame: it goes first.
                    self.pong = Some(pong);
                } else {
                    self.pending.push_back(Bytes::from(pong));
                }
            }
            match write_pending(&self.stream, &mut self.pending, &self.shared) {
                Ok(true) => {}
                Ok(false) => {
                    self.stall_since.get_or_insert_with(Instant::now);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "write failed");
                    return Err(End::Gone);
                }
            }
        }
    }

    /// Claims the socket's write side from the hub task (once), taking what its direct
    /// writes left into `pending`.
    fn claim(&mut self) {
        if !self.claimed {
            self.claimed = true;
            self.outbox.claim(&mut self.pending);
        }
    }

    /// Reads what the socket has, into the worker's scratch buffer.
    fn read(&mut self) -> ReadOutcome {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut all = Vec::new();
            for _ in 0..READS_PER_WAKE {
                match self.stream.try_read(&mut scratch[..]) {
                    Ok(0) => return ReadOutcome::End(all, End::Gone),
                    Ok(n) => {
                        self.shared.metrics.bytes_in.fetch_add(n as u64, Relaxed);
                        match self.process(Source::Read(&mut scratch[..n])) {
                            ReadOutcome::Inputs(inputs) => all.extend(inputs),
                            ReadOutcome::End(inputs, end) => {
                                all.extend(inputs);
                                return ReadOutcome::End(all, end);
                            }
                        }
                        if n < scratch.len()
                            || self.reader.has_backlog()
                            || all.len() >= EVENTS_PER_WAKE
                        {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return ReadOutcome::End(all, End::Gone),
                }
            }
            ReadOutcome::Inputs(all)
        })
    }

    /// Parses bytes read from the peer, or the backlog of an earlier read, into Hub inputs.
    fn process(&mut self, source: Source<'_>) -> ReadOutcome {
        let now = Instant::now();
        let cfg = &self.shared.config;
        self.control.refill(
            now.saturating_duration_since(self.last_read),
            cfg.frame_rate,
            cfg.frame_burst,
        );
        self.last_read = now;
        self.pinged = false;
        let mut inputs = Vec::new();
        let mut peer_close = None;
        let Self {
            reader,
            pong,
            control,
            shared,
            conn,
            ..
        } = self;
        let conn = *conn;
        let mut on = |event: WsEvent<'_>| match event {
            WsEvent::Text(text) => inputs.push(decode(text, conn, shared)),
            WsEvent::Binary => {
                shared.metrics.binary_in();
                let error = DecodeError {
                    request_id: None,
                    kind: DecodeErrorKind::Binary,
                };
                inputs.push(ConnEvent::Input(Input::Invalid { conn, error }));
            }
            WsEvent::Ping(payload) => {
                if control.admit() {
                    // An unwritten pong is replaced: only the latest ping is answered.
                    *pong = Some(Vec::from(ws::control_frame(ws::OP_PONG, payload)).into());
                }
            }
            WsEvent::Pong => {
                control.admit();
            }
            WsEvent::Close(code) => peer_close = Some(code),
        };
        let result = match source {
            Source::Read(bytes) => reader.feed(bytes, &mut on),
            Source::Backlog => reader.resume(&mut on),
        };
        if self.control.violations > self.shared.config.close_after_violations {
            self.reader.close();
            let request = CloseRequest {
                code: CloseCode::RateLimited,
                flush: false,
            };
            let why = CloseReason::ControlRate;
            return ReadOutcome::End(inputs, End::Close { request, why });
        }
        match (result, peer_close) {
            (Err(e), _) => {
                tracing::debug!(error = %e, "protocol violation");
                let request = CloseRequest {
                    code: close_code(e),
                    flush: false,
                };
                ReadOutcome::End(
                    inputs,
                    End::Close {
                        request,
                        why: CloseReason::Protocol,
                    },
                )
            }
            (Ok(()), Some(code)) => ReadOutcome::End(inputs, End::PeerClosed(code)),
            (Ok(()), None) => ReadOutcome::Inputs(inputs),
        }
    }

    /// Sends inputs to the hub task, waiting if it is busy (backpressure on this client).
    ///
    /// Not an `async fn`: the common case awaits nothing, and the rare wait is a boxed
    /// future, so the state every idle connection's task holds stays small.
    fn forward(&self, inputs: Vec<ConnEvent>) -> Forwarded {
        let mut inputs = inputs.into_iter();
        while let Some(input) = inputs.next() {
            match self.shared.events.try_send(input) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    let events = self.shared.events.clone();
                    return Forwarded::Wait(Box::pin(forward_slowly(events, event, inputs)));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Forwarded::Done(Some(shutting_down()));
                }
            }
        }
        Forwarded::Done(None)
    }

    /// The closing handshake.
    async fn finish(&mut self, end: End) {
        self.pong = None;
        // Only this task writes from here on (its close frame last).
        self.outbox.detach();
        self.claimed = true;
        match end {
            End::Gone => {}
            End::PeerClosed(code) => {
                // The peer wants nothing more: answer its close and hang up.
                self.pending.clear();
                let frame = match code {
                    Some(code) => ws::close_frame(code, ""),
                    None => ws::control_frame(ws::OP_CLOSE, b""),
                };
                self.pending.push_back(frame.freeze());
                let write_timeout = self.shared.config.write_timeout.min(CLOSE_WAIT);
                let _ = tokio::time::timeout(write_timeout, self.flush_all()).await;
            }
            End::Close { request, why } => {
                let code = request.code;
                self.shared.metrics.closed(if code == CloseCode::GoingAway {
                    CloseReason::Shutdown
                } else {
                    why
                });
                tracing::debug!(code = code.code(), reason = code.reason(), "closing");
                if request.flush {
                    let _ = self.pull();
                } else {
                    self.pending.clear();
                }
                self.pending
                    .push_back(ws::close_frame(code.code(), code.reason()).freeze());
                let _ = tokio::time::timeout(CLOSE_WAIT, self.close_handshake()).await;
            }
        }
    }

    /// Writes the whole batch, waiting for the socket. `true` when all was written.
    async fn flush_all(&mut self) -> bool {
        loop {
            match write_pending(&self.stream, &mut self.pending, &self.shared) {
                Ok(true) => return true,
                Ok(false) => {
                    if self.stream.writable().await.is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Writes the batch that ends with our close frame while reading and discarding what
    /// the peer still sends (a peer blocked writing to us may not read our close
    /// otherwise), until the peer's close frame or EOF, or [`CLOSE_DISCARD_BYTES`]. The
    /// caller bounds the time.
    async fn close_handshake(&mut self) {
        self.reader.close();
        let mut discarded = 0;
        let mut eof = false;
        loop {
            let Ok(written) = write_pending(&self.stream, &mut self.pending, &self.shared) else {
                return;
            };
            if written && (eof || self.reader.peer_closed()) {
                return;
            }
            let read = !eof && !self.reader.peer_closed();
            tokio::select! {
                ready = std::future::poll_fn(|cx| self.stream.poll_read_ready(cx)), if read => {
                    if ready.is_err() {
                        return;
                    }
                    // The worker's scratch buffer: nothing of this lives across an await.
                    let got = SCRATCH.with(|scratch| {
                        let mut scratch = scratch.borrow_mut();
                        let n = self.stream.try_read(&mut scratch[..])?;
                        // Discarding: nothing is delivered or kept.
                        let _ = self.reader.feed(&mut scratch[..n], &mut |_| {});
                        Ok::<_, io::Error>(n)
                    });
                    match got {
                        Ok(0) => eof = true,
                        Ok(n) => discarded += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                    if discarded > CLOSE_DISCARD_BYTES {
                        return;
                    }
                }
                ready = std::future::poll_fn(|cx| self.stream.poll_write_ready(cx)), if !written => {
                    if ready.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Where [`Connection::process`] takes its bytes from.
enum Source<'a> {
    /// Freshly read (unmasked in place).
    Read(&'a mut [u8]),
    /// What the reader kept of an earlier read.
    Backlog,
}

/// What [`Connection::forward`] did.
enum Forwarded {
    /// Everything was handed over (or the connection must end).
    Done(Option<End>),
    /// The hub task's queue is full: wait for room.
    Wait(std::pin::Pin<Box<dyn Future<Output = Option<End>> + Send>>),
}

/// Awaited in place (no `async fn` around it): ready at once when all was handed over.
impl Future for Forwarded {
    type Output = Option<End>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<End>> {
        match &mut *self {
            Self::Done(end) => std::task::Poll::Ready(end.take()),
            Self::Wait(future) => future.as_mut().poll(cx),
        }
    }
}

/// Waits for room in the hub task's queue (backpressure on this client).
async fn forward_slowly(
    events: mpsc::Sender<ConnEvent>,
    first: ConnEvent,
    rest: std::vec::IntoIter<ConnEvent>,
) -> Option<End> {
    if events.send(first).await.is_err() {
        return Some(shutting_down());
    }
    for input in rest {
        if events.send(input).await.is_err() {
            return Some(shutting_down());
        }
    }
    None
}

fn shutting_down() -> End {
    let request = CloseRequest {
        code: CloseCode::GoingAway,
        flush: true,
    };
    End::Close {
        request,
        why: CloseReason::Shutdown,
    }
}

/// The end for a close the hub task (or the outbox bound) asked for.
fn end_for(request: CloseRequest) -> End {
    let why = if request.code == CloseCode::SlowConsumer {
        CloseReason::SlowConsumer
    } else {
        CloseReason::Hub
    };
    End::Close { request, why }
}

/// Decodes a text message for the hub task, taking its token out of the frame (the hub
/// task puts it in the credential store, so that the Hub's releases and new holds are
/// applied in one order).
fn decode(text: &str, conn: ConnId, shared: &Shared) -> ConnEvent {
    match wire::decode(text, &shared.limits) {
        Ok(mut frame) => {
            shared.metrics.frame_in(Some(frame.message.kind()));
            // A ticket is the more specific credential; both are taken out of the frame.
            let ticket = frame
                .message
                .take_ticket()
                .filter(|t| !t.expose().is_empty())
                .map(|ticket| Credential::new(ticket, AuthScheme::Ticket));
            let token = frame
                .message
                .take_token()
                .filter(|t| !t.expose().is_empty())
                .map(|token| Credential::new(token, shared.frame_scheme.clone()));
            let credential = ticket.or(token);
            ConnEvent::Frame {
                conn,
                frame,
                credential,
            }
        }
        Err(error) => {
            shared.metrics.frame_in(None);
            ConnEvent::Input(Input::Invalid { conn, error })
        }
    }
}

/// The close code a framing violation is answered with (RFC 6455 §7.4.1).
fn close_code(e: FrameError) -> CloseCode {
    match e {
        FrameError::TooBig => CloseCode::TooBig,
        FrameError::InvalidUtf8 => CloseCode::InvalidPayload,
        _ => CloseCode::ProtocolError,
    }
}

/// One vectored write per call, repeated while the socket takes everything. `Ok(true)`:
/// the batch is fully written; `Ok(false)`: the socket is full.
fn write_pending(
    stream: &TcpStream,
    pending: &mut VecDeque<Bytes>,
    shared: &Shared,
) -> io::Result<bool> {
    while !pending.is_empty() {
        let mut iov = [IoSlice::new(&[]); IOV_MAX];
        let mut n = 0;
        for (slot, chunk) in iov.iter_mut().zip(pending.iter()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        let written = match stream.try_write_vectored(&iov[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        shared.metrics.writes.fetch_add(1, Relaxed);
        shared
            .metrics
            .bytes_written
            .fetch_add(written as u64, Relaxed);
        consume(pending, written);
    }
    // Free the batch's buffer: an idle connection holds nothing.
    *pending = VecDeque::new();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns (a future's size, without making one).
    fn returned_size<A, B, C, R>(_f: impl FnOnce(A, B, C) -> R) -> usize {
        size_of::<R>()
    }

    /// Every connection's task holds this future: tokio's task cell is it plus about 100
    /// bytes, rounded up to 128. At most 528 keeps the cell at 640 bytes (it was 1,152
    /// with `run` an `async fn` and a `Notified` in the loop: issue 22's idle goal).
    #[test]
    fn the_connection_future_stays_small() {
        let size = returned_size(Connection::run::<crate::server::Slot>);
        assert!(size <= 528, "Connection::run's future is {size} bytes");
    }
}
