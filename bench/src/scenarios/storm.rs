//! Scenario 9, `storm`: a reconnect storm. Identified, joined clients all lose their
//! connection at once and all reconnect at once (every attempt in flight together, as
//! clients do after a deploy or a network blip): the time until every one has joined
//! again, with the site answering in 50 ms (a credential the server verified recently
//! needs no site call), and what the kernel's listen queue dropped meanwhile.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::shared::{Common, Layout, fill_cpu, open_all_joined, start_server};
use super::site::SiteThread;
use crate::proc::{Delta, Sample};
use crate::proto::Proto;
use crate::record::Record;

/// Scenario 9 parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Storm {
    pub(crate) conns: usize,
    /// Thread size.
    pub(crate) group: usize,
    /// The site's answer time during the reconnect (the first setup runs at 0).
    pub(crate) site_latency: Duration,
}

/// The machine's `TcpExt` counters `ListenOverflows` and `TCPSynRetrans`
/// (`/proc/net/netstat`): a connection dropped because a listen queue was full, and the
/// SYNs sent again (1 s later, the first time) for it. Machine-wide: other work counts
/// too, so they are reported as noted, not judged.
fn listen_counters() -> Option<(u64, u64)> {
    parse_listen_counters(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

fn parse_listen_counters(netstat: &str) -> Option<(u64, u64)> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some((get("ListenOverflows")?, get("TCPSynRetrans")?))
}

/// Scenario 9. With the seed's protocol the clients identify with bearer tokens the fake
/// site (in this process, on its own thread) knows, and bbrt verifies them there; the
/// peers have no site.
pub(crate) async fn storm(common: &Common, p: Storm) -> Record {
    let mut r = Record::new("storm", &common.server);
    let n = p.conns;
    r.connections = n;
    let seed = common.target.proto == Proto::Seed;
    let site = if seed {
        match SiteThread::start() {
            Ok(s) => Some(s),
            Err(e) => {
                r.fail(format!("fake site: {e}"));
                r.finish();
                return r;
            }
        }
    } else {
        None
    };
    if let Some(site) = &site {
        for i in 0..n {
            let id = site.add_user(&format!("user{}", i + 1), &format!("User {}", i + 1));
            site.add_bearer(id, &format!("bench-token-{id}"));
        }
        // Threads in client order, as `Layout::uniform` numbers them.
        for first in (0..n).step_by(p.group) {
            let size = p.group.min(n - first);
            let members: Vec<u64> = (first + 1..first + size).map(|i| i as u64 + 1).collect();
            site.create_thread(first as u64 + 1, &members, "hello");
        }
    }
    let api_root = site.as_ref().map(|s| s.api_root()).unwrap_or_default();
    let server = match start_server(common, &api_root).await {
        Ok(s) => s,
        Err(e) => {
            r.fail(e);
            r.finish();
            return r;
        }
    };
    let pid = server.pid();
    let layout = Layout::uniform(p.group);
    let token = |i: usize| seed.then(|| format!("bench-token-{}", i + 1));
    let targets = std::slice::from_ref(&common.target);
    let t0 = Instant::now();
    let clients = match open_all_joined(common, targets, n, layout, token).await {
        Ok(c) => c,
        Err(e) => {
            r.fail(format!("setup: {e}"));
            r.finish();
            return r;
        }
    };
    r.setup_s = Some(t0.elapsed().as_secs_f64());
    // Let the setup's presence frames drain before the storm.
    sleep(Duration::from_secs(1)).await;
    if let Some(site) = &site {
        site.set_latency(p.site_latency);
    }
    let s0 = Sample::read(pid).unwrap_or_default();
    let l0 = Sample::own();
    let k0 = listen_counters();
    // Every connection lost at once (closed by this side: the server sees them all go)...
    drop(clients);
    // ...and every client back at once: no connection attempt waits for another.
    let storm = Common {
        connect_concurrency: n.max(1),
        ..common.clone()
    };
    let t1 = Instant::now();
    let again = open_all_joined(&storm, targets, n, layout, token).await;
    let took = t1.elapsed();
    let s1 = Sample::read(pid).unwrap_or_default();
    let l1 = Sample::own();
    let k1 = listen_counters();
    match again {
        Ok(clients) => {
            r.reconnect_s = Some(took.as_secs_f64());
            drop(clients);
        }
        Err(e) => r.fail(format!("reconnect: {e}")),
    }
    if let (Some((o0, s0)), Some((o1, s1))) = (k0, k1) {
        r.listen_overflows = Some(o1.saturating_sub(o0));
        r.syn_retransmits = Some(s1.saturating_sub(s0));
    }
    r.window_s = took.as_secs_f64();
    fill_cpu(
        &mut r,
        &Delta::between(&s0, &s1),
        &s1,
        &Delta::between(&l0, &l1),
        took,
    );
    if let Some(site) = &site {
        site.set_latency(Duration::ZERO);
    }
    if Sample::read(pid).is_none() {
        r.fail("server died");
    }
    drop(server);
    r.finish();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listen_counters_by_name() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPSynRetrans\n\
                       TcpExt: 0 12 12 30\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_listen_counters(netstat), Some((12, 30)));
        assert_eq!(parse_listen_counters("IpExt: x\nIpExt: 1\n"), None);
    }
}
