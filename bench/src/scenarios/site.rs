//! Scenario 6, `site`: sends through a slow site while others type.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Incoming, Ws, is_presence};
use crate::proc::{Delta, Sample};
use crate::record::{Percentiles, Record, histogram};

use super::shared::{Common, DRAIN, Faults, Layout, fill_cpu, open_all_joined, start_server};

/// Scenario 6 parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteBurst {
    /// Clients that each send one message at once.
    pub(crate) senders: usize,
    /// Clients that type at a fixed rate meanwhile.
    pub(crate) typers: usize,
    /// Typers' thread size.
    pub(crate) group: usize,
    /// Senders' thread size (every member of a sender's thread receives its message, and
    /// the load generator's own reading of those deliveries delays its typing timestamps).
    pub(crate) sender_group: usize,
    /// The site's answer time during the burst.
    pub(crate) site_latency: Duration,
    /// Each typer types this often (bbrt forwards one per 2 s per user and thread).
    pub(crate) typing_period: Duration,
    /// Typing measured before the burst, and during it.
    pub(crate) phase: Duration,
}

struct TypingShared {
    epoch: std::time::Instant,
    group: usize,
    layout: Layout,
    /// Per typer: the scheduled time of its latest `typing`.
    last_typed: Vec<Option<u64>>,
    /// The burst's start; typing scheduled before goes to `before`.
    burst_ns: u64,
    before: Histogram<u64>,
    during: Histogram<u64>,
    expected: u64,
    received: u64,
    acked: Vec<Option<u64>>,
    faults: Faults,
}

impl TypingShared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A typer (index `me` among all clients, typer number `k`), typing every `period`
/// from `start_ns` to `end_ns`, and recording the typing it receives.
async fn typer(
    mut ws: Ws,
    me: usize,
    first_typer: usize,
    sh: Rc<RefCell<TypingShared>>,
    times: (u64, u64, u64),
    until: Instant,
) {
    let (start_ns, end_ns, period_ns) = times;
    let (group, typers, layout) = {
        let s = sh.borrow();
        (s.group, s.last_typed.len(), s.layout)
    };
    let k = me - first_typer;
    let thread = layout.thread(me);
    let mut next_ns = start_ns + period_ns * k as u64 / typers as u64;
    let frame = format!(r#"{{"type":"typing","threadId":"{thread}"}}"#);
    // A timerfd per typer: tokio's timers would add up to 1 ms to the measured latency.
    let first = Duration::from_nanos(next_ns.saturating_sub(sh.borrow().now_ns()));
    let ticker = match crate::ticker::Ticker::new(first, Duration::from_nanos(period_ns)) {
        Ok(t) => t,
        Err(e) => {
            sh.borrow_mut()
                .faults
                .error(&format!("load generator: no timerfd: {e}"));
            return;
        }
    };
    loop {
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if is_presence(&t) {
                        continue;
                    }
                    let mut s = sh.borrow_mut();
                    let now = s.now_ns();
                    match Incoming::parse(&t) {
                        Some(m) if m.kind == "typing" => {
                            if m.typing == Some(false) {
                                continue;
                            }
                            let from = m.user_id.as_deref().and_then(|u| u.parse::<usize>().ok()).map(|u| u - 1);
                            let Some(from) = from.filter(|&f| f >= first_typer && f / group == me / group && f != me)
                            else {
                                s.faults.misrouted += 1;
                                continue;
                            };
                            if m.thread_id.as_deref() != Some(thread.as_str()) {
                                s.faults.misrouted += 1;
                                continue;
                            }
                            s.received += 1;
                            if let Some(sched) = s.last_typed[from - first_typer] {
                                let lat = now.saturating_sub(sched).max(1);
                                if sched < s.burst_ns {
                                    let _ = s.before.record(lat);
                                } else {
                                    let _ = s.during.record(lat);
                                }
                            }
                        }
                        Some(m) if m.kind == "error" => s.faults.error(&t),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if Instant::now() < until {
                        sh.borrow_mut().faults.closed += 1;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            () = sleep_until(until), if next_ns >= end_ns => return,
            ticks = ticker.tick(), if next_ns < end_ns => {
                // Ticks missed while busy: this one is the latest due.
                next_ns += period_ns * ticks.unwrap_or(1).saturating_sub(1);
                if next_ns >= end_ns {
                    continue;
                }
                {
                    let mut s = sh.borrow_mut();
                    s.last_typed[k] = Some(next_ns);
                    let others = ((me / group + 1) * group).min(first_typer + typers) - me / group * group - 1;
                    s.expected += others as u64;
                }
                if ws.send(Message::text(frame.clone())).await.is_err() {
                    return;
                }
                next_ns += period_ns;
            }
        }
    }
}

/// A sender: sends one message with a `clientMessageId` at `burst_ns`, records its ack.
async fn sender(
    mut ws: Ws,
    me: usize,
    sh: Rc<RefCell<TypingShared>>,
    burst_ns: u64,
    until: Instant,
) {
    let (epoch, layout) = {
        let s = sh.borrow();
        (s.epoch, s.layout)
    };
    let thread = layout.thread(me);
    sleep_until(Instant::from_std(epoch + Duration::from_nanos(burst_ns))).await;
    let frame = format!(
        r#"{{"type":"send_message","threadId":"{thread}","message":"burst from {me}","clientMessageId":"b{me}"}}"#
    );
    if ws.send(Message::text(frame)).await.is_err() {
        sh.borrow_mut().faults.closed += 1;
        return;
    }
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if is_presence(&t) {
                        continue;
                    }
                    let mut s = sh.borrow_mut();
                    let now = s.now_ns();
                    match Incoming::parse(&t) {
                        Some(m) if m.kind == "ack" && s.acked[me].is_none() => {
                            s.acked[me] = Some(now - burst_ns);
                        }
                        Some(m) if m.kind == "message" && m.thread_id.as_deref() != Some(thread.as_str()) => {
                            s.faults.misrouted += 1;
                        }
                        Some(m) if m.kind == "error" => s.faults.error(&t),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if Instant::now() < until {
                        sh.borrow_mut().faults.closed += 1;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            () = sleep_until(until) => return,
        }
    }
}

/// Every sender sends one message at once and waits for its ack; returns the time until
/// the last ack, ms. The senders' other frames (the messages themselves) are left for the
/// measured phase, which ignores them.
async fn warm_up(senders: &mut [Ws], layout: Layout) -> Result<f64, String> {
    let start = Instant::now();
    let sends = senders.iter_mut().enumerate().map(|(me, ws)| async move {
        let thread = layout.thread(me);
        let frame = format!(
            r#"{{"type":"send_message","threadId":"{thread}","message":"warm-up from {me}","clientMessageId":"w{me}","requestId":"w{me}"}}"#
        );
        ws.send(Message::text(frame))
            .await
            .map_err(|e| format!("sender {me}: {e}"))?;
        let deadline = start + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| format!("sender {me}: no ack in 30 s"))?;
            match next {
                Some(Ok(Message::Text(t))) => match Incoming::parse(&t) {
                    Some(m) if m.kind == "ack" => return Ok(start.elapsed()),
                    Some(m) if m.kind == "error" => return Err(format!("sender {me}: {t}")),
                    _ => {}
                },
                Some(Ok(_)) => {}
                _ => return Err(format!("sender {me}: connection closed")),
            }
        }
    });
    let took = futures_util::future::try_join_all(sends).await?;
    let last = took.into_iter().max().unwrap_or_default();
    Ok(last.as_secs_f64() * 1e3)
}

/// The fake BuddyBoss site on its own thread and runtime, so its HTTP work never stalls
/// the load generator's reading (the thread shares the load generator's core).
pub(super) struct SiteThread {
    site: Option<bbrt_buddyboss::fake::FakeSite>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SiteThread {
    pub(super) fn start() -> Result<Self, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-site".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match bbrt_buddyboss::fake::FakeSite::start().await {
                        Ok(site) => {
                            let _ = tx.send(Ok(site));
                            let _ = stopped.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let site = rx.recv().map_err(|e| e.to_string())??;
        Ok(Self {
            site: Some(site),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl std::ops::Deref for SiteThread {
    type Target = bbrt_buddyboss::fake::FakeSite;
    fn deref(&self) -> &Self::Target {
        self.site.as_ref().expect("present until drop")
    }
}

impl Drop for SiteThread {
    fn drop(&mut self) {
        drop(self.site.take());
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Scenario 6. The fake site runs in this process, on its own thread (on the load
/// generator's core).
pub(crate) async fn site_burst(common: &Common, p: SiteBurst) -> Record {
    let mut r = Record::new("site", &common.server);
    let n = p.senders + p.typers;
    r.connections = n;
    let site = match SiteThread::start() {
        Ok(s) => s,
        Err(e) => {
            r.fail(format!("fake site: {e}"));
            r.finish();
            return r;
        }
    };
    for i in 0..n {
        let id = site.add_user(&format!("user{}", i + 1), &format!("User {}", i + 1));
        site.add_bearer(id, &format!("bench-token-{id}"));
    }
    let layout = Layout {
        split: p.senders,
        first_group: p.sender_group,
        group: p.group,
    };
    // Threads in client order, so the site numbers them as `layout` does.
    let firsts = (0..p.senders)
        .step_by(p.sender_group)
        .map(|f| (f, p.sender_group.min(p.senders - f)));
    let firsts = firsts.chain(
        (p.senders..n)
            .step_by(p.group)
            .map(|f| (f, p.group.min(n - f))),
    );
    for (first, size) in firsts {
        let members: Vec<u64> = (first + 1..first + size).map(|i| i as u64 + 1).collect();
        site.create_thread(first as u64 + 1, &members, "hello");
    }
    let server = match start_server(common, &site.api_root()).await {
        Ok(s) => s,
        Err(e) => {
            r.fail(e);
            r.finish();
            return r;
        }
    };
    let pid = server.pid();
    let t0 = Instant::now();
    let targets = std::slice::from_ref(&common.target);
    let clients = match open_all_joined(common, targets, n, layout, |i| {
        Some(format!("bench-token-{}", i + 1))
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            r.fail(format!("setup: {e}"));
            r.finish();
            return r;
        }
    };
    r.setup_s = Some(t0.elapsed().as_secs_f64());
    sleep(Duration::from_millis(500)).await;
    let mut clients = clients;
    // A first burst, like the measured one, opens the server's connections to the site: the
    // measured burst then meets the steady state (pooled connections), as a long-running
    // server does. Its own time is reported too.
    site.set_latency(p.site_latency);
    match warm_up(&mut clients[..p.senders], layout).await {
        Ok(ms) => r.cold_acked_ms = Some(ms),
        Err(e) => {
            r.fail(format!("warm-up burst: {e}"));
            r.finish();
            return r;
        }
    }
    site.set_latency(Duration::ZERO);
    sleep(Duration::from_millis(500)).await;

    let epoch = std::time::Instant::now();
    let start_ns = 200_000_000u64;
    let phase_ns = u64::try_from(p.phase.as_nanos()).unwrap_or(u64::MAX);
    let burst_ns = start_ns + phase_ns;
    let end_ns = burst_ns + phase_ns;
    let until = Instant::from_std(epoch + Duration::from_nanos(end_ns)) + DRAIN;
    let sh = Rc::new(RefCell::new(TypingShared {
        epoch,
        group: p.group,
        layout,
        last_typed: vec![None; p.typers],
        burst_ns,
        before: histogram(),
        during: histogram(),
        expected: 0,
        received: 0,
        acked: vec![None; p.senders],
        faults: Faults::default(),
    }));
    let period_ns = u64::try_from(p.typing_period.as_nanos()).unwrap_or(u64::MAX);
    let mut tasks = Vec::new();
    for (i, ws) in clients.into_iter().enumerate() {
        let sh = Rc::clone(&sh);
        tasks.push(if i < p.senders {
            tokio::task::spawn_local(sender(ws, i, sh, burst_ns, until))
        } else {
            tokio::task::spawn_local(typer(
                ws,
                i,
                p.senders,
                sh,
                (start_ns, end_ns, period_ns),
                until,
            ))
        });
    }
    let at = |ns: u64| Instant::from_std(epoch + Duration::from_nanos(ns));
    sleep_until(at(burst_ns) - Duration::from_millis(20)).await;
    site.set_latency(p.site_latency);
    site.clear_requests();
    let s0 = Sample::read(pid).unwrap_or_default();
    let l0 = Sample::own();
    // When the site has seen every POST: tells the server's side of the burst from the
    // site's 50 ms.
    sleep_until(at(burst_ns)).await;
    let mut all_posted_ms = None;
    while Instant::now() < at(end_ns) {
        if site.count("POST", "/buddyboss/v1/messages") >= p.senders {
            all_posted_ms = Some(sh.borrow().now_ns().saturating_sub(burst_ns) as f64 / 1e6);
            break;
        }
        sleep(Duration::from_millis(2)).await;
    }
    sleep_until(at(end_ns)).await;
    let s1 = Sample::read(pid).unwrap_or_default();
    let l1 = Sample::own();
    // Until every typing arrived and every send is acked, or the deadline.
    loop {
        let done = {
            let s = sh.borrow();
            s.received >= s.expected && s.acked.iter().all(Option::is_some)
        };
        if done || Instant::now() >= until {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let Some(mut s) = Rc::try_unwrap(sh).map(RefCell::into_inner).ok() else {
        r.fail("client tasks still hold the state");
        r.finish();
        return r;
    };
    fill_cpu(
        &mut r,
        &Delta::between(&s0, &s1),
        &s1,
        &Delta::between(&l0, &l1),
        p.phase,
    );
    r.window_s = 2.0 * p.phase.as_secs_f64();
    let acked: Vec<u64> = s.acked.iter().flatten().copied().collect();
    r.acked = Some(acked.len());
    r.sent = p.senders as u64;
    if acked.len() < p.senders {
        r.fail(format!("{} of {} sends acked", acked.len(), p.senders));
    }
    r.all_acked_ms = acked.iter().max().map(|&ns| ns as f64 / 1e6);
    r.all_posted_ms = all_posted_ms;
    let burst_at = epoch + Duration::from_nanos(burst_ns);
    r.site_answered_ms = site
        .last_answer()
        .and_then(|at| at.checked_duration_since(burst_at))
        .map(|d| d.as_secs_f64() * 1e3);
    r.typing_before_us = Percentiles::from_ns(&s.before);
    r.typing_during_us = Percentiles::from_ns(&s.during);
    r.deliveries = s.received;
    s.faults.missing += s.expected.saturating_sub(s.received);
    r.notes.push(format!(
        "{} senders in threads of {}, {} typers in threads of {}; site latency {:?} during the burst, 0 for setup",
        p.senders, p.sender_group, p.typers, p.group, p.site_latency
    ));
    r.notes.push(format!(
        "site requests from the burst on: {}; most in flight at once during the run: {}",
        site.requests().len(),
        site.max_in_flight()
    ));
    std::mem::take(&mut s.faults).into_record(&mut r);
    drop(server);
    r.finish();
    r
}
