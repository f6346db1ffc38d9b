//! The test's side of the fake site: starting it, seeding users, credentials and
//! threads, injecting faults, and reading what it received.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::json;

use crate::time::now_unix;

use super::auth::{hmac_sha256, seal_site_credential, sign_ticket, site_key};
use super::routes::handle;
use super::state::{Row, Shared, State, Thread, User, store_message};
use super::{FakeMessage, FakeSite, Fault, LoggedRequest, PLUGIN_NAMESPACE};

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

    /// Starts [`FakeSite::max_in_flight`] again from the requests in flight now.
    pub fn reset_max_in_flight(&self) {
        let now = self.shared.in_flight.load(Ordering::SeqCst);
        self.shared.max_in_flight.store(now, Ordering::SeqCst);
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
