//! [`SharedWindows`]: the position authority and replay windows of a scaled-out
//! deployment, as the in-process coordinator and the Hub's simulator keep them. Redis
//! keeps the same rules in its keys and scripts (`bbrt-server`'s `RedisCoordinator`); one
//! contract suite runs against both.

use std::time::Instant;

use crate::hub::{CoordRequest, CoordResponse};
use crate::ids::InstanceId;

/// Per-thread counters and windows for every node: answers [`CoordRequest::Sequence`],
/// [`CoordRequest::ReadWindow`] and [`CoordRequest::DeletedFor`].
///
/// A thread's counter starts in the epoch its first `Sequence` names, and starts again in
/// a new one if its window is dropped (the least recently appended go first when there
/// are more than `max_threads`), as Redis does when a thread's keys expire.
#[derive(Debug)]
pub struct SharedWindows {
    windows: crate::hub::window::Windows,
}

impl SharedWindows {
    /// Windows of at most `max_messages` messages and `max_bytes` bytes, for at most
    /// `max_threads` threads.
    pub fn new(max_messages: usize, max_bytes: usize, max_threads: usize) -> Self {
        let instance = InstanceId::new("shared").expect("a valid literal id");
        Self {
            windows: crate::hub::window::Windows::new(
                instance,
                max_messages,
                max_bytes,
                max_threads,
            ),
        }
    }

    /// The answer to `request` at `now`, if it is one of the windows' requests.
    pub fn request(&mut self, now: Instant, request: &CoordRequest) -> Option<CoordResponse> {
        match request {
            CoordRequest::Sequence {
                thread,
                id,
                frame,
                epoch,
                ..
            } => {
                let position = self
                    .windows
                    .append_in(thread, epoch.clone(), id.clone(), |p| p.stamp(frame));
                // After the append: a window it just started has no earlier count.
                let previous = self.windows.since_counted(thread, now);
                let since_previous_ms = previous
                    .filter(|_| position.offset > 1)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                // It has no broker: the Hub publishes.
                Some(CoordResponse::Sequenced {
                    position,
                    since_previous_ms,
                    published: false,
                })
            }
            CoordRequest::ReadWindow {
                thread,
                user,
                epoch,
            } => {
                self.windows.start_in(thread, epoch.clone());
                Some(CoordResponse::Window(
                    self.windows.read(thread, user.as_ref()),
                ))
            }
            CoordRequest::DeletedFor { thread, user } => {
                self.windows.deleted_for(thread, user);
                Some(CoordResponse::Ok)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ids::MessageId;
    use crate::ids::testing::{thread, user};
    use crate::wire::{Epoch, Position};

    fn sequence(id: u64, epoch: &str) -> CoordRequest {
        CoordRequest::Sequence {
            thread: thread("t1"),
            id: MessageId::new(&id.to_string()).expect("a valid id"),
            frame: Bytes::from(format!(r#"{{"type":"message","id":"{id}"}}"#)),
            epoch: Epoch::new(epoch).expect("a valid epoch"),
            publish: Vec::new(),
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test's one reading of the clock
    fn the_first_epoch_named_sticks_and_frames_are_kept_stamped() {
        let mut w = SharedWindows::new(10, 1 << 20, 10);
        let now = Instant::now();
        let first = w.request(now, &sequence(5, "n1.1"));
        let second = w.request(
            now + std::time::Duration::from_millis(7),
            &sequence(6, "n2.1"),
        );
        let epoch = Epoch::new("n1.1").expect("a valid epoch");
        assert_eq!(
            first,
            Some(CoordResponse::Sequenced {
                position: Position {
                    offset: 1,
                    epoch: epoch.clone()
                },
                since_previous_ms: None,
                published: false,
            })
        );
        assert_eq!(
            second,
            Some(CoordResponse::Sequenced {
                position: Position {
                    offset: 2,
                    epoch: epoch.clone()
                },
                since_previous_ms: Some(7),
                published: false,
            })
        );
        let read = CoordRequest::ReadWindow {
            thread: thread("t1"),
            user: Some(user("alice")),
            epoch: Epoch::new("n3.1").expect("a valid epoch"),
        };
        let Some(CoordResponse::Window(read)) = w.request(now, &read) else {
            panic!("a window read")
        };
        assert_eq!(read.last, 2);
        assert_eq!(read.epoch, Some(epoch));
        assert_eq!(
            read.entries[1].frame,
            Bytes::from(r#"{"type":"message","id":"6","position":{"offset":2,"epoch":"n1.1"}}"#)
        );
    }
}
