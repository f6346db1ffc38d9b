//! `MemoryBuddyBoss`: the embedded development site used when no BuddyBoss site is
//! configured. Not for production: it trusts whoever claims a user id.

use std::sync::Mutex;

use async_trait::async_trait;
use bbrt_protocol::api::{
    ApiRequest, ApiResponse, HistoryPage, SiteError, SiteUser, StoredMessage, ThreadInfo,
};
use bbrt_protocol::devsite::{DevSite, DevSiteError, Post, Stamp};
use bbrt_protocol::ids::{ThreadId, UserId};

use crate::time::{now_unix, rfc3339_from_unix};
use crate::{BuddyBoss, BuddyBossError, Credential, SendRequest, text};

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

impl MemoryBuddyBoss {
    fn verify_now(
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

    fn participants_now(
        &self,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) -> Result<ThreadInfo, BuddyBossError> {
        Ok(self.state().site.participants(user, thread, join)?)
    }

    /// Stores the message, or after an unconfirmed attempt first answers that attempt's
    /// message if it is here (looking back
    /// [`RECONCILE_LOOKBACK_SECS`](bbrt_protocol::api::RECONCILE_LOOKBACK_SECS)). The key
    /// is not needed: sends to one site in one process are never in doubt.
    fn send_now(&self, request: &SendRequest<'_>) -> Result<StoredMessage, BuddyBossError> {
        let post = Post {
            sender: request.sender,
            thread: request.thread,
            recipients: request.recipients,
            text: request.text,
        };
        let mut state = self.state();
        if let Some(since) = request.unconfirmed_since {
            let since = since.saturating_sub(bbrt_protocol::api::RECONCILE_LOOKBACK_SECS);
            if let Some(found) = state.site.find_recent(post, since) {
                return Ok(found);
            }
        }
        let now = now_unix();
        if state.last_sent_at.0 != now || state.last_sent_at.1.is_empty() {
            state.last_sent_at = (now, rfc3339_from_unix(now));
        }
        let stamp = Stamp {
            unix_secs: now,
            sent_at: state.last_sent_at.1.clone(),
            html: Some(format!("<p>{}</p>", text::escape_html(request.text))),
        };
        Ok(state.site.send(post, stamp)?)
    }

    fn mark_read_now(&self, user: &UserId, thread: &ThreadId) -> Result<(), BuddyBossError> {
        Ok(self.state().site.mark_read(user, thread)?)
    }

    fn history_now(
        &self,
        user: &UserId,
        thread: &ThreadId,
        before: Option<&str>,
    ) -> Result<HistoryPage, BuddyBossError> {
        Ok(self.state().site.history(user, thread, before)?)
    }
}

// Every method answers at once; `perform_now` is the path the server takes.
#[async_trait]
impl BuddyBoss for MemoryBuddyBoss {
    async fn verify(
        &self,
        credential: Option<&Credential>,
        claimed_user: Option<&UserId>,
        current_user: Option<&UserId>,
    ) -> Result<SiteUser, BuddyBossError> {
        self.verify_now(credential, claimed_user, current_user)
    }

    async fn participants(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) -> Result<ThreadInfo, BuddyBossError> {
        self.participants_now(user, thread, join)
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<StoredMessage, BuddyBossError> {
        self.send_now(request)
    }

    async fn mark_read(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
    ) -> Result<(), BuddyBossError> {
        self.mark_read_now(user, thread)
    }

    async fn history(
        &self,
        _credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        before: Option<&str>,
    ) -> Result<HistoryPage, BuddyBossError> {
        self.history_now(user, thread, before)
    }

    fn perform_now(
        &self,
        request: &ApiRequest,
        credential: Option<&Credential>,
    ) -> Option<Result<ApiResponse, SiteError>> {
        let answer = match request {
            ApiRequest::Verify {
                claimed_user,
                current_user,
                ..
            } => self
                .verify_now(credential, claimed_user.as_ref(), current_user.as_ref())
                .map(ApiResponse::User),
            ApiRequest::Participants {
                user, thread, join, ..
            } => self
                .participants_now(user, thread, *join)
                .map(ApiResponse::Participants),
            ApiRequest::Send { .. } => {
                let send = SendRequest::of(request, credential)?;
                self.send_now(&send).map(ApiResponse::Stored)
            }
            ApiRequest::MarkRead { user, thread, .. } => self
                .mark_read_now(user, thread)
                .map(|()| ApiResponse::MarkedRead),
            ApiRequest::History {
                user,
                thread,
                before,
                ..
            } => self
                .history_now(user, thread, before.as_deref())
                .map(ApiResponse::History),
            // A request this site does not know: `perform` answers it as any site would.
            _ => return None,
        };
        Some(answer.map_err(SiteError::from))
    }
}
