//! Reconnect recovery: a client that comes back gets what it missed, from the window or
//! from the site, then live delivery with no gap (`docs/protocol.md`, "Recovery").
//!
//! - **Positions.** On one node the window is the position authority: every `message` gets
//!   the thread's next offset in the window's epoch. Scaled out, the coordinator is
//!   (`sequencing`): it keeps each thread's counter and window for every node (Redis), and
//!   every node delivers a thread's messages in position order (`ordering`).
//! - **Window first.** A resume point the window reaches is answered from the frames as
//!   they were delivered, in delivery order, with no site request. On one node at once, and
//!   nothing can arrive in between (the Hub handles one input at a time). Scaled out the
//!   join waits for a read of the shared window, live messages of the thread to that
//!   connection are held meanwhile, and for a while after the replay a live copy of a
//!   message it wrote (still in flight from another node) is not written again.
//! - **Then the site.** Past the window the user's own credential pages the thread's history
//!   backwards (`before` = the oldest date seen, inclusive; ids already seen dropped) until
//!   the resume point's message. While it does, live messages of that thread to that
//!   connection are held, and written after the replay, minus those it already held. A page
//!   all in one second cannot be paged past: the replay is then reported incomplete.
//!   Catch-ups in flight at once are bounded ([`HubConfig::max_site_catchups`]); more wait
//!   in order.
//!
//! [`HubConfig::max_site_catchups`]: super::HubConfig::max_site_catchups

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::ordering::Ordering;
use super::timer::TimerKey;
use super::window::{Lookup, WindowRead, Windows};
use super::{Hub, PendingApi, Queued};
use crate::api::{ApiRequest, HistoryPage, SiteError, SiteErrorKind, StoredMessage};
use crate::ids::{ConnId, MessageId, ThreadId, UserId};
use crate::wire::{
    Ack, ClientMessage, Epoch, ErrorCode, JoinThread, MessageEvent, Position, ReplaySource,
    RequestId, Resume, Resumed, ServerMessage,
};

/// Scaled out, how long a connection's replay remembers what it wrote, so that a live copy
/// still in flight from another node is not written a second time. Far longer than a
/// publication takes to cross, and than [`HubConfig::order_wait`](super::HubConfig::order_wait).
const REPLAY_DEDUP: std::time::Duration = std::time::Duration::from_secs(10);

/// Who is answered about a join: a `join_thread` (with its `requestId`), or one thread of a
/// `resume` (answered by `resumed` with a code).
#[derive(Debug, Clone)]
pub(super) enum Answer {
    Join(Option<RequestId>),
    Resume,
}

/// What a resume point resolves to.
#[derive(Debug)]
pub(super) enum Plan {
    /// No resume point: a plain join.
    Nothing,
    /// These messages, from the window.
    Window(Vec<(MessageId, Bytes)>),
    /// The site's history after this message.
    Site(MessageId),
    /// Too far behind: the client loads the thread itself.
    Reload,
    /// Scaled out: the thread's shared window must be read first.
    ReadShared,
    /// A bad resume point: refused with this code, and the thread is not joined.
    Fail(ErrorCode),
}

/// How a site catch-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Reached the resume point's message.
    Complete,
    /// A page all in one second: more may remain before it.
    Incomplete,
    /// More than the replay limit.
    Reload,
}

/// A site catch-up of one thread for one connection.
#[derive(Debug)]
struct CatchUp {
    conn: ConnId,
    user: UserId,
    thread: ThreadId,
    after: MessageId,
    /// The `before` of the next page.
    before: Option<String>,
    /// Messages after `after`, newest first.
    collected: Vec<StoredMessage>,
    seen: HashSet<MessageId>,
    /// Its connection ended while a page was in flight.
    cancelled: bool,
    /// Scaled out: the positions of the messages the shared window still held when it was
    /// read (the replay carries them, as on one node).
    positions: HashMap<MessageId, Position>,
}

/// Live `message` frames of one thread for one connection, held until its replay is
/// written: while the site's history is read, or while the join waits for the site to
/// confirm membership.
#[derive(Debug, Default)]
struct Hold {
    held: Vec<(MessageId, Bytes)>,
    /// More live frames came than may be held: the client must reload.
    overflow: bool,
}

/// The recovery state of a Hub: the windows and the site catch-ups.
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) windows: Windows,
    catchups: HashMap<u64, CatchUp>,
    by_target: HashMap<(ConnId, ThreadId), u64>,
    holds: HashMap<(ConnId, ThreadId), Hold>,
    /// The threads each connection has a hold in (every catch-up has one).
    of_conn: HashMap<ConnId, BTreeSet<ThreadId>>,
    /// Catch-ups waiting for a slot, oldest first (ids no longer in `catchups` are skipped).
    waiting: VecDeque<u64>,
    /// History requests in flight.
    running: usize,
    next: u64,
    /// Scaled out: the delivery order of each thread here.
    pub(super) ordering: Ordering,
    /// Scaled out: shared window reads answered, for the join that waits on them (`None`:
    /// the coordinator could not answer).
    reads: HashMap<(ConnId, ThreadId), Option<WindowRead>>,
    /// Scaled out: what each recent replay wrote, against live copies still in flight.
    replayed: HashMap<(ConnId, ThreadId), HashSet<MessageId>>,
    /// Scaled out: positions from a shared window read, for the site catch-up it led to.
    site_positions: HashMap<(ConnId, ThreadId), HashMap<MessageId, Position>>,
    /// Epochs proposed to the coordinator so far.
    epochs: u64,
}

impl Recovery {
    pub(super) fn new(config: &super::HubConfig) -> Self {
        Self {
            windows: Windows::new(
                config.instance.clone(),
                config.window_messages,
                config.window_bytes,
                config.window_threads,
            ),
            catchups: HashMap::new(),
            by_target: HashMap::new(),
            holds: HashMap::new(),
            of_conn: HashMap::new(),
            waiting: VecDeque::new(),
            running: 0,
            next: 0,
            ordering: Ordering::new(config.window_threads, config.max_replay),
            reads: HashMap::new(),
            replayed: HashMap::new(),
            site_positions: HashMap::new(),
            epochs: 0,
        }
    }

    /// A new epoch for the coordinator to start a thread's counter in, if it has none.
    pub(super) fn next_epoch(&mut self, instance: &crate::ids::InstanceId) -> Epoch {
        self.epochs += 1;
        super::sequencing::epoch_for(instance, self.epochs)
    }

    /// No catch-up, hold or request left (for leak checks in tests).
    #[cfg(test)]
    pub(super) fn is_idle(&self) -> bool {
        self.catchups.is_empty()
            && self.by_target.is_empty()
            && self.holds.is_empty()
            && self.of_conn.is_empty()
            && self.reads.is_empty()
            && self.site_positions.is_empty()
            && self.running == 0
    }

    /// History requests in flight.
    pub(super) fn running(&self) -> usize {
        self.running
    }

    fn remove(&mut self, id: u64) -> Option<CatchUp> {
        let c = self.catchups.remove(&id)?;
        self.by_target.remove(&(c.conn, c.thread.clone()));
        Some(c)
    }

    /// Holds live frames of `thread` for `conn` from now on (kept if already held).
    fn hold(&mut self, conn: ConnId, thread: &ThreadId) {
        self.holds.entry((conn, thread.clone())).or_default();
        self.of_conn.entry(conn).or_default().insert(thread.clone());
    }

    /// Ends the hold of `thread` for `conn`: what it held.
    fn take_hold(&mut self, conn: ConnId, thread: &ThreadId) -> Hold {
        if let Some(threads) = self.of_conn.get_mut(&conn) {
            threads.remove(thread);
            if threads.is_empty() {
                self.of_conn.remove(&conn);
            }
        }
        self.holds
            .remove(&(conn, thread.clone()))
            .unwrap_or_default()
    }
}

impl Hub {
    /// Delivers a `message` of `thread` to `conns`, holding it for those whose replay of
    /// the thread is still being fetched.
    pub(super) fn deliver_message(
        &mut self,
        mut conns: Vec<ConnId>,
        thread: &ThreadId,
        id: &MessageId,
        frame: Bytes,
    ) {
        if !self.recovery.replayed.is_empty() {
            let replayed = &self.recovery.replayed;
            conns.retain(|conn| {
                !replayed
                    .get(&(*conn, thread.clone()))
                    .is_some_and(|ids| ids.contains(id))
            });
        }
        if !self.recovery.holds.is_empty() {
            let max = self.config.max_replay;
            conns.retain(|conn| {
                let Some(hold) = self.recovery.holds.get_mut(&(*conn, thread.clone())) else {
                    return true;
                };
                if hold.held.len() < max {
                    hold.held.push((id.clone(), frame.clone()));
                } else {
                    hold.overflow = true;
                }
                false
            });
        }
        self.deliver(conns, frame);
    }

    /// Delivers a frame another node published: a `message` is held like a local one.
    /// Frames are looked into only while some replay is being fetched.
    pub(super) fn deliver_published(&mut self, conns: Vec<ConnId>, frame: Bytes) {
        if !self.recovery.holds.is_empty()
            && let Ok(ServerMessage::Message(m)) = ServerMessage::decode(&frame)
        {
            self.deliver_message(conns, &m.thread_id, &m.id, frame);
            return;
        }
        self.deliver(conns, frame);
    }

    /// `user` deleted `thread` for themselves: the window replays them nothing from before.
    pub(super) fn deleted_for_member(&mut self, thread: &ThreadId, user: &UserId) {
        if self.config.cluster {
            let request = super::CoordRequest::DeletedFor {
                thread: thread.clone(),
                user: user.clone(),
            };
            self.coord(request, super::PendingCoord::Ignore);
        } else {
            self.recovery.windows.deleted_for(thread, user);
        }
    }

    /// The thread's latest position, for `joined` and `resumed`. Scaled out, the latest
    /// this node delivered or read, if it has delivered or read any since it started.
    pub(super) fn latest_position(&mut self, thread: &ThreadId) -> Option<Position> {
        if self.config.cluster {
            return self.recovery.ordering.latest(thread);
        }
        Some(self.recovery.windows.start(thread))
    }

    /// What `user`'s resume point in `m` resolves to, once membership is confirmed.
    pub(super) fn resume_plan(&mut self, conn: ConnId, user: &UserId, m: &JoinThread) -> Plan {
        if self.config.cluster
            && !m.resumes()
            && self.recovery.ordering.latest(&m.thread_id).is_none()
        {
            // `joined` says where the thread stands, and this node does not know yet.
            return self.shared_plan(conn, m);
        }
        if !m.resumes() {
            return Plan::Nothing;
        }
        let thread = &m.thread_id;
        if self
            .recovery
            .by_target
            .contains_key(&(conn, thread.clone()))
        {
            return Plan::Fail(ErrorCode::ResumePending);
        }
        // Leaving a thread does not end its catch-up: without this, joining and leaving
        // threads in turn would queue catch-ups without end.
        let others = self
            .recovery
            .of_conn
            .get(&conn)
            .map_or(0, |held| held.len() - usize::from(held.contains(thread)));
        if others >= self.config.max_threads_per_conn {
            return Plan::Fail(ErrorCode::TooManyThreads);
        }
        if self.config.cluster {
            return self.shared_plan(conn, m);
        }
        let (windows, max) = (&self.recovery.windows, self.config.max_replay);
        plan_for(
            m,
            |since| windows.after_position(thread, user, since, max),
            |id| windows.after_message(thread, user, id, max),
        )
    }

    /// Scaled out: the plan from the thread's shared window, once read (a join without a
    /// resume point reads it too when this node does not know where the thread stands).
    fn shared_plan(&mut self, conn: ConnId, m: &JoinThread) -> Plan {
        let thread = &m.thread_id;
        let Some(read) = self.recovery.reads.remove(&(conn, thread.clone())) else {
            return Plan::ReadShared;
        };
        let max = self.config.max_replay;
        let Some(read) = read else {
            if !m.resumes() {
                return Plan::Nothing;
            }
            // The coordinator could not answer: the site still can, by message id.
            return match &m.since_message_id {
                Some(id) => Plan::Site(id.clone()),
                None => Plan::Reload,
            };
        };
        if let Some(latest) = read.latest() {
            self.recovery.ordering.observe(thread, &latest);
        }
        let plan = plan_for(
            m,
            |since| read.after_position(since, max),
            |id| read.after_message(id, max),
        );
        if let (Plan::Site(_), Some(epoch)) = (&plan, &read.epoch) {
            let positions = read
                .entries
                .into_iter()
                .map(|e| {
                    let position = Position {
                        offset: e.offset,
                        epoch: epoch.clone(),
                    };
                    (e.id, position)
                })
                .collect();
            self.recovery
                .site_positions
                .insert((conn, thread.clone()), positions);
        }
        plan
    }

    /// Scaled out: asks for `thread`'s shared window for `conn`'s join, which waits for it
    /// (live messages of the thread to `conn` with it).
    pub(super) fn read_shared(&mut self, conn: ConnId, user: &UserId, m: &JoinThread) {
        self.hold_for_join(conn, m);
        let request = super::CoordRequest::ReadWindow {
            thread: m.thread_id.clone(),
            user: Some(user.clone()),
            epoch: self.recovery.next_epoch(&self.config.instance),
        };
        self.coord(
            request,
            super::PendingCoord::ReadWindow(conn, m.thread_id.clone()),
        );
    }

    /// The shared window of `thread` for `conn`'s waiting join: it goes on.
    pub(super) fn read_window_result(
        &mut self,
        now: Instant,
        conn: ConnId,
        thread: ThreadId,
        result: super::CoordResponse,
    ) {
        if !self.dir.contains(conn) {
            return;
        }
        let read = match result {
            super::CoordResponse::Window(read) => Some(read),
            _ => None,
        };
        self.recovery.reads.insert((conn, thread), read);
        self.unblock(now, conn);
    }

    /// Scaled out: what a replay wrote to `conn` is not written again live for a while
    /// (another node's copy may still be on its way).
    fn remember_replayed(
        &mut self,
        now: Instant,
        conn: ConnId,
        thread: &ThreadId,
        written: HashSet<MessageId>,
    ) {
        if !self.config.cluster || written.is_empty() {
            return;
        }
        self.recovery
            .replayed
            .entry((conn, thread.clone()))
            .or_default()
            .extend(written);
        self.fx.timers.set(
            TimerKey::ReplayDedup(conn, thread.clone()),
            now + REPLAY_DEDUP,
        );
    }

    pub(super) fn replay_dedup_over(&mut self, conn: ConnId, thread: &ThreadId) {
        self.recovery.replayed.remove(&(conn, thread.clone()));
    }

    /// A join refused with `code`: an `error` for `join_thread`, a `resumed` for a thread
    /// of a `resume`.
    pub(super) fn join_refused(
        &mut self,
        conn: ConnId,
        thread: &ThreadId,
        answer: Answer,
        code: ErrorCode,
    ) {
        match answer {
            Answer::Join(request_id) => self.error(conn, code, code.message(), request_id),
            Answer::Resume => {
                self.send_resumed(conn, thread, ReplaySource::None, false, 0, Some(code))
            }
        }
        self.release_join_hold(conn, thread);
    }

    fn send_resumed(
        &mut self,
        conn: ConnId,
        thread: &ThreadId,
        source: ReplaySource,
        complete: bool,
        replayed: usize,
        code: Option<ErrorCode>,
    ) {
        let resumed = Resumed {
            thread_id: thread.clone(),
            source,
            complete,
            reload: source == ReplaySource::None && code.is_none(),
            replayed,
            position: self.latest_position(thread),
            code,
        };
        self.send_one(conn, &ServerMessage::Resumed(resumed));
    }

    /// Carries out `plan` for `conn`, which has just been sent `joined`.
    /// What was held while the join waited for the site (see [`Hub::hold_for_join`]) goes
    /// out after the replay, minus what the replay already wrote.
    pub(super) fn run_plan(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        thread: &ThreadId,
        plan: Plan,
    ) {
        if let Plan::Site(after) = plan {
            self.start_catchup(conn, user, thread, after);
            return;
        }
        let hold = self.recovery.take_hold(conn, thread);
        let mut written = HashSet::new();
        match plan {
            Plan::Window(entries) if !hold.overflow => {
                let replayed = entries.len();
                for (id, frame) in entries {
                    self.deliver(vec![conn], frame);
                    written.insert(id);
                }
                self.fx.stats.replays_window += 1;
                self.send_resumed(conn, thread, ReplaySource::Window, true, replayed, None);
            }
            Plan::Window(_) | Plan::Reload => {
                self.fx.stats.replays_reload += 1;
                self.send_resumed(conn, thread, ReplaySource::None, false, 0, None);
            }
            Plan::Nothing | Plan::Fail(_) | Plan::Site(_) | Plan::ReadShared => {}
        }
        self.flush_hold(conn, hold, &written);
        self.remember_replayed(now, conn, thread, written);
    }

    /// Writes the frames `hold` kept for `conn`, but those `written` already.
    fn flush_hold(&mut self, conn: ConnId, hold: Hold, written: &HashSet<MessageId>) {
        for (id, frame) in hold.held {
            if !written.contains(&id) {
                self.deliver(vec![conn], frame);
            }
        }
    }

    /// A join with a resume point waits for the site to confirm membership: live messages
    /// of the thread to `conn` wait with it, so none overtakes the replay.
    pub(super) fn hold_for_join(&mut self, conn: ConnId, m: &JoinThread) {
        if m.resumes() {
            self.recovery.hold(conn, &m.thread_id);
        }
    }

    /// A join or `resume` with resume points queued behind a frame that waits: its threads'
    /// live messages wait from now, as they would had it been read first (a live copy
    /// would otherwise come before the replay, then again in it).
    pub(super) fn hold_queued(&mut self, conn: ConnId, item: &Queued) {
        match &item.frame.message {
            ClientMessage::JoinThread(m) => self.hold_for_join(conn, m),
            ClientMessage::Resume(r) => {
                for m in &r.threads {
                    self.hold_for_join(conn, m);
                }
            }
            _ => {}
        }
    }

    /// The join of `thread` on `conn` did not go on (refused, or the site failed): what
    /// was held for it goes out, unless a catch-up of the thread owns the hold.
    pub(super) fn release_join_hold(&mut self, conn: ConnId, thread: &ThreadId) {
        if self
            .recovery
            .by_target
            .contains_key(&(conn, thread.clone()))
        {
            return;
        }
        let hold = self.recovery.take_hold(conn, thread);
        self.flush_hold(conn, hold, &HashSet::new());
    }

    fn start_catchup(&mut self, conn: ConnId, user: &UserId, thread: &ThreadId, after: MessageId) {
        let r = &mut self.recovery;
        let positions = r
            .site_positions
            .remove(&(conn, thread.clone()))
            .unwrap_or_default();
        r.next += 1;
        let id = r.next;
        r.catchups.insert(
            id,
            CatchUp {
                conn,
                user: user.clone(),
                thread: thread.clone(),
                after,
                before: None,
                collected: Vec::new(),
                seen: HashSet::new(),
                cancelled: false,
                positions,
            },
        );
        r.by_target.insert((conn, thread.clone()), id);
        r.hold(conn, thread);
        self.fx.stats.replays_site += 1;
        if r.running < self.config.max_site_catchups.max(1) {
            self.request_page(id);
        } else {
            r.waiting.push_back(id);
        }
    }

    /// Asks the site for the next page of catch-up `id` (a slot is taken).
    fn request_page(&mut self, id: u64) {
        let Some(c) = self.recovery.catchups.get(&id) else {
            return;
        };
        let request = ApiRequest::History {
            credential: self.conn_credential(c.conn),
            user: c.user.clone(),
            thread: c.thread.clone(),
            before: c.before.clone(),
        };
        self.recovery.running += 1;
        self.api(request, PendingApi::History(id));
    }

    /// A slot is free: the oldest waiting catch-up still wanted takes it.
    fn next_waiting(&mut self) {
        while self.recovery.running < self.config.max_site_catchups.max(1) {
            let Some(id) = self.recovery.waiting.pop_front() else {
                return;
            };
            if self.recovery.catchups.contains_key(&id) {
                self.request_page(id);
            }
        }
    }

    pub(super) fn history_result(
        &mut self,
        now: Instant,
        id: u64,
        result: Result<HistoryPage, SiteError>,
    ) {
        self.recovery.running = self.recovery.running.saturating_sub(1);
        let cancelled = self.recovery.catchups.get(&id).is_none_or(|c| c.cancelled);
        if cancelled {
            self.recovery.remove(id);
            self.next_waiting();
            return;
        }
        match result {
            Ok(page) => self.history_page(now, id, page),
            Err(error) => self.catchup_failed(now, id, &error),
        }
        self.next_waiting();
    }

    fn history_page(&mut self, now: Instant, id: u64, page: HistoryPage) {
        let max = self.config.max_replay;
        let Some(c) = self.recovery.catchups.get_mut(&id) else {
            return;
        };
        // The oldest date, inclusive: the rest of that second comes again, minus what was
        // seen. A full page all in one second cannot be paged past.
        let cursor = page.older_cursor().map(str::to_owned);
        let one_second = page.is_one_second();
        let last_page = cursor.is_none();
        let (mut found, mut fresh) = (false, 0);
        for m in page.messages.into_iter().rev() {
            if m.id == c.after {
                found = true;
                break;
            }
            if c.seen.insert(m.id.clone()) {
                fresh += 1;
                c.collected.push(m);
            }
        }
        let ending = if c.collected.len() > max {
            Some(Ending::Reload)
        } else if found {
            Some(Ending::Complete)
        } else if last_page {
            None
        } else if one_second || fresh == 0 {
            Some(Ending::Incomplete)
        } else {
            c.before = cursor;
            self.request_page(id);
            return;
        };
        match ending {
            Some(ending) => self.finish_catchup(now, id, ending),
            // The whole history as the user sees it, and not the message: not theirs to
            // resume from (or before their own deletion point).
            None => self.end_catchup(id, ErrorCode::PositionUnknown, true),
        }
    }

    fn catchup_failed(&mut self, now: Instant, id: u64, error: &SiteError) {
        match error.kind {
            SiteErrorKind::Forbidden => {
                if let Some(c) = self.recovery.catchups.get(&id) {
                    let (conn, user, thread) = (c.conn, c.user.clone(), c.thread.clone());
                    self.leave(conn, &thread);
                    self.deny(now, user, thread.clone());
                    self.threads.mark_stale(&thread);
                }
                self.end_catchup(id, ErrorCode::Forbidden, false);
            }
            SiteErrorKind::Unauthenticated => {
                if let Some(c) = self.recovery.catchups.get(&id)
                    && let Some(credential) = self.conn_credential(c.conn)
                {
                    self.revoke(now, credential);
                }
                self.end_catchup(id, ErrorCode::Unauthenticated, false);
            }
            _ => self.end_catchup(id, super::site_error_code(error), true),
        }
    }

    /// Ends catch-up `id` with nothing replayed: `resumed` with `code`, then the live
    /// frames held meanwhile if the user still may have them.
    fn end_catchup(&mut self, id: u64, code: ErrorCode, deliver_held: bool) {
        let Some(c) = self.recovery.remove(id) else {
            return;
        };
        let hold = self.recovery.take_hold(c.conn, &c.thread);
        self.send_resumed(c.conn, &c.thread, ReplaySource::None, false, 0, Some(code));
        if deliver_held {
            self.flush_hold(c.conn, hold, &HashSet::new());
        }
    }

    /// Writes the replay of catch-up `id`, then `resumed`, then the live frames it held.
    fn finish_catchup(&mut self, now: Instant, id: u64, ending: Ending) {
        let Some(c) = self.recovery.remove(id) else {
            return;
        };
        let hold = self.recovery.take_hold(c.conn, &c.thread);
        let mut replayed = 0;
        if ending != Ending::Reload {
            for m in c.collected.into_iter().rev() {
                let position = match c.positions.get(&m.id) {
                    Some(position) => Some(position.clone()),
                    None => self.recovery.windows.position_of(&c.thread, &m.id),
                };
                let frame = ServerMessage::Message(MessageEvent {
                    id: m.id,
                    thread_id: m.thread,
                    sender_id: m.sender,
                    message: m.text,
                    html: m.html,
                    sent_at: m.sent_at,
                    client_message_id: None,
                    unread: None,
                    position,
                })
                .encode();
                self.deliver(vec![c.conn], frame);
                replayed += 1;
            }
        }
        let (source, complete) = match ending {
            _ if hold.overflow => (ReplaySource::None, false),
            Ending::Reload => (ReplaySource::None, false),
            Ending::Complete => (ReplaySource::Site, true),
            Ending::Incomplete => (ReplaySource::Site, false),
        };
        if source == ReplaySource::None {
            self.fx.stats.replays_reload += 1;
        }
        self.send_resumed(c.conn, &c.thread, source, complete, replayed, None);
        let written = if ending == Ending::Reload {
            HashSet::new()
        } else {
            c.seen
        };
        self.flush_hold(c.conn, hold, &written);
        self.remember_replayed(now, c.conn, &c.thread, written);
    }

    /// `conn` ended: its holds and catch-ups go (one whose page is in flight keeps its slot
    /// until the answer).
    pub(super) fn recovery_conn_gone(&mut self, conn: ConnId) {
        // A join without a resume point reads the shared window without holding anything.
        if !self.recovery.reads.is_empty() {
            self.recovery.reads.retain(|(c, _), _| *c != conn);
        }
        if !self.recovery.replayed.is_empty() {
            self.recovery.replayed.retain(|(c, _), _| *c != conn);
        }
        if !self.recovery.site_positions.is_empty() {
            self.recovery.site_positions.retain(|(c, _), _| *c != conn);
        }
        let Some(threads) = self.recovery.of_conn.remove(&conn) else {
            return;
        };
        for thread in threads {
            self.recovery.holds.remove(&(conn, thread.clone()));
            let Some(id) = self.recovery.by_target.remove(&(conn, thread)) else {
                continue;
            };
            if self.recovery.waiting.contains(&id) {
                self.recovery.catchups.remove(&id);
            } else if let Some(c) = self.recovery.catchups.get_mut(&id) {
                c.cancelled = true;
            }
        }
    }

    /// `resume`: each thread joined as `join_thread` with its resume point, in order.
    /// Returns the threads still to do when one must wait for the site (the frame waits
    /// with them, and comes back here).
    pub(super) fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        mut resume: Resume,
        request_id: Option<RequestId>,
    ) -> Option<Resume> {
        let mut distinct = HashSet::new();
        resume
            .threads
            .retain(|t| distinct.insert(t.thread_id.clone()));
        let joined = self.dir.get(conn).map_or(0, |c| c.joined.len());
        let new = resume
            .threads
            .iter()
            .filter(|t| {
                !self
                    .dir
                    .get(conn)
                    .is_some_and(|c| c.joined.contains(&t.thread_id))
            })
            .count();
        if joined + new > self.config.max_threads_per_conn {
            let code = ErrorCode::TooManyThreads;
            self.error(conn, code, code.message(), request_id);
            return None;
        }
        // Every thread's live messages wait from now, not from its turn: while an earlier
        // thread waits (for the site, or for the shared window), a live copy of a later
        // thread's message would otherwise reach the connection before that thread's
        // replay, and then again in it.
        for m in &resume.threads {
            self.hold_for_join(conn, m);
        }
        while let Some(m) = resume.threads.first().cloned() {
            if self.join(now, conn, user, &m, Answer::Resume) {
                return Some(resume);
            }
            resume.threads.remove(0);
        }
        self.ack_if_asked(conn, request_id, Ack::default());
        None
    }

    /// The site could not confirm the first thread of a waiting `resume`: that thread is
    /// answered with `code`, the rest go on. Gives back a frame that is not a `resume`
    /// with threads left.
    pub(super) fn resume_front_failed(
        &mut self,
        conn: ConnId,
        mut item: Queued,
        code: ErrorCode,
    ) -> Option<Queued> {
        let ClientMessage::Resume(r) = &mut item.frame.message else {
            return Some(item);
        };
        if r.threads.is_empty() {
            return Some(item);
        }
        let first = r.threads.remove(0);
        self.join_refused(conn, &first.thread_id, Answer::Resume, code);
        if let Some(c) = self.dir.get_mut(conn) {
            c.queue.push_front(item);
        }
        None
    }
}

/// The plan for `m`'s resume point, from how a window answers it by position and by id
/// (this node's window, or a read of the shared one).
fn plan_for(
    m: &JoinThread,
    by_position: impl FnOnce(&Position) -> Lookup,
    by_id: impl FnOnce(&MessageId) -> Lookup,
) -> Plan {
    if let Some(since) = &m.since {
        match by_position(since) {
            Lookup::Replay(frames) => return Plan::Window(frames),
            Lookup::TooFar => return Plan::Reload,
            Lookup::Ahead => return Plan::Fail(ErrorCode::PositionAhead),
            Lookup::Missing if m.since_message_id.is_none() => return Plan::Reload,
            Lookup::OtherEpoch if m.since_message_id.is_none() => {
                return Plan::Fail(ErrorCode::PositionEpoch);
            }
            Lookup::Missing | Lookup::OtherEpoch => {}
        }
    }
    let Some(id) = &m.since_message_id else {
        return Plan::Nothing;
    };
    match by_id(id) {
        Lookup::Replay(frames) => Plan::Window(frames),
        Lookup::TooFar => Plan::Reload,
        _ => Plan::Site(id.clone()),
    }
}
