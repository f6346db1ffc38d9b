//! `Sim`: one or more Hubs over a simulated broker, a simulated coordinator and a scripted
//! fake site, on a virtual clock (quinn's `Pair`, str0m's `TestRtc`).
//!
//! - `send` hands a frame to a Hub at the current virtual instant; nothing else happens
//!   until `drive*` is called.
//! - `drive()` lets in-flight work settle: site answers, coordination answers and broker
//!   deliveries, in time order, advancing the clock to each and firing every Hub timer due
//!   on the way. It does not jump to a Hub timer when no I/O is in flight (a Hub with a
//!   verified credential always has a re-verification timer, so it is never timer-idle):
//!   use `drive_for(d)` to let time pass.
//! - Every `Output::Send` is decoded with `ServerMessage::decode` and recorded on each
//!   recipient; delivering to a closed connection, or to a connection of another node,
//!   panics at once.
//!
//! Here: the simulator, its clock and its driving loop, and the coordinator (the claim
//! table); `outputs.rs` carries out what the Hubs ask, `site.rs` is the fake site,
//! `inbox.rs` what clients received. The scenarios are the sibling modules of `sim`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::api::{
    ApiRequest, ApiResponse, RECONCILE_LOOKBACK_SECS, SiteError, SiteErrorKind, SiteUser,
    StoredMessage,
};
use crate::cluster::{ClaimTable, ClaimTtls, Claimed, SharedWindows};
use crate::devsite::{DevSite, DevSiteError, Post, Stamp};
use crate::hub::{
    BrokerMessage, CoordRequest, CoordResponse, Hub, HubConfig, IcePurpose, Input, Output,
    SendFingerprint,
};
use crate::ids::{
    ApiRequestId, ConnId, CoordRequestId, CredentialId, InstanceId, NodeId, ThreadId, UserId,
};
use crate::wire::{CloseCode, IceServers, Limits, ServerMessage, decode};

mod inbox;
mod outputs;
mod site;

pub(crate) use self::site::Site;

/// The fake site's `sentAt` for every message (wall-clock time is data, not a clock).
pub(crate) const SENT_AT: &str = "2026-11-25T12:00:00Z";

/// The simulated coordinator's wall clock (Unix seconds) at the start.
const SIM_UNIX_EPOCH: i64 = 1_795_608_000;

/// Upper bound on steps in one `drive*` call; more means a livelock.
const MAX_STEPS: usize = 100_000;

pub(crate) fn uid(s: &str) -> UserId {
    UserId::new(s).expect("test user ids are valid")
}

pub(crate) fn tid(s: &str) -> ThreadId {
    ThreadId::new(s).expect("test thread ids are valid")
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The client went away (`Sim::close`).
    ByClient,
    /// The Hub closed it.
    ByServer(CloseCode),
    /// Its node went down.
    NodeDown,
}

/// One simulated client connection.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) node: usize,
    /// Frames received and not yet taken.
    pub(crate) inbox: VecDeque<ServerMessage>,
    /// Every frame ever received, with the instant and the user the connection was
    /// verified as then.
    pub(crate) log: Vec<(Instant, Option<UserId>, ServerMessage)>,
    pub(crate) closed: Option<Closed>,
    /// The user the Hub verified the connection as, once known.
    pub(crate) user: Option<UserId>,
}

/// The simulated coordinator (Redis in production): the claim table the in-process
/// coordinator keeps too, with the fingerprint as its digest.
#[derive(Debug)]
pub(crate) struct Coordinator {
    claims: ClaimTable<SendFingerprint>,
    /// Every thread's counter and window (Redis's keys in production).
    pub(crate) windows: SharedWindows,
    pub(crate) latency: Duration,
    pub(crate) requests: Vec<CoordRequest>,
    /// Answer every request `Unavailable` (Redis is down).
    pub(crate) unavailable: bool,
}

#[derive(Debug)]
enum Event {
    Api {
        node: usize,
        id: ApiRequestId,
        request: ApiRequest,
        token: Option<String>,
        failure: Option<SiteError>,
    },
    Coord {
        node: usize,
        id: CoordRequestId,
        request: CoordRequest,
    },
    Broker {
        node: usize,
        message: BrokerMessage,
    },
}

/// One Hub and whether its node is up.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) hub: Hub,
    pub(crate) up: bool,
    /// token → credential id, as the server's credential store does.
    store: HashMap<String, CredentialId>,
    tokens: HashMap<CredentialId, String>,
    /// The connections holding each credential; the secret is forgotten with the last.
    holders: HashMap<CredentialId, BTreeSet<ConnId>>,
}

/// The simulation. See the module docs.
#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) epoch: Instant,
    pub(crate) now: Instant,
    pub(crate) nodes: Vec<Node>,
    pub(crate) clients: BTreeMap<ConnId, Client>,
    pub(crate) site: Site,
    pub(crate) coord: Coordinator,
    pub(crate) broker_latency: Duration,
    /// Broker publications of these kinds (`"call_ended"`, `"presence"`...) are lost.
    pub(crate) broker_loses: Vec<&'static str>,
    pub(crate) limits: Limits,
    events: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    next_conn: u64,
    next_credential: u64,
    /// Every Input handed to a Hub and every Output taken from one, `Debug`-printed.
    pub(crate) debug_log: Option<Vec<String>>,
    /// Every `ReleaseCredential`, in order.
    pub(crate) releases: Vec<(ConnId, CredentialId)>,
    /// When each site request (`site.requests`, same order) was made.
    pub(crate) request_times: Vec<Instant>,
    /// Every `Output::IceServers` for ringing devices: (recipients, user). The sim is a
    /// server without ICE servers configured, so it sends nothing for them.
    pub(crate) ice_ringing: Vec<(Vec<ConnId>, UserId)>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// One Hub with the default configuration.
    pub(crate) fn new() -> Self {
        Self::with_config(1, |_| {})
    }

    /// One Hub whose configuration `tweak` adjusts.
    pub(crate) fn with(tweak: impl Fn(&mut HubConfig)) -> Self {
        Self::with_config(1, tweak)
    }

    /// `n` Hubs (`n1`, `n2`, ...) in one cluster.
    pub(crate) fn cluster(n: usize) -> Self {
        Self::with_config(n, |_| {})
    }

    /// `n` Hubs, each configured by `tweak` after its node id (`n1`, ...), instance (`i1`,
    /// ...) and cluster flag are set.
    pub(crate) fn with_config(n: usize, tweak: impl Fn(&mut HubConfig)) -> Self {
        // The one real clock reading: every other instant is derived from it.
        #[allow(clippy::disallowed_methods)]
        let epoch = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut config = HubConfig {
                    node_id: NodeId::new(&format!("n{}", i + 1)).expect("valid node id"),
                    instance: InstanceId::new(&format!("i{}", i + 1)).expect("valid instance"),
                    cluster: n > 1,
                    // The scenarios written before the grace expect offline at once; the
                    // grace has its own (`recovery`).
                    presence_grace: Duration::ZERO,
                    ..HubConfig::default()
                };
                tweak(&mut config);
                Node {
                    hub: Hub::new(config),
                    up: true,
                    store: HashMap::new(),
                    tokens: HashMap::new(),
                    holders: HashMap::new(),
                }
            })
            .collect();
        Self {
            epoch,
            now: epoch,
            nodes,
            clients: BTreeMap::new(),
            site: Site {
                default_latency: Duration::from_millis(20),
                ..Site::default()
            },
            coord: Coordinator {
                claims: ClaimTable::new(ClaimTtls {
                    in_flight: Duration::from_secs(30),
                    // Records and answers outlive every run.
                    record: Duration::from_secs(365 * 24 * 3600),
                    answer: Duration::from_secs(365 * 24 * 3600),
                }),
                windows: SharedWindows::new(100, 64 * 1024, 10_000),
                latency: Duration::from_millis(2),
                requests: Vec::new(),
                unavailable: false,
            },
            broker_latency: Duration::from_millis(1),
            broker_loses: Vec::new(),
            limits: Limits::default(),
            events: BTreeMap::new(),
            seq: 0,
            next_conn: 0,
            next_credential: 0,
            debug_log: None,
            releases: Vec::new(),
            request_times: Vec::new(),
            ice_ringing: Vec::new(),
        }
    }

    /// The simulated wall clock, Unix seconds.
    fn unix_now(&self) -> i64 {
        SIM_UNIX_EPOCH + self.elapsed().as_secs() as i64
    }

    /// Virtual time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    pub(crate) fn hub(&self, node: usize) -> &Hub {
        &self.nodes[node].hub
    }

    // ----- connections -----

    /// Opens an anonymous connection on node 0 from 10.0.0.1.
    pub(crate) fn open(&mut self) -> ConnId {
        self.open_on(0, ip(1), None)
    }

    /// Opens a connection on `node` from `ip`, with an upgrade credential if `token`.
    pub(crate) fn open_on(&mut self, node: usize, ip: IpAddr, token: Option<&str>) -> ConnId {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.clients.insert(
            conn,
            Client {
                node,
                inbox: VecDeque::new(),
                log: Vec::new(),
                closed: None,
                user: None,
            },
        );
        let credential = token.map(|t| self.credential(node, conn, t));
        self.handle(
            node,
            Input::Open {
                conn,
                ip,
                credential,
            },
        );
        conn
    }

    /// A connection on node 0 identified as `user` (bare `userId`, as the seed does).
    pub(crate) fn connect(&mut self, user: &str) -> ConnId {
        self.connect_on(0, user)
    }

    /// A connection on `node` identified as `user`.
    pub(crate) fn connect_on(&mut self, node: usize, user: &str) -> ConnId {
        let conn = self.open_on(node, ip(1), None);
        self.send(
            conn,
            serde_json::json!({"type": "user_connected", "userId": user}),
        );
        self.drive();
        assert_eq!(
            self.nodes[node].hub.user_of(conn).map(UserId::as_str),
            Some(user),
            "{user} not identified"
        );
        conn
    }

    /// Sends a client frame given as JSON.
    pub(crate) fn send(&mut self, conn: ConnId, frame: Value) {
        self.send_text(conn, &frame.to_string());
    }

    /// Sends a client text frame as is (the seed's examples, verbatim).
    pub(crate) fn send_text(&mut self, conn: ConnId, text: &str) {
        let node = self.client(conn).node;
        assert!(
            self.client(conn).closed.is_none(),
            "{conn} is closed; the client cannot send"
        );
        let input = match decode(text, &self.limits) {
            Ok(mut frame) => {
                let credential = frame
                    .message
                    .take_token()
                    .map(|t| self.credential(node, conn, t.expose()));
                Input::Frame {
                    conn,
                    frame,
                    credential,
                }
            }
            Err(error) => Input::Invalid { conn, error },
        };
        self.handle(node, input);
    }

    /// The client closes the connection.
    pub(crate) fn close(&mut self, conn: ConnId) {
        let node = self.client(conn).node;
        let client = self.clients.get_mut(&conn).expect("known connection");
        if client.closed.is_none() {
            client.closed = Some(Closed::ByClient);
            if let Some(user) = self.nodes[node].hub.user_of(conn) {
                client.user = Some(user.clone());
            }
            self.handle(node, Input::Close { conn });
            self.release_all(node, conn);
        }
    }

    /// The credential store: one id per (node, token) while a connection holds it.
    fn credential(&mut self, node: usize, conn: ConnId, token: &str) -> CredentialId {
        let n = &mut self.nodes[node];
        let id = match n.store.get(token) {
            Some(id) => *id,
            None => {
                self.next_credential += 1;
                let id = CredentialId(self.next_credential);
                n.store.insert(token.to_owned(), id);
                n.tokens.insert(id, token.to_owned());
                id
            }
        };
        n.holders.entry(id).or_default().insert(conn);
        id
    }

    /// `conn` no longer holds `id`; the last holder's release forgets the secret.
    fn release(&mut self, node: usize, conn: ConnId, id: CredentialId) {
        let n = &mut self.nodes[node];
        let last = n.holders.get_mut(&id).is_some_and(|h| {
            h.remove(&conn);
            h.is_empty()
        });
        if last {
            n.holders.remove(&id);
            if let Some(token) = n.tokens.remove(&id) {
                n.store.remove(&token);
            }
        }
    }

    /// A connection's end releases everything it held, as the server does.
    fn release_all(&mut self, node: usize, conn: ConnId) {
        let held: Vec<CredentialId> = self.nodes[node]
            .holders
            .iter()
            .filter(|(_, h)| h.contains(&conn))
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            self.release(node, conn, id);
        }
    }

    /// Credentials the node's store holds (for leak checks).
    pub(crate) fn credentials_held(&self, node: usize) -> usize {
        self.nodes[node].tokens.len()
    }

    pub(crate) fn client(&self, conn: ConnId) -> &Client {
        self.clients
            .get(&conn)
            .unwrap_or_else(|| panic!("unknown {conn}"))
    }

    // ----- nodes -----

    /// The node is lost: its connections drop, the others learn it through `NodeDown`.
    pub(crate) fn node_down(&mut self, node: usize) {
        self.nodes[node].up = false;
        for (conn, client) in &mut self.clients {
            if client.node == node && client.closed.is_none() {
                client.closed = Some(Closed::NodeDown);
                if let Some(user) = self.nodes[node].hub.user_of(*conn) {
                    client.user = Some(user.clone());
                }
            }
        }
        self.events.retain(|_, e| match e {
            Event::Api { node: n, .. }
            | Event::Coord { node: n, .. }
            | Event::Broker { node: n, .. } => *n != node,
        });
        let id = self.nodes[node].hub.config().node_id.clone();
        for other in 0..self.nodes.len() {
            if other != node && self.nodes[other].up {
                self.handle(other, Input::NodeDown { node: id.clone() });
            }
        }
    }

    // ----- driving -----

    /// Hands `input` to `node` now and processes its outputs.
    pub(crate) fn handle(&mut self, node: usize, input: Input) {
        if !self.nodes[node].up {
            return;
        }
        if let Some(log) = &mut self.debug_log {
            log.push(format!("{input:?}"));
        }
        self.nodes[node].hub.handle(self.now, input);
        self.outputs(node);
    }

    fn outputs(&mut self, node: usize) {
        while let Some(output) = self.nodes[node].hub.poll_output() {
            if let Some(log) = &mut self.debug_log {
                log.push(format!("{output:?}"));
            }
            self.output(node, output);
        }
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// Lets in-flight I/O settle (see the module docs).
    pub(crate) fn drive(&mut self) {
        self.run(None);
    }

    /// Lets `d` of virtual time pass, with every event and timer in it.
    pub(crate) fn drive_for(&mut self, d: Duration) {
        self.run(Some(self.now + d));
    }

    /// `drive`, failing if it takes more than `max_steps` steps (a livelock).
    pub(crate) fn drive_bounded(&mut self, max_steps: usize) {
        assert!(
            self.run_steps(None, max_steps),
            "not idle after {max_steps} steps: livelock"
        );
    }

    fn run(&mut self, deadline: Option<Instant>) {
        assert!(
            self.run_steps(deadline, MAX_STEPS),
            "not idle after {MAX_STEPS} steps: livelock"
        );
    }

    fn next_timer(&self) -> Option<Instant> {
        self.nodes
            .iter()
            .filter(|n| n.up)
            .filter_map(|n| n.hub.poll_timeout())
            .min()
    }

    /// Returns `false` if `max_steps` ran out.
    fn run_steps(&mut self, deadline: Option<Instant>, max_steps: usize) -> bool {
        for _ in 0..max_steps {
            let next_event = self.events.keys().next().map(|(at, _)| *at);
            let horizon = match (deadline, next_event) {
                (Some(d), _) => d,
                (None, Some(e)) => e,
                (None, None) => return true,
            };
            let next_timer = self.next_timer().filter(|t| *t <= horizon);
            let next_event = next_event.filter(|t| *t <= horizon);
            let Some(at) = [next_timer, next_event].into_iter().flatten().min() else {
                self.now = self.now.max(horizon);
                return true;
            };
            self.now = self.now.max(at);
            if next_timer.is_some_and(|t| t <= self.now) {
                self.fire_timers();
            } else {
                let (&key, _) = self.events.iter().next().expect("an event is due");
                let event = self.events.remove(&key).expect("present");
                self.process(event);
            }
        }
        false
    }

    fn fire_timers(&mut self) {
        for node in 0..self.nodes.len() {
            if self.nodes[node].up
                && self.nodes[node]
                    .hub
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
            {
                if let Some(log) = &mut self.debug_log {
                    log.push(format!(
                        "timeout {:?}",
                        self.nodes[node].hub.next_timeout_reason()
                    ));
                }
                self.nodes[node].hub.handle_timeout(self.now);
                self.outputs(node);
            }
        }
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Api {
                node,
                id,
                request,
                token,
                failure,
            } => {
                let result = match failure {
                    Some(error) => Err(error),
                    None => self.answer(&request, token),
                };
                self.handle(node, Input::ApiResult { id, result });
            }
            Event::Coord { node, id, request } => match self.coordinate(&request) {
                Some(result) => self.handle(node, Input::CoordResult { id, result }),
                // Another node holds the claim: ask again shortly.
                None => self.schedule(
                    self.now + Duration::from_millis(50),
                    Event::Coord { node, id, request },
                ),
            },
            Event::Broker { node, message } => self.handle(node, Input::Broker(message)),
        }
    }

    // ----- the coordinator -----

    /// `None`: not answerable yet (another node holds the claim).
    fn coordinate(&mut self, request: &CoordRequest) -> Option<CoordResponse> {
        if self.coord.unavailable {
            return Some(CoordResponse::Unavailable);
        }
        if let Some(answer) = self.coord.windows.request(self.now, request) {
            return Some(answer);
        }
        let now_unix = self.unix_now();
        match self
            .coord
            .claims
            .request(self.now, now_unix, request, |f| f)
        {
            Claimed::Answer(answer) => Some(answer),
            _ => None,
        }
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `10.0.0.<n>`.
pub(crate) fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

pub(crate) fn to_json(message: &ServerMessage) -> Value {
    serde_json::from_slice(&message.encode()).expect("server frames are JSON")
}

impl Hub {
    /// State still held: after every connection closed and every timer ran, all of it must
    /// be gone, the participant cache and the `denied` memo included (they forget once
    /// their entries are older than the participants TTL).
    pub(crate) fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let mut check = |name: &str, empty: bool, debug: &dyn std::fmt::Debug| {
            if !empty {
                left.push(format!("{name}: {debug:?}"));
            }
        };
        check("directory", self.dir.is_empty(), &self.dir);
        check("identity", self.identity.is_empty(), &self.identity);
        check(
            "api_pending",
            self.api_pending.is_empty(),
            &self.api_pending,
        );
        check(
            "coord_pending",
            self.coord_pending.is_empty(),
            &self.coord_pending,
        );
        check("sends", self.sends.is_empty(), &self.sends);
        check("typing", self.typing.is_empty(), &self.typing);
        check("calls", self.calls.is_empty(), &self.calls);
        check("timers", self.fx.timers.len() == 0, &self.fx.timers);
        check("threads", self.threads.is_empty(), &self.threads);
        check("recovery", self.recovery.is_idle(), &self.recovery);
        check("lingering", self.lingering.is_empty(), &self.lingering);
        check("outputs", self.fx.outputs.is_empty(), &self.fx.outputs);
        left
    }
}
