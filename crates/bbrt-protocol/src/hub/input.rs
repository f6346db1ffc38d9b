//! What the driver tells the Hub.

use std::net::IpAddr;

use super::BrokerMessage;
use super::broker::CoordResponse;
use crate::api::{ApiResponse, SiteError};
use crate::ids::{ApiRequestId, ConnId, CoordRequestId, CredentialId, NodeId};
use crate::site_event::{SiteCommand, SiteEvent};
use crate::wire::{ClientFrame, DecodeError};

/// Something that happened, for the Hub to act on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// A WebSocket connection was upgraded.
    Open {
        /// Its handle (never reused).
        conn: ConnId,
        /// The client's address after trusted-proxy resolution.
        ip: IpAddr,
        /// A credential presented with the upgrade, if any.
        credential: Option<CredentialId>,
    },
    /// A decoded client frame. The connection layer has already taken out the token and
    /// put it in its credential store.
    Frame {
        /// The connection.
        conn: ConnId,
        /// The frame, without its token.
        frame: ClientFrame,
        /// The credential the frame carried, if any.
        credential: Option<CredentialId>,
    },
    /// A frame that could not be decoded.
    Invalid {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: DecodeError,
    },
    /// The connection is gone (closed by either side). Idempotent.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// The one answer to an [`Output::Api`](crate::hub::Output::Api).
    ApiResult {
        /// The request's id.
        id: ApiRequestId,
        /// The site's answer.
        result: Result<ApiResponse, SiteError>,
    },
    /// The one answer to an [`Output::Coord`](crate::hub::Output::Coord).
    CoordResult {
        /// The request's id.
        id: CoordRequestId,
        /// The coordinator's answer.
        result: CoordResponse,
    },
    /// A publication from the broker (possibly this node's own; it is ignored).
    Broker(BrokerMessage),
    /// The broker lost a node: its users are offline, its calls' devices gone.
    NodeDown {
        /// The lost node.
        node: NodeId,
    },
    /// The site answers again after failing (the driver's probe saw it come back): the
    /// upgrade credentials waiting for it are verified again within
    /// [`HubConfig::verify_retry_initial`](crate::hub::HubConfig::verify_retry_initial), spread by the jitter, instead of at their next
    /// backoff (up to [`HubConfig::verify_retry_max`](crate::hub::HubConfig::verify_retry_max) away).
    SiteReachable,
    /// Publications may have been lost (the first subscription, or the broker came back):
    /// the Hub asks the other nodes for their presence and calls, and publishes its own
    /// presence to heal what they lost.
    Resync,
    /// A site event the driver verified and deduplicated by event id (`docs/wordpress.md`,
    /// "Site events"): turned into the frames bbrt's own actions produce.
    SiteEvent(SiteEvent),
    /// A backend's request through the server API, verified like a site event.
    SiteCommand(SiteCommand),
    /// Time for the periodic presence heartbeat: the Hub publishes its online users, which
    /// heals presence publications lost on the way.
    PresenceSnapshot,
}
