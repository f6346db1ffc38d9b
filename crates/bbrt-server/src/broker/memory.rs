//! In-process broker and coordinator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bbrt_protocol::hub::{BrokerMessage, CoordRequest, CoordResponse, SendOutcome, SendReceipt};
use bbrt_protocol::ids::{CallId, ClientMessageId, DeviceRef, UserId};
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

#[derive(Debug)]
enum Claim {
    InFlight {
        until: Instant,
        done: Arc<Notify>,
    },
    Done {
        until: Instant,
        receipt: SendReceipt,
        digest: String,
    },
    /// The outcome is unknown: the next claim is granted with "reconcile first".
    Unconfirmed {
        until: Instant,
        since_unix_secs: i64,
        digest: String,
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
    /// Records keep a keyed digest of the send's parameters, never the text.
    digester: SendDigester,
}

impl MemoryCoordinator {
    /// A coordinator that remembers claims for `ttl`, with a random digest key.
    pub fn new(ttl: Duration) -> Self {
        Self::with_digester(ttl, SendDigester::random())
    }

    /// A coordinator that remembers claims for `ttl` and digests with `digester`.
    pub fn with_digester(ttl: Duration, digester: SendDigester) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ttl,
            digester,
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
            Claim::InFlight { until, .. }
            | Claim::Done { until, .. }
            | Claim::Unconfirmed { until, .. } => *until > now,
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
                fingerprint,
            } => {
                let key = (user, client_message_id);
                let digest = self.digester.digest(fingerprint);
                loop {
                    let wait = {
                        let now = Instant::now();
                        let mut s = self.lock();
                        s.sweep(now);
                        let in_flight = || Claim::InFlight {
                            until: now + self.ttl,
                            done: Arc::new(Notify::new()),
                        };
                        match s.sends.get(&key) {
                            Some(
                                Claim::Done {
                                    until, digest: d, ..
                                }
                                | Claim::Unconfirmed {
                                    until, digest: d, ..
                                },
                            ) if *until > now && !same_send(d, &digest) => {
                                return CoordResponse::Conflict;
                            }
                            Some(Claim::Done { until, receipt, .. }) if *until > now => {
                                return CoordResponse::Done(receipt.clone());
                            }
                            Some(Claim::Unconfirmed {
                                until,
                                since_unix_secs,
                                ..
                            }) if *until > now => {
                                let since_unix_secs = *since_unix_secs;
                                s.sends.insert(key, in_flight());
                                return CoordResponse::Unconfirmed { since_unix_secs };
                            }
                            Some(Claim::InFlight { until, done }) if *until > now => {
                                Arc::clone(done)
                            }
                            _ => {
                                s.sends.insert(key, in_flight());
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
                fingerprint,
                outcome,
            } => {
                let now = Instant::now();
                let digest = self.digester.digest(fingerprint);
                let mut s = self.lock();
                let key = (user, client_message_id);
                let until = now + self.ttl;
                let previous = match outcome {
                    SendOutcome::Stored(receipt) => s.sends.insert(
                        key,
                        Claim::Done {
                            until,
                            receipt,
                            digest,
                        },
                    ),
                    SendOutcome::Unconfirmed { since_unix_secs } => {
                        let now_unix = unix_now();
                        let since_unix_secs = since_unix_secs.map_or(now_unix, |s| s.min(now_unix));
                        s.sends.insert(
                            key,
                            Claim::Unconfirmed {
                                until,
                                since_unix_secs,
                                digest,
                            },
                        )
                    }
                    _ => s.sends.remove(&key),
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

    fn fingerprint(text: &str) -> bbrt_protocol::hub::SendFingerprint {
        bbrt_protocol::hub::SendFingerprint::of(Some(&id("t1")), None, text)
    }

    #[tokio::test]
    async fn an_unconfirmed_send_stays_claimable_with_reconciliation_and_conflicts_are_told() {
        let c = MemoryCoordinator::default();
        let claim = |text: &str| CoordRequest::ClaimSend {
            user: id("u1"),
            client_message_id: id("c1"),
            fingerprint: fingerprint(text),
        };
        let finish = |outcome| CoordRequest::FinishSend {
            user: id("u1"),
            client_message_id: id("c1"),
            fingerprint: fingerprint("hi"),
            outcome,
        };
        assert_eq!(c.request(claim("hi")).await, CoordResponse::Claimed);
        let before = unix_now();
        let unconfirmed = SendOutcome::Unconfirmed {
            since_unix_secs: None,
        };
        assert_eq!(c.request(finish(unconfirmed)).await, CoordResponse::Ok);
        assert_eq!(c.request(claim("bye")).await, CoordResponse::Conflict);
        let CoordResponse::Unconfirmed { since_unix_secs } = c.request(claim("hi")).await else {
            panic!("the retry must reconcile first")
        };
        assert!(since_unix_secs >= before);
        // The retry failed too: the earliest time is kept.
        let again = SendOutcome::Unconfirmed {
            since_unix_secs: Some(since_unix_secs - 5),
        };
        assert_eq!(c.request(finish(again)).await, CoordResponse::Ok);
        assert_eq!(
            c.request(claim("hi")).await,
            CoordResponse::Unconfirmed {
                since_unix_secs: since_unix_secs - 5
            }
        );
        let receipt = SendReceipt {
            id: id::<MessageId>("m1"),
            thread: id::<ThreadId>("t1"),
        };
        let stored = SendOutcome::Stored(receipt.clone());
        assert_eq!(c.request(finish(stored)).await, CoordResponse::Ok);
        assert_eq!(c.request(claim("hi")).await, CoordResponse::Done(receipt));
        assert_eq!(c.request(claim("bye")).await, CoordResponse::Conflict);
        let state = format!("{:?}", c.lock().sends);
        assert!(!state.contains("hi"), "no text in the record: {state}");
    }

    #[tokio::test]
    async fn claims_wait_for_the_holder_and_answers_are_first_wins() {
        let c = Arc::new(MemoryCoordinator::default());
        let claim = || CoordRequest::ClaimSend {
            user: id("u1"),
            client_message_id: id("c1"),
            fingerprint: fingerprint("hi"),
        };
        assert_eq!(c.request(claim()).await, CoordResponse::Claimed);
        let c2 = Arc::clone(&c);
        let waiter = tokio::spawn(async move { c2.request(claim()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let receipt = SendReceipt {
            id: id::<MessageId>("m1"),
            thread: id::<ThreadId>("t1"),
        };
        let finish = CoordRequest::FinishSend {
            user: id("u1"),
            client_message_id: id("c1"),
            fingerprint: fingerprint("hi"),
            outcome: SendOutcome::Stored(receipt.clone()),
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
