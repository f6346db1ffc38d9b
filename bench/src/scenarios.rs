//! The scenarios of issue 6. Each starts a fresh server process, drives it from this
//! single-threaded load generator and returns one [`Record`].
//!
//! Every loop here is bounded in count and in time: connection attempts by a target and a
//! failure streak, traffic by its window, draining by a deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{
    Incoming, Server, Target, Ws, http_get, is_presence, message_text, parse_message_text,
    scan_message,
};
use crate::proc::{Delta, Sample};
use crate::record::{Percentiles, Record, histogram};

/// What every scenario needs.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    /// `node` or `bbrt`.
    pub(crate) server: String,
    /// The server's command line, `{port}` and `{site}` replaced.
    pub(crate) server_cmd: String,
    pub(crate) target: Target,
    /// How many connections are opened at once.
    pub(crate) connect_concurrency: usize,
    /// Where the server's output goes.
    pub(crate) server_log: Option<std::path::PathBuf>,
    /// Count the server's write syscalls with `perf stat` during the window.
    pub(crate) count_writes: bool,
}

/// How long anything may take before the scenario gives up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);
const DRAIN: Duration = Duration::from_secs(3);

/// Bad things seen by the clients.
#[derive(Debug, Default)]
struct Faults {
    errors: u64,
    misrouted: u64,
    missing: u64,
    duplicates: u64,
    closed: u64,
    samples: Vec<String>,
}

impl Faults {
    fn error(&mut self, text: &str) {
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(text.chars().take(300).collect());
        }
    }

    fn into_record(self, r: &mut Record) {
        r.errors += self.errors;
        r.misrouted += self.misrouted;
        r.missing += self.missing;
        r.duplicates += self.duplicates;
        r.error_samples.extend(self.samples);
        if self.closed > 0 {
            r.fail(format!("{} connections closed by the server", self.closed));
        }
    }
}

/// The user id of client `idx`.
fn user_of(idx: usize) -> String {
    (idx + 1).to_string()
}

/// The thread of client `idx` when clients are grouped `group` to a thread.
fn thread_of(idx: usize, group: usize) -> String {
    (idx / group + 1).to_string()
}

/// Which thread each client joins: the first `split` clients in threads of `first_group`,
/// the rest in threads of `group`, numbered from 1 in client order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    split: usize,
    first_group: usize,
    group: usize,
}

impl Layout {
    pub(crate) fn uniform(group: usize) -> Self {
        Self {
            split: 0,
            first_group: group,
            group,
        }
    }

    fn thread_index(self, idx: usize) -> usize {
        if idx < self.split {
            idx / self.first_group
        } else {
            self.split.div_ceil(self.first_group) + (idx - self.split) / self.group
        }
    }

    fn thread(self, idx: usize) -> String {
        (self.thread_index(idx) + 1).to_string()
    }
}

fn identify_frames(idx: usize, layout: Layout, token: Option<&str>) -> [String; 2] {
    let user = user_of(idx);
    let identify = match token {
        Some(t) => format!(r#"{{"type":"user_connected","userId":"{user}","token":"{t}"}}"#),
        None => format!(r#"{{"type":"user_connected","userId":"{user}"}}"#),
    };
    [
        identify,
        format!(
            r#"{{"type":"join_thread","threadId":"{}"}}"#,
            layout.thread(idx)
        ),
    ]
}

/// Opens client `idx`, identifies it, joins its thread and waits for `joined`.
async fn open_joined(
    target: &Target,
    idx: usize,
    layout: Layout,
    token: Option<&str>,
) -> Result<Ws, String> {
    let mut ws = timeout(Duration::from_secs(20), target.connect(idx))
        .await
        .map_err(|_| "connect timed out".to_owned())??;
    for frame in identify_frames(idx, layout, token) {
        ws.send(Message::text(frame))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let next = timeout(
            deadline.saturating_duration_since(Instant::now()),
            ws.next(),
        )
        .await
        .map_err(|_| format!("client {idx}: no joined within {SETUP_TIMEOUT:?}"))?;
        match next {
            Some(Ok(Message::Text(t))) => {
                if is_presence(&t) {
                    continue;
                }
                match Incoming::parse(&t) {
                    Some(m) if m.kind == "joined" => return Ok(ws),
                    Some(m) if m.kind == "error" => return Err(format!("client {idx}: {t}")),
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("client {idx}: {e}")),
            None => return Err(format!("client {idx}: closed during setup")),
        }
    }
}

/// The node client `idx` connects to when there are `nodes`: alternately, so every thread
/// of more than one client has members on more than one node.
fn node_of(idx: usize, nodes: usize) -> usize {
    idx % nodes.max(1)
}

/// Opens `n` identified-and-joined clients, `concurrency` at a time, client `i` on
/// `targets[node_of(i)]`; in index order.
async fn open_all_joined(
    common: &Common,
    targets: &[Target],
    n: usize,
    layout: Layout,
    token: impl Fn(usize) -> Option<String>,
) -> Result<Vec<Ws>, String> {
    let token = &token;
    let mut opened: Vec<(usize, Ws)> = stream::iter(0..n)
        .map(|i| async move {
            let target = &targets[node_of(i, targets.len())];
            open_joined(target, i, layout, token(i).as_deref())
                .await
                .map(|ws| (i, ws))
        })
        .buffer_unordered(common.connect_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    opened.sort_by_key(|(i, _)| *i);
    Ok(opened.into_iter().map(|(_, ws)| ws).collect())
}

/// Starts the server and waits for it to listen.
async fn start_server(common: &Common, site: &str) -> Result<Server, String> {
    let server = Server::start(
        &common.server_cmd,
        common.target.port,
        site,
        common.server_log.as_ref(),
    )?;
    common
        .target
        .wait_listening(Duration::from_secs(60))
        .await?;
    // Let a JIT or a lazy allocator settle before the first reading.
    sleep(Duration::from_millis(300)).await;
    Ok(server)
}

/// The server processes of one run: node k runs its own command and listens on the
/// common port + k.
struct Nodes {
    servers: Vec<Server>,
    targets: Vec<Target>,
}

impl Nodes {
    fn samples(&self) -> Vec<Sample> {
        self.servers
            .iter()
            .map(|s| Sample::read(s.pid()).unwrap_or_default())
            .collect()
    }
}

/// Starts one server per command and waits for all to listen.
async fn start_nodes(common: &Common, deployment: &Deployment) -> Result<Nodes, String> {
    let mut nodes = Nodes {
        servers: Vec::new(),
        targets: Vec::new(),
    };
    for (k, cmd) in deployment.cmds.iter().enumerate() {
        let port = u16::try_from(k)
            .ok()
            .and_then(|k| common.target.port.checked_add(k))
            .ok_or("no port left for another node")?;
        let target = Target {
            port,
            ..common.target.clone()
        };
        let log = common
            .server_log
            .as_ref()
            .map(|path| node_log(path, &deployment.log_label, k));
        nodes
            .servers
            .push(Server::start(cmd, port, "", log.as_ref())?);
        nodes.targets.push(target);
    }
    for target in &nodes.targets {
        target.wait_listening(Duration::from_secs(60)).await?;
    }
    if deployment.redis {
        for target in &nodes.targets {
            wait_redis_ok(target.port).await?;
        }
    }
    // Let a JIT or a lazy allocator settle before the first reading.
    sleep(Duration::from_millis(300)).await;
    Ok(nodes)
}

/// `--server-log` as given for a run with no label; else one file per label and node
/// beside it (`cluster-bbrt.4000-2nodes-n1.log`).
fn node_log(path: &std::path::Path, label: &str, k: usize) -> std::path::PathBuf {
    if label.is_empty() {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.{label}-n{}.log", k + 1))
}

/// Waits until a node says its Redis links are up (`/readyz`): a publication made before
/// its subscription would be lost, and counted as missing deliveries.
async fn wait_redis_ok(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = http_get(port, "/readyz").await.unwrap_or_default();
        if body.contains("redis: ok") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "node on port {port}: Redis not ok after 20 s: {}",
                body.trim()
            ));
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// The Redis counters of a node's `/metrics` that are not zero, on one line.
fn redis_counters(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("bbrt_redis_publications_total")
                || l.starts_with("bbrt_redis_received_total")
                || l.starts_with("bbrt_redis_reconnects_total")
        })
        .filter(|l| l.rsplit(' ').next().is_some_and(|v| v != "0"))
        .map(|l| l.replace("bbrt_redis_", ""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts the server's write syscalls for `secs` with perf's syscall tracepoints.
fn spawn_write_counter(pid: u32, secs: f64) -> Option<std::process::Child> {
    std::process::Command::new("perf")
        .args(["stat", "-x,", "-e"])
        .arg("syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg")
        .args(["-p", &pid.to_string(), "--", "sleep", &format!("{secs:.3}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()
}

fn read_write_count(child: std::process::Child) -> Option<u64> {
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let counts: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("syscalls:sys_enter_"))
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

// ---------------------------------------------------------------------------------------
// Scenarios 1 and 2: messages in threads, closed loop or fixed rate.

/// How clients send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// Each client keeps this many of its own messages in flight.
    Closed { in_flight: usize },
    /// All clients together send this many messages per second, evenly spread.
    Rate { per_s: f64 },
}

/// State the client tasks share (one thread: `Rc<RefCell<_>>`).
struct Traffic {
    epoch: std::time::Instant,
    start_ns: u64,
    end_ns: u64,
    group: usize,
    n: usize,
    /// Server processes; client i is on node `node_of(i, nodes)`.
    nodes: usize,
    latency: Histogram<u64>,
    /// With more than one node: `latency` split by whether the sender is on the
    /// receiver's node.
    same_node: Histogram<u64>,
    cross_node: Histogram<u64>,
    lag: Histogram<u64>,
    deliveries_in_window: u64,
    sent_in_window: u64,
    /// Deliveries still expected, per message sequence number.
    remaining: Vec<u8>,
    outstanding: u64,
    faults: Faults,
}

/// A bound on messages tracked in one run (about 100 s at 200k messages/s).
const MAX_MESSAGES: usize = 20_000_000;

impl Traffic {
    fn new(start_ns: u64, end_ns: u64, group: usize, n: usize, nodes: usize) -> Self {
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
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn group_size(&self, idx: usize) -> usize {
        let first = idx / self.group * self.group;
        (self.n - first).min(self.group)
    }

    /// Registers a message about to be sent; `None` when the bound is reached.
    fn new_message(&mut self, sender: usize) -> Option<u64> {
        if self.remaining.len() >= MAX_MESSAGES {
            return None;
        }
        let seq = self.remaining.len() as u64;
        let expected = self.group_size(sender);
        self.remaining
            .push(u8::try_from(expected).unwrap_or(u8::MAX));
        self.outstanding += expected as u64;
        Some(seq)
    }

    /// Accounts a delivered `message` frame for client `me` (member of `my_thread`);
    /// returns its sender's index.
    fn delivered(&mut self, me: usize, my_thread: &str, text: &str) -> Option<usize> {
        let now = self.now_ns();
        let parsed;
        let (thread_id, message) = match scan_message(text) {
            Some((thread_id, message)) => (Some(thread_id), Some(message)),
            None => {
                let Some(m) = Incoming::parse(text) else {
                    self.faults.error(text);
                    return None;
                };
                match m.kind.as_ref() {
                    "message" => {}
                    "error" => {
                        self.faults.error(text);
                        return None;
                    }
                    _ => return None,
                }
                parsed = m;
                (parsed.thread_id.as_deref(), parsed.message.as_deref())
            }
        };
        let Some((seq, sched, sender)) = message.and_then(parse_message_text) else {
            self.faults.misrouted += 1;
            return None;
        };
        if thread_id != Some(my_thread) || sender / self.group != me / self.group {
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

/// One closed-loop client: sends `in_flight` messages at the start, then one more each
/// time one of its own comes back.
async fn closed_client(
    mut ws: Ws,
    me: usize,
    in_flight_target: usize,
    sh: Rc<RefCell<Traffic>>,
    drain_end: Instant,
) {
    let (start_ns, end_ns, epoch, thread) = {
        let s = sh.borrow();
        (s.start_ns, s.end_ns, s.epoch, thread_of(me, s.group))
    };
    let start = Instant::from_std(epoch + Duration::from_nanos(start_ns));
    let mut started = false;
    let mut in_flight = 0usize;
    loop {
        let wake = if started { drain_end } else { start };
        tokio::select! {
            biased;
            frame = ws.next() => {
                // Every frame already read is taken before answering, so that one write
                // carries all the replacements (a write per message made the load
                // generator, not the server, the limit).
                let mut frame = frame;
                let mut returned = 0usize;
                loop {
                    match frame {
                        Some(Ok(Message::Text(t))) => {
                            if !is_presence(&t)
                                && sh.borrow_mut().delivered(me, &thread, &t) == Some(me)
                            {
                                returned += 1;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            if Instant::now() < drain_end {
                                sh.borrow_mut().faults.closed += 1;
                            }
                            return;
                        }
                        Some(Ok(_)) => {}
                    }
                    match ws.next().now_or_never() {
                        Some(next) => frame = next,
                        None => break,
                    }
                }
                in_flight = in_flight.saturating_sub(returned);
                if returned > 0 && sh.borrow().now_ns() < end_ns {
                    let mut queued = false;
                    while in_flight < in_flight_target && queue_one(&mut ws, me, &thread, &sh).await {
                        in_flight += 1;
                        queued = true;
                    }
                    if queued && ws.flush().await.is_err() {
                        sh.borrow_mut().faults.closed += 1;
                        return;
                    }
                }
            }
            () = sleep_until(wake) => {
                if started {
                    return;
                }
                started = true;
                while in_flight < in_flight_target && queue_one(&mut ws, me, &thread, &sh).await {
                    in_flight += 1;
                }
                if ws.flush().await.is_err() {
                    sh.borrow_mut().faults.closed += 1;
                    return;
                }
            }
        }
    }
}

/// The reading side of a fixed-rate client.
async fn rate_reader(
    mut stream: SplitStream<Ws>,
    me: usize,
    sh: Rc<RefCell<Traffic>>,
    drain_end: Instant,
) {
    let thread = thread_of(me, sh.borrow().group);
    loop {
        tokio::select! {
            biased;
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if !is_presence(&t) {
                        sh.borrow_mut().delivered(me, &thread, &t);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if Instant::now() < drain_end {
                        sh.borrow_mut().faults.closed += 1;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            () = sleep_until(drain_end) => return,
        }
    }
}

/// The fixed-rate schedule: message k is due at start + k/rate, from client k mod n. A
/// timerfd ticks once per message period; every tick sends whatever is due.
async fn rate_scheduler(
    mut sinks: Vec<SplitSink<Ws, Message>>,
    per_s: f64,
    sh: Rc<RefCell<Traffic>>,
) {
    let (start_ns, end_ns, group, now_ns) = {
        let s = sh.borrow();
        (s.start_ns, s.end_ns, s.group, s.now_ns())
    };
    let n = sinks.len();
    let period_ns = (1e9 / per_s).max(1.0);
    let interval = Duration::from_nanos(period_ns.min(1e6) as u64);
    let ticker = match crate::ticker::Ticker::new(
        Duration::from_nanos(start_ns.saturating_sub(now_ns)),
        interval,
    ) {
        Ok(t) => t,
        Err(e) => {
            let mut s = sh.borrow_mut();
            s.faults.error(&format!("load generator: no timerfd: {e}"));
            return;
        }
    };
    let mut k = 0u64;
    loop {
        if ticker.tick().await.is_err() {
            return;
        }
        let now = sh.borrow().now_ns();
        loop {
            let sched = start_ns + (k as f64 * period_ns) as u64;
            if sched >= end_ns {
                return;
            }
            if sched > now {
                break;
            }
            let me = (k % n as u64) as usize;
            let thread = thread_of(me, group);
            let frame = {
                let mut s = sh.borrow_mut();
                let Some(seq) = s.new_message(me) else { return };
                let sent = s.now_ns();
                let _ = s.lag.record(sent.saturating_sub(sched).max(1));
                s.sent_in_window += 1;
                format!(
                    r#"{{"type":"send_message","threadId":"{thread}","message":"{}"}}"#,
                    message_text(seq, sched, me)
                )
            };
            if sinks[me].send(Message::text(frame)).await.is_err() {
                sh.borrow_mut().faults.closed += 1;
                return;
            }
            k += 1;
        }
    }
}

/// Sends one closed-loop message now; false when nothing more may be sent.
/// Queues one message of client `me` (sent at the next flush); false once the window is
/// over or the connection failed.
async fn queue_one(ws: &mut Ws, me: usize, thread: &str, sh: &Rc<RefCell<Traffic>>) -> bool {
    let text = {
        let mut s = sh.borrow_mut();
        let now = s.now_ns();
        if now >= s.end_ns {
            return false;
        }
        let Some(seq) = s.new_message(me) else {
            return false;
        };
        s.sent_in_window += 1;
        message_text(seq, now, me)
    };
    let frame = format!(r#"{{"type":"send_message","threadId":"{thread}","message":"{text}"}}"#);
    ws.feed(Message::text(frame)).await.is_ok()
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
struct Deployment {
    /// One server process per command, all given `common`'s port + their index.
    cmds: Vec<String>,
    /// Tells the log files of the runs of one invocation apart; empty: `--server-log`.
    log_label: String,
    /// The nodes use Redis: wait for their links before the clients connect.
    redis: bool,
    /// Redis's pid, when it was found: its CPU in the window is reported.
    redis_pid: Option<u32>,
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
async fn traffic_on(common: &Common, mut r: Record, deployment: &Deployment, load: Load) -> Record {
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
    let traffic = Traffic::new(start_ns, end_ns, group, n, nodes.targets.len());
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
    r.server_writes = perf.and_then(read_write_count);
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
async fn introduce_everywhere(
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

// ---------------------------------------------------------------------------------------
// Scenario 7: two nodes through Redis against one, at the same fixed rate.

/// The report's names for the three deployments of scenario 7.
pub(crate) const ONE_NODE: &str = "bbrt 1 node";
pub(crate) const ONE_NODE_REDIS: &str = "bbrt 1 node + Redis";
pub(crate) const TWO_NODES: &str = "bbrt 2 nodes";

/// Scenario 7's name at one rate (one JSON line per deployment and rate).
pub(crate) fn cluster_scenario(per_s: f64) -> String {
    format!("cluster-{per_s:.0}")
}

/// Scenario 7 parameters.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    /// The load; its pace is each of `rates` in turn.
    pub(crate) load: Load,
    /// Messages per second, all clients together.
    pub(crate) rates: Vec<f64>,
    /// Given to each node as `--redis`.
    pub(crate) redis_url: String,
}

/// The port of a `redis://[user:password@]host[:port][/db]` URL.
fn redis_port(url: &str) -> u16 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(6379)
}

/// Scenario 7: at each rate, the same load against 1 node (the in-process broker, what a
/// single-node deployment runs), 2 nodes joined through Redis (clients alternately on
/// each) and 1 node with Redis; every node a fresh process of `common.server_cmd`, with
/// `--redis URL --redis-prefix <fresh> --node-id nK` appended for the Redis runs.
pub(crate) async fn cluster(common: &Common, p: &Cluster) -> Vec<Record> {
    let port = redis_port(&p.redis_url);
    let redis_pid = crate::proc::find_pid("redis-server", &format!(":{port}"));
    let mut records = Vec::new();
    for &per_s in &p.rates {
        for (server, nodes, redis, slug) in [
            (ONE_NODE, 1, false, "1node"),
            (TWO_NODES, 2, true, "2nodes"),
            (ONE_NODE_REDIS, 1, true, "1node-redis"),
        ] {
            // A fresh namespace per run: no node meets keys left by an earlier one.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let prefix = format!("bbrt-bench-{}-{nanos}", std::process::id());
            let cmds = (1..=nodes)
                .map(|k| {
                    // Every node runs the embedded development site (see
                    // `introduce_everywhere`), which bbrt refuses with `--redis` unless told.
                    if redis {
                        format!(
                            "{} --redis {} --redis-prefix {prefix} --node-id n{k} \
                             --allow-dev-site-with-redis",
                            common.server_cmd, p.redis_url
                        )
                    } else {
                        common.server_cmd.clone()
                    }
                })
                .collect();
            let deployment = Deployment {
                cmds,
                log_label: format!("{per_s:.0}-{slug}"),
                redis,
                redis_pid: redis_pid.filter(|_| redis),
            };
            let mut r = Record::new(&cluster_scenario(per_s), server);
            r.nodes = Some(nodes);
            r.rate_per_s = Some(per_s);
            r.redis = Some(redis);
            if redis && redis_pid.is_none() {
                r.notes.push(format!(
                    "no redis-server process with :{port} in its command line: Redis CPU not reported"
                ));
            }
            let load = Load {
                pace: Pace::Rate { per_s },
                ..p.load
            };
            records.push(traffic_on(common, r, &deployment, load).await);
            // Let the kernel reap the last run's sockets, as run.sh does between runs.
            sleep(Duration::from_secs(1)).await;
        }
    }
    records
}

fn fill_cpu(r: &mut Record, d: &Delta, s1: &Sample, ld: &Delta, window: Duration) {
    r.server_cpu_s = d.cpu_s;
    r.server_user_s = d.user_s;
    r.server_sys_s = d.sys_s;
    r.server_threads = s1.threads;
    r.loadgen_cpu_s = ld.cpu_s;
    r.loadgen_cpu_pct = Some(ld.cpu_s / window.as_secs_f64() * 100.0);
    let pct = |s: f64| s / window.as_secs_f64() * 100.0;
    r.others_on_server_core_pct = d.others_on_core_s.map(pct);
    r.others_on_loadgen_core_pct = ld.others_on_core_s.map(pct);
}

// ---------------------------------------------------------------------------------------
// Scenarios 3, 4 and 5: connections.

/// Counters of the held connections.
#[derive(Default)]
struct Held {
    open: usize,
    presence: u64,
    faults: Faults,
}

/// Reads a held connection until it closes or `until`.
async fn hold(mut ws: Ws, held: Rc<RefCell<Held>>, until: Instant) {
    held.borrow_mut().open += 1;
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let mut h = held.borrow_mut();
                    if is_presence(&t) {
                        h.presence += 1;
                    } else if t.contains(r#""type":"error""#) {
                        h.faults.error(&t);
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
                    Setup::Bare => timeout(Duration::from_secs(5), target.connect(i))
                        .await
                        .map_err(|_| "handshake timed out".to_owned())
                        .and_then(|r| r),
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
                    tokio::task::spawn_local(hold(ws, Rc::clone(&held), hold_until));
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

// ---------------------------------------------------------------------------------------
// Scenario 6: sends through a slow site while others type.

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
struct SiteThread {
    site: Option<bbrt_buddyboss::fake::FakeSite>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SiteThread {
    fn start() -> Result<Self, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_alternate_so_every_thread_spans_both_nodes() {
        let (n, group) = (200, 10);
        for thread in 0..n / group {
            let on: std::collections::BTreeSet<usize> = (thread * group..(thread + 1) * group)
                .map(|i| node_of(i, 2))
                .collect();
            assert_eq!(on.len(), 2, "thread {thread}");
        }
        assert!((0..n).all(|i| node_of(i, 1) == 0));
    }

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

    #[test]
    fn redis_port_from_url() {
        assert_eq!(redis_port("redis://127.0.0.1:6379"), 6379);
        assert_eq!(redis_port("redis://127.0.0.1:6380/0"), 6380);
        assert_eq!(redis_port("redis://user:p:w@host:7000/2"), 7000);
        assert_eq!(redis_port("redis://localhost/"), 6379);
    }

    #[test]
    fn redis_counters_keep_what_is_not_zero() {
        let metrics = "# HELP x\nbbrt_redis_publications_total{outcome=\"sent\"} 20012\n\
                       bbrt_redis_publications_total{outcome=\"dropped_queue_full\"} 0\n\
                       bbrt_redis_received_total 19990\nbbrt_connections 200\n";
        assert_eq!(
            redis_counters(metrics),
            "publications_total{outcome=\"sent\"} 20012, received_total 19990"
        );
    }

    #[test]
    fn node_logs_sit_beside_the_given_log() {
        let log = std::path::Path::new("/tmp/logs/cluster-bbrt.log");
        assert_eq!(node_log(log, "", 0), log);
        assert_eq!(
            node_log(log, "4000-2nodes", 1),
            std::path::Path::new("/tmp/logs/cluster-bbrt.4000-2nodes-n2.log")
        );
    }
}
