//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bbrt_buddyboss::fake::FakeSite;
use bbrt_buddyboss::{Config, HttpBuddyBoss};
use bbrt_protocol::ids::{ThreadId, UserId};

/// A client for `root` with test-friendly settings: generous timeouts (the machine is
/// shared), fast retries, no reconcile delay. `tweak` adjusts them.
pub fn client_at(root: &str, tweak: impl FnOnce(&mut Config)) -> HttpBuddyBoss {
    let mut config = Config::new(root.parse().expect("valid API root"));
    config.request_timeout = Duration::from_secs(20);
    config.retry_backoff = Duration::from_millis(5);
    config.reconcile_delay = Duration::ZERO;
    tweak(&mut config);
    HttpBuddyBoss::new(config).expect("client builds")
}

pub fn client(site: &FakeSite) -> HttpBuddyBoss {
    client_at(&site.api_root(), |_| {})
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

pub fn thread(id: &str) -> ThreadId {
    ThreadId::new(id).expect("valid thread id")
}

/// Alice (2), bob (3), carol (4) as in the captures.
pub async fn seeded() -> FakeSite {
    FakeSite::start_seeded().await.expect("fake site starts")
}
