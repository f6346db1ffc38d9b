//! [`RedisCoordinator`]: idempotency claims, first-answer-wins, single-use tickets and the
//! site-event ledger, as Redis keys and scripts (the rules of
//! [`ClaimTable`](bbrt_protocol::cluster::ClaimTable), kept atomic by Lua).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bbrt_protocol::hub::{CoordRequest, CoordResponse, SendFingerprint, SendOutcome, SendReceipt};
use bbrt_protocol::ids::{CallId, ClientMessageId, DeviceRef, UserId};

use super::{Guard, Inner, LuaScript, RedisStatus, millis};
use crate::broker::digest::same_send;
use crate::broker::{Coordinator, unix_now};

static CLAIM: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(CLAIM_SCRIPT));
static RELEASE: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(RELEASE_SCRIPT));
static SITE_EVENT: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(SITE_EVENT_SCRIPT));

/// Claims a `clientMessageId`: a free key, or an unconfirmed record of the same send
/// (`ARGV[3]` is the claimant's digest; digests under other keys count as the same), is
/// taken with the in-flight value `ARGV[1]` for `ARGV[2]` ms. Answers `{1}` (claimed),
/// `{2, record}` (claimed over an unconfirmed record) or `{0, value}` (held or done).
const CLAIM_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, false}
end
local d = string.match(v, '^unconfirmed:%-?%d+:(.*)$')
if d then
  local ka = string.match(d, '^([^.]*)%.')
  local kb = string.match(ARGV[3], '^([^.]*)%.')
  if d == ARGV[3] or ka ~= kb then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return {2, v}
  end
end
return {0, v}
";

/// Deletes an idempotency claim only if this node still holds it.
const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// Idempotency claims and first-answer-wins through Redis keys. When Redis cannot be
/// reached it answers [`CoordResponse::Unavailable`] and nothing else: what to do then is
/// the Hub's degraded policy (a call still ringing on this node is answered by its first
/// local device; a send with a `clientMessageId` goes through, deduplicated on this node).
pub struct RedisCoordinator {
    pub(super) inner: Arc<Inner>,
    pub(super) _guard: Arc<Guard>,
}

impl std::fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordinator")
            .field("prefix", &self.inner.options.prefix)
            .field("node", &self.inner.options.node)
            .finish_non_exhaustive()
    }
}

impl RedisCoordinator {
    /// The link's state and counters.
    pub fn status(&self) -> Arc<RedisStatus> {
        Arc::clone(&self.inner.status)
    }

    async fn claim_send(
        &self,
        user: &UserId,
        id: &ClientMessageId,
        fingerprint: SendFingerprint,
    ) -> CoordResponse {
        let key = self.inner.keys.idem(user, id);
        let mine = format!("inflight:{}", self.inner.options.node);
        let digest = self.inner.options.digester.digest(fingerprint);
        let ttl = millis(self.inner.options.inflight_ttl);
        let deadline = Instant::now() + self.inner.options.claim_wait;
        let mut delay = Duration::from_millis(10);
        loop {
            let mut pipe = redis::pipe();
            CLAIM
                .call(&mut pipe, 1)
                .arg(&key)
                .arg(&mine)
                .arg(ttl)
                .arg(&digest);
            let Some(((status, value),)) = self
                .inner
                .query_scripts::<((i64, Option<String>),)>(&pipe, &[&CLAIM])
                .await
            else {
                return self.unavailable();
            };
            match (status, value) {
                (1, _) => return CoordResponse::Claimed,
                (2, Some(record)) => {
                    let since_unix_secs = record
                        .strip_prefix("unconfirmed:")
                        .and_then(|r| r.split(':').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(unix_now);
                    return CoordResponse::Unconfirmed { since_unix_secs };
                }
                (_, Some(v)) if v.starts_with("unconfirmed:") => return CoordResponse::Conflict,
                (_, Some(v)) if v.starts_with("inflight:") => {}
                (_, Some(v)) => {
                    let record = serde_json::from_str::<serde_json::Value>(&v);
                    let stored_digest = record
                        .as_ref()
                        .ok()
                        .and_then(|r| r.get("digest"))
                        .and_then(serde_json::Value::as_str);
                    // A record from before digests were kept cannot be compared.
                    if stored_digest.is_some_and(|d| !same_send(d, &digest)) {
                        return CoordResponse::Conflict;
                    }
                    return match serde_json::from_str::<SendReceipt>(&v) {
                        Ok(receipt) => CoordResponse::Done(receipt),
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable idempotency record");
                            self.unavailable()
                        }
                    };
                }
                // Released or expired between the script's read and ours: claim again
                // (after a pause, so that even a misbehaving server cannot make this spin).
                (_, None) => {}
            }
            // Another node is posting this message: wait for its outcome.
            if Instant::now() + delay > deadline {
                tracing::info!(%user, "idempotency claim still in flight elsewhere; giving up waiting");
                return self.unavailable();
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    async fn finish_send(
        &self,
        user: &UserId,
        id: &ClientMessageId,
        fingerprint: SendFingerprint,
        outcome: SendOutcome,
    ) -> CoordResponse {
        let key = self.inner.keys.idem(user, id);
        let digest = self.inner.options.digester.digest(fingerprint);
        let receipt_ttl = millis(self.inner.options.receipt_ttl);
        let mut cmd;
        match outcome {
            SendOutcome::Stored(receipt) => {
                let mut record = serde_json::to_value(&receipt).unwrap_or_default();
                record["digest"] = digest.into();
                cmd = redis::cmd("SET");
                cmd.arg(&key)
                    .arg(record.to_string())
                    .arg("PX")
                    .arg(receipt_ttl);
            }
            SendOutcome::Unconfirmed { since_unix_secs } => {
                let now = unix_now();
                let since = since_unix_secs.map_or(now, |s| s.min(now));
                cmd = redis::cmd("SET");
                cmd.arg(&key)
                    .arg(format!("unconfirmed:{since}:{digest}"))
                    .arg("PX")
                    .arg(receipt_ttl);
            }
            _ => {
                cmd = redis::cmd("EVALSHA");
                cmd.arg(&RELEASE.sha1)
                    .arg(1)
                    .arg(&key)
                    .arg(format!("inflight:{}", self.inner.options.node));
            }
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd).ignore();
        match self.inner.query_scripts::<()>(&pipe, &[&RELEASE]).await {
            Some(()) => CoordResponse::Ok,
            None => self.unavailable(),
        }
    }

    async fn claim_answer(&self, call: CallId, device: DeviceRef) -> CoordResponse {
        let key = self.inner.keys.answer(&call);
        let json = serde_json::to_string(&device).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(&json)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.inner.options.answer_ttl));
        pipe.cmd("GET").arg(&key);
        match self
            .inner
            .query::<(Option<String>, Option<String>)>(&pipe)
            .await
        {
            Some((Some(_), _)) => CoordResponse::Won,
            Some((None, Some(winner))) if winner == json => CoordResponse::Won,
            Some((None, _)) => CoordResponse::Lost,
            None => self.unavailable(),
        }
    }

    pub(super) fn unavailable(&self) -> CoordResponse {
        self.inner.status.coord_unavailable.fetch_add(1, Relaxed);
        CoordResponse::Unavailable
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    async fn request(&self, request: CoordRequest) -> CoordResponse {
        match request {
            CoordRequest::ClaimSend {
                user,
                client_message_id,
                fingerprint,
            } => {
                self.claim_send(&user, &client_message_id, fingerprint)
                    .await
            }
            CoordRequest::FinishSend {
                user,
                client_message_id,
                fingerprint,
                outcome,
            } => {
                self.finish_send(&user, &client_message_id, fingerprint, outcome)
                    .await
            }
            CoordRequest::ClaimAnswer { call, device } => self.claim_answer(call, device).await,
            CoordRequest::Sequence {
                thread,
                id,
                frame,
                epoch,
                publish,
            } => self.sequence(&thread, &id, &frame, &epoch, &publish).await,
            CoordRequest::ReadWindow {
                thread,
                user,
                epoch,
            } => self.read_window(&thread, user.as_ref(), &epoch).await,
            CoordRequest::DeletedFor { thread, user } => self.deleted_for(&thread, &user).await,
            other => {
                tracing::warn!(request = ?other, "unknown coordination request");
                CoordResponse::Unavailable
            }
        }
    }
}

/// Single use of connection tickets, cluster-wide: `SET <prefix>:ticket:<jti> 1 NX PX`,
/// so whichever node sets it first takes the ticket. Unreachable Redis refuses the ticket
/// (never a local fallback: another node could let the same ticket in).
#[async_trait]
impl crate::ticket::TicketLedger for RedisCoordinator {
    async fn take(&self, jti: &str, ttl: Duration) -> Result<bool, ()> {
        let key = format!("{}:ticket:{jti}", self.inner.keys.prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        match self.inner.query::<(Option<String>,)>(&pipe).await {
            Some((Some(_),)) => Ok(true),
            Some((None,)) => Ok(false),
            None => Err(()),
        }
    }
}

/// Records a site event's id with its body's digest unless it is known: answers the digest
/// already recorded, or nil after recording `ARGV[1]` for `ARGV[2]` ms. A script rather than
/// `SET NX GET`, which Redis before 7.0 refuses.
const SITE_EVENT_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// The site-event replay ledger, cluster-wide: `<prefix>:site-event:<id>` holds the body's
/// SHA-256 for the ledger's time, so a duplicate delivered to another node is known there.
/// Unreachable Redis refuses the event (503; never a local fallback, since another node
/// may have acted on it).
#[async_trait]
impl crate::site_events::SiteEventLedger for RedisCoordinator {
    async fn record(
        &self,
        id: &str,
        digest: &str,
        ttl: Duration,
    ) -> Result<crate::site_events::Recorded, ()> {
        use crate::site_events::Recorded;
        let key = format!("{}:site-event:{id}", self.inner.keys.prefix);
        let mut pipe = redis::pipe();
        SITE_EVENT
            .call(&mut pipe, 1)
            .arg(&key)
            .arg(digest)
            .arg(millis(ttl));
        match self
            .inner
            .query_scripts::<(Option<String>,)>(&pipe, &[&SITE_EVENT])
            .await
        {
            Some((None,)) => Ok(Recorded::New),
            Some((Some(known),)) if known == digest => Ok(Recorded::Duplicate),
            Some((Some(_),)) => Ok(Recorded::Reused),
            None => Err(()),
        }
    }
}
