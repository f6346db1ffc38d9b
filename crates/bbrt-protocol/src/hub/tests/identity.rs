//! Identity: anonymous until verified, queued frames, refusals, re-verification, limits.

use serde_json::json;

use super::sim::*;
use crate::api::SiteErrorKind;

#[test]
fn a_connection_is_anonymous_until_it_identifies() {
    let mut sim = Sim::new();
    let anon = sim.open();
    sim.send(
        anon,
        json!({"type": "join_thread", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(anon, "unauthenticated", Some(1));
    assert_eq!(sim.hub(0).user_of(anon), None);

    sim.send(
        anon,
        json!({"type": "user_connected", "userId": "alice", "requestId": 2}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(anon),
        [json!({"type": "ack", "requestId": 2})]
    );
    assert_eq!(sim.hub(0).user_of(anon), Some(&uid("alice")));
    assert_eq!(sim.online(0), ["alice"]);
}

#[test]
fn frames_sent_while_verifying_wait_in_order_and_are_replayed() {
    let mut sim = Sim::new();
    sim.site_latency("verify", ms(500));
    let alice = sim.open_on(0, ip(1), Some("dev:alice"));
    sim.send(
        alice,
        json!({"type": "join_thread", "threadId": "T", "requestId": 1}),
    );
    sim.send(alice, json!({"type": "ping", "requestId": 2}));
    sim.send(
        alice,
        json!({"type": "typing", "threadId": "T", "requestId": 3}),
    );
    sim.drive_for(ms(400));
    assert_eq!(
        sim.take(alice),
        [],
        "nothing is answered before the site verified the credential"
    );

    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [
            json!({"type": "joined", "threadId": "T", "participants": [{"userId": "alice", "online": true}], "requestId": 1,
                   "position": {"offset": 0, "epoch": "i1.1"}}),
            json!({"type": "pong", "requestId": 2}),
            json!({"type": "ack", "threadId": "T", "requestId": 3}),
        ]
    );
}

#[test]
fn the_queue_behind_a_verification_is_bounded_and_each_overflow_gets_queue_full() {
    let mut sim = Sim::with(|c| c.max_queued_per_conn = 2);
    sim.site_latency("verify", ms(500));
    let alice = sim.open();
    sim.send(
        alice,
        json!({"type": "user_connected", "userId": "alice", "token": "dev:alice", "requestId": 1}),
    );
    for rid in 2..=5 {
        sim.send(alice, json!({"type": "ping", "requestId": rid}));
    }
    assert_eq!(
        sim.errors(alice),
        [
            ("queue_full".into(), Some(4)),
            ("queue_full".into(), Some(5))
        ]
    );
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [
            json!({"type": "ack", "requestId": 1}),
            json!({"type": "pong", "requestId": 2}),
            json!({"type": "pong", "requestId": 3}),
        ]
    );
}

#[test]
fn the_queue_behind_an_upgrade_credential_has_the_same_bound() {
    let mut sim = Sim::with(|c| c.max_queued_per_conn = 2);
    sim.site_latency("verify", ms(500));
    let alice = sim.open_on(0, ip(1), Some("dev:alice"));
    for rid in 1..=4 {
        sim.send(alice, json!({"type": "ping", "requestId": rid}));
    }
    assert_eq!(
        sim.errors(alice),
        [
            ("queue_full".into(), Some(3)),
            ("queue_full".into(), Some(4))
        ]
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["pong", "pong"]);
}

#[test]
fn a_refused_credential_answers_every_queued_frame_once() {
    let mut sim = Sim::new();
    sim.site_latency("verify", ms(300));
    let conn = sim.open();
    // Not a dev: token and not a valid user id: the embedded site refuses it.
    sim.send(
        conn,
        json!({"type": "user_connected", "userId": "alice", "token": "bad/token", "requestId": 1}),
    );
    sim.send(
        conn,
        json!({"type": "join_thread", "threadId": "T", "requestId": 2}),
    );
    sim.send(
        conn,
        json!({"type": "typing", "threadId": "T", "requestId": 3}),
    );
    sim.send(conn, json!({"type": "ping", "requestId": 4}));
    sim.drive();
    let frames = sim.take_json(conn);
    let answers: Vec<(&str, &str, i64)> = frames
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap(),
                f["code"].as_str().unwrap_or(""),
                f["requestId"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("error", "unauthenticated", 1),
            ("error", "unauthenticated", 2),
            ("error", "unauthenticated", 3),
            ("pong", "", 4),
        ]
    );
    assert!(
        sim.closed(conn).is_none(),
        "a refused frame credential does not close the connection"
    );
    assert_eq!(sim.api_count("verify"), 1);

    // The same credential again is refused without asking the site.
    sim.send(
        conn,
        json!({"type": "user_connected", "userId": "alice", "token": "bad/token", "requestId": 5}),
    );
    sim.drive();
    sim.expect_error(conn, "unauthenticated", Some(5));
    assert_eq!(sim.api_count("verify"), 1);
}

#[test]
fn a_refused_upgrade_credential_closes_with_4001() {
    let mut sim = Sim::new();
    let conn = sim.open_on(0, ip(1), Some("bad/token"));
    sim.send(conn, json!({"type": "ping", "requestId": 1}));
    sim.drive();
    assert_eq!(sim.close_code(conn), Some(4001));
    assert_eq!(sim.take(conn), []);
}

#[test]
fn an_unavailable_site_at_upgrade_keeps_the_credential_and_verifies_it_again() {
    let mut sim = Sim::new();
    sim.fail_next("verify", 2, SiteErrorKind::Unavailable, "timeout");
    let conn = sim.open_on(0, ip(1), Some("dev:alice"));
    sim.send(conn, json!({"type": "ping", "requestId": 1}));
    sim.send(
        conn,
        json!({"type": "join_thread", "threadId": "T", "requestId": 2}),
    );
    sim.drive();
    let frames = sim.take_json(conn);
    assert_eq!(frames[0], json!({"type": "pong", "requestId": 1}));
    assert_eq!(
        (
            &frames[1]["code"],
            &frames[1]["retryable"],
            &frames[1]["requestId"]
        ),
        (&json!("site_unavailable"), &json!(true), &json!(2)),
        "{frames:?}"
    );
    assert_eq!(frames.len(), 2);
    assert!(sim.closed(conn).is_none());
    assert_eq!(sim.hub(0).user_of(conn), None, "not identified yet");

    // The site is back: the kept credential is verified again, without the client.
    sim.drive_for(secs(10));
    assert_eq!(sim.api_count("verify"), 3);
    assert_eq!(sim.hub(0).user_of(conn), Some(&uid("alice")));
    sim.send(
        conn,
        json!({"type": "user_connected", "userId": "alice", "requestId": 3}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(conn),
        [json!({"type": "ack", "requestId": 3})]
    );
}

#[test]
fn a_kept_upgrade_credential_the_site_then_refuses_closes_with_4001() {
    let mut sim = Sim::new();
    sim.fail_next("verify", 1, SiteErrorKind::Unavailable, "timeout");
    let conn = sim.open_on(0, ip(1), Some("tok-alice"));
    sim.drive();
    sim.revoke_token("tok-alice");
    sim.drive_for(secs(10));
    assert_eq!(sim.close_code(conn), Some(4001));
}

#[test]
fn upgrade_retries_are_coalesced_per_credential_and_jittered() {
    let mut sim = Sim::new();
    sim.fail_next("verify", 1000, SiteErrorKind::Unavailable, "connect");
    let shared: Vec<_> = (0..5)
        .map(|i| sim.open_on(0, ip(i + 1), Some("dev:alice")))
        .collect();
    let single: Vec<_> = (0..5)
        .map(|i| sim.open_on(0, ip(i + 10), Some(&format!("dev:user{i}"))))
        .collect();
    sim.drive();
    assert_eq!(
        sim.api_count("verify"),
        10,
        "one first attempt per connection"
    );
    let failed_at = sim.now;
    sim.drive_for(secs(120));

    let initial = sim.hub(0).config().verify_retry_initial;
    let mut first_retry = Vec::new();
    let mut per_credential: std::collections::BTreeMap<_, Vec<_>> = Default::default();
    for ((_, request), at) in sim.site.requests.iter().zip(&sim.request_times).skip(10) {
        per_credential
            .entry(request.credential().expect("a credential"))
            .or_default()
            .push(*at);
    }
    assert_eq!(per_credential.len(), 6, "one retry series per credential");
    for times in per_credential.values() {
        let first = times[0] - failed_at;
        assert!(first >= initial / 2 && first <= initial, "{first:?}");
        first_retry.push(first);
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= initial / 2,
                "no retry storm: {times:?}"
            );
        }
        assert!(
            *times.last().expect("some") - times[times.len() - 2] <= secs(30),
            "capped"
        );
    }
    first_retry.sort();
    first_retry.dedup();
    assert!(first_retry.len() > 3, "jittered: {first_retry:?}");

    // The site comes back: one verification identifies all five connections of alice.
    sim.site.failures.clear();
    let before = sim.api_count("verify");
    sim.drive_for(secs(31));
    assert_eq!(sim.api_count("verify"), before + 6);
    for conn in shared {
        assert_eq!(sim.hub(0).user_of(conn), Some(&uid("alice")));
    }
    for (i, conn) in single.into_iter().enumerate() {
        assert_eq!(sim.hub(0).user_of(conn), Some(&uid(&format!("user{i}"))));
    }
}

#[test]
fn a_newer_token_replaces_the_first_and_the_first_expiring_does_not_close() {
    // The case: identify with A, present B, revoke A, drive past the re-verify
    // period: still open, and acting with B.
    let mut sim = Sim::with(|c| c.credential_ttl = secs(60));
    sim.site_thread("T", &["alice", "bob"]);
    let conn = sim.open_on(0, ip(1), Some("dev:alice"));
    sim.drive();
    sim.send(
        conn,
        json!({"type": "user_connected", "userId": "alice", "token": "alice-b", "requestId": 1}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(conn),
        [json!({"type": "ack", "requestId": 1})]
    );
    assert_eq!(sim.releases.len(), 1, "the first one is released");
    let (released_conn, a) = sim.releases[0];
    assert_eq!(released_conn, conn);

    sim.revoke_token("dev:alice");
    sim.drive_for(secs(130));
    assert!(sim.closed(conn).is_none(), "B is still good");

    sim.send(
        conn,
        json!({"type": "send_message", "threadId": "T", "message": "hi"}),
    );
    sim.drive();
    let (_, send) = sim.site.requests.last().expect("a send");
    assert_eq!(send.name(), "send");
    assert!(send.credential().is_some_and(|c| c != a), "sent with B");

    sim.revoke_token("alice-b");
    sim.drive_for(secs(61));
    assert_eq!(
        sim.close_code(conn),
        Some(4001),
        "now its credential is refused"
    );
}

#[test]
fn credentials_a_connection_no_longer_uses_are_released() {
    let mut sim = Sim::new();
    let conn = sim.open_on(0, ip(1), Some("dev:alice"));
    sim.drive();
    for i in 0..20 {
        let token = format!("alice-{i}");
        sim.send(
            conn,
            json!({"type": "user_connected", "userId": "alice", "token": token}),
        );
        sim.drive();
        assert_eq!(sim.credentials_held(0), 1, "only the current one is held");
    }
    for i in 0..20 {
        let token = format!("bad/{i}");
        sim.send(
            conn,
            json!({"type": "user_connected", "userId": "alice", "token": token}),
        );
        sim.drive();
    }
    assert!(
        sim.credentials_held(0) <= 5,
        "the current one and a few refused ones: {}",
        sim.credentials_held(0)
    );
    assert!(sim.closed(conn).is_none());
    sim.close(conn);
    assert_eq!(sim.credentials_held(0), 0);
}

#[test]
fn user_id_must_match_the_verified_user() {
    let mut sim = Sim::new();
    let conn = sim.open();
    sim.send(
        conn,
        json!({"type": "user_connected", "userId": "bob", "token": "dev:alice", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(conn, "identity_mismatch", Some(1));
    assert_eq!(sim.hub(0).user_of(conn), None);

    let alice = sim.connect("alice");
    sim.send(
        alice,
        json!({"type": "user_connected", "userId": "mallory", "requestId": 2}),
    );
    sim.drive();
    sim.expect_error(alice, "identity_mismatch", Some(2));
    assert_eq!(sim.hub(0).user_of(alice), Some(&uid("alice")));

    sim.send(alice, json!({"type": "user_connected", "userId": "mallory", "token": "dev:mallory", "requestId": 3}));
    sim.drive();
    sim.expect_error(alice, "identity_mismatch", Some(3));
    assert_eq!(sim.hub(0).user_of(alice), Some(&uid("alice")));
}

#[test]
fn credentials_are_verified_again_at_their_ttl_and_a_revoked_one_closes_with_4001() {
    let mut sim = Sim::with(|c| c.credential_ttl = secs(60));
    let phone = sim.open_on(0, ip(1), Some("tok-alice"));
    let laptop = sim.open_on(0, ip(2), Some("tok-alice"));
    let other = sim.open_on(0, ip(3), Some("dev:alice"));
    sim.drive();
    assert_eq!(sim.hub(0).user_of(phone), Some(&uid("tok-alice")));
    assert_eq!(sim.api_count("verify"), 3);

    sim.drive_for(secs(61));
    assert_eq!(
        sim.api_count("verify"),
        5,
        "each credential in use is verified again once"
    );
    assert!(sim.closed(phone).is_none());

    sim.revoke_token("tok-alice");
    sim.drive_for(secs(61));
    assert_eq!(sim.close_code(phone), Some(4001));
    assert_eq!(sim.close_code(laptop), Some(4001));
    assert!(
        sim.closed(other).is_none(),
        "another credential is unaffected"
    );
    assert_eq!(sim.online(0), ["alice"]);
}

#[test]
fn a_site_outage_during_reverification_keeps_the_connection() {
    let mut sim = Sim::with(|c| c.credential_ttl = secs(60));
    let alice = sim.open_on(0, ip(1), Some("dev:alice"));
    sim.drive();
    sim.fail_next("verify", 1, SiteErrorKind::Unavailable, "timeout");
    sim.drive_for(secs(61));
    assert!(sim.closed(alice).is_none());
    sim.drive_for(secs(7));
    assert_eq!(
        sim.api_count("verify"),
        3,
        "asked again soon after the outage"
    );
}

#[test]
fn a_user_may_hold_a_bounded_number_of_connections() {
    let mut sim = Sim::with(|c| c.max_conns_per_user = 2);
    let a1 = sim.connect("alice");
    let a2 = sim.connect("alice");
    let a3 = sim.open();
    sim.send(
        a3,
        json!({"type": "user_connected", "userId": "alice", "requestId": 1}),
    );
    sim.drive();
    let frames = sim.take_json(a3);
    assert_eq!(
        (&frames[0]["code"], &frames[0]["requestId"]),
        (&json!("too_many_connections"), &json!(1)),
        "the error before the close answers the frame that asked"
    );
    assert_eq!(sim.close_code(a3), Some(4009));
    assert!(sim.closed(a1).is_none() && sim.closed(a2).is_none());
    // Identified by the token of a send, as the seed's React page does.
    let a4 = sim.open();
    sim.send(
        a4,
        json!({"type": "send_message", "threadId": "t", "message": "hi", "token": "dev:alice", "requestId": "s"}),
    );
    sim.drive();
    let frames = sim.take_json(a4);
    assert_eq!(
        (&frames[0]["code"], &frames[0]["requestId"]),
        (&json!("too_many_connections"), &json!("s"))
    );
    assert_eq!(sim.close_code(a4), Some(4009));
    // A credential from the upgrade: no frame asked, so nothing to echo.
    let a5 = sim.open_on(0, ip(9), Some("dev:alice"));
    sim.drive();
    let frames = sim.take_json(a5);
    assert_eq!(frames[0]["code"], "too_many_connections");
    assert_eq!(frames[0].get("requestId"), None);
    assert_eq!(sim.close_code(a5), Some(4009));
}

#[test]
fn anonymous_connections_are_evicted_oldest_first_per_ip() {
    let mut sim = Sim::with(|c| c.max_anonymous_per_ip = 2);
    let first = sim.open_on(0, ip(1), None);
    let verified = sim.open_on(0, ip(1), Some("dev:alice"));
    sim.drive();
    // `verified` no longer counts: it left the anonymous set when it was verified.
    let second = sim.open_on(0, ip(1), None);
    let elsewhere = sim.open_on(0, ip(2), None);
    assert!(sim.closed(first).is_none());
    let third = sim.open_on(0, ip(1), None);
    assert_eq!(sim.close_code(first), Some(4010));
    for conn in [second, elsewhere, verified, third] {
        assert!(sim.closed(conn).is_none());
    }
    assert_eq!(sim.hub(0).stats().anonymous_evicted, 1);
}

#[test]
fn anonymous_connections_are_evicted_oldest_first_in_total() {
    let mut sim = Sim::with(|c| c.max_anonymous_total = 3);
    let conns: Vec<_> = (1..=5).map(|n| sim.open_on(0, ip(n), None)).collect();
    assert_eq!(sim.close_code(conns[0]), Some(4010));
    assert_eq!(sim.close_code(conns[1]), Some(4010));
    assert!(conns[2..].iter().all(|c| sim.closed(*c).is_none()));
}

#[test]
fn the_seed_react_page_identifies_by_the_token_of_its_first_send() {
    let mut sim = Sim::new();
    let page = sim.open();
    sim.send(page, json!({"type": "send_message", "recipientId": "bob", "message": "hi", "threadId": "T", "token": "carol"}));
    sim.drive();
    assert_eq!(sim.hub(0).user_of(page), Some(&uid("carol")));
    let frames = sim.take_json(page);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "message");
    assert_eq!(frames[0]["senderId"], "carol");
}

#[test]
fn a_real_site_refuses_a_bare_user_id() {
    let mut sim = Sim::new();
    sim.site.real = true;
    let conn = sim.open();
    sim.send(
        conn,
        json!({"type": "user_connected", "userId": "alice", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(conn, "unauthenticated", Some(1));
    assert_eq!(sim.hub(0).user_of(conn), None);
    assert!(sim.closed(conn).is_none());
}

#[test]
fn a_credential_refused_while_fetching_participants_closes_its_connections() {
    let mut sim = Sim::new();
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.open_on(0, ip(1), Some("tok-a"));
    sim.drive();
    sim.revoke_token("tok-a");
    sim.send(
        alice,
        json!({"type": "typing", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    assert_eq!(sim.close_code(alice), Some(4001));
}

#[test]
fn the_site_coming_back_brings_waiting_retries_forward_spread_out() {
    let mut sim = Sim::new();
    sim.fail_next("verify", 1000, SiteErrorKind::Unavailable, "connect");
    let conns: Vec<_> = (0..5)
        .map(|i| sim.open_on(0, ip(i + 1), Some(&format!("dev:user{i}"))))
        .collect();
    // A long outage: the backoff has grown to its cap.
    sim.drive_for(secs(300));
    sim.site.failures.clear();
    let before = sim.request_times.len();
    sim.handle(0, crate::hub::Input::SiteReachable);
    // Within the first backoff (from the failure of a retry that was in flight, asked
    // while the site was down), not the 30 s of the grown one.
    let initial = sim.hub(0).config().verify_retry_initial;
    sim.drive_for(initial * 2);
    for (i, conn) in conns.iter().enumerate() {
        assert_eq!(
            sim.hub(0).user_of(*conn),
            Some(&uid(&format!("user{i}"))),
            "verified soon after the site came back"
        );
    }
    let mut times: Vec<_> = sim.request_times[before..].to_vec();
    assert_eq!(times.len(), 5, "one verification per credential");
    times.dedup();
    assert!(times.len() > 1, "spread, not all at once");
}
