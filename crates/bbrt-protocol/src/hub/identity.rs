//! Identity: verifying credentials through the site, identifying connections, re-verifying
//! at the credential TTL, and closing the connections of a credential the site refuses.
//!
//! A connection acts with one credential: the last one the site verified on it. A newer
//! one replaces it (the old one is released, and its expiry no longer concerns this
//! connection). An upgrade credential the site could not verify (it was down) is kept and
//! verified again with a jittered backoff, one request per credential however many
//! connections wait on it; meanwhile their frames get a retryable error.

use crate::hash::IdMap;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::effects::Effects;
use super::timer::TimerKey;
use super::{Hub, HubConfig, Output, PendingApi};
use crate::api::{ApiRequest, SiteError, SiteErrorKind, SiteUser};
use crate::ids::{ConnId, CredentialId, UserId};
use crate::wire::{CloseCode, ErrorCode};

/// Where the credential being verified came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VerifyOrigin {
    /// The upgrade request: no frame waits on it; a refusal closes the connection.
    Upgrade,
    /// A frame, which waits at the front of the connection's queue.
    Frame,
}

/// An in-flight verification.
#[derive(Debug)]
pub(super) struct PendingVerify {
    conn: Option<ConnId>,
    credential: Option<CredentialId>,
    claimed: Option<UserId>,
    origin: VerifyOrigin,
}

/// Refused credentials remembered per connection (a frame repeating one is answered
/// without asking the site again).
pub(super) const MAX_REJECTED: usize = 4;

/// An upgrade credential the site could not verify yet, and the connections waiting on it.
#[derive(Debug, Default)]
struct VerifyRetry {
    conns: BTreeSet<ConnId>,
    /// Retries made so far (the backoff's exponent).
    attempt: u32,
    in_flight: bool,
    /// The site came back while this retry was in flight (asked while it was down): if it
    /// fails, try again within the first backoff rather than the next.
    soon: bool,
}

/// A verified credential in use on this node.
#[derive(Debug)]
struct CredentialState {
    user: UserId,
    conns: BTreeSet<ConnId>,
    reverifying: bool,
}

/// What the site said when asked again about a credential in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reverified {
    /// It is `user`'s.
    User(UserId),
    /// It is no longer good.
    Refused,
    /// The site could not tell (down or confused).
    Unknown,
}

/// The credentials in use on this node (with their connections, re-verified every TTL)
/// and the upgrade credentials waiting for the site to come back.
#[derive(Debug)]
pub(super) struct Identity {
    credential_ttl: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    jitter_seed: u64,
    credentials: IdMap<CredentialId, CredentialState>,
    verify_retries: IdMap<CredentialId, VerifyRetry>,
}

impl Identity {
    pub(super) fn new(config: &HubConfig) -> Self {
        Self {
            credential_ttl: config.credential_ttl,
            retry_initial: config.verify_retry_initial,
            retry_max: config.verify_retry_max,
            jitter_seed: config.jitter_seed,
            credentials: IdMap::default(),
            verify_retries: IdMap::default(),
        }
    }

    /// No credential in use and no retry waiting.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.credentials.is_empty() && self.verify_retries.is_empty()
    }

    /// Backoff with "equal jitter": half the exponential delay, plus up to as much again
    /// drawn from the seed, the credential and the attempt.
    fn retry_delay(&self, credential: CredentialId, attempt: u32) -> Duration {
        let base = self
            .retry_initial
            .saturating_mul(1 << attempt.min(16))
            .min(self.retry_max);
        let half = base / 2;
        let mut x = self.jitter_seed
            ^ credential.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(attempt).rotate_left(32);
        // splitmix64's finalizer: every input bit moves every output bit.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    /// `conn` waits on the retry of `credential` if there is one (the site is known to be
    /// unable to verify it); `false` if there is none.
    fn wait_retry(&mut self, conn: ConnId, credential: CredentialId) -> bool {
        let Some(retry) = self.verify_retries.get_mut(&credential) else {
            return false;
        };
        retry.conns.insert(conn);
        true
    }

    /// `conn` waits on a retry of `credential`, scheduled now if none is.
    fn join_retry(
        &mut self,
        now: Instant,
        conn: ConnId,
        credential: CredentialId,
        fx: &mut Effects,
    ) {
        let retry = self.verify_retries.entry(credential).or_default();
        retry.conns.insert(conn);
        let (in_flight, attempt) = (retry.in_flight, retry.attempt);
        let key = TimerKey::VerifyRetry(credential);
        if !in_flight && !fx.timers.is_set(&key) {
            let delay = self.retry_delay(credential, attempt);
            fx.timers.set(key, now + delay);
        }
    }

    /// `conn` no longer waits on `credential`; the retry ends with its last connection.
    fn leave_retry(&mut self, conn: ConnId, credential: CredentialId, fx: &mut Effects) {
        let empty = self.verify_retries.get_mut(&credential).is_some_and(|r| {
            r.conns.remove(&conn);
            r.conns.is_empty()
        });
        if empty {
            self.verify_retries.remove(&credential);
            fx.timers.cancel(&TimerKey::VerifyRetry(credential));
        }
    }

    /// The site is back: bring every waiting retry forward to within the first backoff,
    /// each at its own jittered instant.
    fn site_reachable(&mut self, now: Instant, fx: &mut Effects) {
        let mut waiting = Vec::new();
        for (credential, retry) in &mut self.verify_retries {
            if retry.in_flight {
                retry.soon = true;
            } else {
                waiting.push(*credential);
            }
        }
        for credential in waiting {
            let key = TimerKey::VerifyRetry(credential);
            let at = now + self.retry_delay(credential, 0);
            if fx.timers.at(&key).is_none_or(|current| at < current) {
                fx.timers.set(key, at);
            }
        }
    }

    /// The retry of `credential` is due: whether to ask the site (it still has waiters).
    fn start_retry(&mut self, credential: CredentialId) -> bool {
        let Some(retry) = self.verify_retries.get_mut(&credential) else {
            return false;
        };
        retry.in_flight = true;
        true
    }

    /// The site settled `credential` (verified or refused): the connections that waited.
    fn end_retry(&mut self, credential: CredentialId) -> Option<BTreeSet<ConnId>> {
        self.verify_retries.remove(&credential).map(|r| r.conns)
    }

    /// The site still could not verify `credential`: try again after the next backoff, or
    /// the first one if the site came back meanwhile.
    fn retry_failed(&mut self, now: Instant, credential: CredentialId, fx: &mut Effects) {
        let Some(mut retry) = self.verify_retries.remove(&credential) else {
            return;
        };
        retry.in_flight = false;
        let delay = if std::mem::take(&mut retry.soon) {
            self.retry_delay(credential, 0)
        } else {
            retry.attempt = retry.attempt.saturating_add(1);
            self.retry_delay(credential, retry.attempt)
        };
        fx.timers
            .set(TimerKey::VerifyRetry(credential), now + delay);
        self.verify_retries.insert(credential, retry);
    }

    /// `conn` acts with `credential`, verified as `user`; the first connection of a
    /// credential starts its re-verification clock.
    fn attach(
        &mut self,
        now: Instant,
        conn: ConnId,
        credential: CredentialId,
        user: &UserId,
        fx: &mut Effects,
    ) {
        let state = self
            .credentials
            .entry(credential)
            .or_insert_with(|| CredentialState {
                user: user.clone(),
                conns: BTreeSet::new(),
                reverifying: false,
            });
        let new = state.conns.is_empty();
        state.conns.insert(conn);
        if new {
            fx.timers
                .set(TimerKey::Reverify(credential), now + self.credential_ttl);
        }
    }

    /// `conn` no longer acts with `credential`; the credential is forgotten with its last
    /// connection.
    fn detach(&mut self, conn: ConnId, credential: CredentialId, fx: &mut Effects) {
        let unused = self.credentials.get_mut(&credential).is_some_and(|s| {
            s.conns.remove(&conn);
            s.conns.is_empty()
        });
        if unused {
            self.credentials.remove(&credential);
            fx.timers.cancel(&TimerKey::Reverify(credential));
        }
    }

    /// The re-verification of `credential` is due: the user to ask the site about, unless
    /// the credential is gone or already being asked about.
    fn start_reverify(&mut self, credential: CredentialId) -> Option<UserId> {
        let state = self.credentials.get_mut(&credential)?;
        if state.reverifying {
            return None;
        }
        state.reverifying = true;
        Some(state.user.clone())
    }

    /// The site answered a re-verification; `true` if the credential must be revoked.
    fn reverified(
        &mut self,
        now: Instant,
        credential: CredentialId,
        answer: Reverified,
        fx: &mut Effects,
    ) -> bool {
        let Some(state) = self.credentials.get_mut(&credential) else {
            return false;
        };
        state.reverifying = false;
        let next = match answer {
            Reverified::User(user) if user == state.user => self.credential_ttl,
            Reverified::User(_) | Reverified::Refused => return true,
            // Keep the connections and ask again soon.
            Reverified::Unknown => self.credential_ttl / 10,
        };
        fx.timers.set(TimerKey::Reverify(credential), now + next);
        false
    }

    /// Forgets `credential`: the connections that acted with it.
    fn revoke(&mut self, credential: CredentialId, fx: &mut Effects) -> BTreeSet<ConnId> {
        fx.timers.cancel(&TimerKey::Reverify(credential));
        self.credentials
            .remove(&credential)
            .map(|s| s.conns)
            .unwrap_or_default()
    }
}

/// What a connection knows of a credential.
pub(super) enum CredentialStatus {
    /// Verified as this connection's user.
    Known,
    /// Refused by the site on this connection.
    Rejected,
    /// Never seen on this connection.
    Unknown,
}

impl Hub {
    pub(super) fn credential_status(
        &self,
        conn: ConnId,
        credential: CredentialId,
    ) -> CredentialStatus {
        match self.dir.get(conn) {
            Some(c) if c.credential == Some(credential) => CredentialStatus::Known,
            Some(c) if c.rejected.contains(&credential) => CredentialStatus::Rejected,
            _ => CredentialStatus::Unknown,
        }
    }

    pub(super) fn start_verify(
        &mut self,
        conn: ConnId,
        credential: Option<CredentialId>,
        claimed: Option<UserId>,
        origin: VerifyOrigin,
    ) {
        let Some(c) = self.dir.get_mut(conn) else {
            return;
        };
        if origin == VerifyOrigin::Upgrade {
            c.blocked = true;
        }
        let current_user = c.user().cloned();
        let request = ApiRequest::Verify {
            credential,
            claimed_user: claimed.clone(),
            current_user,
        };
        let pending = PendingVerify {
            conn: Some(conn),
            credential,
            claimed,
            origin,
        };
        self.api(request, PendingApi::Verify(pending));
    }

    pub(super) fn verify_result(
        &mut self,
        now: Instant,
        pending: PendingVerify,
        result: Result<SiteUser, SiteError>,
    ) {
        let result = self.refuse_gone(now, result);
        let Some(conn) = pending.conn else {
            // A periodic re-verification of a credential in use.
            let Some(credential) = pending.credential else {
                return;
            };
            self.reverify_result(now, credential, result);
            return;
        };
        if !self.dir.contains(conn) {
            return;
        }
        let user = match result {
            Ok(user) => user.id,
            Err(error) => {
                if let (Some(credential), SiteErrorKind::Unauthenticated) =
                    (pending.credential, error.kind)
                    && let Some(c) = self.dir.get_mut(conn)
                {
                    c.rejected.push_back(credential);
                    let forgotten = (c.rejected.len() > MAX_REJECTED)
                        .then(|| c.rejected.pop_front())
                        .flatten();
                    self.release_if_unused(conn, forgotten);
                }
                match pending.origin {
                    VerifyOrigin::Upgrade if error.kind == SiteErrorKind::Unauthenticated => {
                        self.close_with(now, conn, CloseCode::CredentialRejected);
                    }
                    VerifyOrigin::Upgrade => {
                        // The site is down: keep the credential, verify it again later,
                        // and answer frames meanwhile with a retryable error.
                        if let Some(credential) = pending.credential {
                            self.join_verify_retry(now, conn, credential);
                        }
                        self.unblock(now, conn);
                    }
                    VerifyOrigin::Frame => {
                        let code = super::site_error_code(&error);
                        self.fail_blocked(now, conn, code, code.message());
                    }
                }
                return;
            }
        };
        let current = self.dir.user_of(conn).cloned();
        let mismatch = pending
            .claimed
            .as_ref()
            .is_some_and(|claimed| *claimed != user)
            || current.as_ref().is_some_and(|current| *current != user);
        if mismatch {
            let text = ErrorCode::IdentityMismatch.message();
            match pending.origin {
                VerifyOrigin::Upgrade => self.close_with(now, conn, CloseCode::CredentialRejected),
                VerifyOrigin::Frame => {
                    self.fail_blocked(now, conn, ErrorCode::IdentityMismatch, text)
                }
            }
            return;
        }
        if current.is_none() && !self.identify(now, conn, &user) {
            return;
        }
        if let Some(credential) = pending.credential {
            self.attach_credential(now, conn, credential, &user);
        }
        if pending.origin == VerifyOrigin::Upgrade
            && let Some(c) = self.dir.get_mut(conn)
        {
            c.unverified_upgrade = None;
        }
        self.unblock(now, conn);
    }

    /// Verifies the credential presented with the upgrade; while the site is known to be
    /// unable to verify it (a retry is pending), the connection joins that retry instead
    /// of asking again.
    pub(super) fn verify_upgrade(&mut self, conn: ConnId, credential: CredentialId) {
        if let Some(c) = self.dir.get_mut(conn) {
            c.unverified_upgrade = Some(credential);
        }
        if self.identity.wait_retry(conn, credential) {
            return;
        }
        self.start_verify(conn, Some(credential), None, VerifyOrigin::Upgrade);
    }

    fn join_verify_retry(&mut self, now: Instant, conn: ConnId, credential: CredentialId) {
        self.identity
            .join_retry(now, conn, credential, &mut self.fx);
    }

    /// The connection no longer waits for `credential` (it closed, or was identified
    /// otherwise).
    pub(super) fn leave_verify_retry(&mut self, conn: ConnId, credential: CredentialId) {
        self.identity.leave_retry(conn, credential, &mut self.fx);
    }

    /// The site is back: upgrade credentials waiting for it are tried again soon.
    pub(super) fn site_reachable(&mut self, now: Instant) {
        self.identity.site_reachable(now, &mut self.fx);
    }

    /// Timer: verify again an upgrade credential the site could not verify.
    pub(super) fn retry_verify(&mut self, credential: CredentialId) {
        if !self.identity.start_retry(credential) {
            return;
        }
        let request = ApiRequest::Verify {
            credential: Some(credential),
            claimed_user: None,
            current_user: None,
        };
        self.api(request, PendingApi::VerifyRetry(credential));
    }

    pub(super) fn verify_retry_result(
        &mut self,
        now: Instant,
        credential: CredentialId,
        result: Result<SiteUser, SiteError>,
    ) {
        let settled = match &result {
            Ok(_) => true,
            Err(e) => e.kind == SiteErrorKind::Unauthenticated,
        };
        if !settled {
            self.identity.retry_failed(now, credential, &mut self.fx);
            return;
        }
        let Some(conns) = self.identity.end_retry(credential) else {
            return;
        };
        match result {
            Ok(user) => {
                for conn in conns {
                    let Some(c) = self.dir.get_mut(conn) else {
                        continue;
                    };
                    c.unverified_upgrade = None;
                    // Identified meanwhile as someone else: this credential is not its own.
                    if c.user().is_some_and(|u| *u != user.id) {
                        self.release_if_unused(conn, Some(credential));
                        continue;
                    }
                    if c.user().is_some() || self.identify(now, conn, &user.id) {
                        self.attach_credential(now, conn, credential, &user.id);
                    }
                }
            }
            Err(_) => {
                for conn in conns {
                    self.close_with(now, conn, CloseCode::CredentialRejected);
                }
            }
        }
    }

    /// Makes `conn` a verified connection of `user`. Returns `false` if it was closed
    /// instead (too many connections for the user).
    fn identify(&mut self, now: Instant, conn: ConnId, user: &UserId) -> bool {
        let count = self.dir.local(user).map_or(0, |u| u.conns.len());
        if count >= self.config.max_conns_per_user {
            let text = ErrorCode::TooManyConnections.message();
            // The answer to the frame that asked to identify, if one did: it goes out
            // before the close.
            let request_id = self.blocked_request_id(conn);
            self.error(conn, ErrorCode::TooManyConnections, text, request_id);
            self.close_with(now, conn, CloseCode::TooManyConnections);
            return false;
        }
        let first = self.dir.identify(conn, user);
        if first && !self.user_came_back(user) {
            self.presence_changed(user, true, true);
        }
        self.calls_user_connected(conn, user);
        true
    }

    /// Makes `credential` the one `conn` acts with; the one it replaces is released.
    fn attach_credential(
        &mut self,
        now: Instant,
        conn: ConnId,
        credential: CredentialId,
        user: &UserId,
    ) {
        let Some(c) = self.dir.get_mut(conn) else {
            return;
        };
        let replaced = c.credential.replace(credential);
        if replaced == Some(credential) {
            return;
        }
        let upgrade = c.unverified_upgrade.filter(|u| *u != credential);
        if let Some(old) = replaced {
            self.detach_credential(conn, old);
            self.release_if_unused(conn, Some(old));
        }
        // Identified by another credential: the upgrade's is not waited for any more.
        if let Some(upgrade) = upgrade {
            if let Some(c) = self.dir.get_mut(conn) {
                c.unverified_upgrade = None;
            }
            self.leave_verify_retry(conn, upgrade);
            self.release_if_unused(conn, Some(upgrade));
        }
        self.identity
            .attach(now, conn, credential, user, &mut self.fx);
    }

    /// `conn` no longer acts with `credential`: it is not closed when that one is refused.
    pub(super) fn detach_credential(&mut self, conn: ConnId, credential: CredentialId) {
        self.identity.detach(conn, credential, &mut self.fx);
    }

    /// Releases `credential` for `conn` unless the connection still needs it: as its
    /// current or unverified upgrade credential, for a frame still waiting, or to refuse
    /// it again without asking the site.
    pub(super) fn release_if_unused(&mut self, conn: ConnId, credential: Option<CredentialId>) {
        let Some(credential) = credential else { return };
        let Some(c) = self.dir.get_mut(conn) else {
            return;
        };
        let in_use = c.credential == Some(credential)
            || c.unverified_upgrade == Some(credential)
            || c.rejected.contains(&credential)
            || c.queue.iter().any(|q| q.credential == Some(credential));
        if !in_use && c.held.remove(&credential) {
            self.fx
                .outputs
                .push_back(Output::ReleaseCredential { conn, credential });
        }
    }

    /// Timer: ask the site again about a credential in use.
    pub(super) fn reverify(&mut self, credential: CredentialId) {
        let Some(user) = self.identity.start_reverify(credential) else {
            return;
        };
        let current_user = Some(user);
        let request = ApiRequest::Verify {
            credential: Some(credential),
            claimed_user: None,
            current_user,
        };
        let pending = PendingVerify {
            conn: None,
            credential: Some(credential),
            claimed: None,
            origin: VerifyOrigin::Frame,
        };
        self.api(request, PendingApi::Verify(pending));
    }

    fn reverify_result(
        &mut self,
        now: Instant,
        credential: CredentialId,
        result: Result<SiteUser, SiteError>,
    ) {
        let answer = match result {
            Ok(user) => Reverified::User(user.id),
            Err(e) if e.kind == SiteErrorKind::Unauthenticated => Reverified::Refused,
            Err(_) => Reverified::Unknown,
        };
        if self
            .identity
            .reverified(now, credential, answer, &mut self.fx)
        {
            self.revoke(now, credential);
        }
    }

    /// The site refuses `credential` now: close every connection that relies on it.
    pub(super) fn revoke(&mut self, now: Instant, credential: CredentialId) {
        for conn in self.identity.revoke(credential, &mut self.fx) {
            self.close_with(now, conn, CloseCode::CredentialRejected);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::effects::testing::{epoch, fx};
    use crate::ids::testing::user;

    #[test]
    fn a_credential_is_reverified_from_its_first_connection_until_its_last() {
        let config = HubConfig::default();
        let (mut identity, mut fx) = (Identity::new(&config), fx());
        let (alice, key, now) = (user("alice"), CredentialId(1), epoch());
        let reverify = TimerKey::Reverify(key);
        identity.attach(now, ConnId(1), key, &alice, &mut fx);
        identity.attach(
            now + Duration::from_secs(5),
            ConnId(2),
            key,
            &alice,
            &mut fx,
        );
        assert_eq!(fx.timers.at(&reverify), Some(now + config.credential_ttl));
        assert_eq!(identity.start_reverify(key), Some(alice.clone()));
        assert_eq!(identity.start_reverify(key), None, "one request at a time");
        let later = now + config.credential_ttl;
        let answer = Reverified::User(alice.clone());
        assert!(!identity.reverified(later, key, answer, &mut fx));
        assert_eq!(fx.timers.at(&reverify), Some(later + config.credential_ttl));
        assert!(!identity.reverified(later, key, Reverified::Unknown, &mut fx));
        assert_eq!(
            fx.timers.at(&reverify),
            Some(later + config.credential_ttl / 10)
        );
        identity.detach(ConnId(1), key, &mut fx);
        assert!(fx.timers.is_set(&reverify), "still used by connection 2");
        identity.detach(ConnId(2), key, &mut fx);
        assert!(!fx.timers.is_set(&reverify));
        assert!(identity.is_empty(), "nothing left: {identity:?}");
    }

    #[test]
    fn another_user_or_a_refusal_revokes_every_connection() {
        let (mut identity, mut fx) = (Identity::new(&HubConfig::default()), fx());
        let (key, now) = (CredentialId(1), epoch());
        identity.attach(now, ConnId(1), key, &user("alice"), &mut fx);
        identity.attach(now, ConnId(2), key, &user("alice"), &mut fx);
        assert!(identity.reverified(now, key, Reverified::User(user("bob")), &mut fx));
        assert!(identity.reverified(now, key, Reverified::Refused, &mut fx));
        assert_eq!(
            identity.revoke(key, &mut fx),
            BTreeSet::from([ConnId(1), ConnId(2)])
        );
        assert!(
            !identity.reverified(now, key, Reverified::Refused, &mut fx),
            "gone"
        );
        assert!(!fx.timers.is_set(&TimerKey::Reverify(key)));
        assert!(identity.is_empty());
    }

    #[test]
    fn a_retry_backs_off_with_jitter_within_its_bounds() {
        let config = HubConfig::default();
        let identity = Identity::new(&config);
        for attempt in 0..20 {
            let base = config
                .verify_retry_initial
                .saturating_mul(1 << attempt.min(16))
                .min(config.verify_retry_max);
            let delay = identity.retry_delay(CredentialId(7), attempt);
            assert!(
                delay >= base / 2 && delay <= base,
                "{attempt}: {delay:?} of {base:?}"
            );
        }
        assert_ne!(
            identity.retry_delay(CredentialId(1), 3),
            identity.retry_delay(CredentialId(2), 3),
            "credentials retried after one outage spread out"
        );
    }

    #[test]
    fn a_retry_is_one_per_credential_and_ends_with_its_last_waiter() {
        let config = HubConfig::default();
        let (mut identity, mut fx) = (Identity::new(&config), fx());
        let (key, now) = (CredentialId(1), epoch());
        let timer = TimerKey::VerifyRetry(key);
        assert!(!identity.wait_retry(ConnId(1), key), "no retry yet");
        identity.join_retry(now, ConnId(1), key, &mut fx);
        let first = fx.timers.at(&timer).expect("a retry is scheduled");
        assert!(identity.wait_retry(ConnId(2), key));
        assert!(identity.start_retry(key));
        identity.site_reachable(now, &mut fx);
        identity.retry_failed(now, key, &mut fx);
        let soon = fx.timers.at(&timer).expect("rescheduled");
        assert!(
            soon <= now + config.verify_retry_initial,
            "the site came back: soon"
        );
        assert!(first <= now + config.verify_retry_initial);
        identity.leave_retry(ConnId(1), key, &mut fx);
        assert_eq!(identity.end_retry(key), Some(BTreeSet::from([ConnId(2)])));
        assert!(!identity.start_retry(key), "settled");
        identity.join_retry(now, ConnId(3), key, &mut fx);
        identity.leave_retry(ConnId(3), key, &mut fx);
        assert!(!fx.timers.is_set(&timer), "no waiter, no retry");
        assert!(identity.is_empty());
    }
}
