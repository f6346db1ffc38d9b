//! The broker carries the Hub's publications between nodes, and the coordinator answers
//! the requests that need global agreement.
//!
//! Single node (the default, `HubConfig::cluster = false`): the Hub publishes nothing and
//! [`MemoryBroker`] loops whatever it is given back to its subscribers; [`MemoryCoordinator`]
//! keeps claims in a map with a TTL. A Redis implementation of both traits comes later; the
//! hub task only sees the traits.

mod memory;
pub mod redis;

use async_trait::async_trait;
use bbrt_protocol::hub::{BrokerMessage, CoordRequest, CoordResponse};
use tokio::sync::mpsc;

pub use self::memory::{MemoryBroker, MemoryCoordinator};
pub use self::redis::{BrokerInput, RedisBroker, RedisCoordinator, RedisOptions, RedisStatus};

/// Carries [`BrokerMessage`]s to every node (its own included: the Hub ignores those).
pub trait Broker: Send + Sync + 'static {
    /// Publishes without waiting; a broker that cannot deliver drops and counts.
    fn publish(&self, message: BrokerMessage);

    /// A new subscription to every publication.
    fn subscribe(&self) -> mpsc::Receiver<BrokerMessage>;
}

/// Answers [`CoordRequest`]s (idempotency claims, first answer wins).
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// The one answer to `request`; [`CoordResponse::Unavailable`] when the coordinator
    /// cannot be reached.
    async fn request(&self, request: CoordRequest) -> CoordResponse;
}
