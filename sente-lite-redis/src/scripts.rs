//! The Lua scripts that keep a channel's position and history in Redis.
//! Each runs atomically: a publication is numbered, kept and published in
//! one step, or not at all.
//!
//! Keys of a channel `C` under prefix `P`:
//! - `P:ch:C`, a hash: `epoch`, `offset` (the last publication's), `bytes`
//!   (the size of the history list). Expires after the channel's retention
//!   without a publication, a recovery or a subscribed server refreshing it.
//! - `P:hist:C`, a list of `offset:at_ms:packed`, oldest first; expires after
//!   the history's ttl without a publication.
//!
//! A publication is sent on the Redis channel `P:pub:C` as `epoch:offset:packed`.

use std::sync::LazyLock;

use redis::Script;

/// Shared by the channel scripts: the channel's epoch, or `new` when it has
/// none (it starts at offset 0 with an empty history).
const CHANNEL_EPOCH: &str = r"
local function channel_epoch(ch, hist, new)
  local epoch = redis.call('HGET', ch, 'epoch')
  if not epoch then
    epoch = new
    redis.call('DEL', hist)
    redis.call('HSET', ch, 'epoch', epoch, 'offset', 0, 'bytes', 0)
  end
  return epoch
end
";

fn with_channel_epoch(body: &str) -> Script {
    Script::new(&format!("{CHANNEL_EPOCH}{body}"))
}

/// KEYS: position hash, history list.
/// ARGV: new epoch (used when the channel has none), packed event, history
/// size, history ttl ms, history max bytes, retention ms, Redis channel.
/// Returns `{epoch, offset}`.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    with_channel_epoch(
        r"
local ch, hist = KEYS[1], KEYS[2]
local epoch = channel_epoch(ch, hist, ARGV[1])
local offset = redis.call('HINCRBY', ch, 'offset', 1)
local size = tonumber(ARGV[3])
if size > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local entry = offset .. ':' .. now .. ':' .. ARGV[2]
  local bytes
  local n = redis.call('RPUSH', hist, entry)
  if n == 1 then
    bytes = #entry
    redis.call('HSET', ch, 'bytes', bytes)
  else
    bytes = redis.call('HINCRBY', ch, 'bytes', #entry)
  end
  local max_bytes = tonumber(ARGV[5])
  while n > 1 and (n > size or bytes > max_bytes) do
    local old = redis.call('LPOP', hist)
    bytes = redis.call('HINCRBY', ch, 'bytes', -#old)
    n = n - 1
  end
  if bytes > max_bytes then
    redis.call('DEL', hist)
    redis.call('HSET', ch, 'bytes', 0)
  else
    redis.call('PEXPIRE', hist, ARGV[4])
  end
end
redis.call('PEXPIRE', ch, ARGV[6])
redis.call('PUBLISH', ARGV[7], epoch .. ':' .. offset .. ':' .. ARGV[2])
return {epoch, offset}
",
    )
});

/// KEYS: position hash, history list.
/// ARGV: new epoch (used when the channel has none), retention ms, history
/// ttl ms, `since` epoch (empty for none), `since` offset, `1` to read the
/// history, `all` for the whole history (then `since` is not looked at).
/// Returns `{epoch, offset, found, entry...}`: `found` is 1 when the entries
/// are every publication after `since` (or the whole history for `all`).
pub(crate) static RECOVER: LazyLock<Script> = LazyLock::new(|| {
    with_channel_epoch(
        r"
local ch, hist = KEYS[1], KEYS[2]
local epoch = channel_epoch(ch, hist, ARGV[1])
redis.call('PEXPIRE', ch, ARGV[2])
local offset = tonumber(redis.call('HGET', ch, 'offset'))
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local function fresh(list)
  local kept = {}
  for _, entry in ipairs(list) do
    local at = tonumber(string.match(entry, '^%d+:(%d+):'))
    if at and at >= oldest then table.insert(kept, entry) end
  end
  return kept
end
if ARGV[7] == 'all' then
  local out = {epoch, offset, 1}
  if ARGV[6] == '1' then
    for _, entry in ipairs(fresh(redis.call('LRANGE', hist, 0, -1))) do table.insert(out, entry) end
  end
  return out
end
if ARGV[4] ~= epoch then return {epoch, offset, 0} end
local since = tonumber(ARGV[5])
if since > offset then return {epoch, offset, 0} end
if since == offset then return {epoch, offset, 1} end
if ARGV[6] ~= '1' then return {epoch, offset, 0} end
local want = offset - since
local entries = fresh(redis.call('LRANGE', hist, -want, -1))
if #entries ~= want then return {epoch, offset, 0} end
local first = tonumber(string.match(entries[1], '^(%d+):'))
local last = tonumber(string.match(entries[#entries], '^(%d+):'))
if first ~= since + 1 or last ~= offset then return {epoch, offset, 0} end
local out = {epoch, offset, 1}
for _, entry in ipairs(entries) do table.insert(out, entry) end
return out
",
    )
});

/// Shared by the presence scripts: `known` registers a node that announces
/// something before its first heartbeat (so that it is reaped if it dies
/// then); `has_nodes` tells whether `user` has an entry of a node in the
/// sorted set `key` of `user\0node` members (node ids are 16 characters).
const HAS_NODES: &str = r"
local function known(nodes, node)
  local t = redis.call('TIME')
  redis.call('ZADD', nodes, 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), node)
end
local function has_nodes(key, user)
  for _, entry in ipairs(redis.call('ZRANGEBYLEX', key, '[' .. user .. '\0', '(' .. user .. '\1')) do
    if #entry == #user + 17 then return true end
  end
  return false
end
";

fn with_has_nodes(body: &str) -> Script {
    Script::new(&format!("{HAS_NODES}{body}"))
}

/// Makes Redis hold what this server holds of one channel member.
/// KEYS: members hash, member nodes set, this server's holds set, nodes set.
/// ARGV: channel, user, node id, `1` present / `0` gone, info (JSON text),
/// presence events channel.
/// Publishes `["j", channel, user, info]` when the member is new or its info
/// changed, `["l", channel, user]` when no server holds it any more.
pub(crate) static MEMBER_SYNC: LazyLock<Script> = LazyLock::new(|| {
    with_has_nodes(
        r"
local channel, user, node = ARGV[1], ARGV[2], ARGV[3]
local hold = cjson.encode({'p', channel, user})
known(KEYS[4], node)
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], 0, user .. '\0' .. node)
  redis.call('SADD', KEYS[3], hold)
  if redis.call('HGET', KEYS[1], user) ~= ARGV[5] then
    redis.call('HSET', KEYS[1], user, ARGV[5])
    redis.call('PUBLISH', ARGV[6], cjson.encode({'j', channel, user, ARGV[5]}))
  end
else
  redis.call('ZREM', KEYS[2], user .. '\0' .. node)
  redis.call('SREM', KEYS[3], hold)
  if not has_nodes(KEYS[2], user) and redis.call('HDEL', KEYS[1], user) == 1 then
    redis.call('PUBLISH', ARGV[6], cjson.encode({'l', channel, user}))
  end
end
return 1
",
    )
});

/// Makes Redis hold what this server holds of one online user.
/// KEYS: user nodes set, this server's holds set, nodes set.
/// ARGV: user, node id, `1` online / `0` gone, presence events channel.
/// Publishes `["on", user]` when no server held the user before,
/// `["off", user]` when none holds it any more.
pub(crate) static USER_SYNC: LazyLock<Script> = LazyLock::new(|| {
    with_has_nodes(
        r"
local user, node = ARGV[1], ARGV[2]
local hold = cjson.encode({'u', user})
known(KEYS[3], node)
if ARGV[3] == '1' then
  local was = has_nodes(KEYS[1], user)
  redis.call('SADD', KEYS[2], hold)
  if redis.call('ZADD', KEYS[1], 0, user .. '\0' .. node) == 1 and not was then
    redis.call('PUBLISH', ARGV[4], cjson.encode({'on', user}))
  end
else
  redis.call('SREM', KEYS[2], hold)
  if redis.call('ZREM', KEYS[1], user .. '\0' .. node) == 1 and not has_nodes(KEYS[1], user) then
    redis.call('PUBLISH', ARGV[4], cjson.encode({'off', user}))
  end
end
return 1
",
    )
});

/// Tells Redis this server is alive. KEYS: nodes set, this server's beat
/// key. ARGV: node id. Returns 1 when the server's beat was not known (first
/// beat, or removed as dead, or Redis lost its data): it then announces all
/// it holds again.
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return redis.call('SETNX', KEYS[2], 1)
",
    )
});

/// Removes the servers not heard from for a while, with all they announced.
/// KEYS: nodes set. ARGV: timeout ms, key prefix, presence events channel.
/// Returns how many servers were removed (at most 16 a call).
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| {
    with_has_nodes(
        r"
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local prefix, events = ARGV[2], ARGV[3]
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, 16)
for _, node in ipairs(dead) do
  local holds = prefix .. ':holds:' .. node
  for _, hold in ipairs(redis.call('SMEMBERS', holds)) do
    local h = cjson.decode(hold)
    if h[1] == 'p' then
      local channel, user = h[2], h[3]
      local set, hash = prefix .. ':presn:' .. channel, prefix .. ':pres:' .. channel
      redis.call('ZREM', set, user .. '\0' .. node)
      if not has_nodes(set, user) and redis.call('HDEL', hash, user) == 1 then
        redis.call('PUBLISH', events, cjson.encode({'l', channel, user}))
      end
    elseif h[1] == 'u' then
      local user, set = h[2], prefix .. ':users'
      if redis.call('ZREM', set, user .. '\0' .. node) == 1 and not has_nodes(set, user) then
        redis.call('PUBLISH', events, cjson.encode({'off', user}))
      end
    end
  end
  redis.call('DEL', holds, prefix .. ':beat:' .. node)
  redis.call('ZREM', KEYS[1], node)
end
return #dead
",
    )
});

/// Sends a message to the other servers that hold a user.
/// KEYS: user nodes set. ARGV: user, this node's id, message, key prefix,
/// `all` or `one` (the first only). Returns how many servers it was sent to.
pub(crate) static ROUTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local user, me = ARGV[1], ARGV[2]
local sent = 0
for _, entry in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. user .. '\0', '(' .. user .. '\1')) do
  if #entry == #user + 17 then
    local node = string.sub(entry, #user + 2)
    if node ~= me then
      redis.call('PUBLISH', ARGV[4] .. ':node:' .. node, ARGV[3])
      sent = sent + 1
      if ARGV[5] == 'one' then return sent end
    end
  end
end
return sent
",
    )
});
