//! Scale-out through Redis: a [`Broker`](super::Broker) over pub/sub, node liveness
//! through heartbeat keys, and a [`Coordinator`](super::Coordinator) over `SET NX` keys.
//!
//! Every node publishes [`BrokerMessage`](bbrt_protocol::hub::BrokerMessage) JSON on one
//! channel, `<prefix>:events`, and receives everything on it (one channel is plenty at our
//! scale: a node needs nearly every event anyway, and one subscription keeps ordering per
//! publisher). A node drops its own publications when they come back.
//!
//! Nothing here ever blocks the hub task: publishing through a [`RedisBroker`] is a
//! `try_send` onto a bounded queue, emptied by one publisher task in pipelined batches.
//! When the queue is full, or Redis is unreachable, publications are dropped and counted
//! ([`RedisStatus`]); the periodic presence snapshot and the resynchronisation after every
//! reconnect heal what was lost. Background tasks reconnect with exponential backoff and
//! stop when the last [`RedisBroker`]/[`RedisCoordinator`] of a [`connect`] call is dropped.
//!
//! Liveness: each node writes `<prefix>:node:<id>` (its instance id) with a TTL of
//! [`RedisOptions::node_ttl`] every [`RedisOptions::heartbeat`], and adds itself to the set
//! `<prefix>:nodes`. Every heartbeat it reads the keys of the set's members: a member whose
//! key expired is announced as [`BrokerInput::NodeDown`] (and removed from the set), and so
//! is a member whose instance id changed (it restarted). A node cut off from Redis for
//! longer than the TTL announces every node it knew as down: they see it down too, and both
//! sides serve their own users until Redis is back and a [`BrokerInput::Resync`] restores
//! the views. A node that stops gracefully says goodbye
//! ([`Broker::goodbye`](super::Broker::goodbye)): it deletes its key, leaves the set and
//! publishes its id on `<prefix>:bye`, and the others announce it down at once instead of
//! after the TTL. The verdicts are [`NodeWatch`]'s (`liveness.rs` feeds it); `link.rs`
//! holds the connection, the publisher and the subscription, `coordinator.rs` the claims,
//! `status.rs` the counters.
//!
//! Keys and channels (see `docs/scaling.md`):
//!
//! | name | type | holds |
//! |---|---|---|
//! | `<prefix>:events` | channel | every publication |
//! | `<prefix>:bye` | channel | the id of a node stopping gracefully |
//! | `<prefix>:nodes` | set | node ids seen alive |
//! | `<prefix>:node:<id>` | string, TTL | the node's instance id |
//! | `<prefix>:idem:<user>/<clientMessageId>` | string, TTL | `inflight:<node>`; `unconfirmed:<unix secs>:<digest>`; or a receipt with the digest (JSON) |
//! | `<prefix>:answer:<callId>` | string, TTL | the winning device (JSON) |
//! | `<prefix>:ticket:<jti>` | string, TTL | a used connection ticket |
//! | `<prefix>:site-event:<id>` | string, TTL (600 s) | a site event's body SHA-256 (hex) |

mod coordinator;
mod link;
mod liveness;
mod status;
mod windows;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bbrt_protocol::cluster::{LivenessConfig, NodeWatch};
use bbrt_protocol::ids::{CallId, ClientMessageId, InstanceId, NodeId, UserId};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, IntoConnectionInfo as _, RedisError};
use tokio::sync::{Notify, mpsc, watch};

use super::{BrokerInput, SendDigester};

pub use self::coordinator::RedisCoordinator;
pub use self::link::RedisBroker;
pub use self::status::RedisStatus;

/// Shortest wait before a reconnection attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How to reach Redis and how this node behaves in the cluster. `Debug` hides the URL's
/// password.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: String,
    /// Namespace of every key and channel (deployments and tests may share one Redis).
    pub prefix: String,
    /// This node's id.
    pub node: NodeId,
    /// This process (random by default): its heartbeat key holds it, so a restart is seen,
    /// and a publication is dropped as its own only when it carries it.
    pub instance: InstanceId,
    /// How often the node writes its heartbeat key and looks for lost nodes.
    pub heartbeat: Duration,
    /// How long a heartbeat key lives: a node silent this long is down (3× the heartbeat).
    pub node_ttl: Duration,
    /// How often the Hub is asked to publish its whole presence (heals lost publications).
    pub snapshot_every: Duration,
    /// Publications that may wait for Redis; beyond it they are dropped and counted.
    pub publish_queue: usize,
    /// Time for one Redis command or connection attempt.
    pub command_timeout: Duration,
    /// How long a claim on a `clientMessageId` in flight on another node is waited for
    /// before answering [`CoordResponse::Unavailable`](bbrt_protocol::hub::CoordResponse::Unavailable).
    pub claim_wait: Duration,
    /// How long an in-flight claim lives if its holder never finishes (it died).
    pub inflight_ttl: Duration,
    /// How long a completed send's receipt is remembered.
    pub receipt_ttl: Duration,
    /// How long the winner of a call's answer is remembered.
    pub answer_ttl: Duration,
    /// Messages kept per thread for replay (`--window-messages`).
    pub window_messages: usize,
    /// Bytes kept per thread for replay, about (`--window-bytes`).
    pub window_bytes: usize,
    /// How long a thread's window and counter outlive its last message (`--window-ttl`).
    pub window_ttl: Duration,
    /// Keys the digests idempotency records keep of a send's parameters; the same secret
    /// on every node (`--idempotency-secret`), else digests of different nodes cannot be
    /// compared and a reused `clientMessageId` is caught only on the node that saw it.
    pub digester: SendDigester,
}

impl RedisOptions {
    /// Defaults for `url`, `prefix` and `node`: a random instance, heartbeat 2 s, TTL 6 s,
    /// snapshot every 30 s.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>, node: NodeId) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            node,
            instance: crate::node::random_instance_id(),
            heartbeat: Duration::from_secs(2),
            node_ttl: Duration::from_secs(6),
            snapshot_every: Duration::from_secs(30),
            publish_queue: 8192,
            command_timeout: Duration::from_secs(1),
            claim_wait: Duration::from_secs(30),
            inflight_ttl: Duration::from_secs(60),
            receipt_ttl: Duration::from_secs(600),
            answer_ttl: Duration::from_secs(600),
            window_messages: 100,
            window_bytes: 64 * 1024,
            window_ttl: Duration::from_secs(600),
            digester: SendDigester::random(),
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .field("instance", &self.instance)
            .field("heartbeat", &self.heartbeat)
            .field("node_ttl", &self.node_ttl)
            .field("snapshot_every", &self.snapshot_every)
            .field("publish_queue", &self.publish_queue)
            .field("command_timeout", &self.command_timeout)
            .field("claim_wait", &self.claim_wait)
            .finish_non_exhaustive()
    }
}

/// `redis://user:secret@host/` as `redis://user:[redacted]@host/`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:[redacted]@{host}")
        }
        None => url.to_owned(),
    }
}

/// Why [`connect`] refused the options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The URL is not a Redis URL.
    #[error("invalid redis url: {0}")]
    Url(#[source] RedisError),
    /// The prefix is empty or holds whitespace.
    #[error("invalid redis prefix {0:?}: non-empty, no whitespace")]
    Prefix(String),
}

/// Starts the Redis link of this node: a broker and a coordinator sharing one command
/// connection. Returns at once (Redis may be down: the tasks keep trying); must be called
/// inside a tokio runtime.
///
/// # Errors
/// When the URL or the prefix is invalid.
pub fn connect(options: RedisOptions) -> Result<(RedisBroker, RedisCoordinator), RedisSetupError> {
    if options.prefix.is_empty() || options.prefix.chars().any(char::is_whitespace) {
        return Err(RedisSetupError::Prefix(options.prefix));
    }
    // `rediss://` goes through rustls on ring, the one provider this build has (as for the
    // site client); installing it is a no-op when it already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Small pipelined writes must not wait for delayed ACKs (Nagle): latency is the point.
    let info = options
        .url
        .as_str()
        .into_connection_info()
        .map_err(RedisSetupError::Url)?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info).map_err(RedisSetupError::Url)?;
    let status = Arc::new(RedisStatus::default());
    let (stop_tx, stop_rx) = watch::channel(());
    let guard = Arc::new(Guard(stop_tx));
    let inner = Arc::new(Inner {
        link: Link {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(options.command_timeout))
                .set_response_timeout(Some(options.command_timeout)),
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            wake: Notify::new(),
        },
        keys: Keys::new(&options.prefix),
        status,
        subscribers: Mutex::new(Vec::new()),
        need_sync: AtomicBool::new(true),
        watch: Mutex::new(NodeWatch::new(
            Instant::now(),
            options.node.clone(),
            LivenessConfig {
                ttl: options.node_ttl,
                // A node is judged by its key only after every live node could reconnect
                // and write it (Redis may have restarted empty): a TTL, and at least two
                // of the longest reconnection backoffs.
                grace: options.node_ttl.max(BACKOFF_MAX * 2),
                snapshot_every: options.snapshot_every,
            },
        )),
        options,
    });
    let (publish_tx, publish_rx) = mpsc::channel(inner.options.publish_queue.max(1));
    tokio::spawn(link::maintain(Arc::clone(&inner), stop_rx.clone()));
    tokio::spawn(link::publisher(
        Arc::clone(&inner),
        publish_rx,
        stop_rx.clone(),
    ));
    tokio::spawn(link::subscriber(Arc::clone(&inner), stop_rx.clone()));
    tokio::spawn(liveness::heartbeat(Arc::clone(&inner), stop_rx));
    let broker = RedisBroker {
        inner: Arc::clone(&inner),
        publish: publish_tx,
        _guard: Arc::clone(&guard),
    };
    let coordinator = RedisCoordinator {
        inner,
        _guard: guard,
    };
    Ok((broker, coordinator))
}

/// Stops the background tasks when the last handle goes.
struct Guard(#[allow(dead_code)] watch::Sender<()>);

struct Keys {
    events: String,
    bye: String,
    nodes: String,
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            events: format!("{prefix}:events"),
            bye: format!("{prefix}:bye"),
            nodes: format!("{prefix}:nodes"),
            prefix: prefix.to_owned(),
        }
    }

    fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// `/` is not an id character, so user and message id cannot run into each other.
    fn idem(&self, user: &UserId, id: &ClientMessageId) -> String {
        format!("{}:idem:{user}/{id}", self.prefix)
    }

    fn answer(&self, call: &CallId) -> String {
        format!("{}:answer:{call}", self.prefix)
    }
}

/// The command connection, re-established in the background when lost.
struct Link {
    client: redis::Client,
    config: AsyncConnectionConfig,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    wake: Notify,
}

struct Inner {
    link: Link,
    keys: Keys,
    status: Arc<RedisStatus>,
    subscribers: Mutex<Vec<mpsc::Sender<BrokerInput>>>,
    /// Set whenever a connection is lost; the next time both are up, a `Resync` goes out.
    need_sync: AtomicBool,
    /// Which other nodes are alive: fed by the subscriber (origins heard, goodbyes) and
    /// the heartbeat.
    watch: Mutex<NodeWatch>,
    options: RedisOptions,
}

/// A Lua script called by its SHA-1 (`EVALSHA`): a call sends 40 bytes instead of the
/// script's text, and Redis finds the compiled script without hashing that text again
/// (`EVAL` does both on every call, and a message's script is 2 KB).
/// [`Inner::query_scripts`] loads it when Redis does not know it. SHA-1 because Redis
/// names scripts by it; nothing relies on it as a secure hash.
pub(super) struct LuaScript {
    code: &'static str,
    sha1: String,
}

impl LuaScript {
    pub(super) fn new(code: &'static str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, code.as_bytes());
        let sha1 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Self { code, sha1 }
    }

    /// Adds a call of this script with `keys` keys to `pipe`; its keys, then its
    /// arguments, follow as the command's arguments.
    pub(super) fn call<'a>(
        &self,
        pipe: &'a mut redis::Pipeline,
        keys: usize,
    ) -> &'a mut redis::Pipeline {
        pipe.cmd("EVALSHA").arg(&self.sha1).arg(keys)
    }
}

/// Resolves when the handles are gone.
async fn stopped(stop: &mut watch::Receiver<()>) {
    while stop.changed().await.is_ok() {}
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `d` plus up to a quarter of it, so nodes do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

#[cfg(test)]
mod tests;
