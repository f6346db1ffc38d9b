//! `latest.md` and `latest.png` from `latest.jsonl`: Node and bbrt side by side, with
//! bbrt/Node ratios from the same run and issue 6's goals.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::chart::{self, Panel};
use crate::record::{Percentiles, Record};
use crate::scenarios::{ONE_NODE, ONE_NODE_REDIS, TWO_NODES, cluster_scenario};

/// A goal from issue 6, judged on one row.
#[derive(Clone, Copy)]
enum Goal {
    None,
    /// bbrt/Node at most this.
    RatioAtMost(f64),
    /// bbrt's value at most this.
    AtMost(f64),
    /// bbrt's value at least this.
    AtLeast(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Self::None => String::new(),
            Self::RatioAtMost(r) => format!("ratio ≤ {r}"),
            Self::AtMost(v) => format!("bbrt ≤ {v}"),
            Self::AtLeast(v) => format!("bbrt ≥ {v}"),
        }
    }

    fn met(self, node: Option<f64>, bbrt: Option<f64>) -> &'static str {
        let verdict = match self {
            Self::None => return "",
            Self::RatioAtMost(r) => match (node, bbrt) {
                (Some(n), Some(b)) if n > 0.0 => b / n <= r,
                _ => return "n/a",
            },
            Self::AtMost(v) => match bbrt {
                Some(b) => b <= v,
                None => return "n/a",
            },
            Self::AtLeast(v) => match bbrt {
                Some(b) => b >= v,
                None => return "n/a",
            },
        };
        if verdict { "yes" } else { "**no**" }
    }
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio(node: Option<f64>, bbrt: Option<f64>) -> String {
    match (node, bbrt) {
        (Some(n), Some(b)) if n > 0.0 => format!("{:.3}", b / n),
        _ => "–".to_owned(),
    }
}

/// The last record per (scenario, server).
fn latest(records: Vec<Record>) -> BTreeMap<(String, String), Record> {
    records
        .into_iter()
        .map(|r| ((r.scenario.clone(), r.server.clone()), r))
        .collect()
}

type Getter = fn(&Record) -> Option<f64>;

struct Row {
    scenario: &'static str,
    metric: &'static str,
    get: Getter,
    goal: Goal,
}

fn pct(f: fn(&Percentiles) -> f64, p: Option<Percentiles>) -> Option<f64> {
    p.as_ref().map(f)
}

fn rows() -> Vec<Row> {
    let row = |scenario, metric, get: Getter, goal| Row {
        scenario,
        metric,
        get,
        goal,
    };
    vec![
        row(
            "fanout",
            "1 fan-out: deliveries/s",
            |r| r.deliveries_per_s,
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: server CPU µs/delivery",
            |r| r.server_cpu_us_per_delivery,
            Goal::RatioAtMost(0.125),
        ),
        row(
            "fanout",
            "1 fan-out: server system-time share %",
            sys_share,
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: frames per write syscall",
            |r| r.frames_per_write,
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: latency p50 µs",
            |r| pct(|p| p.p50, r.latency_us),
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: latency p99 µs",
            |r| pct(|p| p.p99, r.latency_us),
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: latency p99.9 µs",
            |r| pct(|p| p.p999, r.latency_us),
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: load generator CPU %",
            |r| r.loadgen_cpu_pct,
            Goal::None,
        ),
        row(
            "fanout",
            "1 fan-out: noise: other processes' CPU on the server's core %",
            |r| r.others_on_server_core_pct,
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: deliveries/s",
            |r| r.deliveries_per_s,
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: latency p50 µs",
            |r| pct(|p| p.p50, r.latency_us),
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: latency p99 µs",
            |r| pct(|p| p.p99, r.latency_us),
            Goal::RatioAtMost(0.4),
        ),
        row(
            "rate",
            "2 fixed rate: latency p99.9 µs",
            |r| pct(|p| p.p999, r.latency_us),
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: server CPU µs/delivery",
            |r| r.server_cpu_us_per_delivery,
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: load generator send lag p99 µs",
            |r| pct(|p| p.p99, r.send_lag_us),
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: load generator CPU %",
            |r| r.loadgen_cpu_pct,
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: noise: other processes' CPU on the server's core %",
            |r| r.others_on_server_core_pct,
            Goal::None,
        ),
        row(
            "rate",
            "2 fixed rate: noise: other processes' CPU on the load generator's core %",
            |r| r.others_on_loadgen_core_pct,
            Goal::None,
        ),
        row(
            "idle",
            "3 idle: RSS KiB per connection",
            |r| r.rss_per_conn_kib,
            Goal::AtMost(3.0),
        ),
        row(
            "idle",
            "3 idle: server threads",
            |r| Some(r.server_threads as f64),
            Goal::None,
        ),
        row(
            "setup",
            "4 identified+joined: RSS KiB per connection",
            |r| r.rss_per_conn_kib,
            Goal::AtMost(4.0),
        ),
        row(
            "setup",
            "4 identified+joined: setup time s",
            |r| r.setup_s,
            Goal::RatioAtMost(0.05),
        ),
        row(
            "setup",
            "4 identified+joined: server CPU s",
            |r| Some(r.server_cpu_s),
            Goal::None,
        ),
        row(
            "maxconn",
            "5 most connections held",
            |r| r.max_connections.map(|m| m as f64),
            Goal::AtLeast(19_000.0),
        ),
        row(
            "maxconn",
            "5 RSS KiB per connection at the most",
            |r| r.rss_per_conn_kib,
            Goal::None,
        ),
        row(
            "site",
            "6 site 50 ms: time until all acked ms",
            |r| r.all_acked_ms,
            Goal::AtMost(100.0),
        ),
        row(
            "site",
            "6 site: first burst, cold site connections: all acked ms",
            |r| r.cold_acked_ms,
            Goal::None,
        ),
        row(
            "site",
            "6 site: time until the site had every POST ms",
            |r| r.all_posted_ms,
            Goal::None,
        ),
        row(
            "site",
            "6 site: time until the site had answered every POST ms",
            |r| r.site_answered_ms,
            Goal::None,
        ),
        row(
            "site",
            "6 site: typing p99 µs before the burst",
            |r| pct(|p| p.p99, r.typing_before_us),
            Goal::None,
        ),
        row(
            "site",
            "6 site: typing p99 µs during the burst",
            |r| pct(|p| p.p99, r.typing_during_us),
            Goal::None,
        ),
        row(
            "site",
            "6 site: typing p99 during/before",
            typing_change,
            Goal::None,
        ),
    ]
}

fn sys_share(r: &Record) -> Option<f64> {
    let total = r.server_user_s + r.server_sys_s;
    (total > 0.0).then(|| r.server_sys_s / total * 100.0)
}

fn typing_change(r: &Record) -> Option<f64> {
    let before = r.typing_before_us?.p99;
    let during = r.typing_during_us?.p99;
    (before > 0.0).then(|| during / before)
}

// ---------------------------------------------------------------------------------------
// Scenario 7 (issue 7): its own table, 2 nodes through Redis against 1 node.

/// Issue 7's goals are stated at this rate (scenario 2's load).
const CLUSTER_GOAL_RATE: f64 = 4000.0;

/// What the ratio 2 nodes / 1 node must be.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

struct ClusterRow {
    metric: &'static str,
    /// The value of a 1-node run (the in-process broker, and with Redis).
    one: Getter,
    /// The value of the 2-node run.
    two: Getter,
    /// Issue 7's goal on two / one, at [`CLUSTER_GOAL_RATE`].
    goal: Option<(&'static str, Bound)>,
}

fn cluster_rows() -> Vec<ClusterRow> {
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
            goal: Some(("2 nodes / 1 node ≥ 0.5", Bound::AtLeast(0.5))),
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

fn deliveries_per_cpu_s(r: &Record) -> Option<f64> {
    (r.server_cpu_s > 0.0 && r.deliveries > 0).then(|| r.deliveries as f64 / r.server_cpu_s)
}

fn redis_cpu_pct(r: &Record) -> Option<f64> {
    let cpu = r.redis_cpu_s?;
    (r.window_s > 0.0).then(|| cpu / r.window_s * 100.0)
}

/// Scenario 7's table, one block of rows per rate (highest first); empty without its runs.
fn cluster_table(by: &BTreeMap<(String, String), Record>) -> String {
    let mut rates: Vec<f64> = by
        .values()
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
    out += "| metric | 1 node | 1 node + Redis | 2 nodes | 2 nodes / 1 node | goal (issue 7) | met |\n\
            |---|---:|---:|---:|---:|---|---|\n";
    for rate in rates {
        let scenario = cluster_scenario(rate);
        let get =
            |server: &str, f: Getter| by.get(&(scenario.clone(), server.to_owned())).and_then(f);
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

/// Writes the markdown report and the chart.
pub(crate) fn write(input: &Path, md: &Path, png: &Path, about: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let records: Vec<Record> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", input.display())))
        .collect::<Result<_, _>>()?;
    let by = latest(records);
    let get = |scenario: &str, server: &str, f: Getter| {
        by.get(&(scenario.to_owned(), server.to_owned()))
            .and_then(f)
    };

    let mut out = String::new();
    out += "# bbrt vs the seed's Node.js server: latest run\n\n";
    out += "Generated by `bench/run.sh` (`bbrt-bench report`); both servers measured in the same run, \
            each scenario on a fresh server process pinned to core 0, the load generator on core 1. \
            Ratios are bbrt/Node (lower is better except for throughput and connections held).\n\n";
    let mut table = String::new();
    for row in rows() {
        let node = get(row.scenario, "node", row.get);
        let bbrt = get(row.scenario, "bbrt", row.get);
        if node.is_none() && bbrt.is_none() {
            continue;
        }
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            row.metric,
            fmt(node),
            fmt(bbrt),
            ratio(node, bbrt),
            row.goal.describe(),
            row.goal.met(node, bbrt)
        );
    }
    if !table.is_empty() {
        out += "| metric | Node | bbrt | bbrt/Node | goal (issue 6) | met |\n|---|---:|---:|---:|---|---|\n";
        out += &table;
    }
    out += &cluster_table(&by);
    out += "\n## Runs\n\n| scenario | server | status | connections | window s | server threads | load generator CPU % | notes |\n|---|---|---|---:|---:|---:|---:|---|\n";
    for r in by.values() {
        let status = if r.ok {
            "ok".to_owned()
        } else {
            format!("**FAILED**: {}", r.failures.join("; "))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} |",
            r.scenario,
            r.server,
            status,
            r.connections,
            r.window_s,
            r.server_threads,
            fmt(r.loadgen_cpu_pct),
            r.notes.join("; ").replace('|', "/")
        );
    }
    let samples: Vec<String> = by
        .values()
        .flat_map(|r| {
            r.error_samples
                .iter()
                .map(move |e| format!("- {} {}: `{}`", r.scenario, r.server, e.replace('`', "'")))
        })
        .collect();
    if !samples.is_empty() {
        out += "\nError frames seen (first few per run):\n\n";
        out += &samples.join("\n");
        out += "\n";
    }
    if !about.is_empty() {
        out += "\n## Machine and run\n\n";
        out += about;
        out += "\n";
    }
    let png_name = png
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = write!(
        out,
        "\n![chart]({png_name})\n\nThe chart (`{png_name}`): green bars Node, orange bars bbrt; each panel is labelled \
         in the picture. Top left: scenario 2 latency percentiles from the scheduled send time, µs, log scale. \
         Top right: scenario 1 server CPU µs per delivery (and scenario 2's). Middle left: RSS KiB per connection, \
         idle (3) and identified+joined (4). Middle right: scenario 4 setup time, s, log scale. Bottom left: \
         scenario 6, time until all sends acked and typing p99 before and during the burst, ms, log scale. \
         Bottom right: scenario 1 deliveries per second.\n"
    );
    std::fs::write(md, out).map_err(|e| format!("{}: {e}", md.display()))?;

    let lat = |server: &str, f: fn(&Percentiles) -> f64| {
        by.get(&("rate".to_owned(), server.to_owned()))
            .and_then(|r| r.latency_us.as_ref().map(f))
    };
    let panels = vec![
        Panel {
            title: "2 FIXED RATE LATENCY US (LOG)".into(),
            groups: vec![
                ("P50".into(), lat("node", |p| p.p50), lat("bbrt", |p| p.p50)),
                ("P90".into(), lat("node", |p| p.p90), lat("bbrt", |p| p.p90)),
                ("P99".into(), lat("node", |p| p.p99), lat("bbrt", |p| p.p99)),
                (
                    "P99.9".into(),
                    lat("node", |p| p.p999),
                    lat("bbrt", |p| p.p999),
                ),
            ],
            log: true,
        },
        Panel {
            title: "SERVER CPU US PER DELIVERY".into(),
            groups: vec![
                (
                    "1 FAN-OUT".into(),
                    get("fanout", "node", |r| r.server_cpu_us_per_delivery),
                    get("fanout", "bbrt", |r| r.server_cpu_us_per_delivery),
                ),
                (
                    "2 FIXED RATE".into(),
                    get("rate", "node", |r| r.server_cpu_us_per_delivery),
                    get("rate", "bbrt", |r| r.server_cpu_us_per_delivery),
                ),
            ],
            log: false,
        },
        Panel {
            title: "RSS KIB PER CONNECTION".into(),
            groups: vec![
                (
                    "3 IDLE".into(),
                    get("idle", "node", |r| r.rss_per_conn_kib),
                    get("idle", "bbrt", |r| r.rss_per_conn_kib),
                ),
                (
                    "4 JOINED".into(),
                    get("setup", "node", |r| r.rss_per_conn_kib),
                    get("setup", "bbrt", |r| r.rss_per_conn_kib),
                ),
            ],
            log: false,
        },
        Panel {
            title: "4 SETUP TIME OF IDENTIFIED+JOINED S (LOG)".into(),
            groups: vec![(
                "SETUP".into(),
                get("setup", "node", |r| r.setup_s),
                get("setup", "bbrt", |r| r.setup_s),
            )],
            log: true,
        },
        Panel {
            title: "6 SITE AT 50 MS: MS (LOG)".into(),
            groups: vec![
                (
                    "ALL ACKED".into(),
                    get("site", "node", |r| r.all_acked_ms),
                    get("site", "bbrt", |r| r.all_acked_ms),
                ),
                (
                    "TYPING P99 BEFORE".into(),
                    get("site", "node", |r| {
                        r.typing_before_us.map(|p| p.p99 / 1000.0)
                    }),
                    get("site", "bbrt", |r| {
                        r.typing_before_us.map(|p| p.p99 / 1000.0)
                    }),
                ),
                (
                    "TYPING P99 DURING".into(),
                    get("site", "node", |r| {
                        r.typing_during_us.map(|p| p.p99 / 1000.0)
                    }),
                    get("site", "bbrt", |r| {
                        r.typing_during_us.map(|p| p.p99 / 1000.0)
                    }),
                ),
            ],
            log: true,
        },
        Panel {
            title: "1 FAN-OUT DELIVERIES/S".into(),
            groups: vec![(
                "CLOSED LOOP".into(),
                get("fanout", "node", |r| r.deliveries_per_s),
                get("fanout", "bbrt", |r| r.deliveries_per_s),
            )],
            log: false,
        },
    ];
    chart::draw(png, "BBRT VS NODE - SAME RUN", &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_side_by_side_table_and_chart() {
        let dir = std::env::temp_dir().join(format!("bbrt-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut lines = String::new();
        for (server, cpu) in [("node", 10.0), ("bbrt", 1.0)] {
            let mut r = Record::new("fanout", server);
            r.server_cpu_us_per_delivery = Some(cpu);
            r.deliveries_per_s = Some(1000.0 / cpu);
            r.finish();
            lines += &serde_json::to_string(&r).expect("serializes");
            lines += "\n";
        }
        let (input, md, png) = (dir.join("r.jsonl"), dir.join("r.md"), dir.join("r.png"));
        std::fs::write(&input, lines).expect("written");
        write(&input, &md, &png, "- test machine").expect("report");
        let text = std::fs::read_to_string(&md).expect("markdown");
        assert!(
            text.contains(
                "| 1 fan-out: server CPU µs/delivery | 10.0 | 1.00 | 0.100 | ratio ≤ 0.125 | yes |"
            ),
            "{text}"
        );
        assert!(text.contains("- test machine"));
        assert!(std::fs::metadata(&png).expect("png").len() > 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cluster_table_compares_two_nodes_with_one() {
        let latency = |p99: f64| {
            Some(Percentiles {
                count: 100,
                p50: p99 / 4.0,
                p90: p99 / 2.0,
                p99,
                p999: p99 * 2.0,
                max: p99 * 3.0,
            })
        };
        let run = |server: &str, nodes: usize, cpu_s: f64, p99: f64| {
            let mut r = Record::new(&cluster_scenario(4000.0), server);
            r.nodes = Some(nodes);
            r.rate_per_s = Some(4000.0);
            r.window_s = 5.0;
            r.deliveries = 200_000;
            r.server_cpu_s = cpu_s;
            r.latency_us = latency(p99);
            if nodes == 2 {
                r.cross_node_latency_us = latency(p99 * 1.2);
                r.redis_cpu_s = Some(0.5);
            }
            r.finish();
            r
        };
        let by = latest(vec![
            run(ONE_NODE, 1, 1.0, 1000.0),
            run(TWO_NODES, 2, 2.5, 1000.0),
            run(ONE_NODE_REDIS, 1, 1.5, 1000.0),
        ]);
        let text = cluster_table(&by);
        assert!(
            text.contains(
                "| 7 scale-out 4000 msg/s: deliveries per server CPU second (2 nodes: both processes) \
                 | 200000 | 133333 | 80000 | 0.400 | 2 nodes / 1 node ≥ 0.5 | **no** |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| 7 scale-out 4000 msg/s: cross-node latency p99 µs (1 node: all deliveries) \
                 | 1000 | 1000 | 1200 | 1.200 | cross-node p99 / 1-node p99 ≤ 1.5 | yes |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| 7 scale-out 4000 msg/s: Redis CPU % of the window | – | – | 10.0 |")
        );
        assert!(cluster_table(&latest(Vec::new())).is_empty());
    }
}
