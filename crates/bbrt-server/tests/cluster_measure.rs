//! One node without Redis against two nodes through Redis, at the same load: server CPU per
//! delivery and delivery latency, same-node and cross-node. A measurement, not a test: it is
//! ignored by default and asserts nothing about timing.
//!
//! ```sh
//! RATE=300 cargo test --release -p bbrt-server --test cluster_measure -- --ignored --nocapture
//! ```
//!
//! Needs Redis at 127.0.0.1:6379 and `taskset`: the server processes share core 1, the
//! clients and the fake BuddyBoss site run in this process. 40 users in 4 threads of 10; every
//! message is posted to the site and delivered to its thread's 10 participants; with two
//! nodes, each thread has 5 users on each. Figures in `docs/scaling.md`.

mod common;

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bbrt_buddyboss::fake::FakeSite;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(args: &[String]) -> Self {
        let bin = std::env::var("BBRT_TEST_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bbrt-server").to_owned());
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg("1")
            .arg(bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log",
                "warn,bbrt_server::server=info",
                "--workers",
                "1",
            ])
            .args([
                "--frame-rate",
                "100000",
                "--frame-burst",
                "100000",
                "--max-pending-sends-per-user",
                "10000",
                "--max-queued-per-conn",
                "10000",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["fields"]["message"] == "listening"
                    && let Some(a) = v["fields"]["addr"].as_str()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(a.parse::<SocketAddr>().expect("addr"));
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("listens");
        Self { child, addr }
    }

    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        let rest = &stat[stat.rfind(')').expect(")") + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Stats {
    cross: Vec<u64>,
    local: Vec<u64>,
    deliveries: u64,
}

const USERS: usize = 40;
const GROUP: usize = 10;

async fn run(
    site: &FakeSite,
    ids: &[u64],
    threads: &[u64],
    nodes: &[&Node],
    rate: u64,
    secs: u64,
) -> (Stats, u64, f64) {
    let start = Instant::now();
    let mut writers = Vec::new();
    let stats = Rc::new(RefCell::new(Stats::default()));
    let local = tokio::task::LocalSet::new();
    let mut readers = Vec::new();
    for u in 0..USERS {
        let node = u % nodes.len();
        let url = format!("ws://{}/", nodes[node].addr);
        let mut req = url.into_client_request().expect("req");
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer u{u}-token")).expect("h"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        let id = ids[u].to_string();
        ws.send(Message::text(
            json!({"type":"user_connected","userId":id,"requestId":"h"}).to_string(),
        ))
        .await
        .expect("send");
        let t = threads[u / GROUP];
        ws.send(Message::text(
            json!({"type":"join_thread","threadId":t}).to_string(),
        ))
        .await
        .expect("send");
        loop {
            let Some(Ok(Message::Text(text))) = ws.next().await else {
                panic!("closed")
            };
            let v: Value = serde_json::from_str(&text).expect("json");
            if v["type"] == "joined" {
                break;
            }
        }
        let (w, r) = ws.split();
        writers.push((w, t, node));
        readers.push((r, node));
    }
    site.clear_requests();
    let mut before = 0;
    for n in nodes {
        before += n.cpu_ticks();
    }
    let t0 = Instant::now();
    local
        .run_until(async {
            for (mut r, node) in readers {
                let stats = Rc::clone(&stats);
                tokio::task::spawn_local(async move {
                    while let Some(Ok(m)) = r.next().await {
                        let Message::Text(text) = m else { continue };
                        let v: Value = serde_json::from_str(&text).expect("json");
                        if v["type"] != "message" {
                            continue;
                        }
                        let body = v["message"].as_str().unwrap_or("");
                        let Some((from, ns)) = body.split_once(':') else {
                            continue;
                        };
                        let from: usize = from.parse().unwrap_or(0);
                        let ns: u64 = ns.parse().unwrap_or(0);
                        let lat = start.elapsed().as_nanos() as u64 - ns;
                        let mut s = stats.borrow_mut();
                        s.deliveries += 1;
                        if from == node {
                            s.local.push(lat);
                        } else {
                            s.cross.push(lat);
                        }
                    }
                });
            }
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
            let total = rate * secs;
            for i in 0..total {
                tick.tick().await;
                let (w, t, node) = &mut writers[(i as usize * 7) % USERS];
                let text = format!("{}:{}", node, start.elapsed().as_nanos());
                let _ = w
                    .send(Message::text(
                        json!({"type":"send_message","threadId":*t,"message":text}).to_string(),
                    ))
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut after = 0;
    for n in nodes {
        after += n.cpu_ticks();
    }
    let s = std::mem::take(&mut *stats.borrow_mut());
    let mut counts = std::collections::BTreeMap::new();
    for r in site.requests() {
        let route: String = r.route.chars().filter(|c| !c.is_ascii_digit()).collect();
        *counts.entry((r.method, route)).or_insert(0) += 1;
    }
    println!("site requests: {counts:?}");
    (s, after - before, elapsed)
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1e6
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "measurement"]
async fn measure() {
    let rate: u64 = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(500);
    let secs: u64 = 4;
    let site = FakeSite::start().await.expect("site");
    let mut ids = Vec::new();
    for u in 0..USERS {
        let id = site.add_user(&format!("u{u}"), &format!("User {u}"));
        site.add_bearer(id, &format!("u{u}-token"));
        ids.push(id);
    }
    let mut threads = Vec::new();
    for g in 0..USERS / GROUP {
        let members: Vec<u64> = ids[g * GROUP + 1..(g + 1) * GROUP].to_vec();
        let (t, _) = site.create_thread(ids[g * GROUP], &members, "start");
        threads.push(t);
    }
    let api = site.api_root();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["--buddyboss-url".to_owned(), api.clone()];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    {
        let n1 = Node::start(&base(&["--node-id", "n1"]));
        let (mut s, ticks, el) = run(&site, &ids, &threads, &[&n1], rate, secs).await;
        let cpu = ticks as f64 / 100.0;
        println!(
            "1 node : deliveries {} in {:.1}s, server cpu {:.2}s, {:.1} us cpu/delivery, deliveries per cpu-s {:.0}, p50 {:.2} ms p99 {:.2} ms",
            s.deliveries,
            el,
            cpu,
            cpu * 1e6 / s.deliveries as f64,
            s.deliveries as f64 / cpu,
            pct(&mut s.local, 0.5),
            pct(&mut s.local, 0.99)
        );
    }
    {
        let prefix = format!("bbrt-measure-{}", std::process::id());
        let r = [
            "--redis",
            "redis://127.0.0.1:6379/",
            "--redis-prefix",
            prefix.as_str(),
        ];
        let mut a = r.to_vec();
        a.extend(["--node-id", "n1"]);
        let n1 = Node::start(&base(&a));
        let mut b = r.to_vec();
        b.extend(["--node-id", "n2"]);
        let n2 = Node::start(&base(&b));
        for n in [&n1, &n2] {
            while !common::http_get(n.addr, "/readyz", "")
                .await
                .1
                .contains("redis: ok")
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let (mut s, ticks, el) = run(&site, &ids, &threads, &[&n1, &n2], rate, secs).await;
        let (_, m) = common::http_get(n1.addr, "/metrics", "").await;
        for l in m.lines().filter(|l| {
            l.starts_with("bbrt_redis_publications_total") || l.starts_with("bbrt_redis_received")
        }) {
            println!("n1 {l}");
        }
        let cpu = ticks as f64 / 100.0;
        println!(
            "2 nodes: deliveries {} in {:.1}s, server cpu {:.2}s (both), {:.1} us cpu/delivery, deliveries per cpu-s {:.0}, same-node p50 {:.2} ms p99 {:.2} ms, cross-node p50 {:.2} ms p99 {:.2} ms",
            s.deliveries,
            el,
            cpu,
            cpu * 1e6 / s.deliveries as f64,
            s.deliveries as f64 / cpu,
            pct(&mut s.local, 0.5),
            pct(&mut s.local, 0.99),
            pct(&mut s.cross, 0.5),
            pct(&mut s.cross, 0.99)
        );
    }
}
