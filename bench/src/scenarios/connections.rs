//! Scenarios 3, 4 and 5 (`idle`, `setup`, `maxconn`): connections held, RSS per
//! connection, setup time, the most connections held.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, stream};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Ws;
use crate::proc::{Delta, Sample};
use crate::proto::{Frame, Proto};
use crate::record::Record;

use super::shared::{
    Common, Faults, Layout, SETUP_TIMEOUT, fill_cpu, open_bare, open_joined, start_server,
};

/// Counters of the held connections.
#[derive(Default)]
struct Held {
    open: usize,
    presence: u64,
    faults: Faults,
}

/// Reads a held connection until it closes or `until`, answering keep-alives.
async fn hold(mut ws: Ws, proto: Proto, held: Rc<RefCell<Held>>, until: Instant) {
    held.borrow_mut().open += 1;
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let reply = match proto.classify(&t) {
                        Frame::Presence => {
                            held.borrow_mut().presence += 1;
                            None
                        }
                        Frame::Error => {
                            held.borrow_mut().faults.error(&t);
                            None
                        }
                        Frame::Reply(reply) => Some(reply),
                        Frame::Delivery { .. } | Frame::Other(_) => None,
                    };
                    if let Some(reply) = reply
                        && ws.send(Message::text(reply)).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            () = sleep_until(until) => break,
        }
    }
    held.borrow_mut().open -= 1;
}

/// How connections are set up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setup {
    /// Upgraded, nothing said (scenario 3, 5).
    Bare,
    /// `user_connected` and `join_thread` into threads of this many (scenario 4).
    Joined { group: usize },
}

/// Scenarios 3 and 4 (`max_failures` 0), and 5 (stop at the first streak of failures).
pub(crate) async fn connections(
    common: &Common,
    scenario: &str,
    n: usize,
    setup: Setup,
    max_failures: usize,
) -> Record {
    let mut r = Record::new(scenario, &common.server);
    let server = match start_server(common, "").await {
        Ok(s) => s,
        Err(e) => {
            r.fail(e);
            r.finish();
            return r;
        }
    };
    let pid = server.pid();
    let s0 = Sample::read(pid).unwrap_or_default();
    let l0 = Sample::own();
    r.rss_before_kib = Some(s0.rss_kib);
    if let Some(limit) = crate::proc::fd_limit(pid) {
        r.notes.push(format!("server fd soft limit {limit}"));
    }
    let held = Rc::new(RefCell::new(Held::default()));
    let hold_until = Instant::now() + SETUP_TIMEOUT + Duration::from_secs(60);
    let t0 = Instant::now();
    let mut failures_in_a_row = 0usize;
    let mut first_failure: Option<String> = None;
    let mut opened = 0usize;
    let mut last_ok = t0;
    {
        let target = &common.target;
        let mut attempts = stream::iter(0..n)
            .map(|i| async move {
                match setup {
                    Setup::Bare => open_bare(target, i).await,
                    Setup::Joined { group } => {
                        open_joined(target, i, Layout::uniform(group), None).await
                    }
                }
            })
            .buffer_unordered(common.connect_concurrency);
        while let Some(result) = attempts.next().await {
            match result {
                Ok(ws) => {
                    opened += 1;
                    failures_in_a_row = 0;
                    last_ok = Instant::now();
                    tokio::task::spawn_local(hold(ws, target.proto, Rc::clone(&held), hold_until));
                }
                Err(e) => {
                    failures_in_a_row += 1;
                    first_failure.get_or_insert(e);
                    if max_failures == 0 || failures_in_a_row >= max_failures {
                        break;
                    }
                }
            }
            if t0.elapsed() > SETUP_TIMEOUT {
                r.fail(format!("setup took longer than {SETUP_TIMEOUT:?}"));
                break;
            }
        }
    }
    let setup_s = last_ok.duration_since(t0).as_secs_f64();
    match setup {
        Setup::Bare => r.connect_s = Some(setup_s),
        Setup::Joined { .. } => r.setup_s = Some(setup_s),
    }
    if let Some(e) = &first_failure {
        if max_failures == 0 {
            r.fail(format!("connection failed: {e}"));
        } else {
            r.notes.push(format!(
                "first failed attempt after {opened} connections: {e}"
            ));
        }
    }
    // Settle: let the server finish what it queued (the seed's N² presence broadcast).
    let mut last_presence = u64::MAX;
    let settle_end = Instant::now() + Duration::from_secs(60);
    loop {
        sleep(Duration::from_secs(1)).await;
        let p = held.borrow().presence;
        if p == last_presence || Instant::now() > settle_end {
            break;
        }
        last_presence = p;
    }
    sleep(Duration::from_secs(1)).await;
    let s1 = Sample::read(pid).unwrap_or_default();
    let l1 = Sample::own();
    let window = t0.elapsed();
    let (open, presence) = {
        let h = held.borrow();
        (h.open, h.presence)
    };
    r.connections = open;
    r.window_s = window.as_secs_f64();
    fill_cpu(
        &mut r,
        &Delta::between(&s0, &s1),
        &s1,
        &Delta::between(&l0, &l1),
        window,
    );
    r.rss_after_kib = Some(s1.rss_kib);
    if open > 0 {
        r.rss_per_conn_kib = Some((s1.rss_kib.saturating_sub(s0.rss_kib)) as f64 / open as f64);
    }
    if presence > 0 {
        r.notes.push(format!("{presence} presence frames received"));
    }
    if max_failures > 0 {
        r.max_connections = Some(open);
    } else if open < opened {
        r.fail(format!("{} of {opened} connections closed", opened - open));
    }
    if Sample::read(pid).is_none() {
        r.fail("server died");
    }
    let faults = std::mem::take(&mut held.borrow_mut().faults);
    faults.into_record(&mut r);
    drop(server);
    r.finish();
    r
}
