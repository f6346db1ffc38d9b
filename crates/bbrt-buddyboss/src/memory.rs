//! `MemoryBuddyBoss`: the embedded development site used when no BuddyBoss site is
//! configured. Not for production: it trusts whoever claims a user id.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bbrt_protocol::api::{ApiRequest, ApiResponse, SiteError, SiteUser, StoredMessage, ThreadInfo};
use bbrt_protocol::ids::{MessageId, ThreadId, UserId};

use crate::time::{now_unix, rfc3339_from_unix};
use crate::{BuddyBoss, BuddyBossError, Credential, text};

/// The embedded default: a development site in memory (DESIGN.md, "Embedded default").
///
/// - A token `dev:<userId>` names that user; any other token names the connection's
///   current user, or, on an anonymous connection, a user whose id is the token itself
///   (so it must be a valid id). A bare claimed `userId` without a credential is trusted.
/// - A thread is created by its first join or message; whoever joins, a message's
///   sender and its recipients become participants (so the seed's React example, which
///   never joins, works).
/// - A message without a thread starts one with its recipients, or reuses the thread
///   with exactly that set of participants (as BuddyBoss does).
/// - Message ids count up from 1; new threads get numeric ids (skipping ids a client
///   already used); times are RFC 3339 UTC; `html` is `<p>escaped text</p>`.
/// - Only the newest 64 messages of a thread are kept (enough to reconcile a send), so
///   memory stays flat however long it runs.
#[derive(Debug, Default)]
pub struct MemoryBuddyBoss {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    threads: BTreeMap<ThreadId, Thread>,
    next_message: u64,
    next_thread: u64,
    /// The last second a message was stored in, formatted (one format per second).
    last_sent_at: (i64, String),
}

/// Messages kept per thread: the site only needs recent ones (for reconciliation), and a
/// development server that kept them all would grow without bound under a soak.
const HISTORY: usize = 64;

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
}

fn forbidden() -> BuddyBossError {
    BuddyBossError::Forbidden {
        code: "bp_rest_authorization_required".into(),
        message: "Sorry, you are not allowed to see this thread.".into(),
    }
}

impl MemoryBuddyBoss {
    /// An empty development site.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a development site, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn user_from_id(id: UserId) -> SiteUser {
    SiteUser {
        name: id.as_str().to_owned(),
        id,
        avatar: None,
    }
}

#[async_trait]
impl BuddyBoss for MemoryBuddyBoss {
    async fn verify(
        &self,
        credential: Option<&Credential>,
        claimed_user: Option<&UserId>,
        current_user: Option<&UserId>,
    ) -> Result<SiteUser, BuddyBossError> {
        let unauthenticated = |message: &str| BuddyBossError::Unauthenticated {
            code: "invalid_token".into(),
            message: message.into(),
        };
        let Some(credential) = credential else {
            return claimed_user.cloned().map(user_from_id).ok_or_else(|| {
                BuddyBossError::Unauthenticated {
                    code: "rest_not_logged_in".into(),
                    message: "You are not currently logged in.".into(),
                }
            });
        };
        let token = credential.token.expose();
        if let Some(id) = token.strip_prefix("dev:") {
            return UserId::new(id)
                .map(user_from_id)
                .map_err(|_| unauthenticated("the dev: token names no valid user id"));
        }
        if let Some(current) = current_user {
            return Ok(user_from_id(current.clone()));
        }
        UserId::new(token)
            .map(user_from_id)
            .map_err(|_| unauthenticated("the token is not a valid user id"))
    }

    async fn participants(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) -> Result<ThreadInfo, BuddyBossError> {
        let mut state = self.state();
        match state.threads.get_mut(thread) {
            Some(t) if t.participants.contains(user) => Ok(t.info(thread)),
            Some(t) if join => {
                t.add(user);
                Ok(t.info(thread))
            }
            None if join => {
                let t = state.threads.entry(thread.clone()).or_default();
                t.add(user);
                Ok(t.info(thread))
            }
            _ => Err(forbidden()),
        }
    }

    async fn send(
        &self,
        _credential: Option<&Credential>,
        sender: &UserId,
        thread: Option<&ThreadId>,
        recipients: &[UserId],
        text: &str,
    ) -> Result<StoredMessage, BuddyBossError> {
        if text.trim().is_empty() {
            return Err(BuddyBossError::Invalid {
                code: "bp_rest_messages_empty_message".into(),
                message: "Sorry, Your message cannot be empty.".into(),
            });
        }
        let mut state = self.state();
        let state = &mut *state;
        let thread_id = match thread {
            Some(id) => id.clone(),
            None => {
                if recipients.is_empty() {
                    return Err(BuddyBossError::Invalid {
                        code: "bp_rest_empty_recipients".into(),
                        message: "Please, enter recipients user IDs.".into(),
                    });
                }
                let mut set = vec![sender.clone()];
                for r in recipients {
                    if !set.contains(r) {
                        set.push(r.clone());
                    }
                }
                match state.threads.iter().find(|(_, t)| t.same_set(&set)) {
                    Some((id, _)) => id.clone(),
                    None => loop {
                        state.next_thread += 1;
                        let id = ThreadId::new(&state.next_thread.to_string())
                            .expect("a decimal number is a valid id");
                        if !state.threads.contains_key(&id) {
                            break id;
                        }
                    },
                }
            }
        };
        state.next_message += 1;
        let id = MessageId::new(&state.next_message.to_string())
            .expect("a decimal number is a valid id");
        let t = state.threads.entry(thread_id.clone()).or_default();
        t.add(sender);
        for r in recipients {
            t.add(r);
        }
        let now = now_unix();
        if state.last_sent_at.0 != now || state.last_sent_at.1.is_empty() {
            state.last_sent_at = (now, rfc3339_from_unix(now));
        }
        let kept = StoredMessage {
            id,
            thread: thread_id,
            sender: sender.clone(),
            text: text.to_owned(),
            html: Some(format!("<p>{}</p>", text::escape_html(text))),
            sent_at: state.last_sent_at.1.clone(),
            participants: Vec::new(),
        };
        let stored = StoredMessage {
            participants: t.participants.clone(),
            ..kept.clone()
        };
        if t.messages.len() == HISTORY {
            t.messages.pop_front();
        }
        t.messages.push_back((kept, now));
        Ok(stored)
    }

    async fn find_recent(
        &self,
        _credential: Option<&Credential>,
        sender: &UserId,
        thread: Option<&ThreadId>,
        recipients: &[UserId],
        text: &str,
        since_unix_secs: i64,
    ) -> Result<Option<StoredMessage>, BuddyBossError> {
        let state = self.state();
        let matches = |t: &Thread| {
            t.messages
                .iter()
                .rev()
                .find(|(m, at)| &m.sender == sender && m.text == text && *at >= since_unix_secs)
                .map(|(m, _)| StoredMessage {
                    participants: t.participants.clone(),
                    ..m.clone()
                })
        };
        Ok(match thread {
            Some(id) => state.threads.get(id).and_then(matches),
            None => state
                .threads
                .values()
                .filter(|t| {
                    t.participants.contains(sender)
                        && recipients.iter().all(|r| t.participants.contains(r))
                })
                .find_map(matches),
        })
    }

    async fn mark_read(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
    ) -> Result<(), BuddyBossError> {
        match self.state().threads.get(thread) {
            Some(t) if t.participants.contains(user) => Ok(()),
            _ => Err(forbidden()),
        }
    }

    fn perform_now(
        &self,
        request: &ApiRequest,
        credential: Option<&Credential>,
    ) -> Option<Result<ApiResponse, SiteError>> {
        // Every method above completes at its first poll: it never awaits.
        let mut answer = std::pin::pin!(crate::perform(self, request, credential));
        match answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }
}
