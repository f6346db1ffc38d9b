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
use bbrt_protocol::wire::{Epoch, Position};

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

        #[tokio::test]
        async fn positions_count_per_thread_across_nodes_and_the_window_keeps_them() {
            $crate::broker::contract::positions_count_per_thread_across_nodes_and_the_window_keeps_them(
                &$cluster,
            )
            .await;
        }

        #[tokio::test]
        async fn a_window_is_bounded_and_keeps_each_members_deletion_point() {
            $crate::broker::contract::a_window_is_bounded_and_keeps_each_members_deletion_point(
                &$cluster,
            )
            .await;
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

fn epoch(s: &str) -> Epoch {
    Epoch::new(s).expect("a valid epoch")
}

/// The request counting message `n` of `thread`, proposing `proposed` as its epoch.
fn sequence(thread: &str, n: u64, proposed: &str) -> CoordRequest {
    CoordRequest::Sequence {
        thread: id(thread),
        id: id(&n.to_string()),
        frame: bytes::Bytes::from(format!(r#"{{"type":"message","id":"{n}"}}"#)),
        epoch: epoch(proposed),
        publish: Vec::new(),
    }
}

fn read(thread: &str, user: &str) -> CoordRequest {
    CoordRequest::ReadWindow {
        thread: id(thread),
        user: Some(id(user)),
        epoch: epoch("never-used"),
    }
}

async fn sequenced(node: &dyn Coordinator, request: CoordRequest) -> (Position, Option<u64>) {
    match node.request(request).await {
        CoordResponse::Sequenced {
            position,
            since_previous_ms,
            ..
        } => (position, since_previous_ms),
        other => panic!("expected a position, got {other:?}"),
    }
}

async fn window(node: &dyn Coordinator, request: CoordRequest) -> bbrt_protocol::hub::WindowRead {
    match node.request(request).await {
        CoordResponse::Window(read) => read,
        other => panic!("expected a window, got {other:?}"),
    }
}

pub(super) async fn positions_count_per_thread_across_nodes_and_the_window_keeps_them(
    cluster: &dyn Cluster,
) {
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    // Joining a thread nobody wrote in starts its window, in the epoch the reader proposed.
    let empty = match b
        .request(CoordRequest::ReadWindow {
            thread: id("t0"),
            user: Some(id("u1")),
            epoch: epoch("b.1"),
        })
        .await
    {
        CoordResponse::Window(read) => read,
        other => panic!("expected a window, got {other:?}"),
    };
    assert_eq!(
        empty.latest(),
        Some(Position {
            offset: 0,
            epoch: epoch("b.1")
        })
    );
    assert!(empty.entries.is_empty());
    let (first, none) = sequenced(&*a, sequence("t0", 41, "a.2")).await;
    assert_eq!(
        first,
        Position {
            offset: 1,
            epoch: epoch("b.1")
        },
        "the first epoch sticks"
    );
    assert_eq!(none, None, "the first of its epoch has no predecessor");

    let (one, _) = sequenced(&*a, sequence("t1", 11, "a.1")).await;
    let (two, since) = sequenced(&*b, sequence("t1", 10, "b.2")).await;
    let (other, _) = sequenced(&*b, sequence("t2", 12, "b.3")).await;
    assert_eq!(
        one,
        Position {
            offset: 1,
            epoch: epoch("a.1")
        }
    );
    assert_eq!(
        two,
        Position {
            offset: 2,
            epoch: epoch("a.1")
        },
        "one counter for every node"
    );
    assert!(since.is_some(), "the time since the previous one is told");
    assert_eq!(
        other,
        Position {
            offset: 1,
            epoch: epoch("b.3")
        },
        "a counter per thread"
    );
    let got = window(&*b, read("t1", "u1")).await;
    assert_eq!(got.latest(), Some(two.clone()));
    let kept: Vec<(u64, &str)> = got
        .entries
        .iter()
        .map(|e| (e.offset, e.id.as_str()))
        .collect();
    assert_eq!(kept, [(1, "11"), (2, "10")], "delivery order, not id order");
    assert_eq!(
        got.entries[1].frame,
        two.stamp(br#"{"type":"message","id":"10"}"#),
        "kept as delivered, position included"
    );
}

pub(super) async fn a_window_is_bounded_and_keeps_each_members_deletion_point(
    cluster: &dyn Cluster,
) {
    let a = cluster.node("a").await;
    let max = bbrt_protocol::hub::HubConfig::default().window_messages as u64;
    for n in 1..=max + 5 {
        sequenced(&*a, sequence("t1", n, "a.1")).await;
    }
    let got = window(&*a, read("t1", "u1")).await;
    assert_eq!(got.last, max + 5);
    assert_eq!(got.entries.len() as u64, max, "the oldest went first");
    assert_eq!(got.entries[0].offset, 6);
    let deleted = CoordRequest::DeletedFor {
        thread: id("t1"),
        user: id("u2"),
    };
    assert_eq!(a.request(deleted).await, CoordResponse::Ok);
    sequenced(&*a, sequence("t1", 999, "a.1")).await;
    assert_eq!(window(&*a, read("t1", "u2")).await.deleted_upto, max + 5);
    assert_eq!(window(&*a, read("t1", "u1")).await.deleted_upto, 0);
}
