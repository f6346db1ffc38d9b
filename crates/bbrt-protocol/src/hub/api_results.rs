//! Site answers ([`Input::ApiResult`](super::Input::ApiResult)) routed to the subsystem
//! that asked, and the wire error code of a site failure.

use std::time::Instant;

use super::{Hub, PendingApi};
use crate::api::{ApiResponse, SiteError};
use crate::ids::ApiRequestId;
use crate::wire::ErrorCode;

impl Hub {
    pub(super) fn api_result(
        &mut self,
        now: Instant,
        id: ApiRequestId,
        result: Result<ApiResponse, SiteError>,
    ) {
        let Some(pending) = self.api_pending.remove(&id) else {
            return;
        };
        let unexpected = || {
            SiteError::new(
                crate::api::SiteErrorKind::Protocol,
                "unexpected_response",
                "unexpected response",
            )
        };
        match pending {
            PendingApi::Verify(pending) => {
                let result = result.and_then(|r| match r {
                    ApiResponse::User(user) => Ok(user),
                    _ => Err(unexpected()),
                });
                self.verify_result(now, pending, result);
            }
            PendingApi::VerifyRetry(credential) => {
                let result = result.and_then(|r| match r {
                    ApiResponse::User(user) => Ok(user),
                    _ => Err(unexpected()),
                });
                self.verify_retry_result(now, credential, result);
            }
            PendingApi::Participants { user, thread, join } => {
                let result = result.and_then(|r| match r {
                    ApiResponse::Participants(info) => Ok(info),
                    _ => Err(unexpected()),
                });
                self.participants_result(now, user, thread, join, result);
            }
            PendingApi::Send(lane) => {
                let result = result.and_then(|r| match r {
                    ApiResponse::Stored(stored) => Ok(stored),
                    _ => Err(unexpected()),
                });
                self.send_result(now, lane, result);
            }
            PendingApi::MarkRead {
                conn,
                request_id,
                user,
                thread,
            } => {
                let result = result.and_then(|r| match r {
                    ApiResponse::MarkedRead => Ok(()),
                    _ => Err(unexpected()),
                });
                self.mark_read_result(now, conn, request_id, user, thread, result);
            }
            PendingApi::History(catchup) => {
                let result = result.and_then(|r| match r {
                    ApiResponse::History(page) => Ok(page),
                    _ => Err(unexpected()),
                });
                self.history_result(now, catchup, result);
            }
        }
    }
}

/// The wire error code for a site failure.
pub(super) fn site_error_code(error: &SiteError) -> ErrorCode {
    use crate::api::SiteErrorKind as K;
    match error.kind {
        K::Unauthenticated => ErrorCode::Unauthenticated,
        K::Forbidden => ErrorCode::Forbidden,
        K::InvalidId => ErrorCode::InvalidId,
        K::EmptyMessage => ErrorCode::EmptyMessage,
        K::IdempotencyConflict => ErrorCode::IdempotencyConflict,
        K::Invalid => ErrorCode::Invalid,
        K::Refused => ErrorCode::Refused,
        K::Unavailable => ErrorCode::SiteUnavailable,
        K::Unconfirmed => ErrorCode::SendUnconfirmed,
        _ => ErrorCode::SiteError,
    }
}
