//! Configuration: every flag has a `BBRT_*` environment variable and a documented default
//! (the table in `docs/server.md` mirrors this file).
//!
//! Each default is written once: the Hub's limits come from [`HubConfig::default`], the
//! decoder's from [`Limits::default`], the server's own in their clap attribute below, and
//! [`Config::default`] is what clap makes of no flags. Argument value types and parsers
//! are in `values.rs`, the key rings and ICE servers built from flags in `keys.rs`.

mod keys;
mod values;

use std::net::SocketAddr;
use std::time::Duration;

use bbrt_protocol::hub::{HubConfig, PresenceScope};
use bbrt_protocol::ids::{InstanceId, NodeId};
use bbrt_protocol::wire::Limits;
use clap::{CommandFactory, FromArgMatches, Parser};

pub(crate) use self::values::canonical;
pub use self::values::{
    AuthSchemeArg, Cidr, LogFormat, PresenceScopeArg, RedisUrl, SecretArg, parse_duration,
};
use self::values::{format_duration, parse_cidr, parse_node_id};

/// The clap default of a duration flag the Hub owns: [`HubConfig::default`]'s value,
/// written as `parse_duration` reads it (clap wants a `&'static str`).
macro_rules! hub_duration {
    ($field:ident) => {{
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| format_duration(HubConfig::default().$field))
            .as_str()
    }};
}

/// bbrt: the real-time WebSocket server for BuddyBoss communities.
#[derive(Debug, Clone, Parser)]
#[command(name = "bbrt-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (WebSocket at `/` and `/ws`, plus `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "BBRT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The listen socket's accept backlog: connections the kernel completes before bbrt
    /// accepts them. A reconnect storm of thousands overflows a small one into 1 s SYN
    /// retransmits; the kernel caps it at `net.core.somaxconn`.
    #[arg(long, env = "BBRT_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,

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
    #[arg(long, env = "BBRT_ICE_REQUESTS_PER_MINUTE", default_value_t = HubConfig::default().ice_requests_per_minute)]
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
    #[arg(long, env = "BBRT_MAX_FRAME_BYTES", default_value_t = Limits::default().max_frame_bytes)]
    pub max_frame_bytes: usize,

    /// Longest `send_message.message`, in bytes.
    #[arg(long, env = "BBRT_MAX_MESSAGE_BYTES", default_value_t = Limits::default().max_text_bytes)]
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
    #[arg(long, env = "BBRT_FRAME_RATE", default_value_t = HubConfig::default().frame_rate)]
    pub frame_rate: f64,

    /// Burst of frames per connection above the sustained rate.
    #[arg(long, env = "BBRT_FRAME_BURST", default_value_t = HubConfig::default().frame_burst)]
    pub frame_burst: f64,

    /// Over-limit frames in a row after which the connection is closed (4008).
    #[arg(long, env = "BBRT_CLOSE_AFTER_VIOLATIONS", default_value_t = HubConfig::default().close_after_violations)]
    pub close_after_violations: u32,

    /// Threads one connection may join.
    #[arg(long, env = "BBRT_MAX_THREADS_PER_CONN", default_value_t = HubConfig::default().max_threads_per_conn)]
    pub max_threads_per_conn: usize,

    /// Verified connections one user may hold.
    #[arg(long, env = "BBRT_MAX_CONNS_PER_USER", default_value_t = HubConfig::default().max_conns_per_user)]
    pub max_conns_per_user: usize,

    /// Anonymous connections per IP (oldest evicted beyond it, 4010).
    #[arg(long, env = "BBRT_MAX_ANONYMOUS_PER_IP", default_value_t = HubConfig::default().max_anonymous_per_ip)]
    pub max_anonymous_per_ip: usize,

    /// Anonymous connections in total (oldest evicted beyond it, 4010).
    #[arg(long, env = "BBRT_MAX_ANONYMOUS_TOTAL", default_value_t = HubConfig::default().max_anonymous_total)]
    pub max_anonymous_total: usize,

    /// Frames that may wait on one connection behind a site request.
    #[arg(long, env = "BBRT_MAX_QUEUED_PER_CONN", default_value_t = HubConfig::default().max_queued_per_conn)]
    pub max_queued_per_conn: usize,

    /// Sends of one user waiting for the site at once.
    #[arg(long, env = "BBRT_MAX_PENDING_SENDS_PER_USER", default_value_t = HubConfig::default().max_pending_sends_per_user)]
    pub max_pending_sends_per_user: usize,

    /// `call_initiated` per user per minute.
    #[arg(long, env = "BBRT_INVITES_PER_MINUTE", default_value_t = HubConfig::default().invites_per_minute)]
    pub invites_per_minute: usize,

    /// A call nobody answers ends after this.
    #[arg(long, env = "BBRT_RING_TIMEOUT", value_parser = parse_duration, default_value = hub_duration!(ring_timeout))]
    pub ring_timeout: Duration,

    /// A call whose device disconnected ends after this unless it comes back.
    #[arg(long, env = "BBRT_CALL_GRACE", value_parser = parse_duration, default_value = hub_duration!(call_grace))]
    pub call_grace: Duration,

    /// How often a credential in use is verified again with the site.
    #[arg(long, env = "BBRT_CREDENTIAL_TTL", value_parser = parse_duration, default_value = hub_duration!(credential_ttl))]
    pub credential_ttl: Duration,

    /// How long a thread's participants are trusted without asking the site.
    #[arg(long, env = "BBRT_PARTICIPANTS_TTL", value_parser = parse_duration, default_value = hub_duration!(participants_ttl))]
    pub participants_ttl: Duration,

    /// A user whose last connection closed stays online this long, so a reconnect is not
    /// told to others as offline and online (`0s`: offline at once).
    #[arg(long, env = "BBRT_PRESENCE_GRACE", value_parser = parse_duration, default_value = hub_duration!(presence_grace))]
    pub presence_grace: Duration,

    /// Messages kept per thread for replay after a reconnect.
    #[arg(long, env = "BBRT_WINDOW_MESSAGES", default_value_t = HubConfig::default().window_messages)]
    pub window_messages: usize,

    /// Encoded bytes kept per thread for replay (the oldest messages go first).
    #[arg(long, env = "BBRT_WINDOW_BYTES", default_value_t = HubConfig::default().window_bytes)]
    pub window_bytes: usize,

    /// Threads with a replay window; the least recently used goes first.
    #[arg(long, env = "BBRT_WINDOW_THREADS", default_value_t = HubConfig::default().window_threads)]
    pub window_threads: usize,

    /// Scaled out: how long a thread's window and position counter stay in Redis after its
    /// last message (then it starts again in a new epoch).
    #[arg(long, env = "BBRT_WINDOW_TTL", value_parser = parse_duration, default_value = "10m")]
    pub window_ttl: Duration,

    /// Scaled out: how long a thread's message that arrives before its predecessor waits
    /// for it.
    #[arg(long, env = "BBRT_ORDER_WAIT", value_parser = parse_duration, default_value = hub_duration!(order_wait))]
    pub order_wait: Duration,

    /// A client further behind than this many messages is told to reload the thread.
    #[arg(long, env = "BBRT_MAX_REPLAY", default_value_t = HubConfig::default().max_replay)]
    pub max_replay: usize,

    /// Site history catch-ups in flight at once; more wait in order.
    #[arg(long, env = "BBRT_MAX_SITE_CATCHUPS", default_value_t = HubConfig::default().max_site_catchups)]
    pub max_site_catchups: usize,
}

impl Default for Config {
    /// The defaults of every flag: what clap makes of no flags, with the environment
    /// variables ignored (so each default is written once, in its attribute).
    fn default() -> Self {
        let command = Self::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["bbrt-server"])
            .expect("no flags always parse: every flag has a default or is optional");
        Self::from_arg_matches(&matches).expect("the matches come from this very command")
    }
}

impl Config {
    /// The Hub's rules and limits from these flags, for the process `node`/`instance`
    /// (`--node-id`, or a random id when it is not set).
    pub fn hub_config(&self, node_id: NodeId, instance: InstanceId) -> HubConfig {
        HubConfig {
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
            presence_grace: self.presence_grace,
            window_messages: self.window_messages,
            window_bytes: self.window_bytes,
            window_threads: self.window_threads,
            max_replay: self.max_replay,
            order_wait: self.order_wait,
            max_site_catchups: self.max_site_catchups,
            ..HubConfig::default()
        }
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

#[cfg(test)]
mod tests;
