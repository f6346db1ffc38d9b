//! Presence across a blip: a user whose last connection on this node closed stays online
//! for [`HubConfig::presence_grace`](super::HubConfig::presence_grace), so a reconnect
//! (a mobile network change, a page reload) is not told to everyone as offline, then
//! online.
//!
//! Nothing is published while the user lingers: to the other nodes they are still online
//! here, so a reconnect to another node within the grace is no change there either (that
//! node sees them online here already, and announces nothing). Presence snapshots count
//! lingering users, or a snapshot taken during the grace would say they left. When the
//! grace runs out with no connection back on this node, the offline goes out as it did
//! before, everywhere (a node where they are connected again says nothing: they are
//! online there).

use std::collections::BTreeSet;
use std::time::Instant;

use super::Hub;
use super::timer::TimerKey;
use crate::ids::UserId;

/// Users whose last local connection closed within the grace.
#[derive(Debug, Default)]
pub(super) struct Lingering {
    users: BTreeSet<UserId>,
}

impl Lingering {
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl Hub {
    /// `user`'s last connection on this node closed at `now`.
    pub(super) fn user_went_away(&mut self, now: Instant, user: &UserId) {
        let grace = self.config.presence_grace;
        if grace.is_zero() {
            self.presence_changed(user, false, true);
            return;
        }
        self.lingering.users.insert(user.clone());
        self.fx
            .timers
            .set(TimerKey::PresenceGrace(user.clone()), now + grace);
    }

    /// `user`'s first connection on this node is identified: `true` if they were lingering
    /// (nobody heard they left, so nobody hears they came back).
    pub(super) fn user_came_back(&mut self, user: &UserId) -> bool {
        if !self.lingering.users.remove(user) {
            return false;
        }
        self.fx
            .timers
            .cancel(&TimerKey::PresenceGrace(user.clone()));
        true
    }

    pub(super) fn presence_grace_expired(&mut self, user: &UserId) {
        if self.lingering.users.remove(user) && self.dir.local(user).is_none() {
            self.presence_changed(user, false, true);
        }
    }

    /// Whether `user` left this node within the grace.
    pub(super) fn is_lingering(&self, user: &UserId) -> bool {
        self.lingering.users.contains(user)
    }

    /// The users this node reports online in a presence snapshot: its own, lingering ones
    /// included.
    pub(super) fn presence_users(&self) -> Vec<UserId> {
        let mut users = self.dir.local_users();
        users.extend(self.lingering.users.iter().cloned());
        users.sort_unstable();
        users.dedup();
        users
    }
}
