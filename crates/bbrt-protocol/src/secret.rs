//! A wrapper that keeps credentials out of logs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A client credential (a BuddyBoss token, an Application Password, a JWT...).
///
/// `Debug` and `Display` print `[redacted]`, so a token inside any struct that derives
/// `Debug` never reaches a log line or an error message. Read it with [`Token::expose`]
/// only where it is sent to the site.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a credential.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Call it only to present the credential to the site.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn token_never_prints() {
        let t = Token::new("s3cr3t-value");
        assert_eq!(
            format!("{t:?} {t} {:?}", Some(&t)),
            "[redacted] [redacted] Some([redacted])"
        );
        assert_eq!(t.expose(), "s3cr3t-value");
    }
}
