//! A `message` on its way out: its position first, then every copy of it, here and on the
//! other nodes (`docs/protocol.md`, "Recovery").
//!
//! On one node the window gives the position at once. Scaled out the coordinator does
//! ([`CoordRequest::Sequence`]), so the message waits for its answer; each node then
//! delivers the thread's messages in position order (`ordering`). If the coordinator cannot
//! answer, the message goes out without a position, at once: live delivery never waits on
//! Redis for longer than its request's timeout.

use std::time::Instant;

use bytes::Bytes;

use super::ordering::Pending;
use super::{Hub, PendingCoord};
use crate::hub::{BrokerEvent, CoordRequest, CoordResponse, SendReceipt, Sequenced};
use crate::ids::{ClientMessageId, ConnId, ThreadId, UserId};
use crate::wire::{Epoch, MessageEvent, Position, RequestId, ServerMessage, Unread};

/// One copy of a message: to every connection of `users` (and `conn`), with the unread
/// counts that are theirs, if any.
#[derive(Debug)]
pub(super) struct MessageCopy {
    pub(super) users: Vec<UserId>,
    pub(super) conn: Option<ConnId>,
    pub(super) unread: Option<Unread>,
}

/// The sender's `ack`, written after the message.
#[derive(Debug)]
pub(super) struct SendAck {
    pub(super) conn: ConnId,
    pub(super) request_id: Option<RequestId>,
    pub(super) client_message_id: Option<ClientMessageId>,
    pub(super) receipt: SendReceipt,
}

/// A message to deliver, with no position or unread counts yet.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) event: MessageEvent,
    pub(super) copies: Vec<MessageCopy>,
    pub(super) then_ack: Option<SendAck>,
    /// `event` encoded, as the coordinator keeps it.
    frame: Bytes,
    /// Each copy's frame without a position (with the copy's unread counts, if any), in
    /// the order of `copies`: encoded once, stamped once its position is known.
    copy_frames: Vec<Bytes>,
}

impl Outgoing {
    pub(super) fn new(
        event: MessageEvent,
        copies: Vec<MessageCopy>,
        then_ack: Option<SendAck>,
    ) -> Self {
        let frame = ServerMessage::Message(MessageEvent {
            unread: None,
            position: None,
            ..event.clone()
        })
        .encode();
        let copy_frames = copies
            .iter()
            .map(|copy| match copy.unread {
                None => frame.clone(),
                unread => ServerMessage::Message(MessageEvent {
                    unread,
                    position: None,
                    ..event.clone()
                })
                .encode(),
            })
            .collect();
        Self {
            event,
            copies,
            then_ack,
            frame,
            copy_frames,
        }
    }
}

impl Hub {
    /// Gives `out` its position, then delivers it.
    pub(super) fn send_out(&mut self, now: Instant, out: Outgoing) {
        if !self.config.cluster {
            let frame = out.frame.clone();
            let position = self.recovery.windows.append(
                &out.event.thread_id,
                out.event.id.clone(),
                |position| position.stamp(&frame),
            );
            self.release(now, out, Some(position), None, false);
            return;
        }
        let epoch = self.recovery.next_epoch(&self.config.instance);
        let publish = self.publications(&out);
        let request = CoordRequest::Sequence {
            thread: out.event.thread_id.clone(),
            id: out.event.id.clone(),
            frame: out.frame.clone(),
            epoch,
            publish,
        };
        self.coord(request, PendingCoord::Sequence(Box::new(out)));
    }

    /// The coordinator's answer to [`Hub::send_out`]'s request.
    pub(super) fn sequence_result(&mut self, now: Instant, out: Outgoing, result: CoordResponse) {
        let (position, since_previous_ms, published) = match result {
            CoordResponse::Sequenced {
                position,
                since_previous_ms,
                published,
            } => (Some(position), since_previous_ms, published),
            _ => {
                self.fx.stats.positions_unavailable += 1;
                (None, None, false)
            }
        };
        self.release(now, out, position, since_previous_ms, published);
    }

    /// The publications of `out`'s copies for the coordinator to stamp and publish: each
    /// copy's frame without a position, at the placeholder position.
    fn publications(&self, out: &Outgoing) -> Vec<crate::hub::BrokerMessage> {
        out.copies
            .iter()
            .zip(&out.copy_frames)
            .filter_map(|(copy, frame)| {
                self.fx.publication(BrokerEvent::Deliver {
                    users: copy.users.clone(),
                    frame: frame.clone(),
                    sequenced: Some(Sequenced {
                        thread: out.event.thread_id.clone(),
                        id: out.event.id.clone(),
                        position: Sequenced::placeholder(),
                        since_previous_ms: None,
                    }),
                })
            })
            .collect()
    }

    /// Delivers every copy of `out` at `position` here, publishes it (unless the
    /// coordinator did), then acks the send.
    fn release(
        &mut self,
        now: Instant,
        out: Outgoing,
        position: Option<Position>,
        since_previous_ms: Option<u64>,
        published: bool,
    ) {
        let Outgoing {
            event,
            copies,
            then_ack,
            frame,
            copy_frames,
        } = out;
        let kept = match &position {
            Some(position) => position.stamp(&frame),
            None => frame,
        };
        let sequenced = position.clone().map(|position| Sequenced {
            thread: event.thread_id.clone(),
            id: event.id.clone(),
            position,
            since_previous_ms,
        });
        for (copy, unstamped) in copies.into_iter().zip(copy_frames) {
            let frame = match (&position, copy.unread) {
                (_, None) => kept.clone(),
                (Some(position), Some(_)) => position.stamp(&unstamped),
                (None, Some(_)) => unstamped,
            };
            let pending = Pending {
                users: copy.users.clone(),
                conn: copy.conn,
                id: event.id.clone(),
                frame: frame.clone(),
            };
            match &sequenced {
                Some(s) if self.config.cluster => self.deliver_in_order(now, s, pending),
                _ => self.deliver_pending(&event.thread_id, pending),
            }
            if !published {
                self.publish(BrokerEvent::Deliver {
                    users: copy.users,
                    frame,
                    sequenced: if self.config.cluster {
                        sequenced.clone()
                    } else {
                        None
                    },
                });
            }
        }
        if let Some(ack) = then_ack {
            self.ack_send(
                ack.conn,
                ack.request_id,
                ack.client_message_id,
                &ack.receipt,
            );
        }
    }

    /// Scaled out: delivers a message to its local recipients in its thread's position
    /// order.
    fn deliver_in_order(&mut self, now: Instant, s: &Sequenced, pending: Pending) {
        // Its predecessor surely came (or will not) if it was counted longer ago than a
        // message out of turn waits.
        let settled = s
            .since_previous_ms
            .is_none_or(|ms| u128::from(ms) >= self.config.order_wait.as_millis());
        let ready = self
            .recovery
            .ordering
            .offer(&s.thread, &s.position, settled, pending);
        self.apply_ready(now, &s.thread, ready);
    }

    /// A publication of another node's message, with its position.
    pub(super) fn deliver_sequenced(
        &mut self,
        now: Instant,
        users: Vec<UserId>,
        frame: Bytes,
        sequenced: Sequenced,
    ) {
        self.threads.note_message(&sequenced.thread, &sequenced.id);
        let pending = Pending {
            users,
            conn: None,
            id: sequenced.id.clone(),
            frame,
        };
        self.deliver_in_order(now, &sequenced, pending);
    }

    /// The wait of `thread`'s message out of turn is over: the missing ones are read from
    /// the shared window (a publication lost on the way is still there), or, when there is
    /// no gap this node can tell, what waits goes out.
    pub(super) fn order_wait_over(&mut self, thread: &ThreadId) {
        if self.recovery.ordering.is_filling(thread) {
            return;
        }
        if self.recovery.ordering.start_fill(thread) {
            let request = CoordRequest::ReadWindow {
                thread: thread.clone(),
                user: None,
                epoch: self.recovery.next_epoch(&self.config.instance),
            };
            self.coord(request, PendingCoord::FillGap(thread.clone()));
            return;
        }
        let ready = self.recovery.ordering.give_up(thread);
        if ready.gave_up {
            self.fx.stats.order_gaps += 1;
        }
        for pending in ready.now {
            self.deliver_pending(thread, pending);
        }
    }

    /// The shared window, read to fill a gap in `thread`: the missing messages go to the
    /// thread's participants here, then what waited. Unanswered: what waited goes out.
    pub(super) fn fill_gap_result(
        &mut self,
        now: Instant,
        thread: &ThreadId,
        result: CoordResponse,
    ) {
        let (epoch, found) = match result {
            CoordResponse::Window(read) => {
                let users = self.threads.participants(thread);
                let found = read
                    .entries
                    .into_iter()
                    .map(|e| {
                        let pending = Pending {
                            users: users.clone(),
                            conn: None,
                            id: e.id,
                            frame: e.frame,
                        };
                        (e.offset, pending)
                    })
                    .collect();
                (read.epoch, found)
            }
            _ => (None, Vec::new()),
        };
        let ready = self.recovery.ordering.fill(thread, epoch.as_ref(), found);
        if !ready.gave_up && !ready.now.is_empty() {
            self.fx.stats.order_gaps_filled += 1;
        }
        self.apply_ready(now, thread, ready);
    }

    fn apply_ready(&mut self, now: Instant, thread: &ThreadId, ready: super::ordering::Ready) {
        if ready.gave_up {
            self.fx.stats.order_gaps += 1;
        }
        let key = super::timer::TimerKey::OrderWait(thread.clone());
        if !self.recovery.ordering.is_waiting(thread) {
            self.fx.timers.cancel(&key);
        } else if ready.arm || !self.fx.timers.is_set(&key) {
            self.fx.timers.set(key, now + self.config.order_wait);
        }
        for pending in ready.now {
            self.deliver_pending(thread, pending);
        }
    }

    fn deliver_pending(&mut self, thread: &ThreadId, pending: Pending) {
        let mut conns = self.conns_of(&pending.users);
        if let Some(conn) = pending.conn {
            conns.push(conn);
        }
        self.deliver_message(conns, thread, &pending.id, pending.frame);
    }
}

/// The epoch a thread's counter starts in if the coordinator has none for it: this process
/// and a count, so no two requests ever name the same one.
pub(super) fn epoch_for(instance: &crate::ids::InstanceId, n: u64) -> Epoch {
    Epoch::new(&format!("{instance}.s{n}"))
        .unwrap_or_else(|| Epoch::new(&format!("s{n}")).expect("a valid epoch"))
}
