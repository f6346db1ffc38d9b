//! Random sequences of Hub inputs: connections opening and closing, frames (valid and not),
//! site and coordinator answers in any order, time passing. The Hub must never panic, never
//! deliver to a connection that is closed, and answer every request exactly once.
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
use bbrt_protocol::wire::{Limits, decode};
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
}

impl World {
    fn drain(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send { conns, .. } => {
                    for conn in conns {
                        assert!(self.open.contains(&conn), "delivered to closed {conn}");
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
    };
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
                    let frame = decode(&text, &limits).expect("templates are valid frames");
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
                        Ok(frame) => Input::Frame {
                            conn,
                            frame,
                            credential: None,
                        },
                        Err(error) => Input::Invalid { conn, error },
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
});
