//! Configurations the real binary refuses at start-up, with a message that names the fix,
//! instead of failing later (a Hub panic at the first call, or nodes that disagree on who
//! is in a thread).

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails a test instead of hanging it; never a performance threshold.
const WAIT: Duration = Duration::from_secs(10);

fn spawn(args: &[&str]) -> Child {
    let bin = std::env::var("BBRT_TEST_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bbrt-server").to_owned());
    Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts")
}

/// Waits for the process to exit; its status and everything it wrote. Kills it if it is
/// still serving after `WAIT` (the refusal did not happen).
fn refused(mut child: Child) -> (bool, String) {
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started instead of refusing its configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut out);
    }
    (status.success(), out)
}

#[test]
fn an_over_long_node_id_is_refused() {
    // 127 bytes used to start, then panic the Hub at the first `call_initiated`.
    let long = "n".repeat(127);
    let (ok, out) = refused(spawn(&["--node-id", &long]));
    assert!(!ok);
    assert!(out.contains("a node id is at most 107 bytes"), "{out}");
}

#[test]
fn redis_with_the_development_site_is_refused_unless_allowed() {
    // Nothing listens on port 1: the refusal comes before any connection attempt.
    let (ok, out) = refused(spawn(&["--redis", "redis://127.0.0.1:1/"]));
    assert!(!ok);
    assert!(
        out.contains("refusing --redis with the embedded development site"),
        "{out}"
    );
    assert!(out.contains("--buddyboss-url"), "names the fix: {out}");
    assert!(out.contains("--allow-dev-site-with-redis"), "{out}");

    // Allowed explicitly: it serves, and says what it means.
    let mut child = spawn(&[
        "--redis",
        "redis://127.0.0.1:1/",
        "--allow-dev-site-with-redis",
    ]);
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("development site of its own") || line.contains("\"listening\"") {
                let _ = tx.send(line);
            }
        }
    });
    let first = rx.recv_timeout(WAIT).expect("a log line in time");
    let second = rx.recv_timeout(WAIT).expect("a log line in time");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        [&first, &second]
            .iter()
            .any(|l| l.contains("for benchmarks and tests only")),
        "{first}\n{second}"
    );
}
