//! A thread's history, paged as BuddyBoss pages it: `HttpBuddyBoss` against the fake
//! site over real TCP, and the fake and the embedded site paging alike.

mod common;

use std::collections::BTreeSet;

use bbrt_buddyboss::fake::{FakeSite, Fault};
use bbrt_buddyboss::{BuddyBoss, BuddyBossError, Credential, HttpBuddyBoss};
use bbrt_protocol::api::{HISTORY_PAGE_SIZE, HistoryPage, SiteErrorKind};
use bbrt_protocol::devsite::{DevSite, Post, Stamp};
use bbrt_protocol::utc::rfc3339_from_unix;
use common::{client, seeded, thread, user};

/// A second long past (2023-11-14T22:13:20Z): older than the thread's first message,
/// which the fake stamps now.
const T: i64 = 1_700_000_000;

fn alice() -> Credential {
    Credential::bearer("alice-token")
}

fn ids(page: &HistoryPage) -> Vec<String> {
    page.messages
        .iter()
        .map(|m| m.id.as_str().to_owned())
        .collect()
}

/// A thread of alice (2) and bob (3) holding a first message (now) and one message from
/// alice per entry of `secs`, stamped that second; its id and every message id, oldest
/// first.
fn thread_with(site: &FakeSite, secs: &[i64]) -> (u64, Vec<String>) {
    let (t, _) = site.create_thread(2, &[3], "first");
    for (n, &at) in secs.iter().enumerate() {
        site.post_message_at(t, 2, &format!("m{n}"), at)
            .expect("the thread exists");
    }
    let all = site.messages(t).iter().map(|m| m.id.to_string()).collect();
    (t, all)
}

async fn page(
    bb: &HttpBuddyBoss,
    t: u64,
    before: Option<&str>,
) -> Result<HistoryPage, BuddyBossError> {
    bb.history(Some(&alice()), &user("2"), &thread(&t.to_string()), before)
        .await
}

/// Walks back as a catching-up caller does: `before` = the oldest date seen, inclusive,
/// dropping ids already seen; stops at the last page or a page all of one second.
/// Returns the ids oldest first, whether it reached the start, and the pages read.
async fn walk(bb: &HttpBuddyBoss, t: u64) -> (Vec<String>, bool, usize) {
    let mut seen = BTreeSet::new();
    let mut gathered: Vec<(String, String)> = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = page(bb, t, before.as_deref()).await.expect("a page");
        pages += 1;
        for m in p.messages.iter().rev() {
            if seen.insert(m.id.as_str().to_owned()) {
                gathered.push((m.sent_at.clone(), m.id.as_str().to_owned()));
            }
        }
        if p.is_one_second() {
            break (order(gathered), false, pages);
        }
        match p.older_cursor() {
            Some(cursor) => before = Some(cursor.to_owned()),
            None => break (order(gathered), true, pages),
        }
    }
}

/// By date, then id (as the site orders them).
fn order(mut gathered: Vec<(String, String)>) -> Vec<String> {
    gathered.sort_by_key(|(at, id)| (at.clone(), id.parse::<u64>().expect("numeric")));
    gathered.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn history_pages_back_across_pages_oldest_first() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, all) = thread_with(&site, &(T..T + 24).collect::<Vec<_>>());
    let newest = page(&bb, t, None).await.expect("a member reads it");
    assert_eq!(ids(&newest), all[15..], "the newest ten, oldest first");
    assert_eq!(newest.messages.len(), HISTORY_PAGE_SIZE);
    assert_eq!(
        newest.next_before.as_deref(),
        Some(rfc3339_from_unix(T + 15 - 1).as_str()),
        "BuddyBoss's cursor: the oldest date minus one second, as RFC 3339"
    );
    assert_eq!(newest.messages[0].sent_at, rfc3339_from_unix(T + 15));
    assert!(newest.messages.iter().all(|m| m.participants.is_empty()));
    assert_eq!(newest.messages[0].text, "m15");
    // The cursor goes to the site in its own naive form.
    let second = page(&bb, t, newest.older_cursor()).await.expect("a page");
    let asked = site.requests().pop().expect("a request");
    assert_eq!(
        asked.query,
        vec![(
            "before".to_owned(),
            rfc3339_from_unix(T + 15).trim_end_matches('Z').to_owned()
        )]
    );
    assert_eq!(ids(&second), all[6..16], "inclusive: the oldest seen again");
    let third = page(&bb, t, second.older_cursor()).await.expect("a page");
    assert_eq!(ids(&third), all[..7]);
    assert_eq!(third.next_before, None, "not full: nothing older");
    assert_eq!(third.older_cursor(), None);
    let (walked, complete, pages) = walk(&bb, t).await;
    assert_eq!((walked, complete, pages), (all, true, 3));
}

#[tokio::test]
async fn a_full_last_page_still_has_a_cursor_and_the_next_is_empty() {
    let site = seeded().await;
    let bb = client(&site);
    // Nine old messages and the first one: exactly one full page.
    let (t, all) = thread_with(&site, &(T..T + 9).collect::<Vec<_>>());
    let only = page(&bb, t, None).await.expect("a page");
    assert_eq!(ids(&only), all);
    assert_eq!(
        only.next_before.as_deref(),
        Some(rfc3339_from_unix(T - 1).as_str())
    );
    let past = page(&bb, t, only.next_before.as_deref())
        .await
        .expect("a page");
    assert_eq!(past.messages, Vec::new());
    assert_eq!(past.next_before, None);
}

/// BuddyBoss's cursor skips the rest of the oldest second; paging inclusively does not.
#[tokio::test]
async fn the_boundary_second_is_paged_inclusively() {
    let site = seeded().await;
    let bb = client(&site);
    // Two in T, four in T+5, eight in T+6, then the first message (now).
    let mut secs = vec![T; 2];
    secs.extend([T + 5; 4]);
    secs.extend([T + 6; 8]);
    let (t, all) = thread_with(&site, &secs);
    let newest = page(&bb, t, None).await.expect("a page");
    assert_eq!(
        ids(&newest),
        all[5..],
        "one of T+5's four, then T+6's, then now"
    );
    let by_buddyboss = page(&bb, t, newest.next_before.as_deref())
        .await
        .expect("a page");
    assert_eq!(
        ids(&by_buddyboss),
        all[..2],
        "BuddyBoss's own cursor skips T+5's other three"
    );
    let inclusive = page(&bb, t, newest.older_cursor()).await.expect("a page");
    assert_eq!(ids(&inclusive), all[..6]);
    let (walked, complete, _) = walk(&bb, t).await;
    assert_eq!((walked, complete), (all, true));
}

#[tokio::test]
async fn a_full_page_of_one_second_cannot_be_paged_past() {
    let site = seeded().await;
    let bb = client(&site);
    let mut secs = vec![T - 10; 3];
    secs.extend([T; 11]);
    let (t, all) = thread_with(&site, &secs);
    let at_t = rfc3339_from_unix(T);
    let stuck = page(&bb, t, Some(&at_t)).await.expect("a page");
    assert_eq!(ids(&stuck), all[4..14]);
    assert!(stuck.is_one_second());
    let again = page(&bb, t, stuck.older_cursor()).await.expect("a page");
    assert_eq!(again, stuck, "the inclusive cursor answers the same page");
    // A caller walking from the newest page stops there and says so.
    let (walked, complete, _) = walk(&bb, t).await;
    assert!(!complete, "reported incomplete");
    assert_eq!(walked, all[4..], "what it could gather");
}

#[tokio::test]
async fn history_is_refused_as_buddyboss_refuses_it() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, _) = thread_with(&site, &[]);
    let tid = thread(&t.to_string());
    let carol = Credential::bearer("carol-token");
    let e = bb
        .history(Some(&carol), &user("4"), &tid, None)
        .await
        .expect_err("not a member");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::Forbidden, "bp_rest_authorization_required")
    );
    let e = bb
        .history(Some(&alice()), &user("2"), &thread("999"), None)
        .await
        .expect_err("no such thread");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);
    let e = bb
        .history(
            Some(&Credential::bearer("nobody-token")),
            &user("2"),
            &tid,
            None,
        )
        .await
        .expect_err("a wrong token");
    assert_eq!(e.kind(), SiteErrorKind::Unauthenticated);
    let made = site.requests().len();
    let e = bb
        .history(None, &user("2"), &tid, None)
        .await
        .expect_err("no credential");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::Unauthenticated, "missing_credential")
    );
    let e = bb
        .history(Some(&alice()), &user("2"), &tid, Some("yesterday"))
        .await
        .expect_err("not a date");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::Invalid, "invalid_before")
    );
    let e = bb
        .history(Some(&alice()), &user("2"), &thread("THREAD_ID"), None)
        .await
        .expect_err("not an id");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::InvalidId, "invalid_id")
    );
    assert_eq!(
        site.requests().len(),
        made,
        "none of these reached the site"
    );
}

#[tokio::test]
async fn a_failing_site_is_unavailable_after_the_read_retries() {
    let site = seeded().await;
    let bb = client(&site);
    let (t, _) = thread_with(&site, &[]);
    site.clear_requests();
    site.inject(Fault::ServerError, 3);
    let e = page(&bb, t, None).await.expect_err("the site fails");
    assert_eq!(e.kind(), SiteErrorKind::Unavailable);
    assert!(e.retryable());
    assert_eq!(site.requests().len(), 3, "one read and its two retries");
    site.inject(Fault::ServerError, 1);
    let p = page(&bb, t, None).await.expect("a retry succeeds");
    assert_eq!(p.messages.len(), 1);
    site.inject(Fault::NotJson, 1);
    let e = page(&bb, t, None).await.expect_err("not JSON");
    assert_eq!(e.kind(), SiteErrorKind::Protocol);
}

/// The fake site (BuddyBoss as bbrt's tests see it) and the embedded site's rules
/// (`bbrt_protocol::devsite`, which `MemoryBuddyBoss` and the Hub's simulation serve) give
/// the same pages for the same messages: the same positions, dates and cursors.
#[tokio::test]
async fn the_fake_and_the_embedded_site_page_alike() {
    let site = seeded().await;
    let bb = client(&site);
    let mut secs = vec![T; 3];
    secs.extend([T + 1; 9]);
    secs.extend([T + 2, T + 3, T + 3]);
    secs.extend([T + 9; 12]);
    secs.extend(T + 20..T + 31);
    let (t, all) = thread_with(&site, &secs);
    // The same messages, in the same order, stamped the same seconds.
    let mut dev = DevSite::new();
    let (alice_dev, bob_dev, t_dev) = (user("2"), user("3"), thread(&t.to_string()));
    let mut dev_ids = Vec::new();
    for m in site.messages(t) {
        let post = Post {
            sender: &alice_dev,
            thread: Some(&t_dev),
            recipients: std::slice::from_ref(&bob_dev),
            text: "m",
        };
        let stamp = Stamp {
            unix_secs: m.sent_at,
            sent_at: rfc3339_from_unix(m.sent_at),
            html: None,
        };
        dev_ids.push(
            dev.send(post, stamp)
                .expect("stored")
                .id
                .as_str()
                .to_owned(),
        );
    }
    // A page as positions in the thread, with dates and the cursor.
    type Shape = (Vec<(usize, String)>, Option<String>);
    let shape = |page: &HistoryPage, ids: &[String]| -> Shape {
        let at = page
            .messages
            .iter()
            .map(|m| {
                let i = ids
                    .iter()
                    .position(|id| id == m.id.as_str())
                    .expect("known");
                (i, m.sent_at.clone())
            })
            .collect();
        (at, page.next_before.clone())
    };
    let mut befores: Vec<Option<String>> = vec![None];
    for s in [T - 1, T, T + 1, T + 2, T + 3, T + 8, T + 9, T + 10, T + 25] {
        befores.push(Some(rfc3339_from_unix(s)));
    }
    let mut checked = 0;
    while let Some(before) = befores.pop() {
        let fake = page(&bb, t, before.as_deref()).await.expect("a page");
        let embedded = dev
            .history(&alice_dev, &t_dev, before.as_deref())
            .expect("a page");
        assert_eq!(
            shape(&fake, &all),
            shape(&embedded, &dev_ids),
            "before {before:?}"
        );
        assert_eq!(fake.is_one_second(), embedded.is_one_second());
        assert_eq!(
            fake.older_cursor().map(str::to_owned),
            embedded.older_cursor().map(str::to_owned)
        );
        checked += 1;
        // Follow both cursors from every page, a bounded number of times.
        if checked < 40 {
            befores.extend(fake.next_before.clone().map(Some));
            if !fake.is_one_second() {
                befores.extend(fake.older_cursor().map(|c| Some(c.to_owned())));
            }
        }
    }
    assert!(checked >= 20, "paged {checked} times");
}
