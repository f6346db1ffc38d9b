//! A fake BuddyBoss site for tests: a real HTTP server on `127.0.0.1:0` that answers the
//! routes bbrt uses with the JSON shapes, status codes, error bodies and headers captured
//! from a real site (`shared/reference/buddyboss-live-responses.md`), over real users,
//! credentials, threads and messages, with fault injection and a request log.
//!
//! Enabled by the cargo feature `fake-site`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bbrt_buddyboss::fake::{FakeSite, Fault};
//! let site = FakeSite::start().await?;
//! let alice = site.add_user("alice", "Alice Anderson");
//! site.add_bearer(alice, "alice-token");
//! site.inject(Fault::ServerError, 2); // the next two requests answer 500
//! let root = site.api_root(); // http://127.0.0.1:PORT/wp-json/
//! # Ok(()) }
//! ```
//!
//! Routes, under `/wp-json/<route>` and `/?rest_route=/<route>` alike:
//! `GET wp/v2/users/me`, `GET|POST buddyboss/v1/messages`,
//! `GET buddyboss/v1/messages/{id}`, `POST buddyboss/v1/messages/action/{id}`, and, while
//! bbrt's companion plugin is on ([`FakeSite::set_plugin`]), its idempotent
//! `POST bbrt/v1/messages` (`docs/wordpress.md`); anything else is 404 `rest_no_route`.
//!
//! Credentials: `Authorization: Bearer` tokens, Application Passwords
//! (`Authorization: Basic`, spaces in the password ignored, login or e-mail), the
//! `accessToken` header, and a login cookie + `X-WP-Nonce`. An unknown bearer token,
//! access token or cookie is anonymous (as WordPress ignores it); a bad Basic password is
//! 401 `incorrect_password`, an unknown Basic user 401 `invalid_username`, a bad nonce
//! 403 `rest_cookie_invalid_nonce`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

mod auth;
mod control;
mod filters;
mod plugin;
mod render;
mod routes;
mod state;
#[cfg(test)]
mod tests;

pub use auth::{hmac_sha256, sign_ticket};

use state::Shared;

/// A fault the site shows to the next matching request(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer 500 `internal_server_error` (WordPress's fatal-error JSON) without doing
    /// anything.
    ServerError,
    /// Never answer (hold the connection open) and do nothing: the client times out.
    Hang,
    /// For a `POST buddyboss/v1/messages` only: store the message, then never answer.
    StoreThenHang,
    /// Do the request, then answer 200 with only the first half of the JSON body.
    Truncated,
    /// Do the request, then answer 200 with an HTML page instead of JSON.
    NotJson,
    /// Do the request, then cut the connection halfway through the answer (its
    /// `Content-Length` promises more than is sent): the client sees a reset.
    CutOff,
    /// Take this long before doing the request, then do it and answer. The request is
    /// done even if the client gave up meanwhile, as PHP goes on after a client's timeout:
    /// a slow write that stores the message after bbrt stopped waiting.
    Slow(Duration),
    /// For the plugin's `POST bbrt/v1/messages` only: claim the key (a pending row),
    /// then take this long before creating the message (the plugin's `slow_before`
    /// window). Requests with the same key meanwhile wait, then answer 409
    /// `bbrt_send_in_progress`.
    SlowStore(Duration),
    /// For the plugin's `POST bbrt/v1/messages` only: the key table cannot be read or
    /// written; answer 503 `bbrt_store_unavailable` and store nothing.
    KeyStoreDown,
}

/// The companion plugin's namespace (`integrations/wordpress/bbrt`).
pub const PLUGIN_NAMESPACE: &str = "bbrt/v1";

/// A request the site received, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The REST route, e.g. `/buddyboss/v1/messages/1` (the same for both API-root forms).
    pub route: String,
    /// `wp-json` or `rest_route`: which API-root form the request used.
    pub form: String,
    /// Query parameters other than `rest_route`, in order.
    pub query: Vec<(String, String)>,
    /// How the request authenticated, if it tried: `bearer`, `basic`, `access-token`,
    /// `cookie-nonce` (`cookie` without a nonce).
    pub auth: Option<String>,
    /// Every header except `host`, names lowercase, credentials shown as `[redacted]`
    /// (`Bearer [redacted]`).
    pub headers: BTreeMap<String, String>,
    /// The body: JSON when it parses, else as a JSON string; `None` when empty.
    pub body: Option<Value>,
}

/// A stored message, as the fake site holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    /// Message id.
    pub id: u64,
    /// Sender's user id.
    pub sender: u64,
    /// Subject.
    pub subject: String,
    /// The stored HTML (after the kses-like filter).
    pub stored: String,
    /// `date_sent`, Unix seconds.
    pub sent_at: i64,
}

/// The handle to a running fake site. Dropping it stops accepting connections.
pub struct FakeSite {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeSite {
    /// Stops accepting connections and closes idle ones; requests in progress finish
    /// (a hung one stays hung until the runtime ends).
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl std::fmt::Debug for FakeSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSite")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
