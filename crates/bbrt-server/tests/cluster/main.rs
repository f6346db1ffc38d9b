//! Several real `bbrt-server` processes as one service through Redis, with real WebSocket
//! clients spread across them, all against one fake BuddyBoss site (as production nodes
//! share one site). Each test has its own Redis prefix on the shared Redis at 127.0.0.1:6379
//! (`scripts/test.sh` starts it), except the one that restarts Redis: it runs a private
//! `redis-server` on a free port.
//!
//! Users on the seeded site: alice = 2, bob = 3, carol = 4, with `<login>-token` bearers.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod calls;
mod nodes;
mod recovery;
mod redis_link;
mod traffic;
