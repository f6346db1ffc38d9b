use super::*;
use crate::ids::{CallId, ClientMessageId, MessageId, ThreadId, UserId};

fn ok(frame: &str) -> ClientFrame {
    decode(frame, &Limits::default()).unwrap_or_else(|e| panic!("{frame} failed: {e}"))
}

fn err(frame: &str) -> DecodeError {
    decode(frame, &Limits::default()).expect_err(frame)
}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn tid(s: &str) -> ThreadId {
    ThreadId::new(s).unwrap()
}

/// Every JSON example in the seed document, verbatim.
const SEED_EXAMPLES: &[&str] = &[
    r#"{ "type": "user_connected", "userId": "USER_ID" }"#,
    r#"{ "type": "join_thread", "threadId": "THREAD_ID" }"#,
    r#"{ "type": "send_message", "recipientId": "RECIPIENT_ID", "message": "Hello, this is a message.", "threadId": "THREAD_ID", "token": "YOUR_API_TOKEN" }"#,
    r#"{ "type": "typing", "threadId": "THREAD_ID" }"#,
    r#"{ "type": "call_initiated", "senderId": "SENDER_ID", "recipientId": "RECIPIENT_ID", "threadId": "THREAD_ID" }"#,
    r#"{ "type": "offer", "offer": "OFFER_SDP", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID" }"#,
    r#"{ "type": "answer", "answer": "ANSWER_SDP", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID" }"#,
    r#"{ "type": "ice-candidate", "candidate": "ICE_CANDID ATE", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID" }"#,
];

#[test]
fn every_seed_example_decodes() {
    let kinds: Vec<_> = SEED_EXAMPLES.iter().map(|f| ok(f).message.kind()).collect();
    assert_eq!(
        kinds,
        [
            "user_connected",
            "join_thread",
            "send_message",
            "typing",
            "call_initiated",
            "offer",
            "answer",
            "ice-candidate"
        ]
    );
}

#[test]
fn send_message_keeps_token_out_of_debug_and_take_token_strips_it() {
    let mut frame = ok(SEED_EXAMPLES[2]);
    assert!(!format!("{frame:?}").contains("YOUR_API_TOKEN"));
    let token = frame.message.take_token().expect("the seed sends a token");
    assert_eq!(token.expose(), "YOUR_API_TOKEN");
    assert_eq!(frame.message.take_token(), None);
    let ClientMessage::SendMessage(m) = frame.message else {
        panic!("not a send")
    };
    assert_eq!(m.thread_id, Some(tid("THREAD_ID")));
    assert_eq!(m.recipient_id, Some(uid("RECIPIENT_ID")));
    assert_eq!(m.message, "Hello, this is a message.");
}

#[test]
fn signaling_payloads_are_relayed_byte_for_byte() {
    let frame = ok(
        r#"{"type":"offer","offer":{"sdp":"v=0\r\n","type":"offer", "x" : [1, 2.50]},"recipientId":7}"#,
    );
    let ClientMessage::Offer(offer) = frame.message else {
        panic!("not an offer")
    };
    assert_eq!(
        offer.offer.as_json(),
        r#"{"sdp":"v=0\r\n","type":"offer", "x" : [1, 2.50]}"#
    );
    assert_eq!(offer.recipient_id, Some(uid("7")));
    let out = ServerMessage::Offer(offer).encode();
    assert!(
        std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""offer":{"sdp":"v=0\r\n","type":"offer", "x" : [1, 2.50]}"#)
    );
}

#[test]
fn ids_accept_integers_and_are_emitted_as_strings() {
    let frame = ok(r#"{"type":"join_thread","threadId":42}"#);
    assert_eq!(
        frame.message,
        ClientMessage::JoinThread(JoinThread::new(tid("42")))
    );
}

#[test]
fn request_id_is_echoed_with_its_json_type() {
    assert_eq!(
        ok(r#"{"type":"ping","requestId":7}"#).request_id,
        Some(RequestId::Num(7))
    );
    assert_eq!(
        ok(r#"{"type":"ping","requestId":"a"}"#).request_id,
        Some(RequestId::Str("a".into()))
    );
    let pong = ServerMessage::Pong(Pong {
        request_id: Some(RequestId::Num(7)),
    })
    .encode();
    assert_eq!(&pong[..], br#"{"type":"pong","requestId":7}"#);
}

#[test]
fn unknown_type_and_bad_fields_carry_the_request_id() {
    let e = err(r#"{"type":"dance","requestId":"r1"}"#);
    assert_eq!(
        (e.code(), e.request_id.clone()),
        (ErrorCode::UnknownType, Some(RequestId::Str("r1".into())))
    );
    let e = err(r#"{"requestId":"r2","type":"join_thread"}"#);
    assert_eq!(
        (e.code(), e.request_id),
        (ErrorCode::InvalidField, Some(RequestId::Str("r2".into())))
    );
    let e = err(r#"{"type":"join_thread","threadId":-1,"requestId":3}"#);
    assert_eq!(
        (e.code(), e.request_id),
        (ErrorCode::InvalidId, Some(RequestId::Num(3)))
    );
    let e = err(r#"{"type":"join_thread","threadId":null,"requestId":3}"#);
    assert_eq!(e.code(), ErrorCode::InvalidId);
    let e = err(r#"{"type":"send_message","message":["x"],"threadId":"1","requestId":4}"#);
    assert_eq!(e.code(), ErrorCode::InvalidField);
    let e = err(r#"{"type":"join_thread","threadId":"1","threadId":"2","requestId":5}"#);
    assert_eq!(
        (e.code(), e.request_id),
        (ErrorCode::InvalidField, Some(RequestId::Num(5)))
    );
}

#[test]
fn malformed_frames_get_their_codes() {
    assert_eq!(err("").code(), ErrorCode::InvalidJson);
    assert_eq!(err("{").code(), ErrorCode::InvalidJson);
    assert_eq!(err("[1,2]").code(), ErrorCode::NotAnObject);
    assert_eq!(err("\"x\"").code(), ErrorCode::NotAnObject);
    assert_eq!(err("12").code(), ErrorCode::NotAnObject);
    assert_eq!(err("null").code(), ErrorCode::NotAnObject);
    assert_eq!(err("{}").code(), ErrorCode::MissingType);
    assert_eq!(err(r#"{"type":5}"#).code(), ErrorCode::MissingType);
    assert_eq!(
        err(r#"{"type":"ping","type":"ping"}"#).code(),
        ErrorCode::InvalidField
    );
    assert_eq!(
        err(r#"{"type":"ping"} trailing"#).code(),
        ErrorCode::InvalidJson
    );
    let deep = format!(
        "{{\"type\":\"ping\",\"x\":{}{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    assert_eq!(err(&deep).code(), ErrorCode::TooDeep);
    let big = format!(r#"{{"type":"ping","x":"{}"}}"#, "a".repeat(70 * 1024));
    assert_eq!(err(&big).code(), ErrorCode::FrameTooLarge);
    let long = format!(
        r#"{{"type":"send_message","threadId":"1","message":"{}","requestId":1}}"#,
        "a".repeat(17 * 1024)
    );
    let e = err(&long);
    assert_eq!(
        (e.code(), e.request_id),
        (ErrorCode::MessageTooLong, Some(RequestId::Num(1)))
    );
}

#[test]
fn unknown_fields_and_proto_keys_are_ignored() {
    let frame = ok(
        r#"{"type":"typing","threadId":"t","__proto__":{"admin":true},"constructor":1,"typing":false}"#,
    );
    assert_eq!(
        frame.message,
        ClientMessage::Typing(Typing {
            thread_id: tid("t"),
            typing: Some(false)
        })
    );
}

/// `(code, echoed requestId)` of the error `frame` gets.
fn answer(frame: &str) -> (ErrorCode, Option<RequestId>) {
    let e = err(frame);
    (e.code(), e.request_id)
}

#[test]
fn every_decode_error_after_the_envelope_echoes_the_request_id() {
    let deep = |rid: &str| {
        format!(
            r#"{{"requestId":{rid},"type":"ping","x":{}{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        )
    };
    let id = |n| Some(RequestId::Num(n));
    // Nested deeper than the limit, even past serde_json's own recursion limit of 128.
    assert_eq!(answer(&deep("1")), (ErrorCode::TooDeep, id(1)));
    let very_deep = format!(
        r#"{{"type":"ping","x":{}1{},"requestId":"d"}}"#,
        "{\"a\":".repeat(500),
        "}".repeat(500)
    );
    assert_eq!(
        answer(&very_deep),
        (ErrorCode::TooDeep, Some(RequestId::Str("d".into())))
    );
    assert_eq!(
        answer(r#"{"type":"ping","type":"ping","requestId":2}"#),
        (ErrorCode::InvalidField, id(2))
    );
    assert_eq!(
        answer(r#"{"requestId":3,"type":"ping","type":"dance"}"#),
        (ErrorCode::InvalidField, id(3))
    );
    assert_eq!(
        answer(r#"{"requestId":4}"#),
        (ErrorCode::MissingType, id(4))
    );
    assert_eq!(
        answer(r#"{"requestId":5,"type":7}"#),
        (ErrorCode::MissingType, id(5))
    );
    assert_eq!(
        answer(r#"{"requestId":6,"type":"dance"}"#),
        (ErrorCode::UnknownType, id(6))
    );
    assert_eq!(
        answer(r#"{"requestId":7,"type":"join_thread"}"#),
        (ErrorCode::InvalidField, id(7))
    );
    assert_eq!(
        answer(r#"{"requestId":8,"type":"join_thread","threadId":"a b"}"#),
        (ErrorCode::InvalidId, id(8))
    );
    let long = format!(
        r#"{{"requestId":9,"type":"send_message","threadId":"1","message":"{}"}}"#,
        "a".repeat(17 * 1024)
    );
    assert_eq!(answer(&long), (ErrorCode::MessageTooLong, id(9)));
}

#[test]
fn a_request_id_that_cannot_be_echoed_is_an_invalid_field_naming_it() {
    let too_long = "r".repeat(129);
    let unusable = [
        format!(r#""{too_long}""#),
        format!(r#""{}""#, "r".repeat(300)),
        // 43 characters but 129 bytes.
        format!(r#""{}""#, "€".repeat(43)),
        "1e999999".to_owned(),
        "1.5".to_owned(),
        "1e2".to_owned(),
        "9223372036854775808".to_owned(),
        "-9223372036854775809".to_owned(),
        "true".to_owned(),
        "[1]".to_owned(),
        r#"{"a":1}"#.to_owned(),
    ];
    for rid in &unusable {
        for frame in [
            format!(r#"{{"type":"ping","requestId":{rid}}}"#),
            format!(r#"{{"type":"dance","requestId":{rid}}}"#),
            format!(r#"{{"requestId":{rid},"type":"ping","type":"ping"}}"#),
        ] {
            let e = err(&frame);
            assert_eq!(
                (e.code(), &e.request_id),
                (ErrorCode::InvalidField, &None),
                "{frame}"
            );
            assert!(e.to_event().message.contains("requestId"), "{frame}: {e}");
        }
    }
    let twice = err(r#"{"type":"ping","requestId":1,"requestId":2}"#);
    assert_eq!(
        (twice.code(), twice.request_id.clone()),
        (ErrorCode::InvalidField, None)
    );
    assert!(twice.to_string().contains("requestId"), "{twice}");
}

#[test]
fn usable_request_ids_are_echoed_at_their_bounds() {
    let max = "r".repeat(128);
    let usable = [
        (
            format!(r#""{max}""#),
            Some(RequestId::Str(max.as_str().into())),
        ),
        (r#""""#.to_owned(), Some(RequestId::Str("".into()))),
        (
            "9223372036854775807".to_owned(),
            Some(RequestId::Num(i64::MAX)),
        ),
        (
            "-9223372036854775808".to_owned(),
            Some(RequestId::Num(i64::MIN)),
        ),
        ("null".to_owned(), None),
    ];
    for (rid, expected) in usable {
        let frame = format!(r#"{{"type":"ping","requestId":{rid}}}"#);
        assert_eq!(ok(&frame).request_id, expected, "{frame}");
    }
}

#[test]
fn client_frames_round_trip() {
    for example in SEED_EXAMPLES {
        let frame = ok(example);
        assert_eq!(ok(&frame.encode()), frame);
    }
    let frame = ClientFrame {
        request_id: Some(RequestId::Num(1)),
        message: ClientMessage::Ping(Ping {}),
    };
    assert_eq!(frame.encode(), r#"{"type":"ping","requestId":1}"#);
}

#[test]
fn server_frames_other_than_message_and_error_never_say_message() {
    for msg in every_server_message() {
        let text = String::from_utf8(msg.encode().to_vec()).unwrap();
        if !matches!(msg, ServerMessage::Message(_) | ServerMessage::Error(_)) {
            assert!(!text.contains("message"), "{text}");
            assert!(msg.kind() == "typing" || !text.contains("typing"), "{text}");
        }
        assert_eq!(ServerMessage::decode(text.as_bytes()).unwrap(), msg);
    }
}

#[test]
fn unread_counts_and_the_new_end_reason_never_say_message() {
    let read = ServerMessage::Read(ReadEvent {
        thread_id: tid("1"),
        user_id: uid("3"),
        unread: Some(Unread {
            thread: 0,
            total: 2,
        }),
    });
    assert_eq!(
        String::from_utf8(read.encode().to_vec()).unwrap(),
        r#"{"type":"read","threadId":"1","userId":"3","unread":{"thread":0,"total":2}}"#
    );
    let ended = serde_json::to_string(&EndReason::ThreadClosed).unwrap();
    assert_eq!(ended, r#""thread_closed""#);
}

fn every_server_message() -> Vec<ServerMessage> {
    let (alice, bob, thread, call) = (uid("2"), uid("3"), tid("1"), CallId::new("n1-1").unwrap());
    let event = CallEvent {
        call_id: call.clone(),
        sender_id: alice.clone(),
        recipient_id: bob.clone(),
        thread_id: thread.clone(),
    };
    let sdp = Payload::from_json(r#"{"type":"offer","sdp":"v=0"}"#).unwrap();
    vec![
        ServerMessage::UserConnected(PresenceEvent {
            user_id: alice.clone(),
        }),
        ServerMessage::UserDisconnected(PresenceEvent {
            user_id: alice.clone(),
        }),
        ServerMessage::Message(MessageEvent {
            id: MessageId::new("5").unwrap(),
            thread_id: thread.clone(),
            sender_id: alice.clone(),
            message: "Hi Bob, this is Alice.".into(),
            html: Some("<p>Hi Bob, this is Alice.</p>\n".into()),
            sent_at: "2026-11-25T00:48:52Z".into(),
            client_message_id: Some(ClientMessageId::new("c-1").unwrap()),
            unread: None,
            position: None,
        }),
        ServerMessage::Typing(TypingEvent {
            thread_id: thread.clone(),
            user_id: alice.clone(),
            typing: true,
        }),
        ServerMessage::CallInitiated(event.clone()),
        ServerMessage::Offer(Offer {
            offer: sdp.clone(),
            recipient_id: Some(bob.clone()),
            sender_id: Some(alice.clone()),
            thread_id: Some(thread.clone()),
            call_id: Some(call.clone()),
        }),
        ServerMessage::Answer(Answer {
            answer: sdp.clone(),
            recipient_id: Some(alice.clone()),
            sender_id: Some(bob.clone()),
            thread_id: Some(thread.clone()),
            call_id: Some(call.clone()),
        }),
        ServerMessage::IceCandidate(IceCandidate {
            candidate: Payload::from_json(
                r#""candidate:1 1 UDP 2122252543 192.0.2.1 54400 typ host""#,
            )
            .unwrap(),
            recipient_id: Some(bob.clone()),
            sender_id: Some(alice.clone()),
            thread_id: Some(thread.clone()),
            call_id: Some(call.clone()),
        }),
        ServerMessage::CallAccepted(event),
        ServerMessage::CallEnded(CallEnded {
            call_id: call.clone(),
            thread_id: thread.clone(),
            reason: EndReason::AnsweredElsewhere,
        }),
        ServerMessage::Read(ReadEvent {
            thread_id: thread.clone(),
            user_id: bob.clone(),
            unread: None,
        }),
        ServerMessage::Deleted(Deleted {
            thread_id: thread.clone(),
            user_id: alice.clone(),
            ids: vec![MessageId::new("5").unwrap(), MessageId::new("6").unwrap()],
        }),
        ServerMessage::ThreadDeleted(ThreadDeleted {
            thread_id: thread.clone(),
            everyone: true,
        }),
        ServerMessage::ThreadLeft(ThreadLeft {
            thread_id: thread.clone(),
            user_ids: vec![bob.clone()],
        }),
        ServerMessage::Joined(Joined {
            position: None,
            thread_id: thread.clone(),
            participants: vec![
                Participant {
                    user_id: alice,
                    online: true,
                },
                Participant {
                    user_id: bob,
                    online: false,
                },
            ],
            last_message_id: Some(MessageId::new("5").unwrap()),
            request_id: Some(RequestId::Num(2)),
        }),
        ServerMessage::Ack(Ack {
            request_id: Some(RequestId::Str("r1".into())),
            client_message_id: Some(ClientMessageId::new("c-1").unwrap()),
            id: Some(MessageId::new("5").unwrap()),
            thread_id: Some(thread),
            call_id: None,
        }),
        ServerMessage::Pong(Pong {
            request_id: Some(RequestId::Num(9)),
        }),
        ServerMessage::Error(ErrorEvent::new(
            ErrorCode::RecipientOffline,
            "Recipient is not connected",
            Some(RequestId::Num(4)),
        )),
    ]
}

#[test]
fn server_message_snapshots() {
    for msg in every_server_message() {
        let text = String::from_utf8(msg.encode().to_vec()).unwrap();
        insta::assert_snapshot!(msg.kind().replace('-', "_"), text);
    }
}

#[test]
fn error_codes_never_fail_to_decode() {
    let e: ErrorEvent =
        serde_json::from_str(r#"{"message":"x","code":"from_the_future"}"#).unwrap();
    assert_eq!(e.code, ErrorCode::Unknown);
    for &code in ErrorCode::ALL.iter().chain([&ErrorCode::Unknown]) {
        let wire = serde_json::Value::String(code.as_str().into());
        assert_eq!(serde_json::to_value(code).unwrap(), wire);
        assert_eq!(serde_json::from_value::<ErrorCode>(wire).unwrap(), code);
    }
}

#[test]
fn every_error_code_has_its_own_snake_case_name_and_text() {
    let mut seen = std::collections::BTreeSet::new();
    for &code in ErrorCode::ALL {
        let name = code.as_str();
        assert!(seen.insert(name), "{name} twice");
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
        assert_ne!(code, ErrorCode::Unknown);
        assert!(!code.message().is_empty(), "{name}");
    }
}

#[test]
fn every_message_type_decodes_as_itself() {
    // The table's `KINDS`, decode match and serde renames are one list; prove it per type.
    for kind in ClientMessage::KINDS {
        let frame = format!(r#"{{"type":"{kind}"}}"#);
        match decode(&frame, &Limits::default()) {
            Ok(decoded) => assert_eq!(decoded.message.kind(), kind),
            Err(e) => assert_ne!(e.code(), ErrorCode::UnknownType, "{kind}"),
        }
    }
    for kind in ServerMessage::KINDS {
        let frame = format!(r#"{{"type":"{kind}"}}"#);
        if let Err(e) = ServerMessage::decode(frame.as_bytes()) {
            assert!(
                !e.to_string().contains("unknown server type"),
                "{kind}: {e}"
            );
        }
    }
    let unknown = ServerMessage::decode(br#"{"type":"nope"}"#).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown server type"),
        "{unknown}"
    );
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_text(s in ".{0,300}") {
            let _ = decode(&s, &Limits::default());
        }

        #[test]
        fn decode_never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-z_\- ]{0,200}"#) {
            let _ = decode(&format!(r#"{{"type":"send_message",{s}"#), &Limits::default());
            let _ = decode(&s, &Limits::default());
        }

        #[test]
        fn valid_ids_round_trip(id in "[A-Za-z0-9._~:@+-]{1,128}") {
            let frame = format!(r#"{{"type":"join_thread","threadId":"{id}"}}"#);
            let decoded = decode(&frame, &Limits::default()).unwrap();
            prop_assert_eq!(decode(&decoded.encode(), &Limits::default()).unwrap(), decoded);
        }
    }
}

#[test]
fn the_docs_list_the_fixed_texts_clients_read() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let docs = std::fs::read_to_string(path).expect("docs/protocol.md");
    let section = docs
        .split("### What clients read")
        .nth(1)
        .and_then(|s| s.split("\n#").next())
        .expect("the section");
    let mut listed = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let code: ErrorCode = serde_json::from_value(serde_json::Value::String(
            cells[1].trim_matches('`').to_owned(),
        ))
        .unwrap();
        assert_ne!(code, ErrorCode::Unknown, "{row}");
        assert_eq!(cells[2], code.message(), "{row}");
        listed.push(code);
    }
    // Every code a site error maps to (`hub::site_error_code`), and `unauthenticated`.
    for code in [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::Invalid,
        ErrorCode::InvalidId,
        ErrorCode::EmptyMessage,
        ErrorCode::Refused,
        ErrorCode::SiteUnavailable,
        ErrorCode::SiteError,
    ] {
        assert!(listed.contains(&code), "{code:?} is not in the docs");
    }
}
