use std::time::{Duration, Instant};

use bbrt_protocol::site_event::{SiteEventError, SiteEventKind};

use super::*;

const SECRET_A: &str = "event-secret-a-at-least-32-bytes-long-aaaa";
const SECRET_B: &str = "event-secret-b-at-least-32-bytes-long-bbbb";
const ID: &str = "00112233445566778899aabbccddeeff";
const NOW: i64 = 1_900_000_000;

fn verifier() -> SiteEventVerifier {
    SiteEventVerifier::new(KeyRing::parse(&format!("new:{SECRET_B}, old:{SECRET_A}")).unwrap())
}

fn body(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","type":"member.deleted","site":"https://s.example","occurred_at":{NOW},"data":{{"user_id":4}}}}"#)
        .into_bytes()
}

struct Signed {
    kid: String,
    ts: String,
    id: String,
    sig: String,
}

impl Signed {
    fn new(kid: &str, secret: &str, ts: i64, id: &str, body: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            ts: ts.to_string(),
            id: id.into(),
            sig: sign_event(secret, ts, id, body),
        }
    }

    fn headers(&self) -> SignedHeaders<'_> {
        SignedHeaders {
            key_id: &self.kid,
            timestamp: &self.ts,
            event_id: &self.id,
            signature: &self.sig,
        }
    }
}

#[test]
fn both_keys_of_the_ring_verify_within_the_window() {
    let v = verifier();
    let b = body(ID);
    for (kid, secret) in [("new", SECRET_B), ("old", SECRET_A)] {
        for skew in [-WINDOW_SECS, 0, WINDOW_SECS] {
            let s = Signed::new(kid, secret, NOW + skew, ID, &b);
            let event = v.verify(s.headers(), &b, NOW).expect("valid");
            assert_eq!(
                event.kind,
                SiteEventKind::MemberDeleted(bbrt_protocol::site_event::SiteMember { user_id: 4 })
            );
        }
    }
}

#[test]
fn each_check_refuses_with_its_reason() {
    let v = verifier();
    let b = body(ID);
    let good = Signed::new("new", SECRET_B, NOW, ID, &b);
    let check = |s: &Signed, body: &[u8]| v.verify(s.headers(), body, NOW).err();

    let stale = Signed::new("new", SECRET_B, NOW - WINDOW_SECS - 1, ID, &b);
    assert_eq!(check(&stale, &b), Some(SiteEventRefusal::Stale));
    let ahead = Signed::new("new", SECRET_B, NOW + WINDOW_SECS + 1, ID, &b);
    assert_eq!(check(&ahead, &b), Some(SiteEventRefusal::Stale));
    let unknown = Signed::new("nope", SECRET_B, NOW, ID, &b);
    assert_eq!(check(&unknown, &b), Some(SiteEventRefusal::UnknownKid));
    let wrong_key = Signed::new("new", SECRET_A, NOW, ID, &b);
    assert_eq!(check(&wrong_key, &b), Some(SiteEventRefusal::BadSignature));
    let mut tampered = b.clone();
    *tampered.last_mut().unwrap() = b' ';
    assert_eq!(
        check(&good, &tampered),
        Some(SiteEventRefusal::BadSignature)
    );
    // The timestamp and the id are signed: changing either breaks the MAC.
    let mut moved = Signed::new("new", SECRET_B, NOW, ID, &b);
    moved.ts = (NOW + 1).to_string();
    assert_eq!(check(&moved, &b), Some(SiteEventRefusal::BadSignature));
    for bad_sig in [
        "",
        "v1=",
        "v2=00",
        &good.sig.replace("v1=", "v2="),
        &good.sig.to_uppercase(),
        &good.sig[..good.sig.len() - 2],
    ] {
        let mut s = Signed::new("new", SECRET_B, NOW, ID, &b);
        s.sig = bad_sig.to_owned();
        assert_eq!(
            check(&s, &b),
            Some(SiteEventRefusal::BadSignature),
            "{bad_sig}"
        );
    }
    for bad_ts in ["", "-5", "+1900000000", "1.5", "1900000000000000"] {
        let mut s = Signed::new("new", SECRET_B, NOW, ID, &b);
        s.ts = bad_ts.to_owned();
        assert_eq!(check(&s, &b), Some(SiteEventRefusal::BadHeader), "{bad_ts}");
    }
    for bad_id in ["", "00112233445566778899AABBCCDDEEFF", "0011"] {
        let s = Signed::new("new", SECRET_B, NOW, bad_id, &b);
        assert_eq!(check(&s, &b), Some(SiteEventRefusal::BadHeader), "{bad_id}");
    }
    // Signed, but the body names another id.
    let other = "ffeeddccbbaa99887766554433221100";
    let s = Signed::new("new", SECRET_B, NOW, other, &b);
    assert_eq!(
        check(&s, &b),
        Some(SiteEventRefusal::Body(SiteEventError::IdMismatch))
    );
    let junk = b"not json".to_vec();
    let s = Signed::new("new", SECRET_B, NOW, ID, &junk);
    assert_eq!(
        check(&s, &junk),
        Some(SiteEventRefusal::Body(SiteEventError::Malformed))
    );
}

#[test]
fn refusals_map_to_the_documented_statuses_and_labels_are_distinct() {
    let mut names: Vec<&str> = SiteEventRefusal::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), SiteEventRefusal::ALL.len());
    for (i, r) in SiteEventRefusal::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    assert_eq!(SiteEventRefusal::TooLarge.status(), 413);
    assert_eq!(SiteEventRefusal::Stale.status(), 401);
    assert_eq!(
        SiteEventRefusal::Body(SiteEventError::UnknownType).status(),
        400
    );
    assert_eq!(SiteEventRefusal::Reused.status(), 409);
}

#[test]
fn the_memory_ledger_tells_duplicates_from_reuse_and_forgets_after_the_ttl() {
    let ledger = MemorySiteEventLedger::default();
    let t0 = Instant::now();
    let ttl = Duration::from_secs(600);
    let (d1, d2) = (body_digest(b"one"), body_digest(b"two"));
    assert_eq!(ledger.record_at(ID, &d1, ttl, t0), Recorded::New);
    assert_eq!(
        ledger.record_at(ID, &d1, ttl, t0 + Duration::from_secs(599)),
        Recorded::Duplicate
    );
    assert_eq!(
        ledger.record_at(ID, &d2, ttl, t0 + Duration::from_secs(599)),
        Recorded::Reused
    );
    assert_eq!(
        ledger.record_at("other", &d1, ttl, t0 + Duration::from_secs(1)),
        Recorded::New
    );
    assert_eq!(ledger.record_at(ID, &d2, ttl, t0 + ttl), Recorded::New);
    assert_eq!(ledger.len(), 2, "the expired entry went, the others stayed");
    assert_eq!(ledger.record_at("x", &d1, ttl, t0 + ttl * 3), Recorded::New);
    assert_eq!(ledger.len(), 1);
}

#[test]
fn the_digest_is_sha256() {
    assert_eq!(
        body_digest(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// Events built and signed by the plugin's PHP (`Events::body`, `Events::signed_headers`)
/// through `integrations/wordpress/bbrt/tests/fixtures/make-event-fixture.php`.
#[test]
fn events_signed_by_the_plugin_verify() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../integrations/wordpress/bbrt/tests/fixtures/event-fixture.json"
    ))
    .unwrap();
    let v = SiteEventVerifier::new(KeyRing::parse(fixture["ring"].as_str().unwrap()).unwrap());
    let now = fixture["now"].as_i64().unwrap();
    let events = fixture["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        let h = &e["headers"];
        let text = |k: &str| h[k].as_str().unwrap();
        let headers = SignedHeaders {
            key_id: text("X-BBRT-Key-Id"),
            timestamp: text("X-BBRT-Timestamp"),
            event_id: text("X-BBRT-Event-Id"),
            signature: text("X-BBRT-Signature"),
        };
        let body = e["body"].as_str().unwrap().as_bytes();
        let event = v
            .verify(headers, body, now)
            .expect("the plugin's event verifies");
        assert_eq!(event.id, headers.event_id);
        assert_eq!(event.site, "https://community.example.org");
        assert_eq!(
            sign_event(
                "fixture-event-secret-0123456789abcdef",
                now,
                headers.event_id,
                body
            ),
            headers.signature,
            "bbrt signs as the plugin does"
        );
        if let SiteEventKind::MessageSent(m) = &event.kind {
            assert_eq!(m.message.raw, "Café at 5? <3 / \"quoted\"");
            assert_eq!(
                (m.thread_id, m.message_id, m.unread[0].inbox_unread),
                (7, 41, 4)
            );
        }
    }
}
