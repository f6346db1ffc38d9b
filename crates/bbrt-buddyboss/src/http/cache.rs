//! The verify cache: who a credential belongs to, keyed by a SHA-256 of the credential
//! (never the token itself).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bbrt_protocol::api::SiteUser;

use crate::BuddyBossError;

struct Entry {
    expires: Instant,
    result: Result<SiteUser, BuddyBossError>,
}

pub(crate) struct VerifyCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
}

impl VerifyCache {
    pub(crate) fn new(ttl: Duration, negative_ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            negative_ttl,
            capacity,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Entries are replaced whole, so a poisoned lock still holds a consistent map.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(
        &self,
        key: &[u8; 32],
        now: Instant,
    ) -> Option<Result<SiteUser, BuddyBossError>> {
        let mut entries = self.entries();
        match entries.get(key) {
            Some(e) if e.expires > now => Some(e.result.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers a verify result: a user for `ttl`, an `Unauthenticated` for
    /// `negative_ttl`; anything else (the site being unavailable) is never cached.
    pub(crate) fn put(
        &self,
        key: [u8; 32],
        result: &Result<SiteUser, BuddyBossError>,
        now: Instant,
    ) {
        let ttl = match result {
            Ok(_) => self.ttl,
            Err(BuddyBossError::Unauthenticated { .. }) => self.negative_ttl,
            Err(_) => return,
        };
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.expires > now);
        }
        if entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| *k)
        {
            entries.remove(&oldest);
        }
        entries.insert(
            key,
            Entry {
                expires: now + ttl,
                result: result.clone(),
            },
        );
    }

    pub(crate) fn remove(&self, key: &[u8; 32]) {
        self.entries().remove(key);
    }
}
