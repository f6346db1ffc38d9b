//! One JSON line per (scenario, server): what was measured and whether it passed.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    /// From a histogram of nanoseconds.
    pub(crate) fn from_ns(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

/// A histogram of nanoseconds from 1 ns to 100 s at 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid static histogram bounds")
}

/// What one scenario run against one server measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Record {
    /// `fanout`, `rate`, `idle`, `setup`, `maxconn`, `site`, `cluster-<rate>`.
    pub(crate) scenario: String,
    /// `node` or `bbrt`.
    pub(crate) server: String,
    /// No error, misrouted, missing or duplicate delivery, and the scenario completed.
    pub(crate) ok: bool,
    /// Why not ok.
    pub(crate) failures: Vec<String>,
    /// Connections the scenario used (or held, for `maxconn`).
    pub(crate) connections: usize,
    /// The measured window, seconds.
    pub(crate) window_s: f64,
    /// Messages sent in the window.
    pub(crate) sent: u64,
    /// Deliveries (frames received by a connection) in the window.
    pub(crate) deliveries: u64,
    pub(crate) deliveries_per_s: Option<f64>,
    /// Server CPU in the window, seconds, and its user/system split (10 ms grain).
    pub(crate) server_cpu_s: f64,
    pub(crate) server_user_s: f64,
    pub(crate) server_sys_s: f64,
    pub(crate) server_cpu_us_per_delivery: Option<f64>,
    /// Server threads (a tokio server's worker count plus its blocking pool).
    pub(crate) server_threads: usize,
    /// Write syscalls of the server in the window (perf tracepoints), when counted.
    pub(crate) server_writes: Option<u64>,
    pub(crate) frames_per_write: Option<f64>,
    /// All syscalls of the server in the window (perf's `raw_syscalls:sys_enter`), when
    /// counted, and per delivery.
    pub(crate) server_syscalls: Option<u64>,
    pub(crate) syscalls_per_delivery: Option<f64>,
    /// Wake-ups of the server's threads in the window (voluntary context switches), and
    /// per delivery.
    pub(crate) server_wakeups: Option<u64>,
    pub(crate) wakeups_per_delivery: Option<f64>,
    /// Server CPU per message sent (every delivery of it together), µs.
    pub(crate) server_cpu_us_per_message: Option<f64>,
    /// Latency from the scheduled (fixed rate) or actual (closed loop) send time.
    pub(crate) latency_us: Option<Percentiles>,
    /// How late the load generator sent, against the schedule (fixed rate only).
    pub(crate) send_lag_us: Option<Percentiles>,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    pub(crate) rss_per_conn_kib: Option<f64>,
    /// Time to open the connections.
    pub(crate) connect_s: Option<f64>,
    /// Time from the first connect until every connection is identified and joined.
    pub(crate) setup_s: Option<f64>,
    /// `storm`: time from the moment every connection was lost until every client had
    /// joined again, all reconnecting at once.
    pub(crate) reconnect_s: Option<f64>,
    /// `storm`: the machine's listen-queue overflows and SYN retransmits meanwhile.
    pub(crate) listen_overflows: Option<u64>,
    pub(crate) syn_retransmits: Option<u64>,
    /// `maxconn`: the most connections the server held at once.
    pub(crate) max_connections: Option<usize>,
    /// `site`: sends acked, and the time until the last ack.
    pub(crate) acked: Option<usize>,
    pub(crate) all_acked_ms: Option<f64>,
    /// `site`: when the site had received every send's POST (within 2 ms).
    pub(crate) all_posted_ms: Option<f64>,
    /// `site`: when the site had answered every POST of the measured burst.
    pub(crate) site_answered_ms: Option<f64>,
    /// `site`: the first (warm-up) burst's time until all acked: it also opens the server's
    /// connections to the site.
    pub(crate) cold_acked_ms: Option<f64>,
    /// `site`: typing latency before and during the burst of sends.
    pub(crate) typing_before_us: Option<Percentiles>,
    pub(crate) typing_during_us: Option<Percentiles>,
    /// Error frames, misrouted, missing and duplicate deliveries.
    pub(crate) errors: u64,
    pub(crate) misrouted: u64,
    pub(crate) missing: u64,
    pub(crate) duplicates: u64,
    /// The first few error frames, verbatim.
    pub(crate) error_samples: Vec<String>,
    /// The load generator's own CPU over the window, seconds, and as a share of the window.
    pub(crate) loadgen_cpu_s: f64,
    pub(crate) loadgen_cpu_pct: Option<f64>,
    /// Noise: CPU other processes used on the server's core and on the load generator's
    /// core during the window, as a share of the window.
    pub(crate) others_on_server_core_pct: Option<f64>,
    pub(crate) others_on_loadgen_core_pct: Option<f64>,
    /// `cluster`: server processes (nodes), each pinned to the server's core.
    pub(crate) nodes: Option<usize>,
    /// `cluster`, `ramp`: the fixed rate, messages per second, all clients together.
    pub(crate) rate_per_s: Option<f64>,
    /// `ramp`: whether the rate was held (no loss, p99 under the bound).
    pub(crate) held: Option<bool>,
    /// `cluster`: with Redis between nodes (`--redis`), or the in-process broker.
    pub(crate) redis: Option<bool>,
    /// `cluster`: each node's CPU in the window, seconds (`server_cpu_s` is their sum).
    pub(crate) node_cpu_s: Option<Vec<f64>>,
    /// `cluster`: Redis's own CPU in the window, seconds, when its process was found.
    pub(crate) redis_cpu_s: Option<f64>,
    /// `cluster` with 2 nodes: latency of deliveries whose sender is connected to the same
    /// node as the receiver, and to the other node.
    pub(crate) same_node_latency_us: Option<Percentiles>,
    pub(crate) cross_node_latency_us: Option<Percentiles>,
    /// Anything a reader should know.
    pub(crate) notes: Vec<String>,
}

impl Record {
    pub(crate) fn new(scenario: &str, server: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            server: server.to_owned(),
            ..Self::default()
        }
    }

    /// Marks the run failed for `why`.
    pub(crate) fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }

    /// Sets `ok` from the counters and failures.
    pub(crate) fn finish(&mut self) {
        if self.errors > 0 {
            self.fail(format!("{} error frames", self.errors));
        }
        if self.misrouted > 0 {
            self.fail(format!("{} misrouted deliveries", self.misrouted));
        }
        if self.missing > 0 {
            self.fail(format!("{} missing deliveries", self.missing));
        }
        if self.duplicates > 0 {
            self.fail(format!("{} duplicate deliveries", self.duplicates));
        }
        self.ok = self.failures.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = histogram();
        for ns in 1..=1000u64 {
            h.record(ns * 1000).expect("in range");
        }
        let p = Percentiles::from_ns(&h).expect("not empty");
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 2.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 2.0, "{p:?}");
        assert!(Percentiles::from_ns(&histogram()).is_none());
    }

    #[test]
    fn any_bad_delivery_fails_the_run() {
        let mut r = Record::new("fanout", "bbrt");
        r.finish();
        assert!(r.ok);
        let mut r = Record::new("fanout", "bbrt");
        r.missing = 1;
        r.finish();
        assert!(!r.ok);
        assert_eq!(r.failures, ["1 missing deliveries"]);
    }
}
