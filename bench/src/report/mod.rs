//! `latest.md` and `latest.png` from `latest.jsonl`: every server of the run side by side
//! (the seed's Node server, the Socket.IO peer, Sockudo, bbrt), with bbrt/Node and
//! bbrt/Sockudo ratios from the same run and the goals of issues 6 and 22.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::chart::{self, Panel};
use crate::record::{Percentiles, Record};
use crate::scenarios::ramp_scenario;

mod cluster;
use self::cluster::cluster_table;

/// The servers a run may hold, in the table's column order: (record name, column name).
const SERVERS: [(&str, &str); 4] = [
    ("node", "Node"),
    ("socketio", "Socket.IO"),
    ("sockudo", "Sockudo"),
    ("bbrt", "bbrt"),
];

/// A goal (from the issue numbered `.0`), judged on one row's bbrt value.
#[derive(Clone, Copy)]
enum Goal {
    /// bbrt/Node at most this.
    RatioAtMost(u8, f64),
    /// bbrt/Sockudo at most this.
    SockudoRatioAtMost(u8, f64),
    /// bbrt's value at most this.
    AtMost(u8, f64),
    /// bbrt's value at least this.
    AtLeast(u8, f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Self::RatioAtMost(i, r) => format!("bbrt/Node ≤ {r} (#{i})"),
            Self::SockudoRatioAtMost(i, r) => format!("bbrt/Sockudo ≤ {r} (#{i})"),
            Self::AtMost(i, v) => format!("bbrt ≤ {v} (#{i})"),
            Self::AtLeast(i, v) => format!("bbrt ≥ {v} (#{i})"),
        }
    }

    /// `value(server)` is the row's value for that server.
    fn met(self, value: &dyn Fn(&str) -> Option<f64>) -> &'static str {
        let bbrt = value("bbrt");
        let ratio_to = |peer: &str, r: f64| match (value(peer), bbrt) {
            (Some(p), Some(b)) if p > 0.0 => Some(b / p <= r),
            _ => None,
        };
        let verdict = match self {
            Self::RatioAtMost(_, r) => ratio_to("node", r),
            Self::SockudoRatioAtMost(_, r) => ratio_to("sockudo", r),
            Self::AtMost(_, v) => bbrt.map(|b| b <= v),
            Self::AtLeast(_, v) => bbrt.map(|b| b >= v),
        };
        match verdict {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        }
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

/// Every run of each (scenario, server), in the order they ran: `bench/run.sh` repeats
/// the noisy scenarios (`REPEAT`), and the report gives the median of each figure.
type Runs = BTreeMap<(String, String), Vec<Record>>;

fn group(records: Vec<Record>) -> Runs {
    let mut runs = Runs::new();
    for r in records {
        runs.entry((r.scenario.clone(), r.server.clone()))
            .or_default()
            .push(r);
    }
    runs
}

/// The median of `f` over the runs of (`scenario`, `server`) that have it (the mean of
/// the middle two for an even count); the value itself for a single run.
fn median(runs: &Runs, scenario: &str, server: &str, f: Getter) -> Option<f64> {
    let mut values: Vec<f64> = runs
        .get(&(scenario.to_owned(), server.to_owned()))?
        .iter()
        .filter_map(f)
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

type Getter = fn(&Record) -> Option<f64>;

struct Row {
    scenario: &'static str,
    metric: &'static str,
    get: Getter,
    goals: Vec<Goal>,
}

fn pct(f: fn(&Percentiles) -> f64, p: Option<Percentiles>) -> Option<f64> {
    p.as_ref().map(f)
}

fn rows() -> Vec<Row> {
    let row = |scenario, metric, get: Getter, goals: &[Goal]| Row {
        scenario,
        metric,
        get,
        goals: goals.to_vec(),
    };
    vec![
        row(
            "fanout",
            "1 fan-out: deliveries/s",
            |r| r.deliveries_per_s,
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: server CPU µs/delivery",
            |r| r.server_cpu_us_per_delivery,
            &[Goal::RatioAtMost(6, 0.125)],
        ),
        row(
            "fanout",
            "1 fan-out: server system-time share %",
            sys_share,
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: frames per write syscall",
            |r| r.frames_per_write,
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: latency p50 µs",
            |r| pct(|p| p.p50, r.latency_us),
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: latency p99 µs",
            |r| pct(|p| p.p99, r.latency_us),
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: latency p99.9 µs",
            |r| pct(|p| p.p999, r.latency_us),
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: load generator CPU %",
            |r| r.loadgen_cpu_pct,
            &[],
        ),
        row(
            "fanout",
            "1 fan-out: noise: other processes' CPU on the server's core %",
            |r| r.others_on_server_core_pct,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: deliveries/s",
            |r| r.deliveries_per_s,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: latency p50 µs",
            |r| pct(|p| p.p50, r.latency_us),
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: latency p99 µs",
            |r| pct(|p| p.p99, r.latency_us),
            &[Goal::RatioAtMost(6, 0.4), Goal::SockudoRatioAtMost(22, 1.0)],
        ),
        row(
            "rate",
            "2 fixed rate: latency p99.9 µs",
            |r| pct(|p| p.p999, r.latency_us),
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: server CPU µs/delivery",
            |r| r.server_cpu_us_per_delivery,
            &[Goal::SockudoRatioAtMost(22, 0.5)],
        ),
        row(
            "rate",
            "2 fixed rate: server CPU µs/message (all its deliveries)",
            |r| r.server_cpu_us_per_message,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: server wake-ups per delivery",
            |r| r.wakeups_per_delivery,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: server syscalls per delivery",
            |r| r.syscalls_per_delivery,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: frames per write syscall",
            |r| r.frames_per_write,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: load generator send lag p99 µs",
            |r| pct(|p| p.p99, r.send_lag_us),
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: load generator CPU %",
            |r| r.loadgen_cpu_pct,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: noise: other processes' CPU on the server's core %",
            |r| r.others_on_server_core_pct,
            &[],
        ),
        row(
            "rate",
            "2 fixed rate: noise: other processes' CPU on the load generator's core %",
            |r| r.others_on_loadgen_core_pct,
            &[],
        ),
        row(
            "idle",
            "3 idle: RSS KiB per connection",
            |r| r.rss_per_conn_kib,
            &[Goal::AtMost(6, 3.0), Goal::AtMost(22, 2.0)],
        ),
        row(
            "idle",
            "3 idle: server threads",
            |r| Some(r.server_threads as f64),
            &[],
        ),
        row(
            "setup",
            "4 identified+joined: RSS KiB per connection",
            |r| r.rss_per_conn_kib,
            &[Goal::AtMost(6, 4.0), Goal::AtMost(22, 3.0)],
        ),
        row(
            "setup",
            "4 identified+joined: setup time s",
            |r| r.setup_s,
            &[Goal::RatioAtMost(6, 0.05)],
        ),
        row(
            "setup",
            "4 identified+joined: server CPU s",
            |r| Some(r.server_cpu_s),
            &[],
        ),
        row(
            "maxconn",
            "5 most connections held",
            |r| r.max_connections.map(|m| m as f64),
            &[Goal::AtLeast(6, 19_000.0)],
        ),
        row(
            "maxconn",
            "5 RSS KiB per connection at the most",
            |r| r.rss_per_conn_kib,
            &[],
        ),
        row(
            "site",
            "6 site 50 ms: time until all acked ms",
            |r| r.all_acked_ms,
            &[Goal::AtMost(6, 100.0)],
        ),
        row(
            "site",
            "6 site: first burst, cold site connections: all acked ms",
            |r| r.cold_acked_ms,
            &[],
        ),
        row(
            "site",
            "6 site: time until the site had every POST ms",
            |r| r.all_posted_ms,
            &[],
        ),
        row(
            "site",
            "6 site: time until the site had answered every POST ms",
            |r| r.site_answered_ms,
            &[],
        ),
        row(
            "site",
            "6 site: typing p99 µs before the burst",
            |r| pct(|p| p.p99, r.typing_before_us),
            &[],
        ),
        row(
            "site",
            "6 site: typing p99 µs during the burst",
            |r| pct(|p| p.p99, r.typing_during_us),
            &[],
        ),
        row(
            "site",
            "6 site: typing p99 during/before",
            typing_change,
            &[],
        ),
        row(
            "storm",
            "9 reconnect storm (site 50 ms): all joined again s",
            |r| r.reconnect_s,
            &[],
        ),
        row(
            "storm",
            "9 reconnect storm: listen overflows (machine-wide)",
            |r| r.listen_overflows.map(|v| v as f64),
            &[],
        ),
        row(
            "storm",
            "9 reconnect storm: SYN retransmits (machine-wide)",
            |r| r.syn_retransmits.map(|v| v as f64),
            &[],
        ),
        row(
            "storm",
            "9 reconnect storm: server CPU s",
            |r| Some(r.server_cpu_s),
            &[],
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

/// Scenario 8's table: p99 per rate and server, `not held` where a rate was not held, and
/// the highest rate each held; empty without its runs.
fn ramp_table(by: &Runs, servers: &[(&str, &str)]) -> String {
    let mut rates: Vec<f64> = by
        .values()
        .flatten()
        .filter(|r| r.held.is_some())
        .filter_map(|r| r.rate_per_s)
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    if rates.is_empty() {
        return String::new();
    }
    // The ramp runs once per rate and server (a rate not held ends it).
    let run = |rate: f64, server: &str| {
        by.get(&(ramp_scenario(rate), server.to_owned()))
            .and_then(|runs| runs.last())
    };
    let mut out = String::new();
    out += "\n## Ramp: the highest fixed rate each server holds (issue 22)\n\n";
    out += "Scenario 8: scenario 2's load (200 clients in threads of 10) at each rate in turn, a fresh \
            server each, until a rate is not held: held means every message reached every member of its \
            thread and p99 from the scheduled send time stayed under 50 ms. Cells: p99 µs (server CPU \
            µs per delivery); `–` a rate not run (an earlier one was not held).\n\n";
    out += "| rate msg/s |";
    let mut rule = "|---:|".to_owned();
    for (_, column) in servers {
        let _ = write!(out, " {column} |");
        rule += "---|";
    }
    out += "\n";
    out += &rule;
    out += "\n";
    for &rate in &rates {
        let _ = write!(out, "| {rate:.0} |");
        for (name, _) in servers {
            let cell = match run(rate, name) {
                None => "–".to_owned(),
                Some(r) => {
                    let p99 = fmt(r.latency_us.map(|l| l.p99));
                    let cpu = fmt(r.server_cpu_us_per_delivery);
                    if r.held == Some(true) {
                        format!("{p99} ({cpu})")
                    } else {
                        format!("**not held**: {p99} ({cpu})")
                    }
                }
            };
            let _ = write!(out, " {cell} |");
        }
        out += "\n";
    }
    out += "| **highest held** |";
    for (name, _) in servers {
        let best = rates
            .iter()
            .copied()
            .filter(|&rate| run(rate, name).is_some_and(|r| r.held == Some(true)))
            .fold(None, |_, rate| Some(rate));
        let _ = write!(
            out,
            " **{}** |",
            best.map_or("none".to_owned(), |b| format!("{b:.0}"))
        );
    }
    out += "\n";
    out
}

/// What each server of the run does per message and per delivery that the others do not:
/// CPU per delivery compares different work.
fn per_delivery_note(servers: &[(&str, &str)]) -> String {
    let about = |name: &str| match name {
        "node" => Some(
            "**Node** (the seed's server on `ws`): parses the frame, stamps a counter id and a date, \
             serializes the message once and calls `ws.send` per member (one write syscall each); \
             stores nothing (no site outside scenario 6).",
        ),
        "socketio" => Some(
            "**Socket.IO** (the same server on Socket.IO 4): as Node, plus Socket.IO's event packet \
             encoding (once per emit) and its in-memory adapter's room lookup; one write per delivery.",
        ),
        "sockudo" => Some(
            "**Sockudo** (Pusher protocol 7): relays the client event as it came, with no storage and \
             no id: checks that the sender is subscribed to the private channel and that the event is \
             a `client-` event, then writes it to the channel's *other* subscribers (Pusher never \
             echoes a client event to its sender, so a thread of 10 makes 9 deliveries per message \
             where the others make 10).",
        ),
        "bbrt" => Some(
            "**bbrt**: every send goes through its site before anyone sees it (here the embedded \
             development site, in process: it stores the message and answers with its id and \
             participants; in production the BuddyBoss REST call), the Hub checks the frame-rate \
             bucket and identity, refreshes the thread cache, encodes one `message` frame with the \
             stored id and `sentAt`, and hands the shared bytes to every member's connection task, \
             which writes it (several queued frames in one write).",
        ),
        _ => None,
    };
    let lines: Vec<&str> = servers.iter().filter_map(|(name, _)| about(name)).collect();
    if lines.len() < 2 {
        return String::new();
    }
    let mut out = "\n### What a delivery costs each server\n\n".to_owned();
    for line in lines {
        out += "- ";
        out += line;
        out += "\n";
    }
    out
}

/// The highest rate of scenario 8 that `server` held.
fn highest_held(by: &Runs, server: &str) -> Option<f64> {
    by.iter()
        .filter(|((scenario, s), _)| s == server && scenario.starts_with("ramp-"))
        .flat_map(|(_, runs)| runs)
        .filter(|r| r.held == Some(true))
        .filter_map(|r| r.rate_per_s)
        .reduce(f64::max)
}

/// Writes the markdown report and the chart.
pub(crate) fn write(input: &Path, md: &Path, png: &Path, about: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let records: Vec<Record> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", input.display())))
        .collect::<Result<_, _>>()?;
    let by = group(records);
    let get = |scenario: &str, server: &str, f: Getter| median(&by, scenario, server, f);

    let servers: Vec<(&str, &str)> = SERVERS
        .into_iter()
        .filter(|(name, _)| by.keys().any(|(_, server)| server == name))
        .collect();
    let has = |name: &str| servers.iter().any(|(n, _)| *n == name);
    let mut out = String::new();
    out += "# bbrt, the seed's Node.js server and their peers: latest run\n\n";
    out += "Generated by `bench/run.sh` (`bbrt-bench report`); every server measured in the same run, \
            each scenario on a fresh server process pinned to core 0, the load generator on core 1. \
            Ratios are bbrt/Node and bbrt/Sockudo (lower is better except for throughput and connections \
            held). Goals: issue 6 (against Node) and issue 22 (against Sockudo, and memory).\n\n";
    let mut table = String::new();
    for row in rows() {
        let value = |server: &str| get(row.scenario, server, row.get);
        if servers.iter().all(|(name, _)| value(name).is_none()) {
            continue;
        }
        let mut line = format!("| {} |", row.metric);
        for (name, _) in &servers {
            let _ = write!(line, " {} |", fmt(value(name)));
        }
        for peer in ["node", "sockudo"] {
            if has(peer) && has("bbrt") {
                let _ = write!(line, " {} |", ratio(value(peer), value("bbrt")));
            }
        }
        let goals: Vec<String> = row.goals.iter().map(|g| g.describe()).collect();
        let met: Vec<&str> = row.goals.iter().map(|g| g.met(&value)).collect();
        let _ = writeln!(line, " {} | {} |", goals.join("; "), met.join("; "));
        table += &line;
    }
    if !table.is_empty() {
        let mut head = "| metric |".to_owned();
        let mut rule = "|---|".to_owned();
        for (_, column) in &servers {
            let _ = write!(head, " {column} |");
            rule += "---:|";
        }
        for (peer, column) in [("node", "Node"), ("sockudo", "Sockudo")] {
            if has(peer) && has("bbrt") {
                let _ = write!(head, " bbrt/{column} |");
                rule += "---:|";
            }
        }
        head += " goal | met |\n";
        rule += "---|---|\n";
        out += &head;
        out += &rule;
        out += &table;
    }
    out += &ramp_table(&by, &servers);
    out += &per_delivery_note(&servers);
    out += &cluster_table(&by);
    out += "\n## Runs\n\n| scenario | server | status | connections | window s | server threads | load generator CPU % | notes |\n|---|---|---|---:|---:|---:|---:|---|\n";
    for r in by.values().flatten() {
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
        .flatten()
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
        "\n![chart]({png_name})\n\nThe chart (`{png_name}`): one bar per server, green Node, blue Socket.IO, \
         purple Sockudo, orange bbrt (the legend is in the picture); each panel is labelled. Row 1: scenario 2 \
         latency percentiles from the scheduled send time, µs, log scale; server CPU µs per delivery in \
         scenarios 1 and 2. Row 2: RSS KiB per connection, idle (3) and identified+joined (4), log scale; \
         scenario 8's highest rate held. Row 3: scenario 4 setup time, s, log scale; scenario 6, time until \
         all sends acked and typing p99 before and during the burst, ms, log scale. Row 4: scenario 1 \
         deliveries per second; scenario 2's wake-ups and syscalls per delivery.\n"
    );
    std::fs::write(md, out).map_err(|e| format!("{}: {e}", md.display()))?;

    // One value per server of the run, in column order.
    let each = |scenario: &str, f: Getter| -> Vec<Option<f64>> {
        servers
            .iter()
            .map(|(name, _)| get(scenario, name, f))
            .collect()
    };
    let panels = vec![
        Panel {
            title: "2 FIXED RATE LATENCY US (LOG)".into(),
            groups: vec![
                ("P50".into(), each("rate", |r| pct(|p| p.p50, r.latency_us))),
                ("P90".into(), each("rate", |r| pct(|p| p.p90, r.latency_us))),
                ("P99".into(), each("rate", |r| pct(|p| p.p99, r.latency_us))),
                (
                    "P99.9".into(),
                    each("rate", |r| pct(|p| p.p999, r.latency_us)),
                ),
            ],
            log: true,
        },
        Panel {
            title: "SERVER CPU US PER DELIVERY".into(),
            groups: vec![
                (
                    "1 FAN-OUT".into(),
                    each("fanout", |r| r.server_cpu_us_per_delivery),
                ),
                (
                    "2 FIXED RATE".into(),
                    each("rate", |r| r.server_cpu_us_per_delivery),
                ),
            ],
            log: false,
        },
        Panel {
            title: "RSS KIB PER CONNECTION (LOG)".into(),
            groups: vec![
                ("3 IDLE".into(), each("idle", |r| r.rss_per_conn_kib)),
                ("4 JOINED".into(), each("setup", |r| r.rss_per_conn_kib)),
            ],
            log: true,
        },
        Panel {
            title: "8 RAMP: HIGHEST RATE HELD MSG/S".into(),
            groups: vec![(
                "P99 < 50 MS, NO LOSS".into(),
                servers
                    .iter()
                    .map(|(name, _)| highest_held(&by, name))
                    .collect(),
            )],
            log: false,
        },
        Panel {
            title: "4 SETUP TIME OF IDENTIFIED+JOINED S (LOG)".into(),
            groups: vec![("SETUP".into(), each("setup", |r| r.setup_s))],
            log: true,
        },
        Panel {
            title: "6 SITE AT 50 MS: MS (LOG)".into(),
            groups: vec![
                ("ALL ACKED".into(), each("site", |r| r.all_acked_ms)),
                (
                    "TYPING P99 BEFORE".into(),
                    each("site", |r| r.typing_before_us.map(|p| p.p99 / 1000.0)),
                ),
                (
                    "TYPING P99 DURING".into(),
                    each("site", |r| r.typing_during_us.map(|p| p.p99 / 1000.0)),
                ),
            ],
            log: true,
        },
        Panel {
            title: "1 FAN-OUT DELIVERIES/S".into(),
            groups: vec![("CLOSED LOOP".into(), each("fanout", |r| r.deliveries_per_s))],
            log: false,
        },
        Panel {
            title: "2 FIXED RATE: PER DELIVERY".into(),
            groups: vec![
                ("WAKE-UPS".into(), each("rate", |r| r.wakeups_per_delivery)),
                ("SYSCALLS".into(), each("rate", |r| r.syscalls_per_delivery)),
            ],
            log: false,
        },
    ];
    let series: Vec<(&str, chart::RGBColor)> = servers
        .iter()
        .map(|(name, column)| {
            let color = match *name {
                "node" => chart::NODE,
                "socketio" => chart::SOCKETIO,
                "sockudo" => chart::SOCKUDO,
                _ => chart::BBRT,
            };
            (*column, color)
        })
        .collect();
    chart::draw(png, "BBRT AND ITS PEERS - SAME RUN", &series, &panels)
}

#[cfg(test)]
mod tests;
