//! The soak: one server process, mixed traffic for many minutes with every client
//! reconnecting each round; the server's RSS and every error, once a minute. RSS must stay
//! flat and nothing may go missing. Not a CI job: `bench/soak.sh` (30 minutes by default).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Incoming, Server, is_presence};
use crate::proc::Sample;
use crate::record::Record;
use crate::scenarios::Common;

/// What the soak does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Soak {
    /// Rounds of one minute each.
    pub(crate) minutes: u64,
    /// Connections per round (all reconnect every round).
    pub(crate) clients: usize,
    /// Clients per thread.
    pub(crate) group: usize,
    /// Messages per second, all clients together.
    pub(crate) rate: f64,
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    acked: u64,
    delivered: u64,
    typing: u64,
    errors: u64,
    closed: u64,
    samples: Vec<String>,
}

/// One client's round: identify, join, then send, type and ping until `until`, counting
/// everything it receives; then close.
async fn client(
    common: Rc<Common>,
    idx: usize,
    p: Soak,
    until: Instant,
    counts: Rc<RefCell<Counts>>,
    ready: Rc<Cell<usize>>,
) {
    let Ok(mut ws) = common.target.connect(idx).await else {
        counts.borrow_mut().errors += 1;
        return;
    };
    let user = idx % p.clients + 1;
    let thread = (idx % p.clients) / p.group + 1;
    let hello = [
        format!(r#"{{"type":"user_connected","userId":"{user}"}}"#),
        format!(r#"{{"type":"join_thread","threadId":"{thread}"}}"#),
    ];
    for frame in hello {
        if ws.send(Message::text(frame)).await.is_err() {
            counts.borrow_mut().closed += 1;
            return;
        }
    }
    // Nobody sends until every client of the round has joined, so every message has its
    // whole thread listening and `expected` is exact.
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains(r#""type":"joined""#) => break,
            Ok(Some(Ok(_))) => {}
            _ => {
                counts.borrow_mut().closed += 1;
                return;
            }
        }
    }
    ready.set(ready.get() + 1);
    while ready.get() < p.clients {
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let period = Duration::from_secs_f64(p.clients as f64 / p.rate.max(0.001));
    let mut send = tokio::time::interval_at(Instant::now() + period, period);
    let mut typing = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(3),
        Duration::from_secs(3),
    );
    let mut seq = 0u64;
    let stop_sending = until - Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = send.tick(), if Instant::now() < stop_sending => {
                seq += 1;
                let frame = format!(
                    r#"{{"type":"send_message","threadId":"{thread}","message":"soak {idx} {seq}","requestId":{seq}}}"#
                );
                if ws.send(Message::text(frame)).await.is_err() { counts.borrow_mut().closed += 1; return; }
                counts.borrow_mut().sent += 1;
            }
            _ = typing.tick(), if Instant::now() < stop_sending => {
                let frame = format!(r#"{{"type":"typing","threadId":"{thread}"}}"#);
                if ws.send(Message::text(frame)).await.is_err() { counts.borrow_mut().closed += 1; return; }
            }
            _ = tokio::time::sleep_until(until) => break,
            next = ws.next() => match next {
                Some(Ok(Message::Text(text))) => {
                    if is_presence(&text) { continue; }
                    let mut c = counts.borrow_mut();
                    match Incoming::parse(&text).map(|m| m.kind.into_owned()).as_deref() {
                        Some("message") => c.delivered += 1,
                        Some("ack") => c.acked += 1,
                        Some("typing") => c.typing += 1,
                        Some("joined") | Some("pong") => {}
                        _ => {
                            c.errors += 1;
                            if c.samples.len() < 5 { c.samples.push(text.chars().take(200).collect()); }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { counts.borrow_mut().closed += 1; return; }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = ws.close(None).await;
}

pub(crate) async fn soak(common: &Common, p: Soak) -> Record {
    let mut r = Record::new("soak", &common.server);
    let server = match Server::start(
        &common.server_cmd,
        common.target.port,
        "",
        common.server_log.as_ref(),
    ) {
        Ok(s) => s,
        Err(e) => {
            r.fail(e);
            return r;
        }
    };
    if let Err(e) = common.target.wait_listening(Duration::from_secs(30)).await {
        r.fail(e);
        return r;
    }
    if Sample::read(server.pid()).is_none() {
        r.fail("the server exited at start (is the port taken?)");
        return r;
    }
    let common = Rc::new(common.clone());
    let mut first_rss = None;
    let mut totals = Counts::default();
    println!("minute,rss_kib,sent,acked,delivered,expected,typing,errors,closed");
    for minute in 0..p.minutes {
        let counts = Rc::new(RefCell::new(Counts::default()));
        let ready = Rc::new(Cell::new(0));
        let until = Instant::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for i in 0..p.clients {
            // A new source address every round: every client reconnects.
            let idx = (minute as usize % 2) * p.clients + i;
            tasks.push(tokio::task::spawn_local(client(
                common.clone(),
                idx,
                p,
                until,
                counts.clone(),
                ready.clone(),
            )));
        }
        for t in tasks {
            let _ = t.await;
        }
        let rss = Sample::read(server.pid()).map_or(0, |s| s.rss_kib);
        let first = *first_rss.get_or_insert(rss);
        let c = counts.borrow();
        let expected = c.sent * p.group as u64;
        println!(
            "{},{rss},{},{},{},{expected},{},{},{}",
            minute + 1,
            c.sent,
            c.acked,
            c.delivered,
            c.typing,
            c.errors,
            c.closed
        );
        r.notes.push(format!(
            "minute {}: RSS {rss} KiB (first {first})",
            minute + 1
        ));
        if c.acked != c.sent {
            r.fail(format!(
                "minute {}: {} sent, {} acked",
                minute + 1,
                c.sent,
                c.acked
            ));
        }
        if c.delivered != expected {
            r.missing += expected.saturating_sub(c.delivered);
            r.duplicates += c.delivered.saturating_sub(expected);
        }
        totals.sent += c.sent;
        totals.errors += c.errors;
        totals.closed += c.closed;
        totals.samples.extend(c.samples.iter().cloned());
    }
    r.errors += totals.errors;
    r.error_samples.extend(totals.samples);
    if totals.closed > 0 {
        r.fail(format!(
            "{} connections closed by the server",
            totals.closed
        ));
    }
    r.finish();
    r
}
