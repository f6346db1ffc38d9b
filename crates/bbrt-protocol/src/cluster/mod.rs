//! The rules a scaled-out deployment shares, without the I/O that carries them.
//!
//! - [`NodeWatch`]: which other nodes are alive, from what a heartbeat sees (members of the
//!   node set, their heartbeat keys, goodbyes, publications heard) and the time. The Redis
//!   link in `bbrt-server` feeds it and acts on its verdicts.
//!
//! It reads no clock: `now` (and the wall clock's Unix seconds, where a record notes
//! it) comes in as an argument, so it is tested on virtual time.

mod liveness;

pub use self::liveness::{Goodbye, LivenessConfig, NodeWatch, Verdict};
