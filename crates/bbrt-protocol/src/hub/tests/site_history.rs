//! The Sim's site pages a thread's history as BuddyBoss does, on the Sim's own clock: the
//! dates it shows are the seconds it stamped, so a caller paging on from them
//! (`HistoryPage::older_cursor`) lands where BuddyBoss would.

use serde_json::json;

use super::sim::*;

#[test]
fn the_sims_site_pages_history_on_its_own_clock() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    let bob = sim.connect("bob");
    for conn in [alice, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    // Three messages in the first second, then one a second: twelve in all.
    for n in 0..12 {
        if n >= 3 {
            sim.drive_for(secs(1));
        }
        let text = format!("m{n}");
        sim.send(
            alice,
            json!({"type": "send_message", "threadId": "T", "message": text}),
        );
        sim.drive();
    }
    let stored = sim.site.stored.clone();
    assert_eq!(stored.len(), 12);
    assert_eq!(stored[0].sent_at, SENT_AT, "the first second is SENT_AT");
    let (bob_id, t) = (uid("bob"), tid("T"));
    let newest = sim.site.dev.history(&bob_id, &t, None).expect("a member");
    let ids = |p: &crate::api::HistoryPage| -> Vec<String> {
        p.messages
            .iter()
            .map(|m| m.id.as_str().to_owned())
            .collect()
    };
    let all: Vec<String> = stored.iter().map(|m| m.id.as_str().to_owned()).collect();
    assert_eq!(
        ids(&newest),
        all[2..],
        "one of the first second's three, then the rest"
    );
    let cursor = newest.older_cursor().expect("full: there is an older page");
    assert_eq!(cursor, SENT_AT);
    let older = sim
        .site
        .dev
        .history(&bob_id, &t, Some(cursor))
        .expect("a member");
    assert_eq!(ids(&older), all[..3], "the whole first second, inclusively");
    assert!(!newest.is_one_second());
}
