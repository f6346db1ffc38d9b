//! `HttpBuddyBoss`: the client of a real BuddyBoss site's REST API.

mod cache;
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

/// Where the REST API lives.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiRoot {
    /// Pretty permalinks: `https://site/wp-json/` (ends with `/`); routes are appended.
    Path(String),
    /// Plain permalinks: `https://site/?rest_route=` (ends with `rest_route=`); the route
    /// goes into the query string.
    Query(String),
}

impl ApiRoot {
    /// The API root of a site with pretty permalinks: `https://site` → `https://site/wp-json/`.
    pub fn for_site(site: &str) -> Self {
        Self::Path(format!("{}/wp-json/", site.trim_end_matches('/')))
    }

    /// The full URL of `route` (`wp/v2/users/me`, no leading slash).
    fn url(&self, route: &str) -> String {
        match self {
            Self::Path(root) => format!("{root}{route}"),
            Self::Query(root) => format!("{root}/{route}"),
        }
    }
}

impl fmt::Debug for ApiRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(root) | Self::Query(root) => f.write_str(root),
        }
    }
}

impl FromStr for ApiRoot {
    type Err = BuddyBossError;

    /// `https://site/wp-json/` (a trailing `/` is added if missing) or
    /// `https://site/?rest_route=` (recognised by its `rest_route=`).
    fn from_str(s: &str) -> Result<Self, BuddyBossError> {
        let invalid = |why: &str| BuddyBossError::Invalid {
            code: "invalid_config".into(),
            message: why.into(),
        };
        let url = reqwest::Url::parse(s)
            .map_err(|e| invalid(&format!("the API root is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the API root must be an http or https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("the API root must not carry credentials"));
        }
        if let Some(i) = s.find("rest_route=") {
            let root = &s[..i + "rest_route=".len()];
            if s.len() > root.len() {
                return Err(invalid("nothing may follow `rest_route=` in the API root"));
            }
            return Ok(Self::Query(root.to_owned()));
        }
        if url.query().is_some() {
            return Err(invalid(
                "the API root has a query string but no `rest_route=`",
            ));
        }
        let mut root = s.to_owned();
        if !root.ends_with('/') {
            root.push('/');
        }
        Ok(Self::Path(root))
    }
}

/// How [`HttpBuddyBoss`] talks to the site. [`Config::new`] gives the defaults below.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where the REST API lives.
    pub api_root: ApiRoot,
    /// Time to establish a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Time for a whole request, body included. Default 10 s.
    pub request_timeout: Duration,
    /// Most requests in flight at once; more wait for a slot. Default 64.
    pub max_concurrent_requests: usize,
    /// Idle pooled connections kept to the site. Default 32.
    pub pool_max_idle: usize,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Extra attempts for a read (`GET`) when the site is unavailable. Writes are never
    /// retried. Default 2.
    pub read_retries: u32,
    /// Wait before the first read retry, doubled for each next one. Default 200 ms.
    pub retry_backoff: Duration,
    /// How long a verified credential is trusted. Default 60 s.
    pub verify_ttl: Duration,
    /// How long a rejected (401) credential stays rejected. Default 10 s.
    pub verify_negative_ttl: Duration,
    /// Most credentials in the verify cache. Default 10 000.
    pub verify_cache_capacity: usize,
    /// How far back, from the start of a send whose outcome is unknown, a message counts
    /// as that send when reconciling. It also absorbs clock skew between bbrt and the site
    /// (the site stamps `date_sent`). Default 60 s.
    pub reconcile_window: Duration,
    /// Wait before reading the thread to reconcile an unknown send, so a request the site
    /// is still processing can land. Default 1 s.
    pub reconcile_delay: Duration,
    /// After a send ended unconfirmed, how long a retry that does not find it in the
    /// thread answers `send_unconfirmed` again instead of posting (counted from when the
    /// unconfirmed outcome was recorded): a site still working on the first request (a
    /// slow write, a paused PHP) gets this long to store it. Default 30 s.
    pub reconcile_settle: Duration,
    /// With the companion plugin: how many times one send is posted with its key, while
    /// the answer is unknown (a timeout, a 5xx) or the key is in progress (409
    /// `bbrt_send_in_progress`). Each retry carries the same key, so the site answers the
    /// stored message instead of storing another. Default 3.
    pub keyed_send_attempts: u32,
    /// The longest `Retry-After` honoured between keyed attempts (the plugin asks for
    /// 1 s). Default 2 s.
    pub max_retry_after: Duration,
    /// Largest response body accepted. Default 4 MiB.
    pub max_response_bytes: usize,
    /// The `User-Agent` header. Default `bbrt/<version>`.
    pub user_agent: String,
}

impl Config {
    /// The defaults for the API at `api_root`.
    pub fn new(api_root: ApiRoot) -> Self {
        Self {
            api_root,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 64,
            pool_max_idle: 32,
            pool_idle_timeout: Duration::from_secs(90),
            read_retries: 2,
            retry_backoff: Duration::from_millis(200),
            verify_ttl: Duration::from_secs(60),
            verify_negative_ttl: Duration::from_secs(10),
            verify_cache_capacity: 10_000,
            reconcile_window: Duration::from_secs(60),
            reconcile_delay: Duration::from_secs(1),
            reconcile_settle: Duration::from_secs(30),
            keyed_send_attempts: 3,
            max_retry_after: Duration::from_secs(2),
            max_response_bytes: 4 << 20,
            user_agent: concat!("bbrt/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A real BuddyBoss site over its REST API (reqwest, rustls with the *ring* provider).
///
/// Routes: `GET wp/v2/users/me` (verify), `GET buddyboss/v1/messages/{id}`
/// (participants, reconciliation), `GET buddyboss/v1/messages?box=sentbox`
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

const PLUGIN_UNKNOWN: u8 = 0;
const PLUGIN_ABSENT: u8 = 1;
const PLUGIN_PRESENT: u8 = 2;

/// The companion plugin's send route, as bbrt posts to it and as the API index names it.
const PLUGIN_SEND_ROUTE: &str = "bbrt/v1/messages";
const PLUGIN_SEND_ROUTE_KEY: &str = "/bbrt/v1/messages";

/// Whether an API root index lists the companion plugin's send route (a key of
/// `routes`; the `bbrt/v1` namespace alone may hold only the plugin's other routes, with
/// its sends feature off); `None` when the body is not an index.
fn lists_plugin(index: &[u8]) -> Option<bool> {
    let index: serde_json::Value = serde_json::from_slice(index).ok()?;
    index.get("namespaces")?.as_array()?;
    Some(
        index
            .get("routes")
            .and_then(serde_json::Value::as_object)
            .is_some_and(|routes| routes.contains_key(PLUGIN_SEND_ROUTE_KEY)),
    )
}

/// A send key for a send whose client gave none: 128 random bits, so unique across
/// nodes and restarts without coordination. Made here, never in the Hub (sans-IO).
fn generated_key() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bbrt-{hex}")
}

/// What came of a send posted to the plugin's route.
enum Keyed {
    /// The send is decided (stored, refused, or unknown after every attempt).
    Done(Result<StoredMessage, BuddyBossError>),
    /// 404 `rest_no_route` before anything was posted that might have been stored: the
    /// plugin is gone.
    NoRoute,
}

impl fmt::Debug for HttpBuddyBoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBuddyBoss")
            .field("api_root", &self.config.api_root)
            .finish_non_exhaustive()
    }
}

/// What came of one HTTP exchange.
enum Exchange {
    /// The site answered.
    Answered {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    },
    /// No answer. `maybe_processed` is false only when the request surely never reached
    /// the site (the connection was never made).
    Failed {
        error: BuddyBossError,
        maybe_processed: bool,
    },
}

/// What came of a POST.
enum PostOutcome {
    /// The site surely did, or surely did not, process it.
    Known(Result<Vec<u8>, BuddyBossError>),
    /// The site may or may not have processed it.
    Unknown(BuddyBossError),
}

fn numeric(what: &str, id: &str) -> Result<u64, BuddyBossError> {
    // Canonical decimal only ("042" would come back from the site as "42").
    if id.is_empty()
        || id.len() > 20
        || id.starts_with('0')
        || !id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(BuddyBossError::invalid_id(what, id));
    }
    match id.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BuddyBossError::invalid_id(what, id)),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, BuddyBossError> {
    serde_json::from_slice(body).map_err(|e| BuddyBossError::Protocol {
        code: "bad_response".into(),
        message: format!("the site's answer is not a {what}: {e}"),
    })
}

/// A non-2xx answer as an error: by the body's `code` if it is WordPress's error JSON,
/// else by status alone.
fn error_from_answer(status: u16, body: &[u8]) -> BuddyBossError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => BuddyBossError::from_site(status, &e.code, &e.message),
        Err(_) => BuddyBossError::new(
            kind_for_status(status),
            format!("http_{status}"),
            format!("the site answered HTTP {status}"),
        ),
    }
}

fn user_id(id: u64) -> UserId {
    UserId::new(&id.to_string()).expect("a decimal number is a valid id")
}

/// What went wrong, without the URL, with the causes reqwest wraps.
fn describe(e: &reqwest::Error) -> String {
    let mut message = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "could not read the answer"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
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

    /// The longest one read (`GET`) may take: every attempt times out, with the backoff
    /// between attempts.
    fn read_deadline(&self) -> Duration {
        let c = &self.config;
        let mut total = c.request_timeout;
        for attempt in 0..c.read_retries {
            total += c.request_timeout + c.retry_backoff.saturating_mul(1 << attempt.min(16));
        }
        total
    }

    /// The longest reconciliation may take: the delay, then the reads it makes (a reply
    /// reads its thread; a new thread lists the sentbox and reads up to 3 threads).
    fn reconcile_deadline(&self, new_thread: bool) -> Duration {
        let reads = if new_thread { 4 } else { 1 };
        self.config.reconcile_delay + self.read_deadline() * reads
    }

    /// Drops what the verify cache knows about `credential` (call it when the credential
    /// is known to be revoked). A 401 on any route does this by itself.
    pub fn forget(&self, credential: &Credential) {
        self.cache.remove(&credential.cache_key());
    }

    async fn exchange(
        &self,
        method: Method,
        route: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        credential: &Credential,
    ) -> Exchange {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        let mut request = self
            .client
            .request(method.clone(), self.config.api_root.url(route));
        if !query.is_empty() {
            request = request.query(query);
        }
        for (name, value) in credential.headers() {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let (code, maybe_processed) = if e.is_connect() {
                    ("connect", false)
                } else if e.is_timeout() {
                    ("timeout", true)
                } else {
                    ("transport", true)
                };
                tracing::debug!(%method, route, code, "site request failed");
                return Exchange::Failed {
                    error: BuddyBossError::Unavailable {
                        code: code.into(),
                        message: describe(&e),
                    },
                    maybe_processed,
                };
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.config.max_response_bytes {
                        return Exchange::Failed {
                            error: BuddyBossError::Protocol {
                                code: "response_too_large".into(),
                                message: format!(
                                    "the answer is larger than {} bytes",
                                    self.config.max_response_bytes
                                ),
                            },
                            maybe_processed: true,
                        };
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let code = if e.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    };
                    tracing::debug!(%method, route, status, code, "site answer cut short");
                    return Exchange::Failed {
                        error: BuddyBossError::Unavailable {
                            code: code.into(),
                            message: describe(&e),
                        },
                        maybe_processed: true,
                    };
                }
            }
        }
        tracing::debug!(%method, route, status, elapsed_ms = started.elapsed().as_millis() as u64, "site answered");
        Exchange::Answered {
            status,
            headers,
            body,
        }
    }

    /// A GET, retried with backoff while the site is unavailable.
    async fn get<T: DeserializeOwned>(
        &self,
        route: &str,
        query: &[(&str, &str)],
        credential: &Credential,
        what: &str,
    ) -> Result<T, BuddyBossError> {
        let mut attempt = 0;
        loop {
            let result = match self
                .exchange(Method::GET, route, query, None, credential)
                .await
            {
                Exchange::Answered { status, body, .. } if (200..300).contains(&status) => {
                    parse(&body, what)
                }
                Exchange::Answered { status, body, .. } => Err(error_from_answer(status, &body)),
                Exchange::Failed { error, .. } => Err(error),
            };
            match result {
                Err(e)
                    if e.kind() == SiteErrorKind::Unavailable
                        && attempt < self.config.read_retries =>
                {
                    let backoff = self
                        .config
                        .retry_backoff
                        .saturating_mul(1 << attempt.min(16));
                    attempt += 1;
                    tracing::debug!(route, attempt, code = e.code(), "retrying a read");
                    tokio::time::sleep(backoff).await;
                }
                other => return self.noticed(other, credential),
            }
        }
    }

    /// A POST, never retried.
    async fn post(
        &self,
        route: &str,
        body: &serde_json::Value,
        credential: &Credential,
    ) -> PostOutcome {
        match self
            .exchange(Method::POST, route, &[], Some(body), credential)
            .await
        {
            Exchange::Answered { status, body, .. } if (200..300).contains(&status) => {
                PostOutcome::Known(Ok(body))
            }
            Exchange::Answered { status, body, .. } => {
                let error = error_from_answer(status, &body);
                // A gateway error or an undocumented 5xx may come after the site stored it.
                if status >= 500 && error.kind() == SiteErrorKind::Unavailable {
                    PostOutcome::Unknown(error)
                } else {
                    PostOutcome::Known(self.noticed(Err(error), credential))
                }
            }
            Exchange::Failed {
                error,
                maybe_processed: true,
            } => PostOutcome::Unknown(error),
            Exchange::Failed {
                error,
                maybe_processed: false,
            } => PostOutcome::Known(Err(error)),
        }
    }

    /// Whether the site has the companion plugin: as last seen, else read from the API
    /// root now (a site that cannot be read counts as without it, for this send).
    async fn has_plugin(&self) -> bool {
        match self.plugin.load(Ordering::Relaxed) {
            PLUGIN_PRESENT => return true,
            PLUGIN_ABSENT => return false,
            _ => {}
        }
        let Ok(response) = self.client.get(self.config.api_root.url("")).send().await else {
            return false;
        };
        if !response.status().is_success() {
            return false;
        }
        match response.bytes().await.ok().and_then(|b| lists_plugin(&b)) {
            Some(present) => {
                self.note_plugin(present);
                present
            }
            None => false,
        }
    }

    fn note_plugin(&self, present: bool) {
        let now = if present {
            PLUGIN_PRESENT
        } else {
            PLUGIN_ABSENT
        };
        let before = self.plugin.swap(now, Ordering::Relaxed);
        if before != now {
            if present {
                tracing::info!(
                    "the site has bbrt's plugin: sends go to bbrt/v1/messages with a key"
                );
            } else if before == PLUGIN_PRESENT {
                tracing::warn!(
                    "bbrt's plugin is no longer on the site: sends go to BuddyBoss's route"
                );
            }
        }
    }

    /// The longest a keyed send may take: every attempt times out, with the longest wait
    /// between attempts.
    fn keyed_deadline(&self) -> Duration {
        let c = &self.config;
        let attempts = c.keyed_send_attempts.max(1);
        let wait = c
            .max_retry_after
            .max(c.retry_backoff.saturating_mul(1 << attempts.min(16)));
        c.request_timeout * attempts + wait * (attempts - 1)
    }

    /// Posts a send to the plugin's route with `key`, again with the same key while the
    /// outcome is unknown or the key in progress.
    async fn send_keyed(
        &self,
        credential: &Credential,
        sender_id: u64,
        mut body: serde_json::Value,
        key: &str,
    ) -> Keyed {
        body["client_message_id"] = json!(key);
        let attempts = self.config.keyed_send_attempts.max(1);
        // Why the outcome is unknown, once an attempt may have stored the message.
        let mut unknown: Option<BuddyBossError> = None;
        let mut last: BuddyBossError;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut wait = self
                .config
                .retry_backoff
                .saturating_mul(1 << (attempt - 1).min(16));
            match self
                .exchange(
                    Method::POST,
                    PLUGIN_SEND_ROUTE,
                    &[],
                    Some(&body),
                    credential,
                )
                .await
            {
                Exchange::Answered {
                    status,
                    headers,
                    body: answer,
                } if (200..300).contains(&status) => {
                    return Keyed::Done(keyed_answer(&headers, &answer, sender_id));
                }
                Exchange::Answered {
                    status,
                    headers,
                    body: answer,
                } => {
                    let error = error_from_answer(status, &answer);
                    match (status, error.code()) {
                        (404, "rest_no_route") if unknown.is_none() => return Keyed::NoRoute,
                        (409, "bbrt_send_in_progress") => {
                            // Another request (an earlier attempt, another node) is
                            // storing this key: stored or not is not known yet.
                            if let Some(after) = headers
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<u64>().ok())
                            {
                                wait = Duration::from_secs(after).min(self.config.max_retry_after);
                            }
                            unknown = Some(BuddyBossError::Unavailable {
                                code: error.code().into(),
                                message: error.message().into(),
                            });
                            last = error;
                        }
                        // Nothing stored by this attempt; retryable.
                        (503, "bbrt_store_unavailable") => {
                            last = BuddyBossError::Unavailable {
                                code: error.code().into(),
                                message: error.message().into(),
                            };
                        }
                        _ if status >= 500 && error.kind() == SiteErrorKind::Unavailable => {
                            unknown = Some(error.clone());
                            last = error;
                        }
                        _ => return Keyed::Done(self.noticed(Err(error), credential)),
                    }
                }
                Exchange::Failed {
                    error,
                    maybe_processed,
                } => {
                    if maybe_processed {
                        unknown = Some(error.clone());
                    }
                    last = error;
                }
            }
            if attempt >= attempts {
                break;
            }
            tracing::debug!(
                attempt,
                code = last.code(),
                "posting the send again with its key"
            );
            tokio::time::sleep(wait).await;
        }
        Keyed::Done(Err(match unknown {
            // Never "not stored" while an attempt may have stored it: a retry with the same
            // key gets the stored message.
            Some(cause) => unconfirmed(format!(
                "the site did not confirm the message ({}); a retry with the same key answers it if it was stored",
                cause.code()
            )),
            None => last,
        }))
    }

    /// Builds the body of a send (BuddyBoss's parameters, never `sender_id`).
    fn send_body(
        thread: Option<&ThreadId>,
        recipients: &[UserId],
        text: &str,
    ) -> Result<serde_json::Value, BuddyBossError> {
        Ok(match thread {
            Some(t) => json!({ "id": numeric("thread", t.as_str())?, "message": text }),
            None => {
                let ids = recipients
                    .iter()
                    .map(|r| numeric("recipient", r.as_str()))
                    .collect::<Result<Vec<_>, _>>()?;
                json!({ "recipients": ids, "message": text })
            }
        })
    }

    /// A 401 anywhere means the cached verify result is stale.
    fn noticed<T>(
        &self,
        result: Result<T, BuddyBossError>,
        credential: &Credential,
    ) -> Result<T, BuddyBossError> {
        if let Err(BuddyBossError::Unauthenticated { .. }) = &result {
            self.cache.remove(&credential.cache_key());
        }
        result
    }

    async fn thread(
        &self,
        credential: &Credential,
        thread: u64,
    ) -> Result<ThreadJson, BuddyBossError> {
        self.get(
            &format!("buddyboss/v1/messages/{thread}"),
            &[],
            credential,
            "thread",
        )
        .await
    }

    /// Reads the thread after a send whose outcome is unknown.
    async fn reconcile(
        &self,
        request: &SendRequest<'_>,
        started_unix: i64,
        cause: BuddyBossError,
    ) -> Result<StoredMessage, BuddyBossError> {
        tracing::info!(
            code = cause.code(),
            "send outcome unknown, reading the thread to reconcile"
        );
        if !self.config.reconcile_delay.is_zero() {
            tokio::time::sleep(self.config.reconcile_delay).await;
        }
        let window = i64::try_from(self.config.reconcile_window.as_secs()).unwrap_or(i64::MAX);
        let since = started_unix.saturating_sub(window);
        match self.find_recent(request, since).await {
            Ok(Some(stored)) => {
                tracing::info!(message = %stored.id, thread = %stored.thread, "send reconciled: the site stored it");
                Ok(stored)
            }
            // Not there yet is not "not stored": the site may still be working on it.
            Ok(None) => Err(unconfirmed(format!(
                "the site did not confirm the message ({}) and it is not in the thread yet",
                cause.code()
            ))),
            Err(e) if e.retryable() => Err(unconfirmed(format!(
                "the site did not confirm the message ({}) and the thread could not be read ({})",
                cause.code(),
                e.code()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Sends through BuddyBoss's own route (`POST buddyboss/v1/messages`), never the
    /// companion plugin's: what [`BuddyBoss::send`] does on a site without the plugin.
    /// After an unconfirmed attempt (`unconfirmed_since`) it looks for that attempt's
    /// message first, and posts again only once the site had
    /// [`Config::reconcile_settle`] to store it.
    pub async fn send_unkeyed(
        &self,
        request: &SendRequest<'_>,
    ) -> Result<StoredMessage, BuddyBossError> {
        let Some(unconfirmed_since) = request.unconfirmed_since else {
            return self.post_unkeyed(request).await;
        };
        let window = i64::try_from(self.config.reconcile_window.as_secs()).unwrap_or(i64::MAX);
        let since = unconfirmed_since.saturating_sub(window);
        match self.find_recent(request, since).await {
            Ok(Some(stored)) => {
                tracing::info!(message = %stored.id, thread = %stored.thread, "retry reconciled: the site stored the earlier attempt");
                return Ok(stored);
            }
            Ok(None) => {}
            Err(e) if e.retryable() => {
                return Err(unconfirmed(format!(
                    "an earlier attempt is unconfirmed and the thread could not be read ({})",
                    e.code()
                )));
            }
            Err(e) => return Err(e),
        }
        let settle = i64::try_from(self.config.reconcile_settle.as_secs()).unwrap_or(i64::MAX);
        if now_unix() < unconfirmed_since.saturating_add(settle) {
            return Err(unconfirmed(
                "an earlier attempt is unconfirmed and not in the thread yet; the site may still be storing it".into(),
            ));
        }
        tracing::info!(
            "an earlier attempt is not in the thread after the settle time; posting again"
        );
        self.post_unkeyed(request).await
    }

    /// Posts to BuddyBoss's route once, reconciling an unknown outcome.
    async fn post_unkeyed(
        &self,
        request: &SendRequest<'_>,
    ) -> Result<StoredMessage, BuddyBossError> {
        let text = request.text;
        let sender_id = numeric("sender", request.sender.as_str())?;
        let body = Self::send_body(request.thread, request.recipients, text)?;
        let credential = request
            .credential
            .ok_or_else(BuddyBossError::missing_credential)?;
        let started = now_unix();
        let cause = match self.post("buddyboss/v1/messages", &body, credential).await {
            PostOutcome::Known(Err(e)) => return Err(e),
            PostOutcome::Known(Ok(body)) => {
                let answer = parse::<ThreadJson>(&body, "thread");
                match answer {
                    Ok(t) => {
                        if let Some(found) = find_in_thread(&t, sender_id, text, None) {
                            return Ok(found);
                        }
                        // The site changed the text (a content filter): BuddyBoss names the
                        // newest message and its sender, which is this send when the sender
                        // matches (sends are serialized per user and thread).
                        let newest = t
                            .message_id
                            .and_then(|id| t.messages.iter().find(|m| m.id == id));
                        if let Some(m) = newest.filter(|m| m.sender_id.0 == sender_id) {
                            tracing::warn!(
                                message = m.id.0,
                                "stored text differs from the sent text; using the thread's newest message"
                            );
                            return Ok(stored(&t, m));
                        }
                        BuddyBossError::Protocol {
                            code: "bad_response".into(),
                            message: "the site's answer does not hold the sent message".into(),
                        }
                    }
                    Err(e) => e,
                }
            }
            PostOutcome::Unknown(e) => e,
        };
        self.reconcile(request, started, cause).await
    }

    /// The newest message like `request`'s (same sender, same text as the site stores
    /// it) stored at or after `since_unix_secs`, in its thread (or, without one, in a
    /// recent thread of the sender with exactly its recipients); for reconciling a send
    /// whose outcome is unknown.
    pub async fn find_recent(
        &self,
        request: &SendRequest<'_>,
        since_unix_secs: i64,
    ) -> Result<Option<StoredMessage>, BuddyBossError> {
        let (credential, text) = (request.credential, request.text);
        let sender_id = numeric("sender", request.sender.as_str())?;
        if let Some(thread) = request.thread {
            let id = numeric("thread", thread.as_str())?;
            let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
            let t = self.thread(credential, id).await?;
            return Ok(find_in_thread(&t, sender_id, text, Some(since_unix_secs)));
        }
        let mut wanted = request
            .recipients
            .iter()
            .map(|r| numeric("recipient", r.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
        wanted.push(sender_id);
        wanted.sort_unstable();
        wanted.dedup();
        let list: Vec<ThreadJson> = self
            .get(
                "buddyboss/v1/messages",
                &[("box", "sentbox"), ("per_page", "10")],
                credential,
                "thread list",
            )
            .await?;
        let candidates = list
            .iter()
            .filter(|t| {
                t.date
                    .as_deref()
                    .and_then(parse_utc)
                    .is_none_or(|at| at >= since_unix_secs)
            })
            .filter(|t| {
                t.participants().is_none_or(|mut p| {
                    p.sort_unstable();
                    p.dedup();
                    p == wanted
                })
            })
            .take(3);
        for candidate in candidates {
            let t = self.thread(credential, candidate.id.0).await?;
            if let Some(found) = find_in_thread(&t, sender_id, text, Some(since_unix_secs)) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// The plugin's 200: the stored message is `X-BBRT-Message-Id`'s, in `messages[]`.
fn keyed_answer(
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    sender_id: u64,
) -> Result<StoredMessage, BuddyBossError> {
    let id = headers
        .get("x-bbrt-message-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let replayed = headers
        .get("x-bbrt-replayed")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "true");
    let thread = parse::<ThreadJson>(body, "thread");
    let found = match (&thread, id) {
        (Ok(t), Some(id)) => t
            .messages
            .iter()
            .find(|m| m.id.0 == id && m.sender_id.0 == sender_id)
            .map(|m| stored(t, m)),
        _ => None,
    };
    match found {
        Some(message) => {
            tracing::debug!(message = %message.id, replayed, "the site stored the send under its key");
            Ok(message)
        }
        // Stored (a 200), but not shown as bbrt needs: a retry with the key answers it.
        None => Err(unconfirmed(
            "the site stored the message but its answer does not show it".into(),
        )),
    }
}

fn unconfirmed(message: String) -> BuddyBossError {
    BuddyBossError::Unconfirmed {
        code: "send_unconfirmed".into(),
        message,
    }
}

/// The newest message in `thread` from `sender` whose text matches, at or after `since`.
fn find_in_thread(
    thread: &ThreadJson,
    sender: u64,
    text: &str,
    since: Option<i64>,
) -> Option<StoredMessage> {
    let wanted = text::normalize(text);
    thread
        .messages
        .iter()
        .filter(|m| m.sender_id.0 == sender)
        .filter(|m| {
            m.message
                .raw()
                .is_some_and(|raw| text::normalize(raw) == wanted)
        })
        .filter(|m| match since {
            Some(since) => m
                .date_sent
                .as_deref()
                .and_then(parse_utc)
                .is_some_and(|at| at >= since),
            None => true,
        })
        .max_by_key(|m| m.id)
        .map(|m| stored(thread, m))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_roots_build_urls_for_both_forms() {
        let path: ApiRoot = "https://site.example/wp-json".parse().expect("valid root");
        assert_eq!(
            path.url("wp/v2/users/me"),
            "https://site.example/wp-json/wp/v2/users/me"
        );
        let query: ApiRoot = "https://site.example/?rest_route="
            .parse()
            .expect("valid root");
        assert_eq!(
            query.url("buddyboss/v1/messages/3"),
            "https://site.example/?rest_route=/buddyboss/v1/messages/3"
        );
        assert_eq!(ApiRoot::for_site("https://site.example/"), path);
        assert!("ftp://x/".parse::<ApiRoot>().is_err());
        assert!("https://u:p@x/wp-json/".parse::<ApiRoot>().is_err());
        assert!("https://x/?rest_route=/wp".parse::<ApiRoot>().is_err());
        assert!("not a url".parse::<ApiRoot>().is_err());
    }

    #[test]
    fn numeric_ids_only() {
        assert_eq!(numeric("thread", "42"), Ok(42));
        for bad in [
            "THREAD_ID",
            "",
            "0",
            "042",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            assert_eq!(
                numeric("thread", bad).map_err(|e| e.code().to_owned()),
                Err("invalid_id".to_owned()),
                "{bad}"
            );
        }
    }
}
