//! The contract of every [`Coordinator`]: the same tests run against [`MemoryCoordinator`]
//! (`memory.rs`) and [`RedisCoordinator`] (`redis/tests.rs`, a real Redis), through
//! [`coordinator_contract!`]. What only one of them does (Redis: only the holder releases
//! a claim, a held claim is waited for only so long) stays in its own tests.
//!
//! [`MemoryCoordinator`]: super::MemoryCoordinator
//! [`RedisCoordinator`]: super::RedisCoordinator

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bbrt_protocol::hub::{CoordRequest, CoordResponse, SendFingerprint, SendOutcome, SendReceipt};
use bbrt_protocol::ids::{DeviceRef, MessageId, ThreadId};

use super::{Coordinator, unix_now};

/// Fails a test instead of hanging it; never a performance threshold.
const WAIT: Duration = Duration::from_secs(10);

/// Coordinators of the nodes of one cluster, sharing their claims.
#[async_trait]
pub(super) trait Cluster: Send + Sync {
    /// The coordinator of node `name`, ready to answer.
    async fn node(&self, name: &str) -> Arc<dyn Coordinator>;
}

/// The contract's tests, each against a fresh `$cluster` (an expression of a [`Cluster`]).
macro_rules! coordinator_contract {
    ($cluster:expr) => {
        #[tokio::test]
        async fn a_second_claim_waits_for_the_first_and_gets_its_receipt() {
            $crate::broker::contract::a_second_claim_waits_for_the_first_and_gets_its_receipt(
                &$cluster,
            )
            .await;
        }

        #[tokio::test]
        async fn an_unconfirmed_send_is_kept_for_its_retry_and_a_reused_id_is_a_conflict() {
            $crate::broker::contract::an_unconfirmed_send_is_kept_for_its_retry_and_a_reused_id_is_a_conflict(
                &$cluster,
            )
            .await;
        }

        #[tokio::test]
        async fn the_first_answer_wins() {
            $crate::broker::contract::the_first_answer_wins(&$cluster).await;
        }
    };
}
pub(super) use coordinator_contract;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("valid id")
}

pub(super) fn fingerprint(text: &str) -> SendFingerprint {
    SendFingerprint::of(Some(&id("t1")), None, text)
}

pub(super) fn claim(user: &str, client_message_id: &str, text: &str) -> CoordRequest {
    CoordRequest::ClaimSend {
        user: id(user),
        client_message_id: id(client_message_id),
        fingerprint: fingerprint(text),
    }
}

pub(super) fn finish(
    user: &str,
    client_message_id: &str,
    text: &str,
    outcome: SendOutcome,
) -> CoordRequest {
    CoordRequest::FinishSend {
        user: id(user),
        client_message_id: id(client_message_id),
        fingerprint: fingerprint(text),
        outcome,
    }
}

pub(super) fn receipt() -> SendReceipt {
    SendReceipt {
        id: id::<MessageId>("m1"),
        thread: id::<ThreadId>("t1"),
    }
}

pub(super) async fn a_second_claim_waits_for_the_first_and_gets_its_receipt(cluster: &dyn Cluster) {
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    assert_eq!(
        a.request(claim("u:1", "c1", "hi")).await,
        CoordResponse::Claimed
    );
    let waiter = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.request(claim("u:1", "c1", "hi")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiter.is_finished(),
        "the second claim waits while the first is in flight"
    );
    let stored = SendOutcome::Stored(receipt());
    assert_eq!(
        a.request(finish("u:1", "c1", "hi", stored)).await,
        CoordResponse::Ok
    );
    let got = tokio::time::timeout(WAIT, waiter)
        .await
        .expect("in time")
        .expect("no panic");
    assert_eq!(got, CoordResponse::Done(receipt()));
    // And later claims, from any node, too.
    assert_eq!(
        b.request(claim("u:1", "c1", "hi")).await,
        CoordResponse::Done(receipt())
    );

    // Another user with a colliding-looking id is a different key.
    assert_eq!(
        b.request(claim("u", "1:c1", "hi")).await,
        CoordResponse::Claimed
    );

    // A failed send releases its claim: the retry may post.
    assert_eq!(
        a.request(claim("u2", "c2", "hi")).await,
        CoordResponse::Claimed
    );
    let release = finish("u2", "c2", "hi", SendOutcome::Failed);
    assert_eq!(a.request(release).await, CoordResponse::Ok);
    assert_eq!(
        b.request(claim("u2", "c2", "hi")).await,
        CoordResponse::Claimed
    );
}

pub(super) async fn an_unconfirmed_send_is_kept_for_its_retry_and_a_reused_id_is_a_conflict(
    cluster: &dyn Cluster,
) {
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let unconfirmed = |since_unix_secs| SendOutcome::Unconfirmed { since_unix_secs };
    assert_eq!(
        a.request(claim("u1", "c1", "hi")).await,
        CoordResponse::Claimed
    );
    let before = unix_now();
    assert_eq!(
        a.request(finish("u1", "c1", "hi", unconfirmed(None))).await,
        CoordResponse::Ok
    );
    assert_eq!(
        b.request(claim("u1", "c1", "bye")).await,
        CoordResponse::Conflict
    );
    let CoordResponse::Unconfirmed { since_unix_secs } = b.request(claim("u1", "c1", "hi")).await
    else {
        panic!("the retry, on another node, must reconcile first")
    };
    assert!(since_unix_secs >= before);
    // The retry failed too: the earliest time is kept.
    let again = unconfirmed(Some(since_unix_secs - 5));
    assert_eq!(
        b.request(finish("u1", "c1", "hi", again)).await,
        CoordResponse::Ok
    );
    assert_eq!(
        a.request(claim("u1", "c1", "hi")).await,
        CoordResponse::Unconfirmed {
            since_unix_secs: since_unix_secs - 5
        }
    );
    let stored = SendOutcome::Stored(receipt());
    assert_eq!(
        a.request(finish("u1", "c1", "hi", stored)).await,
        CoordResponse::Ok
    );
    for node in [&a, &b] {
        assert_eq!(
            node.request(claim("u1", "c1", "hi")).await,
            CoordResponse::Done(receipt())
        );
        assert_eq!(
            node.request(claim("u1", "c1", "bye")).await,
            CoordResponse::Conflict
        );
    }
}

pub(super) async fn the_first_answer_wins(cluster: &dyn Cluster) {
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let answer = |node: &str, conn| CoordRequest::ClaimAnswer {
        call: id("a-1"),
        device: DeviceRef {
            node: id(node),
            conn,
        },
    };
    assert_eq!(b.request(answer("b", 7)).await, CoordResponse::Won);
    assert_eq!(a.request(answer("a", 3)).await, CoordResponse::Lost);
    assert_eq!(b.request(answer("b", 8)).await, CoordResponse::Lost);
    assert_eq!(
        a.request(answer("b", 7)).await,
        CoordResponse::Won,
        "the winner may ask again"
    );
}
