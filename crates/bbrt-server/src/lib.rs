//! bbrt-server: runs the sans-IO [`Hub`](bbrt_protocol::Hub) on real WebSockets.
//!
//! This crate moves bytes and performs what the Hub asks; every routing rule lives in
//! `bbrt-protocol`, every site call in `bbrt-buddyboss`, WebSocket framing and the
//! upgrade handshake in `bbrt-ws`. Layout (after mini-redis):
//!
//! | module | does |
//! |---|---|
//! | `main.rs` | flags, logging, signals, runtime |
//! | [`config`] | every flag, its `BBRT_*` variable and default |
//! | `server` | listener, accept loop, caps, routing, upgrade, graceful shutdown |
//! | `http` | reading the request head, responses, upgrade credentials, client IP, Origins |
//! | `connection` | per-connection I/O: scratch-buffer reads, vectored writes, pings |
//! | `outbox` | the bounded outbound queue shared with the hub task |
//! | `hub_task` | the only owner of the Hub |
//! | `executor` | site and coordination requests, one result each |
//! | [`credentials`] | secrets, behind opaque `CredentialId`s |
//! | [`broker`] | in-process broker and coordinator behind traits |
//! | `node` | this process's node id (configured or random) and instance id |
//! | [`site_events`] | `POST /site/events`: the plugin's signed events, checked and deduplicated |
//! | [`metrics`] | Prometheus counters |
//!
//! ```no_run
//! # async fn demo() -> Result<(), bbrt_server::ServerError> {
//! let config = bbrt_server::config::Config { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
//! let server = bbrt_server::start(config).await?;
//! println!("ws://{}/", server.local_addr());
//! server.shutdown();
//! server.wait().await
//! # }
//! ```
//!
//! Decisions (connection I/O, limits, close codes) are in `docs/server.md`.
#![warn(missing_docs)]

pub mod broker;
pub mod config;
mod connection;
pub mod credentials;
mod executor;
mod http;
mod hub_task;
pub mod ice;
pub mod metrics;
mod node;
mod outbox;
mod server;
pub mod site_events;
mod site_health;
pub mod ticket;

pub use crate::server::{ServerError, ServerHandle, site_from_config, start, start_with_site};

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::increase_nofile_limit(hard)
}
