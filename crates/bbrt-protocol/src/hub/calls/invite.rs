//! Invites: a call frame's checks, glare and busy, the call id, ringing every device.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::hub::timer::TimerKey;
use crate::hub::{BrokerEvent, CallSnapshot, Hub};
use crate::ids::{CallId, ConnId, DeviceRef, ThreadId, UserId};
use crate::wire::{
    Ack, CallControl, CallEnded, CallEvent, EndReason, ErrorCode, RequestId, ServerMessage,
};

impl Hub {
    pub(super) fn device(&self, conn: ConnId) -> DeviceRef {
        DeviceRef {
            node: self.config.node_id.clone(),
            conn: conn.0,
        }
    }

    pub(super) fn local_conn(&self, device: &DeviceRef) -> Option<ConnId> {
        (device.node == self.config.node_id).then_some(ConnId(device.conn))
    }

    /// A call frame from a verified user. Returns it back if it must wait for the site.
    pub(in crate::hub) fn call_frame(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        frame: CallFrame,
        request_id: Option<RequestId>,
    ) -> Option<CallFrame> {
        let control = &frame.control;
        let peer = resolve_peer(user, control);
        if let Some(call) = self.find_call(user, peer.as_ref(), control) {
            let glare = frame.invites()
                && self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.snapshot.callee == *user && !c.answered());
            if !glare {
                self.call_action(conn, user, &call, frame.action, request_id);
                return None;
            }
        }
        let Some(peer) = peer else {
            let text = "call frames need a recipientId other than yourself";
            self.error(conn, ErrorCode::MissingRecipient, text, request_id);
            return None;
        };
        if !frame.invites() {
            if self.is_online(&peer) {
                self.error(
                    conn,
                    ErrorCode::NotInCall,
                    "no call with this user",
                    request_id,
                );
            } else {
                self.error(
                    conn,
                    ErrorCode::RecipientOffline,
                    ErrorCode::RecipientOffline.message(),
                    request_id,
                );
            }
            return None;
        }
        self.invite(now, conn, user, peer, frame, request_id)
    }

    /// A new call from `user` to `peer`: the thread, membership, presence and rate checks
    /// come first. `Some(frame)`: wait for the thread's participants, then retry.
    pub(super) fn invite(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        peer: UserId,
        frame: CallFrame,
        request_id: Option<RequestId>,
    ) -> Option<CallFrame> {
        let Some(thread) = frame.control.thread_id.clone() else {
            self.error(
                conn,
                ErrorCode::MissingRecipient,
                "a call needs a threadId",
                request_id,
            );
            return None;
        };
        match self.require_member(now, conn, user, &thread, request_id.as_ref()) {
            None => return None,
            Some(true) => return Some(frame),
            Some(false) => {}
        }
        if !self.threads.has_participant(&thread, &peer) {
            self.error(
                conn,
                ErrorCode::Forbidden,
                "the recipient is not a participant of this thread",
                request_id,
            );
            return None;
        }
        if !self.is_online(&peer) {
            self.error(
                conn,
                ErrorCode::RecipientOffline,
                ErrorCode::RecipientOffline.message(),
                request_id,
            );
            return None;
        }
        if !self.allow_invite(now, user) {
            self.error(
                conn,
                ErrorCode::RateLimited,
                "too many calls; wait a minute",
                request_id,
            );
            return None;
        }
        let call = NewCall {
            callee: peer,
            thread,
            action: frame.action,
        };
        self.place_call(now, conn, user, call, request_id);
        None
    }

    /// Rings `peer` for a call the checks allowed, unless glare or a busy party ends it
    /// first.
    pub(super) fn place_call(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        new: NewCall,
        request_id: Option<RequestId>,
    ) {
        let NewCall {
            callee: peer,
            thread,
            action,
        } = new;
        // Always the server's `<node>-<counter>`: a call id is a key in every node's replica,
        // and ids chosen by clients collide across nodes (two nodes accept the same free id
        // at once, or a client picks one another node will assign), which would route one
        // call's signaling into another. A client's own id still finds its call by the pair.
        let call = self.new_call_id();
        if let Some(existing) = self.glare_with(user, &peer, &thread) {
            if existing < call {
                // Their call survives; ours never rings.
                let ended = CallEnded {
                    call_id: call,
                    thread_id: thread,
                    reason: EndReason::Glare,
                };
                return self.never_rings(conn, ended, existing, request_id);
            }
            self.end_call(&existing, EndReason::Glare);
        }
        if self.calls.of_user(user).next().is_some() {
            self.error(
                conn,
                ErrorCode::CallInProgress,
                "you are already in a call",
                request_id,
            );
            return;
        }
        if self.calls.of_user(&peer).next().is_some() {
            let ended = CallEnded {
                call_id: call.clone(),
                thread_id: thread,
                reason: EndReason::Busy,
            };
            return self.never_rings(conn, ended, call, request_id);
        }
        let snapshot = CallSnapshot {
            call: call.clone(),
            thread,
            caller: user.clone(),
            caller_device: self.device(conn),
            callee: peer,
        };
        self.start_ringing(snapshot.clone());
        self.publish(BrokerEvent::CallRing(snapshot));
        self.fx.timers.set(
            TimerKey::CallRing(call.clone()),
            now + self.config.ring_timeout,
        );
        if let CallAction::Offer(payload) = action {
            self.signal(&call, user, Signal::Offer, payload, Target::Ringing);
        }
        self.ack_if_asked(
            conn,
            request_id,
            Ack {
                call_id: Some(call),
                ..Ack::default()
            },
        );
    }

    /// A new call that ends before it rings: the caller hears `ended`, and the ack names
    /// `acked` (the call that survives glare, or the busy call's own id).
    pub(super) fn never_rings(
        &mut self,
        conn: ConnId,
        ended: CallEnded,
        acked: CallId,
        request_id: Option<RequestId>,
    ) {
        self.send_one(conn, &ServerMessage::CallEnded(ended));
        let ack = Ack {
            call_id: Some(acked),
            ..Ack::default()
        };
        self.ack_if_asked(conn, request_id, ack);
    }

    pub(super) fn new_call_id(&mut self) -> CallId {
        loop {
            self.calls.next_id += 1;
            let id = format!("{}-{}", self.config.node_id, self.calls.next_id);
            let id = CallId::new(&id).expect(
                "a node id (at most MAX_NODE_ID_LEN bytes) plus a dash and a u64 fits an id",
            );
            if !self.calls.contains(&id) {
                return id;
            }
        }
    }

    pub(super) fn allow_invite(&mut self, now: Instant, user: &UserId) -> bool {
        let limit = self.config.invites_per_minute;
        let Some(local) = self.dir.local_mut(user) else {
            return false;
        };
        while local
            .invites
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            local.invites.pop_front();
        }
        if local.invites.len() >= limit {
            return false;
        }
        local.invites.push_back(now);
        true
    }

    /// The call this frame is about: by `callId` if the user is a party, else the call
    /// between the user and the peer (in the thread, if given).
    pub(super) fn find_call(
        &self,
        user: &UserId,
        peer: Option<&UserId>,
        control: &CallControl,
    ) -> Option<CallId> {
        if let Some(id) = &control.call_id
            && let Some(call) = self.calls.get(id)
        {
            return call.involves(user).then(|| id.clone());
        }
        let peer = peer?;
        self.calls
            .of_user(user)
            .find(|(_, c)| {
                c.involves(peer)
                    && control
                        .thread_id
                        .as_ref()
                        .is_none_or(|t| *t == c.snapshot.thread)
            })
            .map(|(id, _)| id.clone())
    }

    /// A ringing call from `peer` to `user` in `thread`: calling back now is glare.
    pub(super) fn glare_with(
        &self,
        user: &UserId,
        peer: &UserId,
        thread: &ThreadId,
    ) -> Option<CallId> {
        self.calls
            .of_user(user)
            .find(|(_, c)| {
                c.snapshot.caller == *peer
                    && c.snapshot.callee == *user
                    && c.snapshot.thread == *thread
                    && !c.answered()
            })
            .map(|(id, _)| id.clone())
    }

    /// Adds the call to the replica and rings the callee's local devices.
    pub(super) fn start_ringing(&mut self, snapshot: CallSnapshot) {
        let ringing: BTreeSet<ConnId> = self.conns_of([&snapshot.callee]).into_iter().collect();
        let frame = ServerMessage::CallInitiated(CallEvent {
            call_id: snapshot.call.clone(),
            sender_id: snapshot.caller.clone(),
            recipient_id: snapshot.callee.clone(),
            thread_id: snapshot.thread.clone(),
        })
        .encode();
        self.ice_servers_for_ringing(&snapshot.callee, &ringing);
        self.deliver(ringing.iter().copied().collect(), frame);
        let call = snapshot.call.clone();
        self.calls.insert(
            call,
            Call {
                snapshot,
                callee_device: None,
                ringing,
                orphaned: None,
            },
        );
    }
}
