//! What `/proc` says about a process: CPU time, RSS, threads. Linux only, and no `unsafe`:
//! `/proc/PID/task/*/schedstat` gives on-CPU nanoseconds per thread (what `getrusage` would
//! give, at a finer grain), `/proc/PID/stat` the user/system split in clock ticks.

use std::fs;
use std::path::PathBuf;

/// Linux's `USER_HZ` (`getconf CLK_TCK`), fixed at 100 on every architecture bbrt targets.
const TICKS_PER_S: f64 = 100.0;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// On-CPU time of all its live threads, in seconds (schedstat).
    pub(crate) cpu_s: f64,
    /// User time, in seconds (stat, 10 ms grain).
    pub(crate) user_s: f64,
    /// System time, in seconds (stat, 10 ms grain).
    pub(crate) sys_s: f64,
    /// Resident set, KiB.
    pub(crate) rss_kib: u64,
    /// Threads.
    pub(crate) threads: usize,
    /// Times its live threads blocked and were woken again: the sum of their
    /// `voluntary_ctxt_switches` (`/proc/PID/task/*/status`), the wake-ups a delivery costs.
    pub(crate) wakeups: u64,
    /// Busy time (everything but idle and iowait) of the one core the process is pinned to,
    /// in seconds (`/proc/stat`, 10 ms grain): what else ran there is noise.
    pub(crate) core_busy_s: Option<f64>,
}

impl Sample {
    /// Reads process `pid`'s counters; `None` once it is gone.
    pub(crate) fn read(pid: u32) -> Option<Self> {
        let root = PathBuf::from(format!("/proc/{pid}"));
        let stat = fs::read_to_string(root.join("stat")).ok()?;
        // Fields after the `(comm)`, which may itself hold spaces and parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): utime is field 14, stime 15.
        let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
        let user_s = ticks(14)? / TICKS_PER_S;
        let sys_s = ticks(15)? / TICKS_PER_S;
        let status = fs::read_to_string(root.join("status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut cpu_ns = 0u64;
        let mut threads = 0;
        let mut wakeups = 0;
        if let Ok(tasks) = fs::read_dir(root.join("task")) {
            for task in tasks.flatten() {
                threads += 1;
                if let Ok(s) = fs::read_to_string(task.path().join("status")) {
                    wakeups += voluntary_switches(&s);
                }
                if let Ok(s) = fs::read_to_string(task.path().join("schedstat")) {
                    cpu_ns += s
                        .split_whitespace()
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                }
            }
        }
        let cpu_s = if cpu_ns > 0 {
            cpu_ns as f64 / 1e9
        } else {
            user_s + sys_s
        };
        let core_busy_s = pinned_core(&status).and_then(core_busy_s);
        Some(Self {
            cpu_s,
            user_s,
            sys_s,
            rss_kib,
            threads,
            wakeups,
            core_busy_s,
        })
    }

    /// This process.
    pub(crate) fn own() -> Self {
        Self::read(std::process::id()).unwrap_or_default()
    }
}

/// `voluntary_ctxt_switches` of a task's `status`.
fn voluntary_switches(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The core a process may run on, when it is exactly one (`taskset -c N`).
fn pinned_core(status: &str) -> Option<usize> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    list.parse().ok()
}

/// Busy seconds of core `cpu` since boot.
fn core_busy_s(cpu: usize) -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy =
        v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0.0);
    Some(busy / TICKS_PER_S)
}

/// The change between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delta {
    pub(crate) cpu_s: f64,
    pub(crate) user_s: f64,
    pub(crate) sys_s: f64,
    /// CPU that other processes used on the process's core, seconds.
    pub(crate) others_on_core_s: Option<f64>,
    /// Wake-ups of its threads (see [`Sample::wakeups`]).
    pub(crate) wakeups: u64,
}

impl Delta {
    pub(crate) fn between(a: &Sample, b: &Sample) -> Self {
        let cpu_s = (b.cpu_s - a.cpu_s).max(0.0);
        let others_on_core_s = match (a.core_busy_s, b.core_busy_s) {
            (Some(x), Some(y)) => Some((y - x - cpu_s).max(0.0)),
            _ => None,
        };
        Self {
            cpu_s,
            user_s: (b.user_s - a.user_s).max(0.0),
            sys_s: (b.sys_s - a.sys_s).max(0.0),
            others_on_core_s,
            wakeups: b.wakeups.saturating_sub(a.wakeups),
        }
    }

    /// The change over several processes pinned to the same core (the nodes of a cluster
    /// run): their CPU summed, and the rest of that core's busy time as noise.
    pub(crate) fn between_all(a: &[Sample], b: &[Sample]) -> Self {
        let mut sum = Self::default();
        for (x, y) in a.iter().zip(b) {
            let d = Self::between(x, y);
            sum.cpu_s += d.cpu_s;
            sum.user_s += d.user_s;
            sum.sys_s += d.sys_s;
            sum.wakeups += d.wakeups;
        }
        sum.others_on_core_s = match (a.first(), b.first()) {
            (Some(x), Some(y)) => match (x.core_busy_s, y.core_busy_s) {
                (Some(x), Some(y)) => Some((y - x - sum.cpu_s).max(0.0)),
                _ => None,
            },
            _ => None,
        };
        sum
    }
}

/// The pid of a running `name` (the command name in `/proc/PID/comm`) whose command line
/// contains `arg`: e.g. the `redis-server` that listens on `:6379`.
pub(crate) fn find_pid(name: &str, arg: &str) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(arg)
            .then_some(pid)
    })
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub(crate) fn own_fd_limit() -> Option<usize> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The soft limit on open files of process `pid`.
pub(crate) fn fd_limit(pid: u32) -> Option<usize> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = Sample::own();
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
        // This thread has slept (the test harness waited for it) at least once.
        assert!(s.wakeups > 0, "{s:?}");
        assert!(own_fd_limit().is_some());
    }

    #[test]
    fn processes_on_one_core_are_summed_and_the_rest_is_noise() {
        let at = |cpu_s: f64, core_busy_s: f64| Sample {
            cpu_s,
            user_s: cpu_s / 2.0,
            sys_s: cpu_s / 2.0,
            core_busy_s: Some(core_busy_s),
            ..Sample::default()
        };
        let before = [at(1.0, 10.0), at(2.0, 10.0)];
        let after = [at(1.5, 11.0), at(2.25, 11.0)];
        let d = Delta::between_all(&before, &after);
        assert!((d.cpu_s - 0.75).abs() < 1e-9, "{d:?}");
        assert!((d.user_s - 0.375).abs() < 1e-9, "{d:?}");
        let others = d.others_on_core_s.expect("core readings");
        assert!((others - 0.25).abs() < 1e-9, "{d:?}");
    }

    #[test]
    fn finds_a_process_by_name() {
        let comm = fs::read_to_string("/proc/self/comm").expect("comm");
        // This process at least (a parallel run of the same binary could be found first).
        assert!(find_pid(comm.trim_end(), "").is_some());
        assert_eq!(find_pid("no-such-process-name", ""), None);
    }
}
