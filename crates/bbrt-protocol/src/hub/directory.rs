//! The directory: this node's connections, its verified users, the users online on other
//! nodes, and the anonymous connections in eviction order (in all and by IP).
//!
//! It keeps its counts as it goes, so the metrics never scan the connections, and indexes
//! the remote users by node, so a node going down finds its users directly.

use crate::hash::IdMap;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::time::Instant;

use super::Queued;
use crate::ids::{ConnId, CredentialId, NodeId, ThreadId, UserId};

/// The threads a connection joined, in order: a sorted vector sized to its length. A
/// connection joins few threads (one, typically), and a `BTreeSet` holding one allocates a
/// whole node (about 380 bytes per connection); this holds one in one `ThreadId`.
#[derive(Debug, Default)]
pub(super) struct Joined(Vec<ThreadId>);

impl Joined {
    pub(super) fn contains(&self, thread: &ThreadId) -> bool {
        self.0.binary_search(thread).is_ok()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn insert(&mut self, thread: ThreadId) {
        if let Err(at) = self.0.binary_search(&thread) {
            // Exactly one more: `push` would round a first allocation up to four.
            self.0.reserve_exact(1);
            self.0.insert(at, thread);
        }
    }

    pub(super) fn remove(&mut self, thread: &ThreadId) {
        if let Ok(at) = self.0.binary_search(thread) {
            self.0.remove(at);
        }
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, ThreadId> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Joined {
    type Item = &'a ThreadId;
    type IntoIter = std::slice::Iter<'a, ThreadId>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One local connection.
#[derive(Debug)]
pub(super) struct Conn {
    ip: IpAddr,
    /// The verified user, once identified (only the directory sets it: it counts them).
    user: Option<UserId>,
    /// Position in the anonymous eviction order, while anonymous (non-zero: the
    /// `Option` costs no more than the number, and a `Conn` stays within 216 bytes, one
    /// allocator size class less).
    anonymous_seq: Option<NonZeroU64>,
    /// The credential this connection acts with: the last one verified as `user` on it.
    pub(super) credential: Option<CredentialId>,
    /// The upgrade's credential while the site could not verify it (it was down): frames
    /// get a retryable error until a retry verifies it.
    pub(super) unverified_upgrade: Option<CredentialId>,
    /// Every credential the driver gave for this connection and the Hub has not released.
    pub(super) held: BTreeSet<CredentialId>,
    /// Credentials the site refused on this connection, newest last (at most
    /// [`MAX_REJECTED`](super::identity::MAX_REJECTED)).
    pub(super) rejected: VecDeque<CredentialId>,
    /// Threads this connection joined.
    pub(super) joined: Joined,
    /// Set while a site request this connection's next frame depends on is in flight, or
    /// an answer's claim its later frames must not overtake.
    pub(super) blocked: bool,
    /// Whether the front of `queue` is the frame that blocked (not so for a credential
    /// presented with the upgrade, which no frame waits on).
    pub(super) front_blocked: bool,
    /// Frames waiting behind it; the front one is the frame that blocked.
    pub(super) queue: VecDeque<Queued>,
    /// Frame-rate token bucket.
    pub(super) tokens: f64,
    pub(super) last_refill: Instant,
    pub(super) violations: u32,
}

impl Conn {
    /// The verified user, once identified.
    pub(super) fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }
}

/// A local user: their verified connections on this node.
#[derive(Debug, Default)]
pub(super) struct LocalUser {
    pub(super) conns: BTreeSet<ConnId>,
    /// When their recent call invites were made (the invite rate limit).
    pub(super) invites: VecDeque<Instant>,
    /// When their recent `get_ice_servers` were answered (the ICE rate limit).
    pub(super) ice_requests: VecDeque<Instant>,
}

/// A connection that left the directory.
#[derive(Debug)]
pub(super) struct Departed {
    pub(super) conn: Conn,
    /// It was its user's last connection on this node.
    pub(super) last: bool,
}

/// One IP's anonymous connections (their positions in the eviction order), oldest
/// first. Most IPs have one: kept inline, where a `Vec` would allocate four slots for it
/// (48 bytes of heap per anonymous connection). The same size as a `Vec` (its niche).
#[derive(Debug)]
enum Seqs {
    One(u64),
    /// Sorted (sequence numbers only grow: pushed, the list stays sorted); two or more.
    Many(Vec<u64>),
}

impl Seqs {
    fn as_slice(&self) -> &[u64] {
        match self {
            Self::One(seq) => std::slice::from_ref(seq),
            Self::Many(seqs) => seqs,
        }
    }

    fn push(&mut self, seq: u64) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, seq]),
            Self::Many(seqs) => seqs.push(seq),
        }
    }

    /// Removes `seq` (if there); whether none is left.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Self::One(only) => *only == seq,
            Self::Many(seqs) => {
                if let Ok(at) = seqs.binary_search(&seq) {
                    seqs.remove(at);
                }
                if let [last] = seqs.as_slice() {
                    *self = Self::One(*last);
                }
                false
            }
        }
    }
}

/// Connections and users, here and elsewhere.
#[derive(Debug, Default)]
pub(super) struct Directory {
    /// Boxed: a `Conn` is some 200 bytes, and the map's buckets (up to twice the
    /// connections, a power of two) would each hold one.
    conns: IdMap<ConnId, Box<Conn>>,
    users: IdMap<UserId, LocalUser>,
    /// Users online on other nodes, and which nodes.
    remote: IdMap<UserId, BTreeSet<NodeId>>,
    /// The same, by node.
    remote_by_node: IdMap<NodeId, BTreeSet<UserId>>,
    /// Anonymous connections in eviction order.
    anonymous: BTreeMap<u64, ConnId>,
    anonymous_by_ip: HashMap<IpAddr, Seqs>,
    next_anonymous_seq: u64,
    /// Users online here or elsewhere.
    online_anywhere: usize,
}

impl Directory {
    /// Nothing left, no index entry either (for leak checks in tests).
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.conns.is_empty()
            && self.users.is_empty()
            && self.remote.is_empty()
            && self.remote_by_node.is_empty()
            && self.anonymous.is_empty()
            && self.anonymous_by_ip.is_empty()
            && self.online_anywhere == 0
    }

    /// (anonymous, verified, online anywhere), as kept.
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        (
            self.anonymous_count(),
            self.verified_count(),
            self.online_count(),
        )
    }

    /// (anonymous, verified, online anywhere), as a scan finds them.
    #[cfg(test)]
    pub(super) fn scanned_counts(&self) -> (usize, usize, usize) {
        let anonymous = self.conns.values().filter(|c| c.user.is_none()).count();
        let verified = self.conns.len() - anonymous;
        (anonymous, verified, self.online_users().len())
    }

    /// A new anonymous connection from `ip`, holding `held`, with `tokens` to spend;
    /// `false` if `conn` is already known.
    pub(super) fn open(
        &mut self,
        now: Instant,
        conn: ConnId,
        ip: IpAddr,
        held: BTreeSet<CredentialId>,
        tokens: f64,
    ) -> bool {
        if self.conns.contains_key(&conn) {
            return false;
        }
        // From 1: the connection keeps it as a `NonZeroU64`.
        self.next_anonymous_seq += 1;
        let seq = self.next_anonymous_seq;
        let c = Conn {
            ip,
            user: None,
            anonymous_seq: NonZeroU64::new(seq),
            credential: None,
            unverified_upgrade: None,
            held,
            rejected: VecDeque::new(),
            joined: Joined::default(),
            blocked: false,
            front_blocked: false,
            queue: VecDeque::new(),
            tokens,
            last_refill: now,
            violations: 0,
        };
        self.conns.insert(conn, Box::new(c));
        self.anonymous.insert(seq, conn);
        // Sequence numbers only grow: pushed, the list stays sorted, oldest first.
        self.anonymous_by_ip
            .entry(ip)
            .and_modify(|seqs| seqs.push(seq))
            .or_insert(Seqs::One(seq));
        true
    }

    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&Conn> {
        self.conns.get(&conn).map(|c| &**c)
    }

    pub(super) fn get_mut(&mut self, conn: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&conn).map(|c| &mut **c)
    }

    /// The user `conn` is verified as, if any.
    pub(super) fn user_of(&self, conn: ConnId) -> Option<&UserId> {
        self.conns.get(&conn)?.user.as_ref()
    }

    /// Every local connection, in no order.
    pub(super) fn all_conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// The oldest anonymous connection beyond the caps: first of `ip`'s, then of all.
    pub(super) fn eviction_victim(
        &self,
        ip: IpAddr,
        max_per_ip: usize,
        max_total: usize,
    ) -> Option<ConnId> {
        let of_ip = self.anonymous_by_ip.get(&ip);
        let seq = if of_ip.map_or(0, |s| s.as_slice().len()) > max_per_ip {
            of_ip.and_then(|s| s.as_slice().first())
        } else if self.anonymous.len() > max_total {
            self.anonymous.keys().next()
        } else {
            None
        };
        seq.and_then(|seq| self.anonymous.get(seq)).copied()
    }

    fn leave_anonymous(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(seq) = c.anonymous_seq.take().map(NonZeroU64::get) else {
            return;
        };
        self.anonymous.remove(&seq);
        if let Some(seqs) = self.anonymous_by_ip.get_mut(&c.ip)
            && seqs.remove(seq)
        {
            self.anonymous_by_ip.remove(&c.ip);
        }
    }

    /// Makes the anonymous `conn` a verified connection of `user`; whether it is the
    /// user's first on this node.
    pub(super) fn identify(&mut self, conn: ConnId, user: &UserId) -> bool {
        if !self.conns.contains_key(&conn) {
            return false;
        }
        self.leave_anonymous(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.user = Some(user.clone());
        }
        let first = !self.users.contains_key(user);
        if first && !self.remote.contains_key(user) {
            self.online_anywhere += 1;
        }
        self.users
            .entry(user.clone())
            .or_default()
            .conns
            .insert(conn);
        first
    }

    /// Removes `conn`: what it was, and whether it was its user's last connection here.
    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Departed> {
        self.leave_anonymous(conn);
        let c = self.conns.remove(&conn)?;
        let last = c.user.as_ref().is_some_and(|user| {
            let last = self.users.get_mut(user).is_some_and(|u| {
                u.conns.remove(&conn);
                u.conns.is_empty()
            });
            if last {
                self.users.remove(user);
                if !self.remote.contains_key(user) {
                    self.online_anywhere -= 1;
                }
            }
            last
        });
        Some(Departed { conn: *c, last })
    }

    /// `user`'s verified connections here, if any.
    pub(super) fn local(&self, user: &UserId) -> Option<&LocalUser> {
        self.users.get(user)
    }

    pub(super) fn local_mut(&mut self, user: &UserId) -> Option<&mut LocalUser> {
        self.users.get_mut(user)
    }

    /// Every user verified here, ascending.
    pub(super) fn local_users(&self) -> Vec<UserId> {
        let users: BTreeSet<&UserId> = self.users.keys().collect();
        users.into_iter().cloned().collect()
    }

    /// Every live local connection of `users`, ascending per user.
    pub(super) fn conns_of<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) -> Vec<ConnId> {
        let mut out = Vec::new();
        for user in users {
            if let Some(u) = self.users.get(user) {
                out.extend(u.conns.iter().copied());
            }
        }
        out
    }

    /// Whether `user` has a verified connection on any node.
    pub(super) fn is_online(&self, user: &UserId) -> bool {
        self.users.contains_key(user) || self.remote.contains_key(user)
    }

    /// Whether `user` is online on another node.
    pub(super) fn is_remote(&self, user: &UserId) -> bool {
        self.remote.contains_key(user)
    }

    /// Every user online on any node, ascending.
    #[cfg(test)]
    pub(super) fn online_users(&self) -> Vec<UserId> {
        let mut all: BTreeSet<UserId> = self.users.keys().cloned().collect();
        all.extend(self.remote.keys().cloned());
        all.into_iter().collect()
    }

    /// Records whether `user` is online on `node`.
    pub(super) fn set_remote(&mut self, node: &NodeId, user: &UserId, online: bool) {
        let local = self.users.contains_key(user);
        if online {
            let nodes = self.remote.entry(user.clone()).or_default();
            if nodes.is_empty() && !local {
                self.online_anywhere += 1;
            }
            nodes.insert(node.clone());
            let users = self.remote_by_node.entry(node.clone()).or_default();
            users.insert(user.clone());
            return;
        }
        if let Some(nodes) = self.remote.get_mut(user)
            && nodes.remove(node)
            && nodes.is_empty()
        {
            self.remote.remove(user);
            if !local {
                self.online_anywhere -= 1;
            }
        }
        if let Some(users) = self.remote_by_node.get_mut(node) {
            users.remove(user);
            if users.is_empty() {
                self.remote_by_node.remove(node);
            }
        }
    }

    /// The users `node` has online, ascending.
    pub(super) fn remote_users_of(&self, node: &NodeId) -> Vec<UserId> {
        self.remote_by_node
            .get(node)
            .map(|users| users.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Anonymous connections.
    pub(super) fn anonymous_count(&self) -> usize {
        self.anonymous.len()
    }

    /// Verified connections (every connection is one or anonymous).
    pub(super) fn verified_count(&self) -> usize {
        self.conns.len() - self.anonymous.len()
    }

    /// Users with a verified connection here.
    pub(super) fn local_user_count(&self) -> usize {
        self.users.len()
    }

    /// Users online on any node.
    pub(super) fn online_count(&self) -> usize {
        self.online_anywhere
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::effects::testing::epoch;
    use crate::ids::testing::user;

    fn node(s: &str) -> NodeId {
        NodeId::new(s).expect("a valid id")
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn open(dir: &mut Directory, conn: u64, from: u8) {
        assert!(dir.open(epoch(), ConnId(conn), ip(from), BTreeSet::new(), 1.0));
    }

    #[test]
    fn the_counts_follow_identify_and_remove() {
        let mut dir = Directory::default();
        let alice = user("alice");
        open(&mut dir, 1, 1);
        open(&mut dir, 2, 1);
        assert!(
            !dir.open(epoch(), ConnId(1), ip(1), BTreeSet::new(), 1.0),
            "known"
        );
        assert_eq!(dir.counts(), (2, 0, 0));
        assert!(dir.identify(ConnId(1), &alice), "alice's first connection");
        assert!(!dir.identify(ConnId(2), &alice), "her second");
        assert_eq!(dir.counts(), (0, 2, 1));
        assert_eq!(dir.counts(), dir.scanned_counts());
        let first = dir.remove(ConnId(1)).expect("known");
        assert!(!first.last && first.conn.user() == Some(&alice));
        assert!(dir.remove(ConnId(2)).expect("known").last);
        assert!(dir.remove(ConnId(2)).is_none(), "removed once");
        assert!(dir.is_empty(), "nothing left: {dir:?}");
    }

    #[test]
    fn a_user_online_here_and_elsewhere_counts_once() {
        let mut dir = Directory::default();
        let (alice, bob) = (user("alice"), user("bob"));
        open(&mut dir, 1, 1);
        dir.identify(ConnId(1), &alice);
        dir.set_remote(&node("n2"), &alice, true);
        dir.set_remote(&node("n3"), &alice, true);
        dir.set_remote(&node("n2"), &bob, true);
        assert_eq!(dir.online_count(), 2);
        assert_eq!(dir.counts(), dir.scanned_counts());
        assert_eq!(
            dir.remote_users_of(&node("n2")),
            vec![alice.clone(), bob.clone()]
        );
        dir.remove(ConnId(1));
        assert!(dir.is_online(&alice), "still on n3 and n2");
        dir.set_remote(&node("n2"), &alice, false);
        dir.set_remote(&node("n2"), &bob, false);
        dir.set_remote(&node("n2"), &bob, false);
        assert_eq!(dir.remote_users_of(&node("n3")), vec![alice.clone()]);
        assert!(dir.remote_users_of(&node("n2")).is_empty());
        assert_eq!(dir.counts(), dir.scanned_counts());
        dir.set_remote(&node("n3"), &alice, false);
        assert!(!dir.is_online(&alice));
        assert!(dir.is_empty(), "nothing left: {dir:?}");
    }

    #[test]
    fn the_oldest_anonymous_is_evicted_first_of_its_ip_then_of_all() {
        let mut dir = Directory::default();
        for (conn, from) in [(1, 1), (2, 2), (3, 1), (4, 1)] {
            open(&mut dir, conn, from);
        }
        assert_eq!(dir.eviction_victim(ip(1), 2, 10), Some(ConnId(1)));
        assert_eq!(dir.eviction_victim(ip(2), 2, 10), None, "ip 2 has one");
        assert_eq!(
            dir.eviction_victim(ip(2), 2, 3),
            Some(ConnId(1)),
            "over the total"
        );
        dir.identify(ConnId(1), &user("alice"));
        assert_eq!(
            dir.eviction_victim(ip(1), 1, 10),
            Some(ConnId(3)),
            "alice is verified"
        );
        assert_eq!(dir.eviction_victim(ip(1), 2, 10), None);
    }

    /// Every connection's box: at most 216 bytes is glibc's 224-byte chunk (it was 224
    /// bytes, a 240-byte chunk, with the sequence number a plain `Option<u64>`).
    #[test]
    fn a_conn_stays_small() {
        assert!(size_of::<Conn>() <= 216, "{} bytes", size_of::<Conn>());
    }

    /// An IP's list of anonymous connections (their sequence numbers, here equal to
    /// their ids) shrinks back to one kept inline, and goes
    /// with its last connection, in any order of leaving.
    #[test]
    fn an_ips_anonymous_list_follows_its_connections() {
        assert_eq!(size_of::<Seqs>(), size_of::<Vec<u64>>());
        for order in [[1, 2, 3], [2, 1, 3], [3, 2, 1], [2, 3, 1]] {
            let mut dir = Directory::default();
            for conn in 1..=3 {
                open(&mut dir, conn, 1);
            }
            assert_eq!(dir.anonymous_by_ip[&ip(1)].as_slice(), [1, 2, 3]);
            for (left, conn) in order.into_iter().enumerate() {
                assert!(dir.remove(ConnId(conn)).is_some());
                let seqs = dir.anonymous_by_ip.get(&ip(1)).map(Seqs::as_slice);
                let want: Vec<u64> = (1..=3).filter(|c| !order[..=left].contains(c)).collect();
                assert_eq!(seqs.unwrap_or_default(), want.as_slice(), "{order:?}");
                if want.len() == 1 {
                    assert!(matches!(dir.anonymous_by_ip[&ip(1)], Seqs::One(_)));
                }
            }
            assert!(dir.is_empty(), "{order:?}");
        }
    }
}
