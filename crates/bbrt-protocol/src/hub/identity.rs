//! Identity: verifying credentials through the site, identifying connections, re-verifying
//! at the credential TTL, and closing the connections of a credential the site refuses.
//!
//! A connection acts with one credential: the last one the site verified on it. A newer
//! one replaces it (the old one is released, and its expiry no longer concerns this
//! connection). An upgrade credential the site could not verify (it was down) is kept and
//! verified again with a jittered backoff, one request per credential however many
//! connections wait on it; meanwhile their frames get a retryable error.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::timer::TimerKey;
use super::{CredentialState, Hub, Output, PendingApi};
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

/// Upgrade credentials the site could not verify yet, and the connections waiting on one.
#[derive(Debug, Default)]
pub(super) struct VerifyRetry {
    conns: BTreeSet<ConnId>,
    /// Retries made so far (the backoff's exponent).
    attempt: u32,
    in_flight: bool,
    /// The site came back while this retry was in flight (asked while it was down): if it
    /// fails, try again within the first backoff rather than the next.
    soon: bool,
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
        match self.conns.get(&conn) {
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
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if origin == VerifyOrigin::Upgrade {
            c.blocked = true;
        }
        let current_user = c.user.clone();
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
        let Some(conn) = pending.conn else {
            // A periodic re-verification of a credential in use.
            let Some(credential) = pending.credential else {
                return;
            };
            self.reverify_result(now, credential, result);
            return;
        };
        if !self.conns.contains_key(&conn) {
            return;
        }
        let user = match result {
            Ok(user) => user.id,
            Err(error) => {
                if let (Some(credential), SiteErrorKind::Unauthenticated) =
                    (pending.credential, error.kind)
                    && let Some(c) = self.conns.get_mut(&conn)
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
        let current = self.conns.get(&conn).and_then(|c| c.user.clone());
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
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.unverified_upgrade = None;
        }
        self.unblock(now, conn);
    }

    /// Verifies the credential presented with the upgrade; while the site is known to be
    /// unable to verify it (a retry is pending), the connection joins that retry instead
    /// of asking again.
    pub(super) fn verify_upgrade(&mut self, conn: ConnId, credential: CredentialId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.unverified_upgrade = Some(credential);
        }
        if let Some(retry) = self.verify_retries.get_mut(&credential) {
            retry.conns.insert(conn);
            return;
        }
        self.start_verify(conn, Some(credential), None, VerifyOrigin::Upgrade);
    }

    fn join_verify_retry(&mut self, now: Instant, conn: ConnId, credential: CredentialId) {
        let retry = self.verify_retries.entry(credential).or_default();
        retry.conns.insert(conn);
        let (in_flight, attempt) = (retry.in_flight, retry.attempt);
        let key = TimerKey::VerifyRetry(credential);
        if !in_flight && !self.fx.timers.is_set(&key) {
            let delay = self.verify_retry_delay(credential, attempt);
            self.fx.timers.set(key, now + delay);
        }
    }

    /// The connection no longer waits for `credential` (it closed, or was identified
    /// otherwise).
    pub(super) fn leave_verify_retry(&mut self, conn: ConnId, credential: CredentialId) {
        let empty = self.verify_retries.get_mut(&credential).is_some_and(|r| {
            r.conns.remove(&conn);
            r.conns.is_empty()
        });
        if empty {
            self.verify_retries.remove(&credential);
            self.fx.timers.cancel(&TimerKey::VerifyRetry(credential));
        }
    }

    /// Backoff with "equal jitter": half the exponential delay, plus up to as much again
    /// drawn from the seed, the credential and the attempt.
    fn verify_retry_delay(&self, credential: CredentialId, attempt: u32) -> Duration {
        let (initial, max) = (
            self.config.verify_retry_initial,
            self.config.verify_retry_max,
        );
        let base = initial.saturating_mul(1 << attempt.min(16)).min(max);
        let half = base / 2;
        let mut x = self.config.jitter_seed
            ^ credential.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(attempt).rotate_left(32);
        // splitmix64's finalizer: every input bit moves every output bit.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    /// The site is back: bring every waiting retry forward to within the first backoff,
    /// each at its own jittered instant.
    pub(super) fn site_reachable(&mut self, now: Instant) {
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
            let at = now + self.verify_retry_delay(credential, 0);
            if self.fx.timers.at(&key).is_none_or(|current| at < current) {
                self.fx.timers.set(key, at);
            }
        }
    }

    /// Timer: verify again an upgrade credential the site could not verify.
    pub(super) fn retry_verify(&mut self, credential: CredentialId) {
        let Some(retry) = self.verify_retries.get_mut(&credential) else {
            return;
        };
        retry.in_flight = true;
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
        let Some(mut retry) = self.verify_retries.remove(&credential) else {
            return;
        };
        retry.in_flight = false;
        match result {
            Ok(user) => {
                for conn in retry.conns {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    c.unverified_upgrade = None;
                    // Identified meanwhile as someone else: this credential is not its own.
                    if c.user.as_ref().is_some_and(|u| *u != user.id) {
                        self.release_if_unused(conn, Some(credential));
                        continue;
                    }
                    if c.user.is_some() || self.identify(now, conn, &user.id) {
                        self.attach_credential(now, conn, credential, &user.id);
                    }
                }
            }
            Err(e) if e.kind == SiteErrorKind::Unauthenticated => {
                for conn in retry.conns {
                    self.close_with(now, conn, CloseCode::CredentialRejected);
                }
            }
            Err(_) => {
                let delay = if std::mem::take(&mut retry.soon) {
                    self.verify_retry_delay(credential, 0)
                } else {
                    retry.attempt = retry.attempt.saturating_add(1);
                    self.verify_retry_delay(credential, retry.attempt)
                };
                self.fx
                    .timers
                    .set(TimerKey::VerifyRetry(credential), now + delay);
                self.verify_retries.insert(credential, retry);
            }
        }
    }

    /// Makes `conn` a verified connection of `user`. Returns `false` if it was closed
    /// instead (too many connections for the user).
    fn identify(&mut self, now: Instant, conn: ConnId, user: &UserId) -> bool {
        let count = self.users.get(user).map_or(0, |u| u.conns.len());
        if count >= self.config.max_conns_per_user {
            let text = ErrorCode::TooManyConnections.message();
            // The answer to the frame that asked to identify, if one did: it goes out
            // before the close.
            let request_id = self.blocked_request_id(conn);
            self.error(conn, ErrorCode::TooManyConnections, text, request_id);
            self.close_with(now, conn, CloseCode::TooManyConnections);
            return false;
        }
        self.leave_anonymous(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.user = Some(user.clone());
        }
        let first = !self.users.contains_key(user);
        self.users
            .entry(user.clone())
            .or_default()
            .conns
            .insert(conn);
        if first {
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
        let Some(c) = self.conns.get_mut(&conn) else {
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
            if let Some(c) = self.conns.get_mut(&conn) {
                c.unverified_upgrade = None;
            }
            self.leave_verify_retry(conn, upgrade);
            self.release_if_unused(conn, Some(upgrade));
        }
        let ttl = self.config.credential_ttl;
        let state = self
            .credentials
            .entry(credential)
            .or_insert_with(|| CredentialState {
                user: user.clone(),
                conns: Default::default(),
                reverifying: false,
            });
        let new = state.conns.is_empty();
        state.conns.insert(conn);
        if new {
            self.fx
                .timers
                .set(TimerKey::Reverify(credential), now + ttl);
        }
    }

    /// `conn` no longer acts with `credential`: it is not closed when that one is refused.
    pub(super) fn detach_credential(&mut self, conn: ConnId, credential: CredentialId) {
        let unused = self.credentials.get_mut(&credential).is_some_and(|s| {
            s.conns.remove(&conn);
            s.conns.is_empty()
        });
        if unused {
            self.credentials.remove(&credential);
            self.fx.timers.cancel(&TimerKey::Reverify(credential));
        }
    }

    /// Releases `credential` for `conn` unless the connection still needs it: as its
    /// current or unverified upgrade credential, for a frame still waiting, or to refuse
    /// it again without asking the site.
    pub(super) fn release_if_unused(&mut self, conn: ConnId, credential: Option<CredentialId>) {
        let Some(credential) = credential else { return };
        let Some(c) = self.conns.get_mut(&conn) else {
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
        let Some(state) = self.credentials.get_mut(&credential) else {
            return;
        };
        if state.reverifying {
            return;
        }
        state.reverifying = true;
        let current_user = Some(state.user.clone());
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
        let Some(state) = self.credentials.get_mut(&credential) else {
            return;
        };
        state.reverifying = false;
        let expected = state.user.clone();
        match result {
            Ok(user) if user.id == expected => {
                self.fx.timers.set(
                    TimerKey::Reverify(credential),
                    now + self.config.credential_ttl,
                );
            }
            Ok(_) => self.revoke(now, credential),
            Err(e) if e.kind == SiteErrorKind::Unauthenticated => self.revoke(now, credential),
            Err(_) => {
                // The site is down or confused: keep the connections and ask again soon.
                let retry = self.config.credential_ttl / 10;
                self.fx
                    .timers
                    .set(TimerKey::Reverify(credential), now + retry);
            }
        }
    }

    /// The site refuses `credential` now: close every connection that relies on it.
    pub(super) fn revoke(&mut self, now: Instant, credential: CredentialId) {
        let Some(state) = self.credentials.remove(&credential) else {
            return;
        };
        self.fx.timers.cancel(&TimerKey::Reverify(credential));
        for conn in state.conns {
            self.close_with(now, conn, CloseCode::CredentialRejected);
        }
    }
}
