//! The per-thread replay window: the position authority on one node, and the last
//! messages of each thread as the frames that were delivered, for clients that come back
//! (`docs/protocol.md`, "Recovery").
//!
//! Each thread counts its messages from 1 in an epoch; the epoch names this process and
//! the window's generation, so a restart or a window dropped (and started again) is a
//! reset a client can tell from a gap. A window is bounded by count and by bytes; the
//! number of windows too, dropping the one appended to least recently.
//!
//! Scaled out, the same windows are kept by the coordinator (Redis; in tests and the
//! in-process coordinator, [`SharedWindows`](crate::cluster::SharedWindows) over this
//! type) and read as a [`WindowRead`]: one lookup serves both.

use crate::hash::IdMap;
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use serde::{Deserialize, Serialize};

use crate::ids::{InstanceId, MessageId, ThreadId, UserId};
use crate::wire::{Epoch, Position};

/// Per-entry overhead counted against the byte bound beside the frame (the id, the offset,
/// the deque slot), so a window of tiny frames is bounded too. The Redis coordinator
/// counts the same.
pub const ENTRY_OVERHEAD: usize = 64;

/// One delivered message of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEntry {
    /// Its position's offset.
    pub offset: u64,
    /// The site's message id.
    pub id: MessageId,
    /// The `message` frame as delivered, position included (unread counts left out: they
    /// were the recipient's own at the time).
    #[serde(with = "super::broker::frame_text")]
    pub frame: Bytes,
}

/// A thread's window as the coordinator keeps it, read for one member's resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRead {
    /// The thread's epoch; `None` if the thread has no window (never counted, or expired).
    pub epoch: Option<Epoch>,
    /// The last offset given out.
    pub last: u64,
    /// The last offset the member no longer sees (they deleted the thread for themselves
    /// then); 0 if none.
    pub deleted_upto: u64,
    /// What the window still holds, oldest first.
    pub entries: Vec<WindowEntry>,
}

impl WindowRead {
    /// The thread's latest position, if it has a window.
    pub fn latest(&self) -> Option<Position> {
        self.epoch.clone().map(|epoch| Position {
            offset: self.last,
            epoch,
        })
    }

    /// What the member missed after `since`, at most `max` messages.
    pub(crate) fn after_position(&self, since: &Position, max: usize) -> Lookup {
        match &self.epoch {
            Some(epoch) => after_position(
                epoch,
                self.last,
                self.deleted_upto,
                &self.entries,
                since,
                max,
            ),
            None => Lookup::OtherEpoch,
        }
    }

    /// What the member missed after the message `id`, at most `max` messages.
    pub(crate) fn after_message(&self, id: &MessageId, max: usize) -> Lookup {
        after_message(self.last, self.deleted_upto, &self.entries, id, max)
    }
}

#[derive(Debug)]
struct ThreadWindow {
    epoch: Epoch,
    /// The last offset given out (0: none yet).
    last: u64,
    entries: VecDeque<WindowEntry>,
    bytes: usize,
    /// Members who deleted the thread for themselves, and the last offset they no longer
    /// see: the site shows them nothing before it either.
    deleted_for: IdMap<UserId, u64>,
    /// Key in [`Windows::recency`].
    touched: u64,
    /// When the coordinator last counted a message here (the in-process coordinator's
    /// clock; a node's own window keeps none).
    counted_at: Option<std::time::Instant>,
}

/// What the window can replay after a resume point.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Everything after the point, in order (possibly nothing), with their ids.
    Replay(Vec<(MessageId, Bytes)>),
    /// More than the replay limit is missing.
    TooFar,
    /// The window no longer reaches back to the point (or never saw its message).
    Missing,
    /// The position's epoch is not the thread's.
    OtherEpoch,
    /// The position is ahead of the thread.
    Ahead,
}

/// Every thread's window on this node (or, in the coordinator, of the whole cluster).
#[derive(Debug)]
pub(crate) struct Windows {
    instance: InstanceId,
    max_messages: usize,
    max_bytes: usize,
    max_threads: usize,
    by_thread: IdMap<ThreadId, ThreadWindow>,
    /// Threads by when they were last appended to or joined: the oldest window goes first.
    recency: BTreeMap<u64, ThreadId>,
    clock: u64,
    /// Windows created so far: each one's epoch is new.
    generation: u64,
    /// Bytes held by every window.
    bytes: usize,
}

impl Windows {
    pub(crate) fn new(
        instance: InstanceId,
        max_messages: usize,
        max_bytes: usize,
        max_threads: usize,
    ) -> Self {
        Self {
            instance,
            max_messages,
            max_bytes,
            max_threads: max_threads.max(1),
            by_thread: IdMap::default(),
            recency: BTreeMap::new(),
            clock: 0,
            generation: 0,
            bytes: 0,
        }
    }

    /// Threads with a window.
    pub(crate) fn len(&self) -> usize {
        self.by_thread.len()
    }

    /// Bytes held by every window, overhead included.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes held by `thread`'s window, overhead included.
    pub(crate) fn bytes_of(&self, thread: &ThreadId) -> usize {
        self.by_thread.get(thread).map_or(0, |w| w.bytes)
    }

    /// The next position in `thread`: the message `id` is stored as `frame(position)`.
    pub(crate) fn append(
        &mut self,
        thread: &ThreadId,
        id: MessageId,
        frame: impl FnOnce(&Position) -> Bytes,
    ) -> Position {
        self.append_in(thread, None, id, frame)
    }

    /// [`Windows::append`], with the epoch to start `thread`'s window in if it has none
    /// (the coordinator's: the node that counts first names it), or this node's own.
    pub(crate) fn append_in(
        &mut self,
        thread: &ThreadId,
        epoch: impl Into<Option<Epoch>>,
        id: MessageId,
        frame: impl FnOnce(&Position) -> Bytes,
    ) -> Position {
        let (max_messages, max_bytes) = (self.max_messages, self.max_bytes);
        let before = self.bytes_of(thread);
        let w = self.window(thread, epoch.into());
        w.last += 1;
        let position = Position {
            offset: w.last,
            epoch: w.epoch.clone(),
        };
        let frame = frame(&position);
        w.bytes += frame.len() + ENTRY_OVERHEAD;
        w.entries.push_back(WindowEntry {
            offset: w.last,
            id,
            frame,
        });
        while w.entries.len() > max_messages || (w.bytes > max_bytes && !w.entries.is_empty()) {
            if let Some(old) = w.entries.pop_front() {
                w.bytes -= old.frame.len() + ENTRY_OVERHEAD;
            }
        }
        let after = w.bytes;
        self.bytes = self.bytes - before + after;
        position
    }

    /// How long ago the coordinator counted `thread`'s previous message (`None`: it has
    /// none in its window's epoch), noting `now` as the latest.
    pub(crate) fn since_counted(
        &mut self,
        thread: &ThreadId,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let w = self.by_thread.get_mut(thread)?;
        let previous = w.counted_at.replace(now);
        previous.map(|at| now.saturating_duration_since(at))
    }

    /// The thread's latest position, its window started (at offset 0) if it had none: a
    /// client that joins an empty thread can resume from its very first message.
    pub(crate) fn start(&mut self, thread: &ThreadId) -> Position {
        let w = self.window(thread, None);
        Position {
            offset: w.last,
            epoch: w.epoch.clone(),
        }
    }

    /// [`Windows::start`], in `epoch` if the window is new.
    pub(crate) fn start_in(&mut self, thread: &ThreadId, epoch: Epoch) -> Position {
        let w = self.window(thread, Some(epoch));
        Position {
            offset: w.last,
            epoch: w.epoch.clone(),
        }
    }

    /// `thread`'s window, made (in `epoch`, or a new one of this node's) if it had none,
    /// and now the most recent.
    fn window(&mut self, thread: &ThreadId, epoch: Option<Epoch>) -> &mut ThreadWindow {
        self.clock += 1;
        let clock = self.clock;
        if let Some(w) = self.by_thread.get(thread) {
            self.recency.remove(&w.touched);
        } else {
            self.make_room();
            self.generation += 1;
            let epoch = epoch.unwrap_or_else(|| {
                let epoch = format!("{}.{}", self.instance, self.generation);
                Epoch::new(&epoch).unwrap_or_else(|| {
                    Epoch::new(&self.generation.to_string()).expect("digits are a valid epoch")
                })
            });
            let window = ThreadWindow {
                epoch,
                last: 0,
                entries: VecDeque::new(),
                bytes: 0,
                deleted_for: IdMap::default(),
                touched: clock,
                counted_at: None,
            };
            self.by_thread.insert(thread.clone(), window);
        }
        self.recency.insert(clock, thread.clone());
        let w = self
            .by_thread
            .get_mut(thread)
            .expect("inserted above when absent");
        w.touched = clock;
        w
    }

    /// Drops the least recently appended window when there are as many as allowed.
    fn make_room(&mut self) {
        while self.by_thread.len() >= self.max_threads {
            let Some((_, thread)) = self.recency.pop_first() else {
                return;
            };
            if let Some(w) = self.by_thread.remove(&thread) {
                self.bytes -= w.bytes;
            }
        }
    }

    /// The last position given out in `thread` (offset 0: none yet), if it has a window.
    #[cfg(test)]
    pub(crate) fn latest(&self, thread: &ThreadId) -> Option<Position> {
        let w = self.by_thread.get(thread)?;
        Some(Position {
            offset: w.last,
            epoch: w.epoch.clone(),
        })
    }

    /// The position of message `id` in `thread`, while the window holds it.
    pub(crate) fn position_of(&self, thread: &ThreadId, id: &MessageId) -> Option<Position> {
        let w = self.by_thread.get(thread)?;
        let entry = w.entries.iter().rev().find(|e| e.id == *id)?;
        Some(Position {
            offset: entry.offset,
            epoch: w.epoch.clone(),
        })
    }

    /// `user` deleted `thread` for themselves: nothing before now is replayed to them.
    pub(crate) fn deleted_for(&mut self, thread: &ThreadId, user: &UserId) {
        if let Some(w) = self.by_thread.get_mut(thread) {
            w.deleted_for.insert(user.clone(), w.last);
        }
    }

    /// What `user` missed in `thread` after `since`, at most `max` messages.
    pub(crate) fn after_position(
        &self,
        thread: &ThreadId,
        user: &UserId,
        since: &Position,
        max: usize,
    ) -> Lookup {
        let Some(w) = self.by_thread.get(thread) else {
            return Lookup::OtherEpoch;
        };
        let deleted = w.deleted_for.get(user).copied().unwrap_or(0);
        after_position(&w.epoch, w.last, deleted, &w.entries, since, max)
    }

    /// What `user` missed in `thread` after the message `id`, at most `max` messages.
    pub(crate) fn after_message(
        &self,
        thread: &ThreadId,
        user: &UserId,
        id: &MessageId,
        max: usize,
    ) -> Lookup {
        let Some(w) = self.by_thread.get(thread) else {
            return Lookup::Missing;
        };
        let deleted = w.deleted_for.get(user).copied().unwrap_or(0);
        after_message(w.last, deleted, &w.entries, id, max)
    }

    /// `thread`'s window as `user` may read it (the coordinator's answer; no user: the
    /// window as it is, for a gap fill).
    pub(crate) fn read(&self, thread: &ThreadId, user: Option<&UserId>) -> WindowRead {
        let Some(w) = self.by_thread.get(thread) else {
            return WindowRead::default();
        };
        WindowRead {
            epoch: Some(w.epoch.clone()),
            last: w.last,
            deleted_upto: user
                .and_then(|u| w.deleted_for.get(u))
                .copied()
                .unwrap_or(0),
            entries: w.entries.iter().cloned().collect(),
        }
    }
}

/// The lookup of a resume point by position, over a window's parts: the node's own window
/// and a read of the coordinator's answer alike.
fn after_position<'a>(
    epoch: &Epoch,
    last: u64,
    deleted_upto: u64,
    entries: impl IntoIterator<Item = &'a WindowEntry, IntoIter: DoubleEndedIterator + Clone>,
    since: &Position,
    max: usize,
) -> Lookup {
    if *epoch != since.epoch {
        return Lookup::OtherEpoch;
    }
    if since.offset > last {
        return Lookup::Ahead;
    }
    replay(
        last,
        since.offset.max(deleted_upto),
        entries.into_iter(),
        max,
    )
}

/// The lookup of a resume point by message id (found in the window, or `Missing`).
fn after_message<'a>(
    last: u64,
    deleted_upto: u64,
    entries: impl IntoIterator<Item = &'a WindowEntry, IntoIter: DoubleEndedIterator + Clone>,
    id: &MessageId,
    max: usize,
) -> Lookup {
    let entries = entries.into_iter();
    let Some(entry) = entries.clone().rev().find(|e| e.id == *id) else {
        return Lookup::Missing;
    };
    replay(last, entry.offset.max(deleted_upto), entries, max)
}

fn replay<'a>(
    last: u64,
    floor: u64,
    mut entries: impl Iterator<Item = &'a WindowEntry> + Clone,
    max: usize,
) -> Lookup {
    let missed = last - floor.min(last);
    if missed > max as u64 {
        return Lookup::TooFar;
    }
    let first = entries.clone().next().map_or(last + 1, |e| e.offset);
    if floor + 1 < first {
        return Lookup::Missing;
    }
    Lookup::Replay(
        entries
            .by_ref()
            .filter(|e| e.offset > floor)
            .map(|e| (e.id.clone(), e.frame.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testing::{thread, user};

    fn windows(messages: usize, bytes: usize, threads: usize) -> Windows {
        let instance = InstanceId::new("i1").expect("a valid id");
        Windows::new(instance, messages, bytes, threads)
    }

    fn mid(n: u64) -> MessageId {
        MessageId::new(&n.to_string()).expect("a valid id")
    }

    fn add(w: &mut Windows, t: &ThreadId, n: u64) -> Position {
        w.append(t, mid(n), |p| Bytes::from(format!("m{n}@{}", p.offset)))
    }

    #[test]
    fn positions_count_per_thread_and_replay_in_delivery_order() {
        let mut w = windows(10, 1 << 20, 10);
        let (t1, t2, alice) = (thread("t1"), thread("t2"), user("alice"));
        // Ids out of order, as concurrent sends and website events deliver them.
        let first = add(&mut w, &t1, 11);
        add(&mut w, &t1, 10);
        add(&mut w, &t2, 12);
        add(&mut w, &t1, 13);
        assert_eq!(first.offset, 1);
        assert_eq!(w.latest(&t1).map(|p| p.offset), Some(3));
        assert_eq!(w.latest(&t2).map(|p| p.offset), Some(1));
        assert_ne!(
            w.latest(&t1).map(|p| p.epoch),
            w.latest(&t2).map(|p| p.epoch)
        );
        let replay = |l: Lookup| match l {
            Lookup::Replay(entries) => entries.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
            other => panic!("expected a replay, got {other:?}"),
        };
        assert_eq!(
            replay(w.after_position(&t1, &alice, &first, 100)),
            vec![Bytes::from("m10@2"), Bytes::from("m13@3")]
        );
        // "After id 11" by id is the same exact answer: the window keeps delivery order.
        assert_eq!(
            replay(w.after_message(&t1, &alice, &mid(11), 100)),
            vec![Bytes::from("m10@2"), Bytes::from("m13@3")]
        );
        let latest = w.latest(&t1).expect("a position");
        assert!(replay(w.after_position(&t1, &alice, &latest, 100)).is_empty());
        let ahead = Position {
            offset: 4,
            ..latest.clone()
        };
        assert_eq!(w.after_position(&t1, &alice, &ahead, 100), Lookup::Ahead);
        let other = Position {
            offset: 1,
            epoch: Epoch::new("elsewhere").expect("a valid epoch"),
        };
        assert_eq!(
            w.after_position(&t1, &alice, &other, 100),
            Lookup::OtherEpoch
        );
        assert_eq!(w.after_position(&t1, &alice, &first, 1), Lookup::TooFar);
        assert_eq!(w.after_message(&t1, &alice, &mid(99), 100), Lookup::Missing);
    }

    #[test]
    fn a_window_is_bounded_by_count_and_bytes_and_the_windows_by_number() {
        let mut w = windows(3, 1 << 20, 2);
        let (t1, t2, t3, alice) = (thread("t1"), thread("t2"), thread("t3"), user("alice"));
        let first = add(&mut w, &t1, 1);
        for n in 2..=5 {
            add(&mut w, &t1, n);
        }
        assert_eq!(w.after_position(&t1, &alice, &first, 100), Lookup::Missing);
        let third = Position {
            offset: 2,
            ..first.clone()
        };
        assert!(matches!(
            w.after_position(&t1, &alice, &third, 100),
            Lookup::Replay(f) if f.len() == 3
        ));
        add(&mut w, &t2, 6);
        add(&mut w, &t3, 7);
        assert_eq!(w.len(), 2, "t1 was appended to least recently");
        assert_eq!(w.latest(&t1), None);
        let again = add(&mut w, &t1, 8);
        assert_eq!(again.offset, 1);
        assert_ne!(
            again.epoch, first.epoch,
            "a window started again is a new epoch"
        );

        let mut small = windows(100, 3 * (ENTRY_OVERHEAD + 5), 10);
        for n in 1..=10 {
            add(&mut small, &t1, n);
        }
        assert!(small.bytes_of(&t1) <= 3 * (ENTRY_OVERHEAD + 5));
        assert_eq!(small.bytes(), small.bytes_of(&t1));
        assert_eq!(
            w.bytes(),
            w.bytes_of(&t1) + w.bytes_of(&t2) + w.bytes_of(&t3)
        );
        assert_eq!(small.latest(&t1).map(|p| p.offset), Some(10));
    }

    #[test]
    fn a_member_who_deleted_the_thread_gets_nothing_from_before() {
        let mut w = windows(10, 1 << 20, 10);
        let (t1, alice, bob) = (thread("t1"), user("alice"), user("bob"));
        let first = add(&mut w, &t1, 1);
        add(&mut w, &t1, 2);
        w.deleted_for(&t1, &bob);
        add(&mut w, &t1, 3);
        let count = |l: Lookup| match l {
            Lookup::Replay(frames) => frames.len(),
            other => panic!("expected a replay, got {other:?}"),
        };
        assert_eq!(count(w.after_position(&t1, &alice, &first, 100)), 2);
        assert_eq!(count(w.after_position(&t1, &bob, &first, 100)), 1);
    }
}
