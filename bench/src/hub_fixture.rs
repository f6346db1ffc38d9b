//! The Hub driven directly, shared by the criterion benchmark (`benches/protocol.rs`) and
//! the instruction counts (`bench/hub-instructions.sh`): a Hub with `members` identified
//! connections (one per user) joined to thread "1", each site request answered at once.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bbrt_protocol::api::{ApiRequest, ApiResponse, SiteUser, StoredMessage, ThreadInfo};
use bbrt_protocol::hub::{Hub, HubConfig, Input, Output};
use bbrt_protocol::ids::{ConnId, MessageId, ThreadId, UserId};
use bbrt_protocol::{ClientFrame, Limits, decode};

fn user(i: usize) -> UserId {
    UserId::new(&(i + 1).to_string()).expect("valid id")
}

/// A Hub with `members` identified connections (one per user) joined to thread "1".
pub(crate) struct Fixture {
    hub: Hub,
    now: Instant,
    thread: ThreadId,
    participants: Vec<UserId>,
    next_message: u64,
    pub(crate) send: ClientFrame,
}

impl Fixture {
    pub(crate) fn new(members: usize) -> Self {
        let config = HubConfig {
            frame_rate: 1e12,
            frame_burst: 1e12,
            max_anonymous_total: members * 2,
            max_anonymous_per_ip: members * 2,
            max_pending_sends_per_user: 1 << 20,
            ..HubConfig::default()
        };
        let thread = ThreadId::new("1").expect("valid id");
        let participants: Vec<UserId> = (0..members).map(user).collect();
        let send = decode(
            r#"{"type":"send_message","threadId":"1","message":"Hello, this is a message."}"#,
            &Limits::default(),
        )
        .expect("a valid frame");
        let mut f = Self {
            hub: Hub::new(config),
            now: Instant::now(),
            thread,
            participants,
            next_message: 1,
            send,
        };
        let limits = Limits::default();
        for i in 0..members {
            let conn = ConnId(i as u64);
            f.input(Input::Open {
                conn,
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                credential: None,
            });
            let hello = format!(r#"{{"type":"user_connected","userId":"{}"}}"#, i + 1);
            let frame = decode(&hello, &limits).expect("a valid frame");
            f.input(Input::Frame {
                conn,
                frame,
                credential: None,
            });
            let join =
                decode(r#"{"type":"join_thread","threadId":"1"}"#, &limits).expect("a valid frame");
            f.input(Input::Frame {
                conn,
                frame: join,
                credential: None,
            });
        }
        assert_eq!(
            f.hub.stats().verified_connections,
            members,
            "every connection identified"
        );
        f
    }

    /// Handles `input`, answers every site request it leads to, and returns the deliveries.
    pub(crate) fn input(&mut self, input: Input) -> usize {
        self.now += Duration::from_micros(1);
        self.hub.handle(self.now, input);
        let mut deliveries = 0;
        let mut answers = Vec::new();
        loop {
            while let Some(output) = self.hub.poll_output() {
                match output {
                    Output::Send { conns, frame } => {
                        black_box(&frame);
                        deliveries += conns.len();
                    }
                    Output::Api { id, request } => answers.push(Input::ApiResult {
                        id,
                        result: Ok(self.answer(request)),
                    }),
                    _ => {}
                }
            }
            let Some(answer) = answers.pop() else { break };
            self.hub.handle(self.now, answer);
        }
        deliveries
    }

    fn answer(&mut self, request: ApiRequest) -> ApiResponse {
        match request {
            ApiRequest::Verify { claimed_user, .. } => ApiResponse::User(SiteUser {
                id: claimed_user.expect("bare user_connected claims a user"),
                name: "Bench User".to_owned(),
                avatar: None,
            }),
            ApiRequest::Participants { thread, .. } => ApiResponse::Participants(ThreadInfo {
                thread,
                participants: self.participants.clone(),
                last_message: None,
            }),
            ApiRequest::Send { sender, text, .. } => {
                self.next_message += 1;
                ApiResponse::Stored(StoredMessage {
                    id: MessageId::new(&self.next_message.to_string()).expect("valid id"),
                    thread: self.thread.clone(),
                    sender,
                    text,
                    html: None,
                    sent_at: "2026-11-25T00:48:52Z".to_owned(),
                    participants: self.participants.clone(),
                })
            }
            _ => ApiResponse::MarkedRead,
        }
    }
}
