//! The server-side credential store: secrets stay here, the Hub sees opaque
//! [`CredentialId`]s.
//!
//! The same credential gets the same id (so the seed's React client, which sends its token
//! in every `send_message`, is verified once), counted by holder: each connection that
//! presented it holds one reference, released when it closes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bbrt_buddyboss::Credential;
use bbrt_protocol::ids::CredentialId;

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    by_id: HashMap<CredentialId, (Credential, usize)>,
    by_credential: HashMap<Credential, CredentialId>,
}

/// Credentials presented by connections, by id.
#[derive(Debug, Default)]
pub struct CredentialStore {
    inner: Mutex<Inner>,
}

impl CredentialStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps stay consistent between statements; a panic elsewhere cannot break them.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of `credential`, adding a reference for one more holder.
    pub fn acquire(&self, credential: Credential) -> CredentialId {
        let mut inner = self.lock();
        if let Some(id) = inner.by_credential.get(&credential).copied() {
            if let Some((_, refs)) = inner.by_id.get_mut(&id) {
                *refs += 1;
            }
            return id;
        }
        inner.next += 1;
        let id = CredentialId(inner.next);
        inner.by_credential.insert(credential.clone(), id);
        inner.by_id.insert(id, (credential, 1));
        id
    }

    /// Drops one holder's reference; the secret is forgotten with the last one.
    pub fn release(&self, id: CredentialId) {
        let mut inner = self.lock();
        let gone = match inner.by_id.get_mut(&id) {
            Some((_, refs)) if *refs > 1 => {
                *refs -= 1;
                None
            }
            Some(_) => inner.by_id.remove(&id).map(|(c, _)| c),
            None => None,
        };
        if let Some(credential) = gone {
            inner.by_credential.remove(&credential);
        }
    }

    /// The credential behind `id`, for a site request.
    pub fn get(&self, id: CredentialId) -> Option<Credential> {
        self.lock().by_id.get(&id).map(|(c, _)| c.clone())
    }

    /// Credentials held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether no credential is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The credentials one connection holds, released together when it closes. The last one
/// is remembered so a token repeated in every frame costs a string compare, not a lock.
#[derive(Debug, Default)]
pub(crate) struct Held {
    ids: Vec<CredentialId>,
    last: Option<(Credential, CredentialId)>,
}

impl Held {
    /// The id for `credential` on this connection.
    pub(crate) fn id_for(
        &mut self,
        store: &CredentialStore,
        credential: Credential,
    ) -> CredentialId {
        if let Some((last, id)) = &self.last
            && *last == credential
        {
            return *id;
        }
        let id = store.acquire(credential.clone());
        if self.ids.contains(&id) {
            store.release(id);
        } else {
            // Bound what one connection can pin: the oldest reference goes first.
            if self.ids.len() >= 8 {
                store.release(self.ids.remove(0));
            }
            self.ids.push(id);
        }
        self.last = Some((credential, id));
        id
    }

    /// Releases everything this connection holds.
    pub(crate) fn release_all(&mut self, store: &CredentialStore) {
        for id in self.ids.drain(..) {
            store.release(id);
        }
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_token_same_id_and_released_with_the_last_holder() {
        let store = CredentialStore::default();
        let mut a = Held::default();
        let mut b = Held::default();
        let id1 = a.id_for(&store, Credential::bearer("t1"));
        assert_eq!(a.id_for(&store, Credential::bearer("t1")), id1);
        assert_eq!(b.id_for(&store, Credential::bearer("t1")), id1);
        let id2 = a.id_for(&store, Credential::bearer("t2"));
        assert_ne!(id1, id2);
        assert_eq!(
            a.id_for(&store, Credential::bearer("t1")),
            id1,
            "back to the first: no new reference"
        );
        assert_eq!(store.len(), 2);
        a.release_all(&store);
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(id1), Some(Credential::bearer("t1")));
        b.release_all(&store);
        assert!(store.is_empty());
    }
}
