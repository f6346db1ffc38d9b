//! The link itself: Redis restarting under the nodes, and TLS.

use super::harness::*;

#[tokio::test]
async fn traffic_resumes_after_redis_restarts() {
    let (site, t) = site().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = PrivateRedis::start(port);
    let p = prefix();
    let n1 = Node::start("n1", &url, &p, &site, &[]);
    let n2 = Node::start("n2", &url, &p, &site, &[]);
    let strict = Node::start("n3", &url, &p, &site, &["--redis-required-for-ready"]);
    n1.linked().await;
    n2.linked().await;
    strict.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let mut bob = n2.user("bob", "3", t).await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "before"}))
        .await;
    assert_eq!(bob.recv_type("message").await["message"], "before");

    redis.stop();
    for n in [&n1, &n2] {
        wait_for(|| async {
            let (status, body) = http_get(n.addr, "/readyz", "").await;
            // Degraded, still ready (the default).
            status == 200 && body.contains("redis: degraded")
        })
        .await;
    }
    // Unless told otherwise.
    wait_for(|| async { http_get(strict.addr, "/readyz", "").await.0 == 503 }).await;
    // Local traffic goes on: the sender's own echo, through the site.
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "during"}))
        .await;
    recv_message(&mut alice, "during").await;
    let (_, metrics) = http_get(n1.addr, "/metrics", "").await;
    assert!(metrics.contains("bbrt_redis_degraded 1"), "{metrics}");

    let redis = PrivateRedis::start(port);
    n1.linked().await;
    n2.linked().await;
    strict.linked().await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "after"}))
        .await;
    recv_message(&mut bob, "after").await;
    bob.send(json!({"type": "send_message", "threadId": t, "message": "back"}))
        .await;
    recv_message(&mut alice, "back").await;
    let (_, metrics) = http_get(n1.addr, "/metrics", "").await;
    assert!(metrics.contains("bbrt_redis_degraded 0"), "{metrics}");
    drop(redis);
}

#[tokio::test]
async fn nodes_link_through_redis_over_tls() {
    let (site, t) = site().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let tls = TestCertificates::make();
    let _redis = PrivateRedis::start_tls(port, &tls);
    // The nodes trust the test CA alone (rustls-native-certs reads SSL_CERT_FILE).
    let ca = tls.ca.to_str().expect("utf-8 path");
    let env = [("SSL_CERT_FILE", ca)];
    let url = format!("rediss://127.0.0.1:{port}/");
    let p = prefix();
    let n1 = Node::start_with_env("n1", &url, &p, &site, &[], &env);
    let n2 = Node::start_with_env("n2", &url, &p, &site, &[], &env);
    n1.linked().await;
    n2.linked().await;
    let mut alice = n1.user("alice", "2", t).await;
    let mut bob = n2.user("bob", "3", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    alice
        .send(json!({"type": "send_message", "threadId": t, "message": "over tls"}))
        .await;
    recv_message(&mut bob, "over tls").await;

    // A node that does not trust the server's certificate never links.
    let untrusting = Node::start("n3", &url, &p, &site, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, body) = http_get(untrusting.addr, "/readyz", "").await;
    assert!(body.contains("redis: degraded"), "{body}");
}
