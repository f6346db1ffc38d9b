//! Reconnect recovery over real sockets against the embedded site: a client that drops and
//! comes back gets what it missed from the window, in order, then live delivery.

mod common;

use common::{Server, config};
use serde_json::{Value, json};

async fn joined(server: &Server, user: &str) -> common::Client {
    let mut c = server.user(user).await;
    c.send(json!({"type": "join_thread", "threadId": "T", "requestId": "j"}))
        .await;
    c.recv_type("joined").await;
    c
}

async fn say(c: &mut common::Client, text: &str) -> Value {
    c.send(json!({"type": "send_message", "threadId": "T", "message": text}))
        .await;
    c.recv_type("message").await
}

#[tokio::test]
async fn a_client_that_drops_gets_what_it_missed_from_the_window_then_live() {
    let server = Server::start(config()).await;
    let mut alice = joined(&server, "alice").await;
    let mut bob = joined(&server, "bob").await;
    say(&mut alice, "one").await;
    let seen = bob.recv_type("message").await;
    assert_eq!(seen["position"]["offset"], 1, "{seen}");
    drop(bob);
    let two = say(&mut alice, "two").await;
    let three = say(&mut alice, "three").await;

    // Identify and resume in one go: the join waits behind the identification, so nothing
    // live comes between them.
    let mut bob = server.client().await;
    bob.send(json!({"type": "user_connected", "userId": "bob"}))
        .await;
    bob.send(
        json!({"type": "join_thread", "threadId": "T", "since": seen["position"], "requestId": 2}),
    )
    .await;
    let answer = bob.recv_skip_presence().await;
    assert_eq!(
        (answer["type"].as_str(), &answer["requestId"]),
        (Some("joined"), &json!(2))
    );
    assert_eq!(bob.recv_skip_presence().await, two);
    assert_eq!(bob.recv_skip_presence().await, three);
    let resumed = bob.recv_skip_presence().await;
    assert_eq!(
        resumed,
        json!({"type": "resumed", "threadId": "T", "source": "window", "complete": true,
               "reload": false, "replayed": 2, "position": three["position"]})
    );
    let four = say(&mut alice, "four").await;
    assert_eq!(bob.recv_type("message").await, four, "then live");
    let (status, metrics) = common::http_get(server.handle.local_addr(), "/metrics", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        common::metric(&metrics, "bbrt_resumes_window_total"),
        Some(1.0)
    );
    assert_eq!(
        common::metric(&metrics, "bbrt_resumes_site_total"),
        Some(0.0)
    );
    assert_eq!(common::metric(&metrics, "bbrt_replay_windows"), Some(1.0));
}

#[tokio::test]
async fn resume_answers_each_thread_then_acks() {
    let server = Server::start(config()).await;
    let mut alice = joined(&server, "alice").await;
    let mut bob = joined(&server, "bob").await;
    say(&mut alice, "one").await;
    let seen = bob.recv_type("message").await;
    drop(bob);
    say(&mut alice, "two").await;
    let mut bob = server.client().await;
    bob.send(json!({"type": "user_connected", "userId": "bob"}))
        .await;
    bob.send(json!({"type": "resume", "requestId": 9, "threads": [
        {"threadId": "T", "sinceMessageId": seen["id"]},
        {"threadId": "U", "since": {"offset": 5, "epoch": "nope"}},
    ]}))
    .await;
    let mut kinds = Vec::new();
    loop {
        let frame = bob.recv_skip_presence().await;
        kinds.push(format!(
            "{}:{}",
            frame["type"].as_str().unwrap_or(""),
            frame["code"]
                .as_str()
                .or(frame["message"].as_str())
                .unwrap_or("")
        ));
        if frame["type"] == "ack" {
            assert_eq!(frame["requestId"], 9);
            break;
        }
    }
    assert_eq!(
        kinds,
        [
            "joined:",
            "message:two",
            "resumed:",
            "resumed:position_epoch",
            "ack:"
        ]
    );
}

#[tokio::test]
async fn a_reconnect_within_the_presence_grace_is_not_broadcast() {
    let mut config = config();
    config.presence_grace = std::time::Duration::from_secs(5);
    let server = Server::start(config).await;
    let mut alice = joined(&server, "alice").await;
    let bob = joined(&server, "bob").await;
    alice.recv_type("user_connected").await;
    drop(bob);
    let _bob = joined(&server, "bob").await;
    // A marker after the reconnect: everything alice was sent before it is in front of it.
    alice
        .send(json!({"type": "send_message", "threadId": "T", "message": "after"}))
        .await;
    let mut before = Vec::new();
    loop {
        let frame = alice.recv().await;
        if frame["type"] == "message" {
            break;
        }
        before.push(frame);
    }
    assert!(
        before
            .iter()
            .all(|f| f["type"] != "user_disconnected" && f["type"] != "user_connected"),
        "{before:?}"
    );
}

/// A fake BuddyBoss site over HTTP (alice = 2, bob = 3) and a thread between them.
async fn fake_site() -> (bbrt_buddyboss::fake::FakeSite, u64) {
    let site = bbrt_buddyboss::fake::FakeSite::start_seeded()
        .await
        .expect("fake site");
    let (thread, _) = site.create_thread(2, &[3], "hello from the site");
    (site, thread)
}

fn on_site(site: &bbrt_buddyboss::fake::FakeSite) -> common::Config {
    let mut cfg = config();
    cfg.buddyboss_url = Some(site.api_root());
    cfg.site_probe_interval = std::time::Duration::from_secs(3600);
    cfg
}

/// A client of `token`'s user joined to `thread`, with `point` (a resume point) if any.
async fn site_client(
    server: &Server,
    token: &str,
    user: &str,
    thread: u64,
    point: Value,
) -> common::Client {
    let auth = format!("Bearer {token}");
    let mut c = common::Client::connect(&server.url, &[("authorization", auth.as_str())]).await;
    c.send(json!({"type": "user_connected", "userId": user}))
        .await;
    let mut join = json!({"type": "join_thread", "threadId": thread, "requestId": "j"});
    join.as_object_mut()
        .expect("an object")
        .extend(point.as_object().expect("an object").clone());
    c.send(join).await;
    let joined = c.recv_type("joined").await;
    assert_eq!(joined["requestId"], "j", "{joined}");
    c
}

/// Reads `c`'s frames up to its `resumed`: the texts replayed, and the `resumed`.
async fn replay(c: &mut common::Client) -> (Vec<String>, Value) {
    let mut texts = Vec::new();
    loop {
        let frame = c.recv_skip_presence().await;
        match frame["type"].as_str() {
            Some("message") => texts.push(frame["message"].as_str().unwrap_or("").to_owned()),
            Some("resumed") => return (texts, frame),
            _ => panic!("unexpected before resumed: {frame}"),
        }
    }
}

#[tokio::test]
async fn past_the_window_the_fake_site_serves_the_replay_over_http() {
    let (site, thread) = fake_site().await;
    let mut cfg = on_site(&site);
    cfg.window_messages = 1;
    let server = Server::start(cfg).await;
    common::site_probed(&server).await;
    let mut alice = site_client(&server, "alice-token", "2", thread, json!({})).await;
    let mut bob = site_client(&server, "bob-token", "3", thread, json!({})).await;
    alice
        .send(json!({"type": "send_message", "threadId": thread, "message": "one"}))
        .await;
    let seen = bob.recv_type("message").await;
    drop(bob);
    for text in ["two", "three"] {
        alice
            .send(json!({"type": "send_message", "threadId": thread, "message": text}))
            .await;
        alice.recv_type("message").await;
    }
    let point = json!({"since": seen["position"], "sinceMessageId": seen["id"]});
    let mut bob = site_client(&server, "bob-token", "3", thread, point).await;
    let (texts, resumed) = replay(&mut bob).await;
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(
        (&resumed["source"], &resumed["complete"]),
        (&json!("site"), &json!(true))
    );
    // Carol is not in the thread: the site refuses her history, and the join too.
    let mut carol =
        common::Client::connect(&server.url, &[("authorization", "Bearer carol-token")]).await;
    carol
        .send(json!({"type": "user_connected", "userId": "4"}))
        .await;
    carol
        .send(json!({"type": "join_thread", "threadId": thread, "sinceMessageId": seen["id"], "requestId": 5}))
        .await;
    let refused = carol.recv_type("error").await;
    assert_eq!(
        (&refused["code"], &refused["requestId"]),
        (&json!("forbidden"), &json!(5))
    );
}

#[tokio::test]
async fn on_two_nodes_through_redis_a_resume_on_the_other_node_is_served_from_the_shared_window() {
    let (site, thread) = fake_site().await;
    let prefix = format!(
        "bbrt-recovery-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let node = |id: &str| {
        let mut cfg = on_site(&site);
        cfg.redis = Some("redis://127.0.0.1:6379/".parse().expect("a url"));
        cfg.redis_prefix = prefix.clone();
        cfg.node_id = Some(id.parse().expect("a node id"));
        cfg
    };
    let a = Server::start(node("ra")).await;
    let b = Server::start(node("rb")).await;
    let mut alice = site_client(&a, "alice-token", "2", thread, json!({})).await;
    let mut bob = site_client(&b, "bob-token", "3", thread, json!({})).await;
    // Until both nodes hear each other, a message may not cross: send until one does.
    let seen = loop {
        alice
            .send(json!({"type": "send_message", "threadId": thread, "message": "one"}))
            .await;
        alice.recv_type("message").await;
        let frames = bob.drain(std::time::Duration::from_millis(200)).await;
        if let Some(m) = frames.into_iter().rev().find(|f| f["type"] == "message") {
            break m;
        }
    };
    assert!(
        seen["position"]["offset"].is_u64(),
        "counted in redis: {seen}"
    );
    drop(bob);
    alice
        .send(json!({"type": "send_message", "threadId": thread, "message": "two"}))
        .await;
    alice.recv_type("message").await;
    let mut bob = site_client(
        &a,
        "bob-token",
        "3",
        thread,
        json!({"sinceMessageId": seen["id"]}),
    )
    .await;
    let (texts, resumed) = replay(&mut bob).await;
    assert_eq!(texts, ["two"]);
    assert_eq!(
        (&resumed["source"], &resumed["complete"]),
        (&json!("window"), &json!(true)),
        "the window in redis knows the other node's messages"
    );
}
