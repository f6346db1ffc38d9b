//! The Hub's counters for metrics.

/// Counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections not yet identified.
    pub anonymous_connections: usize,
    /// Identified connections.
    pub verified_connections: usize,
    /// Users with a verified connection on this node.
    pub local_users_online: usize,
    /// Users online on any node.
    pub users_online: usize,
    /// Calls this node knows of.
    pub calls: usize,
    /// Frames refused for the frame rate limit, since start.
    pub rate_limited: u64,
    /// Anonymous connections evicted, since start.
    pub anonymous_evicted: u64,
    /// Frames delivered to local connections (one per recipient), since start.
    pub deliveries: u64,
    /// Site requests waiting for their result.
    pub api_in_flight: usize,
    /// Threads in the participant cache.
    pub cached_threads: usize,
    /// Publications received from another process with this node's id, since start.
    pub node_id_conflict_publications: u64,
    /// Site events the driver handed over, since start.
    pub site_events: u64,
    /// `message.sent` events not delivered (bbrt's own send, or an id already delivered).
    pub site_messages_skipped: u64,
    /// Threads with a replay window.
    pub window_threads: usize,
    /// Bytes the replay windows hold (frames and per-entry overhead).
    pub window_bytes: usize,
    /// Site catch-ups (history requests) in flight.
    pub site_catchups_in_flight: usize,
    /// Resumes served from the window, since start.
    pub replays_window: u64,
    /// Resumes that went to the site's history, since start.
    pub replays_site: u64,
    /// Resumes answered with `reload` (too far behind), since start.
    pub replays_reload: u64,
    /// Scaled out: messages delivered without a position because the coordinator could
    /// not give one (Redis unreachable), since start.
    pub positions_unavailable: u64,
    /// Scaled out: gaps in a thread's positions given up after
    /// [`HubConfig::order_wait`](super::HubConfig::order_wait) (the messages after it went
    /// out without it), since start.
    pub order_gaps: u64,
    /// Scaled out: gaps in a thread's positions filled from its shared window (a
    /// publication lost on the way), since start.
    pub order_gaps_filled: u64,
}
