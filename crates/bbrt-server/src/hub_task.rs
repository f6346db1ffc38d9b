//! The task that owns the Hub: the only place it is touched, and the only `Instant::now()`
//! that feeds it.
//!
//! It takes inputs in bounded batches (results of site requests first, then connection
//! events, then the broker), drains `poll_output()` after each, and sleeps until
//! `poll_timeout()`. It never awaits a connection: delivery is a push onto a bounded
//! [`Outbox`]. A panic in the Hub ends this task, and the server then stops the process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bbrt_buddyboss::Credential;
use bbrt_protocol::Hub;
use bbrt_protocol::hub::{HubStats, IcePurpose, Input, Output};
use bbrt_protocol::ids::ConnId;
use bbrt_protocol::wire::ClientFrame;
use bbrt_protocol::wire::{CloseCode, ServerMessage};
use tokio::sync::{mpsc, oneshot};

use crate::broker::{Broker, BrokerInput};
use crate::executor::Executor;
use crate::metrics::{Metrics, NodeIdConflictSeen};
use crate::outbox::{CloseRequest, Outbox, Push};

/// Inputs taken per batch from one source before the others get a turn.
const BATCH: usize = 256;

/// What a connection tells the hub task. Credentials come as secrets (redacted in
/// `Debug`): the hub task puts them in the credential store right before the Hub sees
/// their ids, and applies the Hub's releases in the same order, so the store never drops
/// a credential the Hub is about to use.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// The upgrade completed.
    Open {
        conn: ConnId,
        ip: IpAddr,
        credential: Option<Credential>,
        outbox: Arc<Outbox>,
    },
    /// A decoded frame, with the token it carried.
    Frame {
        conn: ConnId,
        frame: ClientFrame,
        credential: Option<Credential>,
    },
    /// An invalid frame, or the connection's end.
    Input(Input),
}

/// Requests from the rest of the server.
#[derive(Debug)]
pub(crate) enum Control {
    /// Current counters.
    Stats(oneshot::Sender<HubStats>),
    /// Graceful shutdown: wait for site requests in flight (up to `grace`), then close
    /// every connection with 1001 and end.
    Shutdown { grace: Duration },
    /// A site event the events route verified and recorded.
    SiteEvent(Box<bbrt_protocol::site_event::SiteEvent>),
    /// A server-API command the route verified and recorded.
    SiteCommand(Box<bbrt_protocol::site_event::SiteCommand>),
    /// Which of `users` are online on any node.
    Online {
        users: Vec<bbrt_protocol::ids::UserId>,
        reply: oneshot::Sender<Vec<bbrt_protocol::ids::UserId>>,
    },
}

pub(crate) struct HubTask {
    pub(crate) hub: Hub,
    pub(crate) conns: HashMap<ConnId, Arc<Outbox>>,
    /// Mints the TURN credentials the Hub asks for (the secret stays here).
    pub(crate) ice: crate::ice::IceMinter,
    pub(crate) executor: Executor,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) metrics: Arc<Metrics>,
    /// Site answers that came back at once, for the Hub after the current outputs.
    pub(crate) answered: Vec<Input>,
    /// How long another process with this node's id counts as alive after it was last
    /// heard.
    pub(crate) node_id_conflict_live_for: Duration,
    /// Whether a conflict is in `metrics` (so that without one nothing is locked).
    pub(crate) node_id_conflict_shown: bool,
    /// Outboxes this batch pushed to that the hub task writes into itself once the batch
    /// is done (see [`Outbox::flush_direct`]).
    pub(crate) direct: Vec<Arc<Outbox>>,
}

pub(crate) struct Channels {
    pub(crate) events: mpsc::Receiver<ConnEvent>,
    pub(crate) results: mpsc::UnboundedReceiver<Input>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) broker: mpsc::Receiver<BrokerInput>,
}

fn close_request(code: CloseCode) -> CloseRequest {
    CloseRequest { code, flush: true }
}

impl HubTask {
    pub(crate) async fn run(mut self, mut ch: Channels) {
        let mut shutdown_deadline: Option<Instant> = None;
        loop {
            let timeout = self.hub.poll_timeout();
            let wake = async {
                match timeout {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let shutdown_tick = async {
                match shutdown_deadline {
                    Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(control) = ch.control.recv() => match control {
                    Control::Stats(reply) => {
                        let _ = reply.send(self.hub.stats());
                    }
                    Control::Shutdown { grace } => {
                        shutdown_deadline.get_or_insert(Instant::now() + grace);
                    }
                    Control::SiteEvent(event) => {
                        self.input(Instant::now(), Input::SiteEvent(*event));
                    }
                    Control::SiteCommand(command) => {
                        self.input(Instant::now(), Input::SiteCommand(*command));
                    }
                    Control::Online { users, reply } => {
                        let online = users.into_iter().filter(|u| self.hub.is_online(u)).collect();
                        let _ = reply.send(online);
                    }
                },
                () = wake => {
                    let now = Instant::now();
                    self.hub.handle_timeout(now);
                    self.drain();
                }
                Some(input) = ch.results.recv() => {
                    let now = Instant::now();
                    self.input(now, input);
                    for _ in 1..BATCH {
                        let Ok(input) = ch.results.try_recv() else { break };
                        self.input(now, input);
                    }
                    self.metrics.hub_batches.fetch_add(1, Ordering::Relaxed);
                }
                Some(event) = ch.events.recv() => {
                    // Let the other connections that are ready read their frames first:
                    // one larger batch means more frames per write for every recipient
                    // (fan-out benchmark, two 1 s runs each: 12 -> 14.5-14.9 frames per
                    // write).
                    tokio::task::yield_now().await;
                    let now = Instant::now();
                    self.event(now, event);
                    for _ in 1..BATCH {
                        let Ok(event) = ch.events.try_recv() else { break };
                        self.event(now, event);
                    }
                    self.metrics.hub_batches.fetch_add(1, Ordering::Relaxed);
                }
                Some(input) = ch.broker.recv() => {
                    let now = Instant::now();
                    self.broker_input(now, input);
                    for _ in 1..BATCH {
                        let Ok(input) = ch.broker.try_recv() else { break };
                        self.broker_input(now, input);
                    }
                    self.note_node_id_conflict();
                }
                () = shutdown_tick => {}
            }
            self.flush_direct();
            if let Some(deadline) = shutdown_deadline
                && (self.executor.in_flight.load(Ordering::Relaxed) == 0
                    || Instant::now() >= deadline)
            {
                // Results that arrived meanwhile still reach their clients.
                let now = Instant::now();
                while let Ok(input) = ch.results.try_recv() {
                    self.input(now, input);
                }
                for (_, outbox) in self.conns.drain() {
                    outbox.close(close_request(CloseCode::GoingAway));
                }
                self.executor.permits.close();
                // Nothing more is published from here: the other nodes can take this
                // one's users offline now.
                self.broker.goodbye().await;
                tracing::info!("hub stopped");
                return;
            }
        }
    }

    fn input(&mut self, now: Instant, input: Input) {
        self.handle(now, input);
        self.drain();
    }

    fn handle(&mut self, now: Instant, input: Input) {
        self.metrics.hub_inputs.fetch_add(1, Ordering::Relaxed);
        self.hub.handle(now, input);
    }

    fn broker_input(&mut self, now: Instant, input: BrokerInput) {
        match input {
            BrokerInput::Message(message) => self.input(now, Input::Broker(message)),
            BrokerInput::NodeDown(node) => self.input(now, Input::NodeDown { node }),
            BrokerInput::Resync => self.input(now, Input::Resync),
            BrokerInput::Snapshot => self.input(now, Input::PresenceSnapshot),
        }
    }

    /// Reports another process publishing with this node's id: an error log when it is
    /// first heard (or heard again after it went quiet), and what `/readyz` and `/metrics`
    /// show. Without one, a branch per broker batch.
    fn note_node_id_conflict(&mut self) {
        let heard = self.hub.node_id_conflict();
        if heard.is_none() && !self.node_id_conflict_shown {
            return;
        }
        self.node_id_conflict_shown = heard.is_some();
        let mut seen = self
            .metrics
            .node_id_conflict
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(heard) = heard else {
            if seen.take().is_some() {
                tracing::info!("the other process with this node id said goodbye");
            }
            return;
        };
        if seen
            .as_ref()
            .is_some_and(|s| s.instance == heard.instance && s.last_seen == heard.last_seen)
        {
            return;
        }
        let node = self.hub.config().node_id.clone();
        if seen
            .as_ref()
            .is_none_or(|s| s.instance != heard.instance || !s.live())
        {
            tracing::error!(
                %node,
                instance = %self.hub.config().instance,
                other_instance = %heard.instance,
                "another live process publishes with this node's id on this redis prefix: \
                 both keep serving, but calls between them do not connect and other nodes \
                 cannot tell them apart; give every node its own --node-id, or leave it \
                 unset for a random one"
            );
        }
        *seen = Some(NodeIdConflictSeen {
            node,
            instance: heard.instance.clone(),
            last_seen: heard.last_seen,
            live_for: self.node_id_conflict_live_for,
        });
    }

    fn event(&mut self, now: Instant, event: ConnEvent) {
        match event {
            ConnEvent::Open {
                conn,
                ip,
                credential,
                outbox,
            } => {
                self.conns.insert(conn, outbox);
                let credential = credential.map(|c| self.executor.credentials.acquire(conn, c));
                self.input(
                    now,
                    Input::Open {
                        conn,
                        ip,
                        credential,
                    },
                );
            }
            ConnEvent::Frame {
                conn,
                frame,
                credential,
            } => {
                let credential = credential.map(|c| self.executor.credentials.acquire(conn, c));
                self.input(
                    now,
                    Input::Frame {
                        conn,
                        frame,
                        credential,
                    },
                );
            }
            ConnEvent::Input(input) => {
                let closed = match &input {
                    Input::Close { conn } => Some(*conn),
                    _ => None,
                };
                self.input(now, input);
                if let Some(conn) = closed {
                    self.conns.remove(&conn);
                    self.executor.credentials.release_conn(conn);
                }
            }
        }
    }

    /// Performs every output the Hub has, and hands answers known at once straight back.
    fn drain(&mut self) {
        loop {
            self.perform_outputs();
            if self.answered.is_empty() {
                return;
            }
            let now = Instant::now();
            let mut answered = std::mem::take(&mut self.answered);
            for input in answered.drain(..) {
                self.handle(now, input);
            }
            // Keep the buffer's capacity for the next batch.
            self.answered = answered;
        }
    }

    fn send(&mut self, conns: Vec<ConnId>, frame: &bytes::Bytes) {
        self.metrics.frame_out(frame, conns.len());
        for conn in conns {
            let Some(outbox) = self.conns.get(&conn) else {
                continue;
            };
            match outbox.push(frame.clone()) {
                Push::Overflow => {
                    // The connection closes itself (4011) and then reports Close.
                    tracing::debug!(%conn, "slow consumer: outbound queue full");
                    self.conns.remove(&conn);
                }
                Push::Direct => self.direct.push(Arc::clone(outbox)),
                Push::Queued | Push::Closed => {}
            }
        }
    }

    /// Writes what this batch queued for idle connections straight into their sockets:
    /// one non-blocking write per connection, so a full socket costs one syscall and its
    /// task's wake-up, never a wait.
    fn flush_direct(&mut self) {
        for outbox in self.direct.drain(..) {
            outbox.flush_direct(&self.metrics);
        }
    }

    fn perform_outputs(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send { conns, frame } => self.send(conns, &frame),
                Output::IceServers {
                    conns,
                    user,
                    purpose,
                } => {
                    let request_id = match purpose {
                        IcePurpose::Requested(request_id) => request_id,
                        // Nothing to add to what the app already has.
                        _ if self.ice.is_empty() => continue,
                        _ => None,
                    };
                    let frames = self.ice.mint(&user, SystemTime::now(), request_id);
                    self.send(conns, &ServerMessage::IceServers(frames).encode());
                }
                Output::Close { conn, code } => {
                    if let Some(outbox) = self.conns.remove(&conn) {
                        outbox.close(close_request(code));
                    }
                    // The Hub has forgotten the connection: nothing it holds is used again.
                    self.executor.credentials.release_conn(conn);
                }
                Output::ReleaseCredential { conn, credential } => {
                    self.executor.credentials.release(conn, credential);
                }
                Output::Api { id, request } => {
                    if let Some(answer) = self.executor.api(id, request) {
                        self.answered.push(answer);
                    }
                }
                Output::Coord { id, request } => self.executor.coord(id, request),
                Output::Publish(message) => self.broker.publish(message),
                other => tracing::warn!(output = ?other, "unknown hub output"),
            }
        }
    }
}
