//! What can be wrong with the site as bbrt is configured for it, and how to fix it.
//!
//! [`BuddyBoss::probe`](crate::BuddyBoss::probe) reads the API root (no credential): is
//! the site reachable, is the URL a WordPress REST API, is BuddyBoss's `buddyboss/v1`
//! namespace there. What a probe cannot see shows in the answers to users' requests:
//! [`auth_scheme_hint`] names the fix when every verification is refused with a code that
//! points at the wrong `--auth-scheme`, and [`SiteProblem::AppPasswordsFix`] the missing
//! Application Passwords fix (under Basic, `users/me` works but every send is refused with
//! 500 `bp_rest_messages_create_failed`).

use std::fmt;

use crate::AuthScheme;

/// A reason the site cannot serve bbrt, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SiteProblem {
    /// No connection: refused, DNS, TLS or a timeout.
    Unreachable {
        /// What failed (`connection refused`, `timed out`...).
        detail: String,
    },
    /// The URL answers, but not as a WordPress REST API (an HTML page, a 404).
    NoRestApi {
        /// The HTTP status.
        status: u16,
    },
    /// The REST API has no `buddyboss/v1` namespace.
    NoBuddyBoss,
    /// The API root answers a server error.
    Failing {
        /// The HTTP status.
        status: u16,
    },
    /// Every verification is refused with a code that points at the wrong scheme.
    WrongAuthScheme {
        /// The site's error code.
        code: String,
        /// What to change.
        hint: &'static str,
    },
    /// Under Basic, sends are refused (500 `bp_rest_messages_create_failed` for a new
    /// thread, 403 `bp_rest_authorization_required` for a reply) although the same
    /// credentials verify: the Application Passwords fix is missing.
    AppPasswordsFix,
}

impl SiteProblem {
    /// A short stable name, for `/readyz` and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::NoRestApi { .. } => "no_rest_api",
            Self::NoBuddyBoss => "no_buddyboss",
            Self::Failing { .. } => "failing",
            Self::WrongAuthScheme { .. } => "wrong_auth_scheme",
            Self::AppPasswordsFix => "app_passwords_fix",
        }
    }
}

impl fmt::Display for SiteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { detail } => write!(
                f,
                "the site is unreachable ({detail}): is it up, and is --buddyboss-url right?"
            ),
            Self::NoRestApi { status } => write!(
                f,
                "the URL is not a WordPress REST API (HTTP {status}, not JSON): give the site's \
                 address, or with plain permalinks https://site/?rest_route="
            ),
            Self::NoBuddyBoss => f.write_str(
                "the REST API has no buddyboss/v1 namespace: activate BuddyBoss Platform (and \
                 its Messages component) on the site",
            ),
            Self::Failing { status } => {
                write!(
                    f,
                    "the site's REST API answers HTTP {status}: see its PHP error log"
                )
            }
            Self::WrongAuthScheme { code, hint } => {
                write!(f, "every credential is refused ({code}): {hint}")
            }
            Self::AppPasswordsFix => f.write_str(
                "users/me works but every send is refused (500 bp_rest_messages_create_failed \
                 for a new thread, 403 bp_rest_authorization_required for a reply): install \
                 the Application Passwords fix (the must-use plugin in bbrt-buddyboss's docs)",
            ),
        }
    }
}

/// The fix, when a refused verification's `code` points at the wrong `--auth-scheme`.
pub fn auth_scheme_hint(scheme: &AuthScheme, code: &str) -> Option<&'static str> {
    Some(match (scheme, code) {
        (AuthScheme::Bearer, "rest_not_logged_in") => {
            "the site ignores the Bearer tokens: it has no bearer-token (JWT) plugin, or the \
             tokens are Application Passwords (--auth-scheme basic) or BuddyBoss App tokens \
             (--auth-scheme access-token)"
        }
        (AuthScheme::Bearer, c) if c.starts_with("jwt_auth_") => {
            "the site's JWT plugin does not take these tokens: Application Passwords need \
             --auth-scheme basic, BuddyBoss App tokens --auth-scheme access-token"
        }
        (AuthScheme::Basic, "invalid_username" | "incorrect_password" | "invalid_email") => {
            "the tokens are not Application Passwords of these users: give them as \
             user:app-password, or use --auth-scheme bearer for JWTs"
        }
        (AuthScheme::Basic, c) if c.starts_with("application_passwords_disabled") => {
            "Application Passwords are disabled on the site (WordPress needs HTTPS or \
             WP_ENVIRONMENT_TYPE=local for them)"
        }
        (AuthScheme::AccessToken, "rest_not_logged_in") => {
            "the site ignores the accessToken header: the BuddyBoss App plugin is not active; \
             use --auth-scheme bearer or basic"
        }
        _ => return None,
    })
}

/// What the API root's answer says about the site.
pub(crate) fn judge_root(status: u16, body: &[u8]) -> Result<(), SiteProblem> {
    if status >= 500 {
        return Err(SiteProblem::Failing { status });
    }
    let index = (200..300)
        .contains(&status)
        .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flatten()
        .filter(|v| v.get("namespaces").is_some());
    let Some(index) = index else {
        return Err(SiteProblem::NoRestApi { status });
    };
    let has_buddyboss = index["namespaces"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n == "buddyboss/v1"));
    if has_buddyboss {
        Ok(())
    } else {
        Err(SiteProblem::NoBuddyBoss)
    }
}
