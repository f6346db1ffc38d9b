//! What every scenario shares: the run's settings, fault counts, the client layout in
//! threads, opening joined clients, starting the server processes and reading their
//! counters.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt, stream};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Server, Target, Ws, http_get};
use crate::proc::{Delta, Sample};
use crate::proto::{Frame, Proto, pusher_socket_id, pusher_subscribe};
use crate::record::Record;

use super::traffic::Deployment;

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
pub(super) const SETUP_TIMEOUT: Duration = Duration::from_secs(300);
pub(super) const DRAIN: Duration = Duration::from_secs(3);

/// Bad things seen by the clients.
#[derive(Debug, Default)]
pub(super) struct Faults {
    pub(super) errors: u64,
    pub(super) misrouted: u64,
    pub(super) missing: u64,
    pub(super) duplicates: u64,
    pub(super) closed: u64,
    pub(super) samples: Vec<String>,
}

impl Faults {
    pub(super) fn error(&mut self, text: &str) {
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(text.chars().take(300).collect());
        }
    }

    pub(super) fn into_record(self, r: &mut Record) {
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
pub(super) fn user_of(idx: usize) -> String {
    (idx + 1).to_string()
}

/// The thread of client `idx` when clients are grouped `group` to a thread.
pub(super) fn thread_of(idx: usize, group: usize) -> String {
    (idx / group + 1).to_string()
}

/// Which thread each client joins: the first `split` clients in threads of `first_group`,
/// the rest in threads of `group`, numbered from 1 in client order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(super) split: usize,
    pub(super) first_group: usize,
    pub(super) group: usize,
}

impl Layout {
    pub(crate) fn uniform(group: usize) -> Self {
        Self {
            split: 0,
            first_group: group,
            group,
        }
    }

    pub(super) fn thread_index(self, idx: usize) -> usize {
        if idx < self.split {
            idx / self.first_group
        } else {
            self.split.div_ceil(self.first_group) + (idx - self.split) / self.group
        }
    }

    pub(super) fn thread(self, idx: usize) -> String {
        (self.thread_index(idx) + 1).to_string()
    }
}

/// Opens client `idx` bare: upgraded, and for Socket.IO connected to the main namespace
/// (what its client library does on connect; without it the server closes the socket).
pub(super) async fn open_bare(target: &Target, idx: usize) -> Result<Ws, String> {
    let mut ws = timeout(Duration::from_secs(5), target.connect(idx))
        .await
        .map_err(|_| "handshake timed out".to_owned())??;
    if let Some(frame) = target.proto.connect_frame() {
        ws.send(Message::text(frame))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    Ok(ws)
}

/// Opens client `idx`, identifies it and joins its thread in the server's protocol, and
/// waits until the server says it joined (the seed's `joined`, Pusher's
/// `subscription_succeeded`, the Socket.IO peer's `joined` event).
pub(super) async fn open_joined(
    target: &Target,
    idx: usize,
    layout: Layout,
    token: Option<&str>,
) -> Result<Ws, String> {
    let proto = target.proto;
    let mut ws = timeout(Duration::from_secs(20), target.connect(idx))
        .await
        .map_err(|_| "connect timed out".to_owned())??;
    let user = user_of(idx);
    let thread = layout.thread(idx);
    let mut frames: Vec<String> = proto
        .connect_frame()
        .map(str::to_owned)
        .into_iter()
        .collect();
    // The seed's servers take the identification at once; Socket.IO after its namespace
    // connect is answered, Pusher once it has given the socket id its signature needs.
    let mut identified = proto == Proto::Seed;
    if identified {
        frames.extend(proto.identify_frames(&user, &thread, token));
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        for frame in frames.drain(..) {
            ws.send(Message::text(frame))
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        let next = timeout(
            deadline.saturating_duration_since(Instant::now()),
            ws.next(),
        )
        .await
        .map_err(|_| format!("client {idx}: no joined within {SETUP_TIMEOUT:?}"))?;
        match next {
            Some(Ok(Message::Text(t))) => match proto.classify(&t) {
                Frame::Error => return Err(format!("client {idx}: {t}")),
                Frame::Reply(reply) => frames.push(reply.to_owned()),
                Frame::Other(kind) => match kind.as_ref() {
                    "joined" if identified => return Ok(ws),
                    "connected" if !identified => {
                        frames.extend(proto.identify_frames(&user, &thread, token));
                        identified = true;
                    }
                    "established" if !identified => {
                        let socket_id = pusher_socket_id(&t)
                            .ok_or_else(|| format!("client {idx}: no socket_id in {t}"))?;
                        frames.push(pusher_subscribe(&socket_id, &thread));
                        identified = true;
                    }
                    _ => {}
                },
                Frame::Delivery { .. } | Frame::Presence => {}
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("client {idx}: {e}")),
            None => return Err(format!("client {idx}: closed during setup")),
        }
    }
}

/// The node client `idx` connects to when there are `nodes`: alternately, so every thread
/// of more than one client has members on more than one node.
pub(super) fn node_of(idx: usize, nodes: usize) -> usize {
    idx % nodes.max(1)
}

/// Opens `n` identified-and-joined clients, `concurrency` at a time, client `i` on
/// `targets[node_of(i)]`; in index order.
pub(super) async fn open_all_joined(
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
pub(super) async fn start_server(common: &Common, site: &str) -> Result<Server, String> {
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
pub(super) struct Nodes {
    pub(super) servers: Vec<Server>,
    pub(super) targets: Vec<Target>,
}

impl Nodes {
    pub(super) fn samples(&self) -> Vec<Sample> {
        self.servers
            .iter()
            .map(|s| Sample::read(s.pid()).unwrap_or_default())
            .collect()
    }
}

/// Starts one server per command and waits for all to listen.
pub(super) async fn start_nodes(common: &Common, deployment: &Deployment) -> Result<Nodes, String> {
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
pub(super) fn node_log(path: &std::path::Path, label: &str, k: usize) -> std::path::PathBuf {
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
pub(super) async fn wait_redis_ok(port: u16) -> Result<(), String> {
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
pub(super) fn redis_counters(metrics: &str) -> String {
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

/// Counts the server's write syscalls, and all its syscalls, for `secs` with perf's
/// syscall tracepoints.
pub(super) fn spawn_write_counter(pid: u32, secs: f64) -> Option<std::process::Child> {
    std::process::Command::new("perf")
        .args(["stat", "-x,", "-e"])
        .arg("syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,raw_syscalls:sys_enter")
        .args(["-p", &pid.to_string(), "--", "sleep", &format!("{secs:.3}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()
}

/// What [`spawn_write_counter`] counted: (write syscalls, all syscalls).
pub(super) fn read_write_count(child: std::process::Child) -> (Option<u64>, Option<u64>) {
    let Ok(out) = child.wait_with_output() else {
        return (None, None);
    };
    parse_syscall_counts(&String::from_utf8_lossy(&out.stderr))
}

/// Parses `perf stat -x,`'s lines: the write tracepoints summed, and the raw count.
fn parse_syscall_counts(text: &str) -> (Option<u64>, Option<u64>) {
    let count = |l: &str| l.split(',').next()?.trim().parse::<u64>().ok();
    let writes: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("syscalls:sys_enter_"))
        .filter_map(count)
        .collect();
    let all = text
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter,"))
        .and_then(count);
    ((!writes.is_empty()).then(|| writes.iter().sum()), all)
}

pub(super) fn fill_cpu(r: &mut Record, d: &Delta, s1: &Sample, ld: &Delta, window: Duration) {
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
    fn syscall_counts_from_perf_stat() {
        let text = "12,,syscalls:sys_enter_write,1,100.00,,\n3,,syscalls:sys_enter_writev,1,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_sendto,0,0,,\n0,,syscalls:sys_enter_sendmsg,1,100.00,,\n\
                    99,,raw_syscalls:sys_enter,1,100.00,,\n";
        assert_eq!(parse_syscall_counts(text), (Some(15), Some(99)));
        assert_eq!(parse_syscall_counts("perf: not found"), (None, None));
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
