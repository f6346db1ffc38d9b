//! The spoofing matrix, against a real server and the fake BuddyBoss site (real
//! membership): every client message type from an attacker in each position — anonymous,
//! verified but not a participant, forging `senderId`/`userId`, signaling to a user outside
//! the thread, touching someone else's call, presenting another user's token on an
//! identified connection — is refused, and nothing reaches anyone else.

mod common;

use std::time::Duration;

use bbrt_buddyboss::fake::FakeSite;
use common::{Client, Server, config};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(150);

/// Every client message type, aimed at alice (2) and bob (3) in `thread`.
fn frames(thread: u64, call: Option<&str>) -> Vec<Value> {
    let t = thread.to_string();
    let mut all = vec![
        json!({"type": "user_connected", "userId": "2"}),
        json!({"type": "join_thread", "threadId": t}),
        json!({"type": "send_message", "threadId": t, "recipientId": "3", "message": "spoof"}),
        json!({"type": "typing", "threadId": t}),
        json!({"type": "call_initiated", "recipientId": "3", "senderId": "2", "threadId": t}),
        json!({"type": "offer", "offer": {"sdp": "x"}, "recipientId": "3", "senderId": "2", "threadId": t}),
        json!({"type": "answer", "answer": {"sdp": "y"}, "recipientId": "2", "senderId": "3", "threadId": t}),
        json!({"type": "ice-candidate", "candidate": "c", "recipientId": "3", "senderId": "2", "threadId": t}),
        json!({"type": "leave_thread", "threadId": t}),
        json!({"type": "mark_read", "threadId": t}),
        json!({"type": "call_accepted", "recipientId": "2", "senderId": "3", "threadId": t}),
        json!({"type": "call_rejected", "recipientId": "2", "senderId": "3", "threadId": t}),
        json!({"type": "call_ended", "recipientId": "2", "senderId": "3", "threadId": t}),
        json!({"type": "ping"}),
    ];
    if let Some(call) = call {
        for frame in &mut all {
            frame["callId"] = json!(call);
        }
    }
    all
}

/// Harmless for anyone: answered (`pong`, `ack`, or an error), never an effect on others.
fn harmless(kind: &str) -> bool {
    matches!(kind, "ping" | "leave_thread")
}

struct World {
    site: FakeSite,
    server: Server,
    thread: u64,
    alice: Client,
    bob: Client,
}

async fn bearer(server: &Server, token: &str) -> Client {
    let auth = format!("Bearer {token}");
    Client::connect(&server.url, &[("authorization", auth.as_str())]).await
}

async fn joined(server: &Server, token: &str, thread: u64) -> Client {
    let mut c = bearer(server, token).await;
    c.send(json!({"type": "join_thread", "threadId": thread, "requestId": "j"}))
        .await;
    assert_eq!(c.recv_type("joined").await["requestId"], "j");
    c
}

async fn world() -> World {
    let site = FakeSite::start_seeded().await.expect("fake site");
    let (thread, _) = site.create_thread(2, &[3], "alice and bob");
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.ring_timeout = Duration::from_secs(30);
    let server = Server::start(cfg).await;
    let mut alice = joined(&server, "alice-token", thread).await;
    let mut bob = joined(&server, "bob-token", thread).await;
    alice.drain(QUIET).await;
    bob.drain(QUIET).await;
    World {
        site,
        server,
        thread,
        alice,
        bob,
    }
}

impl World {
    /// Sends every frame from `attacker` with a requestId; each must be refused (or be
    /// harmless), and alice and bob must hear nothing. Returns the cells checked.
    async fn attack(&mut self, context: &str, attacker: &mut Client, frames: Vec<Value>) -> usize {
        let stored_before = self.site.messages(self.thread).len();
        let mut cells = 0;
        for (i, mut frame) in frames.into_iter().enumerate() {
            let kind = frame["type"].as_str().expect("type").to_owned();
            frame["requestId"] = json!(format!("{context}-{i}"));
            attacker.send(frame.clone()).await;
            let reply = attacker.recv_skip_presence().await;
            assert_eq!(
                reply["requestId"], frame["requestId"],
                "{context} {kind}: {reply}"
            );
            if kind == "ping" {
                assert_eq!(reply["type"], "pong", "{context} {kind}: {reply}");
            } else if !harmless(&kind) {
                assert_eq!(
                    reply["type"], "error",
                    "{context} {kind} was not refused: {reply}"
                );
            }
            cells += 1;
        }
        let alice_saw = self.alice.drain(QUIET).await;
        let bob_saw = self.bob.drain(QUIET).await;
        assert!(alice_saw.is_empty(), "{context}: alice saw {alice_saw:?}");
        assert!(bob_saw.is_empty(), "{context}: bob saw {bob_saw:?}");
        assert_eq!(
            self.site.messages(self.thread).len(),
            stored_before,
            "{context}: nothing stored"
        );
        cells
    }
}

#[tokio::test]
async fn no_attacker_position_reaches_anyone() {
    let mut w = world().await;
    let mut cells = 0;

    let mut anonymous = w.server.client().await;
    cells += w
        .attack("anonymous", &mut anonymous, frames(w.thread, None))
        .await;

    let mut wrong_token = w.server.client().await;
    let with_wrong_token: Vec<Value> = frames(w.thread, None)
        .into_iter()
        .map(|mut f| {
            f["token"] = json!("not-a-real-token");
            f
        })
        .collect();
    cells += w
        .attack("wrong-token", &mut wrong_token, with_wrong_token)
        .await;

    // carol (4) is verified but not a participant of alice and bob's thread.
    let mut carol = bearer(&w.server, "carol-token").await;
    cells += w
        .attack("non-participant", &mut carol, frames(w.thread, None))
        .await;

    let forged: Vec<Value> = frames(w.thread, None)
        .into_iter()
        .map(|mut f| {
            f["senderId"] = json!("2");
            f["userId"] = json!("2");
            f
        })
        .collect();
    cells += w.attack("forged-ids", &mut carol, forged).await;

    // A thread of carol's own (with admin, 1): alice is not in it.
    let (own, _) = w.site.create_thread(4, &[1], "carol and admin");
    let calls_outside: Vec<Value> = frames(own, None)
        .into_iter()
        .filter(|f| {
            f["type"].as_str().is_some_and(|k| {
                k.starts_with("call_") || ["offer", "answer", "ice-candidate"].contains(&k)
            })
        })
        .map(|mut f| {
            f["recipientId"] = json!("2");
            f
        })
        .collect();
    cells += w
        .attack("signal-outside-thread", &mut carol, calls_outside)
        .await;

    // Alice calls bob; carol tries to answer, signal, reject or end it.
    w.alice.send(json!({"type": "call_initiated", "recipientId": "3", "threadId": w.thread, "requestId": "c"})).await;
    let call = w.alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    assert_eq!(w.bob.recv_type("call_initiated").await["callId"], call);
    let theirs: Vec<Value> = frames(w.thread, Some(&call))
        .into_iter()
        .filter(|f| {
            f["type"].as_str().is_some_and(|k| {
                k.starts_with("call_") || ["offer", "answer", "ice-candidate"].contains(&k)
            })
        })
        .collect();
    cells += w.attack("someone-elses-call", &mut carol, theirs).await;
    w.bob
        .send(json!({"type": "call_accepted", "callId": call}))
        .await;
    assert_eq!(
        w.alice.recv_type("call_accepted").await["callId"],
        call,
        "the call was untouched"
    );

    // Carol's credential on bob's identified connection: refused, bob stays bob.
    let mut bobs_other = bearer(&w.server, "bob-token").await;
    let with_carols_token = vec![
        json!({"type": "user_connected", "userId": "4", "token": "carol-token"}),
        json!({"type": "send_message", "threadId": w.thread, "message": "as carol?", "token": "carol-token"}),
    ];
    cells += w
        .attack("another-users-token", &mut bobs_other, with_carols_token)
        .await;
    let query = format!("{}?token=carol-token", w.server.url);
    let mut carol_by_query = Client::connect(&query, &[]).await;
    let claims_bob = vec![json!({"type": "user_connected", "userId": "3"})];
    cells += w
        .attack(
            "query-token-claims-another-user",
            &mut carol_by_query,
            claims_bob,
        )
        .await;

    // 14 types × 4 positions, 7 call types × 2, 2 + 1 token cells.
    assert_eq!(cells, 14 * 4 + 7 * 2 + 3, "matrix cells checked");
    println!("spoofing matrix: {cells} cells refused, nothing leaked");
}
