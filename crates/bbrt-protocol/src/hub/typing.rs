//! Typing: coalesced (at most one forward per user and thread every `typing_interval`) and
//! expired (`typing: false` after `typing_expiry` without a refresh).

use crate::hash::IdMap;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::timer::TimerKey;
use super::{BrokerEvent, Hub};
use crate::ids::{ThreadId, UserId};
use crate::wire::{ServerMessage, TypingEvent};

/// A user typing in a thread.
#[derive(Debug)]
struct TypingState {
    last_forwarded: Instant,
    /// Everyone told `typing: true`: they hear the `false` even if the participant cache
    /// changed since (a stored message or a refetch dropped them), or they would see the
    /// user typing forever.
    told: BTreeSet<UserId>,
}

/// Who is typing where, by user then thread: a user going offline finds their threads
/// without a scan.
#[derive(Debug, Default)]
pub(super) struct Typing {
    by_user: IdMap<UserId, BTreeMap<ThreadId, TypingState>>,
}

impl Typing {
    /// Records a `typing: true`; whether to forward it: the first one, or the first an
    /// `interval` after the last one forwarded.
    fn start(
        &mut self,
        now: Instant,
        user: &UserId,
        thread: &ThreadId,
        interval: Duration,
    ) -> bool {
        let threads = self.by_user.entry(user.clone()).or_default();
        match threads.get_mut(thread) {
            Some(state) if now.saturating_duration_since(state.last_forwarded) < interval => false,
            Some(state) => {
                state.last_forwarded = now;
                true
            }
            None => {
                let state = TypingState {
                    last_forwarded: now,
                    told: BTreeSet::new(),
                };
                threads.insert(thread.clone(), state);
                true
            }
        }
    }

    /// Remembers who heard `typing: true`, so they hear the `false` too.
    fn told(&mut self, user: &UserId, thread: &ThreadId, told: Vec<UserId>) {
        if let Some(state) = self.by_user.get_mut(user).and_then(|t| t.get_mut(thread)) {
            state.told.extend(told);
        }
    }

    /// Forgets that `user` types in `thread`; who was told they did, if they did.
    fn stop(&mut self, user: &UserId, thread: &ThreadId) -> Option<BTreeSet<UserId>> {
        let threads = self.by_user.get_mut(user)?;
        let state = threads.remove(thread)?;
        if threads.is_empty() {
            self.by_user.remove(user);
        }
        Some(state.told)
    }

    /// The threads `user` types in, ascending.
    fn threads_of(&self, user: &UserId) -> Vec<ThreadId> {
        self.by_user
            .get(user)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }
}

impl Hub {
    /// A participant's `typing` frame (membership already checked).
    pub(super) fn typing(&mut self, now: Instant, user: &UserId, thread: &ThreadId, typing: bool) {
        if !typing {
            self.stop_typing(user, thread);
            return;
        }
        let forward = self
            .typing
            .start(now, user, thread, self.config.typing_interval);
        self.fx.timers.set(
            TimerKey::TypingExpiry(user.clone(), thread.clone()),
            now + self.config.typing_expiry,
        );
        if forward {
            let told = self.forward_typing(user, thread, true, BTreeSet::new());
            self.typing.told(user, thread, told);
        }
    }

    pub(super) fn typing_expired(&mut self, user: UserId, thread: ThreadId) {
        if let Some(told) = self.typing.stop(&user, &thread) {
            self.forward_typing(&user, &thread, false, told);
        }
    }

    /// The user sent a message or went away: they are no longer typing there.
    pub(super) fn stop_typing(&mut self, user: &UserId, thread: &ThreadId) {
        if let Some(told) = self.typing.stop(user, thread) {
            self.fx
                .timers
                .cancel(&TimerKey::TypingExpiry(user.clone(), thread.clone()));
            self.forward_typing(user, thread, false, told);
        }
    }

    pub(super) fn typing_user_gone(&mut self, user: &UserId) {
        for thread in self.typing.threads_of(user) {
            self.stop_typing(user, &thread);
        }
    }

    /// Tells the other participants (and `also`) on every node; returns who was told.
    fn forward_typing(
        &mut self,
        user: &UserId,
        thread: &ThreadId,
        typing: bool,
        also: BTreeSet<UserId>,
    ) -> Vec<UserId> {
        let mut others = also;
        others.extend(self.participants(thread));
        others.remove(user);
        let others: Vec<UserId> = others.into_iter().collect();
        if others.is_empty() {
            return others;
        }
        let frame = ServerMessage::Typing(TypingEvent {
            thread_id: thread.clone(),
            user_id: user.clone(),
            typing,
        })
        .encode();
        let conns = self.conns_of(&others);
        self.deliver(conns, frame.clone());
        self.publish(BrokerEvent::Deliver {
            users: others.clone(),
            frame,
            sequenced: None,
        });
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::effects::testing::epoch;
    use crate::ids::testing::{thread, user};

    #[test]
    fn typing_is_forwarded_once_per_interval() {
        let mut typing = Typing::default();
        let (alice, t1) = (user("alice"), thread("t1"));
        let start = epoch();
        let interval = Duration::from_secs(2);
        assert!(typing.start(start, &alice, &t1, interval));
        assert!(!typing.start(start + Duration::from_secs(1), &alice, &t1, interval));
        assert!(typing.start(start + interval, &alice, &t1, interval));
        assert!(
            typing.start(start, &alice, &thread("t2"), interval),
            "another thread is its own"
        );
    }

    #[test]
    fn a_stop_returns_who_was_told_and_forgets_the_user() {
        let mut typing = Typing::default();
        let (alice, t1, t2) = (user("alice"), thread("t1"), thread("t2"));
        let now = epoch();
        let interval = Duration::from_secs(2);
        typing.start(now, &alice, &t2, interval);
        typing.start(now, &alice, &t1, interval);
        typing.told(&alice, &t1, vec![user("bob")]);
        assert_eq!(typing.threads_of(&alice), vec![t1.clone(), t2.clone()]);
        assert!(typing.threads_of(&user("bob")).is_empty());
        assert_eq!(typing.stop(&alice, &t1), Some([user("bob")].into()));
        assert_eq!(typing.stop(&alice, &t1), None, "stopped once");
        assert_eq!(typing.stop(&alice, &t2), Some(BTreeSet::new()));
        assert!(
            typing.is_empty(),
            "no user left without threads: {typing:?}"
        );
    }
}
