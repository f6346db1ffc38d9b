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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::text::strip_tags;
use crate::time::{naive_from_unix, now_unix, parse_utc};

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

/// A row of the plugin's key table (`{prefix}bbrt_send_keys`).
#[derive(Clone)]
enum KeyRow {
    /// A request owns the key and is creating the message.
    Pending { fingerprint: String },
    /// The key's message: (thread, message).
    Complete {
        fingerprint: String,
        thread: u64,
        message: u64,
    },
}

impl KeyRow {
    fn fingerprint(&self) -> &str {
        match self {
            Self::Pending { fingerprint } | Self::Complete { fingerprint, .. } => fingerprint,
        }
    }
}

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

struct User {
    id: u64,
    login: String,
    email: String,
    display_name: String,
    first_name: String,
    app_passwords: Vec<String>,
}

#[derive(Clone)]
struct Row {
    row_id: u64,
    user: u64,
    unread: u32,
}

struct Thread {
    id: u64,
    rows: Vec<Row>,
    messages: Vec<FakeMessage>,
}

#[derive(Default)]
struct State {
    users: Vec<User>,
    bearer: HashMap<String, u64>,
    access_tokens: HashMap<String, u64>,
    cookies: HashMap<String, (u64, String)>,
    revoked: BTreeSet<String>,
    threads: BTreeMap<u64, Thread>,
    next_message: u64,
    next_row: u64,
    faults: VecDeque<Fault>,
    latency: Duration,
    /// Requests arriving before this wait for it, then are done (a paused PHP).
    paused_until: Option<tokio::time::Instant>,
    log: Vec<LoggedRequest>,
    app_password_trap: bool,
    /// The API root's `namespaces`.
    namespaces: Vec<String>,
    /// When set, every REST request answers an HTML page with this status (a site whose
    /// REST API is not at this URL: plain permalinks, a wrong path).
    no_rest_api: Option<u16>,
    moderators: BTreeSet<u64>,
    /// Whether the companion plugin is active (its route and namespace).
    plugin: bool,
    /// The plugin's key table: (sender, key) → row.
    send_keys: HashMap<(u64, String), KeyRow>,
    /// How long a request waits for a pending key before answering
    /// `bbrt_send_in_progress` (the plugin's `bbrt_in_progress_wait_ms`).
    in_progress_wait: Duration,
    /// The (thread, message) the last successful create stored.
    last_created: Option<(u64, u64)>,
    /// Login sessions, `(user, session token)`: a site credential is good while its
    /// session is here (logout removes it, as `WP_Session_Tokens::destroy` does).
    sessions: BTreeSet<(u64, String)>,
    /// The site-only key that signs site credentials (bbrt never holds it).
    site_key: [u8; 32],
    next_session: u64,
}

impl State {
    /// User `id`: ids are handed out as 1, 2, 3… (never removed), so the index is the id.
    fn user(&self, id: u64) -> Option<&User> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.users.get(index).filter(|u| u.id == id)
    }
}

struct Shared {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// When the last request was answered (its handler returned).
    last_answer: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
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

impl FakeSite {
    /// Starts an empty site on `127.0.0.1:0` (users are added with [`FakeSite::add_user`]).
    ///
    /// # Errors
    /// When the loopback listener cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                namespaces: ["oembed/1.0", "buddyboss/v1", "wp/v2"]
                    .map(str::to_owned)
                    .to_vec(),
                in_progress_wait: Duration::from_millis(2000),
                site_key: site_key(addr),
                ..State::default()
            }),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            last_answer: Mutex::new(None),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(error = %e, "fake site stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
        })
    }

    /// Starts a site with the captures' users — admin (1), alice (2, "Alice Anderson"),
    /// bob (3, "Bob Brown"), carol (4, "Carol Clark") — each with the credentials
    /// `<login>-token` (bearer), Application Password `<login>-app-pass`, access token
    /// `<login>-jwt`, and cookie `wordpress_logged_in=<login>` with nonce `<login>-nonce`.
    ///
    /// # Errors
    /// When the loopback listener cannot be bound.
    pub async fn start_seeded() -> std::io::Result<Self> {
        let site = Self::start().await?;
        for (login, name) in [
            ("admin", "admin"),
            ("alice", "Alice Anderson"),
            ("bob", "Bob Brown"),
            ("carol", "Carol Clark"),
        ] {
            let id = site.add_user(login, name);
            site.add_bearer(id, &format!("{login}-token"));
            site.add_app_password(id, &format!("{login}-app-pass"));
            site.add_access_token(id, &format!("{login}-jwt"));
            site.add_cookie(
                id,
                &format!("wordpress_logged_in={login}"),
                &format!("{login}-nonce"),
            );
        }
        Ok(site)
    }

    /// The socket address the site listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (the site itself).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/wp-json/` (pretty permalinks).
    pub fn api_root(&self) -> String {
        format!("http://{}/wp-json/", self.addr)
    }

    /// `http://127.0.0.1:PORT/?rest_route=` (plain permalinks).
    pub fn query_api_root(&self) -> String {
        format!("http://{}/?rest_route=", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// Adds a user; returns their id (1, 2, 3...). E-mail is `<login>@example.test`; the
    /// first name is the first word of `display_name`.
    pub fn add_user(&self, login: &str, display_name: &str) -> u64 {
        let mut s = self.state();
        let id = s.users.len() as u64 + 1;
        s.users.push(User {
            id,
            login: login.to_owned(),
            email: format!("{login}@example.test"),
            display_name: display_name.to_owned(),
            first_name: display_name
                .split(' ')
                .next()
                .unwrap_or(display_name)
                .to_owned(),
            app_passwords: Vec::new(),
        });
        id
    }

    /// Lets `token` authenticate `user` as `Authorization: Bearer <token>`.
    pub fn add_bearer(&self, user: u64, token: &str) {
        self.state().bearer.insert(token.to_owned(), user);
    }

    /// Gives `user` an Application Password (spaces are ignored, as WordPress does).
    pub fn add_app_password(&self, user: u64, password: &str) {
        let clean: String = password.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(u) = self.state().users.iter_mut().find(|u| u.id == user) {
            u.app_passwords.push(clean);
        }
    }

    /// Lets `jwt` authenticate `user` as the `accessToken` header.
    pub fn add_access_token(&self, user: u64, jwt: &str) {
        self.state().access_tokens.insert(jwt.to_owned(), user);
    }

    /// Lets the `Cookie` header value `cookie` with `X-WP-Nonce: nonce` authenticate `user`.
    pub fn add_cookie(&self, user: u64, cookie: &str, nonce: &str) {
        self.state()
            .cookies
            .insert(cookie.to_owned(), (user, nonce.to_owned()));
    }

    /// Logs `user` in to the website: a new login session; returns its token (what the
    /// plugin's site credential refers to).
    pub fn login(&self, user: u64) -> String {
        let mut s = self.state();
        s.next_session += 1;
        let token = format!("session-{user}-{}", s.next_session);
        s.sessions.insert((user, token.clone()));
        token
    }

    /// Logs `user` out of the session `token` ("log out" on the website): every site
    /// credential bound to it is refused from now on.
    pub fn logout(&self, user: u64, token: &str) {
        self.state().sessions.remove(&(user, token.to_owned()));
    }

    /// The site credential the plugin would put in a ticket for `user`'s login session
    /// `token`: `bbrt-sc1.<kid>.<base64url(payload ‖ mac)>`, signed with the fake's own
    /// site key (the plugin seals it; for bbrt both are opaque).
    pub fn site_credential(&self, user: u64, token: &str) -> String {
        let key = self.state().site_key;
        seal_site_credential(&key, user, token)
    }

    /// A ticket for `user`'s login session `token`, for the bbrt at `audience`, signed with
    /// `kid`/`secret` exactly as the plugin signs (HS256, its header bytes, `iss` this
    /// site's URL, lifetime 30 s from now, a fresh `jti`).
    pub fn ticket(
        &self,
        user: u64,
        token: &str,
        kid: &str,
        secret: &str,
        audience: &str,
    ) -> String {
        let now = now_unix();
        let jti = {
            let mut s = self.state();
            s.next_session += 1;
            let digest = hmac_sha256(&s.site_key, &s.next_session.to_be_bytes());
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let claims = json!({
            "iss": self.url().trim_end_matches('/'),
            "aud": audience.trim_end_matches('/'),
            "sub": user.to_string(),
            "iat": now, "nbf": now, "exp": now + 30,
            "jti": jti,
            "sc": self.site_credential(user, token),
        });
        sign_ticket(kid, secret, &claims)
    }

    /// Revokes a credential by its secret: a bearer token, an access token, a cookie or an
    /// Application Password.
    pub fn revoke(&self, secret: &str) {
        let clean: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
        let mut s = self.state();
        s.revoked.insert(secret.to_owned());
        s.revoked.insert(clean);
    }

    /// Creates a thread with a first message from `sender`, as `POST /messages` would
    /// (no dedupe); returns (thread id, message id).
    pub fn create_thread(&self, sender: u64, recipients: &[u64], text: &str) -> (u64, u64) {
        let mut s = self.state();
        let id = s.threads.keys().next_back().map_or(1, |k| k + 1);
        let mut thread = Thread {
            id,
            rows: Vec::new(),
            messages: Vec::new(),
        };
        for &user in std::iter::once(&sender).chain(recipients) {
            if thread.rows.iter().all(|r| r.user != user) {
                s.next_row += 1;
                thread.rows.push(Row {
                    row_id: s.next_row,
                    user,
                    unread: u32::from(user != sender),
                });
            }
        }
        s.threads.insert(id, thread);
        let message = store_message(&mut s, id, sender, "No Subject", text);
        (id, message)
    }

    /// Adds a message from `sender` to `thread` directly (not through HTTP), as a reply
    /// would: the other participants' unread counts go up.
    pub fn post_message(&self, thread: u64, sender: u64, text: &str) -> Option<u64> {
        let mut s = self.state();
        if !s.threads.contains_key(&thread) {
            return None;
        }
        let id = store_message(&mut s, thread, sender, "Re: No Subject", text);
        if let Some(t) = s.threads.get_mut(&thread) {
            for r in t.rows.iter_mut().filter(|r| r.user != sender) {
                r.unread += 1;
            }
        }
        Some(id)
    }

    /// Adds a message as [`FakeSite::post_message`] does, stamped `sent_at` (Unix
    /// seconds) instead of now, for tests of paging by date. The thread's messages stay
    /// in `date_sent` order (a message in a second already used goes after that second's).
    pub fn post_message_at(
        &self,
        thread: u64,
        sender: u64,
        text: &str,
        sent_at: i64,
    ) -> Option<u64> {
        let id = self.post_message(thread, sender, text)?;
        let mut s = self.state();
        let t = s.threads.get_mut(&thread)?;
        let mut message = t.messages.pop()?;
        message.sent_at = sent_at;
        let at = t.messages.partition_point(|m| m.sent_at <= sent_at);
        t.messages.insert(at, message);
        Some(id)
    }

    /// The messages of `thread`, oldest first.
    pub fn messages(&self, thread: u64) -> Vec<FakeMessage> {
        self.state()
            .threads
            .get(&thread)
            .map(|t| t.messages.clone())
            .unwrap_or_default()
    }

    /// The participants of `thread`, in row order.
    pub fn participants(&self, thread: u64) -> Vec<u64> {
        self.state()
            .threads
            .get(&thread)
            .map(|t| t.rows.iter().map(|r| r.user).collect())
            .unwrap_or_default()
    }

    /// `user`'s unread count in `thread`.
    pub fn unread(&self, thread: u64, user: u64) -> Option<u32> {
        self.state()
            .threads
            .get(&thread)?
            .rows
            .iter()
            .find(|r| r.user == user)
            .map(|r| r.unread)
    }

    /// Removes `user` from `thread` (their next request about it answers 403).
    pub fn remove_from_thread(&self, thread: u64, user: u64) {
        if let Some(t) = self.state().threads.get_mut(&thread) {
            t.rows.retain(|r| r.user != user);
        }
    }

    /// Pauses the site for `d` from now, as `kill -STOP` of PHP does: requests wait, and
    /// when it ends each is done and answered, even those whose client gave up.
    pub fn pause(&self, d: Duration) {
        self.state().paused_until = Some(tokio::time::Instant::now() + d);
    }

    /// Delays every answer by `latency` (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Shows `fault` to the next `times` requests it applies to, after any already queued.
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut s = self.state();
        s.faults.extend(std::iter::repeat_n(fault, times));
    }

    /// The namespaces the API root lists (default `oembed/1.0`, `buddyboss/v1`,
    /// `wp/v2`); without `buddyboss/v1`, as on a site where BuddyBoss is not active.
    pub fn set_namespaces(&self, namespaces: &[&str]) {
        self.state().namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
    }

    /// Answers every REST request with an HTML page and `status` (200: the home page of
    /// a site with plain permalinks; 404: a wrong path), as a site whose REST API is not
    /// where bbrt looks.
    pub fn set_no_rest_api(&self, status: Option<u16>) {
        self.state().no_rest_api = status;
    }

    /// Activates (or deactivates) bbrt's companion plugin: its namespace `bbrt/v1` and its
    /// route `/bbrt/v1/messages` in the API root, and that idempotent `POST bbrt/v1/messages`, with the semantics of
    /// `docs/wordpress.md` ("The route"). Off (the default), the route answers 404
    /// `rest_no_route`. The key table survives deactivation, as the plugin's does.
    pub fn set_plugin(&self, on: bool) {
        let mut s = self.state();
        s.plugin = on;
        s.namespaces.retain(|n| n != PLUGIN_NAMESPACE);
        if on {
            s.namespaces.push(PLUGIN_NAMESPACE.to_owned());
        }
    }

    /// How long a plugin request waits for another request creating the same key before
    /// answering 409 `bbrt_send_in_progress` (default 2 s, as the plugin).
    pub fn set_in_progress_wait(&self, wait: Duration) {
        self.state().in_progress_wait = wait;
    }

    /// How many keys the plugin's table holds, pending or complete.
    pub fn send_keys(&self) -> usize {
        self.state().send_keys.len()
    }

    /// Every message stored on the site, in all threads.
    pub fn message_count(&self) -> usize {
        self.state()
            .threads
            .values()
            .map(|t| t.messages.len())
            .sum()
    }

    /// Reproduces BuddyBoss's Application-Password trap: while on, a `POST /messages`
    /// authenticated by Basic answers 500 `bp_rest_messages_create_failed` for a new
    /// thread and 403 `bp_rest_authorization_required` for a reply (what a site without
    /// the mu-plugin does).
    pub fn set_app_password_trap(&self, on: bool) {
        self.state().app_password_trap = on;
    }

    /// Gives `user` BuddyBoss's `bp_moderate` capability: they may read any thread
    /// (`GET /messages/{id}`) without being a participant, as site admins can.
    pub fn set_moderator(&self, user: u64, on: bool) {
        let mut s = self.state();
        if on {
            s.moderators.insert(user);
        } else {
            s.moderators.remove(&user);
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// How many requests so far had `method` and `route`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.state()
            .log
            .iter()
            .filter(|r| r.method == method && r.route == route)
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    /// The most requests that were being handled at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// When the site last answered a request (its handler returned; the response is then
    /// written), if it ever did.
    pub fn last_answer(&self) -> Option<std::time::Instant> {
        *self
            .shared
            .last_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn store_message(s: &mut State, thread: u64, sender: u64, subject: &str, text: &str) -> u64 {
    s.next_message += 1;
    let id = s.next_message;
    let message = FakeMessage {
        id,
        sender,
        subject: subject.to_owned(),
        stored: kses(text),
        sent_at: now_unix(),
    };
    if let Some(t) = s.threads.get_mut(&thread) {
        t.messages.push(message);
    }
    id
}

/// What WordPress and BuddyBoss do to message content, as the real site showed it (its
/// kses check, `/work/bbsite` in issue 15): a `<` that no `>` closes before the next `<`
/// becomes `&lt;` (`wp_pre_kses_less_than`); any other `<…>` is a tag for kses, whatever
/// follows the `<`: an allowed name keeps the tag without its attributes
/// (`< b and c >` becomes `<b>`), anything else is removed, as are comments; a lone `>`
/// becomes `&gt;`, a lone `&` `&amp;`; tags left open are closed at the end
/// (`if a < b and c > d` is stored as `if a <b> d</b>`); characters outside the Basic
/// Multilingual Plane (emoji) become `&#x…;` (`wp_encode_emoji`).
fn kses(input: &str) -> String {
    const ALLOWED: &[&str] = &[
        "a",
        "b",
        "strong",
        "i",
        "em",
        "p",
        "br",
        "ul",
        "ol",
        "li",
        "blockquote",
        "code",
        "pre",
        "span",
    ];
    const VOID: &[&str] = &["br"];
    let mut out = String::with_capacity(input.len());
    let mut open: Vec<String> = Vec::new();
    let mut rest = input;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' if rest.starts_with("<!--") => {
                rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            }
            '<' => {
                let Some(len) = crate::text::kses_tag_len(rest) else {
                    out.push_str("&lt;");
                    rest = &rest[1..];
                    continue;
                };
                let tag = &rest[1..len - 1];
                rest = &rest[len..];
                let tag = tag.trim_start();
                let (closing, tag) = match tag.strip_prefix('/') {
                    Some(t) => (true, t.trim_start()),
                    None => (false, tag),
                };
                let name: String = tag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                if name.is_empty() || !ALLOWED.contains(&name.as_str()) {
                    continue;
                }
                if closing {
                    if let Some(i) = open.iter().rposition(|n| *n == name) {
                        open.remove(i);
                    }
                    out.push_str(&format!("</{name}>"));
                } else if tag.trim_end().ends_with('/') || VOID.contains(&name.as_str()) {
                    out.push_str(&format!("<{name} />"));
                } else {
                    out.push_str(&format!("<{name}>"));
                    open.push(name);
                }
            }
            '>' => {
                out.push_str("&gt;");
                rest = &rest[1..];
            }
            '&' => {
                let after = &rest[1..];
                let is_entity = after
                    .find(';')
                    .filter(|&e| e > 0 && e <= 10)
                    .is_some_and(|e| {
                        let name = &after[..e];
                        name.chars().all(|c| c.is_ascii_alphanumeric())
                            || (name.starts_with('#')
                                && name[1..].chars().all(|c| c.is_ascii_hexdigit() || c == 'x'))
                    });
                out.push_str(if is_entity { "&" } else { "&amp;" });
                rest = after;
            }
            c if u32::from(c) > 0xffff => {
                out.push_str(&format!("&#x{:x};", u32::from(c)));
                rest = &rest[c.len_utf8()..];
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    for name in open.iter().rev() {
        out.push_str(&format!("</{name}>"));
    }
    out
}

fn autop(stored: &str) -> String {
    format!("<p>{}</p>\n", stored.trim().replace('\n', "<br />\n"))
}

fn excerpt(stored: &str) -> String {
    let plain = strip_tags(stored);
    let plain = plain.trim();
    if plain.chars().count() <= 75 {
        plain.to_owned()
    } else {
        let cut: String = plain.chars().take(75).collect();
        format!("{}&hellip;", cut.trim_end())
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

const FATAL_MESSAGE: &str = "<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>";
const NOT_JSON_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head><body><p>Briefly unavailable for scheduled maintenance. Check back in a minute.</p></body></html>\n";

struct Answer {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: json!({ "code": code, "message": message, "data": { "status": status } }),
            headers: Vec::new(),
        }
    }

    fn error_with_data(status: u16, code: &str, message: &str, data: Value) -> Self {
        Self {
            body: json!({ "code": code, "message": message, "data": data }),
            ..Self::error(status, code, message)
        }
    }
}

enum Caller {
    Anonymous,
    User(u64, &'static str),
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        *self
            .0
            .last_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(std::time::Instant::now());
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// HMAC-SHA256 (RFC 2104) over sha2, for the fake's tickets and site credentials.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = sha2::Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    sha2::Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Signs `claims` as the plugin does: `b64u(header) "." b64u(claims) "." b64u(mac)`, with
/// the plugin's exact header bytes.
pub fn sign_ticket(kid: &str, secret: &str, claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"bbrt-ticket"}}"#);
    let signed = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
    let mac = hmac_sha256(secret.as_bytes(), signed.as_bytes());
    format!("{signed}.{}", b64.encode(mac))
}

/// A key of this fake's own, different per instance.
fn site_key(addr: SocketAddr) -> [u8; 32] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hmac_sha256(addr.to_string().as_bytes(), &nanos.to_be_bytes())
}

const SITE_CREDENTIAL_PREFIX: &str = "bbrt-sc1.";

fn site_key_id(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"bbrt site credential kid|")
        .chain_update(key)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn seal_site_credential(key: &[u8; 32], user: u64, token: &str) -> String {
    let kid = site_key_id(key);
    let payload = json!({"uid": user, "tok": token}).to_string();
    let mac = hmac_sha256(
        key,
        format!("{SITE_CREDENTIAL_PREFIX}{kid}.{payload}").as_bytes(),
    );
    let mut body = payload.into_bytes();
    body.extend_from_slice(&mac);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{SITE_CREDENTIAL_PREFIX}{kid}.{}", b64.encode(body))
}

/// The plugin's check of `X-BBRT-Session`, with the reason it gives when it refuses.
fn open_site_credential(s: &State, credential: &str) -> Result<u64, &'static str> {
    let rest = credential
        .strip_prefix(SITE_CREDENTIAL_PREFIX)
        .filter(|_| credential.len() <= 1024)
        .ok_or("malformed")?;
    let (kid, sealed) = rest.split_once('.').ok_or("malformed")?;
    if kid != site_key_id(&s.site_key) {
        return Err("unknown key");
    }
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| "malformed")?;
    let split = body.len().checked_sub(32).ok_or("malformed")?;
    let (payload, mac) = body.split_at(split);
    let mut signed = format!("{SITE_CREDENTIAL_PREFIX}{kid}.").into_bytes();
    signed.extend_from_slice(payload);
    if hmac_sha256(&s.site_key, &signed).as_slice() != mac {
        return Err("bad seal");
    }
    let payload: Value = serde_json::from_slice(payload).map_err(|_| "bad seal")?;
    let (Some(uid), Some(tok)) = (payload["uid"].as_u64(), payload["tok"].as_str()) else {
        return Err("bad seal");
    };
    if s.user(uid).is_none() {
        return Err("no such user");
    }
    if !s.sessions.contains(&(uid, tok.to_owned())) {
        return Err("session ended");
    }
    Ok(uid)
}

fn redact(name: &str, value: &str) -> String {
    match name {
        "authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} [redacted]"),
            None => "[redacted]".into(),
        },
        "cookie" | "x-wp-nonce" | "accesstoken" | "x-bbrt-session" => "[redacted]".into(),
        _ => value.to_owned(),
    }
}

async fn handle(
    Extract(shared): Extract<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared
        .max_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);
    let _guard = InFlight(&shared);

    let mut query = parse_query(uri.query());
    let (route, form) = if let Some(r) = uri.path().strip_prefix("/wp-json") {
        (r.to_owned(), "wp-json")
    } else if uri.path() == "/" && query.iter().any(|(k, _)| k == "rest_route") {
        let route = query
            .iter()
            .find(|(k, _)| k == "rest_route")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        query.retain(|(k, _)| k != "rest_route");
        (route, "rest_route")
    } else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/html; charset=UTF-8")
            .body(Body::from(
                "<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>",
            ))
            .expect("static response parts are valid");
    };
    let route = if route.len() > 1 {
        route.trim_end_matches('/').to_owned()
    } else {
        route
    };
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let auth = header_str("authorization")
        .and_then(|v| v.split_once(' ').map(|(s, _)| s.to_ascii_lowercase()))
        .or_else(|| header_str("accesstoken").map(|_| "access-token".into()))
        .or_else(|| header_str("x-bbrt-session").map(|_| "site-session".into()))
        .or_else(|| {
            header_str("cookie").map(|_| {
                if headers.contains_key("x-wp-nonce") {
                    "cookie-nonce".into()
                } else {
                    "cookie".into()
                }
            })
        });
    let logged_body = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    };
    let entry = LoggedRequest {
        method: method.to_string(),
        route: route.clone(),
        form: form.into(),
        query: query.clone(),
        auth,
        headers: headers
            .iter()
            .filter(|(n, _)| n.as_str() != "host")
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    redact(n.as_str(), v.to_str().unwrap_or("<binary>")),
                )
            })
            .collect(),
        body: logged_body,
    };

    if let Some(status) = shared.state().no_rest_api {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
        return raw_response(
            status,
            "text/html; charset=UTF-8",
            b"<!DOCTYPE html><html><body><h1>A WordPress site</h1></body></html>".to_vec(),
        );
    }
    let is_plugin_send = method == Method::POST && route == "/bbrt/v1/messages";
    let is_create = is_plugin_send || (method == Method::POST && route == "/buddyboss/v1/messages");
    let (latency, fault, paused_until) = {
        let mut s = shared.state();
        s.log.push(entry);
        let position = s.faults.iter().position(|f| match f {
            Fault::StoreThenHang => is_create,
            Fault::SlowStore(_) | Fault::KeyStoreDown => is_plugin_send,
            _ => true,
        });
        let fault = position.and_then(|i| s.faults.remove(i));
        (s.latency, fault, s.paused_until)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let wait_until = match fault {
        Some(Fault::Slow(d)) => Some(tokio::time::Instant::now() + d),
        _ => paused_until.filter(|at| *at > tokio::time::Instant::now()),
    };
    let slow_store = matches!(fault, Some(Fault::SlowStore(_)));
    if wait_until.is_some() || slow_store {
        // Detached, so the work is done even when the client stops waiting.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(&shared);
        let fault = fault.filter(|_| slow_store);
        tokio::spawn(async move {
            if let Some(at) = wait_until {
                tokio::time::sleep_until(at).await;
            }
            let _ =
                tx.send(perform(&shared, &method, &route, &query, &body, &headers, fault).await);
        });
        return match rx.await {
            Ok((answer, unread, authenticated)) => respond(answer, unread, authenticated),
            Err(_) => std::future::pending().await,
        };
    }
    match fault {
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::ServerError) => {
            let mut a = Answer::error(500, "internal_server_error", FATAL_MESSAGE);
            if let Value::Object(m) = &mut a.body {
                m.insert("additional_errors".into(), json!([]));
            }
            return respond(a, 0, false);
        }
        _ => {}
    }

    let (answer, unread, authenticated) =
        perform(&shared, &method, &route, &query, &body, &headers, fault).await;
    match fault {
        Some(Fault::StoreThenHang) => std::future::pending::<()>().await,
        Some(Fault::Truncated) => {
            let text = answer.body.to_string();
            let half = &text.as_bytes()[..text.len() / 2];
            return raw_response(
                StatusCode::OK,
                "application/json; charset=UTF-8",
                half.to_vec(),
            );
        }
        Some(Fault::CutOff) => {
            let text = answer.body.to_string();
            let half = text.as_bytes()[..text.len() / 2].to_vec();
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
                .header(header::CONTENT_LENGTH, text.len())
                .body(Body::from(half))
                .expect("static response parts are valid");
        }
        Some(Fault::NotJson) => {
            return raw_response(
                StatusCode::OK,
                "text/html; charset=UTF-8",
                NOT_JSON_PAGE.as_bytes().to_vec(),
            );
        }
        _ => {}
    }
    respond(answer, unread, authenticated)
}

/// Does the request: the answer, the caller's unread count, whether it authenticated.
/// `fault` is the fault this request drew (only the plugin's route reads it here).
async fn perform(
    shared: &Shared,
    method: &Method,
    route: &str,
    query: &[(String, String)],
    body: &Bytes,
    headers: &HeaderMap,
    fault: Option<Fault>,
) -> (Answer, u32, bool) {
    let plugin_send =
        method == Method::POST && route == "/bbrt/v1/messages" && shared.state().plugin;
    if plugin_send {
        return plugin_send_message(shared, body, headers, fault).await;
    }
    let mut s = shared.state();
    match authenticate(&s, headers) {
        Err(a) => (a, 0, false),
        Ok(caller) => {
            let answer = route_request(&mut s, method, route, query, body, &caller);
            let (unread, authenticated) = match caller {
                Caller::User(u, _) => (total_unread(&s, u), true),
                Caller::Anonymous => (0, false),
            };
            (answer, unread, authenticated)
        }
    }
}

/// `client_message_id`'s alphabet and length, as the plugin checks it (bbrt's
/// `clientMessageId`).
fn valid_send_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'@' | b'+' | b'-')
        })
}

/// The parameters that make two sends "the same": `id`, `message`, `subject`,
/// `recipients` (as a sorted set), `send_at`.
fn send_fingerprint(params: &Value) -> String {
    let text = |name: &str| match params.get(name) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let thread = match params.get("id") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(v)) => v.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let mut recipients = parse_id_list(params.get("recipients"));
    recipients.sort_unstable();
    json!([
        thread,
        text("message"),
        text("subject"),
        recipients,
        text("send_at")
    ])
    .to_string()
}

fn with_param(mut a: Answer, name: &str, why: &str) -> Answer {
    a.body["data"]["params"] = json!({ name: why });
    a
}

/// The stored message of a complete key, as the plugin answers it: BuddyBoss's thread
/// object in `edit` context, its page ending at that message.
fn replay(s: &State, uid: u64, thread: u64, message: u64, replayed: bool) -> Answer {
    match s.threads.get(&thread) {
        Some(t) if is_participant(t, uid) => {
            let mut a = Answer::ok(thread_json(s, t, uid, true, None, Some(message)));
            a.headers.push(("x-bbrt-message-id", message.to_string()));
            a.headers.push(("x-bbrt-replayed", replayed.to_string()));
            a
        }
        _ => Answer::error(
            403,
            "bp_rest_authorization_required",
            "Sorry, you are not allowed to perform this action.",
        ),
    }
}

fn in_progress() -> Answer {
    let mut a = Answer::error(
        409,
        "bbrt_send_in_progress",
        "Another request is storing this message. Try again shortly.",
    );
    a.body["data"]["retryable"] = json!(true);
    a.headers.push(("retry-after", "1".into()));
    a
}

/// The plugin's `POST bbrt/v1/messages` (`docs/wordpress.md`, "The route").
async fn plugin_send_message(
    shared: &Shared,
    body: &Bytes,
    headers: &HeaderMap,
    fault: Option<Fault>,
) -> (Answer, u32, bool) {
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let a = Answer::error(400, "rest_invalid_json", "Invalid JSON body passed.");
                return (a, 0, false);
            }
        }
    };
    let key = match params.get("client_message_id") {
        None | Some(Value::Null) => {
            let mut a = Answer::error(
                400,
                "rest_missing_callback_param",
                "Missing parameter(s): client_message_id",
            );
            a.body["data"]["params"] = json!(["client_message_id"]);
            return (a, 0, false);
        }
        Some(Value::String(k)) if valid_send_key(k) => k.clone(),
        Some(_) => {
            let a = Answer::error(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): client_message_id",
            );
            return (
                with_param(
                    a,
                    "client_message_id",
                    "client_message_id is not a valid key.",
                ),
                0,
                false,
            );
        }
    };
    if params.get("sender_id").is_some() {
        let a = Answer::error(400, "rest_invalid_param", "Invalid parameter(s): sender_id");
        return (
            with_param(
                a,
                "sender_id",
                "sender_id is not accepted: messages are sent as the authenticated user.",
            ),
            0,
            false,
        );
    }
    let fingerprint = send_fingerprint(&params);
    let (uid, row) = {
        let mut s = shared.state();
        let caller = match authenticate(&s, headers) {
            Err(a) => return (a, 0, false),
            Ok(c) => c,
        };
        let Caller::User(uid, _) = caller else {
            return (login_required_to_create(), 0, false);
        };
        if let Err(a) = may_create(&s, &params, uid) {
            return (a, total_unread(&s, uid), true);
        }
        if fault == Some(Fault::KeyStoreDown) {
            let mut a = Answer::error(
                503,
                "bbrt_store_unavailable",
                "The message could not be stored right now. Try again shortly.",
            );
            a.body["data"]["retryable"] = json!(true);
            return (a, total_unread(&s, uid), true);
        }
        let slot = (uid, key.clone());
        match s.send_keys.get(&slot).cloned() {
            Some(row) => (uid, Some(row)),
            None => {
                s.send_keys.insert(
                    slot,
                    KeyRow::Pending {
                        fingerprint: fingerprint.clone(),
                    },
                );
                (uid, None)
            }
        }
    };
    let slot = (uid, key);
    let unread = |s: &State| total_unread(s, uid);
    match row {
        Some(row) if row.fingerprint() != fingerprint => {
            let s = shared.state();
            let a = Answer::error(
                409,
                "idempotency_conflict",
                "This client_message_id was already used for another message.",
            );
            (a, unread(&s), true)
        }
        Some(KeyRow::Complete {
            thread, message, ..
        }) => {
            let s = shared.state();
            (replay(&s, uid, thread, message, true), unread(&s), true)
        }
        Some(KeyRow::Pending { .. }) => {
            let wait = shared.state().in_progress_wait;
            let until = tokio::time::Instant::now() + wait;
            loop {
                {
                    let s = shared.state();
                    match s.send_keys.get(&slot) {
                        Some(KeyRow::Complete {
                            thread, message, ..
                        }) => {
                            return (replay(&s, uid, *thread, *message, true), unread(&s), true);
                        }
                        Some(KeyRow::Pending { .. }) if tokio::time::Instant::now() < until => {}
                        _ => return (in_progress(), unread(&s), true),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        None => {
            if let Some(Fault::SlowStore(d)) = fault {
                tokio::time::sleep(d).await;
            }
            let mut s = shared.state();
            let mut create = params.clone();
            if let Value::Object(m) = &mut create {
                m.remove("client_message_id");
            }
            s.last_created = None;
            let answer = create_message(
                &mut s,
                create.to_string().as_bytes(),
                &Caller::User(uid, "plugin"),
            );
            match (answer.status == StatusCode::OK, s.last_created) {
                (true, Some((thread, message))) => {
                    s.send_keys.insert(
                        slot,
                        KeyRow::Complete {
                            fingerprint,
                            thread,
                            message,
                        },
                    );
                    let mut a = answer;
                    a.headers.push(("x-bbrt-message-id", message.to_string()));
                    a.headers.push(("x-bbrt-replayed", "false".into()));
                    (a, unread(&s), true)
                }
                _ => {
                    // A refused send frees its key, so a retry can try again.
                    s.send_keys.remove(&slot);
                    (answer, unread(&s), true)
                }
            }
        }
    }
}

fn raw_response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("static response parts are valid")
}

fn respond(answer: Answer, unread: u32, authenticated: bool) -> Response {
    let mut builder = Response::builder()
        .status(answer.status)
        .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
        .header("x-robots-tag", "noindex")
        .header(
            "link",
            "<http://127.0.0.1/wp-json/>; rel=\"https://api.w.org/\"",
        )
        .header("x-content-type-options", "nosniff")
        .header(
            "access-control-expose-headers",
            "X-WP-Total, X-WP-TotalPages, Link",
        )
        .header(
            "access-control-allow-headers",
            "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type",
        )
        .header("bbp-unread-messages", unread.to_string());
    if authenticated {
        builder = builder
            .header(header::EXPIRES, "Wed, 11 Jan 1984 05:00:00 GMT")
            .header(
                header::CACHE_CONTROL,
                "no-cache, must-revalidate, max-age=0",
            );
    }
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            builder = builder.header(name, v);
        }
    }
    builder
        .body(Body::from(answer.body.to_string()))
        .expect("response parts are valid")
}

fn total_unread(s: &State, user: u64) -> u32 {
    s.threads
        .values()
        .flat_map(|t| &t.rows)
        .filter(|r| r.user == user)
        .map(|r| r.unread)
        .sum()
}

/// Who the request is from; `Err` when WordPress rejects the credential outright.
fn authenticate(s: &State, headers: &HeaderMap) -> Result<Caller, Answer> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The plugin's filter runs after WordPress's own checks; bbrt sends this header
    // alone, so checking it first changes nothing here.
    if let Some(credential) = get("x-bbrt-session") {
        return match open_site_credential(s, credential) {
            Ok(user) => Ok(Caller::User(user, "site-session")),
            Err(reason) => Err(Answer::error_with_data(
                401,
                "bbrt_session_invalid",
                "The bbrt session is not valid: connect again.",
                json!({"status": 401, "reason": reason}),
            )),
        };
    }
    if let Some(value) = get("authorization") {
        if let Some((scheme, rest)) = value.split_once(' ') {
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("bearer") {
                return Ok(match s.bearer.get(rest) {
                    Some(&u) if !s.revoked.contains(rest) => Caller::User(u, "bearer"),
                    _ => Caller::Anonymous,
                });
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let Some(decoded) = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                else {
                    return Ok(Caller::Anonymous);
                };
                let Some((login, password)) = decoded.split_once(':') else {
                    return Ok(Caller::Anonymous);
                };
                let Some(user) = s
                    .users
                    .iter()
                    .find(|u| u.login == login || u.email == login)
                else {
                    return Err(Answer::error(
                        401,
                        "invalid_username",
                        "<strong>Error:</strong> Unknown username. Check again or try your email address.",
                    ));
                };
                let clean: String = password.chars().filter(|c| !c.is_whitespace()).collect();
                if user.app_passwords.contains(&clean) && !s.revoked.contains(&clean) {
                    return Ok(Caller::User(user.id, "basic"));
                }
                return Err(Answer::error(
                    401,
                    "incorrect_password",
                    "The provided password is an invalid application password.",
                ));
            }
        }
    }
    if let Some(jwt) = get("accesstoken") {
        if let Some(&u) = s
            .access_tokens
            .get(jwt)
            .filter(|_| !s.revoked.contains(jwt))
        {
            return Ok(Caller::User(u, "access-token"));
        }
    }
    if let Some(cookie) = get("cookie") {
        if let Some((u, nonce)) = s
            .cookies
            .get(cookie)
            .filter(|_| !s.revoked.contains(cookie))
        {
            return match get("x-wp-nonce") {
                None => Ok(Caller::Anonymous),
                Some(n) if n == nonce => Ok(Caller::User(*u, "cookie-nonce")),
                Some(_) => Err(Answer::error(
                    403,
                    "rest_cookie_invalid_nonce",
                    "Cookie nonce is invalid",
                )),
            };
        }
    }
    Ok(Caller::Anonymous)
}

fn route_request(
    s: &mut State,
    method: &Method,
    route: &str,
    query: &[(String, String)],
    body: &[u8],
    caller: &Caller,
) -> Answer {
    let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let id = |seg: &str| seg.parse::<u64>().ok();
    match (method.as_str(), segments.as_slice()) {
        ("GET", [""]) => Answer::ok(json!({
            "name": "A BuddyBoss site",
            "url": SITE,
            "namespaces": s.namespaces,
            "authentication": {"application-passwords": {"endpoints": {}}},
            "routes": if s.plugin {
                json!({ "/bbrt/v1": {"namespace": PLUGIN_NAMESPACE}, "/bbrt/v1/messages": {"namespace": PLUGIN_NAMESPACE, "methods": ["POST"]} })
            } else {
                json!({})
            },
        })),
        ("GET", ["wp", "v2", "users", "me"]) => users_me(s, caller),
        ("GET", ["buddyboss", "v1", "messages"]) => list_threads(s, query, caller),
        ("POST", ["buddyboss", "v1", "messages"]) => create_message(s, body, caller),
        ("GET", ["buddyboss", "v1", "messages", t]) if id(t).is_some() => {
            get_thread(s, id(t).unwrap_or_default(), query, caller)
        }
        ("POST", ["buddyboss", "v1", "messages", "action", t]) if id(t).is_some() => {
            thread_action(s, id(t).unwrap_or_default(), body, caller)
        }
        _ => Answer::error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        ),
    }
}

fn avatar_pair(site: &str) -> Value {
    json!({
        "full": format!("{site}/wp-content/plugins/buddyboss-platform/src/bp-core/images/profile-avatar-buddyboss.png"),
        "thumb": format!("{site}/wp-content/plugins/buddyboss-platform/src/bp-core/images/profile-avatar-buddyboss-50.png"),
    })
}

const SITE: &str = "http://127.0.0.1";

fn users_me(s: &State, caller: &Caller) -> Answer {
    let Caller::User(uid, _) = caller else {
        return Answer::error(
            401,
            "rest_not_logged_in",
            "You are not currently logged in.",
        );
    };
    let Some(u) = s.user(*uid) else {
        return Answer::error(
            401,
            "rest_not_logged_in",
            "You are not currently logged in.",
        );
    };
    let avatar = format!(
        "{SITE}/wp-content/plugins/buddyboss-platform/src/bp-core/images/profile-avatar-buddyboss-50.png"
    );
    Answer::ok(json!({
        "id": u.id,
        "name": u.display_name,
        "url": "",
        "description": "",
        "link": format!("{SITE}/author/{}/", u.login),
        "slug": u.login,
        "avatar_urls": { "24": avatar, "48": avatar, "96": avatar },
        "meta": [],
        "_links": {
            "self": [{ "href": format!("{SITE}/wp-json/wp/v2/users/{}", u.id) }],
            "collection": [{ "href": format!("{SITE}/wp-json/wp/v2/users") }],
        },
    }))
}

fn permissions() -> Value {
    json!({
        "unread": true,
        "delete_messages": true,
        "delete_thread": false,
        "can_manage_media": false,
        "can_manage_video": false,
        "can_manage_document": false,
        "hide_thread": true,
    })
}

fn user_name(s: &State, id: u64) -> (String, String) {
    s.user(id).map_or_else(
        || (String::new(), String::new()),
        |u| (u.first_name.clone(), u.login.clone()),
    )
}

fn message_json(s: &State, thread: u64, m: &FakeMessage) -> Value {
    let (name, _) = user_name(s, m.sender);
    json!({
        "id": m.id,
        "thread_id": thread,
        "sender_id": m.sender,
        "subject": { "raw": m.subject, "rendered": m.subject },
        "message": { "raw": strip_tags(&m.stored).trim(), "rendered": autop(&m.stored) },
        "date_sent": naive_from_unix(m.sent_at),
        "display_date": "Just now",
        "group_name": "",
        "group_text": "",
        "group_link": "",
        "group_message_users": "",
        "group_message_type": "",
        "group_message_thread_type": "",
        "group_message_fresh": "",
        "message_from": "",
        "group_member_action_type": "",
        "sender_data": { "sender_name": name, "user_avatars": avatar_pair(SITE) },
        "is_starred": false,
    })
}

/// The thread object (`prepare_item_for_response`) for `caller`; `edit` keeps `raw` on
/// the thread-level subject, excerpt and message (POST answers).
fn thread_json(
    s: &State,
    t: &Thread,
    caller: u64,
    edit: bool,
    before: Option<i64>,
    upto: Option<u64>,
) -> Value {
    let latest = t.messages.last();
    let parts = |raw: &str, rendered: &str| {
        if edit {
            json!({ "raw": raw, "rendered": rendered })
        } else {
            json!({ "rendered": rendered })
        }
    };
    let eligible: Vec<&FakeMessage> = t
        .messages
        .iter()
        .filter(|m| before.is_none_or(|b| m.sent_at <= b))
        .filter(|m| upto.is_none_or(|u| m.id <= u))
        .collect();
    let page: Vec<&FakeMessage> = eligible.iter().rev().take(10).rev().copied().collect();
    // BuddyBoss gives a cursor whenever the page is full, whether or not anything older
    // is left, and it is the oldest date minus one second: the rest of that second is
    // never listed by it.
    let next = if page.len() >= 10 {
        page.first()
            .map_or(String::new(), |m| naive_from_unix(m.sent_at - 1))
    } else {
        String::new()
    };
    let sender_ids: serde_json::Map<String, Value> = page
        .iter()
        .map(|m| (m.sender.to_string(), json!(m.sender)))
        .collect();
    let recipients: serde_json::Map<String, Value> = t
        .rows
        .iter()
        .map(|r| {
            let (name, login) = user_name(s, r.user);
            (
                r.user.to_string(),
                json!({
                    "id": r.row_id,
                    "user_id": r.user,
                    "user_link": format!("{SITE}/members/{login}/"),
                    "name": name,
                    "user_avatars": avatar_pair(SITE),
                    "thread_id": t.id,
                    "unread_count": r.unread,
                    "sender_only": 0,
                    "is_deleted": 0,
                    "is_hidden": 0,
                    "current_user_permissions": permissions(),
                }),
            )
        })
        .collect();
    let caller_unread = t
        .rows
        .iter()
        .find(|r| r.user == caller)
        .map_or(0, |r| r.unread);
    let stored = latest.map_or("", |m| m.stored.as_str());
    let subject = latest.map_or("", |m| m.subject.as_str());
    let mut links = serde_json::Map::new();
    links.insert(
        "self".into(),
        json!([{ "href": format!("{SITE}/wp-json/buddyboss/v1/messages/{}", t.id) }]),
    );
    links.insert(
        "collection".into(),
        json!([{ "href": format!("{SITE}/wp-json/buddyboss/v1/messages/") }]),
    );
    for m in &page {
        links.insert(
            m.id.to_string(),
            json!([{ "href": format!("{SITE}/wp-json/buddyboss/v1/messages/starred/{}", m.id) }]),
        );
    }
    json!({
        "id": t.id,
        "message_id": latest.map_or(0, |m| m.id),
        "last_sender_id": latest.map_or(0, |m| m.sender),
        "subject": parts(subject, subject),
        "excerpt": parts(&excerpt(stored), &excerpt(stored)),
        "message": parts(stored, &autop(stored)),
        "date": latest.map(|m| naive_from_unix(m.sent_at)),
        "start_date": t.messages.first().map(|m| naive_from_unix(m.sent_at)),
        "unread_count": u32::from(caller_unread > 0),
        "sender_ids": if sender_ids.is_empty() { Value::Null } else { Value::Object(sender_ids) },
        "current_user": caller,
        "can_send_message": true,
        "avatar": [avatar_pair(SITE)],
        "is_group": false,
        "is_group_thread": false,
        "group_name": "",
        "group_link": "",
        "group_message_users": "",
        "group_message_type": "",
        "group_message_from": "",
        "recipients_count": t.rows.len(),
        "recipients_per_page": 20,
        "recipients_total_pages": t.rows.len().div_ceil(20).max(1),
        "recipients": if recipients.is_empty() { json!([]) } else { Value::Object(recipients) },
        "message_per_page": 10,
        "messages_count": t.messages.len(),
        "next_messages_timestamp": next,
        "messages": page.iter().map(|m| message_json(s, t.id, m)).collect::<Vec<_>>(),
        "loggedin_user_permissions": permissions(),
        "is_hidden": false,
        "starred_message_ids": [],
        "_links": links,
    })
}

fn is_participant(t: &Thread, user: u64) -> bool {
    t.rows.iter().any(|r| r.user == user)
}

const NOT_ALLOWED_THREAD: &str = "Sorry, you are not allowed to see this thread.";

fn get_thread(s: &State, id: u64, query: &[(String, String)], caller: &Caller) -> Answer {
    // WordPress checks the arguments before the permission callback.
    let before = match query.iter().find(|(k, _)| k == "before") {
        Some((_, v)) => match parse_utc(v) {
            Some(at) => Some(at),
            None => {
                let a = Answer::error(400, "rest_invalid_param", "Invalid parameter(s): before");
                return with_param(a, "before", "Invalid date.");
            }
        },
        None => None,
    };
    let Caller::User(uid, _) = caller else {
        return Answer::error(401, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    match s.threads.get(&id) {
        Some(t) if is_participant(t, *uid) || s.moderators.contains(uid) => {
            Answer::ok(thread_json(s, t, *uid, false, before, None))
        }
        _ => Answer::error(403, "bp_rest_authorization_required", NOT_ALLOWED_THREAD),
    }
}

fn list_threads(s: &State, query: &[(String, String)], caller: &Caller) -> Answer {
    let Caller::User(uid, _) = caller else {
        return Answer::error(
            401,
            "bp_rest_authorization_required",
            "Sorry, you are not allowed to perform this action.",
        );
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(other) = param("user_id")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|u| u != uid)
    {
        if s.user(other).is_none() {
            return Answer::error(404, "bp_rest_invalid_id", "Invalid member ID.");
        }
        return Answer::error(
            403,
            "bp_rest_authorization_required",
            "Sorry, you cannot view the messages.",
        );
    }
    let page = param("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per_page = param("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let box_ = param("box").unwrap_or("inbox");
    let mut threads: Vec<&Thread> = s
        .threads
        .values()
        .filter(|t| is_participant(t, *uid))
        .filter(|t| match box_ {
            "sentbox" => t.messages.iter().any(|m| m.sender == *uid),
            "starred" => false,
            _ => true,
        })
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse((t.messages.last().map_or(0, |m| m.sent_at), t.id)));
    let total = threads.len();
    let items: Vec<Value> = threads
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|t| {
            let mut v = thread_json(s, t, *uid, false, None, None);
            if let Value::Object(m) = &mut v {
                let ids: Vec<String> = t.rows.iter().map(|r| r.user.to_string()).collect();
                m.insert("recipient_ids".into(), json!(ids));
            }
            v
        })
        .collect();
    let mut answer = Answer::ok(Value::Array(items));
    if total > 0 {
        answer.headers.push(("x-wp-total", total.to_string()));
        answer
            .headers
            .push(("x-wp-totalpages", total.div_ceil(per_page).to_string()));
    }
    answer.headers.push(("x-wp-archivetotal", "0".into()));
    answer
}

/// `wp_parse_id_list`: an array of ids or a comma-separated string; zeros dropped.
fn parse_id_list(v: Option<&Value>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut push = |n: u64| {
        if n > 0 && !out.contains(&n) {
            out.push(n);
        }
    };
    match v {
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Number(n) => push(n.as_u64().unwrap_or(0)),
                    Value::String(s) => push(s.trim().parse().unwrap_or(0)),
                    _ => {}
                }
            }
        }
        Some(Value::String(s)) => s
            .split([',', ' '])
            .for_each(|p| push(p.trim().parse().unwrap_or(0))),
        Some(Value::Number(n)) => push(n.as_u64().unwrap_or(0)),
        _ => {}
    }
    out
}

/// BuddyBoss's 401 for a create without a signed-in user.
fn login_required_to_create() -> Answer {
    Answer::error(
        401,
        "bp_rest_authorization_required",
        "Sorry, you need to be logged in to create a message.",
    )
}

/// BuddyBoss's create permission for signed-in `uid`: a reply (`id` > 0) only to a thread
/// it takes part in. The thread id (0: a new thread), or the 403. Shared by BuddyBoss's route
/// and the companion plugin's, which delegates to it.
fn may_create(s: &State, params: &Value, uid: u64) -> Result<u64, Answer> {
    let thread_id = match params.get("id") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(v)) => v.trim().parse().unwrap_or(0),
        _ => 0,
    };
    if thread_id > 0
        && !s
            .threads
            .get(&thread_id)
            .is_some_and(|t| is_participant(t, uid))
    {
        return Err(Answer::error(
            403,
            "bp_rest_authorization_required",
            "Sorry, you are not allowed to perform this action.",
        ));
    }
    Ok(thread_id)
}

fn create_message(s: &mut State, body: &[u8], caller: &Caller) -> Answer {
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return Answer::error(400, "rest_invalid_json", "Invalid JSON body passed."),
        }
    };
    let Caller::User(uid, scheme) = *caller else {
        return login_required_to_create();
    };
    let thread_id = match may_create(s, &params, uid) {
        Ok(thread_id) => thread_id,
        Err(a) => return a,
    };
    let recipients = parse_id_list(params.get("recipients"));
    if thread_id == 0 && recipients.is_empty() {
        return Answer::error(
            400,
            "bp_rest_empty_recipients",
            "Please, enter recipients user IDs.",
        );
    }
    let message = match params.get("message") {
        Some(Value::String(m)) if m == "0" => "<p>0</p>".to_owned(),
        Some(Value::String(m)) => m.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if message.is_empty() {
        return Answer::error(
            400,
            "bp_rest_messages_empty_message",
            "Sorry, Your message cannot be empty.",
        );
    }
    let failed = || {
        Answer::error(
            500,
            "bp_rest_messages_create_failed",
            "There was a problem sending your message.",
        )
    };
    if s.app_password_trap && scheme == "basic" {
        // As the real site answered without the fix: a reply is not allowed at all.
        if thread_id > 0 {
            return Answer::error(
                403,
                "bp_rest_authorization_required",
                "Sorry, you are not allowed to perform this action.",
            );
        }
        return failed();
    }
    let subject = params
        .get("subject")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let target = if thread_id > 0 {
        thread_id
    } else {
        let others: Vec<u64> = recipients.iter().copied().filter(|&r| r != uid).collect();
        if others.is_empty() || others.iter().any(|r| s.user(*r).is_none()) {
            return failed();
        }
        let mut set: Vec<u64> = others.clone();
        set.push(uid);
        set.sort_unstable();
        let existing = s.threads.values().find(|t| {
            let mut users: Vec<u64> = t.rows.iter().map(|r| r.user).collect();
            users.sort_unstable();
            users == set
        });
        match existing {
            Some(t) => t.id,
            None => {
                let id = s.threads.keys().next_back().map_or(1, |k| k + 1);
                let mut rows = Vec::new();
                for user in std::iter::once(uid).chain(others) {
                    s.next_row += 1;
                    rows.push(Row {
                        row_id: s.next_row,
                        user,
                        unread: 0,
                    });
                }
                s.threads.insert(
                    id,
                    Thread {
                        id,
                        rows,
                        messages: Vec::new(),
                    },
                );
                id
            }
        }
    };
    let subject =
        subject.unwrap_or_else(
            || match s.threads.get(&target).and_then(|t| t.messages.first()) {
                Some(first) if thread_id > 0 => {
                    format!("Re: {}", first.subject.trim_start_matches("Re: "))
                }
                _ => "No Subject".into(),
            },
        );
    let stored = store_message(s, target, uid, &subject, &message);
    s.last_created = Some((target, stored));
    if let Some(t) = s.threads.get_mut(&target) {
        for r in t.rows.iter_mut().filter(|r| r.user != uid) {
            r.unread += 1;
        }
    }
    let Some(t) = s.threads.get(&target) else {
        return failed();
    };
    let mut answer = Answer::ok(thread_json(s, t, uid, true, None, None));
    for name in [
        "bp_messages_send_to",
        "bp_messages_subject",
        "bp_messages_content",
    ] {
        answer.headers.push((
            "set-cookie",
            format!("{name}=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/"),
        ));
    }
    answer
}

fn thread_action(s: &mut State, id: u64, body: &[u8], caller: &Caller) -> Answer {
    let params: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let Some(action) = params
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        let mut a = Answer::error(
            400,
            "rest_missing_callback_param",
            "Missing parameter(s): action",
        );
        a.body["data"]["params"] = json!(["action"]);
        return a;
    };
    if !matches!(
        action.as_str(),
        "delete_messages" | "hide_thread" | "unread"
    ) {
        let mut a = Answer::error(400, "rest_invalid_param", "Invalid parameter(s): action");
        a.body["data"]["params"] =
            json!({ "action": "action is not one of delete_messages, hide_thread, and unread." });
        return a;
    }
    let Caller::User(uid, _) = *caller else {
        return Answer::error(401, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    let Some(t) = s.threads.get_mut(&id).filter(|t| is_participant(t, uid)) else {
        return Answer::error(403, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    if action == "unread" {
        let value = match params.get("value") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(v)) => matches!(v.as_str(), "true" | "1"),
            Some(Value::Number(n)) => n.as_u64() != Some(0),
            _ => false,
        };
        if let Some(r) = t.rows.iter_mut().find(|r| r.user == uid) {
            if value {
                r.unread = r.unread.max(1);
            } else {
                r.unread = 0;
            }
        }
    }
    let Some(t) = s.threads.get(&id) else {
        return Answer::error(403, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    Answer::ok(thread_json(s, t, uid, false, None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kses_rewrites_as_the_real_site_did() {
        // The real site's kses check (/work/bbsite, issue 15): sent, stored.
        assert_eq!(kses("if a < b and c > d"), "if a <b> d</b>");
        assert_eq!(kses("a<b"), "a&lt;b");
        assert_eq!(kses("x > y"), "x &gt; y");
        assert_eq!(
            kses("<b>bold</b> & <script>alert(1)</script>"),
            "<b>bold</b> &amp; alert(1)"
        );
        assert_eq!(kses("Tom & Jerry"), "Tom &amp; Jerry");
        assert_eq!(kses("  padded  "), "  padded  ");
        assert_eq!(kses("line1\nline2"), "line1\nline2");
        assert_eq!(kses("emoji \u{1f600} \u{fc}"), "emoji &#x1f600; \u{fc}");
        // And a few more of the same rules.
        assert_eq!(kses("3 < 5 <b>x</b>"), "3 &lt; 5 <b>x</b>");
        assert_eq!(
            kses("x<br/>y <!-- note --> <B class=\"x\">z</B >"),
            "x<br />y  <b>z</b>"
        );
        assert_eq!(kses("fish & chips &copy;"), "fish &amp; chips &copy;");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Fbuddyboss%2Fv1"), "/buddyboss/v1");
        assert_eq!(percent_decode("a+b%zz%4"), "a b%zz%4");
    }
}
