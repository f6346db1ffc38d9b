//! Where each queued frame goes: the credential gate first, then the anonymous or the
//! verified dispatch, and the membership check requests that need a thread share.

use std::time::Instant;

use super::calls::{CallAction, CallFrame};
use super::{Gate, Hub, Queued, identity, recovery, threads};
use crate::ids::{ConnId, CredentialId, ThreadId, UserId};
use crate::wire::{Ack, ClientFrame, ClientMessage, ErrorCode, Pong, RequestId, ServerMessage};

impl Hub {
    /// Handles one frame. Returns it back if it must wait for the site (the Hub has
    /// already emitted the request).
    pub(super) fn dispatch(&mut self, now: Instant, conn: ConnId, item: Queued) -> Option<Queued> {
        let item = match self.credential_gate(conn, item) {
            Gate::Pass(item) => item,
            Gate::Answered => return None,
            Gate::Waits(item) => return Some(item),
        };
        match self.dir.user_of(conn).cloned() {
            Some(user) => self.dispatch_verified(now, conn, &user, item),
            None => self.dispatch_anonymous(conn, item),
        }
    }

    /// Identity first: a new credential on this connection must be verified.
    pub(super) fn credential_gate(&mut self, conn: ConnId, item: Queued) -> Gate {
        let Some(credential) = item.credential else {
            return Gate::Pass(item);
        };
        match self.credential_status(conn, credential) {
            identity::CredentialStatus::Known => Gate::Pass(item),
            identity::CredentialStatus::Rejected => {
                let code = ErrorCode::Unauthenticated;
                self.error(conn, code, code.message(), item.frame.request_id);
                Gate::Answered
            }
            identity::CredentialStatus::Unknown => {
                let claimed = match &item.frame.message {
                    ClientMessage::UserConnected(m) => Some(m.user_id.clone()),
                    _ => None,
                };
                let origin = identity::VerifyOrigin::Frame;
                self.start_verify(conn, Some(credential), claimed, origin);
                Gate::Waits(item)
            }
        }
    }

    /// A frame of a connection not (yet) identified.
    pub(super) fn dispatch_anonymous(&mut self, conn: ConnId, item: Queued) -> Option<Queued> {
        let request_id = item.frame.request_id.clone();
        let unverified = self
            .dir
            .get(conn)
            .is_some_and(|c| c.unverified_upgrade.is_some());
        match &item.frame.message {
            ClientMessage::Ping(_) => {
                self.send_one(conn, &ServerMessage::Pong(Pong { request_id }));
                None
            }
            // Never silently anonymous: the upgrade's credential is verified as soon
            // as the site answers again.
            _ if unverified => {
                let code = ErrorCode::SiteUnavailable;
                self.error(conn, code, code.message(), request_id);
                None
            }
            ClientMessage::UserConnected(m) => {
                let claimed = Some(m.user_id.clone());
                self.start_verify(conn, None, claimed, identity::VerifyOrigin::Frame);
                Some(item)
            }
            _ => {
                let code = ErrorCode::Unauthenticated;
                self.error(conn, code, code.message(), request_id);
                None
            }
        }
    }

    /// A frame of a connection verified as `user`.
    pub(super) fn dispatch_verified(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        item: Queued,
    ) -> Option<Queued> {
        let request_id = item.frame.request_id.clone();
        match item.frame.message {
            ClientMessage::UserConnected(ref m) => {
                if m.user_id == *user {
                    self.ack_if_asked(conn, request_id, Ack::default());
                } else {
                    let text = ErrorCode::IdentityMismatch.message();
                    self.error(conn, ErrorCode::IdentityMismatch, text, request_id);
                }
                None
            }
            ClientMessage::Ping(_) => {
                self.send_one(conn, &ServerMessage::Pong(Pong { request_id }));
                None
            }
            ClientMessage::GetIceServers(_) => {
                self.get_ice_servers(now, conn, user, request_id);
                None
            }
            ClientMessage::JoinThread(ref m) => self
                .join(now, conn, user, m, recovery::Answer::Join(request_id))
                .then_some(item),
            ClientMessage::Resume(r) => {
                let rest = self.resume(now, conn, user, r, request_id.clone())?;
                let frame = ClientFrame {
                    request_id,
                    message: ClientMessage::Resume(rest),
                };
                let credential = item.credential;
                Some(Queued { frame, credential })
            }
            ClientMessage::LeaveThread(ref m) => {
                self.leave(conn, &m.thread_id);
                self.ack_thread(conn, request_id, m.thread_id.clone());
                None
            }
            ClientMessage::SendMessage(m) => {
                self.send_message(conn, user, m, request_id);
                None
            }
            ClientMessage::Typing(ref m) => {
                let thread = m.thread_id.clone();
                if self.require_member(now, conn, user, &thread, request_id.as_ref())? {
                    return Some(item);
                }
                self.typing(now, user, &thread, m.typing.unwrap_or(true));
                self.ack_thread(conn, request_id, thread);
                None
            }
            ClientMessage::MarkRead(ref m) => {
                let thread = m.thread_id.clone();
                if self.require_member(now, conn, user, &thread, request_id.as_ref())? {
                    return Some(item);
                }
                self.mark_read(conn, user, thread, request_id);
                None
            }
            ClientMessage::CallInitiated(c) => {
                let call = CallFrame::new(c, CallAction::Initiate);
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
            ClientMessage::Offer(o) => {
                let call = CallFrame::new(o.control(), CallAction::Offer(o.offer));
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
            ClientMessage::Answer(a) => {
                let call = CallFrame::new(a.control(), CallAction::Answer(a.answer));
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
            ClientMessage::IceCandidate(i) => {
                let call = CallFrame::new(i.control(), CallAction::Candidate(i.candidate));
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
            ClientMessage::CallAccepted(c) => {
                let call = CallFrame::new(c, CallAction::Accept);
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
            ClientMessage::CallRejected(c) => {
                let call = CallFrame::new(c, CallAction::Reject);
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
            ClientMessage::CallEnded(c) => {
                let call = CallFrame::new(c, CallAction::End);
                self.call_queued(now, conn, user, call, request_id, item.credential)
            }
        }
    }

    /// A call frame; one that must wait for the site comes back as the frame it was.
    pub(super) fn call_queued(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        call: CallFrame,
        request_id: Option<RequestId>,
        credential: Option<CredentialId>,
    ) -> Option<Queued> {
        let blocked = self.call_frame(now, conn, user, call, request_id.clone())?;
        Some(Queued {
            frame: ClientFrame {
                request_id,
                message: blocked.into_message(),
            },
            credential,
        })
    }

    // ----- helpers shared by the modules -----

    /// Checks that `user` is in `thread`. `Some(false)`: go on; `Some(true)`: the frame
    /// must wait for the site (already asked); `None`: refused (error already sent).
    pub(super) fn require_member(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        thread: &ThreadId,
        request_id: Option<&RequestId>,
    ) -> Option<bool> {
        match self.membership(now, user, thread) {
            threads::Membership::Member => Some(false),
            threads::Membership::NotMember => {
                self.error(
                    conn,
                    ErrorCode::Forbidden,
                    ErrorCode::Forbidden.message(),
                    request_id.cloned(),
                );
                None
            }
            threads::Membership::Unknown => {
                self.fetch_participants(conn, user, thread, false);
                Some(true)
            }
        }
    }
}
