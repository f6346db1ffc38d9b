//! In-process broker and coordinator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bbrt_protocol::hub::{BrokerMessage, CoordRequest, CoordResponse, SendReceipt};
use bbrt_protocol::ids::{CallId, ClientMessageId, DeviceRef, UserId};
use tokio::sync::{Notify, mpsc};

use super::{Broker, BrokerInput, Coordinator};

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

#[derive(Debug)]
enum Claim {
    InFlight {
        until: Instant,
        done: Arc<Notify>,
    },
    Done {
        until: Instant,
        receipt: SendReceipt,
    },
}

#[derive(Debug, Default)]
struct State {
    sends: HashMap<(UserId, ClientMessageId), Claim>,
    answers: HashMap<CallId, (DeviceRef, Instant)>,
    ops: u64,
}

/// Claims in a map with a TTL.
#[derive(Debug)]
pub struct MemoryCoordinator {
    state: Mutex<State>,
    /// How long a claim in flight or a completed send is remembered.
    ttl: Duration,
}

impl MemoryCoordinator {
    /// A coordinator that remembers claims for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        Self::new(Duration::from_secs(600))
    }
}

impl State {
    /// Drops expired entries now and then (every 1024 operations).
    fn sweep(&mut self, now: Instant) {
        self.ops += 1;
        if self.ops % 1024 != 0 {
            return;
        }
        self.sends.retain(|_, c| match c {
            Claim::InFlight { until, .. } | Claim::Done { until, .. } => *until > now,
        });
        self.answers.retain(|_, (_, until)| *until > now);
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn request(&self, request: CoordRequest) -> CoordResponse {
        match request {
            CoordRequest::ClaimSend {
                user,
                client_message_id,
            } => {
                let key = (user, client_message_id);
                loop {
                    let wait = {
                        let now = Instant::now();
                        let mut s = self.lock();
                        s.sweep(now);
                        match s.sends.get(&key) {
                            Some(Claim::Done { until, receipt }) if *until > now => {
                                return CoordResponse::Done(receipt.clone());
                            }
                            Some(Claim::InFlight { until, done }) if *until > now => {
                                Arc::clone(done)
                            }
                            _ => {
                                let claim = Claim::InFlight {
                                    until: now + self.ttl,
                                    done: Arc::new(Notify::new()),
                                };
                                s.sends.insert(key, claim);
                                return CoordResponse::Claimed;
                            }
                        }
                    };
                    // Another holder is posting: wait for its outcome (bounded by the TTL).
                    let _ = tokio::time::timeout(self.ttl, wait.notified()).await;
                }
            }
            CoordRequest::FinishSend {
                user,
                client_message_id,
                receipt,
            } => {
                let now = Instant::now();
                let mut s = self.lock();
                let key = (user, client_message_id);
                let previous = match receipt {
                    Some(receipt) => s.sends.insert(
                        key,
                        Claim::Done {
                            until: now + self.ttl,
                            receipt,
                        },
                    ),
                    None => s.sends.remove(&key),
                };
                if let Some(Claim::InFlight { done, .. }) = previous {
                    done.notify_waiters();
                }
                CoordResponse::Ok
            }
            CoordRequest::ClaimAnswer { call, device } => {
                let now = Instant::now();
                let mut s = self.lock();
                s.sweep(now);
                match s.answers.get(&call) {
                    Some((winner, until)) if *until > now => {
                        if *winner == device {
                            CoordResponse::Won
                        } else {
                            CoordResponse::Lost
                        }
                    }
                    _ => {
                        s.answers.insert(call, (device, now + self.ttl));
                        CoordResponse::Won
                    }
                }
            }
            other => {
                tracing::warn!(request = ?other, "unknown coordination request");
                CoordResponse::Unavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbrt_protocol::ids::{MessageId, NodeId, ThreadId};

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().expect("valid id")
    }

    #[tokio::test]
    async fn claims_wait_for_the_holder_and_answers_are_first_wins() {
        let c = Arc::new(MemoryCoordinator::default());
        let claim = || CoordRequest::ClaimSend {
            user: id("u1"),
            client_message_id: id("c1"),
        };
        assert_eq!(c.request(claim()).await, CoordResponse::Claimed);
        let c2 = Arc::clone(&c);
        let waiter = tokio::spawn(async move {
            c2.request(CoordRequest::ClaimSend {
                user: id("u1"),
                client_message_id: id("c1"),
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let receipt = SendReceipt {
            id: id::<MessageId>("m1"),
            thread: id::<ThreadId>("t1"),
        };
        let finish = CoordRequest::FinishSend {
            user: id("u1"),
            client_message_id: id("c1"),
            receipt: Some(receipt.clone()),
        };
        assert_eq!(c.request(finish).await, CoordResponse::Ok);
        assert_eq!(
            waiter.await.expect("no panic"),
            CoordResponse::Done(receipt)
        );

        let dev = |n| DeviceRef {
            node: id::<NodeId>("n1"),
            conn: n,
        };
        let call: CallId = id("n1-1");
        assert_eq!(
            c.request(CoordRequest::ClaimAnswer {
                call: call.clone(),
                device: dev(1)
            })
            .await,
            CoordResponse::Won
        );
        assert_eq!(
            c.request(CoordRequest::ClaimAnswer {
                call: call.clone(),
                device: dev(2)
            })
            .await,
            CoordResponse::Lost
        );
        assert_eq!(
            c.request(CoordRequest::ClaimAnswer {
                call,
                device: dev(1)
            })
            .await,
            CoordResponse::Won
        );
    }
}
