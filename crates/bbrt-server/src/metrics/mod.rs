//! Counters with relaxed atomics, rendered as Prometheus text at `/metrics`.
//!
//! Hand-written rather than the `metrics` crate: the hot path (a vectored write) adds to
//! three counters once per syscall, not once per frame, and nothing allocates.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bbrt_protocol::api::ApiRequest;
use bbrt_protocol::hub::HubStats;
use bbrt_protocol::{ClientMessage, ServerMessage};

use crate::site_events::SiteEventRefusal;
use bbrt_protocol::site_event::SITE_API_TYPES;

/// Reconnect recovery's metrics (name, help, type), in the order their values are read.
#[rustfmt::skip] // one metric a line reads as the table it is
const RECOVERY_METRICS: [(&str, &str, &str); 9] = [
    ("bbrt_replay_windows", "Threads with a replay window.", "gauge"),
    ("bbrt_replay_window_bytes", "Bytes the replay windows hold.", "gauge"),
    ("bbrt_site_catchups_in_flight", "Site history catch-ups in flight.", "gauge"),
    ("bbrt_resumes_window_total", "Resumes served from the window.", "counter"),
    ("bbrt_resumes_site_total", "Resumes that went to the site's history.", "counter"),
    ("bbrt_resumes_reload_total", "Resumes answered with reload.", "counter"),
    (
        "bbrt_positions_unavailable_total",
        "Messages delivered without a position: the coordinator could not count them.",
        "counter",
    ),
    (
        "bbrt_order_gaps_total",
        "Gaps in a thread's positions given up after the order wait.",
        "counter",
    ),
    (
        "bbrt_order_gaps_filled_total",
        "Gaps in a thread's positions filled from its shared window.",
        "counter",
    ),
];

/// Upper bounds of the site latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Why a connection was closed by the server side (label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    SlowConsumer,
    WriteStall,
    Idle,
    Protocol,
    /// Pings and pongs past the transport's rate limit (4008).
    ControlRate,
    Hub,
    Shutdown,
}

impl CloseReason {
    const ALL: [Self; 7] = [
        Self::SlowConsumer,
        Self::WriteStall,
        Self::Idle,
        Self::Protocol,
        Self::ControlRate,
        Self::Hub,
        Self::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow_consumer_queue",
            Self::WriteStall => "slow_consumer_stall",
            Self::Idle => "idle",
            Self::Protocol => "protocol",
            Self::ControlRate => "control_rate",
            Self::Hub => "hub",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Why an upgrade was refused before it became a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    PerIp,
    Total,
    Origin,
    BadRequest,
    ShuttingDown,
}

impl Refusal {
    const ALL: [Self; 5] = [
        Self::PerIp,
        Self::Total,
        Self::Origin,
        Self::BadRequest,
        Self::ShuttingDown,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::PerIp => "per_ip_limit",
            Self::Total => "connection_limit",
            Self::Origin => "origin",
            Self::BadRequest => "bad_request",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

/// What bbrt made of a connection ticket (label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketOutcome {
    /// Passed every check of bbrt's and spent; the site then checks its site credential.
    Accepted,
    /// Refused by bbrt (the cause is in the log).
    Refused,
}

impl TicketOutcome {
    const ALL: [Self; 2] = [Self::Accepted, Self::Refused];

    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Every counter the server keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) accepted: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) upgrades: AtomicU64,
    pub(crate) open_sockets: AtomicU64,
    refused: [AtomicU64; 5],
    closes: [AtomicU64; 7],
    tickets: [AtomicU64; TicketOutcome::ALL.len()],
    /// Client frames by type: `ClientMessage::KINDS`, then unknown/invalid, then binary.
    frames_in: [AtomicU64; ClientMessage::KINDS.len() + 2],
    pub(crate) bytes_in: AtomicU64,
    /// Server frames by type (`ServerMessage::KINDS`, then other), counted per recipient.
    frames_out: [AtomicU64; ServerMessage::KINDS.len() + 1],
    pub(crate) deliveries: AtomicU64,
    pub(crate) frames_written: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) writes: AtomicU64,
    /// Writes the hub task made straight into a socket (a subset of `writes`).
    pub(crate) direct_writes: AtomicU64,
    site: [Histogram; ApiRequest::NAMES.len()],
    site_errors: Mutex<BTreeMap<(&'static str, String), u64>>,
    pub(crate) coord_requests: AtomicU64,
    pub(crate) hub_inputs: AtomicU64,
    pub(crate) hub_batches: AtomicU64,
    hub: Mutex<HubStats>,
    /// The Redis link, with `--redis`.
    pub(crate) redis: std::sync::OnceLock<std::sync::Arc<crate::broker::RedisStatus>>,
    /// Another live process publishing with this node's id, as the hub task last saw it.
    pub(crate) node_id_conflict: Mutex<Option<NodeIdConflictSeen>>,
    /// The site's health, with `--buddyboss-url`.
    pub(crate) site_health: std::sync::OnceLock<std::sync::Arc<crate::site_health::SiteHealth>>,
    /// Site events accepted (new), and valid duplicates.
    site_events_accepted: AtomicU64,
    site_events_duplicate: AtomicU64,
    /// Server-API requests served, by [`SITE_API_TYPES`].
    site_api_served: [AtomicU64; SITE_API_TYPES.len()],
    /// Site events refused, by [`SiteEventRefusal::ALL`].
    site_events_refused: [AtomicU64; SiteEventRefusal::ALL.len()],
}

/// Another process heard publishing with this node's id (`Hub::node_id_conflict`).
#[derive(Debug, Clone)]
pub(crate) struct NodeIdConflictSeen {
    pub(crate) node: bbrt_protocol::ids::NodeId,
    pub(crate) instance: bbrt_protocol::ids::InstanceId,
    pub(crate) last_seen: std::time::Instant,
    /// Silent this long, it is taken to be gone (twice the presence snapshot interval: a
    /// live node publishes its presence at least that often).
    pub(crate) live_for: Duration,
}

impl NodeIdConflictSeen {
    /// Whether the other process was heard recently enough to be taken as alive.
    pub(crate) fn live(&self) -> bool {
        self.last_seen.elapsed() <= self.live_for
    }

    /// The `/readyz` line: what is wrong and how to fix it.
    pub(crate) fn summary(&self) -> String {
        format!(
            "node id: conflict: another process (instance {}) publishes as node {} on this redis prefix; \
             give every node its own --node-id, or leave it unset for a random one",
            self.instance, self.node
        )
    }
}

impl Metrics {
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn ticket(&self, outcome: TicketOutcome) {
        self.tickets[outcome as usize].fetch_add(1, Relaxed);
    }

    /// Counts a site event answered 200: new (`duplicate` false) or a valid duplicate.
    pub(crate) fn site_event_accepted(&self, duplicate: bool) {
        if duplicate {
            self.site_events_duplicate.fetch_add(1, Relaxed);
        } else {
            self.site_events_accepted.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn site_api_accepted(&self, kind: &str) {
        if let Some(i) = SITE_API_TYPES.iter().position(|t| *t == kind) {
            self.site_api_served[i].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn site_event_refused(&self, why: SiteEventRefusal) {
        self.site_events_refused[why.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self, why: CloseReason) {
        self.closes[why as usize].fetch_add(1, Relaxed);
    }

    /// Counts a decoded client frame by its `type`.
    pub(crate) fn frame_in(&self, kind: Option<&str>) {
        let i = kind
            .and_then(|k| ClientMessage::KINDS.iter().position(|x| *x == k))
            .unwrap_or(ClientMessage::KINDS.len());
        self.frames_in[i].fetch_add(1, Relaxed);
    }

    pub(crate) fn binary_in(&self) {
        self.frames_in[ClientMessage::KINDS.len() + 1].fetch_add(1, Relaxed);
    }

    /// Counts an encoded server frame sent to `recipients` connections.
    pub(crate) fn frame_out(&self, frame: &[u8], recipients: usize) {
        let kind = frame_type(frame);
        let i = kind
            .and_then(|k| ServerMessage::KINDS.iter().position(|x| *x == k))
            .unwrap_or(ServerMessage::KINDS.len());
        self.frames_out[i].fetch_add(recipients as u64, Relaxed);
        self.deliveries.fetch_add(recipients as u64, Relaxed);
    }

    /// Counts a site request by its kind (a request, so no name can be miscounted).
    pub(crate) fn site_request(&self, request: &ApiRequest, took: Duration, error: Option<&str>) {
        let i = request.index();
        let h = &self.site[i];
        let secs = took.as_secs_f64();
        if let Some(b) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            h.buckets[b].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_micros
            .fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
        if let Some(code) = error {
            let name = ApiRequest::NAMES[i];
            let mut map = self
                .site_errors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Codes come from the site: bound the label set.
            let code = if map.len() < 200 || map.contains_key(&(name, code.to_owned())) {
                code
            } else {
                "other"
            };
            *map.entry((name, code.to_owned())).or_default() += 1;
        }
    }

    /// The live conflict, if any.
    pub(crate) fn node_id_conflict(&self) -> Option<NodeIdConflictSeen> {
        self.node_id_conflict
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .filter(NodeIdConflictSeen::live)
    }

    pub(crate) fn set_hub_stats(&self, stats: HubStats) {
        *self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stats;
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(8 * 1024);
        let c = |o: &mut String, name: &str, help: &str, kind: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let hub = self
            .hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        c(
            &mut o,
            "bbrt_connections",
            "WebSocket connections the Hub knows, by state.",
            "gauge",
        );
        let _ = writeln!(
            o,
            "bbrt_connections{{state=\"anonymous\"}} {}",
            hub.anonymous_connections
        );
        let _ = writeln!(
            o,
            "bbrt_connections{{state=\"verified\"}} {}",
            hub.verified_connections
        );
        c(
            &mut o,
            "bbrt_open_sockets",
            "Upgraded sockets open.",
            "gauge",
        );
        let _ = writeln!(o, "bbrt_open_sockets {}", self.open_sockets.load(Relaxed));
        c(
            &mut o,
            "bbrt_users_online",
            "Users with a verified connection.",
            "gauge",
        );
        let _ = writeln!(o, "bbrt_users_online {}", hub.users_online);
        c(&mut o, "bbrt_calls", "Calls in progress.", "gauge");
        let _ = writeln!(o, "bbrt_calls {}", hub.calls);
        c(
            &mut o,
            "bbrt_participant_cache_threads",
            "Threads in the participant cache.",
            "gauge",
        );
        let _ = writeln!(o, "bbrt_participant_cache_threads {}", hub.cached_threads);
        c(
            &mut o,
            "bbrt_node_id_conflict",
            "Another live process publishes with this node's id (1): give each node its own --node-id.",
            "gauge",
        );
        let conflict = u8::from(self.node_id_conflict().is_some());
        let _ = writeln!(o, "bbrt_node_id_conflict {conflict}");
        c(
            &mut o,
            "bbrt_node_id_conflict_publications_total",
            "Publications received from another process with this node's id.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_node_id_conflict_publications_total {}",
            hub.node_id_conflict_publications
        );
        c(
            &mut o,
            "bbrt_site_requests_in_flight",
            "Site requests waiting for their result.",
            "gauge",
        );
        let _ = writeln!(o, "bbrt_site_requests_in_flight {}", hub.api_in_flight);
        c(
            &mut o,
            "bbrt_rate_limited_total",
            "Frames refused by the frame-rate limit.",
            "counter",
        );
        let _ = writeln!(o, "bbrt_rate_limited_total {}", hub.rate_limited);
        c(
            &mut o,
            "bbrt_anonymous_evicted_total",
            "Anonymous connections evicted (4010).",
            "counter",
        );
        let _ = writeln!(o, "bbrt_anonymous_evicted_total {}", hub.anonymous_evicted);
        c(
            &mut o,
            "bbrt_accepted_total",
            "TCP connections accepted.",
            "counter",
        );
        let _ = writeln!(o, "bbrt_accepted_total {}", self.accepted.load(Relaxed));
        c(
            &mut o,
            "bbrt_accept_errors_total",
            "accept() failures (EMFILE...).",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_accept_errors_total {}",
            self.accept_errors.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_upgrades_total",
            "WebSocket upgrades completed.",
            "counter",
        );
        let _ = writeln!(o, "bbrt_upgrades_total {}", self.upgrades.load(Relaxed));
        c(
            &mut o,
            "bbrt_upgrades_refused_total",
            "Upgrades refused, by reason.",
            "counter",
        );
        for r in Refusal::ALL {
            let _ = writeln!(
                o,
                "bbrt_upgrades_refused_total{{reason=\"{}\"}} {}",
                r.label(),
                self.refused[r as usize].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_tickets_total",
            "Connection tickets presented, by outcome.",
            "counter",
        );
        for t in TicketOutcome::ALL {
            let _ = writeln!(
                o,
                "bbrt_tickets_total{{outcome=\"{}\"}} {}",
                t.label(),
                self.tickets[t as usize].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_site_events_total",
            "Site events answered 200: new, or valid duplicates (not acted on again).",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_site_events_total{{outcome=\"accepted\"}} {}",
            self.site_events_accepted.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "bbrt_site_events_total{{outcome=\"duplicate\"}} {}",
            self.site_events_duplicate.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_site_api_requests_total",
            "Server-API requests served, by type (refusals are in bbrt_site_events_refused_total).",
            "counter",
        );
        for (i, t) in SITE_API_TYPES.iter().enumerate() {
            let _ = writeln!(
                o,
                "bbrt_site_api_requests_total{{type=\"{t}\"}} {}",
                self.site_api_served[i].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_site_messages_skipped_total",
            "message.sent events not delivered: bbrt sent the message itself, or already delivered it.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_site_messages_skipped_total {}",
            hub.site_messages_skipped
        );
        let recovery = [
            hub.window_threads as u64,
            hub.window_bytes as u64,
            hub.site_catchups_in_flight as u64,
            hub.replays_window,
            hub.replays_site,
            hub.replays_reload,
            hub.positions_unavailable,
            hub.order_gaps,
            hub.order_gaps_filled,
        ];
        for ((name, help, kind), value) in RECOVERY_METRICS.iter().zip(recovery) {
            c(&mut o, name, help, kind);
            let _ = writeln!(o, "{name} {value}");
        }
        c(
            &mut o,
            "bbrt_site_events_refused_total",
            "Site events refused, by reason.",
            "counter",
        );
        for r in SiteEventRefusal::ALL {
            let _ = writeln!(
                o,
                "bbrt_site_events_refused_total{{reason=\"{}\"}} {}",
                r.name(),
                self.site_events_refused[r.index()].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_server_closes_total",
            "Connections closed by the server, by reason.",
            "counter",
        );
        for r in CloseReason::ALL {
            let _ = writeln!(
                o,
                "bbrt_server_closes_total{{reason=\"{}\"}} {}",
                r.label(),
                self.closes[r as usize].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_slow_consumer_closes_total",
            "Connections closed with 4011.",
            "counter",
        );
        let slow = self.closes[CloseReason::SlowConsumer as usize].load(Relaxed)
            + self.closes[CloseReason::WriteStall as usize].load(Relaxed);
        let _ = writeln!(o, "bbrt_slow_consumer_closes_total {slow}");
        c(
            &mut o,
            "bbrt_frames_in_total",
            "Client frames, by type.",
            "counter",
        );
        for (i, k) in ClientMessage::KINDS
            .iter()
            .chain(["unknown", "binary"].iter())
            .enumerate()
        {
            let _ = writeln!(
                o,
                "bbrt_frames_in_total{{type=\"{k}\"}} {}",
                self.frames_in[i].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_bytes_in_total",
            "Bytes read from WebSockets.",
            "counter",
        );
        let _ = writeln!(o, "bbrt_bytes_in_total {}", self.bytes_in.load(Relaxed));
        c(
            &mut o,
            "bbrt_frames_out_total",
            "Server frames queued, by type, one per recipient.",
            "counter",
        );
        for (i, k) in ServerMessage::KINDS
            .iter()
            .chain(["other"].iter())
            .enumerate()
        {
            let _ = writeln!(
                o,
                "bbrt_frames_out_total{{type=\"{k}\"}} {}",
                self.frames_out[i].load(Relaxed)
            );
        }
        c(
            &mut o,
            "bbrt_deliveries_total",
            "Frames queued to connections (one per recipient).",
            "counter",
        );
        let _ = writeln!(o, "bbrt_deliveries_total {}", self.deliveries.load(Relaxed));
        c(
            &mut o,
            "bbrt_frames_written_total",
            "WebSocket frames handed to the kernel.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_frames_written_total {}",
            self.frames_written.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_writes_total",
            "Write syscalls (frames per write = frames_written / writes).",
            "counter",
        );
        let _ = writeln!(o, "bbrt_writes_total {}", self.writes.load(Relaxed));
        c(
            &mut o,
            "bbrt_direct_writes_total",
            "Write syscalls the hub task made itself, without waking the connection's task.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_direct_writes_total {}",
            self.direct_writes.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_bytes_written_total",
            "Bytes written to WebSockets.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_bytes_written_total {}",
            self.bytes_written.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_hub_inputs_total",
            "Inputs handled by the Hub.",
            "counter",
        );
        let _ = writeln!(o, "bbrt_hub_inputs_total {}", self.hub_inputs.load(Relaxed));
        c(
            &mut o,
            "bbrt_hub_batches_total",
            "Input batches handled by the Hub.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_hub_batches_total {}",
            self.hub_batches.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_coord_requests_total",
            "Coordination requests.",
            "counter",
        );
        let _ = writeln!(
            o,
            "bbrt_coord_requests_total {}",
            self.coord_requests.load(Relaxed)
        );
        c(
            &mut o,
            "bbrt_site_request_seconds",
            "Site request latency, by request.",
            "histogram",
        );
        for (i, name) in ApiRequest::NAMES.iter().enumerate() {
            let h = &self.site[i];
            let mut cumulative = 0;
            for (b, le) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.buckets[b].load(Relaxed);
                let _ = writeln!(
                    o,
                    "bbrt_site_request_seconds_bucket{{request=\"{name}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(
                o,
                "bbrt_site_request_seconds_bucket{{request=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                o,
                "bbrt_site_request_seconds_sum{{request=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                o,
                "bbrt_site_request_seconds_count{{request=\"{name}\"}} {count}"
            );
        }
        c(
            &mut o,
            "bbrt_site_errors_total",
            "Site request failures, by request and code.",
            "counter",
        );
        let errors = self
            .site_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((name, code), n) in errors.iter() {
            let code: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            let _ = writeln!(
                o,
                "bbrt_site_errors_total{{request=\"{name}\",code=\"{code}\"}} {n}"
            );
        }
        drop(errors);
        if let Some(redis) = self.redis.get() {
            redis.render(&mut o);
        }
        if let Some(site) = self.site_health.get() {
            site.render(&mut o);
        }
        o
    }
}

/// The `type` of an encoded server frame (`{"type":"..."` comes first: serde writes the
/// tag before the fields).
fn frame_type(frame: &[u8]) -> Option<&str> {
    let rest = frame.strip_prefix(b"{\"type\":\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests;
