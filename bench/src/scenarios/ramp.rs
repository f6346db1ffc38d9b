//! Scenario 8, `ramp`: scenario 2's fixed-rate load at rising rates, each on a fresh server,
//! until one is not held: the highest rate a server holds with p99 under a bound and no
//! loss.

use std::time::Duration;

use tokio::time::sleep;

use super::shared::Common;
use super::traffic::{Load, Pace, traffic};
use crate::record::Record;

/// Scenario 8's name at one rate (one JSON line per rate).
pub(crate) fn ramp_scenario(per_s: f64) -> String {
    format!("ramp-{per_s:.0}")
}

/// Scenario 8 parameters.
#[derive(Debug, Clone)]
pub(crate) struct Ramp {
    /// The load; its pace is each of `rates` in turn.
    pub(crate) load: Load,
    /// Messages per second, all clients together, lowest first.
    pub(crate) rates: Vec<f64>,
    /// A rate is held when every message arrived everywhere and p99 stayed under this.
    pub(crate) p99_bound: Duration,
}

/// Whether run `r` held its rate, and why not.
fn verdict(r: &Record, p99_bound: Duration) -> Result<(), String> {
    if !r.ok {
        return Err(r.failures.join("; "));
    }
    let bound_us = p99_bound.as_secs_f64() * 1e6;
    match r.latency_us {
        Some(l) if l.p99 < bound_us => Ok(()),
        Some(l) => Err(format!("p99 {:.0} µs ≥ {bound_us:.0} µs", l.p99)),
        None => Err("no delivery measured".to_owned()),
    }
}

/// Scenario 8: each rate in turn until one is not held. A rate not held is the ramp's
/// answer, not a failed run: its faults (missing deliveries, say) become notes, unless
/// nothing was delivered at all (the server did not start, or setup failed).
pub(crate) async fn ramp(common: &Common, p: &Ramp) -> Vec<Record> {
    let mut records = Vec::new();
    for &per_s in &p.rates {
        let load = Load {
            pace: Pace::Rate { per_s },
            ..p.load
        };
        let mut r = traffic(common, &ramp_scenario(per_s), load).await;
        r.rate_per_s = Some(per_s);
        let held = verdict(&r, p.p99_bound);
        r.held = Some(held.is_ok());
        let stop = held.is_err();
        if let Err(why) = held {
            r.notes.push(format!("not held: {why}"));
            if r.deliveries > 0 {
                r.failures.clear();
                r.ok = true;
            }
        }
        records.push(r);
        if stop {
            break;
        }
        // Let the kernel reap the last run's sockets, as run.sh does between runs.
        sleep(Duration::from_secs(1)).await;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Percentiles;

    #[test]
    fn a_rate_is_held_with_no_fault_and_p99_under_the_bound() {
        let bound = Duration::from_millis(50);
        let mut r = Record::new("ramp-4000", "bbrt");
        r.latency_us = Some(Percentiles {
            p99: 49_000.0,
            ..Percentiles::default()
        });
        r.finish();
        assert_eq!(verdict(&r, bound), Ok(()));
        r.latency_us = Some(Percentiles {
            p99: 50_000.0,
            ..Percentiles::default()
        });
        assert!(verdict(&r, bound).is_err());
        r.missing = 1;
        r.failures.clear();
        r.finish();
        assert!(verdict(&r, bound).unwrap_err().contains("missing"));
        assert!(verdict(&Record::new("ramp-1", "x"), bound).is_err());
    }
}
