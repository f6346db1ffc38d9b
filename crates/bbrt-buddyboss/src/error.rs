//! The one error type of this crate, and how BuddyBoss answers map onto it.

use bbrt_protocol::api::{SiteError, SiteErrorKind};

/// Why the site did not do what was asked.
///
/// Every variant keeps the site's own `code` and `message` (or a bbrt code such as
/// `timeout`, `connect` or `invalid_id` when the site said nothing). Site answers are
/// mapped by BuddyBoss `code` first and HTTP status second; see [`BuddyBossError::from_site`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuddyBossError {
    /// The credential is missing, wrong, expired or revoked (401 `incorrect_password`,
    /// `invalid_username`, `rest_not_logged_in`, `bp_rest_authorization_required` without
    /// credentials, 403 `rest_cookie_invalid_nonce`).
    #[error("unauthenticated ({code}): {message}")]
    Unauthenticated {
        /// The site's error code.
        code: String,
        /// The site's message.
        message: String,
    },
    /// Authenticated but not allowed (403 `bp_rest_authorization_required`): not a
    /// participant, or a thread that does not exist (BuddyBoss answers 403 for both).
    #[error("forbidden ({code}): {message}")]
    Forbidden {
        /// The site's error code.
        code: String,
        /// The site's message.
        message: String,
    },
    /// The request is invalid (400 `bp_rest_messages_empty_message`,
    /// `bp_rest_empty_recipients`; `invalid_id` for an id BuddyBoss cannot hold).
    #[error("invalid request ({code}): {message}")]
    Invalid {
        /// The site's error code.
        code: String,
        /// The site's message.
        message: String,
    },
    /// The site refused the message (500 `bp_rest_messages_create_failed`: unknown
    /// recipient, friendship required, blocked). Not retryable.
    #[error("refused by the site ({code}): {message}")]
    Refused {
        /// The site's error code.
        code: String,
        /// The site's message.
        message: String,
    },
    /// The site is down, slow or failing (other 5xx, 429, timeout, connection refused).
    /// Retryable.
    #[error("site unavailable ({code}): {message}")]
    Unavailable {
        /// The site's error code, or `timeout`, `connect`, `transport`, `http_<status>`.
        code: String,
        /// The site's message, or what went wrong.
        message: String,
    },
    /// A send whose outcome is unknown: the site did not confirm it and it was not found
    /// in the thread (yet), so it may be stored. Retryable with the same idempotency key
    /// only (`code` is `send_unconfirmed`).
    #[error("send unconfirmed ({code}): {message}")]
    Unconfirmed {
        /// `send_unconfirmed`.
        code: String,
        /// What is known: why the site did not confirm it.
        message: String,
    },
    /// The site answered something it does not document (a body that is not the JSON
    /// BuddyBoss sends, an unknown route).
    #[error("unexpected answer from the site ({code}): {message}")]
    Protocol {
        /// The site's error code, or `bad_response`, `response_too_large`.
        code: String,
        /// What was wrong with the answer.
        message: String,
    },
}

impl BuddyBossError {
    /// An error of `kind` with `code` and `message`.
    pub fn new(kind: SiteErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        let (code, message) = (code.into(), message.into());
        match kind {
            SiteErrorKind::Unauthenticated => Self::Unauthenticated { code, message },
            SiteErrorKind::Forbidden => Self::Forbidden { code, message },
            SiteErrorKind::Invalid
            | SiteErrorKind::InvalidId
            | SiteErrorKind::EmptyMessage
            | SiteErrorKind::IdempotencyConflict => Self::Invalid { code, message },
            SiteErrorKind::Refused => Self::Refused { code, message },
            SiteErrorKind::Unavailable => Self::Unavailable { code, message },
            SiteErrorKind::Unconfirmed => Self::Unconfirmed { code, message },
            _ => Self::Protocol { code, message },
        }
    }

    /// Maps a BuddyBoss/WordPress error answer: by `code` first, HTTP `status` second.
    ///
    /// | code | kind |
    /// |---|---|
    /// | `bp_rest_messages_create_failed` | refused |
    /// | `rest_not_logged_in`, `incorrect_password`, `invalid_username`, `invalid_email`, `application_passwords_disabled*`, `rest_cookie_invalid_nonce`, `jwt_auth_*` | unauthenticated |
    /// | `bp_rest_authorization_required` | unauthenticated on 401, forbidden otherwise |
    /// | `bp_rest_messages_empty_message` | invalid ([`SiteErrorKind::EmptyMessage`]) |
    /// | `bp_rest_empty_recipients`, `bp_rest_bp_message_*`, `bp_rest_invalid_id`, `rest_invalid_param`, `rest_missing_callback_param`, `rest_invalid_json` | invalid |
    /// | `idempotency_conflict` (bbrt's plugin: the key was used for another message) | invalid ([`SiteErrorKind::IdempotencyConflict`]) |
    /// | `bbrt_send_in_progress`, `bbrt_store_unavailable` (bbrt's plugin) | unavailable |
    /// | `rest_no_route` | protocol (wrong API root, or the messages component is off) |
    /// | any other code | by status: 401 unauthenticated, 403 forbidden, 429 and 5xx unavailable, other 4xx invalid, anything else protocol |
    pub fn from_site(status: u16, code: &str, message: &str) -> Self {
        let kind = match code {
            "bp_rest_messages_create_failed" => SiteErrorKind::Refused,
            "rest_not_logged_in"
            | "incorrect_password"
            | "invalid_username"
            | "invalid_email"
            | "rest_cookie_invalid_nonce" => SiteErrorKind::Unauthenticated,
            c if c.starts_with("application_passwords_disabled") || c.starts_with("jwt_auth_") => {
                SiteErrorKind::Unauthenticated
            }
            "bp_rest_authorization_required" if status == 401 => SiteErrorKind::Unauthenticated,
            "bp_rest_authorization_required" => SiteErrorKind::Forbidden,
            "bp_rest_messages_empty_message"
            | "bp_rest_empty_recipients"
            | "bp_rest_invalid_id"
            | "rest_invalid_param"
            | "rest_missing_callback_param"
            | "rest_invalid_json"
            | "idempotency_conflict" => SiteErrorKind::Invalid,
            "bbrt_send_in_progress" | "bbrt_store_unavailable" => SiteErrorKind::Unavailable,
            c if c.starts_with("bp_rest_bp_message_") => SiteErrorKind::Invalid,
            "rest_no_route" => SiteErrorKind::Protocol,
            _ => kind_for_status(status),
        };
        Self::new(kind, code, message)
    }

    /// The kind of failure, as the Hub sees it.
    pub fn kind(&self) -> SiteErrorKind {
        match self {
            Self::Unauthenticated { .. } => SiteErrorKind::Unauthenticated,
            Self::Forbidden { .. } => SiteErrorKind::Forbidden,
            // The invalid requests whose reason the client is told (the Hub knows no
            // site codes).
            Self::Invalid { code, .. } => match code.as_str() {
                "invalid_id" => SiteErrorKind::InvalidId,
                "bp_rest_messages_empty_message" => SiteErrorKind::EmptyMessage,
                "idempotency_conflict" => SiteErrorKind::IdempotencyConflict,
                _ => SiteErrorKind::Invalid,
            },
            Self::Refused { .. } => SiteErrorKind::Refused,
            Self::Unavailable { .. } => SiteErrorKind::Unavailable,
            Self::Unconfirmed { .. } => SiteErrorKind::Unconfirmed,
            Self::Protocol { .. } => SiteErrorKind::Protocol,
        }
    }

    /// The site's error code (or bbrt's, when the site gave none).
    pub fn code(&self) -> &str {
        match self {
            Self::Unauthenticated { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Invalid { code, .. }
            | Self::Refused { code, .. }
            | Self::Unavailable { code, .. }
            | Self::Unconfirmed { code, .. }
            | Self::Protocol { code, .. } => code,
        }
    }

    /// The site's message (or bbrt's, when the site gave none).
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated { message, .. }
            | Self::Forbidden { message, .. }
            | Self::Invalid { message, .. }
            | Self::Refused { message, .. }
            | Self::Unavailable { message, .. }
            | Self::Unconfirmed { message, .. }
            | Self::Protocol { message, .. } => message,
        }
    }

    /// Whether the same request may succeed if tried again later.
    pub fn retryable(&self) -> bool {
        self.kind().retryable()
    }

    pub(crate) fn invalid_id(what: &str, id: &str) -> Self {
        Self::Invalid {
            code: "invalid_id".into(),
            message: format!("{what} id {id:?} is not a numeric BuddyBoss id"),
        }
    }

    pub(crate) fn missing_credential() -> Self {
        Self::Unauthenticated {
            code: "missing_credential".into(),
            message: "no credential was presented".into(),
        }
    }
}

/// The kind for an HTTP status when the code says nothing more.
pub(crate) fn kind_for_status(status: u16) -> SiteErrorKind {
    match status {
        401 => SiteErrorKind::Unauthenticated,
        403 => SiteErrorKind::Forbidden,
        429 | 500..=599 => SiteErrorKind::Unavailable,
        400..=499 => SiteErrorKind::Invalid,
        _ => SiteErrorKind::Protocol,
    }
}

impl From<BuddyBossError> for SiteError {
    fn from(e: BuddyBossError) -> Self {
        let kind = e.kind();
        match e {
            BuddyBossError::Unauthenticated { code, message }
            | BuddyBossError::Forbidden { code, message }
            | BuddyBossError::Invalid { code, message }
            | BuddyBossError::Refused { code, message }
            | BuddyBossError::Unavailable { code, message }
            | BuddyBossError::Unconfirmed { code, message }
            | BuddyBossError::Protocol { code, message } => Self::new(kind, code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_first_status_second() {
        let k = |s, c| BuddyBossError::from_site(s, c, "m").kind();
        assert_eq!(
            k(401, "bp_rest_authorization_required"),
            SiteErrorKind::Unauthenticated
        );
        assert_eq!(
            k(403, "bp_rest_authorization_required"),
            SiteErrorKind::Forbidden
        );
        assert_eq!(k(401, "incorrect_password"), SiteErrorKind::Unauthenticated);
        assert_eq!(k(401, "invalid_username"), SiteErrorKind::Unauthenticated);
        assert_eq!(k(401, "rest_not_logged_in"), SiteErrorKind::Unauthenticated);
        assert_eq!(
            k(403, "rest_cookie_invalid_nonce"),
            SiteErrorKind::Unauthenticated
        );
        assert_eq!(
            k(400, "bp_rest_messages_empty_message"),
            SiteErrorKind::EmptyMessage
        );
        assert_eq!(k(400, "bp_rest_empty_recipients"), SiteErrorKind::Invalid);
        assert_eq!(
            k(500, "bp_rest_messages_create_failed"),
            SiteErrorKind::Refused
        );
        assert_eq!(k(500, "internal_server_error"), SiteErrorKind::Unavailable);
        assert_eq!(k(502, "http_502"), SiteErrorKind::Unavailable);
        assert_eq!(k(429, "too_many"), SiteErrorKind::Unavailable);
        assert_eq!(k(404, "rest_no_route"), SiteErrorKind::Protocol);
        assert_eq!(k(418, "teapot"), SiteErrorKind::Invalid);
        assert_eq!(k(302, "moved"), SiteErrorKind::Protocol);
    }

    #[test]
    fn converts_to_site_error_keeping_code_and_message() {
        let e = BuddyBossError::from_site(403, "bp_rest_authorization_required", "Sorry.");
        assert_eq!(
            e.to_string(),
            "forbidden (bp_rest_authorization_required): Sorry."
        );
        let s = SiteError::from(e);
        assert_eq!(
            s,
            SiteError::new(
                SiteErrorKind::Forbidden,
                "bp_rest_authorization_required",
                "Sorry."
            )
        );
    }
}
