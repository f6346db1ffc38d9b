//! Performs the Hub's site requests and coordination requests concurrently, on a bounded
//! executor, with exactly one result per request.
//!
//! A site that never waits (the embedded one) answers through its synchronous
//! `BuddyBoss::perform_now`, right here, and the result is handed back to the hub task,
//! which feeds it to the Hub after the current outputs. Either way the request's
//! `CredentialId` is resolved in the credential store first, once. Any other request is a
//! future that runs inline while it completes at once (the in-process coordinator, a
//! verification the site client answers from its cache), else as a task; a site request
//! waits for a permit (at most `site_concurrency` in flight), calls the site under its own
//! deadline and sends `Input::ApiResult` back. A guard answers with an error if a request
//! ends any other way (cancelled at shutdown, or a panic in the site client), so the Hub
//! never waits forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bbrt_buddyboss::{AuthScheme, BuddyBoss, Credential};
use bbrt_protocol::api::{ApiRequest, ApiResponse, SiteError, SiteErrorKind};
use bbrt_protocol::hub::{CoordRequest, CoordResponse, Input};
use bbrt_protocol::ids::{ApiRequestId, CoordRequestId};
use futures_util::FutureExt as _;
use tokio::sync::{Semaphore, mpsc};

use crate::broker::Coordinator;
use crate::credentials::CredentialStore;
use crate::metrics::{Metrics, TicketOutcome};
use crate::ticket::{TicketLedger, TicketRefusal, TicketVerifier};

/// Sends the one result of a request, or an error if dropped unanswered.
struct ApiAnswer {
    id: ApiRequestId,
    results: mpsc::UnboundedSender<Input>,
    in_flight: Arc<AtomicUsize>,
    answered: bool,
}

impl ApiAnswer {
    fn send(mut self, result: Result<ApiResponse, SiteError>) {
        self.answered = true;
        // The hub task is gone only when the process is stopping.
        let _ = self.results.send(Input::ApiResult {
            id: self.id,
            result,
        });
    }
}

impl Drop for ApiAnswer {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.answered {
            let _ = self.results.send(Input::ApiResult {
                id: self.id,
                result: Err(cancelled()),
            });
        }
    }
}

struct CoordAnswer {
    id: CoordRequestId,
    results: mpsc::UnboundedSender<Input>,
    answered: bool,
}

impl Drop for CoordAnswer {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.results.send(Input::CoordResult {
                id: self.id,
                result: CoordResponse::Unavailable,
            });
        }
    }
}

/// The answer to a request that ended without one (cancelled at shutdown, or a panic in
/// the site client).
fn cancelled() -> SiteError {
    SiteError::new(
        SiteErrorKind::Unavailable,
        "cancelled",
        "the site request did not complete",
    )
}

/// Counts a site request's outcome and time.
fn record(
    metrics: &Metrics,
    request: &ApiRequest,
    took: Duration,
    result: &Result<ApiResponse, SiteError>,
) {
    let error = result.as_ref().err().map(|e| e.code.as_str());
    metrics.site_request(request, took, error);
    if let Some(site) = metrics.site_health.get() {
        site.observe(request, result);
    }
}

/// Logs what the site said: clients read only the fixed text of the error's code, so its
/// own words (HTML, which of username or password was wrong, transport errors) are for the
/// operator. Refusals are logged at INFO; outages at DEBUG, per request.
fn log_failure(request: &ApiRequest, error: &SiteError, took: Duration) {
    let (name, kind, code, detail) = (request.name(), error.kind, &error.code, &error.message);
    if kind.retryable() {
        tracing::debug!(request = name, ?kind, %code, %detail, ?took, "site request failed");
    } else {
        tracing::info!(request = name, ?kind, %code, %detail, ?took, "site request refused");
    }
}

/// Runs `task` right here if it completes without waiting (the in-process coordinator, a
/// verification answered from the site client's cache), else spawns it: no task, no
/// wake-up and no scheduling for answers that are already known. The embedded site does
/// not come here: it answers synchronously ([`Executor::api`]).
///
/// A panic in the site client is contained as it would be in a spawned task: the
/// request's drop guard answers it, and the hub task goes on.
fn run_or_spawn(task: impl Future<Output = ()> + Send + 'static) {
    let mut task = Box::pin(task);
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        task.as_mut().now_or_never()
    }));
    match polled {
        Ok(Some(())) => {}
        Ok(None) => {
            tokio::spawn(task);
        }
        Err(_) => {
            tracing::error!("a site or coordination request panicked; answered with an error")
        }
    }
}

/// Runs the Hub's requests.
pub(crate) struct Executor {
    pub(crate) site: Arc<dyn BuddyBoss>,
    pub(crate) coordinator: Arc<dyn Coordinator>,
    pub(crate) credentials: Arc<CredentialStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) timeout: Duration,
    pub(crate) results: mpsc::UnboundedSender<Input>,
    /// Site requests not yet answered (graceful shutdown waits for zero).
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// Checks connection tickets (`None`: no ticket key ring configured, tickets refused).
    pub(crate) tickets: Option<Arc<TicketVerifier>>,
    /// Remembers used tickets (Redis with `--redis`, so single use is cluster-wide).
    pub(crate) ledger: Arc<dyn TicketLedger>,
}

/// The refusal of a ticket, whatever its cause: one text, so a client learns nothing
/// about which check failed.
fn ticket_refused() -> SiteError {
    SiteError::new(
        SiteErrorKind::Unauthenticated,
        "invalid_ticket",
        "the connection ticket was refused",
    )
}

impl Executor {
    /// Starts a site request; its result comes back on the results channel, or, from a
    /// site that answers at once (the embedded one), is returned here for the hub task to
    /// hand straight back to the Hub.
    #[must_use]
    pub(crate) fn api(&self, id: ApiRequestId, request: ApiRequest) -> Option<Input> {
        let credential = match request.credential() {
            Some(c) => match self.credentials.get(c) {
                Some(credential) => Some(credential),
                None => {
                    // The Hub releases a credential only once nothing uses it, and the
                    // store is touched by the hub task alone: this is a bug.
                    tracing::error!(credential = %c, request = request.name(), "bug: a site request names a credential the store does not hold");
                    return Some(Input::ApiResult {
                        id,
                        result: Err(SiteError::new(
                            SiteErrorKind::Protocol,
                            "internal",
                            "bbrt lost the credential of this request",
                        )),
                    });
                }
            },
            None => None,
        };
        if let (ApiRequest::Verify { .. }, Some(ticket), Some(c)) =
            (&request, &credential, request.credential())
            && ticket.scheme == AuthScheme::Ticket
        {
            return self.verify_ticket(id, request, c, ticket);
        }
        match self.api_now(&request, credential.as_ref()) {
            Some(result) => Some(Input::ApiResult { id, result }),
            None => {
                self.api_later(id, request, credential);
                None
            }
        }
    }

    /// A ticket's verification (`docs/wordpress.md`, "How bbrt verifies a ticket"): the
    /// local checks here, synchronously; then single use, and `users/me` with the site
    /// credential, which must name the ticket's user (a forged ticket carries no site
    /// credential the site accepts, so its forger is not let in either).
    ///
    /// The store's entry becomes the site credential before the ticket is spent, so that
    /// whatever the Hub asks next with this id (a retry included) goes to the site with
    /// it; a refusal makes the Hub release the id.
    fn verify_ticket(
        &self,
        id: ApiRequestId,
        request: ApiRequest,
        credential_id: bbrt_protocol::ids::CredentialId,
        ticket: &Credential,
    ) -> Option<Input> {
        let refused = |why: TicketRefusal| {
            tracing::info!(reason = why.name(), "connection ticket refused");
            self.metrics.ticket(TicketOutcome::Refused);
            Some(Input::ApiResult {
                id,
                result: Err(ticket_refused()),
            })
        };
        let Some(verifier) = self.tickets.as_ref() else {
            tracing::info!("connection ticket refused: no ticket key ring is configured");
            self.metrics.ticket(TicketOutcome::Refused);
            return Some(Input::ApiResult {
                id,
                result: Err(ticket_refused()),
            });
        };
        let now = crate::broker::unix_now();
        let verified = match verifier.verify(ticket.token.expose(), now) {
            Ok(v) => v,
            Err(why) => return refused(why),
        };
        let site_credential = Credential::site_session(verified.site_credential.clone());
        self.credentials
            .replace(credential_id, site_credential.clone());
        let ttl = verifier.remember_for(&verified, now);
        let ledger = Arc::clone(&self.ledger);
        let (results, site, metrics) = (
            self.results.clone(),
            Arc::clone(&self.site),
            Arc::clone(&self.metrics),
        );
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let answer = ApiAnswer {
            id,
            results,
            in_flight: Arc::clone(&self.in_flight),
            answered: false,
        };
        let timeout = self.deadline(&request);
        let permits = Arc::clone(&self.permits);
        run_or_spawn(async move {
            match ledger.take(&verified.jti, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(
                        reason = TicketRefusal::AlreadyUsed.name(),
                        "connection ticket refused"
                    );
                    metrics.ticket(TicketOutcome::Refused);
                    return answer.send(Err(ticket_refused()));
                }
                Err(()) => {
                    tracing::warn!(
                        reason = TicketRefusal::LedgerUnavailable.name(),
                        "connection ticket refused"
                    );
                    metrics.ticket(TicketOutcome::Refused);
                    return answer.send(Err(ticket_refused()));
                }
            }
            // Within --site-concurrency, like every other site request.
            let Ok(_permit) = permits.acquire_owned().await else {
                return; // closed at shutdown: the guard answers
            };
            let start = Instant::now();
            let result = tokio::time::timeout(
                timeout,
                bbrt_buddyboss::perform(&*site, &request, Some(&site_credential)),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SiteError::new(
                    SiteErrorKind::Unavailable,
                    "timeout",
                    "the site did not answer in time",
                ))
            });
            let took = start.elapsed();
            record(&metrics, &request, took, &result);
            let result = match result {
                Ok(ApiResponse::User(user)) if user.id.as_str() != verified.user => {
                    tracing::warn!(ticket_user = %verified.user, site_user = %user.id, "the site credential of a ticket names another user");
                    Err(ticket_refused())
                }
                other => other,
            };
            // A site that is down decides nothing: the Hub verifies again later with the
            // site credential, as any other.
            match &result {
                Ok(_) => metrics.ticket(TicketOutcome::Accepted),
                Err(e) => {
                    if e.kind == SiteErrorKind::Unauthenticated {
                        metrics.ticket(TicketOutcome::Refused);
                    }
                    log_failure(&request, e, took);
                }
            }
            answer.send(result);
        });
        None
    }

    /// The embedded site's answer, with no task, permit, timer or channel: per message
    /// these cost more than storing it (profiled in the fan-out benchmark).
    fn api_now(
        &self,
        request: &ApiRequest,
        credential: Option<&Credential>,
    ) -> Option<Result<ApiResponse, SiteError>> {
        let start = Instant::now();
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.site.perform_now(request, credential)
        }));
        let result = match answered {
            Ok(answer) => answer?,
            Err(_) => {
                tracing::error!("a site request panicked; answered with an error");
                Err(cancelled())
            }
        };
        let took = start.elapsed();
        record(&self.metrics, request, took, &result);
        if let Err(e) = &result {
            log_failure(request, e, took);
        }
        Some(result)
    }

    fn api_later(&self, id: ApiRequestId, request: ApiRequest, credential: Option<Credential>) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let answer = ApiAnswer {
            id,
            results: self.results.clone(),
            in_flight: Arc::clone(&self.in_flight),
            answered: false,
        };
        let site = Arc::clone(&self.site);
        let metrics = Arc::clone(&self.metrics);
        let permits = Arc::clone(&self.permits);
        let timeout = self.deadline(&request);
        run_or_spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return; // closed at shutdown: the guard answers
            };
            let start = Instant::now();
            let result = tokio::time::timeout(
                timeout,
                bbrt_buddyboss::perform(&*site, &request, credential.as_ref()),
            )
            .await
            .unwrap_or_else(|_| {
                // A send cut short may still be stored: its outcome is unknown.
                let kind = match request {
                    ApiRequest::Send { .. } => SiteErrorKind::Unconfirmed,
                    _ => SiteErrorKind::Unavailable,
                };
                Err(SiteError::new(
                    kind,
                    "timeout",
                    "the site did not answer in time",
                ))
            });
            let took = start.elapsed();
            record(&metrics, &request, took, &result);
            if let Err(e) = &result {
                log_failure(&request, e, took);
            }
            answer.send(result);
        });
    }

    /// The outer deadline of `request`: never shorter than the steps the site client
    /// takes over it (its timeouts, read retries and reconciliation), which a shorter cap
    /// would cut short, turning a stored message into a retryable error whose retry posts
    /// again; `--api-timeout` when the site states no bound, or is longer.
    pub(crate) fn deadline(&self, request: &ApiRequest) -> Duration {
        self.site
            .deadline(request)
            .map_or(self.timeout, |steps| steps.max(self.timeout))
    }

    /// Starts a coordination request.
    pub(crate) fn coord(&self, id: CoordRequestId, request: CoordRequest) {
        self.metrics.coord_requests.fetch_add(1, Ordering::Relaxed);
        let mut answer = CoordAnswer {
            id,
            results: self.results.clone(),
            answered: false,
        };
        let coordinator = Arc::clone(&self.coordinator);
        run_or_spawn(async move {
            let result = coordinator.request(request).await;
            answer.answered = true;
            let _ = answer.results.send(Input::CoordResult {
                id: answer.id,
                result,
            });
        });
    }
}
