//! The link to Redis: the command connection (re-established with backoff), the
//! publisher that empties the outbound queue, the subscription, and [`RedisBroker`].

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bbrt_protocol::hub::BrokerMessage;
use futures_util::StreamExt as _;
use redis::RedisError;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use super::{BACKOFF_MAX, BACKOFF_MIN, Guard, Inner, LuaScript, RedisStatus, jitter, stopped};
use crate::broker::{Broker, BrokerInput};

/// Publications sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Inputs that may wait for the hub task on one subscription.
const SUBSCRIPTION_QUEUE: usize = 4096;
/// Longest a goodbye waits for queued publications and then for Redis.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);
/// Publishes and subscribes through Redis pub/sub.
pub struct RedisBroker {
    pub(super) inner: Arc<Inner>,
    pub(super) publish: mpsc::Sender<BrokerMessage>,
    pub(super) _guard: Arc<Guard>,
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

impl Inner {
    pub(super) fn lock_subscribers(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<BrokerInput>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn connection(&self) -> Option<(u64, MultiplexedConnection)> {
        self.link
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `pipe`; `None` when Redis is unreachable (the link then reconnects). The
    /// connection bounds each request by [`RedisOptions::command_timeout`] itself
    /// (`set_response_timeout`): no second timer per command here.
    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Option<T> {
        let (generation, mut conn) = self.connection()?;
        let result = pipe.query_async::<T>(&mut conn).await;
        self.settle(generation, result)
    }

    /// Runs `pipe`, whose scripts are called by hash ([`LuaScript::call`]). When Redis does
    /// not know one (it restarted empty, or its script cache was flushed), loads `scripts`
    /// and runs `pipe` once more; `None` when Redis is unreachable.
    pub(super) async fn query_scripts<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        scripts: &[&LuaScript],
    ) -> Option<T> {
        let (generation, mut conn) = self.connection()?;
        let result = match pipe.query_async::<T>(&mut conn).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                let mut load = redis::pipe();
                for script in scripts {
                    load.cmd("SCRIPT").arg("LOAD").arg(script.code).ignore();
                }
                match load.query_async::<()>(&mut conn).await {
                    Ok(()) => pipe.query_async::<T>(&mut conn).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        self.settle(generation, result)
    }

    /// A command's outcome: its value, or `None` after noting the failure.
    fn settle<T>(&self, generation: u64, result: Result<T, RedisError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.failed(generation, &e);
                None
            }
        }
    }

    /// A command failed: drop the connection if it is broken (or timed out).
    fn failed(&self, generation: u64, error: &RedisError) {
        let broken = error.is_unrecoverable_error()
            || error.is_connection_dropped()
            || error.is_timeout()
            || error.is_io_error();
        if !broken {
            tracing::warn!(%error, "redis command failed");
            return;
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
            tracing::warn!(%error, "redis connection lost; reconnecting");
            self.link.wake.notify_one();
        }
    }

    /// Hands `input` to every subscriber, waiting while one is full.
    pub(super) async fn emit(&self, input: BrokerInput) {
        let targets: Vec<mpsc::Sender<BrokerInput>> = {
            let mut subs = self.lock_subscribers();
            subs.retain(|tx| !tx.is_closed());
            subs.clone()
        };
        // One subscriber (the Hub) is the rule: it gets the input itself, not a copy.
        let Some((last, others)) = targets.split_last() else {
            return;
        };
        for tx in others {
            let _ = tx.send(input.clone()).await;
        }
        let _ = last.send(input).await;
    }

    /// Called when a connection came up: once both are, ask for a resynchronisation.
    pub(super) async fn maybe_resync(&self) {
        if self.status.commands_up()
            && self.status.subscribed()
            && self.need_sync.swap(false, Relaxed)
        {
            tracing::info!(node = %self.options.node, "redis link up; resynchronising");
            self.emit(BrokerInput::Resync).await;
        }
    }

    /// The command connection's generation, if it is up.
    pub(super) fn generation(&self) -> Option<u64> {
        self.link
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(g, _)| *g)
    }
}

/// Keeps the command connection up.
pub(super) async fn maintain(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
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
pub(super) async fn publisher(
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
pub(super) async fn subscriber(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
    let mut backoff = BACKOFF_MIN;
    let mut origins = HashSet::new();
    let timeout = inner.options.command_timeout;
    let own = BrokerMessage::json_prefix(&inner.options.node, &inner.options.instance);
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
                    let payload = message.get_payload_bytes();
                    // This process's own publications come back too: half of what two
                    // nodes hear, dropped unparsed.
                    if payload.starts_with(&own) {
                        continue;
                    }
                    match BrokerMessage::from_json(payload) {
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
