//! A party's frames on a call: where the connection stands, relaying offers, answers
//! and ICE candidates, and a ringing callee's claim to answer.

use bytes::Bytes;

use super::*;
use crate::hub::{BrokerEvent, CoordRequest, Hub, PendingCoord};
use crate::ids::{CallId, ConnId, DeviceRef, UserId};
use crate::wire::{Ack, EndReason, ErrorCode, Payload, RequestId, ServerMessage};

impl Hub {
    /// A frame about an existing call `id` of which `user` is a party.
    pub(super) fn call_action(
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
    pub(super) fn standing(
        &mut self,
        conn: ConnId,
        user: &UserId,
        id: &CallId,
    ) -> Option<Standing> {
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
    pub(super) fn relay(
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
    pub(super) fn claim_answer(
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
    pub(super) fn signal(
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

    pub(in crate::hub) fn deliver_to_ringing(&mut self, id: &CallId, frame: Bytes) {
        let conns = self
            .calls
            .get(id)
            .map(|c| c.ringing.iter().copied().collect())
            .unwrap_or_default();
        self.deliver(conns, frame);
    }

    pub(in crate::hub) fn deliver_to_device(&mut self, device: &DeviceRef, frame: Bytes) {
        if let Some(conn) = self.local_conn(device) {
            self.deliver(vec![conn], frame);
        }
    }
}
