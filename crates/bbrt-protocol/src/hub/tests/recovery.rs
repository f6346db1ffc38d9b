//! Reconnect recovery: positions, the window, the site's history, and live delivery with
//! no gap after a replay (`docs/protocol.md`, "Recovery").

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::sim::*;
use crate::api::SiteErrorKind;
use crate::ids::ConnId;

/// Messages per page of the site's history (BuddyBoss's `per_page`).
const PAGE: usize = crate::api::HISTORY_PAGE_SIZE;

/// alice (on node 0) and bob (on the last node: the other one when there are two) joined
/// `T`; bob has received alice's first message. Returns (alice, bob, that message as bob
/// got it).
fn bob_saw_one(sim: &mut Sim) -> (ConnId, ConnId, Value) {
    let last = sim.nodes.len() - 1;
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(last, "bob");
    for conn in [alice, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    say(sim, alice, "one");
    let seen = sim.take_json(bob).pop().expect("bob got the message");
    sim.clear();
    (alice, bob, seen)
}

/// [`bob_saw_one`], then bob drops and alice says `texts` while he is away. Returns (alice,
/// the message bob saw last).
fn bob_away_while(sim: &mut Sim, texts: &[&str]) -> (ConnId, Value) {
    let (alice, bob, seen) = bob_saw_one(sim);
    sim.close(bob);
    for text in texts {
        say(sim, alice, text);
    }
    (alice, seen)
}

fn say(sim: &mut Sim, conn: ConnId, text: &str) {
    sim.send(
        conn,
        json!({"type": "send_message", "threadId": "T", "message": text}),
    );
    sim.drive();
}

/// What bob comes back with: a new connection that joins `T` with `point` merged in.
fn come_back(sim: &mut Sim, node: usize, point: Value) -> ConnId {
    let bob = sim.connect_on(node, "bob");
    sim.clear();
    let mut join = json!({"type": "join_thread", "threadId": "T", "requestId": 7});
    join.as_object_mut()
        .expect("an object")
        .extend(point.as_object().expect("an object").clone());
    sim.send(bob, join);
    sim.drive();
    bob
}

fn texts(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"].as_str().expect("a text"))
        .collect()
}

fn resumed(frames: &[Value]) -> &Value {
    frames
        .last()
        .filter(|f| f["type"] == "resumed")
        .expect("ends with resumed")
}

#[test]
fn every_message_carries_its_site_id_and_a_position_in_its_thread() {
    let mut sim = Sim::new();
    let (alice, bob, first) = bob_saw_one(&mut sim);
    assert_eq!(first["id"], "1");
    assert_eq!(first["position"]["offset"], 1);
    let epoch = first["position"]["epoch"].clone();
    assert!(epoch.is_string());
    say(&mut sim, alice, "two");
    let second = sim.take_json(bob).pop().expect("a message");
    assert_eq!(second["position"], json!({"offset": 2, "epoch": epoch}));
    assert_eq!(
        sim.take_json(alice),
        [second],
        "every copy is the same frame"
    );
    sim.send(
        bob,
        json!({"type": "join_thread", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    let joined = sim.take_json(bob);
    assert_eq!(joined[0]["position"], json!({"offset": 2, "epoch": epoch}));
}

#[test]
fn a_window_hit_replays_what_was_missed_in_order_then_says_so() {
    let mut sim = Sim::new();
    let (alice, seen) = bob_away_while(&mut sim, &["two", "three"]);
    let live: Vec<Value> = sim
        .take_json(alice)
        .into_iter()
        .filter(|f| f["type"] == "message")
        .collect();
    let bob = come_back(&mut sim, 0, json!({"since": seen["position"]}));
    let got = sim.take_json(bob);
    assert_eq!(got[0]["type"], "joined");
    assert_eq!(got[0]["requestId"], 7);
    assert_eq!(&got[1..3], &live[..], "the frames as they were delivered");
    assert_eq!(
        resumed(&got),
        &json!({
            "type": "resumed", "threadId": "T", "source": "window", "complete": true,
            "reload": false, "replayed": 2, "position": live[1]["position"],
        })
    );
    assert_eq!(
        sim.api_count("history"),
        0,
        "a window hit asks the site nothing"
    );
    // The same by the last message id: the window keeps delivery order.
    let again = come_back(&mut sim, 0, json!({"sinceMessageId": seen["id"]}));
    assert_eq!(texts(&sim.take_json(again)), ["two", "three"]);
}

#[test]
fn past_the_window_the_site_serves_the_replay_with_the_users_credential() {
    let mut sim = Sim::with(|c| c.window_messages = 2);
    let (_, seen) = bob_away_while(&mut sim, &["two", "three", "four"]);
    let point = json!({"since": seen["position"], "sinceMessageId": seen["id"]});
    let bob = come_back(&mut sim, 0, point);
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), ["two", "three", "four"]);
    let done = resumed(&got);
    assert_eq!(
        (&done["source"], &done["complete"]),
        (&json!("site"), &json!(true))
    );
    assert_eq!(done["replayed"], 3);
    // Replayed messages the window still holds carry their positions.
    assert_eq!(got[3]["position"]["offset"], 4);
    assert_eq!(sim.api_count("history"), 1);
    // A position alone cannot be resolved past the window: the client reloads.
    let lost = come_back(&mut sim, 0, json!({"since": seen["position"]}));
    let got = sim.take_json(lost);
    assert_eq!(resumed(&got)["reload"], true);
    assert_eq!(texts(&got), Vec::<&str>::new());
}

#[test]
fn messages_arriving_during_a_site_replay_follow_it_once() {
    let mut sim = Sim::with(|c| c.window_messages = 1);
    let (alice, seen) = bob_away_while(&mut sim, &["two", "three"]);
    sim.site_latency("history", ms(500));
    let bob = sim.connect("bob");
    sim.clear();
    sim.send(
        bob,
        json!({"type": "join_thread", "threadId": "T", "sinceMessageId": seen["id"]}),
    );
    sim.drive_for(ms(100));
    say_for(&mut sim, alice, "four");
    assert_eq!(
        sim.kinds(bob),
        ["joined"],
        "nothing live overtakes the replay"
    );
    sim.drive();
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), ["two", "three", "four"]);
    let kinds: Vec<&str> = got
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .collect();
    // "four" was stored before the history was read: replayed, and the live copy dropped.
    assert_eq!(kinds, ["message", "message", "message", "resumed"]);
    say(&mut sim, alice, "five");
    assert_eq!(texts(&sim.take_json(bob)), ["five"], "then live again");
}

/// Sends without waiting for the site's answers to be all delivered.
fn say_for(sim: &mut Sim, conn: ConnId, text: &str) {
    sim.send(
        conn,
        json!({"type": "send_message", "threadId": "T", "message": text}),
    );
    sim.drive_for(ms(50));
}

#[test]
fn a_message_stored_after_the_history_was_read_is_delivered_after_the_replay() {
    let mut sim = Sim::with(|c| c.window_messages = 1);
    let (alice, seen) = bob_away_while(&mut sim, &["two"]);
    sim.site_latency("history", ms(500));
    sim.site_latency("send", ms(600));
    let bob = sim.connect("bob");
    sim.clear();
    sim.send(
        bob,
        json!({"type": "join_thread", "threadId": "T", "sinceMessageId": seen["id"]}),
    );
    sim.drive_for(ms(10));
    // Stored (and delivered) at +610 ms, after the history was read and the replay written
    // at +500 ms: it comes live, after `resumed`.
    say_for(&mut sim, alice, "three");
    sim.drive();
    let got = sim.take_json(bob);
    let kinds: Vec<&str> = got
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["joined", "message", "resumed", "message"]);
    assert_eq!(texts(&got), ["two", "three"]);
}

#[test]
fn messages_arriving_while_the_join_waits_for_membership_come_in_the_replay_once() {
    let mut sim = Sim::new();
    let (alice, seen) = bob_away_while(&mut sim, &["two"]);
    // The participant cache goes cold: bob's join asks the site again, slowly.
    sim.drive_for(secs(61));
    sim.site_latency("participants", ms(500));
    let bob = return_with(&mut sim, 0, Some(&seen["position"]));
    sim.drive_for(ms(100));
    say_for(&mut sim, alice, "three");
    sim.drive();
    let got = sim.take_json(bob);
    let kinds: Vec<&str> = got
        .iter()
        .map(|f| f["type"].as_str().unwrap_or(""))
        .filter(|k| *k != "user_connected")
        .collect();
    assert_eq!(kinds, ["joined", "message", "message", "resumed"]);
    assert_eq!(texts(&got), ["two", "three"]);
}

#[test]
fn catch_ups_per_connection_are_bounded_even_across_leaves() {
    let mut sim = Sim::with(|c| c.max_threads_per_conn = 2);
    sim.site_latency("history", secs(10));
    let bob = sim.connect("bob");
    for (n, thread) in ["A", "B", "C"].iter().enumerate() {
        sim.send(
            bob,
            json!({"type": "join_thread", "threadId": thread, "sinceMessageId": "99", "requestId": n}),
        );
        sim.send(bob, json!({"type": "leave_thread", "threadId": thread}));
        sim.drive_for(ms(500));
    }
    let errors: Vec<Value> = sim
        .take_json(bob)
        .into_iter()
        .filter(|f| f["type"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (&errors[0]["code"], &errors[0]["requestId"]),
        (&json!("too_many_threads"), &json!(2))
    );
    sim.drive();
    let unknown = sim
        .take_json(bob)
        .iter()
        .filter(|f| f["type"] == "resumed" && f["code"] == "position_unknown")
        .count();
    assert_eq!(unknown, 2, "the two catch-ups ran to their end");
}

#[test]
fn the_site_refusing_the_history_is_said_and_nothing_is_replayed() {
    let mut sim = Sim::with(|c| c.window_messages = 1);
    let (alice, seen) = bob_away_while(&mut sim, &["two", "three"]);
    sim.fail_next("history", 1, SiteErrorKind::Unavailable, "timeout");
    let bob = come_back(&mut sim, 0, json!({"sinceMessageId": seen["id"]}));
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), Vec::<&str>::new());
    let done = resumed(&got);
    assert_eq!(done["code"], "site_unavailable");
    assert_eq!(
        (&done["complete"], &done["reload"]),
        (&json!(false), &json!(false))
    );
    // Still joined and live.
    say(&mut sim, alice, "four");
    assert_eq!(texts(&sim.take_json(bob)), ["four"]);
    // A refusal (removed meanwhile) unjoins the thread.
    sim.fail_next(
        "history",
        1,
        SiteErrorKind::Forbidden,
        "bp_rest_authorization_required",
    );
    let bob = come_back(&mut sim, 0, json!({"sinceMessageId": seen["id"]}));
    assert_eq!(resumed(&sim.take_json(bob))["code"], "forbidden");
}

#[test]
fn too_far_behind_is_told_to_reload() {
    let mut sim = Sim::with(|c| c.max_replay = 2);
    let (_, seen) = bob_away_while(&mut sim, &["two", "three", "four"]);
    let bob = come_back(&mut sim, 0, json!({"since": seen["position"]}));
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), Vec::<&str>::new());
    let done = resumed(&got);
    assert_eq!(
        (&done["reload"], &done["source"]),
        (&json!(true), &json!("none"))
    );
    assert_eq!(
        done["position"]["offset"], 4,
        "where to resume from after reloading"
    );
    // And from the site alike.
    let mut sim = Sim::with(|c| {
        c.max_replay = 2;
        c.window_messages = 1;
    });
    let (_, seen) = bob_away_while(&mut sim, &["two", "three", "four"]);
    let bob = come_back(&mut sim, 0, json!({"sinceMessageId": seen["id"]}));
    assert_eq!(resumed(&sim.take_json(bob))["reload"], true);
}

#[test]
fn bad_resume_points_get_clear_answers() {
    let mut sim = Sim::new();
    let (_alice, bob, seen) = bob_saw_one(&mut sim);
    sim.close(bob);
    let mut ahead = seen["position"].clone();
    ahead["offset"] = json!(9);
    let bob = come_back(&mut sim, 0, json!({"since": ahead}));
    sim.expect_error(bob, "position_ahead", Some(7));
    let other = json!({"offset": 1, "epoch": "another"});
    let bob = come_back(&mut sim, 0, json!({"since": other}));
    sim.expect_error(bob, "position_epoch", Some(7));
    // Another epoch with the last message id: resolved through it.
    let both = json!({"since": other, "sinceMessageId": seen["id"]});
    let bob = come_back(&mut sim, 0, both);
    assert_eq!(resumed(&sim.take_json(bob))["source"], "window");
    // A message that is not in the thread.
    let bob = come_back(&mut sim, 0, json!({"sinceMessageId": "999"}));
    assert_eq!(resumed(&sim.take_json(bob))["code"], "position_unknown");
    // A malformed epoch is a decode error naming the frame.
    let bob = come_back(&mut sim, 0, json!({"since": {"offset": 1, "epoch": ""}}));
    sim.expect_error(bob, "invalid_field", Some(7));
}

#[test]
fn a_removed_member_is_checked_again_and_refused() {
    let mut sim = Sim::new();
    let (_alice, bob, seen) = bob_saw_one(&mut sim);
    sim.close(bob);
    // A real site from here on: a join checks membership, it adds no one.
    sim.site.real = true;
    sim.site_remove("T", "bob");
    // The cache forgets bob's membership after its TTL; the join asks the site again.
    sim.drive_for(secs(61));
    let bob = sim.open_on(0, ip(1), Some("dev:bob"));
    sim.drive();
    sim.send(
        bob,
        json!({"type": "join_thread", "threadId": "T", "since": seen["position"], "requestId": 7}),
    );
    sim.drive();
    sim.expect_error(bob, "forbidden", Some(7));
}

#[test]
fn resume_joins_many_threads_each_with_its_point() {
    let mut sim = Sim::with(|c| c.max_threads_per_conn = 3);
    let (_, seen) = bob_away_while(&mut sim, &["two"]);
    let bob = sim.connect("bob");
    sim.clear();
    sim.send(
        bob,
        json!({"type": "resume", "requestId": 3, "threads": [
            {"threadId": "T", "since": seen["position"]},
            {"threadId": "U"},
            {"threadId": "T", "sinceMessageId": "1"},
            {"threadId": "V", "since": {"offset": 1, "epoch": "gone"}},
        ]}),
    );
    sim.drive();
    let got = sim.take_json(bob);
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap_or(""),
                f["threadId"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("joined", "T"),
            ("message", "T"),
            ("resumed", "T"),
            ("joined", "U"),
            ("resumed", "V"),
            ("ack", ""),
        ]
    );
    assert_eq!(got[4]["code"], "position_epoch");
    assert_eq!(got[5]["requestId"], 3);
    let too_many: Vec<Value> = ["A", "B", "C", "D"]
        .iter()
        .map(|t| json!({"threadId": t}))
        .collect();
    sim.send(
        bob,
        json!({"type": "resume", "requestId": 4, "threads": too_many}),
    );
    sim.drive();
    sim.expect_error(bob, "too_many_threads", Some(4));
}

#[test]
fn a_page_all_in_one_second_is_reported_incomplete() {
    let mut sim = Sim::with(|c| c.window_messages = 1);
    let (alice, bob, seen) = bob_saw_one(&mut sim);
    sim.close(bob);
    // The simulated site stamps every message with the same second.
    for n in 0..PAGE + 5 {
        say(&mut sim, alice, &format!("m{n}"));
    }
    let bob = come_back(&mut sim, 0, json!({"sinceMessageId": seen["id"]}));
    let got = sim.take_json(bob);
    let done = resumed(&got);
    assert_eq!(
        (&done["source"], &done["complete"]),
        (&json!("site"), &json!(false))
    );
    assert_eq!(done["reload"], false);
    assert_eq!(texts(&got).len(), PAGE, "the newest page, once");
    assert_eq!(
        sim.api_count("history"),
        1,
        "a full page all in one second is the end of what can be paged"
    );
}

#[test]
fn site_catch_ups_in_flight_at_once_are_bounded() {
    let mut sim = Sim::with(|c| {
        c.window_messages = 1;
        c.max_site_catchups = 2;
    });
    let (_, seen) = bob_away_while(&mut sim, &["two"]);
    sim.site_latency("history", ms(100));
    let conns: Vec<ConnId> = (0..5).map(|_| sim.connect("bob")).collect();
    sim.clear();
    let start = sim.now;
    for conn in &conns {
        sim.send(
            *conn,
            json!({"type": "join_thread", "threadId": "T", "sinceMessageId": seen["id"]}),
        );
    }
    sim.drive();
    for conn in conns {
        assert_eq!(texts(&sim.take_json(conn)), ["two"]);
    }
    let mut per_slot: BTreeMap<u128, usize> = BTreeMap::new();
    for ((_, request), at) in sim.site.requests.iter().zip(&sim.request_times) {
        if request.name() == "history" {
            *per_slot.entry((*at - start).as_millis() / 100).or_default() += 1;
        }
    }
    assert_eq!(per_slot.values().copied().collect::<Vec<_>>(), [2, 2, 1]);
}

fn offsets(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["position"]["offset"].as_u64().expect("a position"))
        .collect()
}

#[test]
fn on_two_nodes_the_coordinator_counts_and_any_node_replays_from_the_shared_window() {
    let mut sim = Sim::cluster(2);
    let (alice, bob, seen) = bob_saw_one(&mut sim);
    assert_eq!(seen["position"]["offset"], 1, "counted by the coordinator");
    sim.close(bob);
    say(&mut sim, alice, "two");
    say(&mut sim, alice, "three");
    // Back on the other node, by position.
    let bob = come_back(&mut sim, 0, json!({"since": seen["position"]}));
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), ["two", "three"]);
    assert_eq!(offsets(&got), [2, 3]);
    assert_eq!(resumed(&got)["source"], "window");
    assert_eq!(resumed(&got)["complete"], true);
    assert_eq!(resumed(&got)["position"]["offset"], 3);
    assert_eq!(got[0]["type"], "joined");
    assert_eq!(
        got[0]["position"]["offset"], 3,
        "joined says where the thread stands"
    );
    // Back on the first node, by message id: the shared window keeps delivery order.
    sim.close(bob);
    let bob = come_back(&mut sim, 1, json!({"sinceMessageId": seen["id"]}));
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), ["two", "three"]);
    assert_eq!(resumed(&got)["source"], "window");
    assert_eq!(
        sim.api_count("history"),
        0,
        "a window hit needs no site request"
    );
    let bob = come_back(&mut sim, 1, json!({"since": {"offset": 1, "epoch": "x"}}));
    sim.expect_error(bob, "position_epoch", Some(7));
    let ahead = json!({"offset": 9, "epoch": seen["position"]["epoch"]});
    let bob = come_back(&mut sim, 0, json!({"since": ahead}));
    sim.expect_error(bob, "position_ahead", Some(7));
}

#[test]
fn on_two_nodes_past_the_shared_window_the_site_serves_the_replay() {
    let mut sim = Sim::cluster(2);
    sim.coord.windows = crate::cluster::SharedWindows::new(1, 1 << 20, 100);
    let (alice, bob, seen) = bob_saw_one(&mut sim);
    sim.close(bob);
    say(&mut sim, alice, "two");
    say(&mut sim, alice, "three");
    let bob = come_back(
        &mut sim,
        1,
        json!({"since": seen["position"], "sinceMessageId": seen["id"]}),
    );
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), ["two", "three"]);
    assert_eq!(resumed(&got)["source"], "site");
    let messages: Vec<&Value> = got.iter().filter(|f| f["type"] == "message").collect();
    assert!(
        messages[0].get("position").is_none(),
        "out of the window: none"
    );
    assert_eq!(
        messages[1]["position"]["offset"], 3,
        "still in the shared window: its position, as on one node"
    );
    // The node that only relayed alice's messages knows the thread's newest one too.
    assert_eq!(got[0]["type"], "joined");
    assert_eq!(got[0]["lastMessageId"], messages[1]["id"]);
    // Without a message id, the client is told to reload.
    let bob = come_back(&mut sim, 0, json!({"since": seen["position"]}));
    let got = sim.take_json(bob);
    assert_eq!(resumed(&got)["reload"], true);
}

#[test]
fn concurrent_sends_on_two_nodes_reach_everyone_in_position_order() {
    let mut sim = Sim::cluster(3);
    let alice = sim.connect_on(0, "alice");
    let carol = sim.connect_on(1, "carol");
    let bob = sim.connect_on(2, "bob");
    for conn in [alice, carol, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    // Both nodes post at once; each publishes its own, so a node can hear the later
    // counted one first.
    for round in 0..5 {
        for (conn, who) in [(alice, "a"), (carol, "c")] {
            sim.send(
                conn,
                json!({"type": "send_message", "threadId": "T", "message": format!("{who}{round}")}),
            );
        }
        sim.drive_for(ms(3));
    }
    sim.drive();
    let mut orders = Vec::new();
    for conn in [alice, carol, bob] {
        let got = sim.take_json(conn);
        assert_eq!(
            offsets(&got),
            (1..=10).collect::<Vec<_>>(),
            "in order, once"
        );
        orders.push(
            texts(&got)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "one order everywhere: {orders:?}"
    );
    assert_eq!(
        sim.hub(1).stats().order_gaps,
        0,
        "nothing was lost on the way"
    );
}

#[test]
fn on_two_nodes_a_live_copy_still_in_flight_is_not_written_after_the_replay() {
    let mut sim = Sim::cluster(2);
    let (alice, bob, seen) = bob_saw_one(&mut sim);
    sim.close(bob);
    // Alice's node publishes slowly: bob, back on node 1, reads the shared window before
    // the live copy of "two" arrives there.
    sim.broker_latency = ms(50);
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "two"}),
    );
    sim.drive_for(ms(25));
    // Identified and joined in one write, as a client that resumes does: nothing live
    // can come between.
    let bob = sim.open_on(1, ip(9), None);
    sim.send(bob, json!({"type": "user_connected", "userId": "bob"}));
    sim.send(
        bob,
        json!({"type": "join_thread", "threadId": "T", "since": seen["position"]}),
    );
    sim.drive();
    let got = sim.take_json(bob);
    assert_eq!(
        texts(&got),
        ["two"],
        "replayed once, not again live: {got:?}"
    );
}

/// On two nodes, bob was in `T` and `U` and missed a message in each; he comes back on
/// node 1 and resumes both with `frames` (given his last positions) right after
/// identifying. `T`'s window read is slow and `U`'s new message reaches node 1 while `U`
/// waits its turn. Returns the texts he received.
fn resume_two_while_one_waits(frames: impl Fn(&Value, &Value) -> Vec<Value>) -> Vec<String> {
    let mut sim = Sim::cluster(2);
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(1, "bob");
    for conn in [alice, bob] {
        for t in ["T", "U"] {
            sim.send(conn, json!({"type": "join_thread", "threadId": t}));
            sim.drive();
        }
    }
    sim.clear();
    let say_in = |sim: &mut Sim, t: &str, text: String| {
        sim.send(
            alice,
            json!({"type": "send_message", "threadId": t, "message": text}),
        );
    };
    for t in ["T", "U"] {
        say_in(&mut sim, t, format!("{t}0"));
    }
    sim.drive();
    let seen: BTreeMap<String, Value> = sim
        .take_json(bob)
        .into_iter()
        .filter(|f| f["type"] == "message")
        .map(|f| (f["threadId"].as_str().expect("a thread").to_owned(), f))
        .collect();
    sim.close(bob);
    sim.coord.latency = ms(30);
    sim.broker_latency = ms(50);
    for t in ["T", "U"] {
        say_in(&mut sim, t, format!("{t}1"));
    }
    sim.drive_for(ms(60));
    let bob = sim.open_on(1, ip(9), None);
    sim.send(bob, json!({"type": "user_connected", "userId": "bob"}));
    for frame in frames(&seen["T"]["position"], &seen["U"]["position"]) {
        sim.send(bob, frame);
    }
    sim.drive();
    let got = sim.take_json(bob);
    texts(&got).into_iter().map(str::to_owned).collect()
}

#[test]
fn a_resume_holds_every_thread_from_the_start_not_from_its_turn() {
    let got = resume_two_while_one_waits(|t, u| {
        vec![json!({"type": "resume", "threads": [
            {"threadId": "T", "since": t},
            {"threadId": "U", "since": u},
        ]})]
    });
    assert_eq!(got, ["T1", "U1"], "each once");
    let got = resume_two_while_one_waits(|t, u| {
        vec![
            json!({"type": "join_thread", "threadId": "T", "since": t}),
            json!({"type": "join_thread", "threadId": "U", "since": u}),
        ]
    });
    assert_eq!(
        got,
        ["T1", "U1"],
        "each once, joins queued behind a waiting one too"
    );
}

#[test]
fn a_publication_lost_on_the_way_is_filled_from_the_shared_window() {
    let mut sim = Sim::cluster(2);
    let (alice, bob, _) = bob_saw_one(&mut sim);
    sim.broker_loses = vec!["deliver"];
    say(&mut sim, alice, "two");
    sim.broker_loses.clear();
    say(&mut sim, alice, "three");
    assert!(texts(&sim.take_json(bob)).is_empty(), "three waits for two");
    sim.drive_for(ms(300));
    let got = sim.take_json(bob);
    assert_eq!(
        texts(&got),
        ["two", "three"],
        "in order, the lost one read back"
    );
    assert_eq!(offsets(&got), [2, 3]);
    let stats = sim.hub(1).stats();
    assert_eq!((stats.order_gaps_filled, stats.order_gaps), (1, 0));
}

#[test]
fn without_the_coordinator_messages_go_out_unpositioned_and_resumes_fall_back() {
    let mut sim = Sim::cluster(2);
    let (alice, bob, seen) = bob_saw_one(&mut sim);
    sim.close(bob);
    sim.coord.unavailable = true;
    say(&mut sim, alice, "two");
    assert_eq!(sim.hub(0).stats().positions_unavailable, 1);
    let bob = come_back(
        &mut sim,
        1,
        json!({"since": seen["position"], "sinceMessageId": seen["id"]}),
    );
    let got = sim.take_json(bob);
    assert_eq!(texts(&got), ["two"]);
    assert!(
        got[1].get("position").is_none(),
        "no position without the coordinator"
    );
    assert_eq!(resumed(&got)["source"], "site");
}

#[test]
fn a_member_who_deleted_the_thread_is_replayed_nothing_from_before_on_any_node() {
    let mut sim = Sim::cluster(2);
    sim.site_thread("7", &["2", "3"]);
    let alice = sim.connect_on(0, "2");
    let bob = sim.connect_on(1, "3");
    let join = json!({"type": "join_thread", "threadId": "7"});
    for conn in [alice, bob] {
        sim.send(conn, join.clone());
        sim.drive();
    }
    let send = |text: &str| json!({"type": "send_message", "threadId": "7", "message": text});
    sim.clear();
    sim.send(alice, send("one"));
    sim.drive();
    let seen = sim.take_json(bob).pop().expect("bob got it");
    sim.close(bob);
    sim.send(alice, send("two"));
    sim.drive();
    let deleted = json!({"thread_id": 7, "user_id": 3, "unread": []});
    sim.handle(
        0,
        super::site_events::event("thread.deleted_for_member", deleted),
    );
    sim.drive();
    sim.send(alice, send("three"));
    sim.drive();
    let bob = sim.connect_on(1, "3");
    sim.clear();
    let mut resume = join;
    resume["since"] = seen["position"].clone();
    sim.send(bob, resume);
    sim.drive();
    assert_eq!(texts(&sim.take_json(bob)), ["three"]);
}

fn presence(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "user_connected" || f["type"] == "user_disconnected")
        .map(|f| {
            format!(
                "{} {}",
                f["type"].as_str().unwrap_or(""),
                f["userId"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_reconnect_within_the_presence_grace_is_not_broadcast() {
    let mut sim = Sim::with(|c| c.presence_grace = secs(5));
    let (alice, bob, _) = bob_saw_one(&mut sim);
    sim.close(bob);
    sim.drive_for(secs(4));
    assert!(
        sim.hub(0).is_online(&uid("bob")),
        "online through the grace"
    );
    let bob = sim.connect("bob");
    sim.drive_for(secs(10));
    assert_eq!(presence(&sim.take_json(alice)), Vec::<String>::new());
    // Gone for longer than the grace: offline once the grace ran out, not before.
    sim.close(bob);
    sim.drive_for(ms(4_900));
    assert_eq!(presence(&sim.take_json(alice)), Vec::<String>::new());
    sim.drive_for(ms(200));
    assert_eq!(presence(&sim.take_json(alice)), ["user_disconnected bob"]);
    assert!(!sim.hub(0).is_online(&uid("bob")));
    sim.connect("bob");
    assert_eq!(presence(&sim.take_json(alice)), ["user_connected bob"]);
}

#[test]
fn a_reconnect_to_another_node_within_the_grace_is_not_broadcast_either() {
    let mut sim = Sim::with_config(2, |c| c.presence_grace = secs(5));
    let alice = sim.connect_on(0, "alice");
    let carol = sim.connect_on(1, "carol");
    let bob = sim.connect_on(1, "bob");
    for conn in [alice, carol, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    sim.close(bob);
    sim.drive_for(secs(1));
    let back = sim.connect_on(0, "bob");
    sim.drive_for(secs(30));
    assert_eq!(presence(&sim.take_json(alice)), Vec::<String>::new());
    assert_eq!(presence(&sim.take_json(carol)), Vec::<String>::new());
    assert!(sim.hub(1).is_online(&uid("bob")));
    sim.close(back);
    sim.drive_for(secs(6));
    assert_eq!(presence(&sim.take_json(carol)), ["user_disconnected bob"]);
}

/// bob connects again and, in the same write, resumes from `last`: the join waits behind
/// the identification, so no live message can come between them.
fn return_with(sim: &mut Sim, node: usize, last: Option<&Value>) -> ConnId {
    let conn = sim.open_on(node, ip(1), None);
    sim.send(conn, json!({"type": "user_connected", "userId": "bob"}));
    let mut join = json!({"type": "join_thread", "threadId": "T"});
    if let Some(p) = last {
        join["since"] = p.clone();
    }
    sim.send(conn, join);
    conn
}

/// One step of a random session: alice (always connected) or bob sends, bob drops, or bob
/// comes back resuming from the last position he received.
#[derive(Debug, Clone)]
enum Step {
    AliceSays,
    BobSays,
    BobDrops,
    BobReturns,
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::AliceSays),
        2 => Just(Step::BobSays),
        2 => Just(Step::BobDrops),
        2 => Just(Step::BobReturns),
        1 => (0u64..300).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("BBRT_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every message acked to a sender reaches bob exactly once, in position order, live or
    /// replayed, whatever the schedule of drops and returns with messages in flight.
    #[test]
    fn every_acked_message_reaches_each_participant_once_in_order(
        steps in proptest::collection::vec(step(), 1..40),
        latency in 0u64..200,
    ) {
        run_schedule(Sim::new(), &steps, latency)?;
    }

    /// The same on two nodes: alice on one, bob coming back to either in turn, both
    /// sending, positions counted by the coordinator and the window shared.
    #[test]
    fn on_two_nodes_every_acked_message_reaches_each_participant_once_in_order(
        steps in proptest::collection::vec(step(), 1..40),
        latency in 0u64..200,
    ) {
        run_schedule(Sim::cluster(2), &steps, latency)?;
    }
}

fn run_schedule(mut sim: Sim, steps: &[Step], latency: u64) -> Result<(), TestCaseError> {
    let nodes = sim.nodes.len();
    sim.site_latency("send", ms(latency));
    let alice = sim.connect_on(0, "alice");
    let mut bob = Some(sim.connect_on(nodes - 1, "bob"));
    for conn in [alice, bob.expect("connected")] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    let (mut got, mut last): (Vec<(u64, String)>, Option<Value>) = (Vec::new(), None);
    let (mut n, mut returns) = (0, 0);
    let mut collect = |sim: &mut Sim, conn: ConnId, last: &mut Option<Value>| {
        for frame in sim.take_json(conn) {
            // Where a client that has received nothing yet resumes from.
            if frame["type"] == "joined" && last.is_none() {
                *last = Some(frame["position"].clone()).filter(|p| !p.is_null());
            }
            if frame["type"] == "message" {
                let offset = frame["position"]["offset"].as_u64().expect("a position");
                got.push((offset, frame["id"].as_str().expect("an id").to_owned()));
                *last = Some(frame["position"].clone());
            }
        }
    };
    for s in steps {
        match s {
            Step::AliceSays | Step::BobSays => {
                let from = if matches!(s, Step::AliceSays) {
                    Some(alice)
                } else {
                    bob
                };
                if let Some(conn) = from {
                    n += 1;
                    sim.send(
                        conn,
                        json!({"type": "send_message", "threadId": "T",
                        "message": format!("m{n}"), "requestId": n}),
                    );
                }
            }
            Step::BobDrops => {
                if let Some(conn) = bob.take() {
                    collect(&mut sim, conn, &mut last);
                    sim.close(conn);
                }
            }
            Step::BobReturns => {
                if bob.is_none() {
                    returns += 1;
                    bob = Some(return_with(&mut sim, returns % nodes, last.as_ref()));
                }
            }
            Step::Wait(t) => sim.drive_for(ms(*t)),
        }
        if let Some(conn) = bob {
            collect(&mut sim, conn, &mut last);
        }
    }
    sim.drive();
    let bob = match bob {
        Some(conn) => conn,
        None => {
            let conn = return_with(&mut sim, 0, last.as_ref());
            sim.drive();
            conn
        }
    };
    collect(&mut sim, bob, &mut last);
    let acked: BTreeSet<String> = sim
        .clients
        .values()
        .flat_map(|c| c.log.iter())
        .map(|(_, _, m)| to_json(m))
        .filter(|f| f["type"] == "ack")
        .filter_map(|f| f["id"].as_str().map(str::to_owned))
        .collect();
    let ids: Vec<&String> = got.iter().map(|(_, id)| id).collect();
    let distinct: BTreeSet<&String> = ids.iter().copied().collect();
    prop_assert_eq!(ids.len(), distinct.len(), "a message twice: {:?}", got);
    prop_assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "out of order: {:?}",
        got
    );
    for id in &acked {
        prop_assert!(
            distinct.contains(id),
            "acked {} never reached bob: {:?}",
            id,
            got
        );
    }
    Ok(())
}
