//! This process's identity in a deployment: its node id (configured, or chosen at random),
//! its instance id (always random), and the host name, which goes in logs only.
//!
//! The rules are in `docs/scaling.md` ("Node identity"): a node id is short because every
//! call id carries it, and unique per process by default so that two nodes started with the
//! same flags never take each other's publications for their own.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};

use bbrt_protocol::ids::{InstanceId, NodeId};

/// Characters of a random default node id (40 bits).
const NODE_ID_CHARS: usize = 8;
/// Characters of an instance id (80 bits).
const INSTANCE_ID_CHARS: usize = 16;
/// RFC 4648 base32, lowercase: every character is valid in an id.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Who this process is.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The configured node id, or a random one.
    pub(crate) node: NodeId,
    /// Whether `node` was configured (`--node-id`) rather than chosen at random.
    pub(crate) configured: bool,
    /// Random, never reused: tells this process apart from any other with the same node id.
    pub(crate) instance: InstanceId,
}

impl Identity {
    /// The identity of a process started with `configured` as its `--node-id`.
    pub(crate) fn new(configured: Option<&NodeId>) -> Self {
        let node = configured.cloned().unwrap_or_else(random_node_id);
        Self {
            node,
            configured: configured.is_some(),
            instance: random_instance_id(),
        }
    }
}

/// A fresh random node id: 8 base32 characters.
pub(crate) fn random_node_id() -> NodeId {
    NodeId::new(&random_base32(NODE_ID_CHARS)).expect("base32 characters form a valid id")
}

/// A fresh random instance id: 16 base32 characters.
pub(crate) fn random_instance_id() -> InstanceId {
    InstanceId::new(&random_base32(INSTANCE_ID_CHARS)).expect("base32 characters form a valid id")
}

/// The machine's host name, for logs (never an id: two processes on one host, or two hosts
/// of one name in two containers, would share it).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `len` random base32 characters. These ids must differ between processes, and need not
/// be secret: std's `RandomState` is keyed from the operating system's random source, and
/// a SipHash of a counter, the time and the pid under such a key is unpredictable enough
/// (no dependency needed for it).
fn random_base32(len: usize) -> String {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        let mut bits = hasher.finish();
        // 12 characters of 5 bits from each 64-bit draw.
        for _ in 0..12 {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE32[(bits & 31) as usize]));
            bits >>= 5;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_short_valid_and_differ() {
        let a = random_node_id();
        let b = random_node_id();
        assert_eq!(a.as_str().len(), NODE_ID_CHARS);
        assert_ne!(a, b);
        let i = random_instance_id();
        assert_eq!(i.as_str().len(), INSTANCE_ID_CHARS);
        assert_ne!(i, random_instance_id());
        let configured = NodeId::new("n1").expect("valid");
        let me = Identity::new(Some(&configured));
        assert_eq!(me.node, configured);
        assert!(me.configured);
        assert_ne!(me.instance, Identity::new(Some(&configured)).instance);
        assert!(!Identity::new(None).configured);
    }
}
