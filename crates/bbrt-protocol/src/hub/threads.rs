//! Threads: the participant cache, `join_thread`, `leave_thread`, and waiting for the site
//! when the cache is cold.
//!
//! The cache forgets: a thread no local connection joined is dropped once its entry is
//! older than the participants TTL (a sweep at most every quarter TTL, and at least a second
//! apart). Every node hears every participant change in the cluster, so without it every
//! node would keep every thread the cluster ever touched.

use crate::hash::IdMap;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::effects::Effects;
use super::recovery::{Answer, Plan};
use super::timer::TimerKey;
use super::{BrokerEvent, Hub, PendingApi};
use crate::api::{ApiRequest, SiteError, SiteErrorKind, ThreadInfo};
use crate::ids::{ConnId, MessageId, ThreadId, UserId};
use crate::wire::{ErrorCode, JoinThread, Joined, Participant, PresenceEvent, ServerMessage};

/// `denied` is swept of expired entries no more often than when it reaches this size.
const DENIED_SWEEP_MIN: usize = 1024;

/// The cache sweep runs at least this far apart (a TTL of zero must not make it spin).
const CACHE_SWEEP_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What the cache says about a user in a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    /// A participant, per a fresh cache.
    Member,
    /// Not a participant, per a fresh answer from the site.
    NotMember,
    /// Ask the site.
    Unknown,
}

/// A participant fetch: the user asking, the thread, and whether it is an explicit join.
pub(super) type FetchKey = (UserId, ThreadId, bool);

/// A thread's cached participants and this node's connections that joined it.
#[derive(Debug, Default)]
struct ThreadState {
    participants: BTreeSet<UserId>,
    /// When the participants were last confirmed by the site; `None` if never.
    fetched_at: Option<Instant>,
    last_message: Option<MessageId>,
    joiners: BTreeSet<ConnId>,
}

/// How a refresh changed a thread's participants (see [`ThreadCache::replace`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Refresh {
    /// The set changed, or was never known.
    pub(super) changed: bool,
    pub(super) added: Vec<UserId>,
    pub(super) removed: Vec<UserId>,
    /// The local connections that joined the thread.
    pub(super) joiners: Vec<ConnId>,
}

/// The participant cache: who is in each thread, the reverse index, the site's refusals
/// and the fetches in flight, with the connections waiting on them.
#[derive(Debug)]
pub(super) struct ThreadCache {
    ttl: Duration,
    by_thread: IdMap<ThreadId, ThreadState>,
    /// Reverse index of cached participants: the threads each user is known to be in.
    by_user: IdMap<UserId, BTreeSet<ThreadId>>,
    /// Participant fetches in flight, and the connections waiting on them.
    fetching: HashMap<FetchKey, BTreeSet<ConnId>>,
    /// The fetches each connection waits on, so its end leaves them without a scan of
    /// every fetch (a map apart from the connection, so an idle one pays nothing for it).
    fetches_of: IdMap<ConnId, BTreeSet<FetchKey>>,
    /// (user, thread) pairs the site said are not members, until when.
    denied: HashMap<(UserId, ThreadId), Instant>,
    /// `denied`'s size at which expired entries are swept next.
    denied_sweep_at: usize,
}

impl ThreadCache {
    /// An empty cache whose entries are fresh for `ttl`.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_thread: IdMap::default(),
            by_user: IdMap::default(),
            fetching: HashMap::new(),
            fetches_of: IdMap::default(),
            denied: HashMap::new(),
            denied_sweep_at: DENIED_SWEEP_MIN,
        }
    }

    /// Threads in the cache.
    pub(super) fn len(&self) -> usize {
        self.by_thread.len()
    }

    /// No thread, fetch or refusal left, and no index entry behind.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.by_thread.is_empty()
            && self.by_user.is_empty()
            && self.fetching.is_empty()
            && self.fetches_of.is_empty()
            && self.denied.is_empty()
    }

    /// How many refusals are remembered (expired ones included, until a sweep).
    #[cfg(test)]
    pub(super) fn denied_len(&self) -> usize {
        self.denied.len()
    }

    /// No fetch in flight, and no connection indexed as waiting on one.
    #[cfg(test)]
    pub(super) fn no_fetches(&self) -> bool {
        self.fetching.is_empty() && self.fetches_of.is_empty()
    }

    pub(super) fn membership(&self, now: Instant, user: &UserId, thread: &ThreadId) -> Membership {
        if let Some(t) = self.by_thread.get(thread)
            && t.fetched_at
                .is_some_and(|at| now.saturating_duration_since(at) < self.ttl)
            && t.participants.contains(user)
        {
            return Membership::Member;
        }
        match self.denied.get(&(user.clone(), thread.clone())) {
            Some(until) if *until > now => Membership::NotMember,
            _ => Membership::Unknown,
        }
    }

    /// Remembers for the TTL that the site refused `user` in `thread`.
    ///
    /// Thread ids are client-controlled, so expired entries are swept (amortized, when the
    /// map doubled since the last sweep): otherwise joining random threads grows it forever.
    pub(super) fn deny(&mut self, now: Instant, user: UserId, thread: ThreadId, fx: &mut Effects) {
        self.denied.insert((user, thread), now + self.ttl);
        if self.denied.len() >= self.denied_sweep_at {
            self.denied.retain(|_, until| *until > now);
            self.denied_sweep_at = (2 * self.denied.len()).max(DENIED_SWEEP_MIN);
        }
        Self::schedule_sweep(fx, now + self.ttl);
    }

    /// The site confirmed `user` in `thread`: forget an earlier refusal.
    pub(super) fn allow(&mut self, user: &UserId, thread: &ThreadId) {
        self.denied.remove(&(user.clone(), thread.clone()));
    }

    /// The cached participants of `thread` are in doubt: the next check asks the site.
    pub(super) fn mark_stale(&mut self, thread: &ThreadId) {
        if let Some(state) = self.by_thread.get_mut(thread) {
            state.fetched_at = None;
        }
    }

    /// Makes sure a sweep runs by `at` (or sooner, if one is already due).
    fn schedule_sweep(fx: &mut Effects, at: Instant) {
        if !fx.timers.is_set(&TimerKey::CacheSweep) {
            fx.timers.set(TimerKey::CacheSweep, at);
        }
    }

    /// Drops the threads no local connection joined whose entry is older than the TTL
    /// (and their reverse index), and the expired `denied` entries; runs again when the
    /// next of the remaining ones may expire.
    pub(super) fn sweep(&mut self, now: Instant, fx: &mut Effects) {
        let ttl = self.ttl;
        let expired = |fetched_at: Option<Instant>| {
            fetched_at.is_none_or(|at| now.saturating_duration_since(at) >= ttl)
        };
        let gone: Vec<ThreadId> = self
            .by_thread
            .iter()
            .filter(|(_, t)| t.joiners.is_empty() && expired(t.fetched_at))
            .map(|(id, _)| id.clone())
            .collect();
        for thread in gone {
            let Some(state) = self.by_thread.remove(&thread) else {
                continue;
            };
            for user in &state.participants {
                self.unindex(user, &thread);
            }
        }
        self.denied.retain(|_, until| *until > now);
        self.denied_sweep_at = (2 * self.denied.len()).max(DENIED_SWEEP_MIN);
        // The earliest a remaining entry can expire; a joined thread is looked at again a
        // TTL from now (it is kept while joined, however old).
        let next = self
            .by_thread
            .values()
            .map(|t| match t.fetched_at {
                Some(at) if t.joiners.is_empty() => at + ttl,
                _ => now + ttl,
            })
            .chain(self.denied.values().copied())
            .min();
        if let Some(next) = next {
            let soonest = now + (ttl / 4).max(CACHE_SWEEP_MIN_INTERVAL);
            fx.timers.set(TimerKey::CacheSweep, next.max(soonest));
        }
    }

    fn unindex(&mut self, user: &UserId, thread: &ThreadId) {
        if let Some(threads) = self.by_user.get_mut(user) {
            threads.remove(thread);
            if threads.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    /// The participants of `thread` as cached (possibly stale or empty).
    pub(super) fn participants(&self, thread: &ThreadId) -> Vec<UserId> {
        self.by_thread
            .get(thread)
            .map(|t| t.participants.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the cache has `user` in `thread` (possibly stale).
    pub(super) fn has_participant(&self, thread: &ThreadId, user: &UserId) -> bool {
        self.by_thread
            .get(thread)
            .is_some_and(|t| t.participants.contains(user))
    }

    /// The local connections that joined a thread `user` is known to be in.
    pub(super) fn joiners_near(&self, user: &UserId) -> BTreeSet<ConnId> {
        let mut set = BTreeSet::new();
        for thread in self.by_user.get(user).into_iter().flatten() {
            if let Some(state) = self.by_thread.get(thread) {
                set.extend(state.joiners.iter().copied());
            }
        }
        set
    }

    /// `conn` waits on the fetch `key`; whether the fetch is new (to be asked of the site).
    /// `live`: whether `conn` is a live connection (only those are indexed).
    pub(super) fn wait_fetch(&mut self, key: FetchKey, conn: ConnId, live: bool) -> bool {
        if live {
            self.fetches_of.entry(conn).or_default().insert(key.clone());
        }
        if let Some(waiters) = self.fetching.get_mut(&key) {
            waiters.insert(conn);
            return false;
        }
        self.fetching.insert(key, BTreeSet::from([conn]));
        true
    }

    /// The fetch `key` is answered: the connections that waited on it.
    pub(super) fn finish_fetch(&mut self, key: &FetchKey) -> BTreeSet<ConnId> {
        let waiters = self.fetching.remove(key).unwrap_or_default();
        for conn in &waiters {
            if let Some(keys) = self.fetches_of.get_mut(conn) {
                keys.remove(key);
                if keys.is_empty() {
                    self.fetches_of.remove(conn);
                }
            }
        }
        waiters
    }

    /// `conn` ended: it leaves the threads it `joined` and the fetches it waited on.
    pub(super) fn conn_gone<'a>(
        &mut self,
        conn: ConnId,
        joined: impl IntoIterator<Item = &'a ThreadId>,
    ) {
        for thread in joined {
            if let Some(t) = self.by_thread.get_mut(thread) {
                t.joiners.remove(&conn);
            }
        }
        for key in self.fetches_of.remove(&conn).unwrap_or_default() {
            if let Some(waiters) = self.fetching.get_mut(&key) {
                waiters.remove(&conn);
            }
        }
    }

    /// Another node delivered `id` in `thread`: `joined.lastMessageId` says so here too
    /// (the participants are not touched: the publication does not carry them).
    pub(super) fn note_message(&mut self, thread: &ThreadId, id: &MessageId) {
        if let Some(state) = self.by_thread.get_mut(thread) {
            state.last_message = Some(id.clone());
        }
    }

    /// Replaces the cached participants of `thread` (fresh from the site); how they changed.
    /// The users added are indexed and no longer denied; the caller passes each one removed
    /// to [`forget_member`](Self::forget_member) with their connections.
    pub(super) fn replace(
        &mut self,
        now: Instant,
        thread: &ThreadId,
        participants: &[UserId],
        last_message: Option<MessageId>,
        fx: &mut Effects,
    ) -> Refresh {
        if let Some(state) = self.by_thread.get_mut(thread)
            && state.fetched_at.is_some()
            && same_members(&state.participants, participants)
        {
            state.fetched_at = Some(now);
            if last_message.is_some() {
                state.last_message = last_message;
            }
            return Refresh::default();
        }
        let new: BTreeSet<UserId> = participants.iter().cloned().collect();
        Self::schedule_sweep(fx, now + self.ttl);
        let state = self.by_thread.entry(thread.clone()).or_default();
        let first = state.fetched_at.is_none();
        let old = std::mem::replace(&mut state.participants, new);
        let removed: Vec<UserId> = old.difference(&state.participants).cloned().collect();
        let added: Vec<UserId> = state.participants.difference(&old).cloned().collect();
        state.fetched_at = Some(now);
        if last_message.is_some() {
            state.last_message = last_message;
        }
        let joiners = state.joiners.iter().copied().collect();
        for user in &added {
            self.by_user
                .entry(user.clone())
                .or_default()
                .insert(thread.clone());
            self.allow(user, thread);
        }
        Refresh {
            changed: first || !added.is_empty() || !removed.is_empty(),
            added,
            removed,
            joiners,
        }
    }

    /// `user` is no longer in `thread`: drop them from it, and their connections `conns`
    /// from its joiners.
    pub(super) fn forget_member(&mut self, thread: &ThreadId, user: &UserId, conns: &[ConnId]) {
        self.unindex(user, thread);
        if let Some(state) = self.by_thread.get_mut(thread) {
            state.participants.remove(user);
            for conn in conns {
                state.joiners.remove(conn);
            }
        }
    }

    /// `conn` joined `thread`: the thread's last message and its participants.
    pub(super) fn join(
        &mut self,
        thread: &ThreadId,
        conn: ConnId,
    ) -> (Option<MessageId>, Vec<UserId>) {
        let state = self.by_thread.entry(thread.clone()).or_default();
        state.joiners.insert(conn);
        let members = state.participants.iter().cloned().collect();
        (state.last_message.clone(), members)
    }

    /// `conn` left `thread`.
    pub(super) fn leave(&mut self, thread: &ThreadId, conn: ConnId) {
        if let Some(state) = self.by_thread.get_mut(thread) {
            state.joiners.remove(&conn);
        }
    }
}

/// Whether `participants` is the set `known`, checked without building a new set: the
/// common case on the hot path (every stored message). Small threads only, where the
/// quadratic duplicate check is cheap; a larger one is rebuilt.
fn same_members(known: &BTreeSet<UserId>, participants: &[UserId]) -> bool {
    participants.len() == known.len()
        && participants.len() <= 32
        && participants.iter().all(|p| known.contains(p))
        && participants
            .iter()
            .enumerate()
            .all(|(i, p)| !participants[..i].contains(p))
}

impl Hub {
    pub(super) fn membership(&self, now: Instant, user: &UserId, thread: &ThreadId) -> Membership {
        self.threads.membership(now, user, thread)
    }

    pub(super) fn deny(&mut self, now: Instant, user: UserId, thread: ThreadId) {
        self.threads.deny(now, user, thread, &mut self.fx);
    }

    pub(super) fn sweep_cache(&mut self, now: Instant) {
        self.threads.sweep(now, &mut self.fx);
    }

    /// The participants of `thread` as cached (possibly stale or empty).
    pub(super) fn participants(&self, thread: &ThreadId) -> Vec<UserId> {
        self.threads.participants(thread)
    }

    /// Asks the site for `thread` as `user`; `conn` waits (its front frame is retried or
    /// failed when the answer comes).
    pub(super) fn fetch_participants(
        &mut self,
        conn: ConnId,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) {
        let key = (user.clone(), thread.clone(), join);
        if !self.threads.wait_fetch(key, conn, self.dir.contains(conn)) {
            return;
        }
        let credential = self.conn_credential(conn);
        let request = ApiRequest::Participants {
            credential,
            user: user.clone(),
            thread: thread.clone(),
            join,
        };
        self.api(
            request,
            PendingApi::Participants {
                user: user.clone(),
                thread: thread.clone(),
                join,
            },
        );
    }

    pub(super) fn participants_result(
        &mut self,
        now: Instant,
        user: UserId,
        thread: ThreadId,
        join: bool,
        result: Result<ThreadInfo, SiteError>,
    ) {
        let waiters = self
            .threads
            .finish_fetch(&(user.clone(), thread.clone(), join));
        let failure = match result {
            Ok(info) => {
                let member = info.participants.contains(&user);
                self.set_participants(now, &thread, &info.participants, info.last_message);
                if member {
                    self.threads.allow(&user, &thread);
                    None
                } else {
                    Some(ErrorCode::Forbidden)
                }
            }
            Err(error) => {
                if error.kind == SiteErrorKind::Forbidden {
                    self.forget_member(&thread, &user);
                    self.deny(now, user.clone(), thread.clone());
                }
                if error.kind == SiteErrorKind::Unauthenticated {
                    for conn in &waiters {
                        if let Some(credential) = self.conn_credential(*conn) {
                            self.revoke(now, credential);
                        }
                    }
                }
                Some(super::site_error_code(&error))
            }
        };
        if failure == Some(ErrorCode::Forbidden) {
            self.deny(now, user, thread.clone());
        }
        for conn in waiters {
            match failure {
                None => self.unblock(now, conn),
                // The code's fixed text, never the site's.
                Some(code) => self.fail_blocked(now, conn, code, code.message()),
            }
            // A join with a resume point took what was held for it; one that failed did not.
            self.release_join_hold(conn, &thread);
        }
    }

    /// Replaces the cached participants of `thread` (fresh from the site) and, when they
    /// changed, tells the other nodes: their caches would otherwise miss a join made here
    /// until their TTL ran out (typing, read and presence there use the cache).
    pub(super) fn set_participants(
        &mut self,
        now: Instant,
        thread: &ThreadId,
        participants: &[UserId],
        last_message: Option<MessageId>,
    ) {
        if self.replace_participants(now, thread, participants, last_message.clone()) {
            let participants = self.participants(thread);
            self.publish(BrokerEvent::Participants {
                thread: thread.clone(),
                participants,
                last_message,
            });
        }
    }

    /// Replaces the cached participants of `thread`; returns whether the set changed (or
    /// was never known).
    pub(super) fn replace_participants(
        &mut self,
        now: Instant,
        thread: &ThreadId,
        participants: &[UserId],
        last_message: Option<MessageId>,
    ) -> bool {
        let refresh = self
            .threads
            .replace(now, thread, participants, last_message, &mut self.fx);
        // Under scope `all` everyone hears every presence change already.
        if self.config.presence_scope == super::PresenceScope::Threads {
            for user in &refresh.added {
                self.tell_joiners_of(user, &refresh.joiners);
            }
        }
        for user in &refresh.removed {
            self.forget_member(thread, user);
        }
        refresh.changed
    }

    /// The connections that joined a thread now share it with `user`: tell them where
    /// `user` stands (what `joined` would have said), or what they knew of `user` from an
    /// earlier shared thread may be stale.
    fn tell_joiners_of(&mut self, user: &UserId, joiners: &[ConnId]) {
        let own = self.dir.local(user).map(|u| &u.conns);
        let audience: Vec<ConnId> = joiners
            .iter()
            .copied()
            .filter(|c| !own.is_some_and(|own| own.contains(c)))
            .collect();
        if audience.is_empty() {
            return;
        }
        let event = PresenceEvent {
            user_id: user.clone(),
        };
        let message = if self.is_online(user) {
            ServerMessage::UserConnected(event)
        } else {
            ServerMessage::UserDisconnected(event)
        };
        self.deliver(audience, message.encode());
    }

    /// `user` is no longer in `thread`: drop them from the cache and unjoin their
    /// connections, so nothing of the thread reaches them.
    fn forget_member(&mut self, thread: &ThreadId, user: &UserId) {
        let conns = self.dir.conns_of([user]);
        self.threads.forget_member(thread, user, &conns);
        for conn in conns {
            if let Some(c) = self.dir.get_mut(conn) {
                c.joined.remove(thread);
            }
        }
    }

    /// `join_thread` (or one thread of a `resume`), with its resume point if any. Returns
    /// `true` if the frame must wait for the site.
    pub(super) fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        m: &JoinThread,
        answer: Answer,
    ) -> bool {
        let thread = m.thread_id.clone();
        let Some(c) = self.dir.get(conn) else {
            return false;
        };
        if !c.joined.contains(&thread) && c.joined.len() >= self.config.max_threads_per_conn {
            self.join_refused(conn, &thread, answer, ErrorCode::TooManyThreads);
            return false;
        }
        if self.membership(now, user, &thread) != Membership::Member {
            self.hold_for_join(conn, m);
            self.fetch_participants(conn, user, &thread, true);
            return true;
        }
        let plan = self.resume_plan(conn, user, m);
        if let Plan::ReadShared = plan {
            self.read_shared(conn, user, m);
            return true;
        }
        if let Plan::Fail(code) = plan {
            self.join_refused(conn, &thread, answer, code);
            return false;
        }
        let request_id = match answer {
            Answer::Join(request_id) => request_id,
            Answer::Resume => None,
        };
        if let Some(c) = self.dir.get_mut(conn) {
            c.joined.insert(thread.clone());
        }
        let (last_message_id, members) = self.threads.join(&thread, conn);
        let participants = members
            .into_iter()
            .map(|p| Participant {
                online: self.is_online(&p),
                user_id: p,
            })
            .collect();
        let joined = Joined {
            position: self.latest_position(&thread),
            thread_id: thread.clone(),
            participants,
            last_message_id,
            request_id,
        };
        self.send_one(conn, &ServerMessage::Joined(joined));
        self.run_plan(now, conn, user, &thread, plan);
        false
    }

    /// `leave_thread`: the connection stops hearing the thread's presence.
    pub(super) fn leave(&mut self, conn: ConnId, thread: &ThreadId) {
        if let Some(c) = self.dir.get_mut(conn) {
            c.joined.remove(thread);
        }
        self.threads.leave(thread, conn);
    }

    /// The credential `conn` acts with: the last one verified on it, if any.
    pub(super) fn conn_credential(&self, conn: ConnId) -> Option<crate::ids::CredentialId> {
        self.dir.get(conn).and_then(|c| c.credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::effects::testing::{epoch, fx};
    use crate::ids::testing::{thread, user};

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn membership_is_fresh_for_the_ttl_and_a_refusal_too() {
        let (mut cache, mut fx) = (ThreadCache::new(TTL), fx());
        let (alice, bob, t1) = (user("alice"), user("bob"), thread("t1"));
        let now = epoch();
        assert_eq!(cache.membership(now, &alice, &t1), Membership::Unknown);
        cache.replace(now, &t1, std::slice::from_ref(&alice), None, &mut fx);
        assert_eq!(cache.membership(now, &alice, &t1), Membership::Member);
        assert_eq!(
            cache.membership(now + TTL, &alice, &t1),
            Membership::Unknown
        );
        cache.deny(now, bob.clone(), t1.clone(), &mut fx);
        assert_eq!(cache.membership(now, &bob, &t1), Membership::NotMember);
        assert_eq!(cache.membership(now + TTL, &bob, &t1), Membership::Unknown);
        cache.allow(&bob, &t1);
        assert_eq!(cache.membership(now, &bob, &t1), Membership::Unknown);
        assert!(fx.timers.is_set(&TimerKey::CacheSweep), "a sweep is due");
    }

    #[test]
    fn a_refresh_says_who_came_and_went_and_indexes_them() {
        let (mut cache, mut fx) = (ThreadCache::new(TTL), fx());
        let (alice, bob, carol, t1) = (user("alice"), user("bob"), user("carol"), thread("t1"));
        let now = epoch();
        let first = cache.replace(now, &t1, &[alice.clone(), bob.clone()], None, &mut fx);
        assert!(first.changed);
        assert_eq!(first.added, vec![alice.clone(), bob.clone()]);
        cache.join(&t1, ConnId(7));
        let same = cache.replace(now, &t1, &[bob.clone(), alice.clone()], None, &mut fx);
        assert_eq!(same, Refresh::default(), "the same set is no change");
        cache.deny(now, carol.clone(), t1.clone(), &mut fx);
        let next = cache.replace(now, &t1, &[alice.clone(), carol.clone()], None, &mut fx);
        assert!(next.changed);
        assert_eq!(next.added, vec![carol.clone()]);
        assert_eq!(next.removed, vec![bob.clone()]);
        assert_eq!(next.joiners, vec![ConnId(7)]);
        assert_eq!(cache.membership(now, &carol, &t1), Membership::Member);
        cache.forget_member(&t1, &bob, &[]);
        assert!(
            cache.joiners_near(&bob).is_empty(),
            "bob is out of the index"
        );
        assert_eq!(cache.joiners_near(&carol), BTreeSet::from([ConnId(7)]));
        assert_eq!(cache.participants(&t1), vec![alice, carol]);
    }

    #[test]
    fn a_fetch_is_asked_once_and_a_closed_waiter_leaves_it() {
        let mut cache = ThreadCache::new(TTL);
        let key = (user("alice"), thread("t1"), true);
        assert!(
            cache.wait_fetch(key.clone(), ConnId(1), true),
            "the first asks"
        );
        assert!(
            !cache.wait_fetch(key.clone(), ConnId(2), true),
            "the second waits"
        );
        cache.conn_gone(ConnId(1), &BTreeSet::new());
        assert_eq!(cache.finish_fetch(&key), BTreeSet::from([ConnId(2)]));
        assert!(cache.finish_fetch(&key).is_empty(), "answered once");
        assert!(cache.is_empty(), "nothing left: {cache:?}");
    }

    #[test]
    fn the_sweep_keeps_joined_threads_and_forgets_the_rest() {
        let (mut cache, mut fx) = (ThreadCache::new(TTL), fx());
        let (alice, t1, t2) = (user("alice"), thread("t1"), thread("t2"));
        let now = epoch();
        cache.replace(now, &t1, std::slice::from_ref(&alice), None, &mut fx);
        cache.replace(now, &t2, std::slice::from_ref(&alice), None, &mut fx);
        cache.join(&t2, ConnId(3));
        cache.deny(now, user("bob"), t1.clone(), &mut fx);
        cache.sweep(now + TTL, &mut fx);
        assert_eq!(cache.len(), 1, "only the joined thread is kept");
        assert!(cache.participants(&t1).is_empty());
        assert_eq!(cache.joiners_near(&alice), BTreeSet::from([ConnId(3)]));
        cache.conn_gone(ConnId(3), &BTreeSet::from([t2.clone()]));
        cache.sweep(now + TTL + TTL, &mut fx);
        assert!(cache.is_empty(), "nothing left: {cache:?}");
    }
}
