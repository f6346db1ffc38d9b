//! The Hub's rules and limits: one type, one default for each.

use std::time::Duration;

use crate::ids::{InstanceId, NodeId};

/// Who hears `user_connected` / `user_disconnected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresenceScope {
    /// Connections that joined a thread in which the user is a participant (default: the
    /// seed's broadcast to everyone is O(N²)).
    #[default]
    Threads,
    /// Every connection, as the seed's server did; for small sites.
    All,
}

/// Rules and limits. Every limit a client can hit has a default here.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// This node's id; prefixes call ids and tags broker publications.
    pub node_id: NodeId,
    /// This process: tags broker publications beside `node_id`, and is what tells a
    /// publication of this Hub's own (ignored) from one of another process that was given
    /// the same node id (applied, and reported: [`Hub::node_id_conflict`](crate::hub::Hub::node_id_conflict)). The driver
    /// chooses it at random at start-up.
    pub instance: InstanceId,
    /// Whether other nodes exist: without it nothing is published to the broker.
    pub cluster: bool,
    /// Who hears presence.
    pub presence_scope: PresenceScope,
    /// How long a thread's participants are trusted without asking the site again.
    pub participants_ttl: Duration,
    /// How often a credential in use is verified again.
    pub credential_ttl: Duration,
    /// Forward at most one `typing` per (user, thread) this often.
    pub typing_interval: Duration,
    /// A `typing` not refreshed within this becomes `typing: false`.
    pub typing_expiry: Duration,
    /// A call nobody answers ends after this.
    pub ring_timeout: Duration,
    /// A call whose bound device disconnected ends after this unless it comes back.
    pub call_grace: Duration,
    /// Frames that may wait behind a site request on one connection.
    pub max_queued_per_conn: usize,
    /// Threads one connection may join.
    pub max_threads_per_conn: usize,
    /// Verified connections one user may hold on this node.
    pub max_conns_per_user: usize,
    /// Anonymous connections per IP address; the oldest is evicted beyond it.
    pub max_anonymous_per_ip: usize,
    /// Anonymous connections in total; the oldest is evicted beyond it.
    pub max_anonymous_total: usize,
    /// Sustained frames per second per connection.
    pub frame_rate: f64,
    /// Burst of frames per connection above the sustained rate.
    pub frame_burst: f64,
    /// Over-limit frames in a row after which the connection is closed (4008).
    pub close_after_violations: u32,
    /// `call_initiated` (and implicit invites) per user per minute.
    pub invites_per_minute: usize,
    /// `get_ice_servers` answered per user per minute; beyond it `rate_limited`.
    pub ice_requests_per_minute: usize,
    /// Sends of one user waiting for the site at once.
    pub max_pending_sends_per_user: usize,
    /// How long a completed `clientMessageId` is remembered locally.
    pub idempotency_ttl: Duration,
    /// First wait before verifying again an upgrade credential the site could not verify
    /// (it was down); doubled per attempt up to [`HubConfig::verify_retry_max`].
    pub verify_retry_initial: Duration,
    /// Longest wait between two verifications of an upgrade credential.
    pub verify_retry_max: Duration,
    /// Seeds the jitter of those retries, so credentials retried after one outage spread
    /// out instead of stampeding the site when it comes back. The Hub holds no randomness:
    /// the server passes a random seed; tests a fixed one.
    pub jitter_seed: u64,
    /// Recovery (`docs/protocol.md`, "Recovery"): messages kept per thread for replay.
    pub window_messages: usize,
    /// Recovery: encoded bytes kept per thread for replay (the oldest go first).
    pub window_bytes: usize,
    /// Recovery: threads with a window; the one appended to least recently goes first
    /// (its positions start a new epoch if it comes back).
    pub window_threads: usize,
    /// Recovery: a client further behind than this many messages is told to reload the
    /// thread instead of being replayed to.
    pub max_replay: usize,
    /// A user whose last connection closed stays online this long, so a reconnect within it
    /// is not told to others as offline and online (zero: offline at once).
    pub presence_grace: Duration,
    /// Recovery: catch-ups from the site (history requests) in flight at once; more wait
    /// in order.
    pub max_site_catchups: usize,
    /// Scaled out: how long a thread's message that arrives before its predecessor waits
    /// for it before both go out, past the gap (`hub::ordering`).
    pub order_wait: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            node_id: NodeId::new("n1").expect("a valid literal id"),
            instance: InstanceId::new("i1").expect("a valid literal id"),
            cluster: false,
            presence_scope: PresenceScope::Threads,
            participants_ttl: Duration::from_secs(60),
            credential_ttl: Duration::from_secs(300),
            typing_interval: Duration::from_secs(2),
            typing_expiry: Duration::from_secs(5),
            ring_timeout: Duration::from_secs(90),
            call_grace: Duration::from_secs(10),
            max_queued_per_conn: 32,
            max_threads_per_conn: 100,
            max_conns_per_user: 32,
            max_anonymous_per_ip: 256,
            max_anonymous_total: 10_000,
            frame_rate: 50.0,
            frame_burst: 100.0,
            close_after_violations: 50,
            invites_per_minute: 10,
            ice_requests_per_minute: 10,
            max_pending_sends_per_user: 64,
            idempotency_ttl: Duration::from_secs(600),
            verify_retry_initial: Duration::from_secs(1),
            verify_retry_max: Duration::from_secs(30),
            jitter_seed: 0,
            window_messages: 100,
            window_bytes: 64 * 1024,
            window_threads: 10_000,
            max_replay: 500,
            max_site_catchups: 8,
            presence_grace: Duration::from_secs(5),
            order_wait: Duration::from_millis(250),
        }
    }
}
