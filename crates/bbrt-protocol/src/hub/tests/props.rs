//! Properties over random input sequences and node placements.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::sim::*;
use crate::api::SiteErrorKind;
use crate::ids::{ConnId, UserId};
use crate::wire::{ErrorCode, ServerMessage};

const USERS: usize = 4;
const THREADS: usize = 3;

/// How a connection identifies.
#[derive(Debug, Clone)]
enum How {
    Anonymous,
    Bare,
    UpgradeDev,
    UpgradeSecret,
    FrameDev,
}

/// A client frame, with small indices for users and threads.
#[derive(Debug, Clone)]
enum Frame {
    Join(usize),
    Leave(usize),
    Send {
        thread: Option<usize>,
        recipient: Option<usize>,
        cmid: Option<u8>,
        empty: bool,
    },
    Typing(usize, Option<bool>),
    MarkRead(usize),
    Call {
        kind: usize,
        peer: usize,
        thread: usize,
        by_sender_id: bool,
        call: Option<u8>,
    },
    Ping,
    UserConnected {
        user: usize,
        token: Option<bool>,
    },
    Garbage(usize),
    /// A JSON object the decoder refuses, with the frame's `requestId` (or `null`).
    Malformed(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Open {
        node: usize,
        user: usize,
        how: How,
    },
    Frame {
        conn: usize,
        frame: Frame,
        request_id: bool,
    },
    Close {
        conn: usize,
    },
    Advance {
        ms: u64,
    },
    Drive,
    SiteFail {
        kind: usize,
        error: usize,
    },
    SiteLatency {
        kind: usize,
        ms: u64,
    },
    Remove {
        thread: usize,
        user: usize,
    },
    Revoke {
        user: usize,
    },
    NodeDown {
        node: usize,
    },
    Coordinator {
        unavailable: bool,
    },
}

const KINDS: [&str; 4] = ["verify", "participants", "send", "mark_read"];
const CALL_KINDS: [&str; 7] = [
    "call_initiated",
    "offer",
    "answer",
    "ice-candidate",
    "call_accepted",
    "call_rejected",
    "call_ended",
];
const GARBAGE: [&str; 4] = [
    "nonsense",
    r#"{"type":"dance"}"#,
    r#"{"type":"join_thread"}"#,
    "[1]",
];

/// Decoder errors after the envelope; `RID` is the `requestId`.
const MALFORMED: [&str; 5] = [
    r#"{"type":"ping","type":"ping","requestId":RID}"#,
    r#"{"requestId":RID,"type":"ping","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
    r#"{"type":"dance","requestId":RID}"#,
    r#"{"requestId":RID}"#,
    r#"{"type":"join_thread","threadId":"a b","requestId":RID}"#,
];

fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        1 => Just(How::Anonymous),
        6 => Just(How::Bare),
        4 => Just(How::UpgradeDev),
        1 => Just(How::UpgradeSecret),
        2 => Just(How::FrameDev),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let u = 0..USERS;
    let t = 0..THREADS;
    prop_oneof![
        4 => t.clone().prop_map(Frame::Join),
        1 => t.clone().prop_map(Frame::Leave),
        5 => (proptest::option::of(t.clone()), proptest::option::of(u.clone()), proptest::option::of(0u8..3), proptest::bool::weighted(0.05))
            .prop_map(|(thread, recipient, cmid, empty)| Frame::Send { thread, recipient, cmid, empty }),
        3 => (t.clone(), proptest::option::of(any::<bool>())).prop_map(|(t, b)| Frame::Typing(t, b)),
        1 => t.clone().prop_map(Frame::MarkRead),
        12 => (0..CALL_KINDS.len(), u.clone(), t.clone(), any::<bool>(), proptest::option::of(0u8..3))
            .prop_map(|(kind, peer, thread, by_sender_id, call)| Frame::Call { kind, peer, thread, by_sender_id, call }),
        1 => Just(Frame::Ping),
        1 => (u.clone(), proptest::option::of(any::<bool>())).prop_map(|(user, token)| Frame::UserConnected { user, token }),
        1 => (0..GARBAGE.len()).prop_map(Frame::Garbage),
        1 => (0..MALFORMED.len()).prop_map(Frame::Malformed),
    ]
}

fn op(nodes: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..nodes, 0..USERS, how()).prop_map(|(node, user, how)| Op::Open { node, user, how }),
        16 => (0..64usize, frame(), proptest::bool::weighted(0.9)).prop_map(|(conn, frame, request_id)| Op::Frame { conn, frame, request_id }),
        1 => (0..64usize).prop_map(|conn| Op::Close { conn }),
        2 => prop_oneof![4 => 0u64..1500, 1 => 1500u64..8000].prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Drive),
        1 => (0..KINDS.len(), 0..5usize).prop_map(|(kind, error)| Op::SiteFail { kind, error }),
        1 => (0..KINDS.len(), 0u64..400).prop_map(|(kind, ms)| Op::SiteLatency { kind, ms }),
        1 => (0..THREADS, 0..USERS).prop_map(|(thread, user)| Op::Remove { thread, user }),
        1 => (0..USERS).prop_map(|user| Op::Revoke { user }),
        1 => (0..nodes).prop_map(|node| Op::NodeDown { node }),
        1 => any::<bool>().prop_map(|unavailable| Op::Coordinator { unavailable }),
    ]
}

/// A random session: node count, real-site mode, and the ops. Each begins with every user
/// connected on a random node, identified, and joined to random threads.
fn scenario() -> impl Strategy<Value = (usize, bool, (bool, bool), Vec<Op>)> {
    (1usize..=3).prop_flat_map(|nodes| {
        let placement = proptest::collection::vec(
            (0..nodes, proptest::collection::vec(any::<bool>(), THREADS)),
            USERS,
        );
        let ops = proptest::collection::vec(op(nodes), 1..60);
        (
            Just(nodes),
            proptest::bool::weighted(0.2),
            (
                proptest::bool::weighted(0.25),
                proptest::bool::weighted(0.2),
            ),
            placement,
            ops,
        )
            .prop_map(|(nodes, real, variant, placement, ops)| {
                let mut prelude = Vec::new();
                for (u, (node, joins)) in placement.into_iter().enumerate() {
                    let how = if real { How::UpgradeDev } else { How::Bare };
                    prelude.push(Op::Open { node, user: u, how });
                    for (t, join) in joins.into_iter().enumerate() {
                        if join {
                            prelude.push(Op::Frame {
                                conn: u,
                                frame: Frame::Join(t),
                                request_id: true,
                            });
                        }
                    }
                }
                prelude.push(Op::Drive);
                prelude.extend(ops);
                (nodes, real, variant, prelude)
            })
    })
}

fn user(i: usize) -> String {
    format!("u{i}")
}

fn thread(i: usize) -> String {
    format!("t{i}")
}

fn dev_token(i: usize) -> String {
    format!("dev:u{i}")
}

/// Never a valid user id, so the embedded site refuses it on an anonymous connection.
fn secret_token(i: usize) -> String {
    format!("s3cr3t/{i}")
}

fn frame_json(frame: &Frame, request_id: Option<i64>) -> String {
    let mut v = match frame {
        Frame::Join(t) => json!({"type": "join_thread", "threadId": thread(*t)}),
        Frame::Leave(t) => json!({"type": "leave_thread", "threadId": thread(*t)}),
        Frame::Send {
            thread: t,
            recipient,
            cmid,
            empty,
        } => {
            let mut v =
                json!({"type": "send_message", "message": if *empty { " " } else { "hello" }});
            if let Some(t) = t {
                v["threadId"] = json!(thread(*t));
            }
            if let Some(r) = recipient {
                v["recipientId"] = json!(user(*r));
            }
            if let Some(c) = cmid {
                v["clientMessageId"] = json!(format!("c{c}"));
            }
            v
        }
        Frame::Typing(t, typing) => {
            let mut v = json!({"type": "typing", "threadId": thread(*t)});
            if let Some(b) = typing {
                v["typing"] = json!(b);
            }
            v
        }
        Frame::MarkRead(t) => json!({"type": "mark_read", "threadId": thread(*t)}),
        Frame::Call {
            kind,
            peer,
            thread: t,
            by_sender_id,
            call,
        } => {
            let kind = CALL_KINDS[*kind];
            let mut v = json!({"type": kind, "threadId": thread(*t)});
            v[if *by_sender_id {
                "senderId"
            } else {
                "recipientId"
            }] = json!(user(*peer));
            match kind {
                "offer" => v["offer"] = json!({"sdp": "o"}),
                "answer" => v["answer"] = json!({"sdp": "a"}),
                "ice-candidate" => v["candidate"] = json!("c"),
                _ => {}
            }
            if let Some(c) = call {
                v["callId"] = json!(format!("n{}-1", c + 1));
            }
            v
        }
        Frame::Ping => json!({"type": "ping"}),
        Frame::UserConnected { user: u, token } => {
            let mut v = json!({"type": "user_connected", "userId": user(*u)});
            match token {
                Some(true) => v["token"] = json!(dev_token(*u)),
                Some(false) => v["token"] = json!(secret_token(*u)),
                None => {}
            }
            v
        }
        Frame::Garbage(i) => return GARBAGE[*i].to_owned(),
        Frame::Malformed(i) => {
            let rid = request_id.map_or_else(|| "null".to_owned(), |r| r.to_string());
            return MALFORMED[*i].replace("RID", &rid);
        }
    };
    if let Some(r) = request_id {
        v["requestId"] = json!(r);
    }
    v.to_string()
}

struct Run {
    sim: Sim,
    conns: Vec<ConnId>,
    /// requestId → (conn, frame type).
    requests: HashMap<i64, (ConnId, String)>,
    tokens: BTreeSet<String>,
}

/// `tight`: limits small enough for random sessions to hit them; `all`: presence scope
/// `all` instead of `threads`.
fn run(nodes: usize, real: bool, (tight, all): (bool, bool), ops: &[Op]) -> Run {
    let mut sim = Sim::with_config(nodes, |c| {
        if all {
            c.presence_scope = crate::hub::PresenceScope::All;
        }
        if tight {
            c.frame_rate = 2.0;
            c.frame_burst = 4.0;
            c.close_after_violations = 3;
            c.max_threads_per_conn = 2;
            c.max_conns_per_user = 2;
            c.max_pending_sends_per_user = 2;
            c.invites_per_minute = 2;
        }
        c.ring_timeout = Duration::from_secs(5);
        c.call_grace = Duration::from_secs(2);
        c.credential_ttl = Duration::from_secs(20);
        c.participants_ttl = Duration::from_secs(10);
        c.max_queued_per_conn = 4;
        c.max_anonymous_total = 6;
    });
    sim.site.real = real;
    sim.site_thread("t0", &["u0", "u1", "u2", "u3"]);
    sim.site_thread("t1", &["u0", "u1"]);
    sim.debug_log = Some(Vec::new());
    let mut r = Run {
        sim,
        conns: Vec::new(),
        requests: HashMap::new(),
        tokens: BTreeSet::new(),
    };
    let mut next_request = 0i64;
    for op in ops {
        let sim = &mut r.sim;
        match op {
            Op::Open { node, user: u, how } => {
                if !sim.nodes[*node].up {
                    continue;
                }
                let token = match how {
                    How::UpgradeDev => Some(dev_token(*u)),
                    How::UpgradeSecret => Some(secret_token(*u)),
                    _ => None,
                };
                r.tokens.extend(token.clone());
                let conn = sim.open_on(*node, ip(*u as u8 + 1), token.as_deref());
                r.conns.push(conn);
                match how {
                    How::Bare => {
                        sim.send(conn, json!({"type": "user_connected", "userId": user(*u)}))
                    }
                    How::FrameDev => {
                        r.tokens.insert(dev_token(*u));
                        sim.send(conn, json!({"type": "user_connected", "userId": user(*u), "token": dev_token(*u)}))
                    }
                    _ => {}
                }
            }
            Op::Frame {
                conn,
                frame,
                request_id,
            } => {
                let Some(&conn) = r.conns.get(*conn % r.conns.len().max(1)) else {
                    continue;
                };
                if sim.closed(conn).is_some() {
                    continue;
                }
                // A frame that is not JSON cannot carry a requestId.
                let rid = (*request_id && !matches!(frame, Frame::Garbage(_))).then(|| {
                    next_request += 1;
                    next_request
                });
                if let Frame::UserConnected {
                    user: u,
                    token: Some(_),
                } = frame
                {
                    r.tokens.insert(dev_token(*u));
                    r.tokens.insert(secret_token(*u));
                }
                let text = frame_json(frame, rid);
                if let Some(rid) = rid {
                    let kind = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_owned));
                    r.requests.insert(rid, (conn, kind.unwrap_or_default()));
                }
                sim.send_text(conn, &text);
            }
            Op::Close { conn } => {
                if let Some(&conn) = r.conns.get(*conn % r.conns.len().max(1))
                    && sim.nodes[sim.client(conn).node].up
                {
                    sim.close(conn);
                }
            }
            Op::Advance { ms } => sim.drive_for(Duration::from_millis(*ms)),
            Op::Drive => sim.drive(),
            Op::SiteFail { kind, error } => {
                let (e, code) = [
                    (SiteErrorKind::Unavailable, "timeout"),
                    (SiteErrorKind::Forbidden, "bp_rest_authorization_required"),
                    (SiteErrorKind::Refused, "bp_rest_messages_create_failed"),
                    (SiteErrorKind::Invalid, "bp_rest_invalid_param"),
                    (SiteErrorKind::Unauthenticated, "rest_not_logged_in"),
                ][*error];
                sim.fail_next(KINDS[*kind], 1, e, code);
            }
            Op::SiteLatency { kind, ms } => {
                sim.site_latency(KINDS[*kind], Duration::from_millis(*ms))
            }
            Op::Remove { thread: t, user: u } => {
                sim.site_remove(&thread(*t), &user(*u));
            }
            Op::Revoke { user: u } => sim.revoke_token(&dev_token(*u)),
            Op::Coordinator { unavailable } => sim.coord.unavailable = *unavailable,
            Op::NodeDown { node } => {
                // Keep at least one node up.
                if sim.nodes.iter().filter(|n| n.up).count() > 1 && sim.nodes[*node].up {
                    sim.node_down(*node);
                }
            }
        }
    }
    r.sim.drive();
    // Longer than the typing expiry, so every typing indicator has ended.
    r.sim.drive_for(Duration::from_secs(6));
    r
}

fn thread_of(message: &ServerMessage) -> Option<(&'static str, String, Option<String>)> {
    match message {
        ServerMessage::Message(m) => Some(("message", m.thread_id.to_string(), None)),
        ServerMessage::Typing(t) => Some((
            "typing",
            t.thread_id.to_string(),
            Some(t.user_id.to_string()),
        )),
        ServerMessage::Read(r) => Some(("read", r.thread_id.to_string(), None)),
        _ => None,
    }
}

fn request_id_of(message: &ServerMessage) -> Option<i64> {
    let rid = match message {
        ServerMessage::Ack(a) => a.request_id.as_ref(),
        ServerMessage::Error(e) => e.request_id.as_ref(),
        ServerMessage::Joined(j) => j.request_id.as_ref(),
        ServerMessage::Pong(p) => p.request_id.as_ref(),
        _ => None,
    };
    match rid {
        Some(crate::wire::RequestId::Num(n)) => Some(*n),
        _ => None,
    }
}

fn check(r: &Run) -> Result<(), TestCaseError> {
    let sim = &r.sim;
    // No event of a thread reaches someone who was never a participant; typing never
    // reaches the typist.
    for (conn, client) in &sim.clients {
        for (_, who, message) in &client.log {
            let Some((kind, t, typist)) = thread_of(message) else {
                continue;
            };
            let who = who.as_ref().map(UserId::to_string);
            let who =
                who.ok_or_else(|| TestCaseError::fail(format!("{kind} to anonymous {conn}")))?;
            let ever = sim
                .site
                .ever
                .get(&tid(&t))
                .is_some_and(|s| s.contains(&uid(&who)));
            prop_assert!(
                ever,
                "{kind} of {t} reached {who} on {conn}, never a participant"
            );
            prop_assert!(
                typist.as_ref() != Some(&who),
                "typing echoed to the typist {who}"
            );
        }
    }
    // No connection gets a stored message twice; call frames reach only the party they
    // name as recipient.
    for (conn, client) in &sim.clients {
        let mut seen = BTreeSet::new();
        for (_, who, message) in &client.log {
            if let ServerMessage::Message(m) = message {
                prop_assert!(
                    seen.insert(m.id.clone()),
                    "message {:?} twice on {conn}",
                    m.id
                );
            }
            let recipient = match message {
                ServerMessage::CallInitiated(c) | ServerMessage::CallAccepted(c) => {
                    Some(&c.recipient_id)
                }
                ServerMessage::Offer(o) => o.recipient_id.as_ref(),
                ServerMessage::Answer(a) => a.recipient_id.as_ref(),
                ServerMessage::IceCandidate(i) => i.recipient_id.as_ref(),
                _ => None,
            };
            if let Some(recipient) = recipient {
                prop_assert_eq!(Some(recipient), who.as_ref(), "{:?} on {}", message, conn);
            }
        }
    }
    // A typing indicator always ends (typing false, a message, or the typist leaving),
    // unless the typist's node died.
    for (conn, client) in &sim.clients {
        if client.closed.is_some() {
            continue;
        }
        let mut typing: HashMap<(String, String), bool> = HashMap::new();
        for (_, _, message) in &client.log {
            match message {
                ServerMessage::Typing(t) => {
                    typing.insert((t.user_id.to_string(), t.thread_id.to_string()), t.typing);
                }
                ServerMessage::Message(m) => {
                    typing.remove(&(m.sender_id.to_string(), m.thread_id.to_string()));
                }
                _ => {}
            }
        }
        for ((typist, t), on) in typing {
            // Its last publications may be ignored as late (see `Hub::broker`).
            let typist_node_died = sim.clients.values().any(|c| {
                c.user.as_ref().is_some_and(|u| u.as_str() == typist) && !sim.nodes[c.node].up
            });
            prop_assert!(
                !on || typist_node_died,
                "{conn} still sees {typist} typing in {t}"
            );
        }
    }
    // What a connection believes of the presence of the users it shares a joined thread
    // with (from `joined` and the presence events since) is true.
    for (conn, client) in &sim.clients {
        let node = &sim.nodes[client.node];
        let Some(c) = node
            .hub
            .dir
            .get(*conn)
            .filter(|_| node.up && client.closed.is_none())
        else {
            continue;
        };
        let mut view: HashMap<UserId, bool> = HashMap::new();
        for (_, _, message) in &client.log {
            match message {
                ServerMessage::Joined(j) => {
                    view.extend(j.participants.iter().map(|p| (p.user_id.clone(), p.online)))
                }
                ServerMessage::UserConnected(p) => drop(view.insert(p.user_id.clone(), true)),
                ServerMessage::UserDisconnected(p) => drop(view.insert(p.user_id.clone(), false)),
                _ => {}
            }
        }
        for thread in &c.joined {
            for p in &node.hub.threads.participants(thread) {
                if Some(p) == c.user() {
                    continue;
                }
                if let Some(believed) = view.get(p) {
                    let online = node.hub.is_online(p);
                    prop_assert_eq!(
                        *believed,
                        online,
                        "{} believes {:?} online: {}",
                        conn,
                        p,
                        believed
                    );
                }
            }
        }
    }
    // After its `call_ended`, a connection hears nothing more of that call.
    for (conn, client) in &sim.clients {
        let mut ended = BTreeSet::new();
        for (_, _, message) in &client.log {
            let call = match message {
                ServerMessage::CallInitiated(c) | ServerMessage::CallAccepted(c) => {
                    Some(&c.call_id)
                }
                ServerMessage::CallEnded(c) => Some(&c.call_id),
                ServerMessage::Offer(o) => o.call_id.as_ref(),
                ServerMessage::Answer(a) => a.call_id.as_ref(),
                ServerMessage::IceCandidate(i) => i.call_id.as_ref(),
                _ => None,
            };
            let Some(call) = call else { continue };
            prop_assert!(
                !ended.contains(call),
                "{conn} heard {message:?} after the call ended"
            );
            if let ServerMessage::CallEnded(_) = message {
                ended.insert(call.clone());
            }
        }
    }
    // Clients read bbrt's fixed texts, never the site's (injected failures say
    // "injected ..."), and one wording for every unauthenticated cause.
    for client in sim.clients.values() {
        for (_, _, message) in &client.log {
            if let ServerMessage::Error(e) = message {
                prop_assert!(!e.message.contains("injected"), "the site's text: {e:?}");
                if matches!(
                    e.code,
                    ErrorCode::Unauthenticated | ErrorCode::SiteUnavailable
                ) {
                    prop_assert_eq!(e.message.as_str(), e.code.message());
                }
            }
        }
    }
    // Every frame with a requestId gets exactly one answer (at most one if its connection
    // is gone); a send_message's answer is an ack or an error.
    let mut answers: HashMap<i64, Vec<&'static str>> = HashMap::new();
    for client in sim.clients.values() {
        for (_, _, message) in &client.log {
            if let Some(rid) = request_id_of(message) {
                answers.entry(rid).or_default().push(message.kind());
            }
        }
    }
    for (rid, (conn, kind)) in &r.requests {
        let got = answers.get(rid).map(Vec::as_slice).unwrap_or_default();
        if sim.closed(*conn).is_some() {
            prop_assert!(
                got.len() <= 1,
                "{kind} #{rid} on closed {conn} answered {got:?}"
            );
        } else {
            prop_assert_eq!(
                got.len(),
                1,
                "{} #{} on {} answered {:?}",
                kind,
                rid,
                conn,
                got
            );
        }
        if kind == "send_message" && !got.is_empty() {
            prop_assert!(
                got[0] == "ack" || got[0] == "error",
                "send_message #{rid} answered {got:?}"
            );
        }
    }
    // The online set on every node equals the users with a live verified connection.
    let mut live = BTreeSet::new();
    for (conn, client) in &sim.clients {
        let node = &sim.nodes[client.node];
        if client.closed.is_none() && node.up {
            prop_assert!(
                node.hub.has_conn(*conn),
                "{conn} is open but its Hub forgot it"
            );
            if let Some(u) = node.hub.user_of(*conn) {
                live.insert(u.to_string());
            }
        }
    }
    for (i, node) in sim.nodes.iter().enumerate() {
        if node.up {
            let online: BTreeSet<String> = sim.online(i).into_iter().collect();
            prop_assert_eq!(&online, &live, "node {}", i);
            // The directory's kept counts are what a scan finds.
            prop_assert_eq!(
                node.hub.dir.counts(),
                node.hub.dir.scanned_counts(),
                "node {}",
                i
            );
            prop_assert_eq!(node.hub.stats().users_online, online.len(), "node {}", i);
        }
    }
    // No token ever appears in a Debug print of an input, an output or a Hub.
    let log = sim.debug_log.as_ref().expect("enabled");
    let hubs: Vec<String> = sim.nodes.iter().map(|n| format!("{:?}", n.hub)).collect();
    for token in &r.tokens {
        prop_assert!(
            !log.iter().any(|l| l.contains(token.as_str())),
            "token {token} in an input or output"
        );
        prop_assert!(
            !hubs.iter().any(|h| h.contains(token.as_str())),
            "token {token} in Hub state"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // BBRT_PROPTEST_CASES=10000 for a longer hunt.
        cases: std::env::var("BBRT_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        max_shrink_iters: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sessions_keep_every_invariant((nodes, real, variant, ops) in scenario()) {
        let mut r = run(nodes, real, variant, &ops);
        check(&r)?;
        // Everyone leaves; once every timer ran, nothing per connection or request is left.
        let open: Vec<ConnId> = r.sim.clients.iter().filter(|(_, c)| c.closed.is_none()).map(|(id, _)| *id).collect();
        for conn in open {
            if r.sim.nodes[r.sim.client(conn).node].up {
                r.sim.close(conn);
            }
        }
        r.sim.drive_for(Duration::from_secs(3600));
        for (i, node) in r.sim.nodes.iter().enumerate() {
            if node.up {
                let left = node.hub.leftovers();
                prop_assert!(left.is_empty(), "node {} keeps {:#?}", i, left);
            }
        }
    }
}

#[test]
#[ignore = "prints what random sessions exercise"]
fn coverage_of_random_sessions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for _ in 0..128 {
        let (nodes, real, variant, ops) = scenario().new_tree(&mut runner).unwrap().current();
        let r = run(nodes, real, variant, &ops);
        for client in r.sim.clients.values() {
            for (_, _, m) in &client.log {
                let key = match m {
                    ServerMessage::Error(e) => format!("error/{}", e.code.as_str()),
                    ServerMessage::CallEnded(e) => format!("call_ended/{:?}", e.reason),
                    m => m.kind().to_owned(),
                };
                *kinds.entry(key).or_default() += 1;
            }
            if let Some(c) = client.closed {
                *kinds.entry(format!("closed/{c:?}")).or_default() += 1;
            }
        }
    }
    println!("{kinds:#?}");
}
