//! The flags' defaults, redaction, and value parsers.

use std::time::Duration;

use bbrt_protocol::hub::HubConfig;
use bbrt_protocol::ids::MAX_NODE_ID_LEN;
use bbrt_protocol::wire::Limits;
use clap::Parser;

use super::values::{format_duration, parse_cidr, site_home};
use super::*;

#[test]
fn defaults_match_clap() {
    let parsed = Config::try_parse_from(["bbrt-server"]).expect("defaults parse");
    let d = Config::default();
    assert_eq!(format!("{parsed:?}"), format!("{d:?}"));
}

#[test]
fn the_hub_and_decoder_defaults_are_theirs() {
    // Flags the Hub or the decoder owns take their defaults from HubConfig and Limits:
    // no flag left to the Hub's own default differs from it either.
    let node: NodeId = "n7".parse().expect("valid");
    let instance: InstanceId = "i7".parse().expect("valid");
    let from_flags = Config::default().hub_config(node.clone(), instance.clone());
    let hub = HubConfig {
        node_id: node,
        instance,
        ..HubConfig::default()
    };
    assert_eq!(format!("{from_flags:?}"), format!("{hub:?}"));
    assert_eq!(Config::default().limits(), Limits::default());
}

#[test]
fn hub_durations_are_written_as_the_parser_reads_them() {
    for secs in [
        1, 2, 10, 60, 75, 90, 99, 100, 120, 300, 600, 3600, 7200, 5400,
    ] {
        let d = Duration::from_secs(secs);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{secs}s");
    }
    let d = Duration::from_millis(250);
    assert_eq!(format_duration(d), "250ms");
    assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
}

#[test]
fn a_logged_config_hides_the_redis_password() {
    let parsed = Config::try_parse_from([
        "bbrt-server",
        "--redis",
        "redis://app:s3cret@redis.internal:6379/2",
    ])
    .expect("parses");
    let shown = format!("{parsed:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("redis://app:[redacted]@redis.internal:6379/2"),
        "{shown}"
    );
    let url = parsed.redis.expect("set");
    assert_eq!(url.expose(), "redis://app:s3cret@redis.internal:6379/2");
}

#[test]
fn an_over_long_node_id_is_refused_with_the_reason() {
    let longest = "n".repeat(MAX_NODE_ID_LEN);
    let parsed = Config::try_parse_from(["bbrt-server", "--node-id", &longest])
        .expect("the longest node id is accepted");
    assert_eq!(
        parsed.node_id.map(|n| n.as_str().len()),
        Some(MAX_NODE_ID_LEN)
    );
    let over = "n".repeat(127);
    let error = Config::try_parse_from(["bbrt-server", "--node-id", &over])
        .expect_err("127 bytes is too long")
        .to_string();
    assert!(error.contains("a node id is at most 107 bytes"), "{error}");
}

#[test]
fn ticket_settings_are_checked_at_start_and_never_quote_a_key() {
    let ring = "k1:a-ticket-secret-of-at-least-32-bytes-aaaa";
    let mut c = Config {
        ticket_keys: Some(ring.parse().unwrap()),
        buddyboss_url: Some("https://community.example.org/wp-json/".into()),
        ..Config::default()
    };
    let missing = c.ticket_verifier().unwrap_err();
    assert!(missing.contains("--public-url"), "{missing}");
    c.public_url = Some("wss://rt.example.org/".into());
    let verifier = c.ticket_verifier().unwrap().expect("a verifier");
    assert_eq!(verifier.kids(), ["k1"]);
    assert!(!format!("{c:?} {verifier:?}").contains("a-ticket-secret"));
    c.ticket_keys = Some("k1:short".parse().unwrap());
    let short = c.ticket_verifier().unwrap_err();
    assert!(
        short.contains("shorter than 32 bytes") && !short.contains("short\""),
        "{short}"
    );
    c.ticket_keys = Some(ring.parse().unwrap());
    c.ticket_leeway = Duration::from_secs(31);
    assert!(c.ticket_verifier().unwrap_err().contains("at most 30s"));
    assert_eq!(
        site_home("https://site.example/wp-json/"),
        "https://site.example"
    );
    assert_eq!(
        site_home("https://site.example/?rest_route="),
        "https://site.example"
    );
    assert_eq!(site_home("https://site.example/"), "https://site.example");
    assert_eq!(
        Config::default().ticket_verifier().map(|v| v.is_none()),
        Ok(true)
    );
}

#[test]
fn site_event_keys_are_checked_at_start_and_never_quote_a_key() {
    assert!(matches!(Config::default().site_event_verifier(), Ok(None)));
    let mut c = Config {
        site_event_keys: Some(
            "e1:a-site-event-secret-of-32-bytes-or-more"
                .parse()
                .unwrap(),
        ),
        ..Config::default()
    };
    let verifier = c.site_event_verifier().unwrap().expect("a verifier");
    assert_eq!(verifier.kids(), ["e1"]);
    assert!(!format!("{c:?} {verifier:?}").contains("a-site-event-secret"));
    c.site_event_keys = Some("e1:short-secret".parse().unwrap());
    let short = c.site_event_verifier().unwrap_err();
    assert!(
        short.contains("shorter than 32 bytes") && !short.contains("short-secret"),
        "{short}"
    );
    let file = std::env::temp_dir().join(format!("bbrt-site-event-keys-{}", std::process::id()));
    std::fs::write(&file, "e2:another-site-event-secret-of-32-bytes-or-more\n").unwrap();
    c.site_event_keys = None;
    c.site_event_keys_file = Some(file.clone());
    let from_file = c.site_event_verifier().unwrap().expect("a verifier");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(from_file.kids(), ["e2"]);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
    assert!(parse_duration("5 parsecs").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn cidrs() {
    let net = parse_cidr("10.0.0.0/8").expect("valid");
    assert!(net.contains("10.1.2.3".parse().expect("ip")));
    assert!(net.contains("::ffff:10.1.2.3".parse().expect("ip")));
    assert!(!net.contains("11.0.0.1".parse().expect("ip")));
    let one = parse_cidr("127.0.0.1").expect("valid");
    assert!(one.contains("127.0.0.1".parse().expect("ip")));
    assert!(!one.contains("127.0.0.2".parse().expect("ip")));
    assert!(parse_cidr("10.0.0.0/33").is_err());
    assert!(
        parse_cidr("::1/128")
            .expect("valid")
            .contains("::1".parse().expect("ip"))
    );
}
