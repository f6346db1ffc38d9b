//! Configuration: every flag has a `BBRT_*` environment variable and a documented default
//! (the table in `docs/server.md` mirrors this file).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bbrt_protocol::hub::{HubConfig, PresenceScope};
use bbrt_protocol::ids::{IdError, InstanceId, MAX_ID_LEN, MAX_NODE_ID_LEN, NodeId};
use bbrt_protocol::wire::Limits;
use clap::{Parser, ValueEnum};

/// A Redis URL. `Debug` shows it with its password replaced (a whole `Config` may be
/// logged; `redis://user:secret@host` must not be).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL itself, password included: for connecting, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.to_owned()))
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::broker::redis::redact(&self.0))
    }
}

/// The site's home URL from `--buddyboss-url`, which may be the REST API root.
fn site_home(url: &str) -> String {
    let home = url
        .split_once("/wp-json")
        .or_else(|| url.split_once("/?rest_route="))
        .or_else(|| url.split_once("?rest_route="))
        .map_or(url, |(home, _)| home);
    home.trim_end_matches('/').to_owned()
}

/// A secret from the command line or the environment. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg(String);

impl SecretArg {
    /// The secret itself: for deriving keys, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Self(secret.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// bbrt: the real-time WebSocket server for BuddyBoss communities.
#[derive(Debug, Clone, Parser)]
#[command(name = "bbrt-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (WebSocket at `/` and `/ws`, plus `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "BBRT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The BuddyBoss site (`https://site`) or its REST API root (`https://site/wp-json/` or
    /// `https://site/?rest_route=`). Without it: the embedded development site.
    #[arg(long, env = "BBRT_BUDDYBOSS_URL")]
    pub buddyboss_url: Option<String>,

    /// How a `token` sent in a frame or `?token=` is presented to the site.
    #[arg(long, env = "BBRT_AUTH_SCHEME", value_enum, default_value_t = AuthSchemeArg::Bearer)]
    pub auth_scheme: AuthSchemeArg,

    /// Time for one HTTP request to the site.
    #[arg(long, env = "BBRT_SITE_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub site_timeout: Duration,

    /// Site requests in flight at once (the executor's bound).
    #[arg(long, env = "BBRT_SITE_CONCURRENCY", default_value_t = 256)]
    pub site_concurrency: usize,

    /// Deadline for one site request as the Hub sees it (retries and reconciliation
    /// included); past it the Hub gets `site_unavailable`.
    #[arg(long, env = "BBRT_API_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub api_timeout: Duration,

    /// Let the embedded development site listen on a non-loopback address.
    #[arg(long, env = "BBRT_ALLOW_PUBLIC_DEV")]
    pub allow_public_dev: bool,

    /// Let `--redis` run with the embedded development site (benchmarks and tests only):
    /// every node then has a development site of its own, so thread membership and
    /// presence differ per node.
    #[arg(long, env = "BBRT_ALLOW_DEV_SITE_WITH_REDIS")]
    pub allow_dev_site_with_redis: bool,

    /// Who hears `user_connected`/`user_disconnected`: `threads` (users sharing a joined
    /// thread) or `all` (the seed's broadcast; small sites only).
    #[arg(long, env = "BBRT_PRESENCE_SCOPE", value_enum, default_value_t = PresenceScopeArg::Threads)]
    pub presence_scope: PresenceScopeArg,

    /// Log format.
    #[arg(long, env = "BBRT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "BBRT_LOG", default_value = "info")]
    pub log: String,

    /// Proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "BBRT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,

    /// Origins allowed to open a WebSocket (comma-separated, exact `scheme://host[:port]`).
    /// Empty: any Origin (and none) is accepted.
    #[arg(long, env = "BBRT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// This node's id (prefixes call ids; tags broker publications): at most 107 bytes of
    /// `[A-Za-z0-9._~:@+-]`, different on every node. Default: 8 random characters, new for
    /// every process.
    #[arg(long, env = "BBRT_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<NodeId>,

    /// Several nodes share one broker (implied by `--redis`, which is the shared broker).
    #[arg(long, env = "BBRT_CLUSTER")]
    pub cluster: bool,

    /// Redis (`redis://[user:password@]host[:port][/db]`): several nodes become one service
    /// (see `docs/scaling.md`). Without it: one node, in-process broker.
    #[arg(long, env = "BBRT_REDIS")]
    pub redis: Option<RedisUrl>,

    /// Namespace of every Redis key and channel (deployments may share one Redis).
    #[arg(long, env = "BBRT_REDIS_PREFIX", default_value = "bbrt")]
    pub redis_prefix: String,

    /// How often a node writes its Redis heartbeat; a node silent for 3× this is down.
    #[arg(long, env = "BBRT_REDIS_HEARTBEAT", value_parser = parse_duration, default_value = "2s")]
    pub redis_heartbeat: Duration,

    /// How often a node republishes its whole presence (heals lost publications).
    #[arg(long, env = "BBRT_PRESENCE_SNAPSHOT", value_parser = parse_duration, default_value = "30s")]
    pub presence_snapshot: Duration,

    /// `/readyz` answers 503 while Redis is unreachable (default: ready, degraded in details,
    /// since every node failing readiness at once would be a total outage).
    #[arg(long, env = "BBRT_REDIS_REQUIRED_FOR_READY")]
    pub redis_required_for_ready: bool,

    /// `/readyz` answers 503 while the site cannot serve bbrt (unreachable, misconfigured);
    /// default: ready, the site's health in the body.
    #[arg(long, env = "BBRT_SITE_REQUIRED_FOR_READY")]
    pub site_required_for_ready: bool,

    /// How often the site is probed (its API root, without a credential).
    #[arg(long, env = "BBRT_SITE_PROBE_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    pub site_probe_interval: Duration,

    /// Keys the digests idempotency records keep of a send's parameters (to tell a retry
    /// from a reused `clientMessageId` without storing the text). Give every node the same
    /// one; without it each process picks a random key.
    #[arg(long, env = "BBRT_IDEMPOTENCY_SECRET", hide_env_values = true)]
    pub idempotency_secret: Option<SecretArg>,

    /// The connection-ticket key ring, `kid:secret` entries separated by commas or
    /// whitespace: the same ring as the companion plugin's `BBRT_TICKET_KEYS`. Without it
    /// (and without `--ticket-keys-file`) tickets are refused.
    #[arg(
        long,
        env = "BBRT_TICKET_KEYS",
        hide_env_values = true,
        conflicts_with = "ticket_keys_file"
    )]
    pub ticket_keys: Option<SecretArg>,

    /// A file holding the ticket key ring (read once at start; keep it mode 0600).
    #[arg(long, env = "BBRT_TICKET_KEYS_FILE")]
    pub ticket_keys_file: Option<std::path::PathBuf>,

    /// This bbrt's public URL, a ticket's audience: exactly the plugin's `BBRT_URL`
    /// (trailing slash ignored). Required with a ticket key ring.
    #[arg(long, env = "BBRT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The site's home URL, a ticket's issuer (default: `--buddyboss-url` without its
    /// `/wp-json` or `?rest_route=` part).
    #[arg(long, env = "BBRT_TICKET_ISSUER")]
    pub ticket_issuer: Option<String>,

    /// The clock-skew allowance for tickets (at most 30s).
    #[arg(long, env = "BBRT_TICKET_LEEWAY", value_parser = parse_duration, default_value = "5s")]
    pub ticket_leeway: Duration,

    /// The site-event key ring, `kid:secret` entries separated by commas or whitespace: the
    /// same ring as the companion plugin's `BBRT_EVENT_KEYS` (never the ticket ring). Without
    /// it (and without `--site-event-keys-file`) `POST /site/events` answers 404.
    #[arg(
        long,
        env = "BBRT_SITE_EVENT_KEYS",
        hide_env_values = true,
        conflicts_with = "site_event_keys_file"
    )]
    pub site_event_keys: Option<SecretArg>,

    /// A file holding the site-event key ring (read once at start; keep it mode 0600).
    #[arg(long, env = "BBRT_SITE_EVENT_KEYS_FILE")]
    pub site_event_keys_file: Option<std::path::PathBuf>,

    /// STUN and TURN servers handed to clients (`get_ice_servers`, and with
    /// `call_initiated`): `stun:`, `turn:` and `turns:` URLs separated by commas. TURN URLs
    /// need `--turn-secret` (or its file). Without any, `ice_servers` is an empty list.
    #[arg(long, env = "BBRT_ICE_URLS", value_delimiter = ',')]
    pub ice_urls: Vec<String>,

    /// coturn's `static-auth-secret` (with `use-auth-secret`): short-lived TURN
    /// credentials are minted from it (`docs/calls.md`, "TURN").
    #[arg(
        long,
        env = "BBRT_TURN_SECRET",
        hide_env_values = true,
        conflicts_with = "turn_secret_file"
    )]
    pub turn_secret: Option<SecretArg>,

    /// A file holding the TURN secret (read once at start; keep it mode 0600).
    #[arg(long, env = "BBRT_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<std::path::PathBuf>,

    /// How long a minted TURN credential allows new allocations (at most 24h).
    #[arg(long, env = "BBRT_TURN_CREDENTIAL_TTL", value_parser = parse_duration, default_value = "1h")]
    pub turn_credential_ttl: Duration,

    /// `get_ice_servers` answered per user per minute; beyond it `rate_limited`.
    #[arg(long, env = "BBRT_ICE_REQUESTS_PER_MINUTE", default_value_t = 10)]
    pub ice_requests_per_minute: usize,

    /// Runtime worker threads (0: one per core).
    #[arg(long, env = "BBRT_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Serve the browser example page at `/example`.
    #[arg(long, env = "BBRT_SERVE_EXAMPLES")]
    pub serve_examples: bool,

    /// Open WebSocket connections in total; beyond it the upgrade answers 503.
    #[arg(long, env = "BBRT_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Open WebSocket connections per client IP; beyond it the upgrade answers 429.
    #[arg(long, env = "BBRT_MAX_CONNECTIONS_PER_IP", default_value_t = 1_000)]
    pub max_connections_per_ip: usize,

    /// Largest WebSocket message accepted, in bytes (1009 beyond it).
    #[arg(long, env = "BBRT_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Longest `send_message.message`, in bytes.
    #[arg(long, env = "BBRT_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub max_message_bytes: usize,

    /// Bytes queued for one connection; a client that lets more pile up is closed (4011).
    #[arg(long, env = "BBRT_OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// `SO_SNDBUF` of each connection, so the kernel does not hide a slow consumer (0: the
    /// system default).
    #[arg(long, env = "BBRT_SEND_BUFFER_BYTES", default_value_t = 64 * 1024)]
    pub send_buffer_bytes: usize,

    /// A write that cannot make progress for this long closes the connection (4011).
    #[arg(long, env = "BBRT_WRITE_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub write_timeout: Duration,

    /// The server pings a connection that has been silent this long.
    #[arg(long, env = "BBRT_PING_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    pub ping_interval: Duration,

    /// A connection silent this long (no frame, no pong) is closed (4012).
    #[arg(long, env = "BBRT_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "75s")]
    pub idle_timeout: Duration,

    /// Time for a client to send its HTTP upgrade request.
    #[arg(long, env = "BBRT_HANDSHAKE_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub handshake_timeout: Duration,

    /// On SIGINT/SIGTERM, how long `/readyz` answers 503 while connections are still
    /// served, so a load balancer's probe notices before they are closed.
    #[arg(long, env = "BBRT_DRAIN_DELAY", value_parser = parse_duration, default_value = "5s")]
    pub drain_delay: Duration,

    /// On SIGINT/SIGTERM, after the drain delay, how long in-flight site requests may take
    /// before every socket is closed with 1001.
    #[arg(long, env = "BBRT_SHUTDOWN_GRACE", value_parser = parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,

    /// Sustained frames per second per connection (`rate_limited` beyond it).
    #[arg(long, env = "BBRT_FRAME_RATE", default_value_t = 50.0)]
    pub frame_rate: f64,

    /// Burst of frames per connection above the sustained rate.
    #[arg(long, env = "BBRT_FRAME_BURST", default_value_t = 100.0)]
    pub frame_burst: f64,

    /// Over-limit frames in a row after which the connection is closed (4008).
    #[arg(long, env = "BBRT_CLOSE_AFTER_VIOLATIONS", default_value_t = 50)]
    pub close_after_violations: u32,

    /// Threads one connection may join.
    #[arg(long, env = "BBRT_MAX_THREADS_PER_CONN", default_value_t = 100)]
    pub max_threads_per_conn: usize,

    /// Verified connections one user may hold.
    #[arg(long, env = "BBRT_MAX_CONNS_PER_USER", default_value_t = 32)]
    pub max_conns_per_user: usize,

    /// Anonymous connections per IP (oldest evicted beyond it, 4010).
    #[arg(long, env = "BBRT_MAX_ANONYMOUS_PER_IP", default_value_t = 256)]
    pub max_anonymous_per_ip: usize,

    /// Anonymous connections in total (oldest evicted beyond it, 4010).
    #[arg(long, env = "BBRT_MAX_ANONYMOUS_TOTAL", default_value_t = 10_000)]
    pub max_anonymous_total: usize,

    /// Frames that may wait on one connection behind a site request.
    #[arg(long, env = "BBRT_MAX_QUEUED_PER_CONN", default_value_t = 32)]
    pub max_queued_per_conn: usize,

    /// Sends of one user waiting for the site at once.
    #[arg(long, env = "BBRT_MAX_PENDING_SENDS_PER_USER", default_value_t = 64)]
    pub max_pending_sends_per_user: usize,

    /// `call_initiated` per user per minute.
    #[arg(long, env = "BBRT_INVITES_PER_MINUTE", default_value_t = 10)]
    pub invites_per_minute: usize,

    /// A call nobody answers ends after this.
    #[arg(long, env = "BBRT_RING_TIMEOUT", value_parser = parse_duration, default_value = "90s")]
    pub ring_timeout: Duration,

    /// A call whose device disconnected ends after this unless it comes back.
    #[arg(long, env = "BBRT_CALL_GRACE", value_parser = parse_duration, default_value = "10s")]
    pub call_grace: Duration,

    /// How often a credential in use is verified again with the site.
    #[arg(long, env = "BBRT_CREDENTIAL_TTL", value_parser = parse_duration, default_value = "5m")]
    pub credential_ttl: Duration,

    /// How long a thread's participants are trusted without asking the site.
    #[arg(long, env = "BBRT_PARTICIPANTS_TTL", value_parser = parse_duration, default_value = "60s")]
    pub participants_ttl: Duration,

    /// Reconnect recovery: the replay windows and site catch-ups.
    #[command(flatten)]
    pub recovery: crate::recovery_config::RecoveryConfig,
}

impl Default for Config {
    /// The defaults of every flag (environment variables are not read).
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            buddyboss_url: None,
            auth_scheme: AuthSchemeArg::Bearer,
            site_timeout: Duration::from_secs(10),
            site_concurrency: 256,
            api_timeout: Duration::from_secs(30),
            allow_public_dev: false,
            allow_dev_site_with_redis: false,
            presence_scope: PresenceScopeArg::Threads,
            log_format: LogFormat::Human,
            log: "info".into(),
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            node_id: None,
            cluster: false,
            redis: None,
            redis_prefix: "bbrt".into(),
            redis_heartbeat: Duration::from_secs(2),
            presence_snapshot: Duration::from_secs(30),
            redis_required_for_ready: false,
            site_required_for_ready: false,
            site_probe_interval: Duration::from_secs(30),
            idempotency_secret: None,
            ticket_keys: None,
            ticket_keys_file: None,
            public_url: None,
            ticket_issuer: None,
            ticket_leeway: Duration::from_secs(5),
            site_event_keys: None,
            site_event_keys_file: None,
            ice_urls: Vec::new(),
            turn_secret: None,
            turn_secret_file: None,
            turn_credential_ttl: Duration::from_secs(3600),
            ice_requests_per_minute: 10,
            workers: 0,
            serve_examples: false,
            max_connections: 50_000,
            max_connections_per_ip: 1_000,
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 16 * 1024,
            outbound_queue_bytes: 1024 * 1024,
            send_buffer_bytes: 64 * 1024,
            write_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            handshake_timeout: Duration::from_secs(10),
            drain_delay: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            frame_rate: 50.0,
            frame_burst: 100.0,
            close_after_violations: 50,
            max_threads_per_conn: 100,
            max_conns_per_user: 32,
            max_anonymous_per_ip: 256,
            max_anonymous_total: 10_000,
            max_queued_per_conn: 32,
            max_pending_sends_per_user: 64,
            invites_per_minute: 10,
            ring_timeout: Duration::from_secs(90),
            call_grace: Duration::from_secs(10),
            credential_ttl: Duration::from_secs(300),
            participants_ttl: Duration::from_secs(60),
            recovery: crate::recovery_config::RecoveryConfig::default(),
        }
    }
}

impl Config {
    /// The Hub's rules and limits from these flags, for the process `node`/`instance`
    /// (`--node-id`, or a random id when it is not set).
    pub fn hub_config(&self, node_id: NodeId, instance: InstanceId) -> HubConfig {
        let mut hub = HubConfig {
            node_id,
            instance,
            cluster: self.cluster || self.redis.is_some(),
            presence_scope: match self.presence_scope {
                PresenceScopeArg::Threads => PresenceScope::Threads,
                PresenceScopeArg::All => PresenceScope::All,
            },
            participants_ttl: self.participants_ttl,
            credential_ttl: self.credential_ttl,
            ring_timeout: self.ring_timeout,
            call_grace: self.call_grace,
            max_queued_per_conn: self.max_queued_per_conn,
            max_threads_per_conn: self.max_threads_per_conn,
            max_conns_per_user: self.max_conns_per_user,
            max_anonymous_per_ip: self.max_anonymous_per_ip,
            max_anonymous_total: self.max_anonymous_total,
            frame_rate: self.frame_rate,
            frame_burst: self.frame_burst,
            close_after_violations: self.close_after_violations,
            invites_per_minute: self.invites_per_minute,
            ice_requests_per_minute: self.ice_requests_per_minute,
            max_pending_sends_per_user: self.max_pending_sends_per_user,
            ..HubConfig::default()
        };
        self.recovery.apply(&mut hub);
        hub
    }

    /// The ticket verifier from `--ticket-keys` (or its file), `--public-url`, the issuer
    /// and `--ticket-leeway`; `None` without a ring.
    ///
    /// # Errors
    /// A malformed ring, an unreadable file, a missing audience or issuer, a leeway over 30 s.
    pub fn ticket_verifier(&self) -> Result<Option<crate::ticket::TicketVerifier>, String> {
        let ring = match (&self.ticket_keys, &self.ticket_keys_file) {
            (Some(ring), _) => ring.expose().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --ticket-keys-file {}: {e}", path.display()))?,
            (None, None) => return Ok(None),
        };
        let keys = crate::ticket::TicketKeys::parse(&ring).map_err(|e| e.to_string())?;
        let audience = self
            .public_url
            .as_deref()
            .ok_or("a ticket key ring needs --public-url (the plugin's BBRT_URL)")?;
        let issuer = match (&self.ticket_issuer, &self.buddyboss_url) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(site)) => site_home(site),
            (None, None) => {
                return Err("a ticket key ring needs --buddyboss-url or --ticket-issuer".into());
            }
        };
        if self.ticket_leeway > crate::ticket::MAX_LEEWAY {
            return Err("--ticket-leeway is at most 30s".into());
        }
        Ok(Some(crate::ticket::TicketVerifier::new(
            keys,
            audience,
            &issuer,
            self.ticket_leeway,
        )))
    }

    /// The ICE servers from `--ice-urls`, the TURN secret (or its file) and
    /// `--turn-credential-ttl`.
    ///
    /// # Errors
    /// A bad URL, TURN without a secret, an unreadable file (never quoting the secret).
    pub fn ice_minter(&self) -> Result<crate::ice::IceMinter, String> {
        let secret =
            match (&self.turn_secret, &self.turn_secret_file) {
                (Some(secret), _) => Some(secret.expose().to_owned()),
                (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read --turn-secret-file {}: {e}", path.display())
                })?),
                (None, None) => None,
            };
        crate::ice::IceMinter::new(&self.ice_urls, secret.as_deref(), self.turn_credential_ttl)
    }

    /// The site-event verifier from `--site-event-keys` (or its file); `None` without a ring.
    ///
    /// # Errors
    /// A malformed ring or an unreadable file (the message never quotes a key).
    pub fn site_event_verifier(
        &self,
    ) -> Result<Option<crate::site_events::SiteEventVerifier>, String> {
        let ring = match (&self.site_event_keys, &self.site_event_keys_file) {
            (Some(ring), _) => ring.expose().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                format!("cannot read --site-event-keys-file {}: {e}", path.display())
            })?,
            (None, None) => return Ok(None),
        };
        let keys =
            crate::ticket::KeyRing::parse(&ring).map_err(|e| format!("--site-event-keys: {e}"))?;
        Ok(Some(crate::site_events::SiteEventVerifier::new(keys)))
    }

    /// The decoder's limits from these flags.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_text_bytes: self.max_message_bytes,
            ..Limits::default()
        }
    }
}

/// How a token from a frame or the query string is presented to the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthSchemeArg {
    /// `Authorization: Bearer <token>` (a JWT or bearer-token plugin).
    Bearer,
    /// `Authorization: Basic` (WordPress Application Passwords: `user:app-password`).
    Basic,
    /// The BuddyBoss App's `accessToken` header.
    AccessToken,
}

/// Who hears presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresenceScopeArg {
    /// Users who share a joined thread.
    Threads,
    /// Everyone (the seed's broadcast).
    All,
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|e| format!("not an ip address: {e}"))?;
    let addr = canonical(addr);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("bad prefix length {p:?}"))?,
        None => max,
    };
    Ok(Cidr { addr, prefix })
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::new(s).map_err(|e| match e {
        IdError::TooLong { .. } => format!(
            "a node id is at most {MAX_NODE_ID_LEN} bytes (this one has {}): call ids are \
             <node id>-<counter> and must fit in {MAX_ID_LEN}",
            s.len()
        ),
        e => e.to_string(),
    })
}

/// `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 30s or 250ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
impl Cidr {
    pub(crate) fn from_str_for_tests(s: &str) -> Self {
        parse_cidr(s).expect("a valid test cidr")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_clap() {
        let parsed = Config::try_parse_from(["bbrt-server"]).expect("defaults parse");
        let d = Config::default();
        assert_eq!(format!("{parsed:?}"), format!("{d:?}"));
    }

    #[test]
    fn a_logged_config_hides_the_redis_password() {
        let parsed = Config::try_parse_from([
            "bbrt-server",
            "--redis",
            "redis://app:s3cret@redis.internal:6379/2",
        ])
        .expect("parses");
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("redis://app:[redacted]@redis.internal:6379/2"),
            "{shown}"
        );
        let url = parsed.redis.expect("set");
        assert_eq!(url.expose(), "redis://app:s3cret@redis.internal:6379/2");
    }

    #[test]
    fn an_over_long_node_id_is_refused_with_the_reason() {
        let longest = "n".repeat(MAX_NODE_ID_LEN);
        let parsed = Config::try_parse_from(["bbrt-server", "--node-id", &longest])
            .expect("the longest node id is accepted");
        assert_eq!(
            parsed.node_id.map(|n| n.as_str().len()),
            Some(MAX_NODE_ID_LEN)
        );
        let over = "n".repeat(127);
        let error = Config::try_parse_from(["bbrt-server", "--node-id", &over])
            .expect_err("127 bytes is too long")
            .to_string();
        assert!(error.contains("a node id is at most 107 bytes"), "{error}");
    }

    #[test]
    fn ticket_settings_are_checked_at_start_and_never_quote_a_key() {
        let ring = "k1:a-ticket-secret-of-at-least-32-bytes-aaaa";
        let mut c = Config {
            ticket_keys: Some(ring.parse().unwrap()),
            buddyboss_url: Some("https://community.example.org/wp-json/".into()),
            ..Config::default()
        };
        let missing = c.ticket_verifier().unwrap_err();
        assert!(missing.contains("--public-url"), "{missing}");
        c.public_url = Some("wss://rt.example.org/".into());
        let verifier = c.ticket_verifier().unwrap().expect("a verifier");
        assert_eq!(verifier.kids(), ["k1"]);
        assert!(!format!("{c:?} {verifier:?}").contains("a-ticket-secret"));
        c.ticket_keys = Some("k1:short".parse().unwrap());
        let short = c.ticket_verifier().unwrap_err();
        assert!(
            short.contains("shorter than 32 bytes") && !short.contains("short\""),
            "{short}"
        );
        c.ticket_keys = Some(ring.parse().unwrap());
        c.ticket_leeway = Duration::from_secs(31);
        assert!(c.ticket_verifier().unwrap_err().contains("at most 30s"));
        assert_eq!(
            site_home("https://site.example/wp-json/"),
            "https://site.example"
        );
        assert_eq!(
            site_home("https://site.example/?rest_route="),
            "https://site.example"
        );
        assert_eq!(site_home("https://site.example/"), "https://site.example");
        assert_eq!(
            Config::default().ticket_verifier().map(|v| v.is_none()),
            Ok(true)
        );
    }

    #[test]
    fn site_event_keys_are_checked_at_start_and_never_quote_a_key() {
        assert!(matches!(Config::default().site_event_verifier(), Ok(None)));
        let mut c = Config {
            site_event_keys: Some(
                "e1:a-site-event-secret-of-32-bytes-or-more"
                    .parse()
                    .unwrap(),
            ),
            ..Config::default()
        };
        let verifier = c.site_event_verifier().unwrap().expect("a verifier");
        assert_eq!(verifier.kids(), ["e1"]);
        assert!(!format!("{c:?} {verifier:?}").contains("a-site-event-secret"));
        c.site_event_keys = Some("e1:short-secret".parse().unwrap());
        let short = c.site_event_verifier().unwrap_err();
        assert!(
            short.contains("shorter than 32 bytes") && !short.contains("short-secret"),
            "{short}"
        );
        let file =
            std::env::temp_dir().join(format!("bbrt-site-event-keys-{}", std::process::id()));
        std::fs::write(&file, "e2:another-site-event-secret-of-32-bytes-or-more\n").unwrap();
        c.site_event_keys = None;
        c.site_event_keys_file = Some(file.clone());
        let from_file = c.site_event_verifier().unwrap().expect("a verifier");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(from_file.kids(), ["e2"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cidrs() {
        let net = parse_cidr("10.0.0.0/8").expect("valid");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        let one = parse_cidr("127.0.0.1").expect("valid");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(
            parse_cidr("::1/128")
                .expect("valid")
                .contains("::1".parse().expect("ip"))
        );
    }
}
