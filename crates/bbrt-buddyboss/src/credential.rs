//! A user's own credential and how it is presented to the site.

use base64::Engine as _;
use bbrt_protocol::secret::Token;
use sha2::{Digest, Sha256};

/// How a [`Credential`] is presented to WordPress.
///
/// `Debug` never shows a secret: the nonce is a [`Token`] too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (the default; the seed's server did this). Works
    /// with any plugin that authenticates bearer tokens on `determine_current_user`.
    Bearer,
    /// `Authorization: Basic <base64>`: WordPress Application Passwords. A token holding
    /// a `:` is `user:app-password` and is base64-encoded here; a token without one is
    /// taken as already encoded.
    Basic,
    /// `accessToken: <jwt>`: the BuddyBoss App's JWT, forwarded unchanged.
    AccessToken,
    /// The WordPress login cookie (the whole `Cookie` header value as the token) plus
    /// `X-WP-Nonce: <nonce>` (a `wp_rest` nonce), for a same-domain deployment.
    CookieNonce {
        /// The `wp_rest` nonce.
        nonce: Token,
    },
    /// A connection ticket from the companion plugin. It is checked by the server and
    /// never presented to the site: it has no headers, so a ticket that reached the site
    /// would be refused there as anonymous.
    Ticket,
    /// A site credential (`bbrt-sc1.…`) from a ticket, presented as `X-BBRT-Session`,
    /// with no `Authorization` header and no cookie.
    SiteSession,
}

impl std::str::FromStr for AuthScheme {
    type Err = crate::BuddyBossError;

    /// `bearer`, `basic` or `access-token` (for configuration). The cookie scheme needs a
    /// nonce per credential, so it is built with [`Credential::cookie`] instead.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bearer" => Ok(Self::Bearer),
            "basic" | "app-password" | "application-password" => Ok(Self::Basic),
            "access-token" | "accesstoken" | "jwt" => Ok(Self::AccessToken),
            _ => Err(crate::BuddyBossError::Invalid {
                code: "invalid_config".into(),
                message: format!(
                    "unknown auth scheme {s:?}: expected bearer, basic or access-token"
                ),
            }),
        }
    }
}

impl AuthScheme {
    /// A short stable name, for logs and the fake site's request log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::AccessToken => "access-token",
            Self::CookieNonce { .. } => "cookie-nonce",
            Self::Ticket => "ticket",
            Self::SiteSession => "site-session",
        }
    }
}

/// One user's own credential for the site. bbrt holds no admin secret.
///
/// `Debug` prints `[redacted]` for every secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    /// The secret: a bearer token, `user:app-password`, a JWT or a `Cookie` header value.
    pub token: Token,
    /// How to present it.
    pub scheme: AuthScheme,
}

impl Credential {
    /// A credential presented with `scheme`.
    pub fn new(token: Token, scheme: AuthScheme) -> Self {
        Self { token, scheme }
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::new(Token::new(token), AuthScheme::Bearer)
    }

    /// An Application Password: `user:app-password` (or its base64 form).
    pub fn basic(user_colon_password: impl Into<String>) -> Self {
        Self::new(Token::new(user_colon_password), AuthScheme::Basic)
    }

    /// The BuddyBoss App's `accessToken` JWT.
    pub fn access_token(jwt: impl Into<String>) -> Self {
        Self::new(Token::new(jwt), AuthScheme::AccessToken)
    }

    /// The WordPress login cookie (a whole `Cookie` header value) and a `wp_rest` nonce.
    pub fn cookie(cookie_header: impl Into<String>, nonce: impl Into<String>) -> Self {
        Self::new(
            Token::new(cookie_header),
            AuthScheme::CookieNonce {
                nonce: Token::new(nonce),
            },
        )
    }

    /// A connection ticket, to be verified by the server.
    pub fn ticket(ticket: impl Into<String>) -> Self {
        Self::new(Token::new(ticket), AuthScheme::Ticket)
    }

    /// A site credential from a verified ticket, presented as `X-BBRT-Session`.
    pub fn site_session(site_credential: impl Into<String>) -> Self {
        Self::new(Token::new(site_credential), AuthScheme::SiteSession)
    }

    /// Reads an `Authorization` header value (`Bearer x` or `Basic x`, any case); `None`
    /// for another scheme or an empty value.
    pub fn from_authorization_header(value: &str) -> Option<Self> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        let rest = rest.trim();
        if rest.is_empty() {
            return None;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(Self::bearer(rest))
        } else if scheme.eq_ignore_ascii_case("basic") {
            Some(Self::basic(rest))
        } else {
            None
        }
    }

    /// The headers that present this credential, secrets included. Only the HTTP client
    /// calls this, right before sending.
    pub(crate) fn headers(&self) -> Vec<(&'static str, String)> {
        let secret = self.token.expose();
        match &self.scheme {
            AuthScheme::Bearer => vec![("authorization", format!("Bearer {secret}"))],
            AuthScheme::Basic => {
                let encoded = if secret.contains(':') {
                    base64::engine::general_purpose::STANDARD.encode(secret)
                } else {
                    secret.to_owned()
                };
                vec![("authorization", format!("Basic {encoded}"))]
            }
            AuthScheme::AccessToken => vec![("accesstoken", secret.to_owned())],
            AuthScheme::CookieNonce { nonce } => {
                vec![
                    ("cookie", secret.to_owned()),
                    ("x-wp-nonce", nonce.expose().to_owned()),
                ]
            }
            AuthScheme::Ticket => Vec::new(),
            AuthScheme::SiteSession => vec![("x-bbrt-session", secret.to_owned())],
        }
    }

    /// SHA-256 over the scheme and every secret: the key of the verify cache, so the
    /// cache never holds a token.
    pub(crate) fn cache_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.scheme.name().as_bytes());
        h.update([0]);
        h.update(self.token.expose().as_bytes());
        if let AuthScheme::CookieNonce { nonce } = &self.scheme {
            h.update([0]);
            h.update(nonce.expose().as_bytes());
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::cookie("wordpress_logged_in_abc=SECRETCOOKIE", "SECRETNONCE");
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn basic_encodes_user_colon_password_only() {
        let h = Credential::basic("alice:abcd efgh").headers();
        assert_eq!(
            h,
            vec![("authorization", "Basic YWxpY2U6YWJjZCBlZmdo".to_owned())]
        );
        let h = Credential::basic("YWxpY2U6YWJjZCBlZmdo").headers();
        assert_eq!(
            h,
            vec![("authorization", "Basic YWxpY2U6YWJjZCBlZmdo".to_owned())]
        );
    }

    #[test]
    fn parses_scheme_names() {
        assert_eq!("Bearer".parse::<AuthScheme>(), Ok(AuthScheme::Bearer));
        assert_eq!("basic".parse::<AuthScheme>(), Ok(AuthScheme::Basic));
        assert_eq!(
            "access-token".parse::<AuthScheme>(),
            Ok(AuthScheme::AccessToken)
        );
        assert!("cookie".parse::<AuthScheme>().is_err());
    }

    #[test]
    fn parses_authorization_headers() {
        assert_eq!(
            Credential::from_authorization_header("bearer abc"),
            Some(Credential::bearer("abc"))
        );
        assert_eq!(
            Credential::from_authorization_header("Basic eHk="),
            Some(Credential::basic("eHk="))
        );
        assert_eq!(Credential::from_authorization_header("Digest x"), None);
        assert_eq!(Credential::from_authorization_header("Bearer "), None);
    }

    #[test]
    fn cache_key_depends_on_scheme_and_nonce() {
        let a = Credential::bearer("t").cache_key();
        assert_ne!(a, Credential::access_token("t").cache_key());
        assert_ne!(
            Credential::cookie("c", "n1").cache_key(),
            Credential::cookie("c", "n2").cache_key()
        );
        assert_eq!(a, Credential::bearer("t").cache_key());
    }
}
