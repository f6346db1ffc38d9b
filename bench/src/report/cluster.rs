//! The scale-out table: one node, one node with Redis and two nodes at the same fixed
//! rate, with issue 22's goals (deliveries per CPU-second, cross-node p99).

use std::fmt::Write as _;

use super::{Getter, Runs, fmt, median, pct, ratio};
use crate::record::Record;
use crate::scenarios::{ONE_NODE, ONE_NODE_REDIS, TWO_NODES, cluster_scenario};

/// Issue 7's goals are stated at this rate (scenario 2's load).
pub(super) const CLUSTER_GOAL_RATE: f64 = 4000.0;

/// What the ratio 2 nodes / 1 node must be.
#[derive(Clone, Copy)]
pub(super) enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

pub(super) struct ClusterRow {
    metric: &'static str,
    /// The value of a 1-node run (the in-process broker, and with Redis).
    one: Getter,
    /// The value of the 2-node run.
    two: Getter,
    /// Issue 7's goal on two / one, at [`CLUSTER_GOAL_RATE`].
    goal: Option<(&'static str, Bound)>,
}

pub(super) fn cluster_rows() -> Vec<ClusterRow> {
    let row = |metric, one: Getter, two: Getter| ClusterRow {
        metric,
        one,
        two,
        goal: None,
    };
    let none: Getter = |_| None;
    vec![
        row(
            "deliveries/s",
            |r| r.deliveries_per_s,
            |r| r.deliveries_per_s,
        ),
        ClusterRow {
            goal: Some((
                "2 nodes / 1 node ≥ 0.85 (#22; #7: 0.5)",
                Bound::AtLeast(0.85),
            )),
            ..row(
                "deliveries per server CPU second (2 nodes: both processes)",
                deliveries_per_cpu_s,
                deliveries_per_cpu_s,
            )
        },
        row(
            "server CPU µs/delivery",
            |r| r.server_cpu_us_per_delivery,
            |r| r.server_cpu_us_per_delivery,
        ),
        row(
            "latency p50 µs, all deliveries",
            |r| pct(|p| p.p50, r.latency_us),
            |r| pct(|p| p.p50, r.latency_us),
        ),
        row(
            "latency p99 µs, all deliveries",
            |r| pct(|p| p.p99, r.latency_us),
            |r| pct(|p| p.p99, r.latency_us),
        ),
        row("same-node latency p50 µs (2 nodes only)", none, |r| {
            pct(|p| p.p50, r.same_node_latency_us)
        }),
        row("same-node latency p99 µs (2 nodes only)", none, |r| {
            pct(|p| p.p99, r.same_node_latency_us)
        }),
        row(
            "cross-node latency p50 µs (1 node: all deliveries)",
            |r| pct(|p| p.p50, r.latency_us),
            |r| pct(|p| p.p50, r.cross_node_latency_us),
        ),
        ClusterRow {
            goal: Some(("cross-node p99 / 1-node p99 ≤ 1.5", Bound::AtMost(1.5))),
            ..row(
                "cross-node latency p99 µs (1 node: all deliveries)",
                |r| pct(|p| p.p99, r.latency_us),
                |r| pct(|p| p.p99, r.cross_node_latency_us),
            )
        },
        row(
            "cross-node latency p99.9 µs (1 node: all deliveries)",
            |r| pct(|p| p.p999, r.latency_us),
            |r| pct(|p| p.p999, r.cross_node_latency_us),
        ),
        row("Redis CPU % of the window", redis_cpu_pct, redis_cpu_pct),
        row(
            "load generator send lag p99 µs",
            |r| pct(|p| p.p99, r.send_lag_us),
            |r| pct(|p| p.p99, r.send_lag_us),
        ),
        row(
            "load generator CPU %",
            |r| r.loadgen_cpu_pct,
            |r| r.loadgen_cpu_pct,
        ),
        row(
            "noise: other processes' CPU on the servers' core %",
            |r| r.others_on_server_core_pct,
            |r| r.others_on_server_core_pct,
        ),
        row(
            "noise: other processes' CPU on the load generator's core %",
            |r| r.others_on_loadgen_core_pct,
            |r| r.others_on_loadgen_core_pct,
        ),
    ]
}

pub(super) fn deliveries_per_cpu_s(r: &Record) -> Option<f64> {
    (r.server_cpu_s > 0.0 && r.deliveries > 0).then(|| r.deliveries as f64 / r.server_cpu_s)
}

pub(super) fn redis_cpu_pct(r: &Record) -> Option<f64> {
    let cpu = r.redis_cpu_s?;
    (r.window_s > 0.0).then(|| cpu / r.window_s * 100.0)
}

/// Scenario 7's table, one block of rows per rate (highest first); empty without its runs.
pub(super) fn cluster_table(by: &Runs) -> String {
    let mut rates: Vec<f64> = by
        .values()
        .flatten()
        .filter_map(|r| r.rate_per_s.filter(|_| r.nodes.is_some()))
        .collect();
    rates.sort_by(|a, b| b.total_cmp(a));
    rates.dedup();
    if rates.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    out += "\n## Scale-out: 2 nodes through Redis vs 1 node (issue 7)\n\n";
    out += "Scenario 7, bbrt only: the fixed-rate load of scenario 2 against 1 node (the in-process broker, \
            what a single-node deployment runs), against 2 nodes joined through Redis (client i on node i mod 2, \
            both nodes pinned to core 0) and against 1 node with Redis; every node a fresh process. \
            Ratios are 2 nodes / 1 node; server CPU of 2 nodes is both processes summed; Redis's own CPU is \
            reported apart. Cross-node: deliveries whose sender is connected to the other node.\n\n";
    out += "| metric | 1 node | 1 node + Redis | 2 nodes | 2 nodes / 1 node | goal | met |\n\
            |---|---:|---:|---:|---:|---|---|\n";
    for rate in rates {
        let scenario = cluster_scenario(rate);
        let get = |server: &str, f: Getter| median(by, &scenario, server, f);
        for row in cluster_rows() {
            let one = get(ONE_NODE, row.one);
            let one_redis = get(ONE_NODE_REDIS, row.one);
            let two = get(TWO_NODES, row.two);
            if one.is_none() && one_redis.is_none() && two.is_none() {
                continue;
            }
            let (goal, met) = match row.goal {
                Some((text, bound)) if rate == CLUSTER_GOAL_RATE => {
                    let met = match (one, two) {
                        (Some(o), Some(t)) if o > 0.0 => {
                            let ok = match bound {
                                Bound::AtLeast(b) => t / o >= b,
                                Bound::AtMost(b) => t / o <= b,
                            };
                            if ok { "yes" } else { "**no**" }
                        }
                        _ => "n/a",
                    };
                    (text, met)
                }
                _ => ("", ""),
            };
            let _ = writeln!(
                out,
                "| 7 scale-out {rate:.0} msg/s: {} | {} | {} | {} | {} | {goal} | {met} |",
                row.metric,
                fmt(one),
                fmt(one_redis),
                fmt(two),
                ratio(one, two),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Scenario 8 (issue 22): the ramp, its own table.
