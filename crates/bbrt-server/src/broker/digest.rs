//! Keyed digests of send fingerprints: what an idempotency record keeps to tell a retry
//! from a reused `clientMessageId`, without anything from which the text could be guessed.
//!
//! The Hub's [`SendFingerprint`] is an unkeyed hash of the send's parameters; stored as
//! is, a short text ("ok", "yes") could be found by hashing guesses. The record keeps
//! HMAC-SHA256 of it under a key only the nodes hold (`--idempotency-secret`, or a random
//! one per process). A digest names its key by a short key id: digests made under
//! different keys (nodes configured differently) cannot be compared, and are taken as the
//! same send rather than refusing a genuine retry.

use bbrt_protocol::hub::SendFingerprint;
use sha2::{Digest, Sha256};

/// Makes keyed digests of send fingerprints. `Debug` does not show the key.
#[derive(Clone)]
pub struct SendDigester {
    key: [u8; 32],
    key_id: String,
}

impl std::fmt::Debug for SendDigester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendDigester")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SendDigester {
    /// A digester whose key is derived from `secret` (the same on every node).
    pub fn from_secret(secret: &[u8]) -> Self {
        let key: [u8; 32] = Sha256::new()
            .chain_update(b"bbrt idempotency digest key\0")
            .chain_update(secret)
            .finalize()
            .into();
        let key_id = hex(&hmac(&key, b"key id")[..4]);
        Self { key, key_id }
    }

    /// A digester with a random key: enough for one node, and for nodes that never see
    /// each other's records (the key id tells them apart).
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system provides randomness");
        Self::from_secret(&secret)
    }

    /// `<key id>.<digest>`, hex.
    pub fn digest(&self, fingerprint: SendFingerprint) -> String {
        let mac = hmac(&self.key, &fingerprint.to_bytes());
        format!("{}.{}", self.key_id, hex(&mac[..16]))
    }
}

/// Whether two digests name the same send parameters; digests under different keys
/// cannot be compared and count as the same (a genuine retry is never refused for it).
pub(super) fn same_send(a: &str, b: &str) -> bool {
    match (a.split_once('.'), b.split_once('.')) {
        (Some((key_a, _)), Some((key_b, _))) if key_a != key_b => true,
        _ => a == b,
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbrt_protocol::ids::ThreadId;

    #[test]
    fn hmac_matches_rfc_4231_case_2_shape_and_digests_compare_per_key() {
        // RFC 4231 test case 2 uses a 4-byte key; ours are 32 bytes, zero-padded alike.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&hmac(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let t = ThreadId::new("1").expect("valid");
        let a = SendFingerprint::of(Some(&t), None, "ok");
        let b = SendFingerprint::of(Some(&t), None, "ok!");
        let one = SendDigester::from_secret(b"s");
        let other = SendDigester::from_secret(b"t");
        assert!(same_send(&one.digest(a), &one.digest(a)));
        assert!(!same_send(&one.digest(a), &one.digest(b)));
        assert!(
            same_send(&one.digest(a), &other.digest(b)),
            "not comparable"
        );
        assert!(!one.digest(a).contains("ok"));
        assert!(!format!("{one:?}").contains(&hex(&one.key)));
    }
}
