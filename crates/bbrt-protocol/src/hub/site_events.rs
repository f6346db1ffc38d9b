//! Site events ([`Input::SiteEvent`](super::Input::SiteEvent)): what happened on the website
//! becomes the frames bbrt's own actions produce, for every connection of every participant
//! on every node (`docs/wordpress.md`, "Site events"; `docs/protocol.md`).
//!
//! The driver hands over only events it verified and deduplicated by event id. What this
//! file adds is the rule that each site message is delivered once, whichever of bbrt's own
//! POST answer and the site's event comes first, on whichever node:
//!
//! - a message bbrt posted carries its idempotency key in the event (`client_message_id`,
//!   written by the plugin before the hook fires), and bbrt's POST answer delivers it, so
//!   the event never does: this holds on every node with no shared state and in both
//!   orders;
//! - a message without a key is delivered from the event, unless this node already
//!   delivered that id (its own send through BuddyBoss's route, or the same message
//!   reported twice under two event ids).

use crate::hash::IdSet;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::sequencing::{MessageCopy, Outgoing};
use super::{BrokerEvent, Hub};
use crate::api::{SiteError, SiteErrorKind, SiteUser};
use crate::ids::{MessageId, ThreadId, UserId};
use crate::site_event::{
    SiteCommand, SiteEvent, SiteEventKind, SiteId, SiteMessageSent, SiteMessagesDeleted,
    SiteParticipantsChanged, SiteThreadDeleted, SiteThreadRead, SiteUnread,
};
use crate::wire::{
    CloseCode, Deleted, MessageEvent, ReadEvent, ServerMessage, ThreadDeleted, ThreadLeft, Unread,
};

/// How long a member the site reported suspended or deleted is refused without asking the
/// site: long enough to close the race with a credential verified just before the change,
/// short enough that a lost `member.unsuspended` locks no one out for long (the site
/// refuses a suspended member's credential on its own).
const GONE_FOR: Duration = Duration::from_secs(3600);

/// How long a delivered message id is remembered: as long as the driver remembers event
/// ids, so a report of the same message cannot outlive both.
const DELIVERED_FOR: Duration = Duration::from_secs(600);

/// Message ids this node delivered recently. Every entry lives [`DELIVERED_FOR`], so they
/// expire in insertion order and pruning pops the oldest.
#[derive(Debug, Default)]
pub(super) struct SiteEvents {
    delivered: IdSet<MessageId>,
    order: VecDeque<(Instant, MessageId)>,
    /// Members the site reported suspended or deleted, until when they are refused.
    gone: HashMap<UserId, Instant>,
    gone_order: VecDeque<(Instant, UserId)>,
}

impl SiteEvents {
    /// Records `id` as delivered at `now`; `false` if it already was.
    pub(super) fn first_delivery(&mut self, now: Instant, id: &MessageId) -> bool {
        while let Some((at, _)) = self.order.front()
            && now.saturating_duration_since(*at) >= DELIVERED_FOR
        {
            if let Some((_, old)) = self.order.pop_front() {
                self.delivered.remove(&old);
            }
        }
        if !self.delivered.insert(id.clone()) {
            return false;
        }
        self.order.push_back((now, id.clone()));
        true
    }

    /// `user` is refused from `now` for [`GONE_FOR`] (`false`: allowed again at once).
    fn set_gone(&mut self, now: Instant, user: &UserId, gone: bool) {
        while let Some((until, _)) = self.gone_order.front()
            && *until <= now
        {
            if let Some((until, old)) = self.gone_order.pop_front()
                && self.gone.get(&old) == Some(&until)
            {
                self.gone.remove(&old);
            }
        }
        if gone {
            self.gone.insert(user.clone(), now + GONE_FOR);
            self.gone_order.push_back((now + GONE_FOR, user.clone()));
        } else {
            self.gone.remove(user);
        }
    }

    fn is_gone(&self, now: Instant, user: &UserId) -> bool {
        self.gone.get(user).is_some_and(|until| *until > now)
    }
}

/// A site id as bbrt's id type (decimal text, as the site client reads them).
fn id<T: std::str::FromStr>(n: SiteId) -> Option<T> {
    n.to_string().parse().ok()
}

fn users(ids: &[SiteId]) -> Vec<UserId> {
    ids.iter().filter_map(|n| id(*n)).collect()
}

fn unread_of(counts: &[SiteUnread], user: SiteId) -> Option<Unread> {
    counts.iter().find(|c| c.user_id == user).map(|c| Unread {
        thread: c.thread_unread,
        total: c.inbox_unread,
    })
}

/// Participants grouped by the unread counts their copy carries: one frame per group.
fn by_unread(
    participants: &[SiteId],
    counts: &[SiteUnread],
) -> BTreeMap<Option<Unread>, Vec<UserId>> {
    let mut groups: BTreeMap<Option<Unread>, Vec<UserId>> = BTreeMap::new();
    for p in participants {
        if let Some(user) = id::<UserId>(*p) {
            groups.entry(unread_of(counts, *p)).or_default().push(user);
        }
    }
    groups
}

impl Hub {
    pub(super) fn site_event(&mut self, now: Instant, event: SiteEvent) {
        self.fx.stats.site_events += 1;
        match event.kind {
            SiteEventKind::MessageSent(m) => self.site_message_sent(now, m, None),
            SiteEventKind::ThreadRead(r) => self.site_thread_read(now, &r),
            SiteEventKind::MessagesDeleted(d) => self.site_messages_deleted(now, &d),
            SiteEventKind::ParticipantsAdded(p) => {
                self.site_participants(now, p.thread_id, &p.participants);
            }
            SiteEventKind::ParticipantsRemoved(p) => self.site_participants_removed(now, &p),
            SiteEventKind::ThreadDeleted(t) => self.site_thread_deleted(now, &t),
            SiteEventKind::ThreadDeletedForMember(t) => {
                if let (Some(thread), Some(user)) =
                    (id::<ThreadId>(t.thread_id), id::<UserId>(t.user_id))
                {
                    self.deleted_for_member(&thread, &user);
                    let frame = ServerMessage::ThreadDeleted(ThreadDeleted {
                        thread_id: thread,
                        everyone: false,
                    });
                    self.deliver_everywhere(vec![user], &frame);
                }
            }
            SiteEventKind::MemberSuspended(m) | SiteEventKind::MemberDeleted(m) => {
                if let Some(user) = id::<UserId>(m.user_id) {
                    self.member_access(now, &user, false);
                    self.publish(BrokerEvent::MemberAccess {
                        user,
                        allowed: false,
                    });
                }
            }
            SiteEventKind::MemberUnsuspended(m) => {
                if let Some(user) = id::<UserId>(m.user_id) {
                    self.member_access(now, &user, true);
                    self.publish(BrokerEvent::MemberAccess {
                        user,
                        allowed: true,
                    });
                }
            }
            // Blocks and their undoing change no frame yet (docs/protocol.md, "Site
            // events"): the site refuses messages between them.
            _ => {}
        }
    }

    /// The site suspended or deleted `user` (`allowed` false): every local connection of
    /// theirs closes, and a verification naming them is refused for a while, tickets
    /// included. `allowed` true (unsuspended) lifts that at once.
    pub(super) fn member_access(&mut self, now: Instant, user: &UserId, allowed: bool) {
        self.site_events.set_gone(now, user, !allowed);
        if allowed {
            return;
        }
        self.disconnect_user(now, user);
    }

    /// A verification's result, refused if it names a member the site reported gone.
    pub(super) fn refuse_gone(
        &self,
        now: Instant,
        result: Result<SiteUser, SiteError>,
    ) -> Result<SiteUser, SiteError> {
        match result {
            Ok(user) if self.site_events.is_gone(now, &user.id) => Err(SiteError::new(
                SiteErrorKind::Unauthenticated,
                "member_gone",
                "the site reported this member suspended or deleted",
            )),
            other => other,
        }
    }

    /// Delivers `frame` to every connection of `users` here, and publishes it for the
    /// other nodes.
    fn deliver_everywhere(&mut self, users: Vec<UserId>, frame: &ServerMessage) {
        let frame = frame.encode();
        let conns = self.conns_of(&users);
        self.deliver(conns, frame.clone());
        self.publish(BrokerEvent::Deliver {
            users,
            frame,
            sequenced: None,
        });
    }

    fn site_messages_deleted(&mut self, now: Instant, d: &SiteMessagesDeleted) {
        let (Some(thread), Some(author)) = (id::<ThreadId>(d.thread_id), id::<UserId>(d.user_id))
        else {
            return;
        };
        self.site_participants(now, d.thread_id, &d.participants);
        let mut audience = users(&d.participants);
        if !audience.contains(&author) {
            audience.push(author.clone());
        }
        let frame = ServerMessage::Deleted(Deleted {
            thread_id: thread,
            user_id: author,
            ids: d.message_ids.iter().filter_map(|n| id(*n)).collect(),
        });
        self.deliver_everywhere(audience, &frame);
    }

    fn site_participants_removed(&mut self, now: Instant, p: &SiteParticipantsChanged) {
        let Some(thread) = id::<ThreadId>(p.thread_id) else {
            return;
        };
        // The cache decides who hears the thread's messages, typing and reads: a removed
        // member is out of it at once, here and (published) on every node.
        self.site_participants(now, p.thread_id, &p.participants);
        let removed = users(&p.user_ids);
        for conn in self.conns_of(&removed) {
            self.leave(conn, &thread);
        }
        self.end_calls_in_thread(&thread, Some(&removed));
        let mut audience = users(&p.participants);
        audience.extend(removed.iter().cloned());
        let frame = ServerMessage::ThreadLeft(ThreadLeft {
            thread_id: thread,
            user_ids: removed,
        });
        self.deliver_everywhere(audience, &frame);
    }

    fn site_thread_deleted(&mut self, now: Instant, t: &SiteThreadDeleted) {
        let Some(thread) = id::<ThreadId>(t.thread_id) else {
            return;
        };
        let mut audience = users(&t.participants);
        for user in self.participants(&thread) {
            if !audience.contains(&user) {
                audience.push(user);
            }
        }
        self.end_calls_in_thread(&thread, None);
        for conn in self.conns_of(&audience) {
            self.leave(conn, &thread);
        }
        // Nobody is in it any more: nothing of it reaches anyone, on any node.
        self.set_participants(now, &thread, &[], None);
        let frame = ServerMessage::ThreadDeleted(ThreadDeleted {
            thread_id: thread,
            everyone: true,
        });
        self.deliver_everywhere(audience, &frame);
    }

    fn site_participants(&mut self, now: Instant, thread: SiteId, participants: &[SiteId]) {
        if let Some(thread) = id::<ThreadId>(thread) {
            self.set_participants(now, &thread, &users(participants), None);
        }
    }

    /// A backend's request (`POST /site/api`).
    pub(super) fn site_command(&mut self, now: Instant, command: SiteCommand) {
        match command {
            SiteCommand::Publish(p) => {
                let p = *p;
                self.site_message_sent(now, p.message, p.user_ids);
            }
            SiteCommand::Disconnect(m) => {
                if let Some(user) = id::<UserId>(m.user_id) {
                    self.disconnect_user(now, &user);
                    self.publish(BrokerEvent::Disconnect { user });
                }
            }
        }
    }

    /// Closes every local connection of `user` (4001: they reconnect with a credential the
    /// site checks again).
    pub(super) fn disconnect_user(&mut self, now: Instant, user: &UserId) {
        let conns = self.conns_of([user]);
        for conn in conns {
            self.close_with(now, conn, CloseCode::CredentialRejected);
        }
    }

    /// `only`: deliver to these members alone (a backend's publish to a user), and then
    /// whatever was delivered before, since they asked for it.
    fn site_message_sent(&mut self, now: Instant, m: SiteMessageSent, only: Option<Vec<SiteId>>) {
        let (Some(message_id), Some(thread), Some(sender)) = (
            id::<MessageId>(m.message_id),
            id::<ThreadId>(m.thread_id),
            id::<UserId>(m.sender_id),
        ) else {
            return;
        };
        let mut participants = m.participants.clone();
        if !participants.contains(&m.sender_id) {
            participants.push(m.sender_id);
        }
        self.set_participants(
            now,
            &thread,
            &users(&participants),
            Some(message_id.clone()),
        );
        if m.client_message_id.is_some() {
            // bbrt posted it: its POST answer delivers it, whichever comes first.
            self.fx.stats.site_messages_skipped += 1;
            return;
        }
        if only.is_none() && !self.site_events.first_delivery(now, &message_id) {
            self.fx.stats.site_messages_skipped += 1;
            return;
        }
        self.stop_typing(&sender, &thread);
        let html = Some(m.message.rendered).filter(|h| !h.is_empty());
        let audience = only.unwrap_or(participants);
        let event = MessageEvent {
            id: message_id,
            thread_id: thread,
            sender_id: sender,
            message: m.message.raw.clone(),
            html,
            sent_at: m.date_sent.clone(),
            client_message_id: None,
            unread: None,
            position: None,
        };
        // Once per message, whoever it goes to: every copy carries the same position.
        let copies = by_unread(&audience, &m.unread)
            .into_iter()
            .map(|(unread, users)| MessageCopy {
                users,
                conn: None,
                unread,
            })
            .collect();
        self.send_out(now, Outgoing::new(event, copies, None));
    }

    fn site_thread_read(&mut self, now: Instant, r: &SiteThreadRead) {
        let (Some(thread), Some(reader)) = (id::<ThreadId>(r.thread_id), id::<UserId>(r.user_id))
        else {
            return;
        };
        let mut participants = r.participants.clone();
        if !participants.contains(&r.user_id) {
            participants.push(r.user_id);
        }
        self.set_participants(now, &thread, &users(&participants), None);
        // Only the reader's own copy carries counts: they are the reader's.
        let reader_counts: Vec<SiteUnread> = r
            .unread
            .iter()
            .filter(|c| c.user_id == r.user_id)
            .copied()
            .collect();
        for (unread, users) in by_unread(&participants, &reader_counts) {
            let frame = ServerMessage::Read(ReadEvent {
                thread_id: thread.clone(),
                user_id: reader.clone(),
                unread,
            })
            .encode();
            let conns = self.conns_of(&users);
            self.deliver(conns, frame.clone());
            self.publish(BrokerEvent::Deliver {
                users,
                frame,
                sequenced: None,
            });
        }
    }
}
