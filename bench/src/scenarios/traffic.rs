//! Scenarios 1 and 2 (and 7's runs): messages in threads, closed loop or fixed rate;
//! the shared state, the run against one or more server processes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Incoming, Target, http_get, parse_message_text};
use crate::proc::{Delta, Sample};
use crate::proto::{Frame, Proto};
use crate::record::{Percentiles, Record, histogram};

use super::fanout::closed_client;
use super::rate::{rate_reader, rate_scheduler};
use super::shared::{
    Common, DRAIN, Faults, Layout, SETUP_TIMEOUT, fill_cpu, node_of, open_all_joined, open_joined,
    read_write_count, redis_counters, spawn_write_counter, start_nodes,
};

/// How clients send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// Each client keeps this many of its own messages in flight.
    Closed { in_flight: usize },
    /// All clients together send this many messages per second, evenly spread.
    Rate { per_s: f64 },
}

/// State the client tasks share (one thread: `Rc<RefCell<_>>`).
pub(super) struct Traffic {
    pub(super) epoch: std::time::Instant,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) group: usize,
    pub(super) n: usize,
    /// Server processes; client i is on node `node_of(i, nodes)`.
    pub(super) nodes: usize,
    pub(super) latency: Histogram<u64>,
    /// With more than one node: `latency` split by whether the sender is on the
    /// receiver's node.
    pub(super) same_node: Histogram<u64>,
    pub(super) cross_node: Histogram<u64>,
    pub(super) lag: Histogram<u64>,
    pub(super) deliveries_in_window: u64,
    pub(super) sent_in_window: u64,
    /// Deliveries still expected, per message sequence number.
    pub(super) remaining: Vec<u8>,
    pub(super) outstanding: u64,
    pub(super) faults: Faults,
    /// The servers' protocol.
    pub(super) proto: Proto,
}

/// A bound on messages tracked in one run (about 100 s at 200k messages/s).
pub(super) const MAX_MESSAGES: usize = 20_000_000;

impl Traffic {
    pub(super) fn new(start_ns: u64, end_ns: u64, group: usize, n: usize, nodes: usize) -> Self {
        Self {
            epoch: std::time::Instant::now(),
            start_ns,
            end_ns,
            group,
            n,
            nodes,
            latency: histogram(),
            same_node: histogram(),
            cross_node: histogram(),
            lag: histogram(),
            deliveries_in_window: 0,
            sent_in_window: 0,
            remaining: Vec::new(),
            outstanding: 0,
            faults: Faults::default(),
            proto: Proto::Seed,
        }
    }

    pub(super) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn group_size(&self, idx: usize) -> usize {
        let first = idx / self.group * self.group;
        (self.n - first).min(self.group)
    }

    /// Registers a message about to be sent; `None` when the bound is reached.
    pub(super) fn new_message(&mut self, sender: usize) -> Option<u64> {
        if self.remaining.len() >= MAX_MESSAGES {
            return None;
        }
        let seq = self.remaining.len() as u64;
        // Pusher relays a client event to the channel's other subscribers only.
        let expected = self.group_size(sender) - usize::from(!self.proto.echoes_sender());
        self.remaining
            .push(u8::try_from(expected).unwrap_or(u8::MAX));
        self.outstanding += expected as u64;
        Some(seq)
    }

    /// Accounts a delivered `message` frame for client `me` (member of `my_thread`);
    /// returns its sender's index.
    pub(super) fn delivered(&mut self, me: usize, my_thread: &str, text: &str) -> Option<usize> {
        let now = self.now_ns();
        // Keep-alives need no answer here: Socket.IO's first ping comes 25 s after the
        // connect and its timeout 20 s later, longer than a traffic run.
        let (thread_id, message) = match self.proto.classify(text) {
            Frame::Delivery { thread, text } => (thread, text),
            Frame::Error => {
                self.faults.error(text);
                return None;
            }
            Frame::Presence | Frame::Reply(_) | Frame::Other(_) => return None,
        };
        let Some((seq, sched, sender)) = parse_message_text(&message) else {
            self.faults.misrouted += 1;
            return None;
        };
        if thread_id != my_thread || sender / self.group != me / self.group {
            self.faults.misrouted += 1;
            return None;
        }
        match self
            .remaining
            .get_mut(usize::try_from(seq).unwrap_or(usize::MAX))
        {
            Some(0) => {
                self.faults.duplicates += 1;
                return None;
            }
            Some(left) => {
                *left -= 1;
                self.outstanding -= 1;
            }
            None => {
                self.faults.misrouted += 1;
                return None;
            }
        }
        if sched >= self.start_ns && sched < self.end_ns {
            let latency = now.saturating_sub(sched).max(1);
            let _ = self.latency.record(latency);
            if self.nodes > 1 {
                let split = if node_of(sender, self.nodes) == node_of(me, self.nodes) {
                    &mut self.same_node
                } else {
                    &mut self.cross_node
                };
                let _ = split.record(latency);
            }
        }
        if now >= self.start_ns && now < self.end_ns {
            self.deliveries_in_window += 1;
        }
        Some(sender)
    }
}

/// The load of scenarios 1, 2 and 7: `clients` in threads of `group`, sending at `pace`,
/// measured over `window`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) group: usize,
    pub(crate) pace: Pace,
    pub(crate) window: Duration,
}

/// What a traffic run starts.
pub(super) struct Deployment {
    /// One server process per command, all given `common`'s port + their index.
    pub(super) cmds: Vec<String>,
    /// Tells the log files of the runs of one invocation apart; empty: `--server-log`.
    pub(super) log_label: String,
    /// The nodes use Redis: wait for their links before the clients connect.
    pub(super) redis: bool,
    /// Redis's pid, when it was found: its CPU in the window is reported.
    pub(super) redis_pid: Option<u32>,
}

/// Scenarios 1 and 2: one server.
pub(crate) async fn traffic(common: &Common, scenario: &str, load: Load) -> Record {
    let deployment = Deployment {
        cmds: vec![common.server_cmd.clone()],
        log_label: String::new(),
        redis: false,
        redis_pid: None,
    };
    traffic_on(
        common,
        Record::new(scenario, &common.server),
        &deployment,
        load,
    )
    .await
}

/// Traffic against one or more server processes.
pub(super) async fn traffic_on(
    common: &Common,
    mut r: Record,
    deployment: &Deployment,
    load: Load,
) -> Record {
    let Load {
        clients: n,
        group,
        pace,
        window,
    } = load;
    r.connections = n;
    r.window_s = window.as_secs_f64();
    let nodes = match start_nodes(common, deployment).await {
        Ok(s) => s,
        Err(e) => {
            r.fail(e);
            r.finish();
            return r;
        }
    };
    let layout = Layout::uniform(group);
    let t0 = Instant::now();
    if nodes.targets.len() > 1
        && let Err(e) = introduce_everywhere(common, &nodes.targets, n, layout).await
    {
        r.fail(format!("setup: {e}"));
        r.finish();
        return r;
    }
    let clients = match open_all_joined(common, &nodes.targets, n, layout, |_| None).await {
        Ok(c) => c,
        Err(e) => {
            r.fail(format!("setup: {e}"));
            r.finish();
            return r;
        }
    };
    r.setup_s = Some(t0.elapsed().as_secs_f64());
    // Let the seed's presence broadcast drain before the window.
    sleep(Duration::from_millis(500)).await;

    let start_ns = 200_000_000u64;
    let end_ns = start_ns + u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let mut traffic = Traffic::new(start_ns, end_ns, group, n, nodes.targets.len());
    traffic.proto = common.target.proto;
    let epoch = traffic.epoch;
    let sh = Rc::new(RefCell::new(traffic));
    let at = |ns: u64| Instant::from_std(epoch + Duration::from_nanos(ns));
    let drain_end = at(end_ns) + DRAIN;
    let mut tasks = Vec::new();
    match pace {
        Pace::Closed { in_flight } => {
            for (i, ws) in clients.into_iter().enumerate() {
                tasks.push(tokio::task::spawn_local(closed_client(
                    ws,
                    i,
                    in_flight,
                    Rc::clone(&sh),
                    drain_end,
                )));
            }
        }
        Pace::Rate { per_s } => {
            let mut sinks = Vec::with_capacity(n);
            for (i, ws) in clients.into_iter().enumerate() {
                let (sink, stream) = ws.split();
                sinks.push(sink);
                tasks.push(tokio::task::spawn_local(rate_reader(
                    stream,
                    i,
                    Rc::clone(&sh),
                    drain_end,
                )));
            }
            tasks.push(tokio::task::spawn_local(rate_scheduler(
                sinks,
                per_s,
                Rc::clone(&sh),
            )));
        }
    }

    let redis_sample = || deployment.redis_pid.and_then(Sample::read);
    sleep_until(at(start_ns)).await;
    let s0 = nodes.samples();
    let redis0 = redis_sample();
    let l0 = Sample::own();
    let perf = match nodes.servers.as_slice() {
        [server] if common.count_writes => spawn_write_counter(server.pid(), window.as_secs_f64()),
        _ => None,
    };
    sleep_until(at(end_ns)).await;
    let s1 = nodes.samples();
    let redis1 = redis_sample();
    let l1 = Sample::own();
    // Drain: until every delivery arrived, or the deadline.
    while Instant::now() < drain_end && sh.borrow().outstanding > 0 {
        sleep(Duration::from_millis(10)).await;
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    (r.server_writes, r.server_syscalls) = perf.map_or((None, None), read_write_count);
    if deployment.redis {
        for (k, target) in nodes.targets.iter().enumerate() {
            if let Ok(metrics) = http_get(target.port, "/metrics").await {
                r.notes
                    .push(format!("n{} Redis: {}", k + 1, redis_counters(&metrics)));
            }
        }
    }

    let d = Delta::between_all(&s0, &s1);
    let ld = Delta::between(&l0, &l1);
    let s = Rc::try_unwrap(sh).map(RefCell::into_inner).ok();
    let Some(mut s) = s else {
        r.fail("client tasks still hold the state");
        r.finish();
        return r;
    };
    s.faults.missing += s.remaining.iter().map(|&left| u64::from(left)).sum::<u64>();
    r.sent = s.sent_in_window;
    r.deliveries = s.deliveries_in_window;
    r.deliveries_per_s = Some(s.deliveries_in_window as f64 / window.as_secs_f64());
    fill_cpu(&mut r, &d, &s1[0], &ld, window);
    r.server_threads = s1.iter().map(|s| s.threads).sum();
    if nodes.servers.len() > 1 {
        r.node_cpu_s = Some(
            s0.iter()
                .zip(&s1)
                .map(|(a, b)| Delta::between(a, b).cpu_s)
                .collect(),
        );
    }
    if let (Some(a), Some(b)) = (redis0, redis1) {
        r.redis_cpu_s = Some(Delta::between(&a, &b).cpu_s);
    }
    if s.deliveries_in_window > 0 {
        r.server_cpu_us_per_delivery = Some(d.cpu_s * 1e6 / s.deliveries_in_window as f64);
    }
    if let Some(w) = r.server_writes.filter(|&w| w > 0) {
        r.frames_per_write = Some(s.deliveries_in_window as f64 / w as f64);
    }
    r.server_wakeups = Some(d.wakeups);
    if s.deliveries_in_window > 0 {
        let per_delivery = |v: u64| v as f64 / s.deliveries_in_window as f64;
        r.wakeups_per_delivery = Some(per_delivery(d.wakeups));
        r.syscalls_per_delivery = r.server_syscalls.map(per_delivery);
    }
    if s.sent_in_window > 0 {
        r.server_cpu_us_per_message = Some(d.cpu_s * 1e6 / s.sent_in_window as f64);
    }
    r.latency_us = Percentiles::from_ns(&s.latency);
    r.same_node_latency_us = Percentiles::from_ns(&s.same_node);
    r.cross_node_latency_us = Percentiles::from_ns(&s.cross_node);
    if let Pace::Rate { per_s } = pace {
        r.send_lag_us = Percentiles::from_ns(&s.lag);
        let expected = per_s * window.as_secs_f64();
        if (r.sent as f64) < expected * 0.95 {
            r.fail(format!(
                "sent {} of {expected:.0} scheduled messages",
                r.sent
            ));
        }
    }
    r.rss_after_kib = Some(s1.iter().map(|s| s.rss_kib).sum());
    s.faults.into_record(&mut r);
    drop(nodes);
    r.finish();
    r
}

/// Each node runs its own embedded development site, and a message goes to the thread's
/// members as the sender's node's site knows them. One BuddyBoss site behind every node, as
/// in production, knows them all: to stand for it, before the clients connect, every user
/// joins its thread and sends one message on every node, then leaves. (A join alone may not
/// reach a node's site: the Hub answers it from the participants another node published;
/// a send always reaches it, and the embedded site makes the sender a participant.)
pub(super) async fn introduce_everywhere(
    common: &Common,
    targets: &[Target],
    n: usize,
    layout: Layout,
) -> Result<(), String> {
    let visits = (0..n).flat_map(|i| (0..targets.len()).map(move |k| (i, k)));
    stream::iter(visits)
        .map(|(i, k)| async move {
            let mut ws = open_joined(&targets[k], i, layout, None).await?;
            let send = format!(
                r#"{{"type":"send_message","threadId":"{}","message":"setup {i}","requestId":"setup"}}"#,
                layout.thread(i)
            );
            ws.send(Message::text(send))
                .await
                .map_err(|e| format!("client {i}: send: {e}"))?;
            let acked = timeout(SETUP_TIMEOUT, async {
                while let Some(Ok(frame)) = ws.next().await {
                    let Message::Text(t) = frame else { continue };
                    match Incoming::parse(&t) {
                        Some(m) if m.kind == "ack" => return Ok(()),
                        Some(m) if m.kind == "error" => return Err(format!("client {i}: {t}")),
                        _ => {}
                    }
                }
                Err(format!("client {i}: closed before its setup message was acked"))
            })
            .await
            .map_err(|_| format!("client {i}: setup message not acked"))?;
            acked?;
            let _ = ws.close(None).await;
            Ok(())
        })
        .buffer_unordered(common.connect_concurrency)
        .collect::<Vec<Result<(), String>>>()
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::message_text;

    #[test]
    fn latency_is_split_by_the_senders_node() {
        // 20 clients in threads of 10 on 2 nodes; client 2 (node 0) receives one message
        // from client 0 (node 0) and one from client 1 (node 1).
        let mut t = Traffic::new(0, u64::MAX, 10, 20, 2);
        let frame = |seq: u64, sender: usize| {
            format!(
                r#"{{"type":"message","id":"{seq}","threadId":"1","senderId":"{}","message":"{}"}}"#,
                sender + 1,
                message_text(seq, 0, sender)
            )
        };
        let from_same = t.new_message(0).expect("a sequence number");
        let from_other = t.new_message(1).expect("a sequence number");
        assert_eq!(t.delivered(2, "1", &frame(from_same, 0)), Some(0));
        assert_eq!(t.delivered(2, "1", &frame(from_other, 1)), Some(1));
        assert_eq!(
            (t.latency.len(), t.same_node.len(), t.cross_node.len()),
            (2, 1, 1)
        );

        // One node: no split.
        let mut t = Traffic::new(0, u64::MAX, 10, 20, 1);
        let seq = t.new_message(1).expect("a sequence number");
        t.delivered(2, "1", &frame(seq, 1));
        assert_eq!(
            (t.latency.len(), t.same_node.len(), t.cross_node.len()),
            (1, 0, 0)
        );
    }
}
