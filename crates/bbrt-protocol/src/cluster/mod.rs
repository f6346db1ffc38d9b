//! The rules a scaled-out deployment shares, without the I/O that carries them.
//!
//! - [`NodeWatch`]: which other nodes are alive, from what a heartbeat sees (members of the
//!   node set, their heartbeat keys, goodbyes, publications heard) and the time. The Redis
//!   link in `bbrt-server` feeds it and acts on its verdicts.
//! - [`ClaimTable`]: the coordinator's claims (idempotency records of sends, the first
//!   device to answer a call), answering [`CoordRequest`](crate::hub::CoordRequest)s. The
//!   in-process coordinator and the Hub's simulator keep their claims in one; Redis keeps
//!   the same rules in its keys and scripts, and one contract test suite runs against both.
//!
//! - [`SharedWindows`]: the position authority and replay windows of every thread
//!   (`docs/protocol.md`, "Recovery"), for the same two; Redis keeps them in its keys.
//!
//! None reads a clock: `now` (and the wall clock's Unix seconds, where a record notes
//! it) comes in as an argument, so both are tested on virtual time.

mod claims;
mod liveness;
mod windows;

pub use self::claims::{ClaimTable, ClaimTtls, Claimed, SendDigest};
pub use self::liveness::{Goodbye, LivenessConfig, NodeWatch, Verdict};
pub use self::windows::SharedWindows;
