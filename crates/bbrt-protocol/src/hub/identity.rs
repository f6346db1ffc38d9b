//! Identity: verifying credentials through the site, identifying connections, re-verifying
//! at the credential TTL, and closing the connections of a credential the site refuses.

use std::time::Instant;

use super::timer::TimerKey;
use super::{CredentialState, Hub, PendingApi};
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
            Some(c) if c.credentials.contains(&credential) => CredentialStatus::Known,
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
                    c.rejected.push(credential);
                }
                match pending.origin {
                    VerifyOrigin::Upgrade if error.kind == SiteErrorKind::Unauthenticated => {
                        self.close_with(now, conn, CloseCode::CredentialRejected);
                    }
                    VerifyOrigin::Upgrade => {
                        // The site is down: stay open, anonymous, and say why.
                        self.site_error(conn, &error, None);
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
        self.unblock(now, conn);
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

    fn attach_credential(
        &mut self,
        now: Instant,
        conn: ConnId,
        credential: CredentialId,
        user: &UserId,
    ) {
        if let Some(c) = self.conns.get_mut(&conn)
            && !c.credentials.contains(&credential)
        {
            c.credentials.push(credential);
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
            self.timers.set(TimerKey::Reverify(credential), now + ttl);
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
                self.timers.set(
                    TimerKey::Reverify(credential),
                    now + self.config.credential_ttl,
                );
            }
            Ok(_) => self.revoke(now, credential),
            Err(e) if e.kind == SiteErrorKind::Unauthenticated => self.revoke(now, credential),
            Err(_) => {
                // The site is down or confused: keep the connections and ask again soon.
                let retry = self.config.credential_ttl / 10;
                self.timers.set(TimerKey::Reverify(credential), now + retry);
            }
        }
    }

    /// The site refuses `credential` now: close every connection that relies on it.
    pub(super) fn revoke(&mut self, now: Instant, credential: CredentialId) {
        let Some(state) = self.credentials.remove(&credential) else {
            return;
        };
        self.timers.cancel(&TimerKey::Reverify(credential));
        for conn in state.conns {
            self.close_with(now, conn, CloseCode::CredentialRejected);
        }
    }
}
