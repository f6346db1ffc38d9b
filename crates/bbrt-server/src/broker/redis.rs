//! Scale-out through Redis: a [`Broker`] over pub/sub, node liveness through heartbeat keys,
//! and a [`Coordinator`] over `SET NX` keys.
//!
//! Every node publishes [`BrokerMessage`] JSON on one channel, `<prefix>:events`, and
//! receives everything on it (one channel is plenty at our scale: a node needs nearly every
//! event anyway, and one subscription keeps ordering per publisher). A node drops its own
//! publications when they come back.
//!
//! Nothing here ever blocks the hub task: [`RedisBroker::publish`] is a `try_send` onto a
//! bounded queue, emptied by one publisher task in pipelined batches. When the queue is full,
//! or Redis is unreachable, publications are dropped and counted ([`RedisStatus`]); the
//! periodic presence snapshot and the resynchronisation after every reconnect heal what was
//! lost. Background tasks reconnect with exponential backoff and stop when the last
//! [`RedisBroker`]/[`RedisCoordinator`] of a [`connect`] call is dropped.
//!
//! Liveness: each node writes `<prefix>:node:<id>` (its instance id) with a TTL of
//! [`RedisOptions::node_ttl`] every [`RedisOptions::heartbeat`], and adds itself to the set
//! `<prefix>:nodes`. Every heartbeat it reads the keys of the set's members: a member whose
//! key expired is announced as [`BrokerInput::NodeDown`] (and removed from the set), and so
//! is a member whose instance id changed (it restarted). A node cut off from Redis for longer than
//! the TTL announces every node it knew as down: they see it down too, and both sides serve
//! their own users until Redis is back and a [`BrokerInput::Resync`] restores the views.
//! A node that stops gracefully says goodbye ([`Broker::goodbye`]): it deletes its key,
//! leaves the set and publishes its id on `<prefix>:bye`, and the others announce it down at
//! once instead of after the TTL.
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

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bbrt_protocol::cluster::{Goodbye, LivenessConfig, NodeWatch};
use bbrt_protocol::hub::{
    BrokerMessage, CoordRequest, CoordResponse, SendFingerprint, SendOutcome, SendReceipt,
};
use bbrt_protocol::ids::{CallId, ClientMessageId, DeviceRef, InstanceId, NodeId, UserId};
use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, IntoConnectionInfo as _, RedisError};
use tokio::sync::{Notify, mpsc, watch};

use super::digest::same_send;
use super::{Broker, BrokerInput, Coordinator, SendDigester, unix_now};

/// Shortest wait before a reconnection attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Publications sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Inputs that may wait for the hub task on one subscription.
const SUBSCRIPTION_QUEUE: usize = 4096;
/// Longest a goodbye waits for queued publications and then for Redis.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);
/// Deletes an idempotency claim only if this node still holds it.
/// Claims a `clientMessageId`: a free key, or an unconfirmed record of the same send
/// (`ARGV[3]` is the claimant's digest; digests under other keys count as the same), is
/// taken with the in-flight value `ARGV[1]` for `ARGV[2]` ms. Answers `{1}` (claimed),
/// `{2, record}` (claimed over an unconfirmed record) or `{0, value}` (held or done).
const CLAIM_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, false}
end
local d = string.match(v, '^unconfirmed:%-?%d+:(.*)$')
if d then
  local ka = string.match(d, '^([^.]*)%.')
  local kb = string.match(ARGV[3], '^([^.]*)%.')
  if d == ARGV[3] or ka ~= kb then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return {2, v}
  end
end
return {0, v}
";

const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

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
    /// before answering [`CoordResponse::Unavailable`].
    pub claim_wait: Duration,
    /// How long an in-flight claim lives if its holder never finishes (it died).
    pub inflight_ttl: Duration,
    /// How long a completed send's receipt is remembered.
    pub receipt_ttl: Duration,
    /// How long the winner of a call's answer is remembered.
    pub answer_ttl: Duration,
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

/// Connection state and counters of the Redis link, shared with metrics and health.
#[derive(Debug, Default)]
pub struct RedisStatus {
    commands_up: AtomicBool,
    subscribed: AtomicBool,
    /// Publications sent to Redis.
    pub published: AtomicU64,
    /// Publications dropped because the outbound queue was full.
    pub publish_dropped: AtomicU64,
    /// Publications dropped because Redis was unreachable or refused them.
    pub publish_failed: AtomicU64,
    /// Publications of other nodes received.
    pub received: AtomicU64,
    /// Publications that were not broker messages of this version (ignored).
    pub bad_messages: AtomicU64,
    /// Connections (command and subscription) lost and re-established.
    pub reconnects: AtomicU64,
    /// Nodes announced down.
    pub nodes_down: AtomicU64,
    /// Other nodes this one currently sees alive.
    pub nodes_seen: AtomicU64,
    /// Coordination requests answered without Redis (unreachable, or the wait ran out).
    pub coord_unavailable: AtomicU64,
}

impl RedisStatus {
    /// Whether the command connection is up.
    pub fn commands_up(&self) -> bool {
        self.commands_up.load(Relaxed)
    }

    /// Whether the subscription is up.
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Relaxed)
    }

    /// Whether this node is cut off from the other nodes (either connection down).
    pub fn degraded(&self) -> bool {
        !self.commands_up() || !self.subscribed()
    }

    /// One line for health details.
    pub fn summary(&self) -> String {
        format!(
            "redis: {} (commands {}, subscription {}); publications dropped {}",
            if self.degraded() { "degraded" } else { "ok" },
            if self.commands_up() { "up" } else { "down" },
            if self.subscribed() { "up" } else { "down" },
            self.publish_dropped.load(Relaxed) + self.publish_failed.load(Relaxed),
        )
    }

    /// Prometheus text for these counters.
    pub fn render(&self, out: &mut String) {
        let gauges = [
            (
                "bbrt_redis_up",
                "Redis command connection up (1) or down (0).",
                u64::from(self.commands_up()),
            ),
            (
                "bbrt_redis_subscribed",
                "Redis subscription up (1) or down (0).",
                u64::from(self.subscribed()),
            ),
            (
                "bbrt_redis_degraded",
                "Cut off from the other nodes (1).",
                u64::from(self.degraded()),
            ),
            (
                "bbrt_redis_nodes_seen",
                "Other nodes this one sees alive.",
                self.nodes_seen.load(Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP bbrt_redis_publications_total Publications by outcome.\n\
             # TYPE bbrt_redis_publications_total counter"
        );
        for (outcome, counter) in [
            ("sent", &self.published),
            ("dropped_queue_full", &self.publish_dropped),
            ("dropped_unavailable", &self.publish_failed),
        ] {
            let value = counter.load(Relaxed);
            let _ = writeln!(
                out,
                "bbrt_redis_publications_total{{outcome=\"{outcome}\"}} {value}"
            );
        }
        let counters = [
            (
                "bbrt_redis_received_total",
                "Publications of other nodes received.",
                &self.received,
            ),
            (
                "bbrt_redis_bad_messages_total",
                "Publications that could not be parsed.",
                &self.bad_messages,
            ),
            (
                "bbrt_redis_reconnects_total",
                "Redis connections lost.",
                &self.reconnects,
            ),
            (
                "bbrt_redis_nodes_down_total",
                "Nodes announced down.",
                &self.nodes_down,
            ),
            (
                "bbrt_redis_coord_unavailable_total",
                "Coordination requests answered without Redis.",
                &self.coord_unavailable,
            ),
        ];
        for (name, help, counter) in counters {
            let value = counter.load(Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
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
    tokio::spawn(maintain(Arc::clone(&inner), stop_rx.clone()));
    tokio::spawn(publisher(Arc::clone(&inner), publish_rx, stop_rx.clone()));
    tokio::spawn(subscriber(Arc::clone(&inner), stop_rx.clone()));
    tokio::spawn(heartbeat(Arc::clone(&inner), stop_rx));
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

/// Publishes and subscribes through Redis pub/sub.
pub struct RedisBroker {
    inner: Arc<Inner>,
    publish: mpsc::Sender<BrokerMessage>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.inner.options.prefix)
            .field("node", &self.inner.options.node)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// The link's state and counters.
    pub fn status(&self) -> Arc<RedisStatus> {
        Arc::clone(&self.inner.status)
    }
}

impl Broker for RedisBroker {
    fn publish(&self, message: BrokerMessage) {
        if self.publish.try_send(message).is_err() {
            let dropped = self.inner.status.publish_dropped.fetch_add(1, Relaxed);
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = dropped + 1,
                    "redis publish queue full; publications dropped"
                );
            }
        }
    }

    fn goodbye(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // What the hub published last goes out before the goodbye.
            let deadline = Instant::now() + GOODBYE_WAIT;
            while self.publish.capacity() < self.publish.max_capacity() && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let me = self.inner.options.node.as_str();
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(self.inner.keys.node(me)).ignore();
            pipe.cmd("SREM")
                .arg(&self.inner.keys.nodes)
                .arg(me)
                .ignore();
            pipe.cmd("PUBLISH")
                .arg(&self.inner.keys.bye)
                .arg(me)
                .ignore();
            let said = tokio::time::timeout(GOODBYE_WAIT, self.inner.query::<()>(&pipe)).await;
            if matches!(said, Ok(Some(()))) {
                tracing::info!("said goodbye to the other nodes");
            } else {
                tracing::warn!(
                    "could not say goodbye through redis; the others will see this node's heartbeat expire"
                );
            }
        })
    }

    /// Other nodes' publications, lost nodes, and when to resynchronise or publish a
    /// snapshot.
    fn subscribe(&self) -> mpsc::Receiver<BrokerInput> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_QUEUE);
        let mut subs = self.inner.lock_subscribers();
        if !self.inner.need_sync.load(Relaxed) {
            // The link came up before this subscription: it missed that `Resync`.
            let _ = tx.try_send(BrokerInput::Resync);
        }
        subs.push(tx);
        rx
    }
}

/// Idempotency claims and first-answer-wins through Redis keys. When Redis cannot be
/// reached it answers [`CoordResponse::Unavailable`] and nothing else: what to do then is
/// the Hub's degraded policy (a call still ringing on this node is answered by its first
/// local device; a send with a `clientMessageId` goes through, deduplicated on this node).
pub struct RedisCoordinator {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordinator")
            .field("prefix", &self.inner.options.prefix)
            .field("node", &self.inner.options.node)
            .finish_non_exhaustive()
    }
}

impl RedisCoordinator {
    /// The link's state and counters.
    pub fn status(&self) -> Arc<RedisStatus> {
        Arc::clone(&self.inner.status)
    }

    async fn claim_send(
        &self,
        user: &UserId,
        id: &ClientMessageId,
        fingerprint: SendFingerprint,
    ) -> CoordResponse {
        let key = self.inner.keys.idem(user, id);
        let mine = format!("inflight:{}", self.inner.options.node);
        let digest = self.inner.options.digester.digest(fingerprint);
        let ttl = millis(self.inner.options.inflight_ttl);
        let deadline = Instant::now() + self.inner.options.claim_wait;
        let mut delay = Duration::from_millis(10);
        loop {
            let mut pipe = redis::pipe();
            pipe.cmd("EVAL")
                .arg(CLAIM_SCRIPT)
                .arg(1)
                .arg(&key)
                .arg(&mine)
                .arg(ttl)
                .arg(&digest);
            let Some(((status, value),)) =
                self.inner.query::<((i64, Option<String>),)>(&pipe).await
            else {
                return self.unavailable();
            };
            match (status, value) {
                (1, _) => return CoordResponse::Claimed,
                (2, Some(record)) => {
                    let since_unix_secs = record
                        .strip_prefix("unconfirmed:")
                        .and_then(|r| r.split(':').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(unix_now);
                    return CoordResponse::Unconfirmed { since_unix_secs };
                }
                (_, Some(v)) if v.starts_with("unconfirmed:") => return CoordResponse::Conflict,
                (_, Some(v)) if v.starts_with("inflight:") => {}
                (_, Some(v)) => {
                    let record = serde_json::from_str::<serde_json::Value>(&v);
                    let stored_digest = record
                        .as_ref()
                        .ok()
                        .and_then(|r| r.get("digest"))
                        .and_then(serde_json::Value::as_str);
                    // A record from before digests were kept cannot be compared.
                    if stored_digest.is_some_and(|d| !same_send(d, &digest)) {
                        return CoordResponse::Conflict;
                    }
                    return match serde_json::from_str::<SendReceipt>(&v) {
                        Ok(receipt) => CoordResponse::Done(receipt),
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable idempotency record");
                            self.unavailable()
                        }
                    };
                }
                // Released or expired between the script's read and ours: claim again
                // (after a pause, so that even a misbehaving server cannot make this spin).
                (_, None) => {}
            }
            // Another node is posting this message: wait for its outcome.
            if Instant::now() + delay > deadline {
                tracing::info!(%user, "idempotency claim still in flight elsewhere; giving up waiting");
                return self.unavailable();
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    async fn finish_send(
        &self,
        user: &UserId,
        id: &ClientMessageId,
        fingerprint: SendFingerprint,
        outcome: SendOutcome,
    ) -> CoordResponse {
        let key = self.inner.keys.idem(user, id);
        let digest = self.inner.options.digester.digest(fingerprint);
        let receipt_ttl = millis(self.inner.options.receipt_ttl);
        let mut cmd;
        match outcome {
            SendOutcome::Stored(receipt) => {
                let mut record = serde_json::to_value(&receipt).unwrap_or_default();
                record["digest"] = digest.into();
                cmd = redis::cmd("SET");
                cmd.arg(&key)
                    .arg(record.to_string())
                    .arg("PX")
                    .arg(receipt_ttl);
            }
            SendOutcome::Unconfirmed { since_unix_secs } => {
                let now = unix_now();
                let since = since_unix_secs.map_or(now, |s| s.min(now));
                cmd = redis::cmd("SET");
                cmd.arg(&key)
                    .arg(format!("unconfirmed:{since}:{digest}"))
                    .arg("PX")
                    .arg(receipt_ttl);
            }
            _ => {
                cmd = redis::cmd("EVAL");
                cmd.arg(RELEASE_SCRIPT)
                    .arg(1)
                    .arg(&key)
                    .arg(format!("inflight:{}", self.inner.options.node));
            }
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd).ignore();
        match self.inner.query::<()>(&pipe).await {
            Some(()) => CoordResponse::Ok,
            None => self.unavailable(),
        }
    }

    async fn claim_answer(&self, call: CallId, device: DeviceRef) -> CoordResponse {
        let key = self.inner.keys.answer(&call);
        let json = serde_json::to_string(&device).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(&json)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.inner.options.answer_ttl));
        pipe.cmd("GET").arg(&key);
        match self
            .inner
            .query::<(Option<String>, Option<String>)>(&pipe)
            .await
        {
            Some((Some(_), _)) => CoordResponse::Won,
            Some((None, Some(winner))) if winner == json => CoordResponse::Won,
            Some((None, _)) => CoordResponse::Lost,
            None => self.unavailable(),
        }
    }

    fn unavailable(&self) -> CoordResponse {
        self.inner.status.coord_unavailable.fetch_add(1, Relaxed);
        CoordResponse::Unavailable
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    async fn request(&self, request: CoordRequest) -> CoordResponse {
        match request {
            CoordRequest::ClaimSend {
                user,
                client_message_id,
                fingerprint,
            } => {
                self.claim_send(&user, &client_message_id, fingerprint)
                    .await
            }
            CoordRequest::FinishSend {
                user,
                client_message_id,
                fingerprint,
                outcome,
            } => {
                self.finish_send(&user, &client_message_id, fingerprint, outcome)
                    .await
            }
            CoordRequest::ClaimAnswer { call, device } => self.claim_answer(call, device).await,
            other => {
                tracing::warn!(request = ?other, "unknown coordination request");
                CoordResponse::Unavailable
            }
        }
    }
}

/// Single use of connection tickets, cluster-wide: `SET <prefix>:ticket:<jti> 1 NX PX`,
/// so whichever node sets it first takes the ticket. Unreachable Redis refuses the ticket
/// (never a local fallback: another node could let the same ticket in).
#[async_trait]
impl crate::ticket::TicketLedger for RedisCoordinator {
    async fn take(&self, jti: &str, ttl: Duration) -> Result<bool, ()> {
        let key = format!("{}:ticket:{jti}", self.inner.keys.prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        match self.inner.query::<(Option<String>,)>(&pipe).await {
            Some((Some(_),)) => Ok(true),
            Some((None,)) => Ok(false),
            None => Err(()),
        }
    }
}

/// Records a site event's id with its body's digest unless it is known: answers the digest
/// already recorded, or nil after recording `ARGV[1]` for `ARGV[2]` ms. A script rather than
/// `SET NX GET`, which Redis before 7.0 refuses.
const SITE_EVENT_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// The site-event replay ledger, cluster-wide: `<prefix>:site-event:<id>` holds the body's
/// SHA-256 for the ledger's time, so a duplicate delivered to another node is known there.
/// Unreachable Redis refuses the event (503; never a local fallback, since another node
/// may have acted on it).
#[async_trait]
impl crate::site_events::SiteEventLedger for RedisCoordinator {
    async fn record(
        &self,
        id: &str,
        digest: &str,
        ttl: Duration,
    ) -> Result<crate::site_events::Recorded, ()> {
        use crate::site_events::Recorded;
        let key = format!("{}:site-event:{id}", self.inner.keys.prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(SITE_EVENT_SCRIPT)
            .arg(1)
            .arg(&key)
            .arg(digest)
            .arg(millis(ttl));
        match self.inner.query::<(Option<String>,)>(&pipe).await {
            Some((None,)) => Ok(Recorded::New),
            Some((Some(known),)) if known == digest => Ok(Recorded::Duplicate),
            Some((Some(_),)) => Ok(Recorded::Reused),
            None => Err(()),
        }
    }
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

impl Inner {
    /// A node said goodbye (`payload`: its id): announce it down now.
    async fn departed(&self, origins: &mut HashSet<String>, payload: &[u8]) {
        let Some(node) = std::str::from_utf8(payload)
            .ok()
            .and_then(|id| NodeId::new(id).ok())
        else {
            self.status.bad_messages.fetch_add(1, Relaxed);
            return;
        };
        let goodbye = self.watch().goodbye(node.clone());
        match goodbye {
            Goodbye::SameIdAsMine => {
                tracing::info!(%node, "a process with this node's id said goodbye");
                self.emit(BrokerInput::NodeDown(node)).await;
            }
            _ => {
                tracing::info!(%node, "a node said goodbye");
                origins.remove(node.as_str());
                self.node_down(node).await;
            }
        }
    }

    /// The liveness state machine (held only between awaits).
    fn watch(&self) -> std::sync::MutexGuard<'_, NodeWatch> {
        self.watch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<BrokerInput>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn connection(&self) -> Option<(u64, MultiplexedConnection)> {
        self.link
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `pipe`; `None` when Redis is unreachable (the link then reconnects).
    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let (generation, mut conn) = self.connection()?;
        let timeout = self.options.command_timeout;
        match tokio::time::timeout(timeout, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.failed(generation, Some(&e));
                None
            }
            Err(_) => {
                self.failed(generation, None);
                None
            }
        }
    }

    /// A command failed: drop the connection if it is broken (`None`: timed out).
    fn failed(&self, generation: u64, error: Option<&RedisError>) {
        if let Some(e) = error {
            let broken = e.is_unrecoverable_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_io_error();
            if !broken {
                tracing::warn!(error = %e, "redis command failed");
                return;
            }
        }
        let mut current = self
            .link
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
            drop(current);
            self.status.commands_up.store(false, Relaxed);
            self.status.reconnects.fetch_add(1, Relaxed);
            self.need_sync.store(true, Relaxed);
            tracing::warn!(error = ?error.map(ToString::to_string), "redis connection lost; reconnecting");
            self.link.wake.notify_one();
        }
    }

    /// Hands `input` to every subscriber, waiting while one is full.
    async fn emit(&self, input: BrokerInput) {
        let targets: Vec<mpsc::Sender<BrokerInput>> = {
            let mut subs = self.lock_subscribers();
            subs.retain(|tx| !tx.is_closed());
            subs.clone()
        };
        for tx in targets {
            let _ = tx.send(input.clone()).await;
        }
    }

    /// Called when a connection came up: once both are, ask for a resynchronisation.
    async fn maybe_resync(&self) {
        if self.status.commands_up()
            && self.status.subscribed()
            && self.need_sync.swap(false, Relaxed)
        {
            tracing::info!(node = %self.options.node, "redis link up; resynchronising");
            self.emit(BrokerInput::Resync).await;
        }
    }

    /// Writes this node's heartbeat key and adds it to the node set.
    fn register(&self) -> redis::Pipeline {
        let me = self.options.node.as_str();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.node(me))
            .arg(self.options.instance.as_str())
            .arg("PX")
            .arg(millis(self.options.node_ttl))
            .ignore();
        pipe.cmd("SADD").arg(&self.keys.nodes).arg(me).ignore();
        // Any live node keeps the set; once every node is gone it does not linger.
        pipe.cmd("PEXPIRE")
            .arg(&self.keys.nodes)
            .arg(millis(self.options.node_ttl * 20))
            .ignore();
        pipe
    }

    /// The command connection's generation, if it is up.
    fn generation(&self) -> Option<u64> {
        self.link
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(g, _)| *g)
    }

    async fn node_down(&self, node: NodeId) {
        tracing::info!(%node, "node down");
        self.status.nodes_down.fetch_add(1, Relaxed);
        self.emit(BrokerInput::NodeDown(node)).await;
    }
}

/// Resolves when the handles are gone.
async fn stopped(stop: &mut watch::Receiver<()>) {
    while stop.changed().await.is_ok() {}
}

/// Keeps the command connection up.
async fn maintain(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
    let mut backoff = BACKOFF_MIN;
    let mut warned = false;
    loop {
        if inner.connection().is_none() {
            // Registered (heartbeat key and set) before anything is published through it, so
            // no node hears of this one before it can be found down.
            let attempt = tokio::time::timeout(inner.options.command_timeout * 2, async {
                let mut conn = inner
                    .link
                    .client
                    .get_multiplexed_async_connection_with_config(&inner.link.config)
                    .await?;
                inner.register().query_async::<()>(&mut conn).await?;
                Ok::<_, RedisError>(conn)
            });
            let result = tokio::select! {
                r = attempt => r,
                () = stopped(&mut stop) => return,
            };
            match result {
                Ok(Ok(conn)) => {
                    let generation = inner.link.generation.fetch_add(1, Relaxed) + 1;
                    *inner
                        .link
                        .current
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some((generation, conn));
                    inner.status.commands_up.store(true, Relaxed);
                    tracing::info!("redis connected");
                    backoff = BACKOFF_MIN;
                    warned = false;
                    inner.maybe_resync().await;
                }
                failure => {
                    if !warned {
                        let error = match failure {
                            Ok(Err(e)) => e.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        tracing::warn!(%error, "cannot reach redis; retrying with backoff");
                        warned = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(jitter(backoff)) => {}
                        () = stopped(&mut stop) => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        tokio::select! {
            () = inner.link.wake.notified() => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Empties the outbound queue into Redis, in pipelined batches, in order.
async fn publisher(
    inner: Arc<Inner>,
    mut queue: mpsc::Receiver<BrokerMessage>,
    mut stop: watch::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let n = tokio::select! {
            n = queue.recv_many(&mut batch, PUBLISH_BATCH) => n,
            () = stopped(&mut stop) => return,
        };
        if n == 0 {
            return;
        }
        let count = batch.len() as u64;
        let mut pipe = redis::pipe();
        for message in batch.drain(..) {
            pipe.cmd("PUBLISH")
                .arg(&inner.keys.events)
                .arg(message.to_json())
                .ignore();
        }
        if inner.query::<()>(&pipe).await.is_some() {
            inner.status.published.fetch_add(count, Relaxed);
        } else {
            let failed = inner.status.publish_failed.fetch_add(count, Relaxed);
            tracing::debug!(
                failed = failed + count,
                "redis unreachable; publications dropped"
            );
        }
    }
}

/// Keeps the subscription up and forwards what arrives.
async fn subscriber(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
    let mut backoff = BACKOFF_MIN;
    let mut origins = HashSet::new();
    let timeout = inner.options.command_timeout;
    loop {
        let attempt = async {
            let pubsub = tokio::time::timeout(timeout * 2, inner.link.client.get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            let (mut sink, stream) = pubsub.split();
            tokio::time::timeout(
                timeout,
                sink.subscribe(&[&inner.keys.events, &inner.keys.bye]),
            )
            .await
            .ok()?
            .ok()?;
            Some((sink, stream))
        };
        let connected = tokio::select! {
            c = attempt => c,
            () = stopped(&mut stop) => return,
        };
        let Some((mut sink, mut stream)) = connected else {
            tokio::select! {
                () = tokio::time::sleep(jitter(backoff)) => {}
                () = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        };
        backoff = BACKOFF_MIN;
        inner.status.subscribed.store(true, Relaxed);
        tracing::info!(channel = %inner.keys.events, "redis subscribed");
        inner.maybe_resync().await;
        let mut ping = tokio::time::interval(inner.options.heartbeat);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    if message.get_channel_name() == inner.keys.bye {
                        inner.departed(&mut origins, message.get_payload_bytes()).await;
                        continue;
                    }
                    match BrokerMessage::from_json(message.get_payload_bytes()) {
                        Ok(m) if m.instance == inner.options.instance => {}
                        Ok(m) => {
                            inner.status.received.fetch_add(1, Relaxed);
                            if !origins.contains(m.origin.as_str()) {
                                origins.insert(m.origin.as_str().to_owned());
                                inner.watch().heard(m.origin.clone());
                            }
                            inner.emit(BrokerInput::Message(m)).await;
                        }
                        Err(e) => {
                            inner.status.bad_messages.fetch_add(1, Relaxed);
                            tracing::debug!(error = %e, "ignoring a publication that is not a broker message");
                        }
                    }
                }
                _ = ping.tick() => {
                    // Notices a dead peer that never closed the connection.
                    let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
                () = stopped(&mut stop) => return,
            }
        }
        inner.status.subscribed.store(false, Relaxed);
        inner.status.reconnects.fetch_add(1, Relaxed);
        inner.need_sync.store(true, Relaxed);
        tracing::warn!("redis subscription lost; resubscribing");
    }
}

/// Writes this node's heartbeat, feeds what it sees to the [`NodeWatch`], and acts on its
/// verdicts: nodes down, nodes to forget, resynchronisations, presence snapshots.
async fn heartbeat(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
    let mut tick = tokio::time::interval(inner.options.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        let snapshot = inner
            .watch()
            .snapshot_due(Instant::now(), inner.status.degraded());
        if snapshot {
            inner.emit(BrokerInput::Snapshot).await;
        }
        let generation = inner.generation();
        inner.watch().connection(Instant::now(), generation);
        let mut pipe = inner.register();
        pipe.cmd("SMEMBERS").arg(&inner.keys.nodes);
        let Some((members,)) = inner.query::<(Vec<String>,)>(&pipe).await else {
            let lost = inner.watch().cut_off(Instant::now());
            if !lost.is_empty() {
                tracing::warn!(
                    "cut off from redis for longer than the node TTL; other nodes are now unknown"
                );
                inner.status.nodes_seen.store(0, Relaxed);
                for node in lost {
                    inner.node_down(node).await;
                }
            }
            continue;
        };
        // A member that is no node id was never written by a node: drop it from the set.
        let (members, invalid): (Vec<_>, Vec<_>) = members
            .into_iter()
            .map(|m| NodeId::new(&m).map_err(|_| m))
            .partition(Result::is_ok);
        let invalid: Vec<String> = invalid.into_iter().filter_map(Result::err).collect();
        let candidates = inner
            .watch()
            .contacted(Instant::now(), members.into_iter().filter_map(Result::ok));
        if !invalid.is_empty() {
            let mut pipe = redis::pipe();
            pipe.cmd("SREM")
                .arg(&inner.keys.nodes)
                .arg(invalid)
                .ignore();
            let _ = inner.query::<()>(&pipe).await;
        }
        if candidates.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        let mut mget = redis::cmd("MGET");
        for node in &candidates {
            mget.arg(inner.keys.node(node.as_str()));
        }
        pipe.add_command(mget);
        let instances = match inner.query::<(Vec<Option<String>>,)>(&pipe).await {
            Some((instances,)) if instances.len() == candidates.len() => instances,
            _ => continue,
        };
        let (verdict, seen) = {
            let mut watch = inner.watch();
            let verdict = watch.judge(Instant::now(), candidates.into_iter().zip(instances));
            (verdict, watch.seen())
        };
        inner.status.nodes_seen.store(seen as u64, Relaxed);
        if !verdict.forget.is_empty() {
            let mut pipe = redis::pipe();
            let forget: Vec<&str> = verdict.forget.iter().map(NodeId::as_str).collect();
            pipe.cmd("SREM").arg(&inner.keys.nodes).arg(forget).ignore();
            let _ = inner.query::<()>(&pipe).await;
        }
        for node in &verdict.restarted {
            tracing::info!(%node, "node restarted");
        }
        for node in verdict.down {
            inner.node_down(node).await;
        }
        if !verdict.restarted.is_empty() {
            // The restarted node answers with what it holds now.
            inner.emit(BrokerInput::Resync).await;
        }
    }
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
