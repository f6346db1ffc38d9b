//! MemoryBuddyBoss: every rule of DESIGN.md's "Embedded default".

mod common;

use bbrt_buddyboss::{BuddyBoss, Credential, MemoryBuddyBoss, SendRequest, perform};
use bbrt_protocol::api::{ApiRequest, ApiResponse, HistoryPage, SiteErrorKind};
use bbrt_protocol::ids::UserId;
use common::{thread, user};

#[tokio::test]
async fn dev_tokens_name_their_user() {
    let site = MemoryBuddyBoss::new();
    let me = site
        .verify(
            Some(&Credential::bearer("dev:alice")),
            None,
            Some(&user("bob")),
        )
        .await
        .expect("dev token");
    assert_eq!(me.id, user("alice"));
    assert_eq!(me.name, "alice");
    assert_eq!(me.avatar, None);
    let e = site
        .verify(Some(&Credential::bearer("dev:not an id")), None, None)
        .await
        .expect_err("bad id");
    assert_eq!(e.kind(), SiteErrorKind::Unauthenticated);
    let e = site
        .verify(Some(&Credential::bearer("dev:")), None, None)
        .await
        .expect_err("empty id");
    assert_eq!(e.kind(), SiteErrorKind::Unauthenticated);
}

#[tokio::test]
async fn other_tokens_name_the_current_user_or_themselves() {
    let site = MemoryBuddyBoss::new();
    let token = Credential::bearer("YOUR_API_TOKEN");
    let me = site
        .verify(Some(&token), None, Some(&user("USER_ID")))
        .await
        .expect("identified connection");
    assert_eq!(me.id, user("USER_ID"));
    let me = site
        .verify(Some(&token), None, None)
        .await
        .expect("anonymous connection");
    assert_eq!(me.id, user("YOUR_API_TOKEN"));
    let e = site
        .verify(Some(&Credential::bearer("has spaces")), None, None)
        .await
        .expect_err("not an id");
    assert_eq!(e.kind(), SiteErrorKind::Unauthenticated);
    // The scheme does not matter to the embedded site.
    let me = site
        .verify(Some(&Credential::access_token("dev:7")), None, None)
        .await
        .expect("dev token");
    assert_eq!(me.id, user("7"));
}

#[tokio::test]
async fn a_bare_claimed_user_is_trusted() {
    let site = MemoryBuddyBoss::new();
    let me = site
        .verify(None, Some(&user("USER_ID")), None)
        .await
        .expect("trusted");
    assert_eq!(me.id, user("USER_ID"));
    let e = site.verify(None, None, None).await.expect_err("nobody");
    assert_eq!(e.kind(), SiteErrorKind::Unauthenticated);
}

#[tokio::test]
async fn threads_are_created_by_their_first_join_and_joiners_become_participants() {
    let site = MemoryBuddyBoss::new();
    let t = thread("THREAD_ID");
    let e = site
        .participants(None, &user("a"), &t, false)
        .await
        .expect_err("no such thread yet");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);
    let info = site
        .participants(None, &user("a"), &t, true)
        .await
        .expect("created");
    assert_eq!(info.participants, vec![user("a")]);
    assert_eq!(info.last_message, None);
    let info = site
        .participants(None, &user("b"), &t, true)
        .await
        .expect("joined");
    assert_eq!(info.participants, vec![user("a"), user("b")]);
    let e = site
        .participants(None, &user("c"), &t, false)
        .await
        .expect_err("not a participant");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);
    let info = site
        .participants(None, &user("a"), &t, false)
        .await
        .expect("a participant");
    assert_eq!(info.participants.len(), 2);
}

#[tokio::test]
async fn a_first_message_creates_the_thread_with_sender_and_recipients() {
    let site = MemoryBuddyBoss::new();
    let t = thread("THREAD_ID");
    let m = site
        .send(&SendRequest {
            recipients: &[user("RECIPIENT_ID")],
            ..SendRequest::reply(
                Some(&Credential::bearer("YOUR_API_TOKEN")),
                &user("USER_ID"),
                &t,
                "Hello <b>& bye",
            )
        })
        .await
        .expect("stored");
    assert_eq!(m.id.as_str(), "1");
    assert_eq!(m.thread, t);
    assert_eq!(m.sender, user("USER_ID"));
    assert_eq!(m.text, "Hello <b>& bye");
    assert_eq!(m.html.as_deref(), Some("<p>Hello &lt;b&gt;&amp; bye</p>"));
    assert_eq!(m.participants, vec![user("USER_ID"), user("RECIPIENT_ID")]);
    let b = m.sent_at.as_bytes();
    assert_eq!(b.len(), 20, "{}", m.sent_at);
    assert!(
        b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
        "{}",
        m.sent_at
    );
    let info = site
        .participants(None, &user("RECIPIENT_ID"), &t, false)
        .await
        .expect("recipient is a participant");
    assert_eq!(info.last_message, Some(m.id));
}

#[tokio::test]
async fn a_non_participant_who_sends_to_an_existing_thread_joins_it() {
    let site = MemoryBuddyBoss::new();
    let t = thread("THREAD_ID");
    site.participants(None, &user("a"), &t, true)
        .await
        .expect("created");
    let m = site
        .send(&SendRequest {
            recipients: &[user("c")],
            ..SendRequest::reply(None, &user("b"), &t, "hi")
        })
        .await
        .expect("stored");
    assert_eq!(m.participants, vec![user("a"), user("b"), user("c")]);
    let m2 = site
        .send(&SendRequest::reply(None, &user("a"), &t, "again"))
        .await
        .expect("stored");
    assert_eq!(m2.id.as_str(), "2", "message ids count up");
    assert_eq!(m2.participants.len(), 3);
}

#[tokio::test]
async fn messages_without_a_thread_start_or_reuse_one() {
    let site = MemoryBuddyBoss::new();
    // A client already uses "1" as a thread id: new numeric ids skip it.
    site.participants(None, &user("x"), &thread("1"), true)
        .await
        .expect("created");
    let m = site
        .send(&SendRequest::new_thread(
            None,
            &user("a"),
            &[user("b")],
            "hi",
        ))
        .await
        .expect("stored");
    assert_eq!(m.thread.as_str(), "2");
    let again = site
        .send(&SendRequest::new_thread(
            None,
            &user("b"),
            &[user("a")],
            "hi back",
        ))
        .await
        .expect("stored");
    assert_eq!(again.thread, m.thread, "the same pair reuses its thread");
    let group = site
        .send(&SendRequest::new_thread(
            None,
            &user("a"),
            &[user("b"), user("c")],
            "all",
        ))
        .await
        .expect("stored");
    assert_eq!(group.thread.as_str(), "3");
    let e = site
        .send(&SendRequest::new_thread(None, &user("a"), &[], "to nobody"))
        .await
        .expect_err("no recipients");
    assert_eq!(
        (e.kind(), e.code()),
        (SiteErrorKind::Invalid, "bp_rest_empty_recipients")
    );
    let e = site
        .send(&SendRequest::reply(None, &user("a"), &m.thread, "  "))
        .await
        .expect_err("empty");
    assert_eq!(
        (e.kind(), e.code()),
        (
            SiteErrorKind::EmptyMessage,
            "bp_rest_messages_empty_message"
        )
    );
}

#[tokio::test]
async fn mark_read_needs_a_participant() {
    let site = MemoryBuddyBoss::new();
    let t = thread("T");
    site.participants(None, &user("a"), &t, true)
        .await
        .expect("created");
    site.mark_read(None, &user("a"), &t)
        .await
        .expect("participant");
    let e = site
        .mark_read(None, &user("b"), &t)
        .await
        .expect_err("not a participant");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);
    let e = site
        .mark_read(None, &user("a"), &thread("nope"))
        .await
        .expect_err("no thread");
    assert_eq!(e.kind(), SiteErrorKind::Forbidden);
}

/// An earlier attempt that ended unconfirmed, recorded at the epoch.
fn retry(request: SendRequest<'_>) -> SendRequest<'_> {
    SendRequest {
        unconfirmed_since: Some(0),
        ..request
    }
}

/// A retry after an unconfirmed attempt answers the stored message instead of storing
/// another: same sender and text, in the thread or the pair's thread, recent enough.
#[tokio::test]
async fn a_retry_finds_a_stored_message() {
    let site = MemoryBuddyBoss::new();
    let (a, b) = (user("a"), user("b"));
    let to_b = std::slice::from_ref(&b);
    let m = site
        .send(&SendRequest::new_thread(None, &a, to_b, "hi"))
        .await
        .expect("stored");
    let found = site
        .send(&retry(SendRequest::reply(None, &a, &m.thread, "hi")))
        .await
        .expect("found");
    // The whole message comes back, participants included (history keeps them once).
    assert_eq!(found, m);
    let found = site
        .send(&retry(SendRequest::new_thread(None, &a, to_b, "hi")))
        .await
        .expect("found");
    assert_eq!(found.id, m.id);
    let bs = site
        .send(&retry(SendRequest::new_thread(
            None,
            &b,
            std::slice::from_ref(&a),
            "hi",
        )))
        .await
        .expect("stored");
    assert_ne!(bs.id, m.id, "not b's: stored anew");
    let late = SendRequest {
        unconfirmed_since: Some(i64::MAX),
        ..SendRequest::new_thread(None, &a, to_b, "hi")
    };
    let late = site.send(&late).await.expect("stored");
    assert_ne!(late.id, m.id, "recorded long after it: stored anew");
}

/// The seed's example flow, as the server's executor would run it through `perform`.
#[tokio::test]
async fn the_seed_flow_through_perform() {
    let site = MemoryBuddyBoss::new();
    let verify = ApiRequest::Verify {
        credential: None,
        claimed_user: Some(user("USER_ID")),
        current_user: None,
    };
    let Ok(ApiResponse::User(me)) = perform(&site, &verify, None).await else {
        panic!("verified")
    };
    assert_eq!(me.id, user("USER_ID"));

    let token = Credential::bearer("YOUR_API_TOKEN");
    let verify = ApiRequest::Verify {
        credential: None,
        claimed_user: None,
        current_user: Some(user("USER_ID")),
    };
    let Ok(ApiResponse::User(me)) = perform(&site, &verify, Some(&token)).await else {
        panic!("verified")
    };
    assert_eq!(me.id, user("USER_ID"));

    let join = ApiRequest::Participants {
        credential: None,
        user: user("USER_ID"),
        thread: thread("THREAD_ID"),
        join: true,
    };
    let Ok(ApiResponse::Participants(info)) = perform(&site, &join, None).await else {
        panic!("joined")
    };
    assert_eq!(info.participants, vec![user("USER_ID")]);

    let send = ApiRequest::Send {
        credential: None,
        sender: user("USER_ID"),
        thread: Some(thread("THREAD_ID")),
        recipients: vec![user("RECIPIENT_ID")],
        text: "Hello".into(),
        client_message_id: None,
        unconfirmed_since: None,
    };
    let Ok(ApiResponse::Stored(m)) = perform(&site, &send, Some(&token)).await else {
        panic!("stored")
    };
    assert_eq!(m.participants, vec![user("USER_ID"), user("RECIPIENT_ID")]);

    let read = ApiRequest::MarkRead {
        credential: None,
        user: user("RECIPIENT_ID"),
        thread: thread("THREAD_ID"),
    };
    assert_eq!(
        perform(&site, &read, None).await,
        Ok(ApiResponse::MarkedRead)
    );

    let verify = ApiRequest::Verify {
        credential: None,
        claimed_user: None,
        current_user: None,
    };
    let e = perform(&site, &verify, None).await.expect_err("nobody");
    assert_eq!(e.kind, SiteErrorKind::Unauthenticated);
}

/// `perform_now` answers every request at once, exactly as `perform` does; the server
/// relies on it to skip its asynchronous path for the embedded site.
#[tokio::test]
async fn perform_now_answers_at_once_like_perform() {
    let now = MemoryBuddyBoss::new();
    let later = MemoryBuddyBoss::new();
    let token = Credential::bearer("dev:a");
    let requests = [
        ApiRequest::Verify {
            credential: None,
            claimed_user: None,
            current_user: None,
        },
        ApiRequest::Participants {
            credential: None,
            user: user("a"),
            thread: thread("7"),
            join: true,
        },
        ApiRequest::Send {
            credential: None,
            sender: user("a"),
            thread: Some(thread("7")),
            recipients: vec![user("b")],
            text: "hello".into(),
            client_message_id: None,
            unconfirmed_since: None,
        },
        ApiRequest::Send {
            credential: None,
            sender: user("a"),
            thread: None,
            recipients: vec![],
            text: "nobody".into(),
            client_message_id: None,
            unconfirmed_since: None,
        },
        ApiRequest::MarkRead {
            credential: None,
            user: user("c"),
            thread: thread("7"),
        },
        ApiRequest::History {
            credential: None,
            user: user("a"),
            thread: thread("7"),
            before: None,
        },
        ApiRequest::History {
            credential: None,
            user: user("c"),
            thread: thread("7"),
            before: None,
        },
        ApiRequest::History {
            credential: None,
            user: user("a"),
            thread: thread("7"),
            before: Some("not a date".into()),
        },
    ];
    for request in &requests {
        let answered = now
            .perform_now(request, Some(&token))
            .expect("the embedded site never waits");
        let expected = perform(&later, request, Some(&token)).await;
        match (answered, expected) {
            (Ok(ApiResponse::History(a)), Ok(ApiResponse::History(b))) => {
                // The same page but for the seconds its messages were stored in.
                let ids = |p: &HistoryPage| -> Vec<String> {
                    p.messages
                        .iter()
                        .map(|m| m.id.as_str().to_owned())
                        .collect()
                };
                assert_eq!(ids(&a), ids(&b));
            }
            (Ok(ApiResponse::Stored(a)), Ok(ApiResponse::Stored(b))) => {
                // Same message but for the second it was stored in.
                assert_eq!(
                    (a.id, a.thread, a.participants),
                    (b.id, b.thread, b.participants)
                );
            }
            (a, b) => assert_eq!(a, b, "{request:?}"),
        }
    }
}

/// The embedded site pages a thread's history as BuddyBoss does: ten at a time, oldest
/// first, members only, with BuddyBoss's one-second cursor once a page is full.
#[tokio::test]
async fn history_pages_as_buddyboss_does() {
    let site = MemoryBuddyBoss::new();
    let (a, b, t) = (user("a"), user("b"), thread("7"));
    let mut sent = Vec::new();
    for n in 0..12 {
        let text = format!("m{n}");
        let request = SendRequest {
            recipients: std::slice::from_ref(&b),
            ..SendRequest::reply(None, &a, &t, &text)
        };
        sent.push(site.send(&request).await.expect("stored"));
    }
    let history = |who: &UserId, before: Option<&str>| {
        let request = ApiRequest::History {
            credential: None,
            user: who.clone(),
            thread: t.clone(),
            before: before.map(str::to_owned),
        };
        let answer = site.perform_now(&request, None).expect("answered at once");
        match answer {
            Ok(ApiResponse::History(page)) => Ok(page),
            Ok(other) => panic!("not a page: {other:?}"),
            Err(e) => Err(e),
        }
    };
    let newest = history(&b, None).expect("a member");
    let ids = |p: &HistoryPage| -> Vec<String> {
        p.messages
            .iter()
            .map(|m| m.id.as_str().to_owned())
            .collect()
    };
    let sent_ids: Vec<String> = sent.iter().map(|m| m.id.as_str().to_owned()).collect();
    assert_eq!(ids(&newest), sent_ids[2..], "the newest ten, oldest first");
    assert!(newest.messages.iter().all(|m| m.participants.is_empty()));
    assert_eq!(newest.messages[0].text, "m2");
    assert_eq!(newest.messages[0].html.as_deref(), Some("<p>m2</p>"));
    // Full: BuddyBoss's cursor is one second before the oldest date.
    let oldest = newest.messages[0].sent_at.clone();
    let cursor = newest
        .next_before
        .clone()
        .expect("a full page has a cursor");
    assert!(cursor < oldest, "{cursor} is before {oldest}");
    // Its cursor lists only what is older than the page's oldest second (here, at most
    // the two messages before the page: the clock is real, so maybe none).
    let past = history(&b, Some(&cursor)).expect("a member");
    assert!(ids(&past).iter().all(|id| sent_ids[..2].contains(id)));
    assert!(past.messages.iter().all(|m| m.sent_at <= cursor));
    assert_eq!(newest.older_cursor(), Some(oldest.as_str()));
    let e = history(&user("c"), None).expect_err("not a member");
    assert_eq!(e.kind, SiteErrorKind::Forbidden);
    let e = history(&a, Some("2026-11-25T00:48:52+02:00")).expect_err("not UTC");
    assert_eq!(
        (e.kind, e.code.as_str()),
        (SiteErrorKind::Invalid, "rest_invalid_param")
    );
}
