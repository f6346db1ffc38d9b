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
//!
//! Here: the call table (`Calls`, indexed by party, local connection and device node) and
//! the frame types. The steps, a file each: `invite.rs` (checks, glare and busy, ringing),
//! `signaling.rs` (where a connection stands, relaying offers, answers and candidates),
//! `claims.rs` (first accept wins, binding the devices), `lifecycle.rs` (ending, disconnects
//! and their grace, other nodes).

mod claims;
mod invite;
mod lifecycle;
mod signaling;

use crate::hash::IdMap;
use std::collections::{BTreeMap, BTreeSet};

use super::CallSnapshot;
use crate::ids::{CallId, ConnId, DeviceRef, NodeId, ThreadId, UserId};
use crate::wire::{CallControl, ClientMessage, Payload, RequestId};

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
    by_user: IdMap<UserId, BTreeSet<CallId>>,
    /// The calls each local connection rings for or is a bound device of.
    by_conn: IdMap<ConnId, BTreeSet<CallId>>,
    /// The calls with a bound device on each node.
    by_node: IdMap<NodeId, BTreeSet<CallId>>,
    next_id: u64,
}

impl Calls {
    pub(super) fn new(node: NodeId) -> Self {
        Self {
            node,
            calls: BTreeMap::new(),
            by_user: IdMap::default(),
            by_conn: IdMap::default(),
            by_node: IdMap::default(),
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
fn unindex<K: Eq + std::hash::Hash>(index: &mut IdMap<K, BTreeSet<CallId>>, key: &K, id: &CallId) {
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
mod tests;
