//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bbrt_buddyboss::fake::FakeSite;
use bbrt_buddyboss::{BuddyBossError, Config, Credential, HttpBuddyBoss};
use bbrt_protocol::api::SiteErrorKind;
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

/// The client timeout in tests that make the site hang: long enough that a loaded
/// machine does not time out a request that was answered.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(1);

pub fn alice() -> Credential {
    Credential::bearer("alice-token")
}

pub fn bob() -> Credential {
    Credential::bearer("bob-token")
}

pub fn carol() -> Credential {
    Credential::bearer("carol-token")
}

pub fn kind_code(e: &BuddyBossError) -> (SiteErrorKind, &str) {
    (e.kind(), e.code())
}

/// Waits (bounded) until the fake site holds `n` messages in `t`.
pub async fn until_stored(site: &FakeSite, t: u64, n: usize) {
    for _ in 0..200 {
        if site.messages(t).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the site never stored message {n} of thread {t}");
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}
