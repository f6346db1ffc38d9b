//! The call lifecycle (norms from Matrix VoIP).
//!
//! - `call_initiated`, or an `offer` with no call (an implicit invite), rings every device
//!   of the callee; before an answer, the caller's offer and ICE candidates go to every
//!   ringing device.
//! - The first device to accept (`call_accepted` or an `answer`) wins, through
//!   [`CoordRequest::ClaimAnswer`]; the callee's other devices get `call_ended`
//!   `answered_elsewhere`. From then on signaling flows only between the two bound devices;
//!   a later `offer` is a renegotiation.
//! - `call_rejected` stops ringing everywhere; the caller cancels with `call_ended` before an
//!   answer; nobody answering within the ring timeout ends it with `timeout`; a callee already
//!   in another call makes it `busy`; two users calling each other in the same thread at once
//!   (glare) keep the call with the lesser id; a bound device that disconnects ends the call
//!   after a grace period unless the same user comes back and signals from a new device.
//! - Both parties must share the thread; `senderId` is never trusted: the peer is whichever
//!   of `recipientId`/`senderId` is not the verified sender.
//!
//! Every node keeps a replica of every call it hears of; the caller's node owns the ring
//! timer, the node of a disconnected device owns its grace timer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::TimerKey;
use super::{BrokerEvent, CallSnapshot, CoordRequest, CoordResponse, Hub, PendingCoord};
use crate::ids::{CallId, ConnId, DeviceRef, NodeId, ThreadId, UserId};
use crate::wire::{
    Ack, CallControl, CallEnded, CallEvent, ClientMessage, EndReason, ErrorCode, Payload,
    RequestId, ServerMessage,
};

/// A call as this node knows it.
#[derive(Debug)]
struct Call {
    snapshot: CallSnapshot,
    /// The callee's device, once answered.
    callee_device: Option<DeviceRef>,
    /// Local connections of the callee ringing for this call.
    ringing: BTreeSet<ConnId>,
    /// A bound device disconnected: the user whose device is missing.
    orphaned: Option<UserId>,
}

impl Call {
    fn answered(&self) -> bool {
        self.callee_device.is_some()
    }

    fn involves(&self, user: &UserId) -> bool {
        self.snapshot.caller == *user || self.snapshot.callee == *user
    }

    /// The nodes of its bound devices (the caller's, and the callee's once answered).
    fn device_nodes(&self) -> BTreeSet<NodeId> {
        let mut nodes = BTreeSet::from([self.snapshot.caller_device.node.clone()]);
        nodes.extend(self.callee_device.as_ref().map(|d| d.node.clone()));
        nodes
    }

    /// The connections of `node` this call rings or binds.
    fn local_conns(&self, node: &NodeId) -> BTreeSet<ConnId> {
        let mut conns = self.ringing.clone();
        let devices = [
            Some(&self.snapshot.caller_device),
            self.callee_device.as_ref(),
        ];
        conns.extend(
            devices
                .into_iter()
                .flatten()
                .filter(|d| d.node == *node)
                .map(|d| ConnId(d.conn)),
        );
        conns
    }
}

/// All calls this node knows of, indexed by the users, the local connections and the nodes
/// of the devices they involve: no frame, identify, close, node going down or sync request
/// scans every call.
#[derive(Debug)]
pub(super) struct Calls {
    /// This node: the devices named by it are local connections.
    node: NodeId,
    calls: BTreeMap<CallId, Call>,
    /// The calls each user is a party of (caller or callee).
    by_user: HashMap<UserId, BTreeSet<CallId>>,
    /// The calls each local connection rings for or is a bound device of.
    by_conn: HashMap<ConnId, BTreeSet<CallId>>,
    /// The calls with a bound device on each node.
    by_node: HashMap<NodeId, BTreeSet<CallId>>,
    next_id: u64,
}

impl Calls {
    pub(super) fn new(node: NodeId) -> Self {
        Self {
            node,
            calls: BTreeMap::new(),
            by_user: HashMap::new(),
            by_conn: HashMap::new(),
            by_node: HashMap::new(),
            next_id: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// No call, and no index entry left behind.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty()
            && self.by_user.is_empty()
            && self.by_conn.is_empty()
            && self.by_node.is_empty()
    }

    fn get(&self, id: &CallId) -> Option<&Call> {
        self.calls.get(id)
    }

    fn contains(&self, id: &CallId) -> bool {
        self.calls.contains_key(id)
    }

    /// The calls with a bound device on `node`, in id order.
    fn of_node<'a>(&'a self, node: &NodeId) -> impl Iterator<Item = (&'a CallId, &'a Call)> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.calls.get_key_value(id))
    }

    /// The calls `user` is a party of, in id order.
    fn of_user<'a>(&'a self, user: &UserId) -> impl Iterator<Item = (&'a CallId, &'a Call)> {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.calls.get_key_value(id))
    }

    /// The calls the local connection `conn` rings for or is bound to, in id order.
    fn of_conn(&self, conn: ConnId) -> Vec<CallId> {
        self.by_conn
            .get(&conn)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn insert(&mut self, id: CallId, call: Call) {
        // A call of the same id first leaves the indexes, so they hold no stale entry.
        self.remove(&id);
        for user in [&call.snapshot.caller, &call.snapshot.callee] {
            self.by_user
                .entry(user.clone())
                .or_default()
                .insert(id.clone());
        }
        for conn in call.local_conns(&self.node) {
            self.by_conn.entry(conn).or_default().insert(id.clone());
        }
        for node in call.device_nodes() {
            self.by_node.entry(node).or_default().insert(id.clone());
        }
        self.calls.insert(id, call);
    }

    fn remove(&mut self, id: &CallId) -> Option<Call> {
        let call = self.calls.remove(id)?;
        for user in [&call.snapshot.caller, &call.snapshot.callee] {
            unindex(&mut self.by_user, user, id);
        }
        for conn in call.local_conns(&self.node) {
            unindex(&mut self.by_conn, &conn, id);
        }
        for node in call.device_nodes() {
            unindex(&mut self.by_node, &node, id);
        }
        Some(call)
    }

    /// Changes a call, keeping the connection and node indexes in step with its devices
    /// and ringing connections (its parties never change).
    fn update<R>(&mut self, id: &CallId, change: impl FnOnce(&mut Call) -> R) -> Option<R> {
        let call = self.calls.get_mut(id)?;
        let (before, nodes_before) = (call.local_conns(&self.node), call.device_nodes());
        let result = change(call);
        let (after, nodes_after) = (call.local_conns(&self.node), call.device_nodes());
        for conn in before.difference(&after) {
            unindex(&mut self.by_conn, conn, id);
        }
        for conn in after.difference(&before) {
            self.by_conn.entry(*conn).or_default().insert(id.clone());
        }
        for node in nodes_before.difference(&nodes_after) {
            unindex(&mut self.by_node, node, id);
        }
        for node in nodes_after.difference(&nodes_before) {
            self.by_node
                .entry(node.clone())
                .or_default()
                .insert(id.clone());
        }
        Some(result)
    }
}

/// Removes `id` from `key`'s entry, and the entry once empty.
fn unindex<K: Eq + std::hash::Hash>(
    index: &mut HashMap<K, BTreeSet<CallId>>,
    key: &K,
    id: &CallId,
) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

/// A local device's claim to answer, waiting for the coordinator.
#[derive(Debug)]
pub(super) struct PendingAnswer {
    call: CallId,
    conn: ConnId,
    request_id: Option<RequestId>,
    /// The `answer` frame to relay to the caller if the claim wins.
    answer: Option<Payload>,
}

/// A call frame, taken apart: whom and which call it addresses, and what it asks.
#[derive(Debug)]
pub(super) struct CallFrame {
    control: CallControl,
    action: CallAction,
}

/// What a call frame asks for, with the WebRTC payload of the frames that carry one.
#[derive(Debug)]
pub(super) enum CallAction {
    Initiate,
    Offer(Payload),
    Answer(Payload),
    Candidate(Payload),
    Accept,
    Reject,
    End,
}

/// Which WebRTC payload a signaling frame relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Offer,
    Answer,
    Candidate,
}

impl CallFrame {
    pub(super) fn new(control: CallControl, action: CallAction) -> Self {
        Self { control, action }
    }

    /// The message again, for a frame that must wait for the site.
    pub(super) fn into_message(self) -> ClientMessage {
        let control = self.control;
        let signal = |control: CallControl| {
            let CallControl {
                recipient_id,
                sender_id,
                thread_id,
                call_id,
            } = control;
            (recipient_id, sender_id, thread_id, call_id)
        };
        match self.action {
            CallAction::Initiate => ClientMessage::CallInitiated(control),
            CallAction::Accept => ClientMessage::CallAccepted(control),
            CallAction::Reject => ClientMessage::CallRejected(control),
            CallAction::End => ClientMessage::CallEnded(control),
            CallAction::Offer(offer) => {
                let (recipient_id, sender_id, thread_id, call_id) = signal(control);
                ClientMessage::Offer(crate::wire::Offer {
                    offer,
                    recipient_id,
                    sender_id,
                    thread_id,
                    call_id,
                })
            }
            CallAction::Answer(answer) => {
                let (recipient_id, sender_id, thread_id, call_id) = signal(control);
                ClientMessage::Answer(crate::wire::Answer {
                    answer,
                    recipient_id,
                    sender_id,
                    thread_id,
                    call_id,
                })
            }
            CallAction::Candidate(candidate) => {
                let (recipient_id, sender_id, thread_id, call_id) = signal(control);
                ClientMessage::IceCandidate(crate::wire::IceCandidate {
                    candidate,
                    recipient_id,
                    sender_id,
                    thread_id,
                    call_id,
                })
            }
        }
    }

    /// Whether the frame may start a call.
    fn invites(&self) -> bool {
        matches!(self.action, CallAction::Initiate | CallAction::Offer(_))
    }
}

/// Where a signaling frame goes.
enum Target {
    Ringing,
    Device(DeviceRef),
}

impl Hub {
    fn device(&self, conn: ConnId) -> DeviceRef {
        DeviceRef {
            node: self.config.node_id.clone(),
            conn: conn.0,
        }
    }

    fn local_conn(&self, device: &DeviceRef) -> Option<ConnId> {
        (device.node == self.config.node_id).then_some(ConnId(device.conn))
    }

    /// A call frame from a verified user. Returns it back if it must wait for the site.
    pub(super) fn call_frame(
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
    fn invite(
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
    fn place_call(
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
    fn never_rings(
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

    fn new_call_id(&mut self) -> CallId {
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

    fn allow_invite(&mut self, now: Instant, user: &UserId) -> bool {
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
    fn find_call(
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
    fn glare_with(&self, user: &UserId, peer: &UserId, thread: &ThreadId) -> Option<CallId> {
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
    fn start_ringing(&mut self, snapshot: CallSnapshot) {
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

    /// A frame about an existing call `id` of which `user` is a party.
    fn call_action(
        &mut self,
        conn: ConnId,
        user: &UserId,
        id: &CallId,
        action: CallAction,
        request_id: Option<RequestId>,
    ) {
        let Some(at) = self.standing(conn, user, id) else {
            return;
        };
        let ack = Ack {
            call_id: Some(id.clone()),
            ..Ack::default()
        };
        let not_in_call = |hub: &mut Self, text: &str| {
            hub.error(conn, ErrorCode::NotInCall, text, request_id.clone())
        };
        let (kind, payload) = match action {
            CallAction::Initiate => {
                let text = "this call already exists";
                return self.error(conn, ErrorCode::CallInProgress, text, request_id);
            }
            CallAction::Accept => {
                if at.answered || at.is_caller || !at.ringing_here {
                    return not_in_call(self, "this device cannot answer the call");
                }
                return self.claim_answer(id, conn, request_id, None);
            }
            CallAction::Reject => {
                if at.answered || at.is_caller {
                    return not_in_call(self, "only a ringing callee can reject");
                }
                self.end_call(id, EndReason::Rejected);
                return self.ack_if_asked(conn, request_id, ack);
            }
            CallAction::End => {
                let reason = match (at.answered, at.is_caller) {
                    (false, true) => EndReason::Cancelled,
                    (false, false) => EndReason::Rejected,
                    (true, _) if at.bound_here => EndReason::Hangup,
                    (true, _) => return not_in_call(self, "this device is not in the call"),
                };
                self.end_call(id, reason);
                return self.ack_if_asked(conn, request_id, ack);
            }
            CallAction::Offer(payload) => (Signal::Offer, payload),
            CallAction::Answer(payload) => (Signal::Answer, payload),
            CallAction::Candidate(payload) => (Signal::Candidate, payload),
        };
        match self.relay(user, id, &at, kind, payload) {
            Relayed::Sent => self.ack_if_asked(conn, request_id, ack),
            // First accept wins, across nodes: the claim acks or refuses.
            Relayed::Answer(payload) => self.claim_answer(id, conn, request_id, Some(payload)),
            Relayed::Refused(text) => not_in_call(self, text),
        }
    }

    /// Where `conn` of `user` stands in call `id`; a party whose bound device vanished
    /// resumes from this one first. `None`: the call is gone.
    fn standing(&mut self, conn: ConnId, user: &UserId, id: &CallId) -> Option<Standing> {
        let me = self.device(conn);
        let call = self.calls.get(id)?;
        let is_caller = call.snapshot.caller == *user;
        if call.orphaned.as_ref() == Some(user) {
            let was = if is_caller {
                Some(call.snapshot.caller_device.clone())
            } else {
                call.callee_device.clone()
            };
            if was.as_ref() != Some(&me) {
                self.apply_rebound(id, user, me.clone());
                self.publish(BrokerEvent::CallRebound {
                    call: id.clone(),
                    user: user.clone(),
                    device: me.clone(),
                });
            }
        }
        let call = self.calls.get(id)?;
        Some(Standing {
            is_caller,
            answered: call.answered(),
            ringing_here: call.ringing.contains(&conn),
            bound_here: call.snapshot.caller_device == me
                || call.callee_device.as_ref().is_some_and(|d| *d == me),
            // The other party's bound device, once the call is answered.
            answered_peer: match &call.callee_device {
                Some(callee) if is_caller => Some(callee.clone()),
                Some(_) => Some(call.snapshot.caller_device.clone()),
                None => None,
            },
            caller_device: call.snapshot.caller_device.clone(),
        })
    }

    /// Relays one signaling payload of call `id` where `at` allows it.
    fn relay(
        &mut self,
        user: &UserId,
        id: &CallId,
        at: &Standing,
        kind: Signal,
        payload: Payload,
    ) -> Relayed {
        // Once answered, signaling flows between the two bound devices only.
        if let Some(target) = &at.answered_peer {
            if !at.bound_here {
                return Relayed::Refused("this device is not in the call");
            }
            self.signal(id, user, kind, payload, Target::Device(target.clone()));
            return Relayed::Sent;
        }
        match kind {
            Signal::Offer | Signal::Candidate if at.is_caller => {
                if !at.bound_here {
                    return Relayed::Refused("this device is not in the call");
                }
                self.signal(id, user, kind, payload, Target::Ringing);
                Relayed::Sent
            }
            Signal::Candidate => {
                if !at.ringing_here {
                    return Relayed::Refused("this device is not ringing for the call");
                }
                let caller = at.caller_device.clone();
                self.signal(id, user, kind, payload, Target::Device(caller));
                Relayed::Sent
            }
            Signal::Offer => Relayed::Refused("answer the call before sending an offer"),
            Signal::Answer => {
                if at.is_caller || !at.ringing_here {
                    return Relayed::Refused("this device cannot answer the call");
                }
                Relayed::Answer(payload)
            }
        }
    }

    /// A ringing device's claim to answer: first accept wins, across nodes.
    fn claim_answer(
        &mut self,
        id: &CallId,
        conn: ConnId,
        request_id: Option<RequestId>,
        answer: Option<Payload>,
    ) {
        let device = self.device(conn);
        let pending = PendingAnswer {
            call: id.clone(),
            conn,
            request_id,
            answer,
        };
        self.coord(
            CoordRequest::ClaimAnswer {
                call: id.clone(),
                device,
            },
            PendingCoord::ClaimAnswer(pending),
        );
        // The caller must get the answer before this device's later candidates: a browser
        // refuses `addIceCandidate` before `setRemoteDescription`.
        self.hold_queue(conn);
    }

    /// Relays a WebRTC payload from `user`, stamped with the verified sender.
    fn signal(
        &mut self,
        id: &CallId,
        user: &UserId,
        kind: Signal,
        payload: Payload,
        target: Target,
    ) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let peer = if call.snapshot.caller == *user {
            call.snapshot.callee.clone()
        } else {
            call.snapshot.caller.clone()
        };
        let (recipient_id, sender_id) = (Some(peer), Some(user.clone()));
        let (thread_id, call_id) = (Some(call.snapshot.thread.clone()), Some(id.clone()));
        let message = match kind {
            Signal::Offer => ServerMessage::Offer(crate::wire::Offer {
                offer: payload,
                recipient_id,
                sender_id,
                thread_id,
                call_id,
            }),
            Signal::Answer => ServerMessage::Answer(crate::wire::Answer {
                answer: payload,
                recipient_id,
                sender_id,
                thread_id,
                call_id,
            }),
            Signal::Candidate => ServerMessage::IceCandidate(crate::wire::IceCandidate {
                candidate: payload,
                recipient_id,
                sender_id,
                thread_id,
                call_id,
            }),
        };
        let frame = message.encode();
        match target {
            Target::Ringing => {
                self.deliver_to_ringing(id, frame.clone());
                self.publish(BrokerEvent::CallToRinging {
                    call: id.clone(),
                    frame,
                });
            }
            Target::Device(device) => {
                if self.local_conn(&device).is_some() {
                    self.deliver_to_device(&device, frame);
                } else {
                    self.publish(BrokerEvent::CallToDevice {
                        call: id.clone(),
                        device,
                        frame,
                    });
                }
            }
        }
    }

    pub(super) fn deliver_to_ringing(&mut self, id: &CallId, frame: Bytes) {
        let conns = self
            .calls
            .get(id)
            .map(|c| c.ringing.iter().copied().collect())
            .unwrap_or_default();
        self.deliver(conns, frame);
    }

    pub(super) fn deliver_to_device(&mut self, device: &DeviceRef, frame: Bytes) {
        if let Some(conn) = self.local_conn(device) {
            self.deliver(vec![conn], frame);
        }
    }

    /// The claim's outcome, then the frames its connection sent meanwhile, in order: after
    /// a lost claim each of them meets the call as it now stands, with its own answer.
    pub(super) fn claim_answer_result(
        &mut self,
        now: Instant,
        pending: PendingAnswer,
        result: CoordResponse,
    ) {
        let conn = pending.conn;
        self.settle_claim(pending, result);
        self.unblock(now, conn);
    }

    fn settle_claim(&mut self, pending: PendingAnswer, result: CoordResponse) {
        let PendingAnswer {
            call: id,
            conn,
            request_id,
            answer,
        } = pending;
        let still_ringing = self
            .calls
            .get(&id)
            .is_some_and(|c| !c.answered() && c.ringing.contains(&conn));
        // Without a coordinator (Redis lost) the local replica decides: the first device to
        // claim a call still ringing here wins, as on a single node. Refusing instead would
        // make every call unanswerable until the coordinator is back.
        let won = matches!(result, CoordResponse::Won | CoordResponse::Unavailable);
        if !won || !still_ringing {
            let stopped = self.calls.update(&id, |c| {
                c.ringing.remove(&conn).then(|| c.snapshot.thread.clone())
            });
            if let Some(Some(thread)) = stopped {
                let ended = CallEnded {
                    call_id: id.clone(),
                    thread_id: thread,
                    reason: EndReason::AnsweredElsewhere,
                };
                self.send_one(conn, &ServerMessage::CallEnded(ended));
            }
            self.error(
                conn,
                ErrorCode::NotInCall,
                "the call was answered elsewhere or ended",
                request_id,
            );
            return;
        }
        let me = self.device(conn);
        let Some(user) = self.calls.get(&id).map(|c| c.snapshot.callee.clone()) else {
            return;
        };
        self.apply_answered(&id, me.clone());
        self.publish(BrokerEvent::CallAnswered {
            call: id.clone(),
            device: me,
        });
        let caller = self
            .calls
            .get(&id)
            .map(|c| c.snapshot.caller_device.clone());
        if let (Some(answer), Some(caller)) = (answer, caller) {
            self.signal(&id, &user, Signal::Answer, answer, Target::Device(caller));
        }
        self.ack_if_asked(
            conn,
            request_id,
            Ack {
                call_id: Some(id),
                ..Ack::default()
            },
        );
    }

    /// A callee device won: bind it, stop the others, tell the caller.
    pub(super) fn apply_answered(&mut self, id: &CallId, device: DeviceRef) {
        let local_winner = self.local_conn(&device);
        let Some((losers, snapshot)) = self.calls.update(id, |call| {
            call.callee_device = Some(device);
            let losers: Vec<ConnId> = std::mem::take(&mut call.ringing)
                .into_iter()
                .filter(|c| Some(*c) != local_winner)
                .collect();
            (losers, call.snapshot.clone())
        }) else {
            return;
        };
        self.fx.timers.cancel(&TimerKey::CallRing(id.clone()));
        let ended = CallEnded {
            call_id: id.clone(),
            thread_id: snapshot.thread.clone(),
            reason: EndReason::AnsweredElsewhere,
        };
        self.deliver(losers, ServerMessage::CallEnded(ended).encode());
        if let Some(caller) = self.local_conn(&snapshot.caller_device) {
            let accepted = ServerMessage::CallAccepted(CallEvent {
                call_id: id.clone(),
                sender_id: snapshot.callee,
                recipient_id: snapshot.caller,
                thread_id: snapshot.thread,
            });
            self.send_one(caller, &accepted);
        }
    }

    pub(super) fn apply_rebound(&mut self, id: &CallId, user: &UserId, device: DeviceRef) {
        let resumed = self.calls.update(id, |call| {
            if call.snapshot.caller == *user {
                call.snapshot.caller_device = device;
            } else if call.snapshot.callee == *user && call.answered() {
                call.callee_device = Some(device);
            }
            let resumed = call.orphaned.as_ref() == Some(user);
            if resumed {
                call.orphaned = None;
            }
            resumed
        });
        if resumed == Some(true) {
            self.fx.timers.cancel(&TimerKey::CallGrace(id.clone()));
        }
    }

    /// Ends, here and everywhere, the calls in `thread` (those with a party among `users`,
    /// or all of them when `users` is `None`): the site closed the thread to them.
    pub(super) fn end_calls_in_thread(&mut self, thread: &ThreadId, users: Option<&[UserId]>) {
        let party = |u: &UserId| users.is_none_or(|us| us.contains(u));
        let ids: Vec<CallId> = self
            .calls
            .calls
            .iter()
            .filter(|(_, c)| {
                c.snapshot.thread == *thread
                    && (party(&c.snapshot.caller) || party(&c.snapshot.callee))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.end_call(&id, EndReason::ThreadClosed);
        }
    }

    /// Ends a call here and everywhere.
    fn end_call(&mut self, id: &CallId, reason: EndReason) {
        if self.calls.contains(id) {
            self.apply_ended(id, reason);
            self.publish(BrokerEvent::CallEnded {
                call: id.clone(),
                reason,
            });
        }
    }

    /// Forgets a call and tells every local device involved.
    pub(super) fn apply_ended(&mut self, id: &CallId, reason: EndReason) {
        let Some(call) = self.calls.remove(id) else {
            return;
        };
        self.fx.timers.cancel(&TimerKey::CallRing(id.clone()));
        self.fx.timers.cancel(&TimerKey::CallGrace(id.clone()));
        let mut conns: Vec<ConnId> = call.ringing.iter().copied().collect();
        conns.extend(self.local_conn(&call.snapshot.caller_device));
        conns.extend(call.callee_device.as_ref().and_then(|d| self.local_conn(d)));
        let ended = CallEnded {
            call_id: id.clone(),
            thread_id: call.snapshot.thread,
            reason,
        };
        self.deliver(conns, ServerMessage::CallEnded(ended).encode());
    }

    pub(super) fn call_ring_timeout(&mut self, id: &CallId) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if call.answered() {
            return;
        }
        if call.snapshot.caller_device.node == self.config.node_id {
            self.end_call(id, EndReason::Timeout);
        } else {
            // A replica whose owner never said how the call ended (its publication was
            // lost): stop ringing here.
            self.apply_ended(id, EndReason::Timeout);
        }
    }

    pub(super) fn call_grace_expired(&mut self, id: &CallId) {
        if self.calls.get(id).is_some_and(|c| c.orphaned.is_some()) {
            self.end_call(id, EndReason::Disconnected);
        }
    }

    /// A local connection closed: stop ringing it; a bound device starts the grace period.
    pub(super) fn calls_conn_closed(&mut self, now: Instant, conn: ConnId, user: Option<&UserId>) {
        let me = self.device(conn);
        let grace = self.config.call_grace;
        let mut orphaned = Vec::new();
        for id in self.calls.of_conn(conn) {
            let bound = self.calls.update(&id, |call| {
                call.ringing.remove(&conn);
                let bound =
                    call.snapshot.caller_device == me || call.callee_device.as_ref() == Some(&me);
                if bound && let Some(user) = user {
                    call.orphaned = Some(user.clone());
                }
                bound
            });
            if bound == Some(true)
                && let Some(user) = user
            {
                orphaned.push((id, user.clone()));
            }
        }
        for (id, user) in orphaned {
            self.fx
                .timers
                .set(TimerKey::CallGrace(id.clone()), now + grace);
            self.publish(BrokerEvent::CallOrphaned { call: id, user });
        }
    }

    /// Another node lost a bound device of `id`: `user` may resume from a device here.
    pub(super) fn apply_orphaned(&mut self, id: &CallId, user: UserId) {
        self.calls.update(id, |call| call.orphaned = Some(user));
    }

    /// A new connection of `user` was identified: ring it for calls still ringing.
    pub(super) fn calls_user_connected(&mut self, conn: ConnId, user: &UserId) {
        let ringing: Vec<CallId> = self
            .calls
            .of_user(user)
            .filter(|(_, c)| c.snapshot.callee == *user && !c.answered())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ringing {
            let event = self.calls.update(&id, |call| {
                call.ringing.insert(conn);
                CallEvent {
                    call_id: id.clone(),
                    sender_id: call.snapshot.caller.clone(),
                    recipient_id: call.snapshot.callee.clone(),
                    thread_id: call.snapshot.thread.clone(),
                }
            });
            if let Some(event) = event {
                self.ice_servers_for_ringing(&event.recipient_id, &BTreeSet::from([conn]));
                self.send_one(conn, &ServerMessage::CallInitiated(event));
            }
        }
    }

    /// Another node rings a call: ring local devices, and resolve glare with our own calls.
    pub(super) fn remote_call_ring(&mut self, now: Instant, snapshot: CallSnapshot) {
        if self.calls.contains(&snapshot.call) {
            return;
        }
        let glare = self.glare_with(&snapshot.caller, &snapshot.callee, &snapshot.thread);
        let incoming = snapshot.call.clone();
        // The caller's node owns the ring timeout; this later one only cleans up a replica
        // whose end never arrived.
        let backstop = self.config.ring_timeout + self.config.call_grace;
        self.fx
            .timers
            .set(TimerKey::CallRing(incoming.clone()), now + backstop);
        self.start_ringing(snapshot);
        if let Some(ours) = glare {
            // Both nodes apply the same rule; each ends its own call if it is the greater.
            let loser = if ours < incoming { incoming } else { ours };
            let owned = self
                .calls
                .get(&loser)
                .is_some_and(|c| c.snapshot.caller_device.node == self.config.node_id);
            if owned {
                self.end_call(&loser, EndReason::Glare);
            }
        }
    }

    /// A node is gone: calls with a device there end (every node does the same).
    pub(super) fn calls_node_down(&mut self, node: &NodeId) {
        let dead: Vec<CallId> = self.calls.of_node(node).map(|(id, _)| id.clone()).collect();
        for id in dead {
            self.apply_ended(&id, EndReason::Disconnected);
        }
    }

    /// Re-announces the calls this node owns (answer to a sync request).
    pub(super) fn publish_own_calls(&mut self) {
        let own: Vec<(CallSnapshot, Option<DeviceRef>)> = self
            .calls
            .of_node(&self.config.node_id)
            .map(|(_, c)| c)
            .filter(|c| c.snapshot.caller_device.node == self.config.node_id)
            .map(|c| (c.snapshot.clone(), c.callee_device.clone()))
            .collect();
        for (snapshot, answered) in own {
            let call = snapshot.call.clone();
            self.publish(BrokerEvent::CallRing(snapshot));
            if let Some(device) = answered {
                self.publish(BrokerEvent::CallAnswered { call, device });
            }
        }
    }
}

/// The peer of a call frame: whichever of `recipientId`/`senderId` is not the sender.
fn resolve_peer(user: &UserId, control: &CallControl) -> Option<UserId> {
    [&control.recipient_id, &control.sender_id]
        .into_iter()
        .flatten()
        .find(|id| *id != user)
        .cloned()
}

/// A call the checks allowed, before it rings.
struct NewCall {
    callee: UserId,
    thread: ThreadId,
    /// The invite (`Initiate`, or an `Offer` whose payload rings with it).
    action: CallAction,
}

/// Where one connection of a party stands in a call, read once per frame.
struct Standing {
    is_caller: bool,
    answered: bool,
    /// The call rings on this connection.
    ringing_here: bool,
    /// This connection is one of the call's two bound devices.
    bound_here: bool,
    /// The other party's bound device, once the call is answered.
    answered_peer: Option<DeviceRef>,
    caller_device: DeviceRef,
}

/// What [`Hub::relay`] did with a signaling payload.
enum Relayed {
    /// Sent on: the sender's ack follows.
    Sent,
    /// A ringing callee's answer: it goes to the first-accept-wins claim.
    Answer(Payload),
    /// Not this device's to send; the `not_in_call` text.
    Refused(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testing::user;

    fn node(s: &str) -> NodeId {
        NodeId::new(s).expect("a valid id")
    }

    fn device(n: &str, conn: u64) -> DeviceRef {
        DeviceRef {
            node: node(n),
            conn,
        }
    }

    /// A call from alice (connection 1 on `caller_node`) to bob, ringing `ringing` here.
    fn ringing_call(id: &str, caller_node: &str, ringing: &[u64]) -> (CallId, Call) {
        let id = CallId::new(id).expect("a valid id");
        let call = Call {
            snapshot: CallSnapshot {
                call: id.clone(),
                thread: ThreadId::new("t1").expect("a valid id"),
                caller: user("alice"),
                caller_device: device(caller_node, 1),
                callee: user("bob"),
            },
            callee_device: None,
            ringing: ringing.iter().map(|c| ConnId(*c)).collect(),
            orphaned: None,
        };
        (id, call)
    }

    fn ids(calls: &Calls, u: &str) -> Vec<CallId> {
        calls.of_user(&user(u)).map(|(id, _)| id.clone()).collect()
    }

    #[test]
    fn a_call_is_found_by_its_parties_and_its_local_connections() {
        let mut calls = Calls::new(node("n1"));
        let (id, call) = ringing_call("n1-1", "n1", &[2, 3]);
        calls.insert(id.clone(), call);
        assert_eq!(ids(&calls, "alice"), vec![id.clone()]);
        assert_eq!(ids(&calls, "bob"), vec![id.clone()]);
        assert!(ids(&calls, "carol").is_empty());
        for conn in [1, 2, 3] {
            assert_eq!(calls.of_conn(ConnId(conn)), vec![id.clone()], "conn {conn}");
        }
        assert!(calls.of_conn(ConnId(4)).is_empty());
    }

    #[test]
    fn a_remote_callers_device_is_not_a_local_connection() {
        let mut calls = Calls::new(node("n1"));
        let (id, call) = ringing_call("n2-1", "n2", &[2]);
        calls.insert(id.clone(), call);
        assert!(calls.of_conn(ConnId(1)).is_empty(), "connection 1 is on n2");
        assert_eq!(calls.of_conn(ConnId(2)), vec![id]);
    }

    #[test]
    fn the_connection_index_follows_answers_and_rebinds() {
        let mut calls = Calls::new(node("n1"));
        let (id, call) = ringing_call("n1-1", "n1", &[2, 3]);
        calls.insert(id.clone(), call);
        // Connection 3 answers: 2 stops ringing.
        calls.update(&id, |c| {
            c.callee_device = Some(device("n1", 3));
            c.ringing.clear();
        });
        assert!(calls.of_conn(ConnId(2)).is_empty());
        assert_eq!(calls.of_conn(ConnId(3)), vec![id.clone()]);
        // Alice resumes from connection 5 after connection 1 went away.
        calls.update(&id, |c| c.snapshot.caller_device = device("n1", 5));
        assert!(calls.of_conn(ConnId(1)).is_empty());
        assert_eq!(calls.of_conn(ConnId(5)), vec![id.clone()]);
        assert!(calls.remove(&id).is_some());
        assert!(
            calls.is_empty(),
            "no index entry outlives its call: {calls:?}"
        );
    }

    #[test]
    fn a_users_calls_come_in_id_order() {
        let mut calls = Calls::new(node("n1"));
        for id in ["n1-3", "n1-1", "n1-2"] {
            let (id, call) = ringing_call(id, "n1", &[]);
            calls.insert(id, call);
        }
        let order: Vec<String> = ids(&calls, "bob").iter().map(|i| i.to_string()).collect();
        assert_eq!(order, ["n1-1", "n1-2", "n1-3"]);
        let (id, call) = ringing_call("n1-2", "n1", &[7]);
        calls.insert(id, call);
        assert_eq!(ids(&calls, "bob").len(), 3, "the same id replaces the call");
        assert_eq!(calls.of_conn(ConnId(7)).len(), 1);
    }

    #[test]
    fn a_call_is_found_by_the_nodes_of_its_devices() {
        let mut calls = Calls::new(node("n1"));
        let of = |calls: &Calls, n: &str| -> Vec<CallId> {
            calls.of_node(&node(n)).map(|(id, _)| id.clone()).collect()
        };
        let (id, call) = ringing_call("n2-1", "n2", &[3]);
        calls.insert(id.clone(), call);
        assert_eq!(of(&calls, "n2"), vec![id.clone()]);
        assert!(of(&calls, "n1").is_empty(), "a ringing device is not bound");
        calls.update(&id, |c| {
            c.callee_device = Some(device("n1", 3));
            c.ringing.clear();
        });
        assert_eq!(of(&calls, "n1"), vec![id.clone()], "answered on n1");
        calls.update(&id, |c| c.snapshot.caller_device = device("n3", 9));
        assert!(of(&calls, "n2").is_empty(), "the caller moved to n3");
        assert_eq!(of(&calls, "n3"), vec![id.clone()]);
        assert!(calls.remove(&id).is_some());
        assert!(
            calls.is_empty(),
            "no index entry outlives its call: {calls:?}"
        );
    }
}
