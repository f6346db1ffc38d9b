//! Scenario 7, `cluster`: two nodes through Redis against one, at the same fixed rate.

use std::time::Duration;

use tokio::time::sleep;

use crate::record::Record;

use super::shared::Common;
use super::traffic::{Deployment, Load, Pace, traffic_on};

/// The report's names for the three deployments of scenario 7.
pub(crate) const ONE_NODE: &str = "bbrt 1 node";
pub(crate) const ONE_NODE_REDIS: &str = "bbrt 1 node + Redis";
pub(crate) const TWO_NODES: &str = "bbrt 2 nodes";

/// Scenario 7's name at one rate (one JSON line per deployment and rate).
pub(crate) fn cluster_scenario(per_s: f64) -> String {
    format!("cluster-{per_s:.0}")
}

/// Scenario 7 parameters.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    /// The load; its pace is each of `rates` in turn.
    pub(crate) load: Load,
    /// Messages per second, all clients together.
    pub(crate) rates: Vec<f64>,
    /// Given to each node as `--redis`.
    pub(crate) redis_url: String,
}

/// The port of a `redis://[user:password@]host[:port][/db]` URL.
fn redis_port(url: &str) -> u16 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(6379)
}

/// Scenario 7: at each rate, the same load against 1 node (the in-process broker, what a
/// single-node deployment runs), 2 nodes joined through Redis (clients alternately on
/// each) and 1 node with Redis; every node a fresh process of `common.server_cmd`, with
/// `--redis URL --redis-prefix <fresh> --node-id nK` appended for the Redis runs.
pub(crate) async fn cluster(common: &Common, p: &Cluster) -> Vec<Record> {
    let port = redis_port(&p.redis_url);
    let redis_pid = crate::proc::find_pid("redis-server", &format!(":{port}"));
    let mut records = Vec::new();
    for &per_s in &p.rates {
        for (server, nodes, redis, slug) in [
            (ONE_NODE, 1, false, "1node"),
            (TWO_NODES, 2, true, "2nodes"),
            (ONE_NODE_REDIS, 1, true, "1node-redis"),
        ] {
            // A fresh namespace per run: no node meets keys left by an earlier one.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let prefix = format!("bbrt-bench-{}-{nanos}", std::process::id());
            let cmds = (1..=nodes)
                .map(|k| {
                    // Every node runs the embedded development site (see
                    // `introduce_everywhere`), which bbrt refuses with `--redis` unless told.
                    if redis {
                        format!(
                            "{} --redis {} --redis-prefix {prefix} --node-id n{k} \
                             --allow-dev-site-with-redis",
                            common.server_cmd, p.redis_url
                        )
                    } else {
                        common.server_cmd.clone()
                    }
                })
                .collect();
            let deployment = Deployment {
                cmds,
                log_label: format!("{per_s:.0}-{slug}"),
                redis,
                redis_pid: redis_pid.filter(|_| redis),
            };
            let mut r = Record::new(&cluster_scenario(per_s), server);
            r.nodes = Some(nodes);
            r.rate_per_s = Some(per_s);
            r.redis = Some(redis);
            if redis && redis_pid.is_none() {
                r.notes.push(format!(
                    "no redis-server process with :{port} in its command line: Redis CPU not reported"
                ));
            }
            let load = Load {
                pace: Pace::Rate { per_s },
                ..p.load
            };
            records.push(traffic_on(common, r, &deployment, load).await);
            // Let the kernel reap the last run's sockets, as run.sh does between runs.
            sleep(Duration::from_secs(1)).await;
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_port_from_url() {
        assert_eq!(redis_port("redis://127.0.0.1:6379"), 6379);
        assert_eq!(redis_port("redis://127.0.0.1:6380/0"), 6380);
        assert_eq!(redis_port("redis://user:p:w@host:7000/2"), 7000);
        assert_eq!(redis_port("redis://localhost/"), 6379);
    }
}
