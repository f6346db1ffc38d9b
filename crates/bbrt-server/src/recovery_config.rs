//! The reconnect-recovery flags (`docs/protocol.md`, "Recovery") and the presence grace,
//! flattened into
//! [`Config`](crate::config::Config); their defaults are the Hub's own.

use std::time::Duration;

use bbrt_protocol::hub::HubConfig;
use clap::Args;

/// How much bbrt keeps for clients that reconnect, and how far it goes to catch them up.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RecoveryConfig {
    /// Messages kept per thread for replay after a reconnect.
    #[arg(long, env = "BBRT_WINDOW_MESSAGES", default_value_t = HubConfig::default().window_messages)]
    pub window_messages: usize,

    /// Encoded bytes kept per thread for replay (the oldest messages go first).
    #[arg(long, env = "BBRT_WINDOW_BYTES", default_value_t = HubConfig::default().window_bytes)]
    pub window_bytes: usize,

    /// Threads with a replay window; the least recently used goes first.
    #[arg(long, env = "BBRT_WINDOW_THREADS", default_value_t = HubConfig::default().window_threads)]
    pub window_threads: usize,

    /// A client further behind than this many messages is told to reload the thread.
    #[arg(long, env = "BBRT_MAX_REPLAY", default_value_t = HubConfig::default().max_replay)]
    pub max_replay: usize,

    /// Site history catch-ups in flight at once; more wait in order.
    #[arg(long, env = "BBRT_MAX_SITE_CATCHUPS", default_value_t = HubConfig::default().max_site_catchups)]
    pub max_site_catchups: usize,

    /// A user whose last connection closed stays online this long, so a reconnect is not
    /// told to others as offline and online (0s: offline at once).
    #[arg(long, env = "BBRT_PRESENCE_GRACE", value_parser = crate::config::parse_duration, default_value = "5s")]
    pub presence_grace: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        Self {
            window_messages: hub.window_messages,
            window_bytes: hub.window_bytes,
            window_threads: hub.window_threads,
            max_replay: hub.max_replay,
            max_site_catchups: hub.max_site_catchups,
            presence_grace: hub.presence_grace,
        }
    }
}

impl RecoveryConfig {
    /// Sets these limits in `hub`.
    pub fn apply(&self, hub: &mut HubConfig) {
        hub.window_messages = self.window_messages;
        hub.window_bytes = self.window_bytes;
        hub.window_threads = self.window_threads;
        hub.max_replay = self.max_replay;
        hub.max_site_catchups = self.max_site_catchups;
        hub.presence_grace = self.presence_grace;
    }
}
