//! Scaled out, every node delivers each thread's messages in position order.
//!
//! The coordinator counts a thread's messages, but each node publishes its own senders'
//! messages, so two of them can reach a third node in the other order than they were
//! counted (and a node's own answers from the coordinator can come back crossed). A
//! message that comes before its predecessor waits for it, at most
//! [`HubConfig::order_wait`](super::HubConfig::order_wait): then what waits goes out in
//! order, and the missing one is delivered when (if) it comes. Nothing is dropped here: a
//! message later than the thread's last delivered one is delivered at once.
//!
//! On one node the window counts synchronously and nothing can cross: this is not used.

use crate::hash::IdMap;
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::ids::{ConnId, MessageId, ThreadId, UserId};
use crate::wire::{Epoch, Position};

/// A message for local connections, waiting for its turn.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// Its recipients here: every connection of these users…
    pub(super) users: Vec<UserId>,
    /// …and this one (the sending connection).
    pub(super) conn: Option<ConnId>,
    pub(super) id: MessageId,
    pub(super) frame: Bytes,
}

#[derive(Debug)]
struct ThreadOrder {
    epoch: Epoch,
    /// The last offset delivered here; `None` until the first (a node that starts, or
    /// first hears of the thread, cannot know what is in flight).
    last: Option<u64>,
    /// The highest offset known to exist (a window read may know more than was delivered).
    known: u64,
    /// By offset: every copy of a message shares its offset (a website message's
    /// recipients each get their own unread counts).
    waiting: BTreeMap<u64, Vec<Pending>>,
    /// Copies in `waiting`.
    waiting_len: usize,
    /// The gap before what waits is being read from the shared window.
    filling: bool,
}

impl ThreadOrder {
    fn new(epoch: Epoch, known: u64) -> Self {
        Self {
            epoch,
            last: None,
            known,
            waiting: BTreeMap::new(),
            waiting_len: 0,
            filling: false,
        }
    }

    /// Every copy waiting, in offset order.
    fn take_waiting(&mut self) -> impl Iterator<Item = Pending> + use<> {
        self.waiting_len = 0;
        std::mem::take(&mut self.waiting).into_values().flatten()
    }
}

/// What an offer leaves to do.
#[derive(Debug, Default)]
pub(super) struct Ready {
    /// Deliver these, in order.
    pub(super) now: Vec<Pending>,
    /// A gap started (the first message waits, or a filled gap left another): the
    /// thread's wait starts again.
    pub(super) arm: bool,
    /// The messages out of turn that waited past the bound (the gap was given up).
    pub(super) gave_up: bool,
}

/// The delivery order of every thread this node delivered to lately.
#[derive(Debug)]
pub(super) struct Ordering {
    threads: IdMap<ThreadId, ThreadOrder>,
    max_threads: usize,
    max_waiting: usize,
}

impl Ordering {
    /// At most `max_threads` threads' counters (idle ones are dropped first), at most
    /// `max_waiting` messages waiting per thread.
    pub(super) fn new(max_threads: usize, max_waiting: usize) -> Self {
        Self {
            threads: IdMap::default(),
            max_threads: max_threads.max(1),
            max_waiting: max_waiting.max(1),
        }
    }

    /// `item`, at `position` in `thread`: what can be delivered now. `settled`: its
    /// predecessor was counted long enough ago to have come already (or never to come), so
    /// a node that has delivered nothing of the thread yet need not wait for it.
    pub(super) fn offer(
        &mut self,
        thread: &ThreadId,
        position: &Position,
        settled: bool,
        item: Pending,
    ) -> Ready {
        let mut ready = Ready::default();
        if !self.threads.contains_key(thread) {
            self.make_room();
            self.threads
                .insert(thread.clone(), ThreadOrder::new(position.epoch.clone(), 0));
        }
        let t = self
            .threads
            .get_mut(thread)
            .expect("inserted above when absent");
        if t.epoch != position.epoch {
            // The counter started again (the coordinator lost the thread): the old epoch's
            // waiting messages go first, and the new one counts from here.
            ready.now.extend(t.take_waiting());
            *t = ThreadOrder::new(position.epoch.clone(), 0);
        }
        t.known = t.known.max(position.offset);
        let next = match t.last {
            None if settled || position.offset == 1 => position.offset,
            // Nothing delivered here yet, and the previous message may be on its way.
            None => position.offset.saturating_sub(1).max(1),
            Some(last) if position.offset <= last => {
                // Late (its gap was given up), or a copy: delivered as it comes.
                ready.now.push(item);
                return ready;
            }
            Some(last) => last + 1,
        };
        if position.offset != next {
            t.waiting.entry(position.offset).or_default().push(item);
            t.waiting_len += 1;
            if t.waiting_len > self.max_waiting {
                let mut given_up = self.give_up(thread);
                ready.now.append(&mut given_up.now);
                ready.gave_up = given_up.gave_up;
                return ready;
            }
            ready.arm = t.waiting_len == 1;
            return ready;
        }
        ready.now.push(item);
        let mut last = position.offset;
        while let Some(entry) = t.waiting.first_entry() {
            if *entry.key() != last + 1 {
                break;
            }
            last += 1;
            let copies = entry.remove();
            t.waiting_len -= copies.len();
            ready.now.extend(copies);
        }
        t.last = Some(last);
        ready.arm = !t.waiting.is_empty();
        ready
    }

    /// The wait of `thread` is over: what waits goes out in order, past the gap.
    pub(super) fn give_up(&mut self, thread: &ThreadId) -> Ready {
        let mut ready = Ready::default();
        let Some(t) = self.threads.get_mut(thread) else {
            return ready;
        };
        if let Some((&highest, _)) = t.waiting.last_key_value() {
            t.last = Some(highest);
            ready.gave_up = true;
        }
        ready.now.extend(t.take_waiting());
        ready
    }

    /// A window read found `latest` in `thread`: what `joined` and `resumed` report from
    /// now on, without taking it for delivered (what is in flight still comes in order).
    pub(super) fn observe(&mut self, thread: &ThreadId, latest: &Position) {
        match self.threads.get_mut(thread) {
            Some(t) if t.epoch == latest.epoch => t.known = t.known.max(latest.offset),
            Some(t) if t.waiting.is_empty() => {
                *t = ThreadOrder::new(latest.epoch.clone(), latest.offset);
            }
            Some(_) => {}
            None => {
                self.make_room();
                let order = ThreadOrder::new(latest.epoch.clone(), latest.offset);
                self.threads.insert(thread.clone(), order);
            }
        }
    }

    /// `thread`'s wait ran out with a gap after a message this node delivered: whether a
    /// fill from the shared window starts (not when there is no gap, a fill is under way,
    /// or this node delivered nothing of the thread yet and cannot tell a gap).
    pub(super) fn start_fill(&mut self, thread: &ThreadId) -> bool {
        let Some(t) = self.threads.get_mut(thread) else {
            return false;
        };
        let (Some(last), Some(&first)) = (t.last, t.waiting.keys().next()) else {
            return false;
        };
        if t.filling || first <= last + 1 {
            return false;
        }
        t.filling = true;
        true
    }

    /// Whether a gap fill of `thread` is under way.
    pub(super) fn is_filling(&self, thread: &ThreadId) -> bool {
        self.threads.get(thread).is_some_and(|t| t.filling)
    }

    /// The shared window's messages of `thread` in `epoch` (by offset): those still missing
    /// here go out in order, then everything that waits (past any gap the window could
    /// not fill).
    pub(super) fn fill(
        &mut self,
        thread: &ThreadId,
        epoch: Option<&Epoch>,
        found: Vec<(u64, Pending)>,
    ) -> Ready {
        let mut ready = Ready::default();
        let Some(t) = self.threads.get_mut(thread) else {
            return ready;
        };
        t.filling = false;
        let mut skipped = false;
        if epoch == Some(&t.epoch)
            && let Some(mut last) = t.last
        {
            let before = t.waiting.keys().next().copied().unwrap_or(u64::MAX);
            for (offset, item) in found {
                if offset > last && offset < before {
                    // The window lost some (trimmed): what it has still goes in order.
                    skipped |= offset != last + 1;
                    ready.now.push(item);
                    last = offset;
                }
            }
            t.last = Some(last);
        }
        let gap_left = skipped
            || match (t.last, t.waiting.keys().next()) {
                (Some(last), Some(&first)) => first > last + 1,
                (None, Some(_)) => true,
                (_, None) => false,
            };
        ready.now.extend(self.give_up(thread).now);
        ready.gave_up = gap_left;
        ready
    }

    /// Whether a message of `thread` waits for its predecessor.
    pub(super) fn is_waiting(&self, thread: &ThreadId) -> bool {
        self.threads
            .get(thread)
            .is_some_and(|t| !t.waiting.is_empty())
    }

    /// The latest position this node knows in `thread`.
    pub(super) fn latest(&self, thread: &ThreadId) -> Option<Position> {
        let t = self.threads.get(thread)?;
        Some(Position {
            offset: t.known.max(t.last.unwrap_or(0)),
            epoch: t.epoch.clone(),
        })
    }

    /// Threads with a counter here.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.threads.len()
    }

    /// Drops idle threads' counters while there are as many as allowed (a thread with
    /// messages waiting keeps its own: they would be delivered out of turn).
    fn make_room(&mut self) {
        if self.threads.len() < self.max_threads {
            return;
        }
        let idle: Vec<ThreadId> = self
            .threads
            .iter()
            .filter(|(_, t)| t.waiting.is_empty())
            .map(|(thread, _)| thread.clone())
            .take(self.threads.len() + 1 - self.max_threads)
            .collect();
        for thread in idle {
            self.threads.remove(&thread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testing::thread;

    fn at(offset: u64, epoch: &str) -> Position {
        Position {
            offset,
            epoch: Epoch::new(epoch).expect("a valid epoch"),
        }
    }

    fn item(n: u64) -> Pending {
        Pending {
            users: Vec::new(),
            conn: None,
            id: MessageId::new(&n.to_string()).expect("a valid id"),
            frame: Bytes::new(),
        }
    }

    fn ids(ready: &Ready) -> Vec<String> {
        ready.now.iter().map(|p| p.id.as_str().to_owned()).collect()
    }

    #[test]
    fn a_message_out_of_turn_waits_for_its_predecessor() {
        let mut o = Ordering::new(10, 10);
        let t = thread("t1");
        assert_eq!(ids(&o.offer(&t, &at(4, "e"), true, item(4))), ["4"]);
        let early = o.offer(&t, &at(6, "e"), true, item(6));
        assert!(early.now.is_empty() && early.arm, "6 waits for 5");
        assert_eq!(ids(&o.offer(&t, &at(5, "e"), true, item(5))), ["5", "6"]);
        assert_eq!(o.latest(&t), Some(at(6, "e")));
        // A gap given up: what waits goes out in order, and the missing one as it comes.
        assert!(o.offer(&t, &at(9, "e"), true, item(9)).arm);
        assert!(!o.offer(&t, &at(8, "e"), true, item(8)).arm, "still armed");
        let gave_up = o.give_up(&t);
        assert!(gave_up.gave_up);
        assert_eq!(ids(&gave_up), ["8", "9"]);
        assert_eq!(ids(&o.offer(&t, &at(7, "e"), true, item(7))), ["7"]);
        assert_eq!(ids(&o.offer(&t, &at(10, "e"), true, item(10))), ["10"]);
    }

    #[test]
    fn every_copy_of_a_message_out_of_turn_waits_and_goes_out() {
        let mut o = Ordering::new(10, 10);
        let t = thread("t1");
        o.offer(&t, &at(1, "e"), true, item(1));
        // Two copies of 3 (a website message: each recipient's own counts), before 2.
        assert!(o.offer(&t, &at(3, "e"), true, item(3)).arm);
        assert!(o.offer(&t, &at(3, "e"), true, item(3)).now.is_empty());
        assert_eq!(
            ids(&o.offer(&t, &at(2, "e"), true, item(2))),
            ["2", "3", "3"]
        );
        assert_eq!(
            ids(&o.offer(&t, &at(3, "e"), true, item(3))),
            ["3"],
            "a later copy"
        );
    }

    #[test]
    fn a_gap_is_filled_from_the_shared_window_in_order() {
        let mut o = Ordering::new(10, 10);
        let t = thread("t1");
        o.offer(&t, &at(1, "e"), true, item(1));
        o.offer(&t, &at(4, "e"), true, item(4));
        assert!(o.start_fill(&t), "a gap after 1");
        assert!(!o.start_fill(&t), "one fill at a time");
        let epoch = Epoch::new("e").expect("a valid epoch");
        // 2 came meanwhile; the window has 2 and 3 (and 4).
        assert_eq!(ids(&o.offer(&t, &at(2, "e"), true, item(2))), ["2"]);
        let found = (2..=4).map(|n| (n, item(n))).collect();
        let filled = o.fill(&t, Some(&epoch), found);
        assert_eq!(
            ids(&filled),
            ["3", "4"],
            "3 from the window, then what waited"
        );
        assert!(!filled.gave_up);
        assert!(!o.is_filling(&t));
        // A window that no longer has the missing one: what waits goes out past it.
        o.offer(&t, &at(7, "e"), true, item(7));
        assert!(o.start_fill(&t), "a gap after 4");
        let filled = o.fill(&t, Some(&epoch), vec![(6, item(6))]);
        assert_eq!(ids(&filled), ["6", "7"]);
        assert!(filled.gave_up, "5 is lost to live delivery");
        // A node that delivered nothing of the thread has no gap it can tell.
        let t2 = thread("t2");
        o.offer(&t2, &at(5, "e"), false, item(5));
        assert!(!o.start_fill(&t2));
    }

    #[test]
    fn a_new_epoch_starts_the_count_again_and_the_bounds_hold() {
        let mut o = Ordering::new(2, 2);
        let t = thread("t1");
        o.offer(&t, &at(4, "e1"), true, item(4));
        o.offer(&t, &at(6, "e1"), true, item(6));
        assert_eq!(ids(&o.offer(&t, &at(1, "e2"), true, item(1))), ["6", "1"]);
        o.offer(&t, &at(3, "e2"), true, item(3));
        o.offer(&t, &at(4, "e2"), true, item(4));
        let over = o.offer(&t, &at(5, "e2"), true, item(5));
        assert!(over.gave_up, "more than two waiting: given up");
        assert_eq!(ids(&over), ["3", "4", "5"]);
        o.offer(&thread("t2"), &at(1, "x"), true, item(1));
        o.offer(&thread("t3"), &at(1, "y"), true, item(1));
        assert_eq!(o.len(), 2, "an idle thread's counter made room");
    }

    #[test]
    fn a_node_that_delivered_nothing_yet_waits_only_for_a_recent_predecessor() {
        let mut o = Ordering::new(10, 10);
        let t = thread("t1");
        o.observe(&t, &at(9, "e"));
        assert_eq!(o.latest(&t), Some(at(9, "e")), "a read is reported");
        // 9 may still be in flight: 10 waits, and so does 9 (8 may be too).
        assert!(o.offer(&t, &at(10, "e"), false, item(10)).arm);
        assert!(o.offer(&t, &at(9, "e"), false, item(9)).now.is_empty());
        assert_eq!(ids(&o.give_up(&t)), ["9", "10"]);
        assert_eq!(ids(&o.offer(&t, &at(11, "e"), false, item(11))), ["11"]);
        // Settled, or the first of its epoch: nothing to wait for.
        let t2 = thread("t2");
        assert_eq!(ids(&o.offer(&t2, &at(5, "e"), true, item(5))), ["5"]);
        let t3 = thread("t3");
        assert_eq!(ids(&o.offer(&t3, &at(1, "e"), false, item(1))), ["1"]);
    }
}
