//! Typing: coalesced (at most one forward per user and thread every `typing_interval`) and
//! expired (`typing: false` after `typing_expiry` without a refresh).

use std::collections::BTreeSet;
use std::time::Instant;

use super::timer::TimerKey;
use super::{BrokerEvent, Hub};
use crate::ids::{ThreadId, UserId};
use crate::wire::{ServerMessage, TypingEvent};

/// A user typing in a thread.
#[derive(Debug)]
pub(super) struct TypingState {
    last_forwarded: Instant,
    /// Everyone told `typing: true`: they hear the `false` even if the participant cache
    /// changed since (a stored message or a refetch dropped them), or they would see the
    /// user typing forever.
    told: BTreeSet<UserId>,
}

impl Hub {
    /// A participant's `typing` frame (membership already checked).
    pub(super) fn typing(&mut self, now: Instant, user: &UserId, thread: &ThreadId, typing: bool) {
        let key = (user.clone(), thread.clone());
        if !typing {
            self.stop_typing(user, thread);
            return;
        }
        let interval = self.config.typing_interval;
        let forward = match self.typing.get_mut(&key) {
            Some(state) if now.saturating_duration_since(state.last_forwarded) < interval => false,
            Some(state) => {
                state.last_forwarded = now;
                true
            }
            None => {
                self.typing.insert(
                    key.clone(),
                    TypingState {
                        last_forwarded: now,
                        told: BTreeSet::new(),
                    },
                );
                true
            }
        };
        self.timers.set(
            TimerKey::TypingExpiry(user.clone(), thread.clone()),
            now + self.config.typing_expiry,
        );
        if forward {
            let told = self.forward_typing(user, thread, true, BTreeSet::new());
            if let Some(state) = self.typing.get_mut(&key) {
                state.told.extend(told);
            }
        }
    }

    pub(super) fn typing_expired(&mut self, user: UserId, thread: ThreadId) {
        if let Some(state) = self.typing.remove(&(user.clone(), thread.clone())) {
            self.forward_typing(&user, &thread, false, state.told);
        }
    }

    /// The user sent a message or went away: they are no longer typing there.
    pub(super) fn stop_typing(&mut self, user: &UserId, thread: &ThreadId) {
        if let Some(state) = self.typing.remove(&(user.clone(), thread.clone())) {
            self.timers
                .cancel(&TimerKey::TypingExpiry(user.clone(), thread.clone()));
            self.forward_typing(user, thread, false, state.told);
        }
    }

    pub(super) fn typing_user_gone(&mut self, user: &UserId) {
        let threads: Vec<ThreadId> = self
            .typing
            .keys()
            .filter(|(u, _)| u == user)
            .map(|(_, t)| t.clone())
            .collect();
        for thread in threads {
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
        });
        others
    }
}
