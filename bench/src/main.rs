//! `bbrt-bench`: the load generator and report of bbrt's side-by-side benchmark against
//! the seed's Node.js server. `bench/run.sh` is the one command that runs it all; see
//! `docs/performance.md`.
//!
//! Each scenario subcommand starts a fresh server process from `--server-cmd`, drives it
//! from one thread (a `current_thread` runtime, meant to be pinned to its own core),
//! measures the server through `/proc`, and appends one JSON line to `--out` (scenario 7,
//! `cluster`, runs several deployments and appends one line for each).

mod chart;
mod client;
mod proc;
mod proto;
mod record;
mod report;
mod scenarios;
mod soak;
mod ticker;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::Target;
use crate::proto::Proto;
use crate::record::Record;
use crate::scenarios::{Cluster, Common, Load, Pace, Ramp, Setup, SiteBurst, Storm};

#[derive(Parser)]
#[command(about = "bbrt's side-by-side benchmark: load generator and report")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// The server's name in the report (`node`, `bbrt`).
    #[arg(long)]
    server: String,
    /// The server's command line, run with `sh -c 'exec CMD'`; `{port}` and `{site}` (the
    /// fake site's API root) are replaced.
    #[arg(long)]
    server_cmd: String,
    /// The port the server listens on (127.0.0.1).
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// The WebSocket path (the seed's protocol; Pusher and Socket.IO have their own).
    #[arg(long, default_value = "/")]
    path: String,
    /// The protocol the server speaks: `seed` (the Node baseline, bbrt), `pusher`
    /// (Sockudo), `socket-io` (the bench's Socket.IO peer).
    #[arg(long, value_enum, default_value_t = Proto::Seed)]
    proto: Proto,
    /// tungstenite's read buffer per client connection, bytes.
    #[arg(long, default_value_t = 4096)]
    read_buf: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server's stdout and stderr go here.
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Append the result, one JSON line, to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Count the server's write syscalls during the window (`perf stat`).
    #[arg(long)]
    count_writes: bool,
}

impl CommonArgs {
    fn common(&self) -> Common {
        Common {
            server: self.server.clone(),
            server_cmd: self.server_cmd.clone(),
            target: Target {
                port: self.port,
                path: self.path.clone(),
                read_buf: self.read_buf,
                proto: self.proto,
            },
            connect_concurrency: self.concurrency.max(1),
            server_log: self.server_log.clone(),
            count_writes: self.count_writes,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Scenario 1: closed loop, each client keeps `in_flight` of its own messages in flight.
    Fanout {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Scenario 2: fixed rate, latency from the scheduled send time.
    Rate {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// Messages per second, all clients together.
        #[arg(long, default_value_t = 4000.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Scenario 8: scenario 2's load at each rate in turn (a fresh server each) until one
    /// is not held (p99 at or above `--p99-ms`, or any loss).
    Ramp {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// Messages per second, all clients together, lowest first.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "2000,4000,8000,16000,32000"
        )]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// A rate is held when p99 stays under this many milliseconds.
        #[arg(long, default_value_t = 50)]
        p99_ms: u64,
    },
    /// Scenario 7 (bbrt only): 2 nodes joined through Redis against 1 node, at the same
    /// fixed rate; `--server-cmd` is one node's command, the Redis flags are appended.
    Cluster {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// Messages per second, all clients together; one comparison per rate.
        #[arg(long, value_delimiter = ',', default_value = "4000,1000")]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Redis, given to every node as `--redis`.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
    },
    /// Scenario 3: idle bare connections, RSS per connection.
    Idle {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 5000)]
        conns: usize,
    },
    /// Scenario 4: connections that identify and join, RSS and setup time.
    Setup {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 5000)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
    },
    /// Scenario 5: the most connections the server holds.
    Maxconn {
        #[command(flatten)]
        common: CommonArgs,
        /// Stop here at the latest (bounded by this process's own fd limit).
        #[arg(long, default_value_t = 19_950)]
        conns: usize,
        /// Stop after this many failed attempts in a row.
        #[arg(long, default_value_t = 128)]
        failures: usize,
    },
    /// Scenario 6: sends through the fake BuddyBoss site (in this process) while others type.
    Site {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 1000)]
        senders: usize,
        #[arg(long, default_value_t = 400)]
        typers: usize,
        /// Typers' thread size.
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// Senders' thread size (each send is delivered to this many connections).
        #[arg(long, default_value_t = 2)]
        sender_group: usize,
        #[arg(long, default_value_t = 50)]
        latency_ms: u64,
        #[arg(long, default_value_t = 3000)]
        typing_period_ms: u64,
        /// Typing measured this long before the burst and this long during it.
        #[arg(long, default_value_t = 5.0)]
        phase_secs: f64,
    },
    /// Scenario 9: identified, joined clients all disconnected at once and all reconnecting
    /// at once; the time until every one joined again, with the site slow.
    Storm {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 5000)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// The site's answer time during the reconnect.
        #[arg(long, default_value_t = 50)]
        latency_ms: u64,
    },
    /// The soak (not a benchmark scenario): one server, mixed traffic with reconnects every
    /// minute, the server's RSS and errors printed once a minute as CSV.
    Soak {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// Messages per second, all clients together.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
    },
    /// Writes the markdown table and the PNG chart from the JSON lines.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        md: PathBuf,
        #[arg(long)]
        png: PathBuf,
        /// Free text about the machine and the run, put under the table.
        #[arg(long, default_value = "")]
        about: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Report {
        input,
        md,
        png,
        about,
    } = &cli.command
    {
        return match report::write(input, md, png, about) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("report: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    let (records, out) = local.block_on(&runtime, run(cli.command));
    for record in &records {
        eprintln!("{}", summary(record));
    }
    if let Some(out) = out {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .and_then(|mut f| {
                records.iter().try_for_each(|record| {
                    let line = serde_json::to_string(record).expect("records serialize");
                    writeln!(f, "{line}")
                })
            });
        if let Err(e) = written {
            eprintln!("{}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if records.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// The load of a run at several fixed rates (scenarios 7 and 8; its pace is set per
/// rate) and the rates, those above zero.
fn rate_series(clients: usize, group: usize, secs: f64, rates: Vec<f64>) -> (Load, Vec<f64>) {
    let load = Load {
        clients,
        group: group.max(1),
        pace: Pace::Rate { per_s: 0.0 },
        window: Duration::from_secs_f64(secs),
    };
    (load, rates.into_iter().filter(|&r| r > 0.0).collect())
}

/// Runs one subcommand: its records (one per run; scenario 7 makes several) and where
/// they go.
async fn run(cmd: Cmd) -> (Vec<Record>, Option<PathBuf>) {
    let (record, out) = match cmd {
        Cmd::Cluster {
            common,
            clients,
            group,
            rates,
            secs,
            redis,
        } => {
            let (load, rates) = rate_series(clients, group, secs, rates);
            let p = Cluster {
                load,
                rates,
                redis_url: redis,
            };
            return (scenarios::cluster(&common.common(), &p).await, common.out);
        }
        Cmd::Ramp {
            common,
            clients,
            group,
            rates,
            secs,
            p99_ms,
        } => {
            let (load, rates) = rate_series(clients, group, secs, rates);
            let p = Ramp {
                load,
                rates,
                p99_bound: Duration::from_millis(p99_ms),
            };
            return (scenarios::ramp(&common.common(), &p).await, common.out);
        }
        Cmd::Fanout {
            common,
            clients,
            group,
            in_flight,
            secs,
        } => {
            let load = Load {
                clients,
                group: group.max(1),
                pace: Pace::Closed { in_flight },
                window: Duration::from_secs_f64(secs),
            };
            let r = scenarios::traffic(&common.common(), "fanout", load).await;
            (r, common.out)
        }
        Cmd::Rate {
            common,
            clients,
            group,
            rate,
            secs,
        } => {
            let load = Load {
                clients,
                group: group.max(1),
                pace: Pace::Rate { per_s: rate },
                window: Duration::from_secs_f64(secs),
            };
            let r = scenarios::traffic(&common.common(), "rate", load).await;
            (r, common.out)
        }
        Cmd::Idle { common, conns } => (
            scenarios::connections(&common.common(), "idle", conns, Setup::Bare, 0).await,
            common.out,
        ),
        Cmd::Setup {
            common,
            conns,
            group,
        } => {
            let setup = Setup::Joined {
                group: group.max(1),
            };
            (
                scenarios::connections(&common.common(), "setup", conns, setup, 0).await,
                common.out,
            )
        }
        Cmd::Maxconn {
            common,
            conns,
            failures,
        } => {
            // Our own fds bound what we can measure: keep a few for the runtime and stdio.
            let own = proc::own_fd_limit().unwrap_or(1024);
            let conns = conns.min(own.saturating_sub(40));
            let mut r = scenarios::connections(
                &common.common(),
                "maxconn",
                conns,
                Setup::Bare,
                failures.max(1),
            )
            .await;
            r.notes.push(format!(
                "attempted up to {conns} (load generator fd soft limit {own})"
            ));
            (r, common.out)
        }
        Cmd::Site {
            common,
            senders,
            typers,
            group,
            sender_group,
            latency_ms,
            typing_period_ms,
            phase_secs,
        } => {
            let group = group.max(1);
            // Typers start on a thread boundary.
            let senders = senders.div_ceil(group) * group;
            let p = SiteBurst {
                senders,
                typers,
                group,
                sender_group: sender_group.max(1),
                site_latency: Duration::from_millis(latency_ms),
                typing_period: Duration::from_millis(typing_period_ms),
                phase: Duration::from_secs_f64(phase_secs),
            };
            (scenarios::site_burst(&common.common(), p).await, common.out)
        }
        Cmd::Storm {
            common,
            conns,
            group,
            latency_ms,
        } => {
            let p = Storm {
                conns,
                group: group.max(1),
                site_latency: Duration::from_millis(latency_ms),
            };
            (scenarios::storm(&common.common(), p).await, common.out)
        }
        Cmd::Soak {
            common,
            minutes,
            clients,
            group,
            rate,
        } => {
            let p = soak::Soak {
                minutes,
                clients: clients.max(1),
                group: group.max(1),
                rate,
            };
            (soak::soak(&common.common(), p).await, common.out)
        }
        Cmd::Report { .. } => unreachable!("handled in main"),
    };
    (vec![record], out)
}

/// One human line per run.
fn summary(r: &Record) -> String {
    let mut s = format!(
        "  {} {}: {}",
        r.scenario,
        r.server,
        if r.ok { "ok" } else { "FAILED" }
    );
    if let Some(d) = r.deliveries_per_s {
        s += &format!(", {d:.0} deliveries/s");
    }
    if let Some(c) = r.server_cpu_us_per_delivery {
        s += &format!(", {c:.2} µs CPU/delivery");
    }
    if let Some(w) = r.wakeups_per_delivery {
        s += &format!(", {w:.3} wake-ups/delivery");
    }
    if let Some(c) = r.syscalls_per_delivery {
        s += &format!(", {c:.3} syscalls/delivery");
    }
    if let Some(l) = r.latency_us {
        s += &format!(
            ", p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs",
            l.p50, l.p99, l.p999
        );
    }
    if let Some(l) = r.cross_node_latency_us {
        s += &format!(", cross-node p50 {:.0} µs p99 {:.0} µs", l.p50, l.p99);
    }
    if let Some(c) = r.redis_cpu_s {
        s += &format!(", Redis CPU {c:.2} s");
    }
    if let Some(k) = r.rss_per_conn_kib {
        s += &format!(", {k:.2} KiB/conn");
    }
    if let Some(t) = r.setup_s {
        s += &format!(", setup {t:.2} s");
    }
    if let Some(t) = r.reconnect_s {
        s += &format!(", all joined again in {t:.2} s");
    }
    if let (Some(o), Some(s2)) = (r.listen_overflows, r.syn_retransmits) {
        s += &format!(" (listen overflows {o}, SYN retransmits {s2})");
    }
    if let Some(m) = r.max_connections {
        s += &format!(", held {m}");
    }
    if let Some(a) = r.all_acked_ms {
        s += &format!(", all acked in {a:.0} ms");
    }
    if let Some(p) = r.loadgen_cpu_pct {
        s += &format!(", load generator CPU {p:.0}%");
    }
    for f in &r.failures {
        s += &format!("\n    failure: {f}");
    }
    for e in &r.error_samples {
        s += &format!("\n    error frame: {e}");
    }
    s
}
