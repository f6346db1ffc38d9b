//! `send_message` (store through the site, then deliver), `clientMessageId` idempotency,
//! per-(user, thread) ordering, and `mark_read`.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::timer::TimerKey;
use super::{
    BrokerEvent, CoordRequest, CoordResponse, Hub, PendingApi, PendingCoord, SendFingerprint,
    SendOutcome, SendReceipt,
};
use crate::api::{ApiRequest, SiteError, SiteErrorKind, StoredMessage};
use crate::ids::{ClientMessageId, ConnId, CredentialId, ThreadId, UserId};
use crate::wire::{Ack, ErrorCode, MessageEvent, ReadEvent, RequestId, SendMessage, ServerMessage};

/// A `clientMessageId` is unique per sender.
pub(super) type IdemKey = (UserId, ClientMessageId);

/// Sends of one user to one thread (or to one recipient, for a new thread) go to the site
/// one at a time, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct LaneKey {
    user: UserId,
    thread: Option<ThreadId>,
    recipient: Option<UserId>,
}

/// A send waiting for its turn or for the site.
#[derive(Debug)]
struct PendingSend {
    conn: ConnId,
    request_id: Option<RequestId>,
    /// The credential it was posted with (the connection's when its turn came).
    credential: Option<CredentialId>,
    thread: Option<ThreadId>,
    recipient: Option<UserId>,
    text: String,
    client_message_id: Option<ClientMessageId>,
    fingerprint: SendFingerprint,
    /// When an earlier attempt with this `clientMessageId` ended unconfirmed (from the
    /// coordinator): this one looks for it on the site before posting.
    unconfirmed_since: Option<i64>,
}

/// A send with a `clientMessageId` between claim and outcome, with its duplicates.
#[derive(Debug)]
struct InFlight {
    fingerprint: SendFingerprint,
    waiters: Vec<Waiter>,
}

/// A duplicate of an in-flight send, waiting for its outcome.
#[derive(Debug)]
struct Waiter {
    conn: ConnId,
    request_id: Option<RequestId>,
}

/// All send state of a Hub.
#[derive(Debug, Default)]
pub(super) struct Sends {
    lanes: HashMap<LaneKey, VecDeque<PendingSend>>,
    pending_per_user: HashMap<UserId, usize>,
    /// Sends with a `clientMessageId` between claim and outcome, with their duplicates.
    in_flight: HashMap<IdemKey, InFlight>,
    /// Sends waiting for their claim to be granted.
    claiming: HashMap<IdemKey, PendingSend>,
    /// Recently completed sends, by `clientMessageId`, with what their parameters hash to.
    done: HashMap<IdemKey, (SendReceipt, SendFingerprint)>,
}

impl Sends {
    /// Whether nothing is pending or remembered (for leak checks in tests).
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.lanes.is_empty()
            && self.pending_per_user.is_empty()
            && self.in_flight.is_empty()
            && self.claiming.is_empty()
            && self.done.is_empty()
    }

    pub(super) fn forget_done(&mut self, key: &IdemKey) {
        self.done.remove(key);
    }

    fn add_pending(&mut self, user: &UserId) {
        *self.pending_per_user.entry(user.clone()).or_default() += 1;
    }

    fn remove_pending(&mut self, user: &UserId) {
        if let Some(n) = self.pending_per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.pending_per_user.remove(user);
            }
        }
    }
}

impl Hub {
    pub(super) fn send_message(
        &mut self,
        conn: ConnId,
        user: &UserId,
        message: SendMessage,
        request_id: Option<RequestId>,
    ) {
        if message.message.trim().is_empty() {
            self.error(
                conn,
                ErrorCode::EmptyMessage,
                "message is empty",
                request_id,
            );
            return;
        }
        if message.thread_id.is_none() && message.recipient_id.is_none() {
            self.error(
                conn,
                ErrorCode::MissingRecipient,
                "send_message needs a threadId or a recipientId",
                request_id,
            );
            return;
        }
        let pending_now = self.sends.pending_per_user.get(user).copied().unwrap_or(0);
        if pending_now >= self.config.max_pending_sends_per_user {
            self.error(
                conn,
                ErrorCode::TooManyPending,
                "too many messages waiting for the site",
                request_id,
            );
            return;
        }
        let fingerprint = SendFingerprint::of(
            message.thread_id.as_ref(),
            message.recipient_id.as_ref(),
            &message.message,
        );
        let send = PendingSend {
            conn,
            request_id,
            credential: None,
            thread: message.thread_id,
            recipient: message.recipient_id,
            text: message.message,
            client_message_id: message.client_message_id,
            fingerprint,
            unconfirmed_since: None,
        };
        let Some(cmid) = send.client_message_id.clone() else {
            self.enqueue_send(user, send);
            return;
        };
        let key = (user.clone(), cmid.clone());
        if let Some((receipt, done_fingerprint)) = self.sends.done.get(&key).cloned() {
            if done_fingerprint == fingerprint {
                self.ack_send(send.conn, send.request_id, Some(cmid), &receipt);
            } else {
                self.idempotency_conflict(send.conn, send.request_id);
            }
            return;
        }
        if let Some(in_flight) = self.sends.in_flight.get_mut(&key) {
            if in_flight.fingerprint == fingerprint {
                in_flight.waiters.push(Waiter {
                    conn: send.conn,
                    request_id: send.request_id,
                });
            } else {
                self.idempotency_conflict(send.conn, send.request_id);
            }
            return;
        }
        self.sends.in_flight.insert(
            key.clone(),
            InFlight {
                fingerprint,
                waiters: Vec::new(),
            },
        );
        self.sends.add_pending(user);
        self.sends.claiming.insert(key.clone(), send);
        let request = CoordRequest::ClaimSend {
            user: user.clone(),
            client_message_id: cmid,
            fingerprint,
        };
        self.coord(request, PendingCoord::ClaimSend(key));
    }

    pub(super) fn claim_send_result(
        &mut self,
        now: Instant,
        key: IdemKey,
        response: CoordResponse,
    ) {
        let Some(mut send) = self.sends.claiming.remove(&key) else {
            return;
        };
        self.sends.remove_pending(&key.0);
        match response {
            CoordResponse::Done(receipt) => {
                self.ack_send(send.conn, send.request_id, Some(key.1.clone()), &receipt);
                self.finish_idempotent(now, &key, send.fingerprint, &receipt, false);
            }
            CoordResponse::Conflict => {
                // Another node (or an earlier life of this one) used the id for another
                // message; its duplicates here share this send's parameters.
                let in_flight = self.sends.in_flight.remove(&key);
                self.idempotency_conflict(send.conn, send.request_id);
                for w in in_flight.map(|f| f.waiters).unwrap_or_default() {
                    self.idempotency_conflict(w.conn, w.request_id);
                }
            }
            CoordResponse::Unconfirmed { since_unix_secs } => {
                send.unconfirmed_since = Some(since_unix_secs);
                self.enqueue_send(&key.0.clone(), send);
            }
            // Claimed, or the coordinator is unreachable: local deduplication still holds,
            // and a reachable site beats refusing to send.
            _ => self.enqueue_send(&key.0.clone(), send),
        }
    }

    fn enqueue_send(&mut self, user: &UserId, send: PendingSend) {
        let key = LaneKey {
            user: user.clone(),
            thread: send.thread.clone(),
            recipient: if send.thread.is_none() {
                send.recipient.clone()
            } else {
                None
            },
        };
        self.sends.add_pending(user);
        let lane = self.sends.lanes.entry(key.clone()).or_default();
        lane.push_back(send);
        if lane.len() == 1 {
            self.start_lane(key);
        }
    }

    fn start_lane(&mut self, key: LaneKey) {
        let Some(conn) = self
            .sends
            .lanes
            .get(&key)
            .and_then(VecDeque::front)
            .map(|s| s.conn)
        else {
            return;
        };
        // The connection's credential now, not when the send was queued: a newer one may
        // have replaced (and released) that one meanwhile.
        let credential = self.conn_credential(conn);
        let Some(send) = self.sends.lanes.get_mut(&key).and_then(VecDeque::front_mut) else {
            return;
        };
        send.credential = credential;
        let request = ApiRequest::Send {
            credential: send.credential,
            sender: key.user.clone(),
            thread: send.thread.clone(),
            recipients: send.recipient.iter().cloned().collect(),
            text: send.text.clone(),
            client_message_id: send.client_message_id.clone(),
            unconfirmed_since: send.unconfirmed_since,
        };
        self.api(request, PendingApi::Send(key));
    }

    pub(super) fn send_result(
        &mut self,
        now: Instant,
        key: LaneKey,
        result: Result<StoredMessage, SiteError>,
    ) {
        let Some(lane) = self.sends.lanes.get_mut(&key) else {
            return;
        };
        let Some(send) = lane.pop_front() else { return };
        let more = !lane.is_empty();
        if !more {
            self.sends.lanes.remove(&key);
        }
        self.sends.remove_pending(&key.user);
        let idem = send
            .client_message_id
            .clone()
            .map(|cmid| (key.user.clone(), cmid));
        match result {
            Ok(stored) => {
                let receipt = SendReceipt {
                    id: stored.id.clone(),
                    thread: stored.thread.clone(),
                };
                self.deliver_stored(now, send.conn, stored, send.client_message_id.clone());
                self.ack_send(send.conn, send.request_id, send.client_message_id, &receipt);
                if let Some(idem) = idem {
                    self.finish_idempotent(now, &idem, send.fingerprint, &receipt, true);
                }
            }
            Err(error) => {
                // Unknown when this attempt's outcome is, or when an earlier attempt's was
                // and this one did not find it: either may be stored.
                let unknown =
                    error.kind == SiteErrorKind::Unconfirmed || send.unconfirmed_since.is_some();
                let waiters = idem
                    .as_ref()
                    .and_then(|idem| self.sends.in_flight.remove(idem))
                    .map(|f| f.waiters)
                    .unwrap_or_default();
                let answer_to = std::iter::once((send.conn, send.request_id.clone()))
                    .chain(waiters.into_iter().map(|w| (w.conn, w.request_id)));
                for (conn, request_id) in answer_to.collect::<Vec<_>>() {
                    if unknown && error.kind.retryable() {
                        self.send_unconfirmed(conn, request_id);
                    } else {
                        self.site_error(conn, &error, request_id);
                    }
                }
                if let Some(idem) = &idem {
                    let outcome = if unknown {
                        SendOutcome::Unconfirmed {
                            since_unix_secs: send.unconfirmed_since,
                        }
                    } else {
                        SendOutcome::Failed
                    };
                    let finish = CoordRequest::FinishSend {
                        user: idem.0.clone(),
                        client_message_id: idem.1.clone(),
                        fingerprint: send.fingerprint,
                        outcome,
                    };
                    self.coord(finish, PendingCoord::Ignore);
                }
                match error.kind {
                    SiteErrorKind::Unauthenticated => {
                        if let Some(credential) = send.credential {
                            self.revoke(now, credential);
                        }
                    }
                    SiteErrorKind::Forbidden => {
                        if let Some(thread) = &send.thread {
                            self.deny(now, key.user.clone(), thread.clone());
                            self.threads.mark_stale(thread);
                        }
                    }
                    _ => {}
                }
            }
        }
        if more {
            self.start_lane(key);
        }
    }

    /// Delivers a stored message to every connection of every participant, the sending
    /// connection included, on this node and the others.
    fn deliver_stored(
        &mut self,
        now: Instant,
        sender_conn: ConnId,
        stored: StoredMessage,
        client_message_id: Option<ClientMessageId>,
    ) {
        let StoredMessage {
            id,
            thread,
            sender,
            text,
            html,
            sent_at,
            mut participants,
        } = stored;
        if !participants.contains(&sender) {
            participants.push(sender.clone());
        }
        self.set_participants(now, &thread, &participants, Some(id.clone()));
        self.stop_typing(&sender, &thread);
        let frame = ServerMessage::Message(MessageEvent {
            id,
            thread_id: thread,
            sender_id: sender,
            message: text,
            html,
            sent_at,
            client_message_id,
        })
        .encode();
        let mut conns = self.conns_of(&participants);
        conns.push(sender_conn);
        self.deliver(conns, frame.clone());
        self.publish(BrokerEvent::Deliver {
            users: participants,
            frame,
        });
    }

    fn ack_send(
        &mut self,
        conn: ConnId,
        request_id: Option<RequestId>,
        client_message_id: Option<ClientMessageId>,
        receipt: &SendReceipt,
    ) {
        let ack = Ack {
            request_id: None,
            client_message_id,
            id: Some(receipt.id.clone()),
            thread_id: Some(receipt.thread.clone()),
            call_id: None,
        };
        self.ack_if_asked(conn, request_id, ack);
    }

    /// The answer to a send whose outcome is unknown, whatever the site's own words.
    fn send_unconfirmed(&mut self, conn: ConnId, request_id: Option<RequestId>) {
        let code = ErrorCode::SendUnconfirmed;
        self.error(conn, code, code.message(), request_id);
    }

    fn idempotency_conflict(&mut self, conn: ConnId, request_id: Option<RequestId>) {
        let code = ErrorCode::IdempotencyConflict;
        self.error(conn, code, code.message(), request_id);
    }

    /// A send with a `clientMessageId` completed: answer its duplicates, remember it.
    fn finish_idempotent(
        &mut self,
        now: Instant,
        key: &IdemKey,
        fingerprint: SendFingerprint,
        receipt: &SendReceipt,
        record: bool,
    ) {
        let waiters = self
            .sends
            .in_flight
            .remove(key)
            .map(|f| f.waiters)
            .unwrap_or_default();
        for w in waiters {
            self.ack_send(w.conn, w.request_id, Some(key.1.clone()), receipt);
        }
        self.sends
            .done
            .insert(key.clone(), (receipt.clone(), fingerprint));
        self.fx.timers.set(
            TimerKey::IdempotencyExpiry(key.0.clone(), key.1.clone()),
            now + self.config.idempotency_ttl,
        );
        if record {
            let finish = CoordRequest::FinishSend {
                user: key.0.clone(),
                client_message_id: key.1.clone(),
                fingerprint,
                outcome: SendOutcome::Stored(receipt.clone()),
            };
            self.coord(finish, PendingCoord::Ignore);
        }
    }

    pub(super) fn mark_read(
        &mut self,
        conn: ConnId,
        user: &UserId,
        thread: ThreadId,
        request_id: Option<RequestId>,
    ) {
        let credential = self.conn_credential(conn);
        let request = ApiRequest::MarkRead {
            credential,
            user: user.clone(),
            thread: thread.clone(),
        };
        self.api(
            request,
            PendingApi::MarkRead {
                conn,
                request_id,
                user: user.clone(),
                thread,
            },
        );
    }

    pub(super) fn mark_read_result(
        &mut self,
        now: Instant,
        conn: ConnId,
        request_id: Option<RequestId>,
        user: UserId,
        thread: ThreadId,
        result: Result<(), SiteError>,
    ) {
        if let Err(error) = result {
            self.site_error(conn, &error, request_id);
            if error.kind == SiteErrorKind::Unauthenticated
                && let Some(credential) = self.conn_credential(conn)
            {
                self.revoke(now, credential);
            }
            return;
        }
        let participants = self.participants(&thread);
        let frame = ServerMessage::Read(ReadEvent {
            thread_id: thread.clone(),
            user_id: user,
        })
        .encode();
        let conns = self.conns_of(&participants);
        self.deliver(conns, frame.clone());
        self.publish(BrokerEvent::Deliver {
            users: participants,
            frame,
        });
        self.ack_if_asked(
            conn,
            request_id,
            Ack {
                thread_id: Some(thread),
                ..Ack::default()
            },
        );
    }
}
