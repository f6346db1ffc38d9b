//! Positions and replay windows in Redis: the rules of
//! [`SharedWindows`](bbrt_protocol::cluster::SharedWindows), kept atomic by Lua.
//!
//! Per thread, a hash `<prefix>:win:<thread>` (`epoch`, `last` offset, `bytes` held, `at`:
//! when the last message was counted, `del:<user>`: a member's deletion point) and a sorted
//! set `<prefix>:winz:<thread>` of `<message id>\n<frame>` scored by offset. The frames are
//! kept without their position (stamped when read). Both expire together, a window-TTL
//! after the thread's last message: then the thread starts again in a new epoch.
//!
//! This puts message text in Redis (`docs/scaling.md`, "What Redis holds").

use std::sync::LazyLock;

use bbrt_protocol::hub::{
    BrokerMessage, CoordResponse, ENTRY_OVERHEAD, SequencedParts, WindowEntry, WindowRead,
};
use bbrt_protocol::ids::{MessageId, ThreadId, UserId};
use bbrt_protocol::wire::{Epoch, Position};
use bytes::Bytes;

use super::{LuaScript, RedisCoordinator, millis};

static SEQUENCE: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(SEQUENCE_SCRIPT));
static READ: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(READ_SCRIPT));
static DELETED: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(DELETED_SCRIPT));

/// Counts a message: `KEYS` the hash and the set, `ARGV` the member, the epoch to start
/// in, the window's count and byte bounds, the TTL (ms), the per-entry overhead, the
/// events channel, then the message's publications as ([`SequencedParts`]) triples, each
/// published with the position spliced in, in the same atomic step: every subscriber
/// hears a thread's messages in position order. Answers `{offset, epoch, ms since the
/// previous count (-1: none), publications sent}`.
const SEQUENCE_SCRIPT: &str = r#"
local h, z = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', h, 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', z)
  redis.call('HSET', h, 'epoch', epoch, 'last', 0, 'bytes', 0)
end
local previous = redis.call('HGET', h, 'at')
local n = redis.call('HINCRBY', h, 'last', 1)
redis.call('HSET', h, 'at', now)
redis.call('ZADD', z, n, ARGV[1])
local overhead = tonumber(ARGV[6])
local bytes = redis.call('HINCRBY', h, 'bytes', #ARGV[1] + overhead)
local count = redis.call('ZCARD', z)
while count > 0 and (count > tonumber(ARGV[3]) or bytes > tonumber(ARGV[4])) do
  local oldest = redis.call('ZRANGE', z, 0, 0)
  redis.call('ZREMRANGEBYRANK', z, 0, 0)
  bytes = redis.call('HINCRBY', h, 'bytes', -(#oldest[1] + overhead))
  count = count - 1
end
redis.call('PEXPIRE', h, ARGV[5])
redis.call('PEXPIRE', z, ARGV[5])
local since = -1
if previous and n > 1 then since = math.max(0, now - tonumber(previous)) end
local published = 0
if #ARGV > 7 and not string.find(epoch, '[^%w%._:%-]') then
  local stamp = ',\\"position\\":{\\"offset\\":' .. n .. ',\\"epoch\\":\\"' .. epoch .. '\\"}'
  local position = '{"offset":' .. n .. ',"epoch":"' .. epoch .. '"}'
  if since >= 0 then position = position .. ',"since_previous_ms":' .. since end
  for i = 8, #ARGV - 2, 3 do
    redis.call('PUBLISH', ARGV[7], ARGV[i] .. stamp .. ARGV[i + 1] .. position .. ARGV[i + 2])
    published = published + 1
  end
end
return {n, epoch, since, published}
"#;

/// Reads a window for a member, starting it (offset 0) if the thread has none: `ARGV` the
/// epoch to start in, the member, the TTL (ms). Answers `{epoch, last, deletion point,
/// {member, score, ...}}`.
const READ_SCRIPT: &str = r"
local h, z = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', h, 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', z)
  redis.call('HSET', h, 'epoch', epoch, 'last', 0, 'bytes', 0)
  redis.call('PEXPIRE', h, ARGV[3])
end
local last = redis.call('HGET', h, 'last')
local del = redis.call('HGET', h, 'del:' .. ARGV[2]) or '0'
return {epoch, last, del, redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')}
";

/// A member deleted the thread for themselves: their deletion point is the last offset.
const DELETED_SCRIPT: &str = r"
local last = redis.call('HGET', KEYS[1], 'last')
if last then redis.call('HSET', KEYS[1], 'del:' .. ARGV[1], last) end
return 1
";

impl RedisCoordinator {
    fn window_keys(&self, thread: &ThreadId) -> (String, String) {
        let prefix = &self.inner.keys.prefix;
        (
            format!("{prefix}:win:{thread}"),
            format!("{prefix}:winz:{thread}"),
        )
    }

    pub(super) async fn sequence(
        &self,
        thread: &ThreadId,
        id: &MessageId,
        frame: &[u8],
        epoch: &Epoch,
        publish: &[BrokerMessage],
    ) -> CoordResponse {
        let (hash, set) = self.window_keys(thread);
        let mut member = Vec::with_capacity(id.as_str().len() + 1 + frame.len());
        member.extend_from_slice(id.as_str().as_bytes());
        member.push(b'\n');
        member.extend_from_slice(frame);
        let o = &self.inner.options;
        let mut pipe = redis::pipe();
        SEQUENCE
            .call(&mut pipe, 2)
            .arg(&hash)
            .arg(&set)
            .arg(member)
            .arg(epoch.as_str())
            .arg(o.window_messages)
            .arg(o.window_bytes)
            .arg(millis(o.window_ttl))
            .arg(ENTRY_OVERHEAD)
            .arg(&self.inner.keys.events);
        // All or nothing: if one publication cannot be cut, the Hub publishes them all.
        let parts: Option<Vec<SequencedParts>> =
            publish.iter().map(BrokerMessage::sequenced_parts).collect();
        let parts = parts.unwrap_or_default();
        for p in &parts {
            pipe.arg(&p.head[..]).arg(&p.middle[..]).arg(&p.tail[..]);
        }
        let Some(((offset, epoch, since, sent),)) = self
            .inner
            .query_scripts::<((u64, String, i64, usize),)>(&pipe, &[&SEQUENCE])
            .await
        else {
            return self.unavailable();
        };
        let published = !parts.is_empty() && sent == parts.len();
        if published {
            self.inner
                .status
                .published
                .fetch_add(sent as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let Some(epoch) = Epoch::new(&epoch) else {
            tracing::warn!(%thread, "unreadable window epoch in redis");
            return self.unavailable();
        };
        CoordResponse::Sequenced {
            position: Position { offset, epoch },
            since_previous_ms: u64::try_from(since).ok(),
            published,
        }
    }

    pub(super) async fn read_window(
        &self,
        thread: &ThreadId,
        user: Option<&UserId>,
        epoch: &Epoch,
    ) -> CoordResponse {
        let (hash, set) = self.window_keys(thread);
        let mut pipe = redis::pipe();
        READ.call(&mut pipe, 2)
            .arg(&hash)
            .arg(&set)
            .arg(epoch.as_str())
            // No user (a gap fill): no deletion point (`/` is in no id).
            .arg(user.map_or("/", UserId::as_str))
            .arg(millis(self.inner.options.window_ttl));
        type Read = (String, u64, u64, Vec<(Vec<u8>, u64)>);
        let Some(((epoch, last, deleted_upto, members),)) =
            self.inner.query_scripts::<(Read,)>(&pipe, &[&READ]).await
        else {
            return self.unavailable();
        };
        match window_read(&epoch, last, deleted_upto, members) {
            Some(read) => CoordResponse::Window(read),
            None => {
                tracing::warn!(%thread, "unreadable window in redis");
                self.unavailable()
            }
        }
    }

    pub(super) async fn deleted_for(&self, thread: &ThreadId, user: &UserId) -> CoordResponse {
        let (hash, _) = self.window_keys(thread);
        let mut pipe = redis::pipe();
        DELETED
            .call(&mut pipe, 1)
            .arg(&hash)
            .arg(user.as_str())
            .ignore();
        match self.inner.query_scripts::<()>(&pipe, &[&DELETED]).await {
            Some(()) => CoordResponse::Ok,
            None => self.unavailable(),
        }
    }
}

/// The read as the Hub takes it: each kept frame stamped with its position.
fn window_read(
    epoch: &str,
    last: u64,
    deleted_upto: u64,
    members: Vec<(Vec<u8>, u64)>,
) -> Option<WindowRead> {
    let epoch = Epoch::new(epoch)?;
    let mut entries = Vec::with_capacity(members.len());
    for (member, offset) in members {
        let split = member.iter().position(|&b| b == b'\n')?;
        let id = MessageId::new(std::str::from_utf8(&member[..split]).ok()?).ok()?;
        let position = Position {
            offset,
            epoch: epoch.clone(),
        };
        let frame: Bytes = position.stamp(&member[split + 1..]);
        entries.push(WindowEntry { offset, id, frame });
    }
    Some(WindowRead {
        epoch: Some(epoch),
        last,
        deleted_upto,
        entries,
    })
}
