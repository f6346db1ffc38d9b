//! Reconnect-storm figures for issue 20, on the Hub driven directly with a simulated site
//! (virtual time for the site's latency, the real clock for the Hub's own CPU time):
//! `CLIENTS` clients in `THREADS_PER_CLIENT` threads each drop at once, a writer posts
//! `MISSED` messages to every thread, and every client comes back with one `resume` of its
//! threads. Run twice: resuming by position from the window, and by message id with a
//! window too small to hold what was missed (the site's history serves).
//!
//! `cargo run --release -p bbrt-bench --bin recovery-figures [CLIENTS] [LATENCY_MS] [CATCHUPS]`

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bbrt_protocol::api::{
    ApiRequest, ApiResponse, HistoryPage, SiteUser, StoredMessage, ThreadInfo,
};
use bbrt_protocol::hub::{Hub, HubConfig, Input, Output};
use bbrt_protocol::ids::{ApiRequestId, ConnId, MessageId, ThreadId, UserId};
use bbrt_protocol::wire::ServerMessage;
use bbrt_protocol::{Limits, decode};

const THREADS_PER_CLIENT: usize = 3;
/// Clients per thread.
const GROUP: usize = 10;
const MISSED: usize = 5;
/// The simulated site's page size (BuddyBoss's default `per_page`).
const PAGE: usize = 20;

/// The site: every thread's messages, in order.
struct Site {
    threads: HashMap<ThreadId, Vec<UserId>>,
    stored: HashMap<ThreadId, Vec<StoredMessage>>,
    next_id: u64,
}

impl Site {
    fn answer(&mut self, request: ApiRequest) -> ApiResponse {
        match request {
            ApiRequest::Verify { claimed_user, .. } => ApiResponse::User(SiteUser {
                id: claimed_user.expect("bare user_connected claims a user"),
                name: "Bench User".to_owned(),
                avatar: None,
            }),
            ApiRequest::Participants { thread, .. } => ApiResponse::Participants(ThreadInfo {
                participants: self.threads[&thread].clone(),
                thread,
                last_message: None,
            }),
            ApiRequest::Send {
                sender,
                thread,
                text,
                ..
            } => {
                let thread = thread.expect("sends name their thread");
                self.next_id += 1;
                let stored = StoredMessage {
                    id: MessageId::new(&self.next_id.to_string()).expect("valid id"),
                    thread: thread.clone(),
                    sender,
                    text,
                    html: None,
                    // One second per message, so the site's paging is never stuck.
                    sent_at: format!(
                        "2026-11-25T{:02}:{:02}:{:02}Z",
                        self.next_id / 3600 % 24,
                        self.next_id / 60 % 60,
                        self.next_id % 60
                    ),
                    participants: self.threads[&thread].clone(),
                };
                self.stored.entry(thread).or_default().push(stored.clone());
                ApiResponse::Stored(stored)
            }
            ApiRequest::History { thread, before, .. } => {
                let all: Vec<&StoredMessage> = self.stored[&thread]
                    .iter()
                    .filter(|m| before.as_ref().is_none_or(|b| m.sent_at <= *b))
                    .collect();
                let start = all.len().saturating_sub(PAGE);
                let messages: Vec<StoredMessage> =
                    all[start..].iter().map(|m| (*m).clone()).collect();
                let next_before = (start > 0).then(|| messages[0].sent_at.clone());
                ApiResponse::History(HistoryPage {
                    messages,
                    next_before,
                })
            }
            _ => ApiResponse::MarkedRead,
        }
    }
}

/// The Hub, the site, virtual time and what was measured.
struct Run {
    hub: Hub,
    site: Site,
    now: Instant,
    latency: Duration,
    /// Site requests in flight: when each is answered.
    due: BTreeMap<(Instant, u64), (ApiRequestId, ApiRequest)>,
    seq: u64,
    history_requests: usize,
    peak_history: usize,
    in_flight_history: usize,
    /// Frames per connection, decoded.
    frames: HashMap<ConnId, Vec<ServerMessage>>,
    hub_cpu: Duration,
}

impl Run {
    fn handle(&mut self, input: Input) {
        let started = Instant::now();
        self.hub.handle(self.now, input);
        let mut outputs = Vec::new();
        while let Some(output) = self.hub.poll_output() {
            outputs.push(output);
        }
        self.hub_cpu += started.elapsed();
        for output in outputs {
            match output {
                Output::Send { conns, frame } => {
                    let message = ServerMessage::decode(&frame).expect("server frames decode");
                    for conn in conns {
                        self.frames.entry(conn).or_default().push(message.clone());
                    }
                }
                Output::Api { id, request } => {
                    let latency = match request {
                        ApiRequest::History { .. } => {
                            self.history_requests += 1;
                            self.in_flight_history += 1;
                            self.peak_history = self.peak_history.max(self.in_flight_history);
                            self.latency
                        }
                        _ => Duration::ZERO,
                    };
                    self.seq += 1;
                    self.due
                        .insert((self.now + latency, self.seq), (id, request));
                }
                _ => {}
            }
        }
    }

    /// Answers site requests in time order until none is left.
    fn settle(&mut self) {
        while let Some(((at, _), (id, request))) = self.due.pop_first() {
            self.now = self.now.max(at);
            if matches!(request, ApiRequest::History { .. }) {
                self.in_flight_history -= 1;
            }
            let result = Ok(self.site.answer(request));
            self.handle(Input::ApiResult { id, result });
        }
    }

    fn frame(&mut self, conn: ConnId, json: &str) {
        let frame = decode(json, &Limits::default()).expect("a valid frame");
        self.handle(Input::Frame {
            conn,
            frame,
            credential: None,
        });
    }

    fn open(&mut self, conn: ConnId, user: &UserId) {
        self.handle(Input::Open {
            conn,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            credential: None,
        });
        self.frame(
            conn,
            &format!(r#"{{"type":"user_connected","userId":"{user}"}}"#),
        );
    }
}

fn threads_of(client: usize, clients: usize) -> Vec<ThreadId> {
    let groups = clients / GROUP;
    (0..THREADS_PER_CLIENT)
        .map(|k| ThreadId::new(&format!("{}", 1 + k * groups + client % groups)).expect("valid id"))
        .collect()
}

fn storm(clients: usize, latency: Duration, catchups: usize, by_position: bool) {
    let writer = UserId::new("writer").expect("valid id");
    let users: Vec<UserId> = (0..clients)
        .map(|i| UserId::new(&format!("u{i}")).expect("valid id"))
        .collect();
    let mut site = Site {
        threads: HashMap::new(),
        stored: HashMap::new(),
        next_id: 0,
    };
    for (i, user) in users.iter().enumerate() {
        for t in threads_of(i, clients) {
            site.threads
                .entry(t)
                .or_insert_with(|| vec![writer.clone()])
                .push(user.clone());
        }
    }
    let config = HubConfig {
        frame_rate: 1e12,
        frame_burst: 1e12,
        max_anonymous_total: clients * 4,
        max_anonymous_per_ip: clients * 4,
        max_pending_sends_per_user: 1 << 20,
        // Past the window: it holds fewer than were missed.
        window_messages: if by_position { 100 } else { 2 },
        max_site_catchups: catchups,
        ..HubConfig::default()
    };
    let mut run = Run {
        hub: Hub::new(config),
        site,
        now: Instant::now(),
        latency,
        due: BTreeMap::new(),
        seq: 0,
        history_requests: 0,
        peak_history: 0,
        in_flight_history: 0,
        frames: HashMap::new(),
        hub_cpu: Duration::ZERO,
    };
    let w = ConnId(u64::MAX);
    run.open(w, &writer);
    for (i, user) in users.iter().enumerate() {
        run.open(ConnId(i as u64), user);
        for t in threads_of(i, clients) {
            run.frame(
                ConnId(i as u64),
                &format!(r#"{{"type":"join_thread","threadId":"{t}"}}"#),
            );
        }
    }
    run.settle();
    // One message each, so every client holds a point in every thread.
    let all_threads: Vec<ThreadId> = run.site.threads.keys().cloned().collect();
    for t in &all_threads {
        run.frame(
            w,
            &format!(r#"{{"type":"send_message","threadId":"{t}","message":"before"}}"#),
        );
    }
    run.settle();
    let mut points: Vec<Vec<String>> = Vec::new();
    for i in 0..clients {
        let mut last = HashMap::new();
        for m in run.frames.remove(&ConnId(i as u64)).unwrap_or_default() {
            if let ServerMessage::Message(m) = m {
                let point = match (&m.position, by_position) {
                    (Some(p), true) => format!(
                        r#""since":{{"offset":{},"epoch":"{}"}}"#,
                        p.offset,
                        p.epoch.as_str()
                    ),
                    _ => format!(r#""sinceMessageId":"{}""#, m.id),
                };
                last.insert(m.thread_id.clone(), point);
            }
        }
        points.push(
            threads_of(i, clients)
                .iter()
                .map(|t| format!(r#"{{"threadId":"{t}",{}}}"#, last[t]))
                .collect(),
        );
        run.handle(Input::Close {
            conn: ConnId(i as u64),
        });
    }
    for _ in 0..MISSED {
        for t in &all_threads {
            run.frame(
                w,
                &format!(r#"{{"type":"send_message","threadId":"{t}","message":"missed"}}"#),
            );
        }
    }
    run.settle();
    run.frames.clear();
    let (start, cpu_before) = (run.now, run.hub_cpu);
    for (i, point) in points.iter().enumerate() {
        let conn = ConnId((clients + i) as u64);
        run.open(conn, &users[i]);
        run.frame(
            conn,
            &format!(r#"{{"type":"resume","threads":[{}]}}"#, point.join(",")),
        );
    }
    run.settle();
    let caught_up = run.now - start;
    let (mut replayed, mut complete) = (0, 0);
    for i in 0..clients {
        for m in run
            .frames
            .remove(&ConnId((clients + i) as u64))
            .unwrap_or_default()
        {
            match m {
                ServerMessage::Message(_) => replayed += 1,
                ServerMessage::Resumed(r) if r.complete => complete += 1,
                _ => {}
            }
        }
    }
    let stats = run.hub.stats();
    println!(
        "{}: {clients} clients x {THREADS_PER_CLIENT} threads x {MISSED} missed; site latency {} ms, at most {} catch-ups at once",
        if by_position {
            "window (since)"
        } else {
            "site (sinceMessageId, window of 2)"
        },
        latency.as_millis(),
        catchups,
    );
    println!(
        "  replayed {replayed} messages, {complete}/{} threads complete; caught up after {:.3} s (virtual); Hub CPU {:.1} ms",
        clients * THREADS_PER_CLIENT,
        caught_up.as_secs_f64(),
        (run.hub_cpu - cpu_before).as_secs_f64() * 1e3,
    );
    println!(
        "  site history requests {}, peak in flight {}; windows {} threads, {} bytes ({} per thread)",
        run.history_requests,
        run.peak_history,
        stats.window_threads,
        stats.window_bytes,
        stats.window_bytes / stats.window_threads.max(1),
    );
}

fn main() {
    let arg = |i: usize, default: u64| -> u64 {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let clients = arg(1, 1000) as usize;
    let latency = Duration::from_millis(arg(2, 50));
    assert!(
        clients >= GROUP && clients.is_multiple_of(GROUP),
        "CLIENTS must be a multiple of {GROUP}"
    );
    let catchups = arg(3, HubConfig::default().max_site_catchups as u64) as usize;
    storm(clients, latency, catchups, true);
    storm(clients, latency, catchups, false);
}
