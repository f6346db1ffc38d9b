//! One HTTP exchange with the site: bounded bodies, reads retried with backoff, writes
//! never, and the site's answers mapped to [`BuddyBossError`]s.

use super::*;

/// What came of one HTTP exchange.
pub(super) enum Exchange {
    /// The site answered.
    Answered {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    },
    /// No answer. `maybe_processed` is false only when the request surely never reached
    /// the site (the connection was never made).
    Failed {
        error: BuddyBossError,
        maybe_processed: bool,
    },
}

/// What came of a POST.
pub(super) enum PostOutcome {
    /// The site surely did, or surely did not, process it.
    Known(Result<Vec<u8>, BuddyBossError>),
    /// The site may or may not have processed it.
    Unknown(BuddyBossError),
}

pub(super) fn numeric(what: &str, id: &str) -> Result<u64, BuddyBossError> {
    // Canonical decimal only ("042" would come back from the site as "42").
    if id.is_empty()
        || id.len() > 20
        || id.starts_with('0')
        || !id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(BuddyBossError::invalid_id(what, id));
    }
    match id.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BuddyBossError::invalid_id(what, id)),
    }
}

pub(super) fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, BuddyBossError> {
    serde_json::from_slice(body).map_err(|e| BuddyBossError::Protocol {
        code: "bad_response".into(),
        message: format!("the site's answer is not a {what}: {e}"),
    })
}

/// A non-2xx answer as an error: by the body's `code` if it is WordPress's error JSON,
/// else by status alone.
pub(super) fn error_from_answer(status: u16, body: &[u8]) -> BuddyBossError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => BuddyBossError::from_site(status, &e.code, &e.message),
        Err(_) => BuddyBossError::new(
            kind_for_status(status),
            format!("http_{status}"),
            format!("the site answered HTTP {status}"),
        ),
    }
}

/// What went wrong, without the URL, with the causes reqwest wraps.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut message = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "could not read the answer"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

impl HttpBuddyBoss {
    pub(super) async fn exchange(
        &self,
        method: Method,
        route: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        credential: &Credential,
    ) -> Exchange {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        let mut request = self
            .client
            .request(method.clone(), self.config.api_root.url(route));
        if !query.is_empty() {
            request = request.query(query);
        }
        for (name, value) in credential.headers() {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let (code, maybe_processed) = if e.is_connect() {
                    ("connect", false)
                } else if e.is_timeout() {
                    ("timeout", true)
                } else {
                    ("transport", true)
                };
                tracing::debug!(%method, route, code, "site request failed");
                return Exchange::Failed {
                    error: BuddyBossError::Unavailable {
                        code: code.into(),
                        message: describe(&e),
                    },
                    maybe_processed,
                };
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.config.max_response_bytes {
                        return Exchange::Failed {
                            error: BuddyBossError::Protocol {
                                code: "response_too_large".into(),
                                message: format!(
                                    "the answer is larger than {} bytes",
                                    self.config.max_response_bytes
                                ),
                            },
                            maybe_processed: true,
                        };
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let code = if e.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    };
                    tracing::debug!(%method, route, status, code, "site answer cut short");
                    return Exchange::Failed {
                        error: BuddyBossError::Unavailable {
                            code: code.into(),
                            message: describe(&e),
                        },
                        maybe_processed: true,
                    };
                }
            }
        }
        tracing::debug!(%method, route, status, elapsed_ms = started.elapsed().as_millis() as u64, "site answered");
        Exchange::Answered {
            status,
            headers,
            body,
        }
    }

    /// A GET, retried with backoff while the site is unavailable.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        route: &str,
        query: &[(&str, &str)],
        credential: &Credential,
        what: &str,
    ) -> Result<T, BuddyBossError> {
        let mut attempt = 0;
        loop {
            let result = match self
                .exchange(Method::GET, route, query, None, credential)
                .await
            {
                Exchange::Answered { status, body, .. } if (200..300).contains(&status) => {
                    parse(&body, what)
                }
                Exchange::Answered { status, body, .. } => Err(error_from_answer(status, &body)),
                Exchange::Failed { error, .. } => Err(error),
            };
            match result {
                Err(e)
                    if e.kind() == SiteErrorKind::Unavailable
                        && attempt < self.config.read_retries =>
                {
                    let backoff = self
                        .config
                        .retry_backoff
                        .saturating_mul(1 << attempt.min(16));
                    attempt += 1;
                    tracing::debug!(route, attempt, code = e.code(), "retrying a read");
                    tokio::time::sleep(backoff).await;
                }
                other => return self.noticed(other, credential),
            }
        }
    }

    /// A POST, never retried.
    pub(super) async fn post(
        &self,
        route: &str,
        body: &serde_json::Value,
        credential: &Credential,
    ) -> PostOutcome {
        match self
            .exchange(Method::POST, route, &[], Some(body), credential)
            .await
        {
            Exchange::Answered { status, body, .. } if (200..300).contains(&status) => {
                PostOutcome::Known(Ok(body))
            }
            Exchange::Answered { status, body, .. } => {
                let error = error_from_answer(status, &body);
                // A gateway error or an undocumented 5xx may come after the site stored it.
                if status >= 500 && error.kind() == SiteErrorKind::Unavailable {
                    PostOutcome::Unknown(error)
                } else {
                    PostOutcome::Known(self.noticed(Err(error), credential))
                }
            }
            Exchange::Failed {
                error,
                maybe_processed: true,
            } => PostOutcome::Unknown(error),
            Exchange::Failed {
                error,
                maybe_processed: false,
            } => PostOutcome::Known(Err(error)),
        }
    }

    /// A 401 anywhere means the cached verify result is stale.
    pub(super) fn noticed<T>(
        &self,
        result: Result<T, BuddyBossError>,
        credential: &Credential,
    ) -> Result<T, BuddyBossError> {
        if let Err(BuddyBossError::Unauthenticated { .. }) = &result {
            self.cache.remove(&credential.cache_key());
        }
        result
    }

    pub(super) async fn thread(
        &self,
        credential: &Credential,
        thread: u64,
    ) -> Result<ThreadJson, BuddyBossError> {
        self.get(
            &format!("buddyboss/v1/messages/{thread}"),
            &[],
            credential,
            "thread",
        )
        .await
    }

    /// The longest one read (`GET`) may take: every attempt times out, with the backoff
    /// between attempts.
    pub(super) fn read_deadline(&self) -> Duration {
        let c = &self.config;
        let mut total = c.request_timeout;
        for attempt in 0..c.read_retries {
            total += c.request_timeout + c.retry_backoff.saturating_mul(1 << attempt.min(16));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_only() {
        assert_eq!(numeric("thread", "42"), Ok(42));
        for bad in [
            "THREAD_ID",
            "",
            "0",
            "042",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            assert_eq!(
                numeric("thread", bad).map_err(|e| e.code().to_owned()),
                Err("invalid_id".to_owned()),
                "{bad}"
            );
        }
    }
}
