//! How calls end and move: hang-ups, timeouts, disconnects and their grace, devices that
//! come back, other nodes' calls and nodes going down.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::hub::timer::TimerKey;
use crate::hub::{BrokerEvent, CallSnapshot, Hub};
use crate::ids::{CallId, ConnId, DeviceRef, NodeId, ThreadId, UserId};
use crate::wire::{CallEnded, CallEvent, EndReason, ServerMessage};

impl Hub {
    /// Ends, here and everywhere, the calls in `thread` (those with a party among `users`,
    /// or all of them when `users` is `None`): the site closed the thread to them.
    pub(in crate::hub) fn end_calls_in_thread(
        &mut self,
        thread: &ThreadId,
        users: Option<&[UserId]>,
    ) {
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
    pub(super) fn end_call(&mut self, id: &CallId, reason: EndReason) {
        if self.calls.contains(id) {
            self.apply_ended(id, reason);
            self.publish(BrokerEvent::CallEnded {
                call: id.clone(),
                reason,
            });
        }
    }

    /// Forgets a call and tells every local device involved.
    pub(in crate::hub) fn apply_ended(&mut self, id: &CallId, reason: EndReason) {
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

    pub(in crate::hub) fn call_ring_timeout(&mut self, id: &CallId) {
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

    pub(in crate::hub) fn call_grace_expired(&mut self, id: &CallId) {
        if self.calls.get(id).is_some_and(|c| c.orphaned.is_some()) {
            self.end_call(id, EndReason::Disconnected);
        }
    }

    /// A local connection closed: stop ringing it; a bound device starts the grace period.
    pub(in crate::hub) fn calls_conn_closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: Option<&UserId>,
    ) {
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
    pub(in crate::hub) fn apply_orphaned(&mut self, id: &CallId, user: UserId) {
        self.calls.update(id, |call| call.orphaned = Some(user));
    }

    /// A new connection of `user` was identified: ring it for calls still ringing.
    pub(in crate::hub) fn calls_user_connected(&mut self, conn: ConnId, user: &UserId) {
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
    pub(in crate::hub) fn remote_call_ring(&mut self, now: Instant, snapshot: CallSnapshot) {
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
    pub(in crate::hub) fn calls_node_down(&mut self, node: &NodeId) {
        let dead: Vec<CallId> = self.calls.of_node(node).map(|(id, _)| id.clone()).collect();
        for id in dead {
            self.apply_ended(&id, EndReason::Disconnected);
        }
    }

    /// Re-announces the calls this node owns (answer to a sync request).
    pub(in crate::hub) fn publish_own_calls(&mut self) {
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
