//! The accept loop survives running out of file descriptors (EMFILE) and serves again
//! once descriptors are free. Its own test binary: it lowers this process's fd limit.

mod common;

use std::time::Duration;

use common::{Client, Server, config};
use serde_json::json;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64)
}

fn accept_errors(server: &Server) -> u64 {
    let text = server.handle.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix("bbrt_accept_errors_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_survives_emfile() {
    let server = Server::start(config()).await;
    let (soft, hard) = rlimit::Resource::NOFILE.get().expect("read the fd limit");
    let tight = open_fds() + 16;
    rlimit::Resource::NOFILE
        .set(tight, hard)
        .expect("lower the fd limit");

    // Each connection costs two descriptors here (client and accepted side); the
    // kernel's backlog keeps completing handshakes after accept() starts failing.
    let mut clients = Vec::new();
    for _ in 0..40 {
        match tokio::net::TcpStream::connect(server.handle.local_addr()).await {
            Ok(s) => clients.push(s),
            Err(_) => break,
        }
        if accept_errors(&server) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut waited = 0;
    while accept_errors(&server) == 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    let errors = accept_errors(&server);
    drop(clients);
    rlimit::Resource::NOFILE
        .set(soft, hard)
        .expect("restore the fd limit");
    assert!(errors > 0, "accept() should have hit the fd limit");

    // Serving again.
    let mut c = Client::connect(&server.url, &[]).await;
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}
