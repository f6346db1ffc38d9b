//! The broker carries the Hub's publications between nodes, and the coordinator answers
//! the requests that need global agreement.
//!
//! Single node (the default, `HubConfig::cluster = false`): the Hub publishes nothing and
//! [`MemoryBroker`] loops whatever it is given back to its subscribers; [`MemoryCoordinator`]
//! keeps claims in a map with a TTL. With `--redis`, [`RedisBroker`] and [`RedisCoordinator`]
//! (see `docs/scaling.md`). The hub task only sees the traits.

#[cfg(test)]
mod contract;
mod digest;
mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use bbrt_protocol::hub::{BrokerMessage, CoordRequest, CoordResponse};
use bbrt_protocol::ids::NodeId;
use tokio::sync::mpsc;

pub use self::digest::SendDigester;
pub use self::memory::{MemoryBroker, MemoryCoordinator};
pub use self::redis::{RedisBroker, RedisCoordinator, RedisOptions, RedisStatus};

/// Carries [`BrokerMessage`]s to every node (its own included: the Hub ignores those).
pub trait Broker: Send + Sync + 'static {
    /// Publishes without waiting; a broker that cannot deliver drops and counts.
    fn publish(&self, message: BrokerMessage);

    /// A new subscription to every publication, and to what the broker learns about nodes.
    fn subscribe(&self) -> mpsc::Receiver<BrokerInput>;

    /// Tells the other nodes this one is leaving (the hub task's last step of a graceful
    /// stop, when it publishes nothing more), so its users go offline there now rather
    /// than when its heartbeat expires.
    /// Best effort and bounded in time; a single node has no one to tell.
    fn goodbye(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// What a broker subscription tells the hub task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerInput {
    /// A publication (the Hub ignores its own): `Input::Broker`.
    Message(BrokerMessage),
    /// A node stopped heartbeating (or restarted): `Input::NodeDown`.
    NodeDown(NodeId),
    /// Publications may have been lost (first subscription, or the broker came back):
    /// `Input::Resync`.
    Resync,
    /// Periodic (heals lost presence publications): `Input::PresenceSnapshot`.
    Snapshot,
}

/// Answers [`CoordRequest`]s (idempotency claims, first answer wins).
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// The one answer to `request`; [`CoordResponse::Unavailable`] when the coordinator
    /// cannot be reached.
    async fn request(&self, request: CoordRequest) -> CoordResponse;
}

/// The wall clock in Unix seconds, as idempotency records note when an outcome became
/// unknown (the site's `date_sent` is compared with it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
