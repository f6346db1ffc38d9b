//! What the server builds from secret flags at start: the ticket and site-event
//! verifiers and the ICE servers. Errors name the flag, never a key.

use super::Config;
use super::values::site_home;

impl Config {
    /// The ticket verifier from `--ticket-keys` (or its file), `--public-url`, the issuer
    /// and `--ticket-leeway`; `None` without a ring.
    ///
    /// # Errors
    /// A malformed ring, an unreadable file, a missing audience or issuer, a leeway over 30 s.
    pub fn ticket_verifier(&self) -> Result<Option<crate::ticket::TicketVerifier>, String> {
        let ring = match (&self.ticket_keys, &self.ticket_keys_file) {
            (Some(ring), _) => ring.expose().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --ticket-keys-file {}: {e}", path.display()))?,
            (None, None) => return Ok(None),
        };
        let keys = crate::ticket::TicketKeys::parse(&ring).map_err(|e| e.to_string())?;
        let audience = self
            .public_url
            .as_deref()
            .ok_or("a ticket key ring needs --public-url (the plugin's BBRT_URL)")?;
        let issuer = match (&self.ticket_issuer, &self.buddyboss_url) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(site)) => site_home(site),
            (None, None) => {
                return Err("a ticket key ring needs --buddyboss-url or --ticket-issuer".into());
            }
        };
        if self.ticket_leeway > crate::ticket::MAX_LEEWAY {
            return Err("--ticket-leeway is at most 30s".into());
        }
        Ok(Some(crate::ticket::TicketVerifier::new(
            keys,
            audience,
            &issuer,
            self.ticket_leeway,
        )))
    }

    /// The ICE servers from `--ice-urls`, the TURN secret (or its file) and
    /// `--turn-credential-ttl`.
    ///
    /// # Errors
    /// A bad URL, TURN without a secret, an unreadable file (never quoting the secret).
    pub fn ice_minter(&self) -> Result<crate::ice::IceMinter, String> {
        let secret =
            match (&self.turn_secret, &self.turn_secret_file) {
                (Some(secret), _) => Some(secret.expose().to_owned()),
                (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read --turn-secret-file {}: {e}", path.display())
                })?),
                (None, None) => None,
            };
        crate::ice::IceMinter::new(&self.ice_urls, secret.as_deref(), self.turn_credential_ttl)
    }

    /// The site-event verifier from `--site-event-keys` (or its file); `None` without a ring.
    ///
    /// # Errors
    /// A malformed ring or an unreadable file (the message never quotes a key).
    pub fn site_event_verifier(
        &self,
    ) -> Result<Option<crate::site_events::SiteEventVerifier>, String> {
        let ring = match (&self.site_event_keys, &self.site_event_keys_file) {
            (Some(ring), _) => ring.expose().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                format!("cannot read --site-event-keys-file {}: {e}", path.display())
            })?,
            (None, None) => return Ok(None),
        };
        let keys =
            crate::ticket::KeyRing::parse(&ring).map_err(|e| format!("--site-event-keys: {e}"))?;
        Ok(Some(crate::site_events::SiteEventVerifier::new(keys)))
    }
}
