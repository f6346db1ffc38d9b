//! The server-side credential store: secrets stay here, the Hub sees opaque
//! [`CredentialId`]s.
//!
//! The same credential gets the same id (so the seed's React client, which sends its token
//! in every `send_message`, is verified once). Each connection that presented it holds it;
//! a hold ends when the Hub releases it (`Output::ReleaseCredential`: replaced by a newer
//! credential, refused, or no frame waits on it any more) or when the connection ends, and
//! the secret is forgotten with the last hold. Only the hub task touches the store (it
//! acquires right before the Hub sees an id and releases when the Hub says so), so a
//! release can never overtake a hold the Hub is about to use.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bbrt_buddyboss::{AuthScheme, Credential};
use bbrt_protocol::ids::{ConnId, CredentialId};

#[derive(Debug)]
struct Entry {
    credential: Credential,
    holders: BTreeSet<ConnId>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    by_id: HashMap<CredentialId, Entry>,
    by_credential: HashMap<Credential, CredentialId>,
    by_conn: HashMap<ConnId, BTreeSet<CredentialId>>,
}

impl Inner {
    fn drop_hold(&mut self, conn: ConnId, id: CredentialId) {
        let last = self.by_id.get_mut(&id).is_some_and(|e| {
            e.holders.remove(&conn);
            e.holders.is_empty()
        });
        if last && let Some(entry) = self.by_id.remove(&id) {
            self.forget(&entry.credential, id);
        }
    }

    fn forget(&mut self, credential: &Credential, id: CredentialId) {
        if self.by_credential.get(credential) == Some(&id) {
            self.by_credential.remove(credential);
        }
    }
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

    /// The id of `credential`, held by `conn` (a second hold by the same connection is
    /// the same hold). A ticket always gets an id of its own: two connections that
    /// present one ticket at once must not share its single use.
    pub fn acquire(&self, conn: ConnId, credential: Credential) -> CredentialId {
        let mut inner = self.lock();
        let shared = credential.scheme != AuthScheme::Ticket;
        let known = shared
            .then(|| inner.by_credential.get(&credential).copied())
            .flatten();
        let id = match known {
            Some(id) => id,
            None => {
                inner.next += 1;
                let id = CredentialId(inner.next);
                if shared {
                    inner.by_credential.insert(credential.clone(), id);
                }
                inner.by_id.insert(
                    id,
                    Entry {
                        credential,
                        holders: BTreeSet::new(),
                    },
                );
                id
            }
        };
        if let Some(entry) = inner.by_id.get_mut(&id) {
            entry.holders.insert(conn);
        }
        inner.by_conn.entry(conn).or_default().insert(id);
        id
    }

    /// Ends `conn`'s hold on `id` (idempotent).
    pub fn release(&self, conn: ConnId, id: CredentialId) {
        let mut inner = self.lock();
        let empty = inner.by_conn.get_mut(&conn).is_some_and(|ids| {
            ids.remove(&id);
            ids.is_empty()
        });
        if empty {
            inner.by_conn.remove(&conn);
        }
        inner.drop_hold(conn, id);
    }

    /// Ends every hold of `conn` (it closed).
    pub fn release_conn(&self, conn: ConnId) {
        let mut inner = self.lock();
        for id in inner.by_conn.remove(&conn).unwrap_or_default() {
            inner.drop_hold(conn, id);
        }
    }

    /// Puts `credential` behind `id` in place of what it held: a verified ticket becomes
    /// the site credential it carries, for every later request and re-verification. The
    /// Hub keeps the same id.
    pub fn replace(&self, id: CredentialId, credential: Credential) {
        let mut inner = self.lock();
        let Some(entry) = inner.by_id.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut entry.credential, credential.clone());
        inner.forget(&old, id);
        inner.by_credential.entry(credential).or_insert(id);
    }

    /// The credential behind `id`, for a site request.
    pub fn get(&self, id: CredentialId) -> Option<Credential> {
        self.lock().by_id.get(&id).map(|e| e.credential.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_token_same_id_and_released_with_the_last_holder() {
        let store = CredentialStore::default();
        let (a, b) = (ConnId(1), ConnId(2));
        let id1 = store.acquire(a, Credential::bearer("t1"));
        assert_eq!(store.acquire(a, Credential::bearer("t1")), id1);
        assert_eq!(store.acquire(b, Credential::bearer("t1")), id1);
        let id2 = store.acquire(a, Credential::bearer("t2"));
        assert_ne!(id1, id2);
        assert_eq!(store.len(), 2);
        store.release(a, id1);
        store.release(a, id1);
        assert_eq!(store.get(id1), Some(Credential::bearer("t1")), "b holds it");
        store.release_conn(a);
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(id2), None);
        store.release_conn(b);
        assert!(store.is_empty());
        assert_ne!(
            store.acquire(a, Credential::bearer("t1")),
            id1,
            "a forgotten credential gets a new id"
        );
    }

    #[test]
    fn tickets_are_never_shared_and_become_their_site_credential() {
        let store = CredentialStore::default();
        let (a, b) = (ConnId(1), ConnId(2));
        let ta = store.acquire(a, Credential::ticket("T"));
        let tb = store.acquire(b, Credential::ticket("T"));
        assert_ne!(
            ta, tb,
            "one ticket presented twice: two ids, one single use"
        );
        store.replace(ta, Credential::site_session("bbrt-sc1.x"));
        assert_eq!(store.get(ta), Some(Credential::site_session("bbrt-sc1.x")));
        assert_eq!(store.get(tb), Some(Credential::ticket("T")));
        store.release_conn(a);
        store.release_conn(b);
        assert!(store.is_empty());
        assert!(store.lock().by_credential.is_empty());
    }
}
