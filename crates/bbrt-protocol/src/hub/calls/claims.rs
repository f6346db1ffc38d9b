//! The coordinator's answer to a claim (first accept wins), and binding the two devices.

use std::time::Instant;

use super::*;
use crate::hub::timer::TimerKey;
use crate::hub::{BrokerEvent, CoordResponse, Hub};
use crate::ids::{CallId, ConnId, DeviceRef, UserId};
use crate::wire::{Ack, CallEnded, CallEvent, EndReason, ErrorCode, ServerMessage};

impl Hub {
    /// The claim's outcome, then the frames its connection sent meanwhile, in order: after
    /// a lost claim each of them meets the call as it now stands, with its own answer.
    pub(in crate::hub) fn claim_answer_result(
        &mut self,
        now: Instant,
        pending: PendingAnswer,
        result: CoordResponse,
    ) {
        let conn = pending.conn;
        self.settle_claim(pending, result);
        self.unblock(now, conn);
    }

    pub(super) fn settle_claim(&mut self, pending: PendingAnswer, result: CoordResponse) {
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
    pub(in crate::hub) fn apply_answered(&mut self, id: &CallId, device: DeviceRef) {
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

    pub(in crate::hub) fn apply_rebound(&mut self, id: &CallId, user: &UserId, device: DeviceRef) {
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
}
