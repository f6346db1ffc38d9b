//! Sends through BuddyBoss's own route, and reconciling a send whose outcome is
//! unknown by reading the thread.

use super::*;

pub(super) fn unconfirmed(message: String) -> BuddyBossError {
    BuddyBossError::Unconfirmed {
        code: "send_unconfirmed".into(),
        message,
    }
}

/// The newest message in `thread` from `sender` whose text matches, at or after `since`.
pub(super) fn find_in_thread(
    thread: &ThreadJson,
    sender: u64,
    text: &str,
    since: Option<i64>,
) -> Option<StoredMessage> {
    let wanted = text::normalize(text);
    thread
        .messages
        .iter()
        .filter(|m| m.sender_id.0 == sender)
        .filter(|m| {
            m.message
                .raw()
                .is_some_and(|raw| text::normalize(raw) == wanted)
        })
        .filter(|m| match since {
            Some(since) => m
                .date_sent
                .as_deref()
                .and_then(parse_utc)
                .is_some_and(|at| at >= since),
            None => true,
        })
        .max_by_key(|m| m.id)
        .map(|m| stored(thread, m))
}

impl HttpBuddyBoss {
    /// The longest reconciliation may take: the delay, then the reads it makes (a reply
    /// reads its thread; a new thread lists the sentbox and reads up to 3 threads).
    pub(super) fn reconcile_deadline(&self, new_thread: bool) -> Duration {
        let reads = if new_thread { 4 } else { 1 };
        self.config.reconcile_delay + self.read_deadline() * reads
    }

    /// Reads the thread after a send whose outcome is unknown.
    pub(super) async fn reconcile(
        &self,
        request: &SendRequest<'_>,
        started_unix: i64,
        cause: BuddyBossError,
    ) -> Result<StoredMessage, BuddyBossError> {
        tracing::info!(
            code = cause.code(),
            "send outcome unknown, reading the thread to reconcile"
        );
        if !self.config.reconcile_delay.is_zero() {
            tokio::time::sleep(self.config.reconcile_delay).await;
        }
        let window = i64::try_from(self.config.reconcile_window.as_secs()).unwrap_or(i64::MAX);
        let since = started_unix.saturating_sub(window);
        match self.find_recent(request, since).await {
            Ok(Some(stored)) => {
                tracing::info!(message = %stored.id, thread = %stored.thread, "send reconciled: the site stored it");
                Ok(stored)
            }
            // Not there yet is not "not stored": the site may still be working on it.
            Ok(None) => Err(unconfirmed(format!(
                "the site did not confirm the message ({}) and it is not in the thread yet",
                cause.code()
            ))),
            Err(e) if e.retryable() => Err(unconfirmed(format!(
                "the site did not confirm the message ({}) and the thread could not be read ({})",
                cause.code(),
                e.code()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Sends through BuddyBoss's own route (`POST buddyboss/v1/messages`), never the
    /// companion plugin's: what [`BuddyBoss::send`] does on a site without the plugin.
    /// After an unconfirmed attempt (`unconfirmed_since`) it looks for that attempt's
    /// message first, and posts again only once the site had
    /// [`Config::reconcile_settle`] to store it.
    pub async fn send_unkeyed(
        &self,
        request: &SendRequest<'_>,
    ) -> Result<StoredMessage, BuddyBossError> {
        let Some(unconfirmed_since) = request.unconfirmed_since else {
            return self.post_unkeyed(request).await;
        };
        let window = i64::try_from(self.config.reconcile_window.as_secs()).unwrap_or(i64::MAX);
        let since = unconfirmed_since.saturating_sub(window);
        match self.find_recent(request, since).await {
            Ok(Some(stored)) => {
                tracing::info!(message = %stored.id, thread = %stored.thread, "retry reconciled: the site stored the earlier attempt");
                return Ok(stored);
            }
            Ok(None) => {}
            Err(e) if e.retryable() => {
                return Err(unconfirmed(format!(
                    "an earlier attempt is unconfirmed and the thread could not be read ({})",
                    e.code()
                )));
            }
            Err(e) => return Err(e),
        }
        let settle = i64::try_from(self.config.reconcile_settle.as_secs()).unwrap_or(i64::MAX);
        if now_unix() < unconfirmed_since.saturating_add(settle) {
            return Err(unconfirmed(
                "an earlier attempt is unconfirmed and not in the thread yet; the site may still be storing it".into(),
            ));
        }
        tracing::info!(
            "an earlier attempt is not in the thread after the settle time; posting again"
        );
        self.post_unkeyed(request).await
    }

    /// Posts to BuddyBoss's route once, reconciling an unknown outcome.
    pub(super) async fn post_unkeyed(
        &self,
        request: &SendRequest<'_>,
    ) -> Result<StoredMessage, BuddyBossError> {
        let text = request.text;
        let sender_id = numeric("sender", request.sender.as_str())?;
        let body = Self::send_body(request.thread, request.recipients, text)?;
        let credential = request
            .credential
            .ok_or_else(BuddyBossError::missing_credential)?;
        let started = now_unix();
        let cause = match self.post("buddyboss/v1/messages", &body, credential).await {
            PostOutcome::Known(Err(e)) => return Err(e),
            PostOutcome::Known(Ok(body)) => {
                let answer = parse::<ThreadJson>(&body, "thread");
                match answer {
                    Ok(t) => {
                        if let Some(found) = find_in_thread(&t, sender_id, text, None) {
                            return Ok(found);
                        }
                        // The site changed the text (a content filter): BuddyBoss names the
                        // newest message and its sender, which is this send when the sender
                        // matches (sends are serialized per user and thread).
                        let newest = t
                            .message_id
                            .and_then(|id| t.messages.iter().find(|m| m.id == id));
                        if let Some(m) = newest.filter(|m| m.sender_id.0 == sender_id) {
                            tracing::warn!(
                                message = m.id.0,
                                "stored text differs from the sent text; using the thread's newest message"
                            );
                            return Ok(stored(&t, m));
                        }
                        BuddyBossError::Protocol {
                            code: "bad_response".into(),
                            message: "the site's answer does not hold the sent message".into(),
                        }
                    }
                    Err(e) => e,
                }
            }
            PostOutcome::Unknown(e) => e,
        };
        self.reconcile(request, started, cause).await
    }

    /// The newest message like `request`'s (same sender, same text as the site stores
    /// it) stored at or after `since_unix_secs`, in its thread (or, without one, in a
    /// recent thread of the sender with exactly its recipients); for reconciling a send
    /// whose outcome is unknown.
    pub async fn find_recent(
        &self,
        request: &SendRequest<'_>,
        since_unix_secs: i64,
    ) -> Result<Option<StoredMessage>, BuddyBossError> {
        let (credential, text) = (request.credential, request.text);
        let sender_id = numeric("sender", request.sender.as_str())?;
        if let Some(thread) = request.thread {
            let id = numeric("thread", thread.as_str())?;
            let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
            let t = self.thread(credential, id).await?;
            return Ok(find_in_thread(&t, sender_id, text, Some(since_unix_secs)));
        }
        let mut wanted = request
            .recipients
            .iter()
            .map(|r| numeric("recipient", r.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let credential = credential.ok_or_else(BuddyBossError::missing_credential)?;
        wanted.push(sender_id);
        wanted.sort_unstable();
        wanted.dedup();
        let list: Vec<ThreadJson> = self
            .get(
                "buddyboss/v1/messages",
                &[("box", "sentbox"), ("per_page", "10")],
                credential,
                "thread list",
            )
            .await?;
        let candidates = list
            .iter()
            .filter(|t| {
                t.date
                    .as_deref()
                    .and_then(parse_utc)
                    .is_none_or(|at| at >= since_unix_secs)
            })
            .filter(|t| {
                t.participants().is_none_or(|mut p| {
                    p.sort_unstable();
                    p.dedup();
                    p == wanted
                })
            })
            .take(3);
        for candidate in candidates {
            let t = self.thread(credential, candidate.id.0).await?;
            if let Some(found) = find_in_thread(&t, sender_id, text, Some(since_unix_secs)) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Builds the body of a send (BuddyBoss's parameters, never `sender_id`).
    pub(super) fn send_body(
        thread: Option<&ThreadId>,
        recipients: &[UserId],
        text: &str,
    ) -> Result<serde_json::Value, BuddyBossError> {
        Ok(match thread {
            Some(t) => json!({ "id": numeric("thread", t.as_str())?, "message": text }),
            None => {
                let ids = recipients
                    .iter()
                    .map(|r| numeric("recipient", r.as_str()))
                    .collect::<Result<Vec<_>, _>>()?;
                json!({ "recipients": ids, "message": text })
            }
        })
    }
}
