//! Who gets ICE servers (`docs/calls.md`, "TURN"). The Hub holds no TURN secret: it
//! decides that a verified user may have credentials, at a bounded rate, and asks the
//! driver to mint them ([`Output::IceServers`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Hub;
use super::output::{IcePurpose, Output};
use crate::ids::{ConnId, UserId};
use crate::wire::{ErrorCode, RequestId};

/// The window of [`HubConfig::ice_requests_per_minute`](super::HubConfig::ice_requests_per_minute).
const WINDOW: Duration = Duration::from_secs(60);

impl Hub {
    /// A `get_ice_servers` of `conn`, verified as `user`: minted by the driver, or
    /// `rate_limited` beyond the user's budget (every connection of theirs shares it).
    pub(super) fn get_ice_servers(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: &UserId,
        request_id: Option<RequestId>,
    ) {
        if !self.allow_ice_request(now, user) {
            let code = ErrorCode::RateLimited;
            self.error(conn, code, code.message(), request_id);
            return;
        }
        self.fx.outputs.push_back(Output::IceServers {
            conns: vec![conn],
            user: user.clone(),
            purpose: IcePurpose::Requested(request_id),
        });
    }

    /// Ringing devices get ICE servers just before `call_initiated`, so they can build the
    /// peer connection at once; bounded by the caller's invite limit, not the request one.
    pub(super) fn ice_servers_for_ringing(&mut self, callee: &UserId, ringing: &BTreeSet<ConnId>) {
        if ringing.is_empty() {
            return;
        }
        self.fx.outputs.push_back(Output::IceServers {
            conns: ringing.iter().copied().collect(),
            user: callee.clone(),
            purpose: IcePurpose::Ringing,
        });
    }

    fn allow_ice_request(&mut self, now: Instant, user: &UserId) -> bool {
        let limit = self.config.ice_requests_per_minute;
        let Some(local) = self.dir.local_mut(user) else {
            return false;
        };
        while local
            .ice_requests
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            local.ice_requests.pop_front();
        }
        if local.ice_requests.len() >= limit {
            return false;
        }
        local.ice_requests.push_back(now);
        true
    }
}
