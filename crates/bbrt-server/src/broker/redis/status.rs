//! [`RedisStatus`]: the link's state and counters, for metrics and health.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Connection state and counters of the Redis link, shared with metrics and health.
#[derive(Debug, Default)]
pub struct RedisStatus {
    pub(super) commands_up: AtomicBool,
    pub(super) subscribed: AtomicBool,
    /// Publications sent to Redis.
    pub published: AtomicU64,
    /// Publications dropped because the outbound queue was full.
    pub publish_dropped: AtomicU64,
    /// Publications dropped because Redis was unreachable or refused them.
    pub publish_failed: AtomicU64,
    /// Publications of other nodes received.
    pub received: AtomicU64,
    /// Publications that were not broker messages of this version (ignored).
    pub bad_messages: AtomicU64,
    /// Connections (command and subscription) lost and re-established.
    pub reconnects: AtomicU64,
    /// Nodes announced down.
    pub nodes_down: AtomicU64,
    /// Other nodes this one currently sees alive.
    pub nodes_seen: AtomicU64,
    /// Coordination requests answered without Redis (unreachable, or the wait ran out).
    pub coord_unavailable: AtomicU64,
}

impl RedisStatus {
    /// Whether the command connection is up.
    pub fn commands_up(&self) -> bool {
        self.commands_up.load(Relaxed)
    }

    /// Whether the subscription is up.
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Relaxed)
    }

    /// Whether this node is cut off from the other nodes (either connection down).
    pub fn degraded(&self) -> bool {
        !self.commands_up() || !self.subscribed()
    }

    /// One line for health details.
    pub fn summary(&self) -> String {
        format!(
            "redis: {} (commands {}, subscription {}); publications dropped {}",
            if self.degraded() { "degraded" } else { "ok" },
            if self.commands_up() { "up" } else { "down" },
            if self.subscribed() { "up" } else { "down" },
            self.publish_dropped.load(Relaxed) + self.publish_failed.load(Relaxed),
        )
    }

    /// Prometheus text for these counters.
    pub fn render(&self, out: &mut String) {
        let gauges = [
            (
                "bbrt_redis_up",
                "Redis command connection up (1) or down (0).",
                u64::from(self.commands_up()),
            ),
            (
                "bbrt_redis_subscribed",
                "Redis subscription up (1) or down (0).",
                u64::from(self.subscribed()),
            ),
            (
                "bbrt_redis_degraded",
                "Cut off from the other nodes (1).",
                u64::from(self.degraded()),
            ),
            (
                "bbrt_redis_nodes_seen",
                "Other nodes this one sees alive.",
                self.nodes_seen.load(Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP bbrt_redis_publications_total Publications by outcome.\n\
             # TYPE bbrt_redis_publications_total counter"
        );
        for (outcome, counter) in [
            ("sent", &self.published),
            ("dropped_queue_full", &self.publish_dropped),
            ("dropped_unavailable", &self.publish_failed),
        ] {
            let value = counter.load(Relaxed);
            let _ = writeln!(
                out,
                "bbrt_redis_publications_total{{outcome=\"{outcome}\"}} {value}"
            );
        }
        let counters = [
            (
                "bbrt_redis_received_total",
                "Publications of other nodes received.",
                &self.received,
            ),
            (
                "bbrt_redis_bad_messages_total",
                "Publications that could not be parsed.",
                &self.bad_messages,
            ),
            (
                "bbrt_redis_reconnects_total",
                "Redis connections lost.",
                &self.reconnects,
            ),
            (
                "bbrt_redis_nodes_down_total",
                "Nodes announced down.",
                &self.nodes_down,
            ),
            (
                "bbrt_redis_coord_unavailable_total",
                "Coordination requests answered without Redis.",
                &self.coord_unavailable,
            ),
        ];
        for (name, help, counter) in counters {
            let value = counter.load(Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }
}
