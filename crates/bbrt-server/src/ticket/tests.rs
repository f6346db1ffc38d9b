use serde_json::json;

use super::*;

const SECRET_A: &str = "a-ticket-secret-of-at-least-32-bytes-aaaa";
const SECRET_B: &str = "b-ticket-secret-of-at-least-32-bytes-bbbb";
const AUD: &str = "wss://rt.example.org";
const ISS: &str = "https://community.example.org";
const NOW: i64 = 1_800_000_000;

fn verifier() -> TicketVerifier {
    let ring = TicketKeys::parse(&format!("2026b:{SECRET_B}, 2026a:{SECRET_A}")).unwrap();
    TicketVerifier::new(ring, AUD, ISS, Duration::from_secs(5))
}

fn claims() -> serde_json::Value {
    json!({"iss": ISS, "aud": AUD, "sub": "2", "iat": NOW, "nbf": NOW, "exp": NOW + 30,
           "jti": "0123456789abcdef0123456789abcdef", "sc": "bbrt-sc1.0011223344556677.AbC-_d"})
}

fn with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    sign_ticket("2026a", SECRET_A, &c)
}

fn refusal(ticket: &str) -> TicketRefusal {
    verifier().verify(ticket, NOW).expect_err("refused")
}

#[test]
fn a_good_ticket_names_its_user_and_site_credential_by_either_key() {
    for (kid, secret) in [("2026a", SECRET_A), ("2026b", SECRET_B)] {
        let t = verifier()
            .verify(&sign_ticket(kid, secret, &claims()), NOW)
            .expect("valid");
        assert_eq!(t.user, "2");
        assert_eq!(t.site_credential, "bbrt-sc1.0011223344556677.AbC-_d");
        assert_eq!(verifier().remember_for(&t, NOW), Duration::from_secs(35));
        assert!(!format!("{t:?}").contains("AbC"), "Debug hides sc");
    }
}

#[test]
fn every_refusal_has_its_cause() {
    let good = with(|_| {});
    assert_eq!(
        refusal(&"a".repeat(MAX_TICKET_BYTES + 1)),
        TicketRefusal::Oversized
    );
    assert_eq!(refusal("abc.def"), TicketRefusal::Malformed);
    assert_eq!(refusal(&format!("{good}.x")), TicketRefusal::Malformed);
    assert_eq!(
        refusal(&format!("{good}=")),
        TicketRefusal::Malformed,
        "padding"
    );
    assert_eq!(
        refusal(&good.replacen('.', "..", 1)),
        TicketRefusal::Malformed
    );
    let (h, rest) = good.split_once('.').unwrap();
    assert_eq!(
        refusal(&format!("{h}+.{rest}")),
        TicketRefusal::Malformed,
        "not url-safe"
    );
    let forge = |header: &str| {
        let (_, rest) = good.split_once('.').unwrap();
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
    };
    assert_eq!(
        refusal(&forge(
            r#"{"alg":"none","kid":"2026a","typ":"bbrt-ticket"}"#
        )),
        TicketRefusal::WrongAlgorithm
    );
    assert_eq!(
        refusal(&forge(r#"{"alg":"HS256","kid":"2026a","typ":"JWT"}"#)),
        TicketRefusal::WrongAlgorithm
    );
    assert_eq!(
        refusal(&forge(r#"{"alg":"HS256","kid":"old","typ":"bbrt-ticket"}"#)),
        TicketRefusal::UnknownKid
    );
    assert_eq!(refusal(&forge("[1]")), TicketRefusal::Malformed);
    assert_eq!(
        refusal(&sign_ticket("2026a", SECRET_B, &claims())),
        TicketRefusal::BadSignature
    );
    let mut tampered = good.clone().into_bytes();
    let at = good.find('.').unwrap() + 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        refusal(&String::from_utf8(tampered).unwrap()),
        TicketRefusal::BadSignature
    );
    let short_mac = good.rsplit_once('.').unwrap().0.to_owned() + ".AAAA";
    assert_eq!(refusal(&short_mac), TicketRefusal::BadSignature);
    assert_eq!(
        refusal(&with(|c| c["aud"] = json!("wss://staging.example.org"))),
        TicketRefusal::OtherAudience
    );
    assert_eq!(
        refusal(&with(|c| c["iss"] = json!("https://evil.example"))),
        TicketRefusal::OtherIssuer
    );
    assert_eq!(
        refusal(&with(|c| c["sub"] = json!(2))),
        TicketRefusal::BadClaims
    );
    assert_eq!(
        refusal(&with(|c| c["sub"] = json!("02"))),
        TicketRefusal::BadClaims
    );
    assert_eq!(
        refusal(&with(|c| c["jti"] = json!("ABC"))),
        TicketRefusal::BadClaims
    );
    assert_eq!(
        refusal(&with(|c| c["sc"] = json!("bearer xyz"))),
        TicketRefusal::BadClaims
    );
    assert_eq!(
        refusal(&with(
            |c| c["sc"] = json!(format!("bbrt-sc1.{}", "a".repeat(1100)))
        )),
        TicketRefusal::BadClaims
    );
    assert_eq!(
        refusal(&with(|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        TicketRefusal::BadClaims
    );
    assert_eq!(
        refusal(&with(|c| c["nbf"] = json!(NOW + 6))),
        TicketRefusal::NotYetValid
    );
    assert_eq!(
        refusal(&with(|c| c["exp"] = json!(NOW - 5))),
        TicketRefusal::Expired
    );
    assert_eq!(
        refusal(&with(|c| c["exp"] = json!(NOW + 61))),
        TicketRefusal::TooLong
    );
}

#[test]
fn the_leeway_allows_small_skew_only() {
    let v = verifier();
    assert!(v.verify(&with(|c| c["nbf"] = json!(NOW + 5)), NOW).is_ok());
    assert!(v.verify(&with(|c| c["exp"] = json!(NOW - 4)), NOW).is_ok());
    let wide = TicketVerifier::new(
        TicketKeys::parse(&format!("k:{SECRET_A}")).unwrap(),
        AUD,
        ISS,
        Duration::from_secs(3600),
    );
    assert_eq!(wide.leeway_secs(), 30, "capped");
}

#[test]
fn rings_refuse_any_bad_entry_and_never_show_a_secret() {
    assert_eq!(TicketKeys::parse(" , ").err(), Some(KeyRingError::Empty));
    assert_eq!(
        TicketKeys::parse(&format!("k:{SECRET_A},nokid")).err(),
        Some(KeyRingError::NotKidSecret(2))
    );
    assert_eq!(
        TicketKeys::parse(&format!("bad kid!:{SECRET_A}")).err(),
        Some(KeyRingError::NotKidSecret(1))
    );
    assert_eq!(
        TicketKeys::parse(&format!("b@d:{SECRET_A}")).err(),
        Some(KeyRingError::BadKid(1))
    );
    assert!(matches!(
        TicketKeys::parse("k:short"),
        Err(KeyRingError::ShortSecret { .. })
    ));
    assert!(matches!(
        TicketKeys::parse(&format!("k:{SECRET_A}\nk:{SECRET_B}")),
        Err(KeyRingError::DuplicateKid { .. })
    ));
    let ring = TicketKeys::parse(&format!("2026b:{SECRET_B}\n2026a:{SECRET_A}")).unwrap();
    let shown = format!("{ring:?} {:?}", verifier());
    assert!(!shown.contains("secret-of"), "{shown}");
    assert!(
        shown.contains("2026b") && shown.contains("[redacted]"),
        "{shown}"
    );
}

#[test]
fn the_memory_ledger_takes_each_jti_once_until_it_expires() {
    let ledger = MemoryTicketLedger::default();
    assert!(ledger.take_now("j1", Duration::from_secs(60)));
    assert!(!ledger.take_now("j1", Duration::from_secs(60)));
    assert!(ledger.take_now("j2", Duration::ZERO));
    assert!(
        ledger.take_now("j2", Duration::from_secs(60)),
        "expired ids are forgotten"
    );
    assert_eq!(ledger.len(), 2);
}

/// A ticket minted by the plugin's own PHP (`Tickets::encode`), written by
/// `integrations/wordpress/bbrt/tests/fixtures/make-ticket-fixture.php`.
#[test]
fn a_ticket_minted_by_the_plugin_verifies() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../integrations/wordpress/bbrt/tests/fixtures/ticket-fixture.json"
    ))
    .unwrap();
    let text = |k: &str| fixture[k].as_str().unwrap();
    let verifier = TicketVerifier::new(
        TicketKeys::parse(text("ring")).unwrap(),
        text("audience"),
        text("issuer"),
        Duration::from_secs(5),
    );
    let now = fixture["now"].as_i64().unwrap();
    let ticket = verifier
        .verify(text("ticket"), now)
        .expect("the plugin's ticket");
    assert_eq!(ticket.user, "2");
    assert_eq!(ticket.expires_at, now + 30);
    assert!(ticket.site_credential.starts_with("bbrt-sc1."));
    assert_eq!(
        verifier.verify(text("ticket"), now + 40),
        Err(TicketRefusal::Expired)
    );
}
