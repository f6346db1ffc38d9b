//! What the Hub asks of the site (the BuddyBoss system of record) and what comes back.
//!
//! The Hub emits an [`ApiRequest`] in [`Output::Api`](crate::hub::Output::Api); the driver
//! performs it (through `bbrt-buddyboss`) and answers with exactly one
//! [`Input::ApiResult`](crate::hub::Input::ApiResult). Requests name credentials by
//! [`CredentialId`]: the secret itself stays in the driver's credential store.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ClientMessageId, CredentialId, MessageId, ThreadId, UserId};

/// A request to the site, made with one user's own credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiRequest {
    /// Who does this credential belong to?
    ///
    /// `credential` is `None` for a bare `user_connected { userId }`: only the embedded
    /// development site accepts that (as `claimed_user`); a real site answers
    /// [`SiteErrorKind::Unauthenticated`].
    Verify {
        /// The credential to verify, if the client presented one.
        credential: Option<CredentialId>,
        /// The `userId` the client claimed, if any (never trusted by a real site).
        claimed_user: Option<UserId>,
        /// Who the connection already is, if identified (the embedded site uses it).
        current_user: Option<UserId>,
    },
    /// The participants of a thread, as seen by the credential's user.
    ///
    /// `join` is the client's explicit `join_thread`: the embedded site creates the thread
    /// or adds the user; a real site only checks membership.
    Participants {
        /// Whose view of the thread (`None` for a connection identified by a bare
        /// `userId`, which only the embedded site accepts).
        credential: Option<CredentialId>,
        /// The credential's user (the embedded site needs it; a real site re-derives it).
        user: UserId,
        /// The thread.
        thread: ThreadId,
        /// Whether this is an explicit join.
        join: bool,
    },
    /// Store a message: a reply in `thread`, or a new thread with `recipients`.
    Send {
        /// The sender's credential (`None`: see [`ApiRequest::Participants`]).
        credential: Option<CredentialId>,
        /// The sender (the embedded site needs it; a real site re-derives it).
        sender: UserId,
        /// The thread to reply in; `None` starts (or, as BuddyBoss does, reuses) a thread
        /// with `recipients`.
        thread: Option<ThreadId>,
        /// Recipients named by the client (`recipientId`).
        recipients: Vec<UserId>,
        /// The text as the client sent it.
        text: String,
        /// The client's idempotency id, if any (logged, not sent to the site).
        client_message_id: Option<ClientMessageId>,
        /// Set when an earlier attempt with the same `clientMessageId` ended unconfirmed:
        /// when that was recorded (Unix seconds, the coordinator's clock). The site client
        /// looks for that message in the thread before it posts again, from
        /// [`RECONCILE_LOOKBACK_SECS`] before that.
        unconfirmed_since: Option<i64>,
    },
    /// Mark a thread read for the credential's user.
    MarkRead {
        /// The reader's credential (`None`: see [`ApiRequest::Participants`]).
        credential: Option<CredentialId>,
        /// The reader.
        user: UserId,
        /// The thread.
        thread: ThreadId,
    },
    /// One page of a thread's history as the credential's user sees it (BuddyBoss's
    /// `GET /buddyboss/v1/messages/{id}`): the newest page of messages sent at or before
    /// `before`, for catching a client up past what bbrt still holds.
    ///
    /// BuddyBoss pages by the second, so a caller walking back pages with
    /// [`HistoryPage::older_cursor`] (inclusive), deduplicates by id, and treats a page
    /// that [`HistoryPage::is_one_second`] as the end of what it can page through.
    History {
        /// The reader's own credential (`None`: see [`ApiRequest::Participants`]).
        credential: Option<CredentialId>,
        /// The reader (the embedded site needs it; a real site re-derives it).
        user: UserId,
        /// The thread.
        thread: ThreadId,
        /// RFC 3339 UTC (`2026-11-25T00:48:52Z`), inclusive: messages with
        /// `date_sent <= before`. `None`: the newest page.
        before: Option<String>,
    },
}

/// How far before an unconfirmed send was recorded the site looks for its message (Unix
/// seconds): the attempt was made before its outcome was recorded as unknown.
pub const RECONCILE_LOOKBACK_SECS: i64 = 60;

impl ApiRequest {
    /// The credential this request is made with, if any.
    pub fn credential(&self) -> Option<CredentialId> {
        match self {
            Self::Verify { credential, .. }
            | Self::Participants { credential, .. }
            | Self::Send { credential, .. }
            | Self::MarkRead { credential, .. }
            | Self::History { credential, .. } => *credential,
        }
    }

    /// Every request's short stable name, in [`ApiRequest::index`] order: the one list
    /// metrics and logs label requests from.
    pub const NAMES: [&'static str; 5] = ["verify", "participants", "send", "mark_read", "history"];

    /// This request's position in [`ApiRequest::NAMES`].
    pub fn index(&self) -> usize {
        match self {
            Self::Verify { .. } => 0,
            Self::Participants { .. } => 1,
            Self::Send { .. } => 2,
            Self::MarkRead { .. } => 3,
            Self::History { .. } => 4,
        }
    }

    /// A short stable name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

/// A successful answer to an [`ApiRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiResponse {
    /// Answer to [`ApiRequest::Verify`].
    User(SiteUser),
    /// Answer to [`ApiRequest::Participants`].
    Participants(ThreadInfo),
    /// Answer to [`ApiRequest::Send`].
    Stored(StoredMessage),
    /// Answer to [`ApiRequest::MarkRead`].
    MarkedRead,
    /// Answer to [`ApiRequest::History`].
    History(HistoryPage),
}

/// Messages BuddyBoss lists per history page (`bp_messages_default_per_page`).
pub const HISTORY_PAGE_SIZE: usize = 10;

/// One page of a thread's history, as BuddyBoss pages it (reference §1.2, §1.8): the
/// newest [`HISTORY_PAGE_SIZE`] messages with `date_sent <= before`, oldest first.
///
/// BuddyBoss's own cursor (`next_messages_timestamp`, here [`HistoryPage::next_before`])
/// is the oldest message's date minus one second, so the messages that share that second
/// but did not fit on the page are never listed by it. Page with
/// [`HistoryPage::older_cursor`] instead (the oldest date, inclusive) and drop the ids
/// already seen; a full page whose messages all share one second cannot be paged past
/// without losing some ([`HistoryPage::is_one_second`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Oldest → newest, as BuddyBoss lists them. `participants` is empty on each (the
    /// page is one thread's; [`ApiRequest::Participants`] answers who is in it).
    pub messages: Vec<StoredMessage>,
    /// BuddyBoss's `next_messages_timestamp` as RFC 3339 UTC: the oldest message's date
    /// minus one second when the page is full, `None` when BuddyBoss gave `""` (the page
    /// is not full: nothing older).
    pub next_before: Option<String>,
}

impl HistoryPage {
    /// Where the next older page starts: the oldest date on this one, to send as
    /// `before` (inclusive, so the messages of that second not on this page are listed,
    /// with some seen ones to drop by id); `None` when there is no older page.
    pub fn older_cursor(&self) -> Option<&str> {
        self.next_before.as_ref()?;
        self.messages.first().map(|m| m.sent_at.as_str())
    }

    /// Whether this is a full page whose messages all share one second: paging on from
    /// it with [`HistoryPage::older_cursor`] answers the same page, and with
    /// [`HistoryPage::next_before`] skips the rest of that second, so a caller reports
    /// what it gathered as incomplete.
    pub fn is_one_second(&self) -> bool {
        match (
            &self.next_before,
            self.messages.first(),
            self.messages.last(),
        ) {
            (Some(_), Some(oldest), Some(newest)) => oldest.sent_at == newest.sent_at,
            _ => false,
        }
    }
}

/// A user as the site verified them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteUser {
    /// The user's id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Avatar URL, if the site gave one.
    pub avatar: Option<String>,
}

/// A thread's participants and its newest message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// The thread.
    pub thread: ThreadId,
    /// Every participant, in the site's order.
    pub participants: Vec<UserId>,
    /// The newest message, if the thread has any.
    pub last_message: Option<MessageId>,
}

/// A message the site has stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The message id the site assigned.
    pub id: MessageId,
    /// The thread it was stored in (new or reused for a new-thread send).
    pub thread: ThreadId,
    /// Its sender.
    pub sender: UserId,
    /// Plain text.
    pub text: String,
    /// Rendered HTML, if the site gave one.
    pub html: Option<String>,
    /// When it was stored, RFC 3339 UTC (`2026-11-25T00:48:52Z`).
    pub sent_at: String,
    /// The thread's participants after the send.
    pub participants: Vec<UserId>,
}

/// Why the site did not do what was asked, mapped by BuddyBoss `code` first and HTTP
/// status second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SiteErrorKind {
    /// The credential is missing, wrong or revoked (401).
    Unauthenticated,
    /// Authenticated but not allowed: not a participant, or no such thread (403).
    Forbidden,
    /// The request was invalid (400) for a reason of its own below, or another.
    Invalid,
    /// An id the site cannot hold (BuddyBoss ids are numeric): invalid, and the client is
    /// told which part was wrong.
    InvalidId,
    /// A message with no text (400 `bp_rest_messages_empty_message`): invalid, and the
    /// client is told why.
    EmptyMessage,
    /// The site holds this idempotency key for another message (bbrt's plugin: 409
    /// `idempotency_conflict`): invalid, and the client is told why. Not retryable.
    IdempotencyConflict,
    /// The site refused the message (500 `bp_rest_messages_create_failed`): not
    /// friends, blocked, unknown recipient. Not retryable.
    Refused,
    /// The site is down, slow or failing (other 5xx, timeout, connection refused).
    /// Retryable.
    Unavailable,
    /// A write whose outcome is unknown: the site did not confirm it (a timeout, a reset,
    /// a gateway error) and reconciliation did not find it, yet it may still be stored.
    /// Retryable, but only safely with the same idempotency key, which is reconciled
    /// before it is posted again.
    Unconfirmed,
    /// The site answered something it does not document.
    Protocol,
}

impl SiteErrorKind {
    /// Whether the same request may succeed if tried again later.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Unavailable | Self::Unconfirmed | Self::Protocol)
    }
}

/// A site failure: its kind, and the site's own `code` and `message` when it gave them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteError {
    /// What kind of failure this is.
    pub kind: SiteErrorKind,
    /// The site's error code (`bp_rest_authorization_required`), or a bbrt one
    /// (`timeout`, `connect`) when the site gave none.
    pub code: String,
    /// The site's message, for humans.
    pub message: String,
}

impl SiteError {
    /// A site error of `kind` with the site's `code` and `message`.
    pub fn new(kind: SiteErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Debug for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SiteError({:?}, {}: {})",
            self.kind, self.code, self.message
        )
    }
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "site error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for SiteError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, sent_at: &str) -> StoredMessage {
        StoredMessage {
            id: MessageId::new(id).expect("a valid id"),
            thread: ThreadId::new("1").expect("a valid id"),
            sender: UserId::new("2").expect("a valid id"),
            text: "hi".into(),
            html: None,
            sent_at: sent_at.into(),
            participants: Vec::new(),
        }
    }

    #[test]
    fn a_history_page_pages_on_from_its_oldest_date() {
        let full = HistoryPage {
            messages: vec![
                message("3", "2026-11-25T00:48:50Z"),
                message("4", "2026-11-25T00:48:52Z"),
            ],
            next_before: Some("2026-11-25T00:48:49Z".into()),
        };
        assert_eq!(full.older_cursor(), Some("2026-11-25T00:48:50Z"));
        assert!(!full.is_one_second());
        let last = HistoryPage {
            next_before: None,
            ..full.clone()
        };
        assert_eq!(last.older_cursor(), None, "nothing older");
        assert!(!last.is_one_second());
        let stuck = HistoryPage {
            messages: vec![
                message("3", "2026-11-25T00:48:52Z"),
                message("4", "2026-11-25T00:48:52Z"),
            ],
            next_before: Some("2026-11-25T00:48:51Z".into()),
        };
        assert!(stuck.is_one_second());
        let empty = HistoryPage {
            messages: Vec::new(),
            next_before: None,
        };
        assert_eq!((empty.older_cursor(), empty.is_one_second()), (None, false));
    }

    #[test]
    fn a_history_request_names_itself_and_its_credential() {
        let request = ApiRequest::History {
            credential: Some(CredentialId(7)),
            user: UserId::new("2").expect("a valid id"),
            thread: ThreadId::new("1").expect("a valid id"),
            before: None,
        };
        assert_eq!(request.name(), "history");
        assert_eq!(request.credential(), Some(CredentialId(7)));
    }
}
