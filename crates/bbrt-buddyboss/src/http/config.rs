//! Where the site is and how [`HttpBuddyBoss`](super::HttpBuddyBoss) talks to it.

use super::*;

/// Where the REST API lives.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiRoot {
    /// Pretty permalinks: `https://site/wp-json/` (ends with `/`); routes are appended.
    Path(String),
    /// Plain permalinks: `https://site/?rest_route=` (ends with `rest_route=`); the route
    /// goes into the query string.
    Query(String),
}

impl ApiRoot {
    /// The API root of a site with pretty permalinks: `https://site` → `https://site/wp-json/`.
    pub fn for_site(site: &str) -> Self {
        Self::Path(format!("{}/wp-json/", site.trim_end_matches('/')))
    }

    /// The full URL of `route` (`wp/v2/users/me`, no leading slash).
    pub(super) fn url(&self, route: &str) -> String {
        match self {
            Self::Path(root) => format!("{root}{route}"),
            Self::Query(root) => format!("{root}/{route}"),
        }
    }
}

impl fmt::Debug for ApiRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(root) | Self::Query(root) => f.write_str(root),
        }
    }
}

impl FromStr for ApiRoot {
    type Err = BuddyBossError;

    /// `https://site/wp-json/` (a trailing `/` is added if missing) or
    /// `https://site/?rest_route=` (recognised by its `rest_route=`).
    fn from_str(s: &str) -> Result<Self, BuddyBossError> {
        let invalid = |why: &str| BuddyBossError::Invalid {
            code: "invalid_config".into(),
            message: why.into(),
        };
        let url = reqwest::Url::parse(s)
            .map_err(|e| invalid(&format!("the API root is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the API root must be an http or https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("the API root must not carry credentials"));
        }
        if let Some(i) = s.find("rest_route=") {
            let root = &s[..i + "rest_route=".len()];
            if s.len() > root.len() {
                return Err(invalid("nothing may follow `rest_route=` in the API root"));
            }
            return Ok(Self::Query(root.to_owned()));
        }
        if url.query().is_some() {
            return Err(invalid(
                "the API root has a query string but no `rest_route=`",
            ));
        }
        let mut root = s.to_owned();
        if !root.ends_with('/') {
            root.push('/');
        }
        Ok(Self::Path(root))
    }
}

/// How [`HttpBuddyBoss`] talks to the site. [`Config::new`] gives the defaults below.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where the REST API lives.
    pub api_root: ApiRoot,
    /// Time to establish a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Time for a whole request, body included. Default 10 s.
    pub request_timeout: Duration,
    /// Most requests in flight at once; more wait for a slot. Default 64.
    pub max_concurrent_requests: usize,
    /// Idle pooled connections kept to the site. Default 32.
    pub pool_max_idle: usize,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Extra attempts for a read (`GET`) when the site is unavailable. Writes are never
    /// retried. Default 2.
    pub read_retries: u32,
    /// Wait before the first read retry, doubled for each next one. Default 200 ms.
    pub retry_backoff: Duration,
    /// How long a verified credential is trusted. Default 60 s.
    pub verify_ttl: Duration,
    /// How long a rejected (401) credential stays rejected. Default 10 s.
    pub verify_negative_ttl: Duration,
    /// Most credentials in the verify cache. Default 10 000.
    pub verify_cache_capacity: usize,
    /// How far back, from the start of a send whose outcome is unknown, a message counts
    /// as that send when reconciling. It also absorbs clock skew between bbrt and the site
    /// (the site stamps `date_sent`). Default 60 s.
    pub reconcile_window: Duration,
    /// Wait before reading the thread to reconcile an unknown send, so a request the site
    /// is still processing can land. Default 1 s.
    pub reconcile_delay: Duration,
    /// After a send ended unconfirmed, how long a retry that does not find it in the
    /// thread answers `send_unconfirmed` again instead of posting (counted from when the
    /// unconfirmed outcome was recorded): a site still working on the first request (a
    /// slow write, a paused PHP) gets this long to store it. Default 30 s.
    pub reconcile_settle: Duration,
    /// With the companion plugin: how many times one send is posted with its key, while
    /// the answer is unknown (a timeout, a 5xx) or the key is in progress (409
    /// `bbrt_send_in_progress`). Each retry carries the same key, so the site answers the
    /// stored message instead of storing another. Default 3.
    pub keyed_send_attempts: u32,
    /// The longest `Retry-After` honoured between keyed attempts (the plugin asks for
    /// 1 s). Default 2 s.
    pub max_retry_after: Duration,
    /// Largest response body accepted. Default 4 MiB.
    pub max_response_bytes: usize,
    /// The `User-Agent` header. Default `bbrt/<version>`.
    pub user_agent: String,
}

impl Config {
    /// The defaults for the API at `api_root`.
    pub fn new(api_root: ApiRoot) -> Self {
        Self {
            api_root,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 64,
            pool_max_idle: 32,
            pool_idle_timeout: Duration::from_secs(90),
            read_retries: 2,
            retry_backoff: Duration::from_millis(200),
            verify_ttl: Duration::from_secs(60),
            verify_negative_ttl: Duration::from_secs(10),
            verify_cache_capacity: 10_000,
            reconcile_window: Duration::from_secs(60),
            reconcile_delay: Duration::from_secs(1),
            reconcile_settle: Duration::from_secs(30),
            keyed_send_attempts: 3,
            max_retry_after: Duration::from_secs(2),
            max_response_bytes: 4 << 20,
            user_agent: concat!("bbrt/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_roots_build_urls_for_both_forms() {
        let path: ApiRoot = "https://site.example/wp-json".parse().expect("valid root");
        assert_eq!(
            path.url("wp/v2/users/me"),
            "https://site.example/wp-json/wp/v2/users/me"
        );
        let query: ApiRoot = "https://site.example/?rest_route="
            .parse()
            .expect("valid root");
        assert_eq!(
            query.url("buddyboss/v1/messages/3"),
            "https://site.example/?rest_route=/buddyboss/v1/messages/3"
        );
        assert_eq!(ApiRoot::for_site("https://site.example/"), path);
        assert!("ftp://x/".parse::<ApiRoot>().is_err());
        assert!("https://u:p@x/wp-json/".parse::<ApiRoot>().is_err());
        assert!("https://x/?rest_route=/wp".parse::<ApiRoot>().is_err());
        assert!("not a url".parse::<ApiRoot>().is_err());
    }
}
