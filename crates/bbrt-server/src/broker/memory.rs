//! In-process broker and coordinator.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bbrt_protocol::cluster::{ClaimTable, ClaimTtls, Claimed, SendDigest, SharedWindows};
use bbrt_protocol::hub::{BrokerMessage, CoordRequest, CoordResponse};
use tokio::sync::{Notify, mpsc};

use super::digest::{SendDigester, same_send};
use super::{Broker, BrokerInput, Coordinator, unix_now};

/// Loops publications back to in-process subscribers.
#[derive(Debug, Default)]
pub struct MemoryBroker {
    subscribers: Mutex<Vec<mpsc::Sender<BrokerInput>>>,
}

impl Broker for MemoryBroker {
    fn publish(&self, message: BrokerMessage) {
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subs.retain(|s| !s.is_closed());
        for s in subs.iter() {
            if s.try_send(BrokerInput::Message(message.clone())).is_err() {
                tracing::warn!("broker subscriber full; publication dropped");
            }
        }
    }

    fn subscribe(&self) -> mpsc::Receiver<BrokerInput> {
        let (tx, rx) = mpsc::channel(4096);
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }
}

/// Claims in a [`ClaimTable`] with a TTL; a claim held by another request is waited for.
/// Positions and windows in [`SharedWindows`] (asked for only by Hubs that are told they
/// share a broker, `--cluster`).
#[derive(Debug)]
pub struct MemoryCoordinator {
    table: Mutex<ClaimTable<KeyedDigest>>,
    windows: Mutex<SharedWindows>,
    /// Woken whenever a send is finished: a claim held meanwhile may be granted now.
    finished: Notify,
    /// Records keep a keyed digest of the send's parameters, never the text.
    digester: SendDigester,
}

/// A digest made by a [`SendDigester`]: under different keys they cannot be compared.
#[derive(Debug, Clone)]
struct KeyedDigest(String);

impl SendDigest for KeyedDigest {
    fn same_send(&self, other: &Self) -> bool {
        same_send(&self.0, &other.0)
    }
}

impl MemoryCoordinator {
    /// A coordinator that remembers claims for `ttl`, with a random digest key.
    pub fn new(ttl: Duration) -> Self {
        Self::with_digester(ttl, SendDigester::random())
    }

    /// A coordinator that remembers claims for `ttl` and digests with `digester`.
    pub fn with_digester(ttl: Duration, digester: SendDigester) -> Self {
        let defaults = bbrt_protocol::hub::HubConfig::default();
        Self {
            table: Mutex::new(ClaimTable::new(ClaimTtls::all(ttl))),
            windows: Mutex::new(SharedWindows::new(
                defaults.window_messages,
                defaults.window_bytes,
                defaults.window_threads,
            )),
            finished: Notify::new(),
            digester,
        }
    }

    /// Windows of at most `messages` messages and `bytes` bytes, for `threads` threads.
    #[must_use]
    pub fn with_windows(self, messages: usize, bytes: usize, threads: usize) -> Self {
        Self {
            windows: Mutex::new(SharedWindows::new(messages, bytes, threads)),
            ..self
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClaimTable<KeyedDigest>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        Self::new(Duration::from_secs(600))
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn request(&self, request: CoordRequest) -> CoordResponse {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .request(Instant::now(), &request);
        if let Some(answer) = windows {
            return answer;
        }
        loop {
            // Registered before the table is read, so a finish in between still wakes it.
            let finished = self.finished.notified();
            let now = Instant::now();
            let claimed = self.lock().request(now, unix_now(), &request, |f| {
                KeyedDigest(self.digester.digest(f))
            });
            match claimed {
                Claimed::Answer(answer) => {
                    if matches!(request, CoordRequest::FinishSend { .. }) {
                        self.finished.notify_waiters();
                    }
                    return answer;
                }
                // Another holder is posting: wait for its outcome (bounded by its hold).
                Claimed::Held { until } => {
                    let _ =
                        tokio::time::timeout(until.saturating_duration_since(now), finished).await;
                }
                other => {
                    tracing::warn!(answer = ?other, "unknown claim table answer");
                    return CoordResponse::Unavailable;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bbrt_protocol::hub::SendOutcome;

    use super::super::contract::{self, Cluster, claim, finish, receipt};
    use super::*;

    /// One coordinator stands for every node.
    #[derive(Default)]
    struct Shared(Arc<MemoryCoordinator>);

    #[async_trait]
    impl Cluster for Shared {
        async fn node(&self, _name: &str) -> Arc<dyn Coordinator> {
            Arc::clone(&self.0) as Arc<dyn Coordinator>
        }
    }

    contract::coordinator_contract!(Shared::default());

    #[tokio::test]
    async fn records_hold_no_text() {
        let c = MemoryCoordinator::default();
        assert_eq!(
            c.request(claim("u1", "c1", "hi")).await,
            CoordResponse::Claimed
        );
        let unconfirmed = SendOutcome::Unconfirmed {
            since_unix_secs: None,
        };
        c.request(finish("u1", "c1", "hi", unconfirmed)).await;
        c.request(claim("u1", "c2", "hi")).await;
        c.request(finish("u1", "c2", "hi", SendOutcome::Stored(receipt())))
            .await;
        let state = format!("{:?}", c.lock());
        assert!(
            state.contains("Unconfirmed") && state.contains("Done"),
            "{state}"
        );
        assert!(!state.contains("hi"), "no text in the record: {state}");
    }
}
