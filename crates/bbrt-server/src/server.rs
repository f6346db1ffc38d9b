//! The listener: accept loop (surviving EMFILE), connection caps, request routing, the
//! upgrade, and graceful shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bbrt_buddyboss::{ApiRoot, AuthScheme, BuddyBoss, HttpBuddyBoss, MemoryBuddyBoss};
use bbrt_protocol::Hub;
use bbrt_protocol::ids::ConnId;
use bbrt_protocol::wire::Limits;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::broker::{
    Broker, Coordinator, MemoryBroker, MemoryCoordinator, RedisOptions, SendDigester,
};
use crate::config::{AuthSchemeArg, Config};
use crate::connection::Connection;
use crate::credentials::CredentialStore;
use crate::executor::Executor;
use crate::http::{self, HeadError};
use crate::hub_task::{Channels, ConnEvent, Control, HubTask};
use crate::metrics::{Metrics, Refusal};
use crate::node::Identity;
use crate::outbox::Outbox;
use crate::site_events::{MemorySiteEventLedger, SiteEventLedger, SiteEvents};
use crate::site_health::{SiteHealth, probe_loop};
use crate::ticket::{MemoryTicketLedger, TicketLedger};

/// The browser example page (served with `--serve-examples`).
const EXAMPLE_PAGE: &str = include_str!("../../../examples/browser/index.html");

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The site client could not be built from the configuration.
    #[error("invalid site configuration: {0}")]
    Site(#[from] bbrt_buddyboss::BuddyBossError),
    /// The development site refuses to listen on a public address.
    #[error(
        "refusing to serve the embedded development site on {0}: it trusts any user id; bind a loopback address, configure --buddyboss-url, or pass --allow-public-dev"
    )]
    PublicDevSite(SocketAddr),
    /// `--cluster` needs a shared broker.
    #[error("--cluster needs a shared broker: pass --redis redis://...")]
    ClusterUnsupported,
    /// `--redis` with the embedded development site: every node would have its own.
    #[error(
        "refusing --redis with the embedded development site: every node would have a development site of its own, so thread membership and presence would differ from node to node; configure --buddyboss-url (one site behind every node), or pass --allow-dev-site-with-redis for benchmarks and tests"
    )]
    DevSiteWithRedis,
    /// The Redis options are invalid.
    #[error(transparent)]
    Redis(#[from] crate::broker::redis::RedisSetupError),
    /// The ticket settings are invalid (the message never quotes a key).
    #[error("invalid ticket configuration: {0}")]
    Tickets(String),
    /// The ICE server settings are invalid (the message never quotes the TURN secret).
    #[error("invalid ICE server configuration: {0}")]
    Ice(String),
    /// The site-event settings are invalid (the message never quotes a key).
    #[error("invalid site-event configuration: {0}")]
    SiteEvents(String),
    /// The Hub panicked: the process must stop rather than run half alive.
    #[error("the hub task failed: {0}")]
    HubFailed(String),
}

/// Per-IP and total counts of open WebSocket connections.
#[derive(Debug, Default)]
struct Counts {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
}

/// A counted connection; uncounts itself when dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .counts
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.shared.counts.total.fetch_sub(1, Ordering::Relaxed);
        self.shared
            .metrics
            .open_sockets
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: mpsc::Sender<ConnEvent>,
    pub(crate) control: mpsc::Sender<Control>,
    /// How a token from a frame or `?token=` is presented to the site.
    pub(crate) frame_scheme: AuthScheme,
    /// `POST /site/events` (`None`: no event key ring, the route answers 404).
    pub(crate) site_events: Option<SiteEvents>,
    next_conn: AtomicU64,
    counts: Counts,
    shutting_down: AtomicBool,
}

impl Shared {
    fn try_slot(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let cfg = &self.config;
        if self.counts.total.fetch_add(1, Ordering::Relaxed) >= cfg.max_connections {
            self.counts.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Total);
        }
        let mut map = self
            .counts
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_default();
        if *n >= cfg.max_connections_per_ip {
            drop(map);
            self.counts.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::PerIp);
        }
        *n += 1;
        drop(map);
        self.metrics.open_sockets.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            shared: Arc::clone(self),
            ip,
        })
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    done: JoinHandle<Result<(), ServerError>>,
    metrics: Arc<Metrics>,
    credentials: Arc<CredentialStore>,
}

impl ServerHandle {
    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Credentials currently held (for tests).
    pub fn credentials_held(&self) -> usize {
        self.credentials.len()
    }

    /// Starts a graceful shutdown (idempotent): `/readyz` and upgrades answer 503 at once,
    /// connections are still served for the drain delay, site requests in flight may
    /// finish within the grace period, then every socket is closed with 1001.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Serves until `stop` completes (then shuts down gracefully) or the server fails (a
    /// Hub panic), whichever comes first.
    ///
    /// # Errors
    /// When the Hub failed.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::select! {
            () = stop => {
                self.shutdown();
                self.wait().await
            }
            result = &mut self.done => match result {
                Ok(result) => result,
                Err(e) => Err(ServerError::HubFailed(e.to_string())),
            },
        }
    }

    /// Waits until the server has stopped.
    ///
    /// # Errors
    /// When the Hub failed.
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.done.await {
            Ok(result) => result,
            Err(e) => Err(ServerError::HubFailed(e.to_string())),
        }
    }
}

/// The site from the configuration: `HttpBuddyBoss` for `--buddyboss-url`, else the
/// embedded development site.
///
/// # Errors
/// When the URL is not a valid site or API root.
pub fn site_from_config(config: &Config) -> Result<Arc<dyn BuddyBoss>, ServerError> {
    let Some(url) = &config.buddyboss_url else {
        return Ok(Arc::new(MemoryBuddyBoss::new()));
    };
    let root: ApiRoot = if url.contains("rest_route=") || url.contains("/wp-json") {
        url.parse()?
    } else {
        ApiRoot::for_site(url)
    };
    let mut site = bbrt_buddyboss::Config::new(root);
    site.request_timeout = config.site_timeout;
    site.connect_timeout = config.site_timeout.min(site.connect_timeout);
    site.max_concurrent_requests = config.site_concurrency;
    // Keep every connection a burst opened: the next burst reuses them instead of paying
    // a TCP handshake per request on both sides (a site under load is where that hurts).
    site.pool_max_idle = config.site_concurrency;
    // Re-verification must reach the site, or a revoked credential would live on in the
    // client's cache until its own TTL.
    site.verify_ttl = site.verify_ttl.min(config.credential_ttl / 2);
    Ok(Arc::new(HttpBuddyBoss::new(site)?))
}

/// Binds and starts the server with the site from the configuration.
///
/// # Errors
/// When the listener cannot be bound or the configuration is invalid.
pub async fn start(config: Config) -> Result<ServerHandle, ServerError> {
    let site = site_from_config(&config)?;
    start_with_site(config, site).await
}

/// Binds and starts the server with a given site.
///
/// # Errors
/// When the listener cannot be bound or the configuration is invalid.
pub async fn start_with_site(
    config: Config,
    site: Arc<dyn BuddyBoss>,
) -> Result<ServerHandle, ServerError> {
    if config.cluster && config.redis.is_none() {
        return Err(ServerError::ClusterUnsupported);
    }
    let dev = config.buddyboss_url.is_none();
    if dev && !config.listen.ip().is_loopback() && !config.allow_public_dev {
        return Err(ServerError::PublicDevSite(config.listen));
    }
    if dev && config.redis.is_some() && !config.allow_dev_site_with_redis {
        return Err(ServerError::DevSiteWithRedis);
    }
    let listener =
        bind(config.listen, config.listen_backlog).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    if dev {
        tracing::warn!(
            "\n  ****************************************************************\n  \
             * bbrt is serving the EMBEDDED DEVELOPMENT SITE on {addr}.\n  \
             * Any user id is trusted and nothing is stored on disk.\n  \
             * This is NOT for production: configure --buddyboss-url.\n  \
             ****************************************************************"
        );
        if config.redis.is_some() {
            tracing::warn!(
                "--allow-dev-site-with-redis: every node has a development site of its own; \
                 a thread's members are whoever joined or wrote on that node, so messages, \
                 typing and presence reach only the members the sender's node knows; for \
                 benchmarks and tests only"
            );
        }
    }
    let identity = Identity::new(config.node_id.as_ref());
    tracing::info!(
        node = %identity.node,
        configured = identity.configured,
        instance = %identity.instance,
        host = %crate::node::host_name(),
        "node identity"
    );

    let metrics = Arc::new(Metrics::default());
    let frame_scheme = match config.auth_scheme {
        AuthSchemeArg::Bearer => AuthScheme::Bearer,
        AuthSchemeArg::Basic => AuthScheme::Basic,
        AuthSchemeArg::AccessToken => AuthScheme::AccessToken,
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (results_tx, results_rx) = mpsc::unbounded_channel();
    if let Some(url) = &config.buddyboss_url {
        tracing::info!(
            "using the BuddyBoss site {url} (auth scheme {})",
            frame_scheme.name()
        );
        let health = Arc::new(SiteHealth::new(url.clone(), frame_scheme.clone()));
        let _ = metrics.site_health.set(Arc::clone(&health));
        let probe = probe_loop(
            Arc::clone(&site),
            health,
            config.site_probe_interval,
            results_tx.clone(),
            shutdown_rx.clone(),
        );
        tokio::spawn(probe);
    }

    let credentials = Arc::new(CredentialStore::default());
    let (events_tx, events_rx) = mpsc::channel(8192);
    let (control_tx, control_rx) = mpsc::channel(64);
    let mut hub_config = config.hub_config(identity.node.clone(), identity.instance.clone());
    // The Hub holds no randomness: its retry jitter is seeded from here.
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("the operating system provides randomness");
    hub_config.jitter_seed = u64::from_le_bytes(seed);
    let digester = match &config.idempotency_secret {
        Some(secret) => SendDigester::from_secret(secret.expose().as_bytes()),
        None => {
            if config.redis.is_some() {
                tracing::warn!(
                    "no --idempotency-secret: a clientMessageId reused with other content is \
                     caught only by the node that first saw it; give every node the same secret"
                );
            }
            SendDigester::random()
        }
    };
    let tickets = config
        .ticket_verifier()
        .map_err(ServerError::Tickets)?
        .map(Arc::new);
    if let Some(t) = &tickets {
        tracing::info!(kids = ?t.kids(), "connection tickets accepted");
    }
    let ice = config.ice_minter().map_err(ServerError::Ice)?;
    if !ice.is_empty() {
        tracing::info!(ice = ?ice, "ICE servers handed to clients");
    }
    let site_event_verifier = config
        .site_event_verifier()
        .map_err(ServerError::SiteEvents)?;
    if let Some(v) = &site_event_verifier {
        tracing::info!(kids = ?v.kids(), path = crate::site_events::PATH, "site events accepted");
    }
    type Parts = (
        Arc<dyn Broker>,
        Arc<dyn Coordinator>,
        Arc<dyn TicketLedger>,
        Arc<dyn SiteEventLedger>,
    );
    let (broker, coordinator, ledger, event_ledger): Parts = match &config.redis {
        Some(url) => {
            let send = longest_send(&*site, config.api_timeout);
            let options = redis_options(url.expose(), &config, &identity, digester, send);
            let (broker, coordinator) = crate::broker::redis::connect(options)?;
            let _ = metrics.redis.set(broker.status());
            tracing::info!(prefix = %config.redis_prefix, node = %identity.node, "scale-out through redis");
            let coordinator = Arc::new(coordinator);
            (
                Arc::new(broker),
                coordinator.clone(),
                coordinator.clone(),
                coordinator,
            )
        }
        None => (
            Arc::new(MemoryBroker::default()),
            Arc::new(
                MemoryCoordinator::with_digester(hub_config.idempotency_ttl, digester)
                    .with_windows(
                        hub_config.window_messages,
                        hub_config.window_bytes,
                        hub_config.window_threads,
                    ),
            ),
            Arc::new(MemoryTicketLedger::default()),
            Arc::new(MemorySiteEventLedger::default()),
        ),
    };
    let site_events = site_event_verifier.map(|verifier| SiteEvents {
        verifier,
        ledger: event_ledger,
    });
    let broker_rx = broker.subscribe();
    let executor = Executor {
        site,
        coordinator,
        credentials: Arc::clone(&credentials),
        metrics: Arc::clone(&metrics),
        permits: Arc::new(Semaphore::new(config.site_concurrency.max(1))),
        timeout: config.api_timeout,
        results: results_tx,
        in_flight: Arc::new(AtomicUsize::new(0)),
        tickets,
        ledger,
    };
    let hub = HubTask {
        hub: Hub::new(hub_config),
        conns: HashMap::new(),
        ice,
        executor,
        broker,
        answered: Vec::new(),
        metrics: Arc::clone(&metrics),
        node_id_conflict_live_for: config.presence_snapshot * 2,
        node_id_conflict_shown: false,
        direct: Vec::new(),
    };
    let channels = Channels {
        events: events_rx,
        results: results_rx,
        control: control_rx,
        broker: broker_rx,
    };
    let hub_task = tokio::spawn(hub.run(channels).instrument(tracing::info_span!("hub")));

    let shared = Arc::new(Shared {
        limits: config.limits(),
        config,
        metrics: Arc::clone(&metrics),
        events: events_tx,
        control: control_tx,
        frame_scheme,
        site_events,
        next_conn: AtomicU64::new(0),
        counts: Counts::default(),
        shutting_down: AtomicBool::new(false),
    });
    tracing::info!(%addr, "listening");
    let done = tokio::spawn(serve(listener, shared, shutdown_rx, hub_task));
    Ok(ServerHandle {
        addr,
        shutdown: shutdown_tx,
        done,
        metrics,
        credentials,
    })
}

/// The longest a send may take at the site: the worst case (a new thread, retried after
/// an unconfirmed attempt) of the executor's deadline.
fn longest_send(site: &dyn BuddyBoss, floor: Duration) -> Duration {
    let id = |s| bbrt_protocol::ids::UserId::new(s).expect("a valid literal id");
    let worst = bbrt_protocol::api::ApiRequest::Send {
        credential: None,
        sender: id("1"),
        thread: None,
        recipients: vec![id("2")],
        text: String::new(),
        client_message_id: None,
        unconfirmed_since: Some(0),
    };
    site.deadline(&worst).map_or(floor, |d| d.max(floor))
}

/// The Redis link's options from the flags.
fn redis_options(
    url: &str,
    config: &Config,
    identity: &Identity,
    digester: SendDigester,
    send_deadline: Duration,
) -> RedisOptions {
    let mut o = RedisOptions::new(url, config.redis_prefix.clone(), identity.node.clone());
    o.instance = identity.instance.clone();
    o.digester = digester;
    o.heartbeat = config.redis_heartbeat;
    o.node_ttl = config.redis_heartbeat * 3;
    o.snapshot_every = config.presence_snapshot;
    // A claim in flight elsewhere is waited for as long as its holder may take.
    o.claim_wait = send_deadline;
    o.inflight_ttl = send_deadline * 2;
    o.window_messages = config.window_messages;
    o.window_bytes = config.window_bytes;
    o.window_ttl = config.window_ttl;
    o
}

/// Accepts until shutdown, then drives the graceful stop.
///
/// The listener stays open until the end: while the server drains, a probe of `/readyz`
/// gets 503 (and an upgrade 503) instead of a refused connection.
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    mut hub_task: JoinHandle<()>,
) -> Result<(), ServerError> {
    let accepting = accept(&listener, &shared);
    tokio::pin!(accepting);
    tokio::select! {
        biased;
        _ = shutdown.changed() => {}
        result = &mut hub_task => return Err(hub_failed(result)),
        () = &mut accepting => unreachable!("the accept loop never ends"),
    }
    shared.shutting_down.store(true, Ordering::Relaxed);
    let stopped = tokio::select! {
        stopped = stop(&shared, &mut hub_task) => stopped,
        () = &mut accepting => unreachable!("the accept loop never ends"),
    };
    if stopped.is_ok() {
        tracing::info!("stopped");
    }
    stopped
}

/// Accepts connections, forever.
/// The listen socket, as `TcpListener::bind` makes it (`SO_REUSEADDR`, so a restart
/// rebinds at once) but with `backlog` instead of its fixed 128.
fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                shared.metrics.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(handle_socket(stream, peer, Arc::clone(shared)));
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: wait for connections to close, keep serving.
                shared.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, ?backoff, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The graceful stop, once `/readyz` answers 503: the drain delay (connections still
/// served), then site requests in flight within the grace, then 1001 to every connection.
async fn stop(shared: &Shared, hub_task: &mut JoinHandle<()>) -> Result<(), ServerError> {
    let delay = shared.config.drain_delay;
    if !delay.is_zero() {
        tracing::info!(
            ?delay,
            "draining: /readyz answers 503; connections close after the delay"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            result = &mut *hub_task => return Err(hub_failed(result)),
        }
    }
    tracing::info!("shutting down: waiting for site requests in flight");
    let grace = shared.config.shutdown_grace;
    let _ = shared.control.send(Control::Shutdown { grace }).await;
    let hub_result = tokio::time::timeout(grace + Duration::from_secs(5), &mut *hub_task).await;
    if let Ok(Err(e)) = hub_result {
        return Err(ServerError::HubFailed(e.to_string()));
    }
    // Let connections write their 1001 and hear the peer's close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while shared.counts.total.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The error for a hub task that ended: it never does on its own, so it panicked.
fn hub_failed(result: Result<(), tokio::task::JoinError>) -> ServerError {
    let why = match result {
        Ok(()) => "the hub task ended".to_owned(),
        Err(e) => e.to_string(),
    };
    tracing::error!(error = %why, "hub task failed; stopping");
    ServerError::HubFailed(why)
}

/// One accepted socket: read the request head, then serve HTTP or upgrade.
async fn handle_socket(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let cfg = &shared.config;
    let _ = stream.set_nodelay(true);
    if cfg.send_buffer_bytes > 0 {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(cfg.send_buffer_bytes);
    }
    let (req, early) = match http::read_head(&mut stream, cfg.handshake_timeout).await {
        Ok(x) => x,
        Err(HeadError::Closed | HeadError::Timeout) => return,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "bad request");
            shared.metrics.refused(Refusal::BadRequest);
            http::respond(&mut stream, 400, "text/plain", b"bad request\n").await;
            return;
        }
    };
    let ip = http::client_ip(&req, peer.ip(), &cfg.trusted_proxies);
    match (req.method.as_str(), req.path.as_str()) {
        (_, "/" | "/ws") if req.is_upgrade() => upgrade(stream, req, early, ip, shared).await,
        ("GET", "/") => {
            let body = "bbrt: connect a WebSocket here (ws://host/ or /ws)\n";
            http::respond(&mut stream, 426, "text/plain", body.as_bytes()).await;
        }
        ("POST", crate::site_events::PATH) => {
            crate::site_events::serve(stream, req, early, ip, &shared).await;
        }
        ("POST", crate::site_events::API_PATH) => {
            crate::site_events::serve_api(stream, req, early, ip, &shared).await;
        }
        ("GET", "/healthz") => http::respond(&mut stream, 200, "text/plain", b"ok\n").await,
        ("GET", "/readyz") => {
            // The site's line, and whether it makes this node not ready.
            let site = shared.metrics.site_health.get();
            let site_line = site.map_or(String::new(), |s| format!("{}\n", s.summary()));
            let site_down = site.is_some_and(|s| !s.up()) && cfg.site_required_for_ready;
            if shared.shutting_down.load(Ordering::Relaxed) {
                http::respond(&mut stream, 503, "text/plain", b"shutting down\n").await;
            } else if let Some(redis) = shared.metrics.redis.get() {
                // Degraded (cut off from the other nodes) is still ready unless configured.
                let down = redis.degraded() && cfg.redis_required_for_ready || site_down;
                let (status, word) = if down {
                    (503, "not ready")
                } else {
                    (200, "ready")
                };
                let mut body = format!("{word}\n{}\n", redis.summary());
                if let Some(conflict) = shared.metrics.node_id_conflict() {
                    body.push_str(&conflict.summary());
                    body.push('\n');
                }
                body.push_str(&site_line);
                http::respond(&mut stream, status, "text/plain", body.as_bytes()).await;
            } else {
                let (status, word) = if site_down {
                    (503, "not ready")
                } else {
                    (200, "ready")
                };
                let body = format!("{word}\n{site_line}");
                http::respond(&mut stream, status, "text/plain", body.as_bytes()).await;
            }
        }
        ("GET", "/metrics") => {
            let (tx, rx) = oneshot::channel();
            if shared.control.send(Control::Stats(tx)).await.is_ok()
                && let Ok(Ok(stats)) = tokio::time::timeout(Duration::from_secs(1), rx).await
            {
                shared.metrics.set_hub_stats(stats);
            }
            let body = shared.metrics.render();
            http::respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4",
                body.as_bytes(),
            )
            .await;
        }
        ("GET", "/example" | "/example/") if cfg.serve_examples => {
            http::respond(
                &mut stream,
                200,
                "text/html; charset=utf-8",
                EXAMPLE_PAGE.as_bytes(),
            )
            .await;
        }
        ("GET", _) => http::respond(&mut stream, 404, "text/plain", b"not found\n").await,
        _ => http::respond(&mut stream, 405, "text/plain", b"method not allowed\n").await,
    }
}

async fn upgrade(
    mut stream: TcpStream,
    req: http::Request,
    early: Vec<u8>,
    ip: IpAddr,
    shared: Arc<Shared>,
) {
    let has_token = req.query_param("token").is_some();
    let has_ticket = req.query_param("ticket").is_some();
    if shared.shutting_down.load(Ordering::Relaxed) {
        shared.metrics.refused(Refusal::ShuttingDown);
        http::respond(&mut stream, 503, "text/plain", b"shutting down\n").await;
        return;
    }
    if !http::origin_allowed(&req, &shared.config.allowed_origins) {
        tracing::info!(%ip, origin = ?req.header("origin"), "origin refused");
        shared.metrics.refused(Refusal::Origin);
        http::respond(&mut stream, 403, "text/plain", b"origin not allowed\n").await;
        return;
    }
    let accept = match http::handshake::check_handshake(&req) {
        Ok(accept) => accept,
        Err(refusal) => {
            shared.metrics.refused(Refusal::BadRequest);
            let body = refusal.text.as_bytes();
            http::respond(&mut stream, refusal.status, "text/plain", body).await;
            return;
        }
    };
    let slot = match shared.try_slot(ip) {
        Ok(slot) => slot,
        Err(why) => {
            shared.metrics.refused(why);
            let (status, text): (u16, &[u8]) = match why {
                Refusal::PerIp => (429, b"too many connections from this address\n"),
                _ => (503, b"server full\n"),
            };
            tracing::info!(%ip, status, "connection refused");
            http::respond(&mut stream, status, "text/plain", text).await;
            return;
        }
    };
    let credential = http::upgrade_credential(&req, &shared.frame_scheme);
    let response = http::handshake::switching_protocols(&accept);
    let write = stream.write_all(response.as_bytes());
    if !matches!(
        tokio::time::timeout(shared.config.handshake_timeout, write).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed) + 1);
    // Never log the query string: it may carry a token.
    let span = tracing::info_span!("conn", id = conn.0, %ip, path = %req.path);
    drop(req);
    shared.metrics.upgrades.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(parent: &span, upgrade_credential = credential.is_some(), query_token = has_token, query_ticket = has_ticket, "open");
    let stream = Arc::new(stream);
    let outbox = Arc::new(Outbox::new(
        shared.config.outbound_queue_bytes,
        Some(Arc::clone(&stream)),
    ));
    let open = ConnEvent::Open {
        conn,
        ip,
        credential,
        outbox: Arc::clone(&outbox),
    };
    if shared.events.send(open).await.is_err() {
        return;
    }
    let connection = Connection::new(stream, conn, Arc::clone(&shared), outbox);
    // A task of its own: the handshake's state (request head, buffers) is freed now, and
    // the connection's task is sized by the connection's future alone. A span no
    // subscriber wants (below `info`) records nothing: the task goes without it, 40 bytes
    // less in every connection's task.
    if span.is_disabled() {
        tokio::spawn(connection.run(early, slot));
    } else {
        tokio::spawn(connection.run(early, slot).instrument(span));
    }
}
