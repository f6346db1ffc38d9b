//! The Hub: a sans-IO state machine for connections, identities, threads, presence,
//! typing, calls, acks and idempotency.
//!
//! # Contract
//!
//! The Hub is driven like quinn-proto or str0m. Its methods fall in four kinds:
//!
//! - **inputs**: [`Hub::handle`]`(now, input)` and [`Hub::handle_timeout`]`(now)`;
//! - **outputs**: [`Hub::poll_output`] (frames to deliver, connections to close, site
//!   requests, coordination requests, broker publications) and [`Hub::poll_timeout`];
//! - **getters**: [`Hub::stats`], [`Hub::is_online`], [`Hub::node_id_conflict`],
//!   [`Hub::next_timeout_reason`];
//! - nothing else: no method does I/O, reads a clock or blocks.
//!
//! After every `handle*` call, drain `poll_output()` until it returns `None`, then read
//! `poll_timeout()` and call `handle_timeout(now)` no later than that instant. A spurious
//! early `handle_timeout` is a no-op. `now` must never go backwards.
//!
//! Every [`Output::Api`] and [`Output::Coord`] must be answered by exactly one
//! [`Input::ApiResult`] / [`Input::CoordResult`] with the same id (timeouts and shutdown
//! included: answer with an error).
//!
//! ```no_run
//! # use std::time::Instant;
//! # use bbrt_protocol::hub::{Hub, HubConfig, Input, Output};
//! # fn next_input() -> Input { unimplemented!() }
//! let mut hub = Hub::new(HubConfig::default());
//! loop {
//!     // Wait for the next input or for `hub.poll_timeout()`, whichever comes first.
//!     hub.handle(Instant::now(), next_input());
//!     hub.handle_timeout(Instant::now());
//!     while let Some(output) = hub.poll_output() {
//!         match output {
//!             Output::Send { conns, frame } => { /* write `frame` to each connection */ }
//!             Output::Close { conn, code } => { /* close with `code.code()` */ }
//!             Output::Api { id, request } => { /* call the site; answer Input::ApiResult */ }
//!             Output::Coord { id, request } => { /* answer Input::CoordResult */ }
//!             Output::Publish(message) => { /* to the broker */ }
//!             _ => {}
//!         }
//!     }
//! }
//! ```
//!
//! # Routing rules
//!
//! - **Identity.** A connection is anonymous until a credential (from the upgrade, a
//!   `user_connected`, or a `send_message` as the seed's React example does) is verified by
//!   the site. While verification is in flight, later frames of that connection wait in
//!   order (bounded by [`HubConfig::max_queued_per_conn`]) and are then replayed, or each
//!   answered with an error carrying its `requestId`. `userId`/`senderId` in frames are never
//!   trusted. A connection acts with one credential, the last one the site verified on it;
//!   the one it replaces, and any the connection no longer needs, leave as
//!   [`Output::ReleaseCredential`]. Credentials are re-verified every
//!   [`HubConfig::credential_ttl`]; one the site refuses closes the connections acting with
//!   it with close code 4001. An upgrade credential the site could not verify (it was down)
//!   is kept and verified again with a jittered backoff, one request per credential; its
//!   connection's frames get a retryable `site_unavailable` meanwhile.
//! - **Recipients.** `message` goes to every connection of every participant, the sending
//!   connection included; `typing` to every connection of the other participants; `read` to
//!   every connection of every participant; `user_connected`/`user_disconnected` by
//!   [`PresenceScope`]. Under scope `threads`, the connections that joined a thread also
//!   hear where a participant added to it later stands (`user_connected` or
//!   `user_disconnected`), as `joined` would have told them.
//! - **Participants** are cached per thread for [`HubConfig::participants_ttl`], refreshed by
//!   every join and every stored message; typing, calls and `mark_read` wait for the site
//!   only when the cache is cold. A thread no local connection joined is forgotten once its
//!   entry is older than the TTL.
//! - **Sends** are stored through the site first and delivered after; `ack` only when the
//!   client asked (a `requestId` or `clientMessageId`); sends are serialized per (user,
//!   thread); a `clientMessageId` is claimed through coordination, so a duplicate never
//!   causes a second site call (a duplicate while the first is in flight waits for it), and
//!   the same id with other parameters is `idempotency_conflict`. A send whose outcome is
//!   unknown is `send_unconfirmed`, its claim is kept as unconfirmed, and a retry asks the
//!   site to look for it before posting (`ApiRequest::Send::unconfirmed_since`).
//! - **Typing** is forwarded at most once per (user, thread) every
//!   [`HubConfig::typing_interval`] and expires after [`HubConfig::typing_expiry`].
//! - **Calls** follow the lifecycle in `calls`: ring every device, first accept wins,
//!   answered elsewhere, reject, cancel, timeout, busy, glare, renegotiation, disconnect
//!   grace. A new call always gets the server's `<node>-<counter>` id: call ids are keys in
//!   every node's replica, and ids chosen by clients collide across nodes (a `callId` the
//!   client made up still finds its call through the pair of users). One connection's
//!   frames are relayed in the order sent: while an `answer` or `call_accepted` waits for
//!   its claim, the connection's later frames wait behind it (counted against
//!   [`HubConfig::max_queued_per_conn`]) and are then handled in order, each with its own
//!   answer.
//! - **Every frame that carries a `requestId` gets exactly one answer**: `ack`, `joined`,
//!   `pong` or `error`.
//!
//! # Several nodes
//!
//! The Hub owns its local connections and learns about remote ones only through
//! [`Input::Broker`]: presence, call state, and frames to deliver to local connections of
//! given users. Everything it publishes carries its node id and its process's
//! [`HubConfig::instance`], and a Hub ignores the publications of its own instance, so
//! nothing is delivered twice. Another process publishing with the same node id (a
//! misconfiguration) is still heard, and reported through [`Hub::node_id_conflict`]; its
//! call events are not applied, since call ids and devices are named by node id. Coordination that must be global
//! (idempotency keys, first accept wins) leaves as [`Output::Coord`].
//!
//! Nodes also replicate what they learn of a thread's participants (so typing, read and
//! presence on one node see a join made on another) and that a call lost a bound device
//! (so its user may resume it from any node within the grace). After
//! [`Input::NodeDown`], publications from that node are ignored until it announces itself
//! again with a sync request or a presence snapshot: a late one would resurrect its users
//! and calls. Call replicas stop ringing on their own a grace after the ring timeout, in
//! case the owner's end was lost.

mod api_results;
mod broker;
mod calls;
mod config;
mod directory;
mod dispatch;
mod effects;
mod ice;
mod identity;
mod input;
mod messages;
mod ordering;
mod output;
mod presence;
mod presence_grace;
mod recovery;
mod sequencing;
mod site_events;
mod stats;
mod threads;
mod timer;
mod typing;
pub(crate) mod window;

use crate::hash::IdMap;
use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;

use self::api_results::site_error_code;
pub use self::broker::{
    BrokerEvent, BrokerMessage, CallSnapshot, CoordRequest, CoordResponse, NodeIdConflict,
    SendFingerprint, SendOutcome, SendReceipt, Sequenced, SequencedParts,
};
use self::calls::Calls;
pub use self::config::{HubConfig, PresenceScope};
use self::directory::Directory;
use self::effects::Effects;
use self::identity::Identity;
pub use self::input::Input;
use self::messages::Sends;
pub use self::output::{IcePurpose, Output};
pub use self::stats::HubStats;
use self::threads::ThreadCache;
pub use self::timer::TimeoutReason;
use self::timer::TimerKey;
use self::typing::Typing;
pub use self::window::{ENTRY_OVERHEAD, WindowEntry, WindowRead};
use crate::api::{ApiRequest, SiteError};
use crate::ids::{ApiRequestId, ConnId, CoordRequestId, CredentialId, NodeId, ThreadId, UserId};
use crate::wire::{
    Ack, ClientFrame, CloseCode, DecodeError, ErrorCode, ErrorEvent, RequestId, ServerMessage,
};

/// A frame waiting on its connection behind a site request.
#[derive(Debug, Clone)]
struct Queued {
    frame: ClientFrame,
    credential: Option<CredentialId>,
}

/// What the credential check leaves of a frame.
#[derive(Debug)]
enum Gate {
    /// Go on with it.
    Pass(Queued),
    /// It was answered (an error).
    Answered,
    /// It waits for the site to verify its credential.
    Waits(Queued),
}

/// What an in-flight site request was for.
#[derive(Debug)]
enum PendingApi {
    Verify(identity::PendingVerify),
    /// A retry of upgrade credentials the site could not verify.
    VerifyRetry(CredentialId),
    Participants {
        user: UserId,
        thread: ThreadId,
        join: bool,
    },
    Send(messages::LaneKey),
    MarkRead {
        conn: ConnId,
        request_id: Option<RequestId>,
        user: UserId,
        thread: ThreadId,
    },
    /// A page of a site catch-up (`recovery`).
    History(u64),
}

/// What an in-flight coordination request was for.
#[derive(Debug)]
enum PendingCoord {
    ClaimSend(messages::IdemKey),
    ClaimAnswer(calls::PendingAnswer),
    /// A message waiting for its position (`sequencing`).
    Sequence(Box<sequencing::Outgoing>),
    /// A resume waiting for the thread's shared window (`recovery`).
    ReadWindow(ConnId, ThreadId),
    /// A gap in a thread's live delivery, filled from its shared window (`sequencing`).
    FillGap(ThreadId),
    Ignore,
}

/// The routing state machine. See the [module docs](self) for the contract.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    /// Connections and users, here and on the other nodes.
    dir: Directory,
    threads: ThreadCache,
    /// Nodes reported down: their late publications are ignored until they announce
    /// themselves again (a sync request or a presence snapshot).
    down_nodes: BTreeSet<NodeId>,
    /// The latest other process heard publishing with this node's id.
    node_id_conflict: Option<NodeIdConflict>,
    identity: Identity,
    api_pending: IdMap<ApiRequestId, PendingApi>,
    coord_pending: IdMap<CoordRequestId, PendingCoord>,
    next_api: u64,
    next_coord: u64,
    sends: Sends,
    typing: Typing,
    calls: Calls,
    site_events: site_events::SiteEvents,
    recovery: recovery::Recovery,
    lingering: presence_grace::Lingering,
    /// Outputs, timers and counters: the sink every subsystem writes to.
    fx: Effects,
}

impl Hub {
    /// A Hub with no connections.
    pub fn new(config: HubConfig) -> Self {
        let calls = Calls::new(config.node_id.clone());
        let fx = Effects::new(config.cluster, &config.node_id, &config.instance);
        let threads = ThreadCache::new(config.participants_ttl);
        let identity = Identity::new(&config);
        let recovery = recovery::Recovery::new(&config);
        Self {
            config,
            dir: Directory::default(),
            threads,
            down_nodes: BTreeSet::new(),
            node_id_conflict: None,
            identity,
            api_pending: IdMap::default(),
            coord_pending: IdMap::default(),
            next_api: 0,
            next_coord: 0,
            sends: Sends::default(),
            typing: Typing::default(),
            calls,
            site_events: site_events::SiteEvents::default(),
            recovery,
            lingering: presence_grace::Lingering::default(),
            fx,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Processes one input. Drain [`Hub::poll_output`] afterwards.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Open {
                conn,
                ip,
                credential,
            } => self.open(now, conn, ip, credential),
            Input::Frame {
                conn,
                frame,
                credential,
            } => self.frame(now, conn, frame, credential),
            Input::Invalid { conn, error } => self.invalid(now, conn, &error),
            Input::Close { conn } => self.close(now, conn),
            Input::ApiResult { id, result } => self.api_result(now, id, result),
            Input::CoordResult { id, result } => self.coord_result(now, id, result),
            Input::Broker(message) => self.broker(now, message),
            Input::NodeDown { node } => self.node_down(&node),
            Input::SiteReachable => self.site_reachable(now),
            Input::Resync => self.resync(),
            Input::PresenceSnapshot => self.presence_snapshot(),
            Input::SiteEvent(event) => self.site_event(now, event),
            Input::SiteCommand(command) => self.site_command(now, command),
        }
    }

    /// Fires every timer due at `now`. Calling it early is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(key) = self.fx.timers.pop_due(now) {
            match key {
                TimerKey::TypingExpiry(user, thread) => self.typing_expired(user, thread),
                TimerKey::CallRing(call) => self.call_ring_timeout(&call),
                TimerKey::CallGrace(call) => self.call_grace_expired(&call),
                TimerKey::Reverify(credential) => self.reverify(credential),
                TimerKey::VerifyRetry(credential) => self.retry_verify(credential),
                TimerKey::IdempotencyExpiry(user, cmid) => self.sends.forget_done(&(user, cmid)),
                TimerKey::CacheSweep => self.sweep_cache(now),
                TimerKey::PresenceGrace(user) => self.presence_grace_expired(&user),
                TimerKey::OrderWait(thread) => self.order_wait_over(&thread),
                TimerKey::ReplayDedup(conn, thread) => self.replay_dedup_over(conn, &thread),
            }
        }
    }

    /// The next thing for the driver to do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.fx.outputs.pop_front()
    }

    /// When [`Hub::handle_timeout`] must be called next, if ever. Changes only after a
    /// `handle*` call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fx.timers.next()
    }

    /// Why [`Hub::poll_timeout`] is what it is (for debugging).
    pub fn next_timeout_reason(&self) -> Option<TimeoutReason> {
        self.fx.timers.next_key().map(TimerKey::reason)
    }

    /// Whether `user` has a verified connection on any node.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.dir.is_online(user) || self.is_lingering(user)
    }

    /// Every user online on any node, ascending.
    #[cfg(test)]
    pub(crate) fn online_users(&self) -> Vec<UserId> {
        self.dir.online_users()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> HubStats {
        HubStats {
            anonymous_connections: self.dir.anonymous_count(),
            verified_connections: self.dir.verified_count(),
            local_users_online: self.dir.local_user_count(),
            users_online: self.dir.online_count(),
            calls: self.calls.len(),
            api_in_flight: self.api_pending.len(),
            cached_threads: self.threads.len(),
            window_threads: self.recovery.windows.len(),
            window_bytes: self.recovery.windows.bytes(),
            site_catchups_in_flight: self.recovery.running(),
            ..self.fx.stats.clone()
        }
    }

    /// Whether `conn` is a live connection the Hub knows.
    #[cfg(test)]
    pub(crate) fn has_conn(&self, conn: ConnId) -> bool {
        self.dir.contains(conn)
    }

    /// The user `conn` is verified as, if any.
    #[cfg(test)]
    pub(crate) fn user_of(&self, conn: ConnId) -> Option<&UserId> {
        self.dir.user_of(conn)
    }

    // ----- connections -----

    fn open(&mut self, now: Instant, conn: ConnId, ip: IpAddr, credential: Option<CredentialId>) {
        let held = credential.into_iter().collect();
        if !self.dir.open(now, conn, ip, held, self.config.frame_burst) {
            return;
        }
        self.evict_anonymous(now, ip);
        if let Some(credential) = credential
            && self.dir.contains(conn)
        {
            self.verify_upgrade(conn, credential);
        }
    }

    /// Evicts the oldest anonymous connections beyond the per-IP and total caps.
    fn evict_anonymous(&mut self, now: Instant, ip: IpAddr) {
        let (per_ip, total) = (
            self.config.max_anonymous_per_ip,
            self.config.max_anonymous_total,
        );
        while let Some(victim) = self.dir.eviction_victim(ip, per_ip, total) {
            self.fx.stats.anonymous_evicted += 1;
            self.close_with(now, victim, CloseCode::AnonymousEvicted);
        }
    }

    /// Closes `conn` from the Hub's side: forget it now, tell the driver to close.
    fn close_with(&mut self, now: Instant, conn: ConnId, code: CloseCode) {
        if self.dir.contains(conn) {
            self.forget_conn(now, conn);
            self.fx.outputs.push_back(Output::Close { conn, code });
        }
    }

    fn close(&mut self, now: Instant, conn: ConnId) {
        if self.dir.contains(conn) {
            self.forget_conn(now, conn);
        }
    }

    fn forget_conn(&mut self, now: Instant, conn: ConnId) {
        let Some(departed) = self.dir.remove(conn) else {
            return;
        };
        let c = departed.conn;
        self.threads.conn_gone(conn, &c.joined);
        self.recovery_conn_gone(conn);
        // The driver releases what the connection held when it ends.
        if let Some(credential) = c.credential {
            self.detach_credential(conn, credential);
        }
        if let Some(credential) = c.unverified_upgrade {
            self.leave_verify_retry(conn, credential);
        }
        self.calls_conn_closed(now, conn, c.user());
        if departed.last
            && let Some(user) = c.user()
        {
            self.typing_user_gone(user);
            self.user_went_away(now, user);
        }
    }

    // ----- frames -----

    fn frame(
        &mut self,
        now: Instant,
        conn: ConnId,
        frame: ClientFrame,
        credential: Option<CredentialId>,
    ) {
        if let Some(credential) = credential
            && let Some(c) = self.dir.get_mut(conn)
        {
            c.held.insert(credential);
        }
        if !self.admit_frame(now, conn, frame.request_id.as_ref()) {
            self.release_if_unused(conn, credential);
            return;
        }
        self.enqueue(now, conn, Queued { frame, credential });
    }

    fn invalid(&mut self, now: Instant, conn: ConnId, error: &DecodeError) {
        if !self.admit_frame(now, conn, error.request_id.as_ref()) {
            return;
        }
        self.send_one(conn, &ServerMessage::Error(error.to_event()));
    }

    /// The frame-rate limit: `true` if the frame may be processed.
    fn admit_frame(&mut self, now: Instant, conn: ConnId, request_id: Option<&RequestId>) -> bool {
        let (rate, burst, close_after) = (
            self.config.frame_rate,
            self.config.frame_burst,
            self.config.close_after_violations,
        );
        let Some(c) = self.dir.get_mut(conn) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(c.last_refill).as_secs_f64();
        c.tokens = (c.tokens + elapsed * rate).min(burst);
        c.last_refill = now;
        if c.tokens >= 1.0 {
            c.tokens -= 1.0;
            c.violations = 0;
            return true;
        }
        c.violations += 1;
        self.fx.stats.rate_limited += 1;
        if c.violations > close_after {
            self.close_with(now, conn, CloseCode::RateLimited);
        } else {
            self.error(
                conn,
                ErrorCode::RateLimited,
                ErrorCode::RateLimited.message(),
                request_id.cloned(),
            );
        }
        false
    }

    fn enqueue(&mut self, now: Instant, conn: ConnId, item: Queued) {
        let max = self.config.max_queued_per_conn;
        let Some(c) = self.dir.get_mut(conn) else {
            return;
        };
        if c.blocked {
            let waiting = c.queue.len() - usize::from(c.front_blocked);
            if waiting >= max {
                let request_id = item.frame.request_id.clone();
                self.error(
                    conn,
                    ErrorCode::QueueFull,
                    ErrorCode::QueueFull.message(),
                    request_id,
                );
                self.release_if_unused(conn, item.credential);
            } else {
                self.hold_queued(conn, &item);
                if let Some(c) = self.dir.get_mut(conn) {
                    c.queue.push_back(item);
                }
            }
            return;
        }
        if c.queue.is_empty() {
            // The common case, nothing waiting: the frame is handled at once, and the
            // queue allocates nothing (a connection that never waits never holds one).
            self.dispatch_or_wait(now, conn, item);
            return;
        }
        c.queue.push_back(item);
        self.drain(now, conn);
    }

    /// Processes queued frames of `conn` until one blocks on the site or none is left.
    fn drain(&mut self, now: Instant, conn: ConnId) {
        loop {
            let Some(c) = self.dir.get_mut(conn) else {
                return;
            };
            if c.blocked {
                return;
            }
            let Some(item) = c.queue.pop_front() else {
                // Drained after a wait: give the queue's allocation back (about 540 bytes
                // per connection that identified and joined through the site).
                c.queue = VecDeque::new();
                return;
            };
            if self.dispatch_or_wait(now, conn, item) {
                return;
            }
        }
    }

    /// Handles one frame of `conn`; if it must wait for a site answer, puts it back in
    /// front of the queue and blocks it. Whether it waits.
    fn dispatch_or_wait(&mut self, now: Instant, conn: ConnId, item: Queued) -> bool {
        let credential = item.credential;
        if let Some(blocked) = self.dispatch(now, conn, item) {
            if let Some(c) = self.dir.get_mut(conn) {
                c.queue.push_front(blocked);
                c.blocked = true;
                c.front_blocked = true;
            }
            return true;
        }
        self.release_if_unused(conn, credential);
        false
    }

    /// Holds `conn`'s later frames behind a request the frame that made it no longer needs
    /// replayed (an answer's claim): they queue, counted against the limit, until
    /// [`Hub::unblock`] replays them in the order sent.
    fn hold_queue(&mut self, conn: ConnId) {
        if let Some(c) = self.dir.get_mut(conn) {
            c.blocked = true;
        }
    }

    /// Unblocks `conn` and replays its queue.
    fn unblock(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.dir.get_mut(conn) {
            c.blocked = false;
            c.front_blocked = false;
        }
        self.drain(now, conn);
    }

    /// Unblocks `conn` after answering its blocked front frame with an error.
    fn fail_blocked(&mut self, now: Instant, conn: ConnId, code: ErrorCode, message: &str) {
        let Some(c) = self.dir.get_mut(conn) else {
            return;
        };
        c.blocked = false;
        let had_front = std::mem::take(&mut c.front_blocked);
        if had_front
            && let Some(item) = c.queue.pop_front()
            && let Some(item) = self.resume_front_failed(conn, item, code)
        {
            self.error(conn, code, message, item.frame.request_id);
            self.release_if_unused(conn, item.credential);
        }
        self.drain(now, conn);
    }

    /// The `requestId` of the frame `conn` waits on, if a frame (not the upgrade) blocked.
    fn blocked_request_id(&self, conn: ConnId) -> Option<RequestId> {
        let c = self.dir.get(conn)?;
        if !c.front_blocked {
            return None;
        }
        c.queue.front()?.frame.request_id.clone()
    }

    fn next_api_id(&mut self) -> ApiRequestId {
        self.next_api += 1;
        ApiRequestId(self.next_api)
    }

    fn api(&mut self, request: ApiRequest, pending: PendingApi) -> ApiRequestId {
        let id = self.next_api_id();
        self.api_pending.insert(id, pending);
        self.fx.outputs.push_back(Output::Api { id, request });
        id
    }

    fn coord(&mut self, request: CoordRequest, pending: PendingCoord) {
        self.next_coord += 1;
        let id = CoordRequestId(self.next_coord);
        self.coord_pending.insert(id, pending);
        self.fx.outputs.push_back(Output::Coord { id, request });
    }

    fn publish(&mut self, event: BrokerEvent) {
        self.fx.publish(event);
    }

    /// Sends an encoded frame to `conns` (sorted, deduplicated, live only).
    fn deliver(&mut self, mut conns: Vec<ConnId>, frame: Bytes) {
        conns.retain(|c| self.dir.contains(*c));
        self.fx.send(conns, frame);
    }

    fn send_one(&mut self, conn: ConnId, message: &ServerMessage) {
        self.deliver(vec![conn], message.encode());
    }

    fn error(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        message: &str,
        request_id: Option<RequestId>,
    ) {
        self.send_one(
            conn,
            &ServerMessage::Error(ErrorEvent::new(code, message, request_id)),
        );
    }

    /// Answers with the fixed text of the error's code: the site's own text never reaches
    /// a client (the executor logs it).
    fn site_error(&mut self, conn: ConnId, error: &SiteError, request_id: Option<RequestId>) {
        let code = site_error_code(error);
        self.error(conn, code, code.message(), request_id);
    }

    /// Sends `ack` if the client asked for one.
    fn ack_if_asked(&mut self, conn: ConnId, request_id: Option<RequestId>, ack: Ack) {
        if request_id.is_some() || ack.client_message_id.is_some() {
            self.send_one(conn, &ServerMessage::Ack(Ack { request_id, ..ack }));
        }
    }

    /// Acknowledges a frame about `thread`, if the client asked.
    fn ack_thread(&mut self, conn: ConnId, request_id: Option<RequestId>, thread: ThreadId) {
        let ack = Ack {
            thread_id: Some(thread),
            ..Ack::default()
        };
        self.ack_if_asked(conn, request_id, ack);
    }

    /// Every live local connection of `users`, ascending per user.
    fn conns_of<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) -> Vec<ConnId> {
        self.dir.conns_of(users)
    }
}

#[cfg(test)]
mod tests;
