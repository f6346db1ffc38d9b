//! [`NodeWatch`]: which other nodes are alive, judged from heartbeats.
//!
//! Each node keeps a heartbeat key holding its instance id, with a TTL, and adds itself to a
//! node set; every heartbeat its driver re-registers, reads the set, and reads the keys of
//! every candidate (members, nodes known alive, origins heard on the subscription). From
//! those observations the watch decides:
//!
//! - a candidate whose key is gone is **down** and leaves the set, but only once the
//!   current connection has been up for the grace: after a reconnect (Redis may have
//!   restarted empty) every live node needs time to write its key again;
//! - a known node whose key holds another instance **restarted**: down (what it said of its
//!   users went with its old process), kept as alive under its new instance, and the
//!   cluster resynchronises;
//! - a node that **said goodbye** is down at once; its key's expiry is not announced again,
//!   unless it came back meanwhile;
//! - a node **cut off** from the others for longer than the TTL (its registration fails)
//!   counts every node it knew as down, as they count it.
//!
//! It also paces the periodic presence snapshot. It does no I/O and reads no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::ids::NodeId;

/// The watch's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How long a heartbeat key lives: a node cut off this long counts the others down.
    pub ttl: Duration,
    /// How long a connection must have been up before a missing key means down.
    pub grace: Duration,
    /// How often a presence snapshot is due.
    pub snapshot_every: Duration,
}

/// What a goodbye on the channel means to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Goodbye {
    /// Another node leaves: announce it down (it is not announced again when its key
    /// expires).
    Departed,
    /// A process that was given this node's id leaves (this one says goodbye only when
    /// its hub is gone): what it said of its users goes with it, but it is no other node.
    SameIdAsMine,
}

/// What one look at the candidates' keys decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// Nodes to announce down, in id order.
    pub down: Vec<NodeId>,
    /// Nodes to remove from the node set (down and gone, not restarted).
    pub forget: Vec<NodeId>,
    /// Nodes that restarted (among `down`): the cluster resynchronises when any did.
    pub restarted: Vec<NodeId>,
}

/// Which other nodes are alive. See the module docs.
#[derive(Debug)]
pub struct NodeWatch {
    me: NodeId,
    config: LivenessConfig,
    /// Other nodes seen alive, with the instance their key held.
    known: BTreeMap<NodeId, String>,
    /// Origins heard on the subscription: watched even if they never made it into the set.
    heard: BTreeSet<NodeId>,
    /// Nodes that said goodbye: already announced down.
    departed: BTreeSet<NodeId>,
    /// The last successful registration.
    last_contact: Instant,
    last_snapshot: Instant,
    /// The command connection last seen up, and since when.
    generation: Option<u64>,
    connected_since: Instant,
}

impl NodeWatch {
    /// A watch for node `me`, started at `now` (knowing no other node).
    pub fn new(now: Instant, me: NodeId, config: LivenessConfig) -> Self {
        Self {
            me,
            config,
            known: BTreeMap::new(),
            heard: BTreeSet::new(),
            departed: BTreeSet::new(),
            last_contact: now,
            last_snapshot: now,
            generation: None,
            connected_since: now,
        }
    }

    /// Other nodes currently seen alive.
    pub fn seen(&self) -> usize {
        self.known.len()
    }

    /// A publication of `origin` arrived.
    pub fn heard(&mut self, origin: NodeId) {
        self.heard.insert(origin);
    }

    /// `node` said goodbye.
    pub fn goodbye(&mut self, node: NodeId) -> Goodbye {
        if node == self.me {
            return Goodbye::SameIdAsMine;
        }
        self.heard.remove(&node);
        self.departed.insert(node);
        Goodbye::Departed
    }

    /// Whether a presence snapshot is due at `now`; never while cut off (`degraded`),
    /// when it could not reach the others.
    pub fn snapshot_due(&mut self, now: Instant, degraded: bool) -> bool {
        if degraded
            || now.saturating_duration_since(self.last_snapshot) < self.config.snapshot_every
        {
            return false;
        }
        self.last_snapshot = now;
        true
    }

    /// The command connection at `now`: its generation if up. A new generation starts the
    /// grace.
    pub fn connection(&mut self, now: Instant, generation: Option<u64>) {
        if generation.is_some() && generation != self.generation {
            self.generation = generation;
            self.connected_since = now;
        }
    }

    /// The registration failed at `now`. Past the TTL the others count this node down, so
    /// every node it knew is down too (in id order); they come back through a resync.
    pub fn cut_off(&mut self, now: Instant) -> Vec<NodeId> {
        if now.saturating_duration_since(self.last_contact) <= self.config.ttl {
            return Vec::new();
        }
        std::mem::take(&mut self.known).into_keys().collect()
    }

    /// The registration succeeded at `now` and the node set holds `members`: the nodes
    /// whose keys to read next, in id order (this node left out).
    pub fn contacted(
        &mut self,
        now: Instant,
        members: impl IntoIterator<Item = NodeId>,
    ) -> Vec<NodeId> {
        self.last_contact = now;
        let mut candidates: BTreeSet<NodeId> = members.into_iter().collect();
        candidates.extend(self.known.keys().cloned());
        candidates.extend(self.heard.iter().cloned());
        candidates.remove(&self.me);
        candidates.into_iter().collect()
    }

    /// The candidates' keys read at `now`: each node with the instance its key holds, or
    /// `None` when the key is gone.
    pub fn judge(
        &mut self,
        now: Instant,
        keys: impl IntoIterator<Item = (NodeId, Option<String>)>,
    ) -> Verdict {
        let judged = now.saturating_duration_since(self.connected_since) >= self.config.grace;
        let mut verdict = Verdict::default();
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (node, instance) in keys {
            match instance {
                None if judged => {
                    self.known.remove(&node);
                    if self.departed.remove(&node) {
                        continue; // announced when it said goodbye
                    }
                    self.heard.remove(&node);
                    verdict.forget.push(node.clone());
                    verdict.down.push(node);
                }
                None => {}
                Some(instance) => {
                    // Back (same id, after a goodbye): its next expiry counts again.
                    self.departed.remove(&node);
                    if let Some(old) = self.known.insert(node.clone(), instance.clone())
                        && old != instance
                    {
                        verdict.restarted.push(node.clone());
                        verdict.down.push(node);
                    }
                }
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(6);
    const GRACE: Duration = Duration::from_secs(6);
    const SNAPSHOT: Duration = Duration::from_secs(30);

    fn n(s: &str) -> NodeId {
        NodeId::new(s).expect("valid node id")
    }

    fn ns(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|s| n(s)).collect()
    }

    /// A watch for `me` on a virtual clock starting at `t0`, not connected yet.
    fn unconnected() -> (NodeWatch, Instant) {
        // The one real clock reading: every other instant is derived from it.
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let config = LivenessConfig {
            ttl: TTL,
            grace: GRACE,
            snapshot_every: SNAPSHOT,
        };
        (NodeWatch::new(t0, n("me"), config), t0)
    }

    /// A watch for `me` on a virtual clock starting at `t0`, connected at `t0`.
    fn watch() -> (NodeWatch, Instant) {
        let (mut w, t0) = unconnected();
        w.connection(t0, Some(1));
        (w, t0)
    }

    fn alive(name: &str, instance: &str) -> (NodeId, Option<String>) {
        (n(name), Some(instance.to_owned()))
    }

    fn gone(name: &str) -> (NodeId, Option<String>) {
        (n(name), None)
    }

    /// One successful heartbeat at `at`: the set holds `members`, the keys read `keys`.
    fn beat(
        w: &mut NodeWatch,
        at: Instant,
        members: &[&str],
        keys: Vec<(NodeId, Option<String>)>,
    ) -> Verdict {
        w.contacted(at, ns(members));
        w.judge(at, keys)
    }

    #[test]
    fn candidates_are_members_known_and_heard_nodes_but_never_this_one() {
        let (mut w, t0) = watch();
        assert_eq!(w.contacted(t0, ns(&["me", "b", "a"])), ns(&["a", "b"]));
        w.judge(t0, [alive("a", "ia")]);
        w.heard(n("ghost"));
        assert_eq!(
            w.contacted(t0, ns(&["me", "c"])),
            ns(&["a", "c", "ghost"]),
            "a known node is watched after it left the set, a heard one before it joins"
        );
    }

    #[test]
    fn a_node_first_seen_is_alive_and_not_announced() {
        let (mut w, t0) = watch();
        let v = beat(&mut w, t0, &["a"], vec![alive("a", "ia")]);
        assert_eq!(v, Verdict::default());
        assert_eq!(w.seen(), 1);
    }

    #[test]
    fn a_missing_key_is_judged_only_after_the_grace_of_the_connection() {
        let (mut w, t0) = watch();
        beat(&mut w, t0, &["a"], vec![alive("a", "ia")]);
        let early = t0 + GRACE - Duration::from_millis(1);
        let v = beat(&mut w, early, &["a"], vec![gone("a")]);
        assert_eq!(v, Verdict::default(), "within the grace nothing is judged");
        assert_eq!(w.seen(), 1);
        let v = beat(&mut w, t0 + GRACE, &["a"], vec![gone("a")]);
        assert_eq!(v.down, ns(&["a"]));
        assert_eq!(v.forget, ns(&["a"]), "an expired node leaves the set");
        assert!(v.restarted.is_empty());
        assert_eq!(w.seen(), 0);
        // Gone from the set and from the watch: not announced twice.
        let later = t0 + GRACE * 2;
        assert_eq!(w.contacted(later, []), Vec::<NodeId>::new());
    }

    #[test]
    fn a_reconnect_starts_a_new_grace_and_the_same_connection_does_not() {
        let (mut w, t0) = watch();
        beat(&mut w, t0, &["a"], vec![alive("a", "ia")]);
        let t1 = t0 + GRACE * 3;
        w.connection(t1, Some(1));
        w.connection(t1, None);
        assert_eq!(
            beat(&mut w, t1, &["a"], vec![gone("a")]).down,
            ns(&["a"]),
            "the same connection (or none now) keeps the grace it had"
        );
        beat(&mut w, t1, &["b"], vec![alive("b", "ib")]);
        w.connection(t1, Some(2));
        let in_grace = t1 + GRACE - Duration::from_millis(1);
        assert_eq!(
            beat(&mut w, in_grace, &["b"], vec![gone("b")]),
            Verdict::default(),
            "Redis may have restarted empty: every node gets a grace to register again"
        );
        assert_eq!(
            beat(&mut w, t1 + GRACE, &["b"], vec![gone("b")]).down,
            ns(&["b"])
        );
    }

    #[test]
    fn the_first_connection_starts_the_grace() {
        let (mut w, t0) = unconnected();
        let t1 = t0 + GRACE;
        w.connection(t1, Some(7));
        assert_eq!(
            beat(&mut w, t1, &["a"], vec![gone("a")]),
            Verdict::default(),
            "the first connection starts the grace"
        );
    }

    #[test]
    fn a_restarted_node_is_down_once_stays_known_and_asks_for_a_resync() {
        let (mut w, t0) = watch();
        beat(
            &mut w,
            t0,
            &["a", "b"],
            vec![alive("a", "ia"), alive("b", "ib")],
        );
        let v = beat(
            &mut w,
            t0 + Duration::from_secs(1),
            &["a", "b"],
            vec![alive("b", "ib-again"), alive("a", "ia")],
        );
        assert_eq!(v.down, ns(&["b"]));
        assert_eq!(v.restarted, ns(&["b"]));
        assert!(v.forget.is_empty(), "a restarted node stays in the set");
        assert_eq!(w.seen(), 2);
        let v = beat(
            &mut w,
            t0 + Duration::from_secs(2),
            &["a", "b"],
            vec![alive("a", "ia"), alive("b", "ib-again")],
        );
        assert_eq!(v, Verdict::default(), "announced once");
        // A restart is seen even within a grace: the key is there.
        w.connection(t0 + Duration::from_secs(3), Some(2));
        let v = beat(
            &mut w,
            t0 + Duration::from_secs(3),
            &["a"],
            vec![alive("a", "ia-2"), gone("b")],
        );
        assert_eq!(v.down, ns(&["a"]));
        assert_eq!(v.restarted, ns(&["a"]));
    }

    #[test]
    fn a_goodbye_is_announced_at_once_and_its_expiry_is_not() {
        let (mut w, t0) = watch();
        beat(&mut w, t0, &["a"], vec![alive("a", "ia")]);
        w.heard(n("a"));
        assert_eq!(w.goodbye(n("a")), Goodbye::Departed);
        let t1 = t0 + GRACE;
        assert_eq!(
            w.contacted(t1, []),
            ns(&["a"]),
            "still known until its key is gone"
        );
        let v = w.judge(t1, [gone("a")]);
        assert_eq!(
            v,
            Verdict::default(),
            "already announced when it said goodbye"
        );
        assert_eq!(w.seen(), 0);
        assert_eq!(
            w.contacted(t1, []),
            Vec::<NodeId>::new(),
            "no longer heard either"
        );
    }

    #[test]
    fn a_node_back_after_its_goodbye_counts_again() {
        let (mut w, t0) = watch();
        beat(&mut w, t0, &["a"], vec![alive("a", "ia")]);
        w.goodbye(n("a"));
        // Back with the same id before its key was seen gone: the next expiry counts.
        beat(
            &mut w,
            t0 + Duration::from_secs(1),
            &["a"],
            vec![alive("a", "ia")],
        );
        let v = beat(&mut w, t0 + GRACE, &["a"], vec![gone("a")]);
        assert_eq!(v.down, ns(&["a"]));
    }

    #[test]
    fn a_goodbye_with_this_nodes_id_is_another_process_and_changes_nothing() {
        let (mut w, t0) = watch();
        beat(&mut w, t0, &["a"], vec![alive("a", "ia")]);
        assert_eq!(w.goodbye(n("me")), Goodbye::SameIdAsMine);
        assert_eq!(w.seen(), 1);
        assert_eq!(w.contacted(t0, ns(&["me"])), ns(&["a"]));
    }

    #[test]
    fn a_node_heard_but_never_registered_is_down_once_judged() {
        let (mut w, t0) = watch();
        w.heard(n("ghost"));
        let candidates = w.contacted(t0 + GRACE, []);
        assert_eq!(candidates, ns(&["ghost"]));
        let v = w.judge(t0 + GRACE, [gone("ghost")]);
        assert_eq!(v.down, ns(&["ghost"]));
        assert_eq!(v.forget, ns(&["ghost"]));
        assert_eq!(
            w.contacted(t0 + GRACE, []),
            Vec::<NodeId>::new(),
            "forgotten once announced"
        );
    }

    #[test]
    fn cut_off_past_the_ttl_every_known_node_is_down_once() {
        let (mut w, t0) = watch();
        beat(
            &mut w,
            t0,
            &["b", "a"],
            vec![alive("b", "ib"), alive("a", "ia")],
        );
        assert!(w.cut_off(t0 + TTL).is_empty(), "not past the TTL yet");
        assert_eq!(w.seen(), 2);
        assert_eq!(
            w.cut_off(t0 + TTL + Duration::from_millis(1)),
            ns(&["a", "b"])
        );
        assert_eq!(w.seen(), 0);
        assert!(
            w.cut_off(t0 + TTL * 2).is_empty(),
            "no node known: nothing more to announce"
        );
        // Contact again: the nodes are new sightings, not restarts.
        let t1 = t0 + TTL * 3;
        let v = beat(
            &mut w,
            t1,
            &["a", "b"],
            vec![alive("a", "ia"), alive("b", "ib")],
        );
        assert_eq!(v, Verdict::default());
        assert_eq!(w.seen(), 2);
        assert!(
            w.cut_off(t1 + TTL).is_empty(),
            "the TTL counts from the last contact"
        );
    }

    #[test]
    fn snapshots_are_paced_and_skipped_while_degraded() {
        let (mut w, t0) = watch();
        assert!(!w.snapshot_due(t0, false));
        assert!(!w.snapshot_due(t0 + SNAPSHOT - Duration::from_millis(1), false));
        assert!(!w.snapshot_due(t0 + SNAPSHOT, true), "not while cut off");
        assert!(w.snapshot_due(t0 + SNAPSHOT, false));
        assert!(!w.snapshot_due(t0 + SNAPSHOT, false), "once per period");
        assert!(w.snapshot_due(t0 + SNAPSHOT * 2, false));
    }
}
