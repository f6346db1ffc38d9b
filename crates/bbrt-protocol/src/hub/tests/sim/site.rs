//! The scripted fake site the Sim answers site requests with.

use super::*;

/// The scripted fake site: the embedded default's rules ([`DevSite`]), latency and injected
/// failures, and a mode that plays a real BuddyBoss site.
#[derive(Debug, Default)]
pub(crate) struct Site {
    pub(crate) dev: DevSite,
    /// Every user who was ever a participant of each thread.
    pub(crate) ever: BTreeMap<ThreadId, BTreeSet<UserId>>,
    /// Per request kind (`ApiRequest::name`); default `default_latency`.
    pub(crate) latency: HashMap<&'static str, Duration>,
    pub(crate) default_latency: Duration,
    /// The next requests of a kind fail with these errors, in order.
    pub(crate) failures: HashMap<&'static str, VecDeque<SiteError>>,
    /// Tokens the site no longer accepts.
    pub(crate) revoked: HashSet<String>,
    /// A real BuddyBoss site: a bare `userId` is refused, sends need membership.
    pub(crate) real: bool,
    /// Every request, in order: (node, request).
    pub(crate) requests: Vec<(usize, ApiRequest)>,
    /// Every message stored, in order.
    pub(crate) stored: Vec<StoredMessage>,
    /// The next sends are stored, then answered `Unconfirmed` (the answer was lost).
    pub(crate) unconfirm_next: usize,
}

impl Site {
    /// Remembers that `participants` were in `thread`.
    pub(super) fn saw(&mut self, thread: &ThreadId, participants: &[UserId]) {
        let ever = self.ever.entry(thread.clone()).or_default();
        ever.extend(participants.iter().cloned());
    }

    /// A send, reconciled as `bbrt-buddyboss` does after an unconfirmed attempt; a real
    /// site also needs the sender to be in the thread.
    pub(super) fn send(
        &mut self,
        post: Post<'_>,
        unconfirmed_since: Option<i64>,
        now_unix: i64,
    ) -> Result<StoredMessage, SiteError> {
        if let Some(since) = unconfirmed_since
            && let Some(found) = self
                .dev
                .find_recent(post, since.saturating_sub(RECONCILE_LOOKBACK_SECS))
        {
            return Ok(found);
        }
        if self.real
            && let Some(thread) = post.thread
            && !self
                .dev
                .participants_of(thread)
                .is_some_and(|p| p.contains(post.sender))
        {
            return Err(DevSiteError::Forbidden.into());
        }
        let stamp = Stamp {
            unix_secs: now_unix,
            sent_at: crate::utc::rfc3339_from_unix(now_unix),
            html: None,
        };
        let stored = self.dev.send(post, stamp)?;
        self.saw(&stored.thread, &stored.participants);
        self.stored.push(stored.clone());
        if self.unconfirm_next > 0 {
            self.unconfirm_next -= 1;
            return Err(SiteError::new(
                SiteErrorKind::Unconfirmed,
                "send_unconfirmed",
                "the answer was lost",
            ));
        }
        Ok(stored)
    }
}

impl Sim {
    pub(crate) fn site_latency(&mut self, kind: &'static str, latency: Duration) {
        self.site.latency.insert(kind, latency);
    }

    /// The next `n` requests of `kind` fail with `kind`/`code`.
    pub(crate) fn fail_next(
        &mut self,
        kind: &'static str,
        n: usize,
        error: SiteErrorKind,
        code: &str,
    ) {
        let queue = self.site.failures.entry(kind).or_default();
        for _ in 0..n {
            queue.push_back(SiteError::new(error, code, format!("injected {code}")));
        }
    }

    pub(crate) fn revoke_token(&mut self, token: &str) {
        self.site.revoked.insert(token.to_owned());
    }

    /// The site removes `user` from `thread`.
    pub(crate) fn site_remove(&mut self, thread: &str, user: &str) {
        self.site.dev.remove_participant(&tid(thread), &uid(user));
    }

    /// The site knows `thread` with these participants.
    pub(crate) fn site_thread(&mut self, thread: &str, users: &[&str]) {
        for u in users {
            self.site.dev.add_participant(&tid(thread), &uid(u));
        }
        self.site
            .ever
            .entry(tid(thread))
            .or_default()
            .extend(users.iter().map(|u| uid(u)));
    }

    /// Requests of `kind` the site received so far.
    pub(crate) fn api_count(&self, kind: &str) -> usize {
        self.site
            .requests
            .iter()
            .filter(|(_, r)| r.name() == kind)
            .count()
    }

    pub(super) fn answer(
        &mut self,
        request: &ApiRequest,
        token: Option<String>,
    ) -> Result<ApiResponse, SiteError> {
        if let Some(token) = &token
            && self.site.revoked.contains(token)
        {
            return Err(SiteError::new(
                SiteErrorKind::Unauthenticated,
                "invalid_token",
                "revoked",
            ));
        }
        if self.site.real && token.is_none() {
            return Err(DevSiteError::NotLoggedIn.into());
        }
        let now_unix = self.unix_now();
        let site = &mut self.site;
        match request {
            ApiRequest::Verify {
                claimed_user,
                current_user,
                ..
            } => {
                let user = site.dev.verify(
                    token.as_deref(),
                    claimed_user.as_ref(),
                    current_user.as_ref(),
                )?;
                Ok(ApiResponse::User(SiteUser {
                    name: user.to_string(),
                    id: user,
                    avatar: None,
                }))
            }
            ApiRequest::Participants {
                user, thread, join, ..
            } => {
                // The embedded site creates the thread or adds the joiner; a real one only
                // checks membership.
                let info = site.dev.participants(user, thread, *join && !site.real)?;
                site.saw(thread, &info.participants);
                Ok(ApiResponse::Participants(info))
            }
            ApiRequest::Send {
                sender,
                thread,
                recipients,
                text,
                unconfirmed_since,
                ..
            } => {
                let post = Post {
                    sender,
                    thread: thread.as_ref(),
                    recipients,
                    text,
                };
                site.send(post, *unconfirmed_since, now_unix)
                    .map(ApiResponse::Stored)
            }
            ApiRequest::MarkRead { user, thread, .. } => {
                site.dev.mark_read(user, thread)?;
                Ok(ApiResponse::MarkedRead)
            }
            ApiRequest::History {
                user,
                thread,
                before,
                ..
            } => Ok(ApiResponse::History(site.dev.history(
                user,
                thread,
                before.as_deref(),
            )?)),
        }
    }
}
