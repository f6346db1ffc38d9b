//! The embedded development site's rules, in one place and without I/O: `MemoryBuddyBoss`
//! (in `bbrt-buddyboss`) serves them to the server, and the Hub's simulation answers its
//! site requests with them, so both follow the same site (DESIGN.md, "Embedded default").
//!
//! - A token `dev:<userId>` names that user; any other token names the connection's
//!   current user, or, on an anonymous connection, a user whose id is the token itself
//!   (so it must be a valid id). A bare claimed `userId` without a credential is trusted.
//! - A thread is created by its first join or message; whoever joins, a message's
//!   sender and its recipients become participants (so the seed's React example, which
//!   never joins, works).
//! - A message without a thread starts one with its recipients, or reuses the thread
//!   with exactly that set of participants (as BuddyBoss does).
//! - Message ids count up from 1; new threads get numeric ids (skipping ids a client
//!   already used).
//! - Only the newest [`HISTORY`] messages of a thread are kept (enough to reconcile a
//!   send and to catch a client up a little), so memory stays flat however long it runs.
//! - A thread's history is paged as BuddyBoss pages it ([`DevSite::history`]): the newest
//!   [`HISTORY_PAGE_SIZE`] messages sent at or before `before`, oldest first, with
//!   BuddyBoss's one-second cursor. Older messages than the kept ones are gone: the last
//!   page is then simply not full, as the thread's first page would be.
//!
//! The clock and the rendering are the caller's: a send takes its time and its HTML.

use std::collections::{BTreeMap, VecDeque};

use crate::api::{
    HISTORY_PAGE_SIZE, HistoryPage, SiteError, SiteErrorKind, StoredMessage, ThreadInfo,
};
use crate::ids::{MessageId, ThreadId, UserId};

/// Messages kept per thread: the site only needs recent ones (for reconciliation), and a
/// development server that kept them all would grow without bound under a soak.
pub const HISTORY: usize = 64;

/// Why the development site refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DevSiteError {
    /// No credential and no claimed user.
    NotLoggedIn,
    /// A `dev:` token that names no valid user id.
    InvalidDevToken,
    /// A token that is not a valid user id, on an anonymous connection.
    InvalidToken,
    /// Not a participant of the thread (or no such thread).
    Forbidden,
    /// The message is empty.
    EmptyMessage,
    /// A new thread with no recipient.
    NoRecipients,
    /// A history `before` that is not a UTC date.
    InvalidBefore,
}

impl DevSiteError {
    /// The error code BuddyBoss answers in this case.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotLoggedIn => "rest_not_logged_in",
            Self::InvalidDevToken | Self::InvalidToken => "invalid_token",
            Self::Forbidden => "bp_rest_authorization_required",
            Self::EmptyMessage => "bp_rest_messages_empty_message",
            Self::NoRecipients => "bp_rest_empty_recipients",
            Self::InvalidBefore => "rest_invalid_param",
        }
    }

    /// The site's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotLoggedIn => "You are not currently logged in.",
            Self::InvalidDevToken => "the dev: token names no valid user id",
            Self::InvalidToken => "the token is not a valid user id",
            Self::Forbidden => "Sorry, you are not allowed to see this thread.",
            Self::EmptyMessage => "Sorry, Your message cannot be empty.",
            Self::NoRecipients => "Please, enter recipients user IDs.",
            Self::InvalidBefore => "Invalid parameter(s): before",
        }
    }

    /// The kind of failure, as the Hub sees it.
    pub fn kind(self) -> SiteErrorKind {
        match self {
            Self::NotLoggedIn | Self::InvalidDevToken | Self::InvalidToken => {
                SiteErrorKind::Unauthenticated
            }
            Self::Forbidden => SiteErrorKind::Forbidden,
            Self::EmptyMessage => SiteErrorKind::EmptyMessage,
            Self::NoRecipients | Self::InvalidBefore => SiteErrorKind::Invalid,
        }
    }
}

impl From<DevSiteError> for SiteError {
    fn from(error: DevSiteError) -> Self {
        Self::new(error.kind(), error.code(), error.message())
    }
}

/// When a message is stored, and how it renders (the caller's clock and renderer).
#[derive(Debug, Clone)]
pub struct Stamp {
    /// Unix seconds (what reconciliation and history's `before` compare).
    pub unix_secs: i64,
    /// The same instant, RFC 3339 UTC. History pages show it and a caller pages on from
    /// it ([`HistoryPage::older_cursor`]), so it must be `unix_secs` formatted: a fixed
    /// string would page into another time.
    pub sent_at: String,
    /// The rendered text, if the caller renders it.
    pub html: Option<String>,
}

/// A message to store: a reply in `thread`, or without one, a new thread with `recipients`.
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    /// The sender.
    pub sender: &'a UserId,
    /// The thread to reply in.
    pub thread: Option<&'a ThreadId>,
    /// The recipients named by the client.
    pub recipients: &'a [UserId],
    /// The text.
    pub text: &'a str,
}

#[derive(Debug, Default)]
struct Thread {
    participants: Vec<UserId>,
    /// The newest [`HISTORY`] messages, with their times; kept without `participants`
    /// (the thread's own list answers for them).
    messages: VecDeque<(StoredMessage, i64)>,
}

impl Thread {
    fn add(&mut self, user: &UserId) {
        if !self.participants.contains(user) {
            self.participants.push(user.clone());
        }
    }

    fn info(&self, id: &ThreadId) -> ThreadInfo {
        ThreadInfo {
            thread: id.clone(),
            participants: self.participants.clone(),
            last_message: self.messages.back().map(|(m, _)| m.id.clone()),
        }
    }

    fn same_set(&self, set: &[UserId]) -> bool {
        self.participants.len() == set.len() && set.iter().all(|u| self.participants.contains(u))
    }

    /// The newest message of `post` stored at or after `since`, with the participants.
    fn find(&self, post: &Post<'_>, since: i64) -> Option<StoredMessage> {
        self.messages
            .iter()
            .rev()
            .find(|(m, at)| m.sender == *post.sender && m.text == post.text && *at >= since)
            .map(|(m, _)| StoredMessage {
                participants: self.participants.clone(),
                ..m.clone()
            })
    }
}

/// The development site's threads and counters.
#[derive(Debug, Default)]
pub struct DevSite {
    threads: BTreeMap<ThreadId, Thread>,
    next_message: u64,
    next_thread: u64,
}

impl DevSite {
    /// An empty site.
    pub fn new() -> Self {
        Self::default()
    }

    /// Who `token` (or, without one, `claimed`) is; `current` is who the connection
    /// already is.
    pub fn verify(
        &self,
        token: Option<&str>,
        claimed: Option<&UserId>,
        current: Option<&UserId>,
    ) -> Result<UserId, DevSiteError> {
        let Some(token) = token else {
            return claimed.cloned().ok_or(DevSiteError::NotLoggedIn);
        };
        if let Some(id) = token.strip_prefix("dev:") {
            return UserId::new(id).map_err(|_| DevSiteError::InvalidDevToken);
        }
        if let Some(current) = current {
            return Ok(current.clone());
        }
        UserId::new(token).map_err(|_| DevSiteError::InvalidToken)
    }

    /// The participants of `thread` as `user` sees them; `join` (an explicit
    /// `join_thread`) creates the thread or adds the user.
    pub fn participants(
        &mut self,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) -> Result<ThreadInfo, DevSiteError> {
        match self.threads.get_mut(thread) {
            Some(t) if t.participants.contains(user) => Ok(t.info(thread)),
            Some(t) if join => {
                t.add(user);
                Ok(t.info(thread))
            }
            None if join => {
                let t = self.threads.entry(thread.clone()).or_default();
                t.add(user);
                Ok(t.info(thread))
            }
            _ => Err(DevSiteError::Forbidden),
        }
    }

    /// Stores `post` at `stamp`; the message with the thread's participants after it.
    pub fn send(&mut self, post: Post<'_>, stamp: Stamp) -> Result<StoredMessage, DevSiteError> {
        if post.text.trim().is_empty() {
            return Err(DevSiteError::EmptyMessage);
        }
        let thread_id = match post.thread {
            Some(id) => id.clone(),
            None => self.thread_for(post.sender, post.recipients)?,
        };
        self.next_message += 1;
        let id =
            MessageId::new(&self.next_message.to_string()).expect("a decimal number is a valid id");
        let t = self.threads.entry(thread_id.clone()).or_default();
        t.add(post.sender);
        for r in post.recipients {
            t.add(r);
        }
        let kept = StoredMessage {
            id,
            thread: thread_id,
            sender: post.sender.clone(),
            text: post.text.to_owned(),
            html: stamp.html,
            sent_at: stamp.sent_at,
            participants: Vec::new(),
        };
        let stored = StoredMessage {
            participants: t.participants.clone(),
            ..kept.clone()
        };
        if t.messages.len() == HISTORY {
            t.messages.pop_front();
        }
        t.messages.push_back((kept, stamp.unix_secs));
        Ok(stored)
    }

    /// The thread a message without one goes to: the one with exactly the sender and
    /// `recipients`, or a new one.
    fn thread_for(
        &mut self,
        sender: &UserId,
        recipients: &[UserId],
    ) -> Result<ThreadId, DevSiteError> {
        if recipients.is_empty() {
            return Err(DevSiteError::NoRecipients);
        }
        let mut set = vec![sender.clone()];
        for r in recipients {
            if !set.contains(r) {
                set.push(r.clone());
            }
        }
        if let Some((id, _)) = self.threads.iter().find(|(_, t)| t.same_set(&set)) {
            return Ok(id.clone());
        }
        loop {
            self.next_thread += 1;
            let id = ThreadId::new(&self.next_thread.to_string())
                .expect("a decimal number is a valid id");
            if !self.threads.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    /// The newest message like `post` stored at or after `since_unix_secs`, in its thread
    /// (or, without one, in a thread of the sender with every recipient).
    pub fn find_recent(&self, post: Post<'_>, since_unix_secs: i64) -> Option<StoredMessage> {
        match post.thread {
            Some(id) => self.threads.get(id)?.find(&post, since_unix_secs),
            None => self
                .threads
                .values()
                .filter(|t| {
                    t.participants.contains(post.sender)
                        && post.recipients.iter().all(|r| t.participants.contains(r))
                })
                .find_map(|t| t.find(&post, since_unix_secs)),
        }
    }

    /// One page of `thread`'s history as `user` sees it, paged as BuddyBoss pages it
    /// (reference §1.2, §1.8): the newest [`HISTORY_PAGE_SIZE`] messages sent at or before
    /// `before` (RFC 3339 UTC, inclusive; `None`: now), oldest first; when the page is
    /// full, `next_before` is its oldest message's time minus one second. Only a
    /// participant may read it.
    pub fn history(
        &self,
        user: &UserId,
        thread: &ThreadId,
        before: Option<&str>,
    ) -> Result<HistoryPage, DevSiteError> {
        let before = match before {
            Some(b) => Some(crate::utc::parse_utc(b).ok_or(DevSiteError::InvalidBefore)?),
            None => None,
        };
        let t = match self.threads.get(thread) {
            Some(t) if t.participants.contains(user) => t,
            _ => return Err(DevSiteError::Forbidden),
        };
        // Kept in the order they were stored, which is `date_sent` order.
        let mut page: Vec<&(StoredMessage, i64)> = t
            .messages
            .iter()
            .rev()
            .filter(|(_, at)| before.is_none_or(|b| *at <= b))
            .take(HISTORY_PAGE_SIZE)
            .collect();
        page.reverse();
        let next_before = match page.first() {
            Some((_, oldest)) if page.len() == HISTORY_PAGE_SIZE => {
                Some(crate::utc::rfc3339_from_unix(oldest - 1))
            }
            _ => None,
        };
        Ok(HistoryPage {
            messages: page.into_iter().map(|(m, _)| m.clone()).collect(),
            next_before,
        })
    }

    /// Marks `thread` read for `user`: only a participant may.
    pub fn mark_read(&self, user: &UserId, thread: &ThreadId) -> Result<(), DevSiteError> {
        match self.threads.get(thread) {
            Some(t) if t.participants.contains(user) => Ok(()),
            _ => Err(DevSiteError::Forbidden),
        }
    }

    /// The participants of `thread`, in the order they came, if the site knows it.
    pub fn participants_of(&self, thread: &ThreadId) -> Option<&[UserId]> {
        self.threads.get(thread).map(|t| t.participants.as_slice())
    }

    /// A site administrator adds `user` to `thread` (created if new).
    pub fn add_participant(&mut self, thread: &ThreadId, user: &UserId) {
        self.threads.entry(thread.clone()).or_default().add(user);
    }

    /// A site administrator removes `user` from `thread`.
    pub fn remove_participant(&mut self, thread: &ThreadId, user: &UserId) {
        if let Some(t) = self.threads.get_mut(thread) {
            t.participants.retain(|p| p != user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testing::{thread, user};

    fn stamp(unix_secs: i64) -> Stamp {
        Stamp {
            unix_secs,
            sent_at: "2026-12-01T00:00:00Z".to_owned(),
            html: None,
        }
    }

    fn post<'a>(sender: &'a UserId, thread: Option<&'a ThreadId>, to: &'a [UserId]) -> Post<'a> {
        Post {
            sender,
            thread,
            recipients: to,
            text: "hi",
        }
    }

    #[test]
    fn a_token_names_its_user() {
        let site = DevSite::new();
        let (alice, bob) = (user("alice"), user("bob"));
        assert_eq!(
            site.verify(Some("dev:alice"), None, Some(&bob)),
            Ok(alice.clone())
        );
        assert_eq!(
            site.verify(Some("secret"), None, Some(&bob)),
            Ok(bob.clone())
        );
        assert_eq!(site.verify(Some("alice"), None, None), Ok(alice.clone()));
        assert_eq!(site.verify(None, Some(&alice), None), Ok(alice));
        assert_eq!(
            site.verify(None, None, None),
            Err(DevSiteError::NotLoggedIn)
        );
        assert_eq!(
            site.verify(Some("dev:"), None, None),
            Err(DevSiteError::InvalidDevToken)
        );
        assert_eq!(
            site.verify(Some("not an id"), None, None),
            Err(DevSiteError::InvalidToken)
        );
    }

    #[test]
    fn a_join_creates_or_enters_a_thread_and_a_look_does_not() {
        let mut site = DevSite::new();
        let (alice, bob, t1) = (user("alice"), user("bob"), thread("t1"));
        assert_eq!(
            site.participants(&alice, &t1, false),
            Err(DevSiteError::Forbidden)
        );
        assert_eq!(
            site.participants(&alice, &t1, true).map(|i| i.participants),
            Ok(vec![alice.clone()])
        );
        assert_eq!(
            site.participants(&bob, &t1, false),
            Err(DevSiteError::Forbidden)
        );
        assert_eq!(site.mark_read(&bob, &t1), Err(DevSiteError::Forbidden));
        site.participants(&bob, &t1, true).expect("bob joins");
        assert_eq!(
            site.participants_of(&t1),
            Some([alice, bob.clone()].as_slice())
        );
        assert_eq!(site.mark_read(&bob, &t1), Ok(()));
        site.remove_participant(&t1, &bob);
        assert_eq!(site.mark_read(&bob, &t1), Err(DevSiteError::Forbidden));
    }

    #[test]
    fn a_message_without_a_thread_reuses_the_one_with_the_same_people() {
        let mut site = DevSite::new();
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        site.add_participant(&thread("1"), &carol);
        let to_bob = [bob.clone(), bob.clone()];
        let first = site
            .send(post(&alice, None, &to_bob), stamp(1))
            .expect("stored");
        assert_eq!(
            first.thread,
            thread("2"),
            "a new numeric id, skipping one in use"
        );
        assert_eq!(first.participants, vec![alice.clone(), bob.clone()]);
        assert_eq!(first.id, MessageId::new("1").expect("a valid id"));
        let again = site
            .send(post(&bob, None, std::slice::from_ref(&alice)), stamp(2))
            .expect("stored");
        assert_eq!(again.thread, first.thread, "the same two people");
        let info = site
            .participants(&alice, &first.thread, false)
            .expect("a member");
        assert_eq!(info.last_message, Some(again.id));
        assert_eq!(
            site.send(post(&alice, None, &[]), stamp(3)),
            Err(DevSiteError::NoRecipients)
        );
        let empty = Post {
            text: "  ",
            ..post(&alice, Some(&first.thread), &[])
        };
        assert_eq!(site.send(empty, stamp(3)), Err(DevSiteError::EmptyMessage));
    }

    #[test]
    fn a_recent_message_is_found_and_an_old_one_is_forgotten() {
        let mut site = DevSite::new();
        let (alice, bob, t1) = (user("alice"), user("bob"), thread("t1"));
        let stored = site
            .send(
                post(&alice, Some(&t1), std::slice::from_ref(&bob)),
                stamp(100),
            )
            .expect("stored");
        assert_eq!(
            site.find_recent(post(&alice, Some(&t1), &[]), 100),
            Some(stored.clone())
        );
        assert_eq!(
            site.find_recent(post(&alice, None, std::slice::from_ref(&bob)), 50),
            Some(stored)
        );
        assert_eq!(
            site.find_recent(post(&alice, Some(&t1), &[]), 101),
            None,
            "too old"
        );
        assert_eq!(
            site.find_recent(post(&bob, Some(&t1), &[]), 0),
            None,
            "not bob's"
        );
        for n in 0..HISTORY {
            let text = format!("m{n}");
            let other = Post {
                text: &text,
                ..post(&alice, Some(&t1), &[])
            };
            site.send(other, stamp(200)).expect("stored");
        }
        assert_eq!(
            site.find_recent(post(&alice, Some(&t1), &[]), 0),
            None,
            "beyond the history"
        );
    }

    /// Stores one message from alice in `t` per entry of `secs` (its Unix second).
    fn fill(site: &mut DevSite, t: &ThreadId, secs: &[i64]) -> Vec<MessageId> {
        let (alice, bob) = (user("alice"), user("bob"));
        secs.iter()
            .map(|&at| {
                let stamp = Stamp {
                    unix_secs: at,
                    sent_at: crate::utc::rfc3339_from_unix(at),
                    html: None,
                };
                let to = std::slice::from_ref(&bob);
                site.send(post(&alice, Some(t), to), stamp)
                    .expect("stored")
                    .id
            })
            .collect()
    }

    fn ids(page: &HistoryPage) -> Vec<&str> {
        page.messages.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn history_pages_back_ten_at_a_time_oldest_first() {
        let mut site = DevSite::new();
        let t1 = thread("t1");
        // 25 messages, one per second from 1000.
        let all = fill(&mut site, &t1, &(1000..1025).collect::<Vec<_>>());
        let newest = site.history(&user("bob"), &t1, None).expect("a member");
        assert_eq!(
            ids(&newest),
            all[15..].iter().map(MessageId::as_str).collect::<Vec<_>>()
        );
        assert_eq!(newest.messages[0].participants, Vec::<UserId>::new());
        assert_eq!(
            newest.next_before.as_deref(),
            Some(crate::utc::rfc3339_from_unix(1014).as_str()),
            "the oldest date minus one second"
        );
        assert_eq!(
            newest.older_cursor(),
            Some(newest.messages[0].sent_at.as_str())
        );
        let middle = site
            .history(&user("bob"), &t1, newest.next_before.as_deref())
            .expect("a member");
        assert_eq!(
            ids(&middle),
            all[5..15].iter().map(MessageId::as_str).collect::<Vec<_>>()
        );
        let last = site
            .history(&user("bob"), &t1, middle.next_before.as_deref())
            .expect("a member");
        assert_eq!(
            ids(&last),
            all[..5].iter().map(MessageId::as_str).collect::<Vec<_>>()
        );
        assert_eq!(last.next_before, None, "not full: nothing older");
        // Inclusive: `before` equal to a message's date lists it.
        let at = site
            .history(
                &user("bob"),
                &t1,
                Some(&crate::utc::rfc3339_from_unix(1003)),
            )
            .expect("a member");
        assert_eq!(
            ids(&at),
            all[..4].iter().map(MessageId::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn history_skips_the_rest_of_a_boundary_second_as_buddyboss_does() {
        let mut site = DevSite::new();
        let t1 = thread("t1");
        // 3 messages in second 100, then 9 in second 101: the newest page holds 1 of
        // second 100's, and BuddyBoss's cursor (99) skips its other 2.
        let mut secs = vec![100; 3];
        secs.extend([101; 9]);
        let all = fill(&mut site, &t1, &secs);
        let bob = user("bob");
        let newest = site.history(&bob, &t1, None).expect("a member");
        assert_eq!(ids(&newest)[0], all[2].as_str());
        let skipped = site
            .history(&bob, &t1, newest.next_before.as_deref())
            .expect("a member");
        assert!(
            skipped.messages.is_empty(),
            "second 100's first two are skipped"
        );
        let inclusive = site
            .history(&bob, &t1, newest.older_cursor())
            .expect("a member");
        assert_eq!(
            ids(&inclusive),
            vec![all[0].as_str(), all[1].as_str(), all[2].as_str()]
        );
        assert!(!newest.is_one_second());
        // Ten in one second: a full page of one second, which no cursor pages past.
        let t2 = thread("t2");
        fill(&mut site, &t2, &[200; 11]);
        let stuck = site.history(&bob, &t2, None).expect("a member");
        assert!(stuck.is_one_second());
        let again = site
            .history(&bob, &t2, stuck.older_cursor())
            .expect("a member");
        assert_eq!(again, stuck, "the same page again");
    }

    #[test]
    fn history_is_for_members_with_a_utc_date() {
        let mut site = DevSite::new();
        let t1 = thread("t1");
        fill(&mut site, &t1, &[100]);
        assert_eq!(
            site.history(&user("carol"), &t1, None),
            Err(DevSiteError::Forbidden)
        );
        assert_eq!(
            site.history(&user("bob"), &thread("nope"), None),
            Err(DevSiteError::Forbidden)
        );
        assert_eq!(
            site.history(&user("bob"), &t1, Some("yesterday")),
            Err(DevSiteError::InvalidBefore)
        );
        assert_eq!(DevSiteError::InvalidBefore.kind(), SiteErrorKind::Invalid);
    }

    #[test]
    fn its_errors_read_as_buddyboss_would_answer() {
        let error = SiteError::from(DevSiteError::EmptyMessage);
        assert_eq!(error.kind, SiteErrorKind::EmptyMessage);
        assert_eq!(error.code, "bp_rest_messages_empty_message");
        assert_eq!(DevSiteError::Forbidden.kind(), SiteErrorKind::Forbidden);
        assert_eq!(
            DevSiteError::InvalidToken.kind(),
            SiteErrorKind::Unauthenticated
        );
    }
}
