//! bbrt's protocol core: wire types, decoding with limits, and the [`Hub`], a sans-IO
//! state machine that routes messages, presence, typing and calls.
//!
//! **This crate does no I/O.** It never touches a socket, a clock, HTTP, randomness or a
//! secret: time comes in as `now: Instant` arguments, ids from counters, site calls leave as
//! [`hub::Output::Api`] and come back as [`hub::Input::ApiResult`], and credentials are
//! opaque [`ids::CredentialId`]s. (Its hash maps seed their hashers at random, std's and
//! foldhash's alike; no result depends on it.) The `bbrt-server` binary moves the bytes.
//!
//! See [`hub`] for the contract and the routing rules, and [`wire`] for the frames, the error
//! codes and the close codes.
//! [`cluster`] holds the rules a scaled-out deployment shares (node liveness, the
//! coordinator's claims), which `bbrt-server` feeds from Redis or keeps in memory.
//! [`devsite`] holds the embedded development site's rules, which `bbrt-buddyboss` serves
//! and the Hub's tests answer with.
#![warn(missing_docs)]

pub mod api;
pub mod cluster;
pub mod devsite;
mod hash;
pub mod hub;
pub mod ids;
pub mod secret;
pub mod site_event;
pub mod utc;
pub mod wire;

pub use crate::hub::{Hub, HubConfig, Input, Output};
pub use crate::wire::{ClientFrame, ClientMessage, Limits, ServerMessage, decode};
