//! `send_message` (store through the site, then deliver), `clientMessageId` idempotency,
//! per-(user, thread) ordering, and `mark_read`.

use crate::hash::IdMap;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::effects::Effects;
use super::sequencing::{MessageCopy, Outgoing, SendAck};
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

/// How a send with a `clientMessageId` relates to the earlier ones.
#[derive(Debug, PartialEq, Eq)]
enum Idempotency {
    /// Stored already: answer with its receipt.
    Done(SendReceipt),
    /// The id was used for another message.
    Conflict,
    /// A duplicate of one in flight: it waits for its outcome.
    Duplicate,
    /// The first: claim it.
    New,
}

/// All send state of a Hub.
#[derive(Debug, Default)]
pub(super) struct Sends {
    lanes: HashMap<LaneKey, VecDeque<PendingSend>>,
    pending_per_user: IdMap<UserId, usize>,
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

    /// Sends of `user` waiting for their claim, their turn or the site.
    fn pending_of(&self, user: &UserId) -> usize {
        self.pending_per_user.get(user).copied().unwrap_or(0)
    }

    /// Checks a send with a `clientMessageId` against the ones completed or in flight; a
    /// duplicate of one in flight (same parameters) waits for its outcome as `waiter`.
    /// A new one is in flight from now on.
    fn check_idempotent(
        &mut self,
        key: &IdemKey,
        fingerprint: SendFingerprint,
        waiter: Waiter,
    ) -> Idempotency {
        if let Some((receipt, done)) = self.done.get(key) {
            return if *done == fingerprint {
                Idempotency::Done(receipt.clone())
            } else {
                Idempotency::Conflict
            };
        }
        if let Some(in_flight) = self.in_flight.get_mut(key) {
            if in_flight.fingerprint != fingerprint {
                return Idempotency::Conflict;
            }
            in_flight.waiters.push(waiter);
            return Idempotency::Duplicate;
        }
        let in_flight = InFlight {
            fingerprint,
            waiters: Vec::new(),
        };
        self.in_flight.insert(key.clone(), in_flight);
        Idempotency::New
    }

    /// `send` waits for the claim of its `clientMessageId`.
    fn wait_claim(&mut self, key: IdemKey, send: PendingSend) {
        self.add_pending(&key.0);
        self.claiming.insert(key, send);
    }

    /// The coordinator answered the claim `key`: the send that waited for it.
    fn claimed(&mut self, key: &IdemKey) -> Option<PendingSend> {
        let send = self.claiming.remove(key)?;
        self.remove_pending(&key.0);
        Some(send)
    }

    /// The send of `key` has an outcome: the duplicates that waited for it.
    fn take_waiters(&mut self, key: &IdemKey) -> Vec<Waiter> {
        self.in_flight
            .remove(key)
            .map(|f| f.waiters)
            .unwrap_or_default()
    }

    /// Remembers for `ttl` that the send of `key` was stored as `receipt`.
    fn remember_done(
        &mut self,
        now: Instant,
        key: &IdemKey,
        done: (SendReceipt, SendFingerprint),
        ttl: Duration,
        fx: &mut Effects,
    ) {
        self.done.insert(key.clone(), done);
        fx.timers.set(
            TimerKey::IdempotencyExpiry(key.0.clone(), key.1.clone()),
            now + ttl,
        );
    }

    /// Queues `send` of `user` in its lane; the lane, if it was idle (its send is to post).
    fn enqueue(&mut self, user: &UserId, send: PendingSend) -> Option<LaneKey> {
        let key = LaneKey {
            user: user.clone(),
            thread: send.thread.clone(),
            recipient: if send.thread.is_none() {
                send.recipient.clone()
            } else {
                None
            },
        };
        self.add_pending(user);
        let lane = self.lanes.entry(key.clone()).or_default();
        lane.push_back(send);
        (lane.len() == 1).then_some(key)
    }

    /// The connection of the send at the front of `lane`.
    fn front_conn(&self, lane: &LaneKey) -> Option<ConnId> {
        self.lanes.get(lane)?.front().map(|s| s.conn)
    }

    /// Posts the send at the front of `lane` with `credential`: the request for the site.
    fn post(&mut self, lane: &LaneKey, credential: Option<CredentialId>) -> Option<ApiRequest> {
        let send = self.lanes.get_mut(lane)?.front_mut()?;
        send.credential = credential;
        Some(ApiRequest::Send {
            credential,
            sender: lane.user.clone(),
            thread: send.thread.clone(),
            recipients: send.recipient.iter().cloned().collect(),
            text: send.text.clone(),
            client_message_id: send.client_message_id.clone(),
            unconfirmed_since: send.unconfirmed_since,
        })
    }

    /// The site answered the front send of `lane`: that send, and whether more wait.
    fn pop_front(&mut self, lane: &LaneKey) -> Option<(PendingSend, bool)> {
        let queue = self.lanes.get_mut(lane)?;
        let send = queue.pop_front()?;
        let more = !queue.is_empty();
        if !more {
            self.lanes.remove(lane);
        }
        self.remove_pending(&lane.user);
        Some((send, more))
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
        if self.sends.pending_of(user) >= self.config.max_pending_sends_per_user {
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
        let waiter = Waiter {
            conn: send.conn,
            request_id: send.request_id.clone(),
        };
        match self.sends.check_idempotent(&key, fingerprint, waiter) {
            Idempotency::Done(receipt) => {
                self.ack_send(send.conn, send.request_id, Some(cmid), &receipt);
                return;
            }
            Idempotency::Conflict => {
                self.idempotency_conflict(send.conn, send.request_id);
                return;
            }
            Idempotency::Duplicate => return,
            Idempotency::New => {}
        }
        self.sends.wait_claim(key.clone(), send);
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
        let Some(mut send) = self.sends.claimed(&key) else {
            return;
        };
        match response {
            CoordResponse::Done(receipt) => {
                self.ack_send(send.conn, send.request_id, Some(key.1.clone()), &receipt);
                self.finish_idempotent(now, &key, send.fingerprint, &receipt, false);
            }
            CoordResponse::Conflict => {
                // Another node (or an earlier life of this one) used the id for another
                // message; its duplicates here share this send's parameters.
                let waiters = self.sends.take_waiters(&key);
                self.idempotency_conflict(send.conn, send.request_id);
                for w in waiters {
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
        if let Some(lane) = self.sends.enqueue(user, send) {
            self.start_lane(lane);
        }
    }

    fn start_lane(&mut self, key: LaneKey) {
        let Some(conn) = self.sends.front_conn(&key) else {
            return;
        };
        // The connection's credential now, not when the send was queued: a newer one may
        // have replaced (and released) that one meanwhile.
        let credential = self.conn_credential(conn);
        if let Some(request) = self.sends.post(&key, credential) {
            self.api(request, PendingApi::Send(key));
        }
    }

    pub(super) fn send_result(
        &mut self,
        now: Instant,
        key: LaneKey,
        result: Result<StoredMessage, SiteError>,
    ) {
        let Some((send, more)) = self.sends.pop_front(&key) else {
            return;
        };
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
                let ack = SendAck {
                    conn: send.conn,
                    request_id: send.request_id,
                    client_message_id: send.client_message_id.clone(),
                    receipt: receipt.clone(),
                };
                self.deliver_stored(now, stored, send.client_message_id, ack);
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
                    .map(|idem| self.sends.take_waiters(idem))
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
    /// connection included, on this node and the others; then acks the send.
    fn deliver_stored(
        &mut self,
        now: Instant,
        stored: StoredMessage,
        client_message_id: Option<ClientMessageId>,
        ack: SendAck,
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
        // So the site's report of this message, if it has no key, is not delivered again.
        self.site_events.first_delivery(now, &id);
        let event = MessageEvent {
            id,
            thread_id: thread,
            sender_id: sender,
            message: text,
            html,
            sent_at,
            client_message_id,
            unread: None,
            position: None,
        };
        let copy = MessageCopy {
            users: participants,
            conn: Some(ack.conn),
            unread: None,
        };
        self.send_out(now, Outgoing::new(event, vec![copy], Some(ack)));
    }

    pub(super) fn ack_send(
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
        for w in self.sends.take_waiters(key) {
            self.ack_send(w.conn, w.request_id, Some(key.1.clone()), receipt);
        }
        let done = (receipt.clone(), fingerprint);
        let ttl = self.config.idempotency_ttl;
        self.sends.remember_done(now, key, done, ttl, &mut self.fx);
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
            unread: None,
        })
        .encode();
        let conns = self.conns_of(&participants);
        self.deliver(conns, frame.clone());
        self.publish(BrokerEvent::Deliver {
            users: participants,
            frame,
            sequenced: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::effects::testing::{epoch, fx};
    use crate::ids::MessageId;
    use crate::ids::testing::{thread, user};

    fn send(conn: u64, thread_id: &str, text: &str) -> PendingSend {
        let t = thread(thread_id);
        PendingSend {
            conn: ConnId(conn),
            request_id: None,
            credential: None,
            fingerprint: SendFingerprint::of(Some(&t), None, text),
            thread: Some(t),
            recipient: None,
            text: text.to_owned(),
            client_message_id: None,
            unconfirmed_since: None,
        }
    }

    fn waiter(conn: u64) -> Waiter {
        Waiter {
            conn: ConnId(conn),
            request_id: None,
        }
    }

    #[test]
    fn a_lane_posts_one_send_at_a_time_in_order() {
        let mut sends = Sends::default();
        let alice = user("alice");
        let lane = sends
            .enqueue(&alice, send(1, "t1", "one"))
            .expect("idle: post");
        assert_eq!(
            sends.enqueue(&alice, send(1, "t1", "two")),
            None,
            "waits its turn"
        );
        let other = sends.enqueue(&alice, send(1, "t2", "three"));
        assert!(
            other.is_some_and(|l| l != lane),
            "another thread is another lane"
        );
        assert_eq!(sends.pending_of(&alice), 3);
        let credential = Some(CredentialId(9));
        match sends.post(&lane, credential) {
            Some(ApiRequest::Send {
                text,
                credential: c,
                ..
            }) => {
                assert_eq!((text.as_str(), c), ("one", credential));
            }
            other => panic!("expected a send, got {other:?}"),
        }
        assert_eq!(sends.front_conn(&lane), Some(ConnId(1)));
        let (first, more) = sends.pop_front(&lane).expect("the front send");
        assert_eq!(
            (first.text.as_str(), first.credential, more),
            ("one", credential, true)
        );
        let (second, more) = sends.pop_front(&lane).expect("the next send");
        assert_eq!((second.text.as_str(), more), ("two", false));
        assert!(sends.pop_front(&lane).is_none(), "the lane is gone");
        assert_eq!(sends.pending_of(&alice), 1);
    }

    #[test]
    fn a_client_message_id_is_claimed_once_and_its_duplicates_wait() {
        let (mut sends, mut fx) = (Sends::default(), fx());
        let alice = user("alice");
        let key = (
            alice.clone(),
            ClientMessageId::new("c1").expect("a valid id"),
        );
        let fingerprint = send(1, "t1", "hi").fingerprint;
        let other = send(1, "t1", "bye").fingerprint;
        assert_eq!(
            sends.check_idempotent(&key, fingerprint, waiter(1)),
            Idempotency::New
        );
        sends.wait_claim(key.clone(), send(1, "t1", "hi"));
        assert_eq!(sends.pending_of(&alice), 1);
        let duplicate = sends.check_idempotent(&key, fingerprint, waiter(2));
        assert_eq!(duplicate, Idempotency::Duplicate);
        let conflict = sends.check_idempotent(&key, other, waiter(3));
        assert_eq!(conflict, Idempotency::Conflict);
        assert!(sends.claimed(&key).is_some());
        assert!(sends.claimed(&key).is_none(), "claimed once");
        let waiters: Vec<ConnId> = sends.take_waiters(&key).iter().map(|w| w.conn).collect();
        assert_eq!(waiters, vec![ConnId(2)]);
        let receipt = SendReceipt {
            id: MessageId::new("7").expect("a valid id"),
            thread: thread("t1"),
        };
        let (now, ttl) = (epoch(), Duration::from_secs(60));
        sends.remember_done(now, &key, (receipt.clone(), fingerprint), ttl, &mut fx);
        let expiry = TimerKey::IdempotencyExpiry(key.0.clone(), key.1.clone());
        assert_eq!(fx.timers.at(&expiry), Some(now + ttl));
        let again = sends.check_idempotent(&key, fingerprint, waiter(4));
        assert_eq!(again, Idempotency::Done(receipt));
        assert_eq!(
            sends.check_idempotent(&key, other, waiter(5)),
            Idempotency::Conflict
        );
        sends.forget_done(&key);
        assert!(sends.is_empty(), "nothing left: {sends:?}");
    }
}
