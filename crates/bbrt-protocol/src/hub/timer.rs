//! Every timer of the Hub in one keyed table.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::ids::{CallId, ClientMessageId, ConnId, CredentialId, ThreadId, UserId};

/// What a timer is for. One timer per key at most.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// A user stopped typing in a thread without saying so.
    TypingExpiry(UserId, ThreadId),
    /// Nobody answered a ringing call.
    CallRing(CallId),
    /// A bound device of a call disconnected; end the call unless it comes back.
    CallGrace(CallId),
    /// Time to ask the site again whether a credential is still good.
    Reverify(CredentialId),
    /// Time to try again an upgrade credential the site could not verify.
    VerifyRetry(CredentialId),
    /// Forget a completed `clientMessageId`.
    IdempotencyExpiry(UserId, ClientMessageId),
    /// Drop the participant cache's expired threads that no local connection joined, and
    /// expired `denied` entries.
    CacheSweep,
    /// A user's last connection here closed a grace ago: unless they came back, they are
    /// offline.
    PresenceGrace(UserId),
    /// Scaled out: a thread's message out of turn waited long enough for its predecessor.
    OrderWait(ThreadId),
    /// A replay's messages may no longer arrive live on this connection a second time.
    ReplayDedup(ConnId, ThreadId),
}

/// What the Hub's next timeout is for ([`Hub::next_timeout_reason`](super::Hub::next_timeout_reason)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutReason {
    /// A user stopped typing without saying so: `typing: false` goes out.
    TypingExpiry,
    /// Nobody answered a ringing call: it ends with `timeout`.
    CallRing,
    /// A bound device of a call disconnected and did not come back within the grace.
    CallGrace,
    /// A credential in use is due to be verified again.
    Reverify,
    /// An upgrade credential the site could not verify is due to be tried again.
    VerifyRetry,
    /// A completed `clientMessageId` is forgotten.
    IdempotencyExpiry,
    /// The participant cache sweeps its expired threads.
    CacheSweep,
    /// A user who left did not come back within the presence grace.
    PresenceGrace,
    /// A thread's message out of turn stops waiting for its predecessor.
    OrderWait,
    /// A replay's record of what it wrote (against live copies) expires.
    ReplayDedup,
}

impl TimerKey {
    pub(crate) fn reason(&self) -> TimeoutReason {
        match self {
            Self::TypingExpiry(..) => TimeoutReason::TypingExpiry,
            Self::CallRing(_) => TimeoutReason::CallRing,
            Self::CallGrace(_) => TimeoutReason::CallGrace,
            Self::Reverify(_) => TimeoutReason::Reverify,
            Self::VerifyRetry(_) => TimeoutReason::VerifyRetry,
            Self::IdempotencyExpiry(..) => TimeoutReason::IdempotencyExpiry,
            Self::CacheSweep => TimeoutReason::CacheSweep,
            Self::PresenceGrace(_) => TimeoutReason::PresenceGrace,
            Self::OrderWait(_) => TimeoutReason::OrderWait,
            Self::ReplayDedup(..) => TimeoutReason::ReplayDedup,
        }
    }
}

/// A `BTreeSet<(Instant, TimerKey)>` plus the reverse index needed to reschedule.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    by_time: BTreeSet<(Instant, TimerKey)>,
    by_key: HashMap<TimerKey, Instant>,
}

impl TimerTable {
    /// Sets (or moves) the timer `key` to fire at `at`.
    pub(crate) fn set(&mut self, key: TimerKey, at: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
    }

    /// Cancels the timer `key`, if set.
    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    /// When the timer `key` fires, if set.
    pub(crate) fn at(&self, key: &TimerKey) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// Whether the timer `key` is set.
    pub(crate) fn is_set(&self, key: &TimerKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The key of the earliest deadline.
    pub(crate) fn next_key(&self) -> Option<&TimerKey> {
        self.by_time.first().map(|(_, key)| key)
    }

    /// Removes and returns one timer due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}
