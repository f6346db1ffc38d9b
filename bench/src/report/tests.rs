use super::*;
use crate::scenarios::{ONE_NODE, ONE_NODE_REDIS, TWO_NODES, cluster_scenario};

#[test]
fn writes_side_by_side_table_and_chart() {
    let dir = std::env::temp_dir().join(format!("bbrt-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let mut lines = String::new();
    let mut records = Vec::new();
    for (server, cpu) in [
        ("node", 10.0),
        ("socketio", 12.0),
        ("sockudo", 4.0),
        ("bbrt", 1.0),
    ] {
        for scenario in ["fanout", "rate"] {
            let mut r = Record::new(scenario, server);
            r.server_cpu_us_per_delivery = Some(cpu);
            r.deliveries_per_s = Some(1000.0 / cpu);
            r.finish();
            records.push(r);
        }
        // The ramp: bbrt holds 32000, the others 8000 and no more.
        for rate in [8000.0, 32000.0] {
            let mut r = Record::new(&ramp_scenario(rate), server);
            r.rate_per_s = Some(rate);
            r.held = Some(server == "bbrt" || rate < 10_000.0);
            r.latency_us = Some(Percentiles {
                p99: if r.held == Some(true) {
                    900.0
                } else {
                    80_000.0
                },
                ..Percentiles::default()
            });
            r.finish();
            records.push(r);
        }
    }
    for r in &records {
        lines += &serde_json::to_string(r).expect("serializes");
        lines += "\n";
    }
    let (input, md, png) = (dir.join("r.jsonl"), dir.join("r.md"), dir.join("r.png"));
    std::fs::write(&input, lines).expect("written");
    write(&input, &md, &png, "- test machine").expect("report");
    let text = std::fs::read_to_string(&md).expect("markdown");
    assert!(
        text.contains(
            "| metric | Node | Socket.IO | Sockudo | bbrt | bbrt/Node | bbrt/Sockudo | goal | met |"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "| 1 fan-out: server CPU µs/delivery | 10.0 | 12.0 | 4.00 | 1.00 | 0.100 | 0.250 \
             | bbrt/Node ≤ 0.125 (#6) | yes |"
        ),
        "{text}"
    );
    // bbrt at 0.25 of Sockudo's CPU per delivery meets issue 22's 0.5.
    assert!(
        text.contains(
            "| 2 fixed rate: server CPU µs/delivery | 10.0 | 12.0 | 4.00 | 1.00 | 0.100 | 0.250 \
             | bbrt/Sockudo ≤ 0.5 (#22) | yes |"
        ),
        "{text}"
    );
    assert!(
        text.contains("| 32000 | **not held**: 80000 (–) | **not held**: 80000 (–) | **not held**: 80000 (–) | 900.0 (–) |"),
        "{text}"
    );
    assert!(
        text.contains("| **highest held** | **8000** | **8000** | **8000** | **32000** |"),
        "{text}"
    );
    assert!(text.contains("**Sockudo** (Pusher protocol 7)"), "{text}");
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
    // Three runs of each, interleaved as `bench/run.sh` runs them: the table gives
    // medians, so one noisy run (the slow second 1-node one, the third 2-node one) moves
    // nothing.
    let by = group(vec![
        run(ONE_NODE, 1, 1.0, 1000.0),
        run(TWO_NODES, 2, 2.5, 1000.0),
        run(ONE_NODE_REDIS, 1, 1.5, 1000.0),
        run(ONE_NODE, 1, 4.0, 9000.0),
        run(TWO_NODES, 2, 2.4, 990.0),
        run(ONE_NODE_REDIS, 1, 1.5, 1000.0),
        run(ONE_NODE, 1, 0.9, 800.0),
        run(TWO_NODES, 2, 30.0, 20_000.0),
        run(ONE_NODE_REDIS, 1, 1.5, 1000.0),
    ]);
    let text = cluster_table(&by);
    assert!(
        text.contains(
            "| 7 scale-out 4000 msg/s: deliveries per server CPU second (2 nodes: both processes) \
             | 200000 | 133333 | 80000 | 0.400 | 2 nodes / 1 node ≥ 0.85 (#22; #7: 0.5) | **no** |"
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
    assert!(text.contains("| 7 scale-out 4000 msg/s: Redis CPU % of the window | – | – | 10.0 |"));
    assert!(cluster_table(&group(Vec::new())).is_empty());
}

#[test]
fn a_figure_of_repeated_runs_is_their_median() {
    let run = |cpu: Option<f64>| {
        let mut r = Record::new("rate", "bbrt");
        r.server_cpu_us_per_delivery = cpu;
        r
    };
    let f: Getter = |r| r.server_cpu_us_per_delivery;
    let by = group(vec![run(Some(9.0)), run(Some(5.0)), run(Some(6.0))]);
    assert_eq!(median(&by, "rate", "bbrt", f), Some(6.0));
    // A run without the figure does not count; an even count takes the middle two.
    let by = group(vec![run(Some(9.0)), run(None), run(Some(5.0))]);
    assert_eq!(median(&by, "rate", "bbrt", f), Some(7.0));
    assert_eq!(median(&by, "rate", "node", f), None);
    assert_eq!(median(&group(vec![run(None)]), "rate", "bbrt", f), None);
}
