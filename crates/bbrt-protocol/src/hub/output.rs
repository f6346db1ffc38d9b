//! What the Hub asks the driver to do.

use bytes::Bytes;

use super::BrokerMessage;
use super::broker::CoordRequest;
use crate::api::ApiRequest;
use crate::ids::{ApiRequestId, ConnId, CoordRequestId, CredentialId, UserId};
use crate::wire::{CloseCode, RequestId};

/// Something for the driver to do.
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub enum Output {
    /// Write `frame` (an encoded [`ServerMessage`](crate::wire::ServerMessage)) to each of `conns`.
    Send {
        /// Recipients, ascending, no duplicates.
        conns: Vec<ConnId>,
        /// The encoded frame, shared by all.
        frame: Bytes,
    },
    /// Close the connection with `code`. The Hub has already forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
        /// The close code.
        code: CloseCode,
    },
    /// Perform a site request and answer with [`Input::ApiResult`](crate::hub::Input::ApiResult).
    Api {
        /// Correlation id.
        id: ApiRequestId,
        /// What to ask.
        request: ApiRequest,
    },
    /// Perform a coordination request and answer with [`Input::CoordResult`](crate::hub::Input::CoordResult).
    Coord {
        /// Correlation id.
        id: CoordRequestId,
        /// What to ask.
        request: CoordRequest,
    },
    /// Publish to every other node.
    Publish(BrokerMessage),
    /// The Hub no longer uses `credential` for `conn` (replaced by a newer one, refused,
    /// or presented in frames all answered): the driver drops that connection's hold on
    /// the secret. Every credential the Hub was given for a connection is released this
    /// way or by the connection's end, so the driver's store and the Hub never disagree.
    ReleaseCredential {
        /// The connection.
        conn: ConnId,
        /// The credential.
        credential: CredentialId,
    },
    /// Mint ICE servers (TURN credentials for `user`) and write an
    /// [`ice_servers`](crate::wire::IceServers) frame to each of `conns`. The Hub decided
    /// `user` may have them; the shared secret lives only in the driver.
    IceServers {
        /// Recipients, ascending, no duplicates; each a connection of `user`.
        conns: Vec<ConnId>,
        /// The verified user the credentials name.
        user: UserId,
        /// Why they are sent.
        purpose: IcePurpose,
    },
}

/// Why an [`Output::IceServers`] is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcePurpose {
    /// The answer to a `get_ice_servers` (with its `requestId`): sent even when no server
    /// is configured, so the client's request is answered.
    Requested(Option<RequestId>),
    /// A call rings these devices; sent just before `call_initiated`, only when servers
    /// are configured.
    Ringing,
}
