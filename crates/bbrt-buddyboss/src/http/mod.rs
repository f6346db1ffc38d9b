//! `HttpBuddyBoss`: the client of a real BuddyBoss site's REST API.

mod cache;
mod config;
mod keyed;
mod reconcile;
mod transport;
mod wire;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bbrt_protocol::api::{
    ApiRequest, HistoryPage, SiteErrorKind, SiteUser, StoredMessage, ThreadInfo,
};
use bbrt_protocol::ids::{MessageId, ThreadId, UserId};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Semaphore;

use self::cache::VerifyCache;
use self::wire::{ErrorBody, ThreadJson, UserJson};
use crate::error::kind_for_status;
use crate::time::{naive_from_unix, now_unix, parse_utc, site_date_to_rfc3339};
use crate::{BuddyBoss, BuddyBossError, Credential, SendRequest, SiteProblem, text};

pub use self::config::{ApiRoot, Config};
use self::keyed::*;
use self::reconcile::*;
use self::transport::*;

/// A real BuddyBoss site over its REST API (reqwest, rustls with the *ring* provider).
///
/// Routes: `GET wp/v2/users/me` (verify), `GET buddyboss/v1/messages/{id}`
/// (participants, history with `before`, reconciliation), `GET buddyboss/v1/messages?box=sentbox`
/// (reconciling a new thread), `POST buddyboss/v1/messages` (send; `{"id", "message"}`
/// for a reply, `{"recipients", "message"}` for a new thread, never `sender_id`),
/// `POST buddyboss/v1/messages/action/{id}` with `{"action":"unread","value":false}`
/// (mark read). Ids must be numeric: anything else is [`BuddyBossError::Invalid`]
/// `invalid_id` without a request.
///
/// With bbrt's companion plugin's send route on the site (`/bbrt/v1/messages` in the API
/// root's `routes`, seen by [`BuddyBoss::probe`], or read before a send when not known
/// yet), sends go to
/// its idempotent `POST bbrt/v1/messages` instead, with `client_message_id`: the client's
/// `clientMessageId`, or a random key made here. An unknown outcome is retried with the
/// same key (the site answers the stored message), never reconciled by reading the
/// thread. A 404 `rest_no_route` there means the plugin went away: the send falls back
/// to BuddyBoss's route (`docs/wordpress.md`, "What bbrt does with the route").
///
/// Redirects are not followed (a 3xx is [`BuddyBossError::Protocol`] `http_3xx`), so a
/// credential never goes to another URL: configure the final API root (`https://`, with
/// or without `www.`, as the site answers).
pub struct HttpBuddyBoss {
    client: reqwest::Client,
    config: Config,
    permits: Semaphore,
    cache: VerifyCache,
    /// Whether the site has the companion plugin, as last seen: [`PLUGIN_UNKNOWN`],
    /// [`PLUGIN_ABSENT`] or [`PLUGIN_PRESENT`].
    plugin: AtomicU8,
}

impl fmt::Debug for HttpBuddyBoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBuddyBoss")
            .field("api_root", &self.config.api_root)
            .finish_non_exhaustive()
    }
}

fn user_id(id: u64) -> UserId {
    UserId::new(&id.to_string()).expect("a decimal number is a valid id")
}

impl HttpBuddyBoss {
    /// A client for the site described by `config`.
    ///
    /// Installs rustls's *ring* crypto provider as the process default if none is
    /// installed yet (reqwest needs one; bbrt does not build aws-lc).
    ///
    /// # Errors
    /// [`BuddyBossError::Invalid`] `invalid_config` if the HTTP client cannot be built.
    pub fn new(config: Config) -> Result<Self, BuddyBossError> {
        // Err means a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_idle_timeout(config.pool_idle_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuddyBossError::Invalid {
                code: "invalid_config".into(),
                message: format!("cannot build the HTTP client: {}", describe(&e)),
            })?;
        Ok(Self {
            client,
            permits: Semaphore::new(config.max_concurrent_requests.max(1)),
            cache: VerifyCache::new(
                config.verify_ttl,
                config.verify_negative_ttl,
                config.verify_cache_capacity,
            ),
            config,
            plugin: AtomicU8::new(PLUGIN_UNKNOWN),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drops what the verify cache knows about `credential` (call it when the credential
    /// is known to be revoked). A 401 on any route does this by itself.
    pub fn forget(&self, credential: &Credential) {
        self.cache.remove(&credential.cache_key());
    }
}

/// `m` as bbrt answers it, with the thread's participants (a send's answer).
fn stored(thread: &ThreadJson, m: &wire::MessageJson) -> StoredMessage {
    let sent_at = m
        .date_sent
        .as_deref()
        .and_then(site_date_to_rfc3339)
        .unwrap_or_else(|| crate::time::rfc3339_from_unix(now_unix()));
    StoredMessage {
        participants: thread
            .participants()
            .unwrap_or_default()
            .into_iter()
            .map(user_id)
            .collect(),
        ..listed(thread, m, sent_at)
    }
}

/// `m` as bbrt answers it, sent at `sent_at` (RFC 3339), without participants.
fn listed(thread: &ThreadJson, m: &wire::MessageJson, sent_at: String) -> StoredMessage {
    let raw = m.message.raw().unwrap_or_default();
    StoredMessage {
        id: MessageId::new(&m.id.0.to_string()).expect("a decimal number is a valid id"),
        thread: ThreadId::new(&thread.id.0.to_string()).expect("a decimal number is a valid id"),
        sender: user_id(m.sender_id.0),
        text: text::decode_entities(raw.trim()),
        html: m.message.rendered().map(|h| h.trim_end().to_owned()),
        sent_at,
        participants: Vec::new(),
    }
}

/// A thread read with `before` as a [`HistoryPage`]: its messages oldest first (as the
/// site lists them) and its cursor. A page is nothing without its dates, so a message or
/// cursor with no UTC date is [`BuddyBossError::Protocol`].
fn history_page(thread: &ThreadJson) -> Result<HistoryPage, BuddyBossError> {
    let undated = |what: &str| BuddyBossError::Protocol {
        code: "bad_response".into(),
        message: format!("the site's thread page has {what} without a UTC date"),
    };
    let messages = thread
        .messages
        .iter()
        .map(|m| {
            let sent_at = m
                .date_sent
                .as_deref()
                .and_then(site_date_to_rfc3339)
                .ok_or_else(|| undated("a message"))?;
            Ok(listed(thread, m, sent_at))
        })
        .collect::<Result<Vec<_>, BuddyBossError>>()?;
    let next_before = match thread.next_messages_timestamp.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(site_date_to_rfc3339(cursor).ok_or_else(|| undated("a cursor"))?),
    };
    Ok(HistoryPage {
        messages,
        next_before,
    })
}

#[async_trait]
impl BuddyBoss for HttpBuddyBoss {
    async fn probe(&self) -> Result<(), SiteProblem> {
        let url = self.config.api_root.url("");
        let response = match self.client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(SiteProblem::Unreachable {
                    detail: describe(&e),
                });
            }
        };
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(SiteProblem::NoRestApi { status });
        }
        match response.bytes().await {
            Ok(body) => {
                if let Some(present) = (200..300)
                    .contains(&status)
                    .then(|| lists_plugin(&body))
                    .flatten()
                {
                    self.note_plugin(present);
                }
                crate::health::judge_root(status, &body)
            }
            Err(e) => Err(SiteProblem::Unreachable {
                detail: describe(&e),
            }),
        }
    }

    fn deadline(&self, request: &ApiRequest) -> Option<Duration> {
        // Waiting for one of the client's own request slots is one more request's time.
        let queued = self.config.request_timeout;
        let steps = match request {
            ApiRequest::Send {
                thread,
                unconfirmed_since,
                ..
            } => {
                let reconcile = self.reconcile_deadline(thread.is_none());
                let post = self.config.request_timeout + reconcile;
                // With the plugin a send is keyed attempts; it may fall back to the
                // BuddyBoss route below when the plugin went away.
                // With the plugin (or before it is known): reading the index, then keyed
                // attempts, or one 404 and BuddyBoss's route when the plugin went away.
                let timeout = self.config.request_timeout;
                let post = match self.plugin.load(Ordering::Relaxed) {
                    PLUGIN_ABSENT => post,
                    PLUGIN_PRESENT => self.keyed_deadline().max(timeout + post),
                    _ => timeout + self.keyed_deadline().max(timeout + post),
                };
                // A retry of an unconfirmed send looks first, then posts.
                let look_first = if unconfirmed_since.is_some() {
                    reconcile
                } else {
                    Duration::ZERO
                };
                look_first + post
            }
            ApiRequest::MarkRead { .. } => self.config.request_timeout,
            _ => self.read_deadline(),
        };
        Some(steps + queued)
    }

    async fn verify(
        &self,
        credential: Option<&Credential>,
        _claimed_user: Option<&UserId>,
        _current_user: Option<&UserId>,
    ) -> Result<SiteUser, BuddyBossError> {
        let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
        let key = credential.cache_key();
        if let Some(cached) = self.cache.get(&key, Instant::now()) {
            tracing::trace!(
                scheme = credential.scheme.name(),
                "verify answered from cache"
            );
            return cached;
        }
        let result = self
            .get::<UserJson>("wp/v2/users/me", &[("context", "view")], credential, "user")
            .await
            .map(|u| SiteUser {
                id: user_id(u.id.0),
                avatar: u.avatar(),
                name: u.name,
            });
        self.cache.put(key, &result, Instant::now());
        result
    }

    async fn participants(
        &self,
        credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        _join: bool,
    ) -> Result<ThreadInfo, BuddyBossError> {
        let id = numeric("thread", thread.as_str())?;
        let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
        let t = self.thread(credential, id).await?;
        let participants: Vec<UserId> = t
            .participants()
            .unwrap_or_default()
            .into_iter()
            .map(user_id)
            .collect();
        // A moderator may read any thread; bbrt's membership means being a participant.
        if !participants.contains(user) {
            return Err(BuddyBossError::Forbidden {
                code: "not_a_participant".into(),
                message: format!("user {user} is not a participant of thread {thread}"),
            });
        }
        Ok(ThreadInfo {
            thread: thread.clone(),
            participants,
            last_message: t
                .message_id
                .filter(|m| m.0 > 0)
                .map(|m| MessageId::new(&m.0.to_string()).expect("a decimal number is a valid id")),
        })
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<StoredMessage, BuddyBossError> {
        if self.has_plugin().await {
            let sender_id = numeric("sender", request.sender.as_str())?;
            let body = Self::send_body(request.thread, request.recipients, request.text)?;
            let credential = request
                .credential
                .ok_or_else(BuddyBossError::missing_credential)?;
            let key = request
                .client_message_id
                .map_or_else(generated_key, |k| k.as_str().to_owned());
            match self.send_keyed(credential, sender_id, body, &key).await {
                Keyed::Done(result) => return result,
                Keyed::NoRoute => self.note_plugin(false),
            }
        }
        let result = self.send_unkeyed(request).await;
        if result.as_ref().is_err_and(BuddyBossError::retryable) {
            // After a failure, look for the plugin again before the next send.
            self.plugin.store(PLUGIN_UNKNOWN, Ordering::Relaxed);
        }
        result
    }

    async fn history(
        &self,
        credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        before: Option<&str>,
    ) -> Result<HistoryPage, BuddyBossError> {
        let id = numeric("thread", thread.as_str())?;
        // BuddyBoss's own form of the date (naive GMT), as its cursor comes.
        let before =
            match before {
                Some(b) => Some(parse_utc(b).map(naive_from_unix).ok_or_else(|| {
                    BuddyBossError::Invalid {
                        code: "invalid_before".into(),
                        message: "`before` is not an RFC 3339 UTC date".into(),
                    }
                })?),
                None => None,
            };
        let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
        let query: Vec<(&str, &str)> = before.iter().map(|b| ("before", b.as_str())).collect();
        let t: ThreadJson = self
            .get(
                &format!("buddyboss/v1/messages/{id}"),
                &query,
                credential,
                "thread",
            )
            .await?;
        // As for `participants`: a moderator may read any thread, but bbrt's membership
        // means being a participant.
        if t.participants()
            .is_some_and(|p| !p.iter().any(|&p| user_id(p) == *user))
        {
            return Err(BuddyBossError::Forbidden {
                code: "not_a_participant".into(),
                message: format!("user {user} is not a participant of thread {thread}"),
            });
        }
        history_page(&t)
    }

    async fn mark_read(
        &self,
        credential: Option<&Credential>,
        _user: &UserId,
        thread: &ThreadId,
    ) -> Result<(), BuddyBossError> {
        let id = numeric("thread", thread.as_str())?;
        let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
        let body = json!({ "action": "unread", "value": false });
        match self
            .post(
                &format!("buddyboss/v1/messages/action/{id}"),
                &body,
                credential,
            )
            .await
        {
            PostOutcome::Known(Ok(_)) => Ok(()),
            PostOutcome::Known(Err(e)) | PostOutcome::Unknown(e) => Err(e),
        }
    }
}
