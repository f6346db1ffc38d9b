//! What operators see of the site: a probe at start-up and in the background, the lessons
//! of users' own requests, WARN logs at most once a minute per problem, a line in
//! `/readyz` and the `bbrt_site_up` gauge.
//!
//! The probe ([`BuddyBoss::probe`]) finds an unreachable site, a URL that is no REST API
//! and a REST API without BuddyBoss. Users' requests show the rest: every verification
//! refused with a code that points at the wrong `--auth-scheme`, and, under Basic, sends
//! refused with `bp_rest_messages_create_failed` by a site whose `users/me` works (the
//! Application Passwords fix is missing). Readiness stays up while the site is down unless
//! `--site-required-for-ready` (as for Redis: every node failing readiness at once would
//! only add an outage of bbrt to the site's).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bbrt_buddyboss::{AuthScheme, BuddyBoss, SiteProblem, auth_scheme_hint};
use bbrt_protocol::api::{ApiRequest, ApiResponse, SiteError, SiteErrorKind};

/// A WARN for the same problem is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Refusals in a row, with no success between, that make a pattern a problem.
const PATTERN: u32 = 3;

#[derive(Debug, Default)]
struct State {
    /// The last probe's finding; `None` before the first.
    probe: Option<Result<(), SiteProblem>>,
    /// What users' requests showed, until a request shows otherwise.
    observed: Option<SiteProblem>,
    /// Verifications refused in a row with a code pointing at the wrong scheme.
    auth_refusals: u32,
    /// Sends refused in a row as a site without the Application Passwords fix refuses
    /// them, under Basic.
    create_refusals: u32,
    /// Per key: when it was last logged, and how many were not logged since.
    warned: HashMap<String, (Instant, u64)>,
}

/// The site's health as this node sees it.
#[derive(Debug)]
pub(crate) struct SiteHealth {
    url: String,
    scheme: AuthScheme,
    state: Mutex<State>,
}

impl SiteHealth {
    pub(crate) fn new(url: String, scheme: AuthScheme) -> Self {
        Self {
            url,
            scheme,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The problem to show, if any: the probe's first (it is about the whole site).
    pub(crate) fn problem(&self) -> Option<SiteProblem> {
        let s = self.lock();
        match &s.probe {
            Some(Err(p)) => Some(p.clone()),
            _ => s.observed.clone(),
        }
    }

    /// Whether the site serves bbrt as far as this node knows (unknown before the first
    /// probe counts as up).
    pub(crate) fn up(&self) -> bool {
        self.problem().is_none()
    }

    /// One line for `/readyz`.
    pub(crate) fn summary(&self) -> String {
        let probed = self.lock().probe.is_some();
        match self.problem() {
            Some(p) => format!("site: {} ({}): {p}", p.code(), self.url),
            None if probed => format!("site: ok ({}, auth {})", self.url, self.scheme.name()),
            None => format!("site: not probed yet ({})", self.url),
        }
    }

    /// Prometheus text.
    pub(crate) fn render(&self, o: &mut String) {
        let problem = self.problem();
        let _ = writeln!(
            o,
            "# HELP bbrt_site_up Whether the site serves bbrt as configured (probe and requests).\n\
             # TYPE bbrt_site_up gauge\nbbrt_site_up {}",
            u8::from(problem.is_none())
        );
        if let Some(p) = problem {
            let _ = writeln!(
                o,
                "# HELP bbrt_site_problem The site's current problem.\n\
                 # TYPE bbrt_site_problem gauge\nbbrt_site_problem{{problem=\"{}\"}} 1",
                p.code()
            );
        }
    }

    /// Records a probe's finding; logs a problem (rate-limited) and a recovery. Returns
    /// whether the site came back (the last probe had found a problem).
    pub(crate) fn probed(&self, result: Result<(), SiteProblem>) -> bool {
        let mut s = self.lock();
        let was_down = matches!(s.probe, Some(Err(_)));
        match &result {
            Err(p) => {
                let message = format!("site {}: {p}", self.url);
                warn_limited(&mut s, p.code(), &message);
            }
            Ok(()) if was_down => {
                tracing::info!(site = %self.url, "the site is reachable again");
            }
            Ok(()) => {}
        }
        let back = was_down && result.is_ok();
        s.probe = Some(result);
        back
    }

    /// Learns from one site request's outcome.
    pub(crate) fn observe(&self, request: &ApiRequest, result: &Result<ApiResponse, SiteError>) {
        let mut s = self.lock();
        match (request, result) {
            (ApiRequest::Verify { .. }, Ok(_)) => {
                s.auth_refusals = 0;
                clear(&mut s, "wrong_auth_scheme");
            }
            (ApiRequest::Verify { .. }, Err(e)) if e.kind == SiteErrorKind::Unauthenticated => {
                if let Some(hint) = auth_scheme_hint(&self.scheme, &e.code) {
                    s.auth_refusals += 1;
                    if s.auth_refusals >= PATTERN {
                        let p = SiteProblem::WrongAuthScheme {
                            code: e.code.clone(),
                            hint,
                        };
                        let message = format!("site {}: {p}", self.url);
                        warn_limited(&mut s, p.code(), &message);
                        s.observed = Some(p);
                    }
                }
            }
            (ApiRequest::Send { .. }, Ok(_)) => {
                s.create_refusals = 0;
                clear(&mut s, "app_passwords_fix");
            }
            // A new thread is refused with 500 bp_rest_messages_create_failed, a reply
            // (by a participant: the Hub checked) with 403 bp_rest_authorization_required,
            // as the real site showed without the fix.
            (ApiRequest::Send { .. }, Err(e))
                if self.scheme == AuthScheme::Basic
                    && matches!(
                        e.code.as_str(),
                        "bp_rest_messages_create_failed" | "bp_rest_authorization_required"
                    ) =>
            {
                s.create_refusals += 1;
                if s.create_refusals >= PATTERN {
                    let p = SiteProblem::AppPasswordsFix;
                    let message = format!(
                        "site {}: {p} (or these users may not message each other)",
                        self.url
                    );
                    warn_limited(&mut s, p.code(), &message);
                    s.observed = Some(p);
                }
            }
            _ => {}
        }
        if let Err(e) = result
            && matches!(
                e.kind,
                SiteErrorKind::Unavailable | SiteErrorKind::Unconfirmed | SiteErrorKind::Protocol
            )
            && e.code != "cancelled"
        {
            let key = format!("request:{}", e.code);
            let message = format!(
                "site request {} failed ({}): {}",
                request.name(),
                e.code,
                e.message
            );
            warn_limited(&mut s, &key, &message);
        }
    }
}

/// Forgets an observed problem a request disproved.
fn clear(s: &mut State, code: &str) {
    if s.observed.as_ref().is_some_and(|p| p.code() == code) {
        s.observed = None;
    }
}

/// A WARN, unless the same key was logged less than [`WARN_EVERY`] ago (then counted and
/// mentioned with the next one).
fn warn_limited(s: &mut State, key: &str, message: &str) {
    let now = Instant::now();
    match s.warned.get_mut(key) {
        Some((at, suppressed)) if now.duration_since(*at) < WARN_EVERY => *suppressed += 1,
        Some((at, suppressed)) => {
            tracing::warn!(suppressed = *suppressed, "{message}");
            *at = now;
            *suppressed = 0;
        }
        None => {
            tracing::warn!("{message}");
            s.warned.insert(key.to_owned(), (now, 0));
        }
    }
}

/// Probes the site now and then every `every`, until `stop` changes. When the site comes
/// back, the Hub hears it (`Input::SiteReachable`), so credentials that wait for the site
/// are verified again soon, not at their next backoff.
pub(crate) async fn probe_loop(
    site: std::sync::Arc<dyn BuddyBoss>,
    health: std::sync::Arc<SiteHealth>,
    every: Duration,
    hub: tokio::sync::mpsc::UnboundedSender<bbrt_protocol::hub::Input>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if health.probed(site.probe().await) {
            // The hub task is gone only when the process is stopping.
            let _ = hub.send(bbrt_protocol::hub::Input::SiteReachable);
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_logged_once_a_minute_and_the_rest_counted() {
        let mut s = State::default();
        warn_limited(&mut s, "unreachable", "first");
        warn_limited(&mut s, "unreachable", "second");
        warn_limited(&mut s, "unreachable", "third");
        warn_limited(&mut s, "no_buddyboss", "another problem");
        assert_eq!(s.warned["unreachable"].1, 2, "two left out");
        assert_eq!(s.warned["no_buddyboss"].1, 0);
        // A minute later the next one is logged, with the count.
        if let Some((at, _)) = s.warned.get_mut("unreachable") {
            *at = at
                .checked_sub(WARN_EVERY)
                .expect("the machine has been up for a minute");
        }
        warn_limited(&mut s, "unreachable", "fourth");
        assert_eq!(s.warned["unreachable"].1, 0);
    }

    #[test]
    fn a_probe_says_when_the_site_came_back() {
        let health = SiteHealth::new("http://site".into(), AuthScheme::Bearer);
        assert!(!health.probed(Ok(())), "up from the start is no comeback");
        let down = SiteProblem::Unreachable {
            detail: "connection refused".into(),
        };
        assert!(!health.probed(Err(down.clone())));
        assert!(!health.probed(Err(down)));
        assert!(!health.up());
        assert!(health.probed(Ok(())), "back: the Hub is told");
        assert!(!health.probed(Ok(())));
    }

    #[test]
    fn three_refusals_pointing_at_the_scheme_make_a_problem_and_a_success_clears_it() {
        let health = SiteHealth::new("http://site".into(), AuthScheme::Bearer);
        let verify = ApiRequest::Verify {
            credential: None,
            claimed_user: None,
            current_user: None,
        };
        let refused = Err(SiteError::new(
            SiteErrorKind::Unauthenticated,
            "rest_not_logged_in",
            "You are not currently logged in.",
        ));
        for _ in 0..2 {
            health.observe(&verify, &refused);
        }
        assert!(health.up(), "two are not a pattern");
        health.observe(&verify, &refused);
        assert_eq!(
            health.problem().map(|p| p.code()),
            Some("wrong_auth_scheme")
        );
        let ok = Ok(ApiResponse::MarkedRead);
        health.observe(&verify, &ok);
        assert!(health.up());
    }
}
