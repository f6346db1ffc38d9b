//! Liveness through Redis: each heartbeat registers this node and feeds what it reads (the
//! node set, the candidates' keys) and what the subscription heard (origins, goodbyes) to
//! the [`NodeWatch`], then acts on its verdicts.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use bbrt_protocol::cluster::{Goodbye, NodeWatch};
use bbrt_protocol::ids::NodeId;
use tokio::sync::watch;

use super::{Inner, millis, stopped};
use crate::broker::BrokerInput;

impl Inner {
    /// A node said goodbye (`payload`: its id): announce it down now.
    pub(super) async fn departed(&self, origins: &mut HashSet<String>, payload: &[u8]) {
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
    pub(super) fn watch(&self) -> std::sync::MutexGuard<'_, NodeWatch> {
        self.watch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes this node's heartbeat key and adds it to the node set.
    pub(super) fn register(&self) -> redis::Pipeline {
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

    pub(super) async fn node_down(&self, node: NodeId) {
        tracing::info!(%node, "node down");
        self.status.nodes_down.fetch_add(1, Relaxed);
        self.emit(BrokerInput::NodeDown(node)).await;
    }
}

/// Writes this node's heartbeat, feeds what it sees to the [`NodeWatch`], and acts on its
/// verdicts: nodes down, nodes to forget, resynchronisations, presence snapshots.
pub(super) async fn heartbeat(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
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
