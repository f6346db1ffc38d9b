//! `MemoryBuddyBoss`: the embedded development site used when no BuddyBoss site is
//! configured. Not for production: it trusts whoever claims a user id.

use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bbrt_protocol::api::{ApiRequest, ApiResponse, SiteError, SiteUser, StoredMessage, ThreadInfo};
use bbrt_protocol::devsite::{DevSite, DevSiteError, Post, Stamp};
use bbrt_protocol::ids::{ThreadId, UserId};

use crate::time::{now_unix, rfc3339_from_unix};
use crate::{BuddyBoss, BuddyBossError, Credential, text};

/// The embedded default: a development site in memory (DESIGN.md, "Embedded default"),
/// whose rules are [`bbrt_protocol::devsite`]'s; this adds the clock, the lock and the
/// rendering: times are RFC 3339 UTC, `html` is `<p>escaped text</p>`.
#[derive(Debug, Default)]
pub struct MemoryBuddyBoss {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    site: DevSite,
    /// The last second a message was stored in, formatted (one format per second).
    last_sent_at: (i64, String),
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

impl From<DevSiteError> for BuddyBossError {
    fn from(error: DevSiteError) -> Self {
        Self::new(error.kind(), error.code(), error.message())
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
        let token = credential.map(|c| c.token.expose());
        let user = self
            .state()
            .site
            .verify(token, claimed_user, current_user)?;
        Ok(user_from_id(user))
    }

    async fn participants(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) -> Result<ThreadInfo, BuddyBossError> {
        Ok(self.state().site.participants(user, thread, join)?)
    }

    async fn send(
        &self,
        _credential: Option<&Credential>,
        sender: &UserId,
        thread: Option<&ThreadId>,
        recipients: &[UserId],
        text: &str,
    ) -> Result<StoredMessage, BuddyBossError> {
        let mut state = self.state();
        let now = now_unix();
        if state.last_sent_at.0 != now || state.last_sent_at.1.is_empty() {
            state.last_sent_at = (now, rfc3339_from_unix(now));
        }
        let stamp = Stamp {
            unix_secs: now,
            sent_at: state.last_sent_at.1.clone(),
            html: Some(format!("<p>{}</p>", text::escape_html(text))),
        };
        let post = Post {
            sender,
            thread,
            recipients,
            text,
        };
        Ok(state.site.send(post, stamp)?)
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
        let post = Post {
            sender,
            thread,
            recipients,
            text,
        };
        Ok(self.state().site.find_recent(post, since_unix_secs))
    }

    async fn mark_read(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
    ) -> Result<(), BuddyBossError> {
        Ok(self.state().site.mark_read(user, thread)?)
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
