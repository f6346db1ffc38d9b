//! bbrt's only door to the BuddyBoss site, the system of record for users, threads and
//! messages.
//!
//! This crate verifies credentials, reads a thread's participants and its history, stores
//! messages and marks threads read, always with the user's own credential. It knows nothing about
//! WebSockets, connections or the Hub: the server's executor turns each
//! [`ApiRequest`] the Hub emits into one call of [`perform`] and hands the result back.
//!
//! - [`BuddyBoss`]: the async trait the server calls.
//! - [`HttpBuddyBoss`]: the real client (reqwest over rustls with the *ring* provider).
//! - [`MemoryBuddyBoss`]: the embedded development site used when no site is configured.
//! - `fake` (cargo feature `fake-site`): a faithful fake BuddyBoss site, a real HTTP
//!   server on loopback with fault injection, for tests here and in `bbrt-server`.
//!
//! What it does not do: it never sees a WebSocket, a connection or a frame; it keeps no
//! participant cache (the Hub owns that) and no message store (the site is the system of
//! record); it never retries a write except a keyed send to bbrt's plugin (which the site
//! deduplicates), never sends `sender_id`, never validates a JWT
//! locally (the site does, when the credential is presented) and holds no admin
//! credential. Serializing sends per (user, thread) is the caller's job; reconciliation
//! below relies on it.
//!
//! # Authentication
//!
//! bbrt holds no admin secret: every call uses the credential the user presented, as a
//! [`Credential`] whose [`AuthScheme`] says how to present it. Secrets are
//! [`Token`](bbrt_protocol::secret::Token)s, so `Debug`/`Display` print `[redacted]`.
//!
//! | scheme | header(s) | on WordPress |
//! |---|---|---|
//! | [`AuthScheme::Bearer`] (default) | `Authorization: Bearer <token>` | a plugin that authenticates bearer tokens (a JWT plugin) |
//! | [`AuthScheme::Basic`] | `Authorization: Basic base64(user:app-password)` | Application Passwords (WordPress ≥ 5.6, site served over HTTPS or `WP_ENVIRONMENT_TYPE=local`); give the token as `user:app-password` and it is encoded here, or already encoded |
//! | [`AuthScheme::AccessToken`] | `accessToken: <jwt>` | the BuddyBoss App plugin; the JWT is forwarded unchanged |
//! | [`AuthScheme::CookieNonce`] | `Cookie: <value>` + `X-WP-Nonce: <nonce>` | same-domain deployments: the browser's login cookie and a `wp_rest` nonce (the server must check `Origin` strictly) |
//! | [`AuthScheme::SiteSession`] | `X-BBRT-Session: <site credential>` | a connection made with a companion-plugin ticket (the server verifies the ticket itself: [`AuthScheme::Ticket`] is never sent) |
//!
//! ## The Application-Password caveat
//!
//! BuddyBoss copies the current user into `bp_loggedin_user_id()` early, before WordPress
//! has honoured an Application Password. `GET /wp/v2/users/me` then works, but
//! `POST /buddyboss/v1/messages` fails: 500 `bp_rest_messages_create_failed` for a new
//! thread (reported as [`BuddyBossError::Refused`]), 403 `bp_rest_authorization_required`
//! for a reply (as a real site answered it; [`BuddyBossError::Forbidden`]). The server's
//! site health names this fix when it sees the pattern. The fix is a must-use plugin, e.g.
//! `wp-content/mu-plugins/bbrt-app-passwords.php`:
//!
//! ```php
//! <?php
//! // Let Application Passwords authenticate REST requests before BuddyBoss reads the user.
//! add_filter( 'application_password_is_api_request', function ( $is_api ) {
//!     $uri = isset( $_SERVER['REQUEST_URI'] ) ? $_SERVER['REQUEST_URI'] : '';
//!     return $is_api || false !== strpos( $uri, '/wp-json/' ) || false !== strpos( $uri, 'rest_route=' );
//! } );
//! ```
//!
//! # Plain text
//!
//! BuddyBoss's `message.raw` is the stored HTML with its tags stripped; entities stay
//! (`a &lt; b`). bbrt's plain text is `raw` with the common entities decoded
//! ([`text::decode_entities`]); `html` is the site's `message.rendered`. A stored message
//! is found in the site's answer by sender and by text compared after
//! [`text::normalize`] (tags stripped, entities decoded, whitespace collapsed) on both
//! sides — never by its position in the thread. Dates without a zone are UTC and come
//! out as RFC 3339 with `Z`.
//!
//! # Errors
//!
//! [`BuddyBossError`] is mapped by BuddyBoss `code` first and HTTP status second:
//!
//! | site answer | error | retryable |
//! |---|---|---|
//! | 401 `incorrect_password`, `invalid_username`, `rest_not_logged_in`, `bp_rest_authorization_required`; 403 `rest_cookie_invalid_nonce`; no credential | [`Unauthenticated`](BuddyBossError::Unauthenticated) | no |
//! | 403 `bp_rest_authorization_required` (not a participant, or no such thread) | [`Forbidden`](BuddyBossError::Forbidden) | no |
//! | 400 `bp_rest_messages_empty_message`, `bp_rest_empty_recipients`, …; a non-numeric id (`invalid_id`, no request made) | [`Invalid`](BuddyBossError::Invalid) | no |
//! | 500 `bp_rest_messages_create_failed` (unknown recipient, not friends, blocked) | [`Refused`](BuddyBossError::Refused) | no |
//! | other 5xx, 429, timeout, connection refused | [`Unavailable`](BuddyBossError::Unavailable) | yes |
//! | a send whose outcome is unknown and that reconciliation did not find (`send_unconfirmed`) | [`Unconfirmed`](BuddyBossError::Unconfirmed) | yes, with the same idempotency key |
//! | a body that is not what BuddyBoss documents, `rest_no_route` | [`Protocol`](BuddyBossError::Protocol) | yes (per [`SiteErrorKind::retryable`](bbrt_protocol::api::SiteErrorKind::retryable)) |
//!
//! Reads (`GET`) are retried with backoff a bounded number of times when the site is
//! unavailable; writes never are. A `POST` whose outcome is unknown (a timeout after the
//! request went out, a reset connection, a gateway error, an unreadable success body) is
//! reconciled by reading the thread before returning: if the message is there (same
//! sender, same text as kses stores it, recent), the send succeeded; otherwise it is
//! [`Unconfirmed`](BuddyBossError::Unconfirmed) (`send_unconfirmed`): not found *yet*,
//! never "not stored", since PHP goes on with a request after bbrt stopped waiting. A
//! retry says so ([`SendRequest::unconfirmed_since`]): it looks for the message again first, and
//! posts only once the site had [`Config::reconcile_settle`] to store the first one.
//!
//! # History
//!
//! [`BuddyBoss::history`] reads one page of a thread as BuddyBoss pages it
//! (`GET buddyboss/v1/messages/{id}?before=…`, reference §1.2 and §1.8): the newest ten
//! messages with `date_sent <= before`, oldest first, and BuddyBoss's cursor, the oldest
//! date minus one second when the page is full (`next_messages_timestamp`, `""`
//! otherwise), as a [`HistoryPage`]. `before` is RFC 3339 UTC and goes to the site in its
//! own naive form; one that is not a date is [`Invalid`](BuddyBossError::Invalid)
//! `invalid_before`, without a request. That cursor skips the rest of the oldest second,
//! so a caller pages with [`HistoryPage::older_cursor`] (inclusive) and drops the ids it
//! has; a full page all of one second ([`HistoryPage::is_one_second`]) cannot be paged
//! past. Messages on a page carry no participants. [`MemoryBuddyBoss`] and the fake site
//! page alike (`tests/history.rs` checks it). Neither models a member's own deletion
//! point (a real site lists only the messages after it).
//!
//! # bbrt's WordPress plugin
//!
//! When the site's API index lists `bbrt/v1` (`integrations/wordpress/bbrt/`), a send goes
//! to its idempotent `POST bbrt/v1/messages` with `client_message_id` (the client's
//! `clientMessageId`, or a random key made here), and an unknown outcome is posted again
//! with the same key instead of being reconciled: the site answers the stored message
//! (named by `X-BBRT-Message-Id`) or `409 bbrt_send_in_progress`. With the plugin a
//! message is stored once per key; `docs/wordpress.md` ("What bbrt does with the route")
//! has the whole protocol.
#![warn(missing_docs)]

mod credential;
mod error;
mod health;
mod http;
mod memory;
pub mod text;
mod time;

#[cfg(feature = "fake-site")]
pub mod fake;

use async_trait::async_trait;
use bbrt_protocol::api::{
    ApiRequest, ApiResponse, HistoryPage, SiteError, SiteErrorKind, SiteUser, StoredMessage,
    ThreadInfo,
};
use bbrt_protocol::ids::{ClientMessageId, ThreadId, UserId};

pub use credential::{AuthScheme, Credential};
pub use error::BuddyBossError;
pub use health::{SiteProblem, auth_scheme_hint};
pub use http::{ApiRoot, Config, HttpBuddyBoss};
pub use memory::MemoryBuddyBoss;

/// A message to store: what [`BuddyBoss::send`] takes.
///
/// A reply in `thread`, or, without one, a new thread with `recipients` (BuddyBoss reuses
/// an existing thread with the same participants). `client_message_id` is the client's
/// idempotency key; `unconfirmed_since` says an earlier attempt with that key ended
/// unconfirmed, recorded then (Unix seconds): the site looks for that attempt's message
/// before it stores another.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest<'a> {
    /// The sender's credential (`None`: see [`BuddyBoss`]).
    pub credential: Option<&'a Credential>,
    /// The sender (the embedded site needs it; a real site re-derives it).
    pub sender: &'a UserId,
    /// The thread to reply in; `None` starts (or reuses) a thread with `recipients`.
    pub thread: Option<&'a ThreadId>,
    /// Recipients named by the client.
    pub recipients: &'a [UserId],
    /// The text as the client sent it.
    pub text: &'a str,
    /// The client's idempotency key, if any.
    pub client_message_id: Option<&'a ClientMessageId>,
    /// When an earlier attempt was recorded as unconfirmed (Unix seconds), if one was.
    pub unconfirmed_since: Option<i64>,
}

impl<'a> SendRequest<'a> {
    /// The send the Hub's `request` asks for, made with `credential`; `None` if `request`
    /// is not an [`ApiRequest::Send`].
    pub fn of(request: &'a ApiRequest, credential: Option<&'a Credential>) -> Option<Self> {
        let ApiRequest::Send {
            sender,
            thread,
            recipients,
            text,
            client_message_id,
            unconfirmed_since,
            ..
        } = request
        else {
            return None;
        };
        Some(Self {
            credential,
            sender,
            thread: thread.as_ref(),
            recipients,
            text,
            client_message_id: client_message_id.as_ref(),
            unconfirmed_since: *unconfirmed_since,
        })
    }

    /// A reply from `sender` in `thread`, with no key and no earlier attempt.
    pub fn reply(
        credential: Option<&'a Credential>,
        sender: &'a UserId,
        thread: &'a ThreadId,
        text: &'a str,
    ) -> Self {
        Self {
            credential,
            sender,
            thread: Some(thread),
            recipients: &[],
            text,
            client_message_id: None,
            unconfirmed_since: None,
        }
    }

    /// A message from `sender` to `recipients` in a new (or reused) thread, with no key
    /// and no earlier attempt.
    pub fn new_thread(
        credential: Option<&'a Credential>,
        sender: &'a UserId,
        recipients: &'a [UserId],
        text: &'a str,
    ) -> Self {
        Self {
            credential,
            sender,
            thread: None,
            recipients,
            text,
            client_message_id: None,
            unconfirmed_since: None,
        }
    }
}

/// The site, as bbrt needs it. Implemented by [`HttpBuddyBoss`] (a real BuddyBoss site)
/// and [`MemoryBuddyBoss`] (the embedded development site).
///
/// `credential` is `None` when the client presented none: [`MemoryBuddyBoss`] does not
/// need one; [`HttpBuddyBoss`] answers [`BuddyBossError::Unauthenticated`]
/// (`missing_credential`) without calling the site.
#[async_trait]
pub trait BuddyBoss: Send + Sync + 'static {
    /// Who the credential belongs to. `claimed_user` is the client's `userId` (trusted only
    /// by the embedded site, without a credential); `current_user` is who the connection
    /// already is (the embedded site gives a non-`dev:` token that identity).
    async fn verify(
        &self,
        credential: Option<&Credential>,
        claimed_user: Option<&UserId>,
        current_user: Option<&UserId>,
    ) -> Result<SiteUser, BuddyBossError>;

    /// The participants of `thread` as `user` sees them. `join` is an explicit
    /// `join_thread`: the embedded site creates the thread or adds the user; a real site
    /// only checks membership (403 [`BuddyBossError::Forbidden`] for a non-participant or
    /// a thread that does not exist).
    async fn participants(
        &self,
        credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        join: bool,
    ) -> Result<ThreadInfo, BuddyBossError>;

    /// Stores `request`'s message. After an unconfirmed attempt (`unconfirmed_since`) it
    /// looks for that attempt's message first, from
    /// [`RECONCILE_LOOKBACK_SECS`](bbrt_protocol::api::RECONCILE_LOOKBACK_SECS) (the
    /// embedded site) or [`Config::reconcile_window`] (a real one) before then, and
    /// answers it if the site stored it; [`HttpBuddyBoss`] posts with the key to bbrt's
    /// companion plugin when the site has it.
    async fn send(&self, request: &SendRequest<'_>) -> Result<StoredMessage, BuddyBossError>;

    /// Marks `thread` read for `user`.
    async fn mark_read(
        &self,
        credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
    ) -> Result<(), BuddyBossError>;

    /// One page of `thread`'s history as `user` sees it, paged as BuddyBoss pages it
    /// (see [`HistoryPage`]): the newest ten messages sent at or before `before` (RFC 3339
    /// UTC, inclusive; `None`: the newest page), oldest first. Only a participant may read
    /// it: anyone else, and a thread that does not exist, is [`BuddyBossError::Forbidden`].
    async fn history(
        &self,
        credential: Option<&Credential>,
        user: &UserId,
        thread: &ThreadId,
        before: Option<&str>,
    ) -> Result<HistoryPage, BuddyBossError>;

    /// Checks that the site can serve bbrt as configured, without a credential (see
    /// [`SiteProblem`]). The default, for a site that is not on the network: fine.
    async fn probe(&self) -> Result<(), SiteProblem> {
        Ok(())
    }

    /// The longest [`perform`] may take over `request` with this site's own timeouts,
    /// retries and reconciliation, or `None` if the site states no bound. The server's
    /// executor never gives up on a request before this: an outer deadline shorter than
    /// the reconciliation it covers would turn a stored message into a retryable error.
    fn deadline(&self, request: &ApiRequest) -> Option<std::time::Duration> {
        let _ = request;
        None
    }

    /// Performs `request` synchronously if this site never waits (the embedded site), so
    /// the server can answer it without a task, a timer or a channel; `None` (the default,
    /// and what a site on the network answers): call [`perform`].
    ///
    /// A site that answers here answers every request here, exactly as [`perform`] would.
    fn perform_now(
        &self,
        request: &ApiRequest,
        credential: Option<&Credential>,
    ) -> Option<Result<ApiResponse, SiteError>> {
        let _ = (request, credential);
        None
    }
}

/// Performs one of the Hub's [`ApiRequest`]s against `site`; the server's executor calls
/// this with the credential it resolved from the request's `CredentialId` (`None` when it
/// has none: a site that needs one answers `Unauthenticated`).
pub async fn perform(
    site: &dyn BuddyBoss,
    request: &ApiRequest,
    credential: Option<&Credential>,
) -> Result<ApiResponse, SiteError> {
    // A send is the one request the trait takes as a struct of its own.
    if let Some(send) = SendRequest::of(request, credential) {
        tracing::debug!(sender = %send.sender, thread = ?send.thread, client_message_id = ?send.client_message_id, "storing message");
        return site
            .send(&send)
            .await
            .map(ApiResponse::Stored)
            .map_err(SiteError::from);
    }
    let result = match request {
        ApiRequest::Verify {
            claimed_user,
            current_user,
            ..
        } => site
            .verify(credential, claimed_user.as_ref(), current_user.as_ref())
            .await
            .map(ApiResponse::User),
        ApiRequest::Participants {
            user, thread, join, ..
        } => site
            .participants(credential, user, thread, *join)
            .await
            .map(ApiResponse::Participants),
        ApiRequest::MarkRead { user, thread, .. } => site
            .mark_read(credential, user, thread)
            .await
            .map(|()| ApiResponse::MarkedRead),
        ApiRequest::History {
            user,
            thread,
            before,
            ..
        } => site
            .history(credential, user, thread, before.as_deref())
            .await
            .map(ApiResponse::History),
        other => {
            return Err(SiteError::new(
                SiteErrorKind::Protocol,
                "unsupported_request",
                format!("bbrt-buddyboss does not know the request {}", other.name()),
            ));
        }
    };
    result.map_err(SiteError::from)
}
