//! Issue 20's reconnect storm, scaled out: two `bbrt-server` processes through Redis on one
//! fake site. 1,000 clients on node 1, each in 3 threads of 10, receive a message in every
//! thread and drop at once; 5 more are posted to every thread; all 1,000 come back on node 2
//! at once, each resuming its 3 threads by position in one `resume`, with the site at 50 ms.
//! Reports the time until every thread of every client is `resumed`, the site requests the
//! storm made (verifications, and history reads: a window hit in Redis needs none), the peak
//! of site requests in flight, and Redis's memory per thread window. A measurement, not a
//! test: ignored by default, it asserts what the figures mean (every message replayed
//! once), never how fast.
//!
//! ```sh
//! cargo test --release -p bbrt-server --test recovery_measure -- --ignored --nocapture
//! ```
//!
//! Needs Redis at 127.0.0.1:6379 (`scripts/test.sh` starts it).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bbrt_buddyboss::fake::FakeSite;
use common::Client;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const CLIENTS: usize = 1000;
const THREADS_PER_CLIENT: usize = 3;
const GROUP: usize = 10;
const MISSED: usize = 5;
/// Clients that connect (or reconnect) at once while the storm is set up.
const SETUP_PARALLEL: usize = 100;

/// A node through the shared Redis under `prefix`, on `site`.
async fn node(prefix: &str, id: &str, site: &FakeSite) -> common::Process {
    let api = site.api_root();
    let node = common::Process::start(&[
        "--node-id",
        id,
        "--redis",
        "redis://127.0.0.1:6379/",
        "--redis-prefix",
        prefix,
        "--buddyboss-url",
        &api,
        "--site-timeout",
        "30s",
        "--workers",
        "1",
        "--max-connections-per-ip",
        "100000",
        "--max-anonymous-per-ip",
        "100000",
        "--max-anonymous-total",
        "100000",
        "--max-pending-sends-per-user",
        "100000",
        "--frame-rate",
        "100000",
        "--frame-burst",
        "100000",
    ])
    .await;
    while !common::http_get(node.addr, "/readyz", "")
        .await
        .1
        .contains("redis: ok")
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node
}

/// The threads of client `i`: one in each of three groupings of the clients by ten.
fn threads_of(i: usize, threads: &[u64]) -> Vec<u64> {
    let groups = CLIENTS / GROUP;
    (0..THREADS_PER_CLIENT)
        .map(|k| threads[k * groups + i % groups])
        .collect()
}

async fn identified(addr: SocketAddr, token: &str, id: u64) -> Client {
    let auth = format!("Bearer {token}");
    let mut c = Client::connect(&format!("ws://{addr}/"), &[("authorization", &auth)]).await;
    c.send(json!({"type": "user_connected", "userId": id.to_string(), "requestId": "hi"}))
        .await;
    while c.recv().await["requestId"] != "hi" {}
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn a_thousand_clients_resume_three_threads_on_the_other_node() {
    let site = FakeSite::start().await.expect("the fake site starts");
    let writer = site.add_user("writer", "Writer");
    site.add_bearer(writer, "writer-token");
    let ids: Vec<u64> = (0..CLIENTS)
        .map(|i| {
            let id = site.add_user(&format!("u{i}"), &format!("User {i}"));
            site.add_bearer(id, &format!("u{i}-token"));
            id
        })
        .collect();
    let groups = CLIENTS / GROUP;
    let mut threads = Vec::new();
    for _ in 0..THREADS_PER_CLIENT {
        for g in 0..groups {
            let members: Vec<u64> = (0..CLIENTS)
                .filter(|i| i % groups == g)
                .map(|i| ids[i])
                .collect();
            threads.push(site.create_thread(writer, &members, "start").0);
        }
    }
    let prefix = format!("bbrt-recovery-measure-{}", std::process::id());
    let n1 = node(&prefix, "n1", &site).await;
    let n2 = node(&prefix, "n2", &site).await;

    // Everyone on node 1, in their threads; one message in each thread to resume after.
    let gate = Arc::new(Semaphore::new(SETUP_PARALLEL));
    let mut joined = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (gate, addr, mine) = (Arc::clone(&gate), n1.addr, threads_of(i, &threads));
        let id = *id;
        joined.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("open");
            let mut c = identified(addr, &format!("u{i}-token"), id).await;
            for t in &mine {
                c.send(json!({"type": "join_thread", "threadId": t, "requestId": t}))
                    .await;
                while c.recv().await["type"] != "joined" {}
            }
            c
        }));
    }
    let mut clients = Vec::new();
    for j in joined {
        clients.push(j.await.expect("joined"));
    }
    let mut w = identified(n1.addr, "writer-token", writer).await;
    let say = |t: u64, text: &str| json!({"type": "send_message", "threadId": t, "message": text});
    for t in &threads {
        w.send(say(*t, "before")).await;
    }
    let mut points: Vec<HashMap<u64, Value>> = Vec::new();
    for c in &mut clients {
        let mut got = HashMap::new();
        while got.len() < THREADS_PER_CLIENT {
            let m = c.recv_type("message").await;
            let t = m["threadId"]
                .as_str()
                .expect("a thread")
                .parse()
                .expect("digits");
            got.insert(t, m["position"].clone());
        }
        points.push(got);
    }
    drop(clients);
    for _ in 0..MISSED {
        for t in &threads {
            w.send(say(*t, "missed")).await;
        }
    }
    for _ in 0..(MISSED + 1) * threads.len() {
        w.recv_type("message").await;
    }

    // The storm: everyone back at once, on node 2, resuming by position.
    site.set_latency(Duration::from_millis(50));
    site.clear_requests();
    site.reset_max_in_flight();
    let start = Instant::now();
    let mut back = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (addr, id) = (n2.addr, *id);
        let resume: Vec<Value> = threads_of(i, &threads)
            .iter()
            .map(|t| json!({"threadId": t, "since": points[i][t]}))
            .collect();
        back.push(tokio::spawn(async move {
            let auth = format!("Bearer u{i}-token");
            let url = format!("ws://{addr}/");
            let mut c = Client::connect(&url, &[("authorization", &auth)]).await;
            c.send(json!({"type": "user_connected", "userId": id.to_string()}))
                .await;
            c.send(json!({"type": "resume", "threads": resume})).await;
            let (mut replayed, mut resumed, mut window) = (0, 0, 0);
            while resumed < THREADS_PER_CLIENT {
                let f = c.recv().await;
                match f["type"].as_str() {
                    Some("message") => replayed += 1,
                    Some("resumed") => {
                        resumed += 1;
                        window += usize::from(f["source"] == "window" && f["complete"] == true);
                    }
                    _ => {}
                }
            }
            (replayed, window, start.elapsed(), c)
        }));
    }
    let (mut replayed, mut window, mut last) = (0, 0, Duration::ZERO);
    let mut keep = Vec::new();
    for b in back {
        let (r, wdw, at, c) = b.await.expect("resumed");
        replayed += r;
        window += wdw;
        last = last.max(at);
        keep.push(c);
    }
    let requests = site.requests();
    let history = requests
        .iter()
        .filter(|r| r.method == "GET" && r.query.iter().any(|(k, _)| k == "before" || k == "page"))
        .count();
    let mut redis = redis::Client::open("redis://127.0.0.1:6379/")
        .expect("a url")
        .get_connection()
        .expect("redis");
    let mut window_bytes = 0u64;
    for t in &threads {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(format!("{prefix}:winz:{t}"))
            .query(&mut redis)
            .expect("MEMORY USAGE");
        let hash: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(format!("{prefix}:win:{t}"))
            .query(&mut redis)
            .expect("MEMORY USAGE");
        window_bytes += bytes.unwrap_or(0) + hash.unwrap_or(0);
    }
    println!(
        "scaled out (2 nodes, redis): {CLIENTS} clients x {THREADS_PER_CLIENT} threads x {MISSED} missed, back on the other node at once, site latency 50 ms"
    );
    println!(
        "  replayed {replayed} messages, {window}/{} threads complete from the window; all caught up after {:.3} s",
        CLIENTS * THREADS_PER_CLIENT,
        last.as_secs_f64()
    );
    println!(
        "  site requests during the storm {} (history reads {history}), peak in flight {}; redis holds {} bytes per thread window ({} threads)",
        requests.len(),
        site.max_in_flight(),
        window_bytes / threads.len() as u64,
        threads.len()
    );
    assert_eq!(
        replayed,
        CLIENTS * THREADS_PER_CLIENT * MISSED,
        "every missed message, once"
    );
    assert_eq!(window, CLIENTS * THREADS_PER_CLIENT);
}
