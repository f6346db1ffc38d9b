//! Sends through bbrt's companion plugin: whether the site has it, and its idempotent
//! route, posted again with the same key while the outcome is unknown.

use super::*;

pub(super) const PLUGIN_UNKNOWN: u8 = 0;

pub(super) const PLUGIN_ABSENT: u8 = 1;

pub(super) const PLUGIN_PRESENT: u8 = 2;

/// The companion plugin's send route, as bbrt posts to it and as the API index names it.
pub(super) const PLUGIN_SEND_ROUTE: &str = "bbrt/v1/messages";

pub(super) const PLUGIN_SEND_ROUTE_KEY: &str = "/bbrt/v1/messages";

/// Whether an API root index lists the companion plugin's send route (a key of
/// `routes`; the `bbrt/v1` namespace alone may hold only the plugin's other routes, with
/// its sends feature off); `None` when the body is not an index.
pub(super) fn lists_plugin(index: &[u8]) -> Option<bool> {
    let index: serde_json::Value = serde_json::from_slice(index).ok()?;
    index.get("namespaces")?.as_array()?;
    Some(
        index
            .get("routes")
            .and_then(serde_json::Value::as_object)
            .is_some_and(|routes| routes.contains_key(PLUGIN_SEND_ROUTE_KEY)),
    )
}

/// A send key for a send whose client gave none: 128 random bits, so unique across
/// nodes and restarts without coordination. Made here, never in the Hub (sans-IO).
pub(super) fn generated_key() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bbrt-{hex}")
}

/// What came of a send posted to the plugin's route.
pub(super) enum Keyed {
    /// The send is decided (stored, refused, or unknown after every attempt).
    Done(Result<StoredMessage, BuddyBossError>),
    /// 404 `rest_no_route` before anything was posted that might have been stored: the
    /// plugin is gone.
    NoRoute,
}

/// The plugin's 200: the stored message is `X-BBRT-Message-Id`'s, in `messages[]`.
pub(super) fn keyed_answer(
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    sender_id: u64,
) -> Result<StoredMessage, BuddyBossError> {
    let id = headers
        .get("x-bbrt-message-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let replayed = headers
        .get("x-bbrt-replayed")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "true");
    let thread = parse::<ThreadJson>(body, "thread");
    let found = match (&thread, id) {
        (Ok(t), Some(id)) => t
            .messages
            .iter()
            .find(|m| m.id.0 == id && m.sender_id.0 == sender_id)
            .map(|m| stored(t, m)),
        _ => None,
    };
    match found {
        Some(message) => {
            tracing::debug!(message = %message.id, replayed, "the site stored the send under its key");
            Ok(message)
        }
        // Stored (a 200), but not shown as bbrt needs: a retry with the key answers it.
        None => Err(unconfirmed(
            "the site stored the message but its answer does not show it".into(),
        )),
    }
}

impl HttpBuddyBoss {
    /// Whether the site has the companion plugin: as last seen, else read from the API
    /// root now (a site that cannot be read counts as without it, for this send).
    pub(super) async fn has_plugin(&self) -> bool {
        match self.plugin.load(Ordering::Relaxed) {
            PLUGIN_PRESENT => return true,
            PLUGIN_ABSENT => return false,
            _ => {}
        }
        let Ok(response) = self.client.get(self.config.api_root.url("")).send().await else {
            return false;
        };
        if !response.status().is_success() {
            return false;
        }
        match response.bytes().await.ok().and_then(|b| lists_plugin(&b)) {
            Some(present) => {
                self.note_plugin(present);
                present
            }
            None => false,
        }
    }

    pub(super) fn note_plugin(&self, present: bool) {
        let now = if present {
            PLUGIN_PRESENT
        } else {
            PLUGIN_ABSENT
        };
        let before = self.plugin.swap(now, Ordering::Relaxed);
        if before != now {
            if present {
                tracing::info!(
                    "the site has bbrt's plugin: sends go to bbrt/v1/messages with a key"
                );
            } else if before == PLUGIN_PRESENT {
                tracing::warn!(
                    "bbrt's plugin is no longer on the site: sends go to BuddyBoss's route"
                );
            }
        }
    }

    /// The longest a keyed send may take: every attempt times out, with the longest wait
    /// between attempts.
    pub(super) fn keyed_deadline(&self) -> Duration {
        let c = &self.config;
        let attempts = c.keyed_send_attempts.max(1);
        let wait = c
            .max_retry_after
            .max(c.retry_backoff.saturating_mul(1 << attempts.min(16)));
        c.request_timeout * attempts + wait * (attempts - 1)
    }

    /// Posts a send to the plugin's route with `key`, again with the same key while the
    /// outcome is unknown or the key in progress.
    pub(super) async fn send_keyed(
        &self,
        credential: &Credential,
        sender_id: u64,
        mut body: serde_json::Value,
        key: &str,
    ) -> Keyed {
        body["client_message_id"] = json!(key);
        let attempts = self.config.keyed_send_attempts.max(1);
        // Why the outcome is unknown, once an attempt may have stored the message.
        let mut unknown: Option<BuddyBossError> = None;
        let mut last: BuddyBossError;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut wait = self
                .config
                .retry_backoff
                .saturating_mul(1 << (attempt - 1).min(16));
            match self
                .exchange(
                    Method::POST,
                    PLUGIN_SEND_ROUTE,
                    &[],
                    Some(&body),
                    credential,
                )
                .await
            {
                Exchange::Answered {
                    status,
                    headers,
                    body: answer,
                } if (200..300).contains(&status) => {
                    return Keyed::Done(keyed_answer(&headers, &answer, sender_id));
                }
                Exchange::Answered {
                    status,
                    headers,
                    body: answer,
                } => {
                    let error = error_from_answer(status, &answer);
                    match (status, error.code()) {
                        (404, "rest_no_route") if unknown.is_none() => return Keyed::NoRoute,
                        (409, "bbrt_send_in_progress") => {
                            // Another request (an earlier attempt, another node) is
                            // storing this key: stored or not is not known yet.
                            if let Some(after) = headers
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<u64>().ok())
                            {
                                wait = Duration::from_secs(after).min(self.config.max_retry_after);
                            }
                            unknown = Some(BuddyBossError::Unavailable {
                                code: error.code().into(),
                                message: error.message().into(),
                            });
                            last = error;
                        }
                        // Nothing stored by this attempt; retryable.
                        (503, "bbrt_store_unavailable") => {
                            last = BuddyBossError::Unavailable {
                                code: error.code().into(),
                                message: error.message().into(),
                            };
                        }
                        _ if status >= 500 && error.kind() == SiteErrorKind::Unavailable => {
                            unknown = Some(error.clone());
                            last = error;
                        }
                        _ => return Keyed::Done(self.noticed(Err(error), credential)),
                    }
                }
                Exchange::Failed {
                    error,
                    maybe_processed,
                } => {
                    if maybe_processed {
                        unknown = Some(error.clone());
                    }
                    last = error;
                }
            }
            if attempt >= attempts {
                break;
            }
            tracing::debug!(
                attempt,
                code = last.code(),
                "posting the send again with its key"
            );
            tokio::time::sleep(wait).await;
        }
        Keyed::Done(Err(match unknown {
            // Never "not stored" while an attempt may have stored it: a retry with the same
            // key gets the stored message.
            Some(cause) => unconfirmed(format!(
                "the site did not confirm the message ({}); a retry with the same key answers it if it was stored",
                cause.code()
            )),
            None => last,
        }))
    }
}
