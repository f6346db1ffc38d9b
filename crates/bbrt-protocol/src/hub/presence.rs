//! Presence: online anywhere is online everywhere; who hears about it depends on the
//! [`PresenceScope`](super::PresenceScope).

use std::collections::BTreeSet;

use super::{BrokerEvent, Hub, PresenceScope};
use crate::ids::{ConnId, NodeId, UserId};
use crate::wire::{PresenceEvent, ServerMessage};

impl Hub {
    /// `user`'s first local connection was identified (`online`) or their last one closed.
    pub(super) fn presence_changed(&mut self, user: &UserId, online: bool, publish: bool) {
        if publish {
            self.publish(BrokerEvent::Presence {
                user: user.clone(),
                online,
            });
        }
        if !self.dir.is_remote(user) {
            self.announce(user, online);
        }
    }

    pub(super) fn remote_presence(&mut self, origin: &NodeId, user: UserId, online: bool) {
        let was = self.is_online(&user);
        self.dir.set_remote(origin, &user, online);
        if was != self.is_online(&user) {
            self.announce(&user, !was);
        }
    }

    /// Replaces what this node knows of `origin`'s online users.
    pub(super) fn remote_snapshot(&mut self, origin: &NodeId, users: Vec<UserId>) {
        let now_online: BTreeSet<UserId> = users.into_iter().collect();
        let mut gone = self.dir.remote_users_of(origin);
        gone.retain(|user| !now_online.contains(user));
        for user in gone {
            self.remote_presence(origin, user, false);
        }
        for user in now_online {
            self.remote_presence(origin, user, true);
        }
    }

    /// Tells the audience of `user` that they came online or went offline.
    fn announce(&mut self, user: &UserId, online: bool) {
        let audience = self.presence_audience(user);
        if audience.is_empty() {
            return;
        }
        let event = PresenceEvent {
            user_id: user.clone(),
        };
        let message = if online {
            ServerMessage::UserConnected(event)
        } else {
            ServerMessage::UserDisconnected(event)
        };
        self.deliver(audience, message.encode());
    }

    /// Local connections that hear about `user`, never `user`'s own.
    fn presence_audience(&self, user: &UserId) -> Vec<ConnId> {
        let own = self.dir.local(user).map(|u| &u.conns);
        let mut audience: Vec<ConnId> = match self.config.presence_scope {
            PresenceScope::All => self.dir.all_conns().collect(),
            PresenceScope::Threads => self.threads.joiners_near(user).into_iter().collect(),
        };
        if let Some(own) = own {
            audience.retain(|c| !own.contains(c));
        }
        audience
    }
}
