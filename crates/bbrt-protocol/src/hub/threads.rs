//! Threads: the participant cache, `join_thread`, `leave_thread`, and waiting for the site
//! when the cache is cold.
//!
//! The cache forgets: a thread no local connection joined is dropped once its entry is
//! older than the participants TTL (a sweep at most every quarter TTL, and at least a second
//! apart). Every node hears every participant change in the cluster, so without it every
//! node would keep every thread the cluster ever touched.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::timer::TimerKey;
use super::{BrokerEvent, Hub, PendingApi};
use crate::api::{ApiRequest, SiteError, SiteErrorKind, ThreadInfo};
use crate::ids::{ConnId, MessageId, ThreadId, UserId};
use crate::wire::{ErrorCode, Joined, Participant, PresenceEvent, RequestId, ServerMessage};

/// `denied` is swept of expired entries no more often than when it reaches this size.
pub(super) const DENIED_SWEEP_MIN: usize = 1024;

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

impl Hub {
    pub(super) fn membership(&self, now: Instant, user: &UserId, thread: &ThreadId) -> Membership {
        let ttl = self.config.participants_ttl;
        if let Some(t) = self.threads.get(thread)
            && t.fetched_at
                .is_some_and(|at| now.saturating_duration_since(at) < ttl)
            && t.participants.contains(user)
        {
            return Membership::Member;
        }
        match self.denied.get(&(user.clone(), thread.clone())) {
            Some(until) if *until > now => Membership::NotMember,
            _ => Membership::Unknown,
        }
    }

    /// Remembers for the participants TTL that the site refused `user` in `thread`.
    ///
    /// Thread ids are client-controlled, so expired entries are swept (amortized, when the
    /// map doubled since the last sweep): otherwise joining random threads grows it forever.
    pub(super) fn deny(&mut self, now: Instant, user: UserId, thread: ThreadId) {
        self.denied
            .insert((user, thread), now + self.config.participants_ttl);
        if self.denied.len() >= self.denied_sweep_at {
            self.denied.retain(|_, until| *until > now);
            self.denied_sweep_at = (2 * self.denied.len()).max(DENIED_SWEEP_MIN);
        }
        self.schedule_cache_sweep(now + self.config.participants_ttl);
    }

    /// Makes sure a cache sweep runs by `at` (or sooner, if one is already due).
    fn schedule_cache_sweep(&mut self, at: Instant) {
        if !self.fx.timers.is_set(&TimerKey::CacheSweep) {
            self.fx.timers.set(TimerKey::CacheSweep, at);
        }
    }

    /// Drops the threads no local connection joined whose entry is older than the TTL
    /// (and their reverse index), and the expired `denied` entries; runs again when the
    /// next of the remaining ones may expire.
    pub(super) fn sweep_cache(&mut self, now: Instant) {
        let ttl = self.config.participants_ttl;
        let expired = |fetched_at: Option<Instant>| {
            fetched_at.is_none_or(|at| now.saturating_duration_since(at) >= ttl)
        };
        let gone: Vec<ThreadId> = self
            .threads
            .iter()
            .filter(|(_, t)| t.joiners.is_empty() && expired(t.fetched_at))
            .map(|(id, _)| id.clone())
            .collect();
        for thread in gone {
            let Some(state) = self.threads.remove(&thread) else {
                continue;
            };
            for user in &state.participants {
                if let Some(threads) = self.user_threads.get_mut(user) {
                    threads.remove(&thread);
                    if threads.is_empty() {
                        self.user_threads.remove(user);
                    }
                }
            }
        }
        self.denied.retain(|_, until| *until > now);
        self.denied_sweep_at = (2 * self.denied.len()).max(DENIED_SWEEP_MIN);
        // The earliest a remaining entry can expire; a joined thread is looked at again a
        // TTL from now (it is kept while joined, however old).
        let next = self
            .threads
            .values()
            .map(|t| match t.fetched_at {
                Some(at) if t.joiners.is_empty() => at + ttl,
                _ => now + ttl,
            })
            .chain(self.denied.values().copied())
            .min();
        if let Some(next) = next {
            let soonest = now + (ttl / 4).max(CACHE_SWEEP_MIN_INTERVAL);
            self.fx.timers.set(TimerKey::CacheSweep, next.max(soonest));
        }
    }

    /// The participants of `thread` as cached (possibly stale or empty).
    pub(super) fn participants(&self, thread: &ThreadId) -> Vec<UserId> {
        self.threads
            .get(thread)
            .map(|t| t.participants.iter().cloned().collect())
            .unwrap_or_default()
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
        if self.conns.contains_key(&conn) {
            self.fetches_of.entry(conn).or_default().insert(key.clone());
        }
        if let Some(waiters) = self.fetching.get_mut(&key) {
            waiters.insert(conn);
            return;
        }
        self.fetching.insert(key, BTreeSet::from([conn]));
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
        let key = (user.clone(), thread.clone(), join);
        let waiters = self.fetching.remove(&key).unwrap_or_default();
        for conn in &waiters {
            if let Some(keys) = self.fetches_of.get_mut(conn) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.fetches_of.remove(conn);
                }
            }
        }
        let failure = match result {
            Ok(info) => {
                let member = info.participants.contains(&user);
                self.set_participants(now, &thread, &info.participants, info.last_message);
                if member {
                    self.denied.remove(&(user.clone(), thread.clone()));
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
            self.deny(now, user, thread);
        }
        for conn in waiters {
            match failure {
                None => self.unblock(now, conn),
                // The code's fixed text, never the site's.
                Some(code) => self.fail_blocked(now, conn, code, code.message()),
            }
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
        // The common case on the hot path (every stored message): nothing changed. Check it
        // without building a new set (same size, every one known, no one twice; small
        // threads only, where the quadratic duplicate check is cheap).
        if let Some(state) = self.threads.get_mut(thread)
            && state.fetched_at.is_some()
            && participants.len() == state.participants.len()
            && participants.len() <= 32
            && participants.iter().all(|p| state.participants.contains(p))
            && participants
                .iter()
                .enumerate()
                .all(|(i, p)| !participants[..i].contains(p))
        {
            state.fetched_at = Some(now);
            if last_message.is_some() {
                state.last_message = last_message;
            }
            return false;
        }
        let new: BTreeSet<UserId> = participants.iter().cloned().collect();
        self.schedule_cache_sweep(now + self.config.participants_ttl);
        let state = self.threads.entry(thread.clone()).or_default();
        let first = state.fetched_at.is_none();
        let old = std::mem::replace(&mut state.participants, new);
        state.fetched_at = Some(now);
        if last_message.is_some() {
            state.last_message = last_message;
        }
        let removed: Vec<UserId> = old.difference(&state.participants).cloned().collect();
        let added: Vec<UserId> = state.participants.difference(&old).cloned().collect();
        let changed = first || !added.is_empty() || !removed.is_empty();
        // Under scope `all` everyone hears every presence change already.
        let joiners: Vec<ConnId> = match self.config.presence_scope {
            super::PresenceScope::Threads => state.joiners.iter().copied().collect(),
            super::PresenceScope::All => Vec::new(),
        };
        for user in added {
            self.user_threads
                .entry(user.clone())
                .or_default()
                .insert(thread.clone());
            self.denied.remove(&(user.clone(), thread.clone()));
            // The connections that joined the thread now share it with `user`: tell them
            // where `user` stands (what `joined` would have said), or what they knew of
            // `user` from an earlier shared thread may be stale.
            let own = self.users.get(&user).map(|u| &u.conns);
            let audience: Vec<ConnId> = joiners
                .iter()
                .copied()
                .filter(|c| !own.is_some_and(|own| own.contains(c)))
                .collect();
            if !audience.is_empty() {
                let event = PresenceEvent {
                    user_id: user.clone(),
                };
                let message = if self.is_online(&user) {
                    ServerMessage::UserConnected(event)
                } else {
                    ServerMessage::UserDisconnected(event)
                };
                self.deliver(audience, message.encode());
            }
        }
        for user in removed {
            self.forget_member(thread, &user);
        }
        changed
    }

    /// `user` is no longer in `thread`: drop them from the cache and unjoin their
    /// connections, so nothing of the thread reaches them.
    fn forget_member(&mut self, thread: &ThreadId, user: &UserId) {
        if let Some(threads) = self.user_threads.get_mut(user) {
            threads.remove(thread);
            if threads.is_empty() {
                self.user_threads.remove(user);
            }
        }
        let conns: Vec<ConnId> = self
            .users
            .get(user)
            .map(|u| u.conns.iter().copied().collect())
            .unwrap_or_default();
        if let Some(state) = self.threads.get_mut(thread) {
            state.participants.remove(user);
            for conn in &conns {
                state.joiners.remove(conn);
            }
        }
        for conn in conns {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.joined.remove(thread);
            }
        }
    }

    /// `join_thread`. Returns `true` if the frame must wait for the site.
    pub(super) fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        thread: ThreadId,
        request_id: Option<RequestId>,
    ) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        if !c.joined.contains(&thread) && c.joined.len() >= self.config.max_threads_per_conn {
            self.error(
                conn,
                ErrorCode::TooManyThreads,
                ErrorCode::TooManyThreads.message(),
                request_id,
            );
            return false;
        }
        if self.membership(now, user, &thread) != Membership::Member {
            self.fetch_participants(conn, user, &thread, true);
            return true;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.joined.insert(thread.clone());
        }
        let state = self.threads.entry(thread.clone()).or_default();
        state.joiners.insert(conn);
        let last_message_id = state.last_message.clone();
        let members: Vec<UserId> = state.participants.iter().cloned().collect();
        let participants = members
            .into_iter()
            .map(|p| Participant {
                online: self.is_online(&p),
                user_id: p,
            })
            .collect();
        let joined = Joined {
            thread_id: thread,
            participants,
            last_message_id,
            request_id,
        };
        self.send_one(conn, &ServerMessage::Joined(joined));
        false
    }

    /// `leave_thread`: the connection stops hearing the thread's presence.
    pub(super) fn leave(&mut self, conn: ConnId, thread: &ThreadId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.joined.remove(thread);
        }
        if let Some(state) = self.threads.get_mut(thread) {
            state.joiners.remove(&conn);
        }
    }

    /// The credential `conn` acts with: the last one verified on it, if any.
    pub(super) fn conn_credential(&self, conn: ConnId) -> Option<crate::ids::CredentialId> {
        self.conns.get(&conn).and_then(|c| c.credential)
    }
}
