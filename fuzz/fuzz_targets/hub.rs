//! Random sequences of Hub inputs: connections opening and closing, frames (valid and not),
//! site and coordinator answers in any order, time passing. The Hub must never panic, never
//! deliver to a connection that is closed, and answer every request exactly once: once the
//! site and the coordinator have answered everything still pending, every frame that
//! carried a `requestId` has had exactly one answer carrying it (`ack`, `error`, `joined`
//! or `pong`), or at most one if its connection was closed.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bbrt_protocol::api::{
    ApiRequest, ApiResponse, SiteError, SiteErrorKind, SiteUser, StoredMessage, ThreadInfo,
};
use bbrt_protocol::hub::{CoordRequest, CoordResponse, Hub, HubConfig, Input, Output};
use bbrt_protocol::ids::{ApiRequestId, ConnId, CoordRequestId, CredentialId, MessageId, UserId};
use bbrt_protocol::wire::{Limits, RequestId, ServerMessage, decode};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Open {
        conn: u8,
        ip: u8,
        credential: Option<u8>,
    },
    Frame {
        conn: u8,
        template: u8,
        a: u8,
        b: u8,
        credential: Option<u8>,
    },
    Raw {
        conn: u8,
        text: String,
    },
    Close {
        conn: u8,
    },
    AnswerApi {
        pick: u8,
        ok: bool,
        kind: u8,
    },
    AnswerCoord {
        pick: u8,
        won: bool,
    },
    Advance {
        millis: u16,
    },
}

const TEMPLATES: &[&str] = &[
    r#"{"type":"user_connected","userId":"u{a}"}"#,
    r#"{"type":"join_thread","threadId":"t{b}","requestId":{a}}"#,
    r#"{"type":"send_message","threadId":"t{b}","recipientId":"u{a}","message":"hi","requestId":{a}}"#,
    r#"{"type":"send_message","recipientId":"u{a}","message":"new","clientMessageId":"c{b}"}"#,
    r#"{"type":"typing","threadId":"t{b}"}"#,
    r#"{"type":"typing","threadId":"t{b}","typing":false}"#,
    r#"{"type":"mark_read","threadId":"t{b}","requestId":"r{a}"}"#,
    r#"{"type":"leave_thread","threadId":"t{b}"}"#,
    r#"{"type":"call_initiated","recipientId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"offer","offer":{"sdp":"x"},"senderId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"answer","answer":"y","recipientId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"ice-candidate","candidate":"c","recipientId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"call_accepted","recipientId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"call_rejected","recipientId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"call_ended","recipientId":"u{a}","threadId":"t{b}"}"#,
    r#"{"type":"ping","requestId":{a}}"#,
];

struct World {
    hub: Hub,
    now: Instant,
    open: BTreeSet<ConnId>,
    api: BTreeMap<ApiRequestId, ApiRequest>,
    coord: BTreeMap<CoordRequestId, CoordRequest>,
    next_message: u64,
    /// Answers seen per tracked `requestId` (each template frame gets a fresh one).
    answers: BTreeMap<i64, u32>,
    /// Tracked `requestId` → the connection that sent it.
    asked: BTreeMap<i64, ConnId>,
}

/// Template frames get request ids from here up; a raw frame's id in this range is replaced,
/// so every tracked id names one frame.
const TRACKED: i64 = 1 << 40;

/// The `requestId` an answer carries, if it is one of ours.
fn tracked_answer(frame: &[u8]) -> Option<i64> {
    let message = ServerMessage::decode(frame).expect("the Hub emits frames it can decode");
    let id = match &message {
        ServerMessage::Ack(a) => a.request_id.as_ref(),
        ServerMessage::Error(e) => e.request_id.as_ref(),
        ServerMessage::Joined(j) => j.request_id.as_ref(),
        ServerMessage::Pong(p) => p.request_id.as_ref(),
        _ => None,
    };
    match id {
        Some(RequestId::Num(n)) if *n >= TRACKED => Some(*n),
        _ => None,
    }
}

/// Replaces a request id in the tracked range (a raw frame could name one by chance).
fn untrack(id: &mut Option<RequestId>) {
    if matches!(id, Some(RequestId::Num(n)) if *n >= TRACKED) {
        *id = Some(RequestId::Str("raw".into()));
    }
}

impl World {
    fn drain(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send { conns, frame } => {
                    for conn in &conns {
                        assert!(self.open.contains(conn), "delivered to closed {conn}");
                    }
                    if let Some(id) = tracked_answer(&frame) {
                        assert_eq!(conns.len(), 1, "answer #{id} went to {conns:?}");
                        assert_eq!(Some(&conns[0]), self.asked.get(&id), "answer #{id}");
                        *self.answers.entry(id).or_default() += 1;
                    }
                }
                Output::Close { conn, .. } => {
                    assert!(self.open.remove(&conn), "closed twice {conn}");
                }
                Output::Api { id, request } => {
                    assert!(self.api.insert(id, request).is_none(), "api id reused");
                }
                Output::Coord { id, request } => {
                    assert!(self.coord.insert(id, request).is_none(), "coord id reused");
                }
                _ => {}
            }
        }
    }

    fn answer_api(&mut self, pick: u8, ok: bool, kind: u8) {
        let Some(id) = self
            .api
            .keys()
            .nth(pick as usize % self.api.len().max(1))
            .copied()
        else {
            return;
        };
        let request = self.api.remove(&id).expect("picked from the map");
        let user = |s: &str| UserId::new(s).expect("valid");
        let result = if ok {
            Ok(match request {
                ApiRequest::Verify {
                    claimed_user,
                    current_user,
                    credential,
                    ..
                } => {
                    let id = claimed_user
                        .or(current_user)
                        .unwrap_or_else(|| user(&format!("u{}", credential.map_or(0, |c| c.0))));
                    ApiResponse::User(SiteUser {
                        id,
                        name: "n".into(),
                        avatar: None,
                    })
                }
                ApiRequest::Participants {
                    user: who, thread, ..
                } => ApiResponse::Participants(ThreadInfo {
                    thread,
                    participants: vec![who, user("u1"), user("u2")],
                    last_message: None,
                }),
                ApiRequest::Send {
                    sender,
                    thread,
                    recipients,
                    text,
                    ..
                } => {
                    self.next_message += 1;
                    let thread = thread
                        .unwrap_or_else(|| bbrt_protocol::ids::ThreadId::new("t9").expect("valid"));
                    let mut participants = recipients;
                    participants.push(sender.clone());
                    ApiResponse::Stored(StoredMessage {
                        id: MessageId::new(&self.next_message.to_string()).expect("valid"),
                        thread,
                        sender,
                        text,
                        html: None,
                        sent_at: "2026-11-25T00:00:00Z".into(),
                        participants,
                    })
                }
                _ => ApiResponse::MarkedRead,
            })
        } else {
            let kinds = [
                SiteErrorKind::Unauthenticated,
                SiteErrorKind::Forbidden,
                SiteErrorKind::Invalid,
                SiteErrorKind::InvalidId,
                SiteErrorKind::EmptyMessage,
                SiteErrorKind::IdempotencyConflict,
                SiteErrorKind::Refused,
                SiteErrorKind::Unavailable,
                SiteErrorKind::Unconfirmed,
                SiteErrorKind::Protocol,
            ];
            Err(SiteError::new(
                kinds[kind as usize % kinds.len()],
                "code",
                "message",
            ))
        };
        self.hub.handle(self.now, Input::ApiResult { id, result });
    }

    fn answer_coord(&mut self, pick: u8, won: bool) {
        let Some(id) = self
            .coord
            .keys()
            .nth(pick as usize % self.coord.len().max(1))
            .copied()
        else {
            return;
        };
        let request = self.coord.remove(&id).expect("picked from the map");
        let result = match request {
            CoordRequest::ClaimSend { .. } => CoordResponse::Claimed,
            CoordRequest::ClaimAnswer { .. } if won => CoordResponse::Won,
            CoordRequest::ClaimAnswer { .. } => CoordResponse::Lost,
            _ => CoordResponse::Ok,
        };
        self.hub.handle(self.now, Input::CoordResult { id, result });
    }
}

impl World {
    /// Answers everything the site and the coordinator were asked, and lets time pass (for
    /// retry backoffs), until nothing is pending and every tracked request on an open
    /// connection has an answer; bounded, so a request never answered fails the check.
    fn settle(&mut self) {
        for _ in 0..1000 {
            while !self.api.is_empty() || !self.coord.is_empty() {
                if !self.api.is_empty() {
                    self.answer_api(0, true, 0);
                } else {
                    self.answer_coord(0, true);
                }
                self.drain();
            }
            let waiting = self.asked.iter().any(|(id, conn)| {
                self.open.contains(conn) && !self.answers.contains_key(id)
            });
            if !waiting {
                return;
            }
            self.now += Duration::from_secs(10);
            self.hub.handle_timeout(self.now);
            self.drain();
        }
    }

    /// Every tracked request answered exactly once (at most once on a closed connection).
    fn check_answers(&self) {
        for (id, conn) in &self.asked {
            let got = self.answers.get(id).copied().unwrap_or(0);
            if self.open.contains(conn) {
                assert_eq!(got, 1, "request #{id} on open {conn} answered {got} times");
            } else {
                assert!(got <= 1, "request #{id} on closed {conn} answered {got} times");
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let config = HubConfig {
        max_anonymous_per_ip: 4,
        max_anonymous_total: 8,
        max_conns_per_user: 3,
        ..HubConfig::default()
    };
    let mut world = World {
        hub: Hub::new(config),
        now: start,
        open: BTreeSet::new(),
        api: BTreeMap::new(),
        coord: BTreeMap::new(),
        next_message: 0,
        answers: BTreeMap::new(),
        asked: BTreeMap::new(),
    };
    let mut next_request = TRACKED;
    let limits = Limits::default();
    let mut next_conn = 0u64;
    let conn_of = |n: u8, next: u64| ConnId(u64::from(n) % next.max(1));
    for op in ops.into_iter().take(400) {
        match op {
            Op::Open { ip, credential, .. } => {
                let conn = ConnId(next_conn);
                next_conn += 1;
                world.open.insert(conn);
                let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip % 4));
                let credential = credential.map(|c| CredentialId(u64::from(c % 4)));
                world.hub.handle(
                    world.now,
                    Input::Open {
                        conn,
                        ip,
                        credential,
                    },
                );
            }
            Op::Frame {
                conn,
                template,
                a,
                b,
                credential,
            } => {
                let conn = conn_of(conn, next_conn);
                let text = TEMPLATES[template as usize % TEMPLATES.len()]
                    .replace("{a}", &(a % 5).to_string())
                    .replace("{b}", &(b % 3).to_string());
                let credential = credential.map(|c| CredentialId(u64::from(c % 4)));
                if world.open.contains(&conn) {
                    let mut frame = decode(&text, &limits).expect("templates are valid frames");
                    if frame.request_id.is_some() {
                        frame.request_id = Some(RequestId::Num(next_request));
                        world.asked.insert(next_request, conn);
                        next_request += 1;
                    }
                    world.hub.handle(
                        world.now,
                        Input::Frame {
                            conn,
                            frame,
                            credential,
                        },
                    );
                }
            }
            Op::Raw { conn, text } => {
                let conn = conn_of(conn, next_conn);
                if world.open.contains(&conn) {
                    let input = match decode(&text, &limits) {
                        Ok(mut frame) => {
                            untrack(&mut frame.request_id);
                            Input::Frame {
                                conn,
                                frame,
                                credential: None,
                            }
                        }
                        Err(mut error) => {
                            untrack(&mut error.request_id);
                            Input::Invalid { conn, error }
                        }
                    };
                    world.hub.handle(world.now, input);
                }
            }
            Op::Close { conn } => {
                let conn = conn_of(conn, next_conn);
                world.open.remove(&conn);
                world.hub.handle(world.now, Input::Close { conn });
            }
            Op::AnswerApi { pick, ok, kind } => world.answer_api(pick, ok, kind),
            Op::AnswerCoord { pick, won } => world.answer_coord(pick, won),
            Op::Advance { millis } => {
                world.now += Duration::from_millis(u64::from(millis) * 20);
                world.hub.handle_timeout(world.now);
            }
        }
        world.drain();
        if let Some(at) = world.hub.poll_timeout() {
            assert!(at >= start, "timeout before the epoch");
        }
    }
    world.settle();
    world.check_answers();
});
