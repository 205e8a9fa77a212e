//! Which stream a longlat instance is following: the stream's generation.
//!
//! A Redis restarted without persistence (or a flushed database, or a
//! deleted key) gives back an empty stream whose ids say nothing of the
//! events that were lost, so a cursor from before would look like one still
//! in history and a resumed client would silently miss those events. So a
//! marker key beside the stream, `<stream>:generation`, holds a token that
//! names the stream's current life; the rule is:
//!
//! - A generation begins, atomically in one script, whenever the marker or
//!   the stream is missing: a fresh token is set, and a missing stream is
//!   created empty with its last id set to the generation's *origin*, the
//!   later of Redis's clock and the greatest id the caller has seen. Redis
//!   then numbers every new entry above the origin, so ids keep increasing
//!   across the wipe and every cursor from an older generation lies below
//!   the origin. Concurrent callers all run the script; the first one wins
//!   and the others read its token.
//! - Every `XADD` runs in the same script after that check, so an instance
//!   that has not noticed the wipe yet cannot create a stream without a
//!   generation.
//! - Each instance's reader reads the marker with every `XREAD` (in one
//!   pipeline) and when it reconnects. A token other than the one it
//!   follows means the history it knew is gone: it restarts its hub
//!   ([`Hub::restart`](crate::broker::Hub::restart)) from the stream as it
//!   is now, so every subscriber is told its cursor is too old, and every
//!   cursor below the new history is answered `cursor-too-old` by the hub's
//!   usual horizon rule, on this instance and on one started after.
//!
//! A stream whose marker alone vanished (evicted, say) is adopted under a
//! new token: subscribers are told of a gap that did not happen, which is
//! safe. If Redis's clock goes back, ids still go on above the greatest one
//! the instance starting the generation had seen.

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisResult};

use crate::model::EventId;

/// Starts a generation when the marker (`KEYS[2]`) or the stream
/// (`KEYS[1]`) is missing, and leaves the current token in `token`.
/// `ARGV[1]` is the token to use for a new generation, `ARGV[2]` the
/// smallest id above everything the caller has seen.
const GENERATION: &str = r"
local token = redis.call('GET', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local origin = ARGV[2]
  if now_ms > tonumber(string.match(ARGV[2], '^%d+')) then
    origin = string.format('%d-0', now_ms)
  end
  redis.call('XGROUP', 'CREATE', KEYS[1], 'longlat-origin', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[1], 'longlat-origin')
  redis.call('XSETID', KEYS[1], origin)
  token = false
end
if not token then
  token = ARGV[1]
  redis.call('SET', KEYS[2], token)
end
";

/// A script kept in Redis's script cache: run by its SHA1, and sent whole
/// when Redis does not know it (it forgot it on restart).
#[derive(Debug, Clone)]
struct Script {
    body: String,
    sha: String,
}

impl Script {
    async fn load(conn: &mut impl ConnectionLike, body: String) -> RedisResult<Self> {
        let sha = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&body)
            .query_async(conn)
            .await?;
        Ok(Self { body, sha })
    }

    async fn run<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        args: &[&str],
    ) -> RedisResult<T> {
        let call = |command: &str, script: &str| {
            let mut cmd = redis::cmd(command);
            cmd.arg(script).arg(2).arg(&keys.stream).arg(&keys.marker);
            cmd.arg(args);
            cmd
        };
        match call("EVALSHA", &self.sha).query_async(conn).await {
            // NOSCRIPT: nothing ran.
            Err(err) if err.code() == Some("NOSCRIPT") => {
                call("EVAL", &self.body).query_async(conn).await
            }
            result => result,
        }
    }
}

/// The stream and its generation marker.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) stream: String,
    marker: String,
}

impl Keys {
    pub(super) fn new(stream: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            marker: format!("{stream}:generation"),
        }
    }

    /// The marker key, to read beside an `XREAD`.
    pub(super) fn marker(&self) -> &str {
        &self.marker
    }

    /// The hash of zones: name → the zone's JSON.
    pub(super) fn zones(&self) -> String {
        format!("{}:zones", self.stream)
    }

    /// The hash of a zone's trackers inside: tracker → enter id.
    pub(super) fn occupants(&self, zone: &str) -> String {
        format!("{}:occupants:{zone}", self.stream)
    }
}

/// The two scripts every instance runs; see the module documentation.
#[derive(Debug, Clone)]
pub(super) struct Scripts {
    generation: Script,
    publish: Script,
    change_zone: Script,
}

/// Appends each position (ARGV[4], [8], … its stored JSON; then its
/// tracker, empty for none or when this instance knows no zone; its fix
/// time in microseconds; the zones it is in and those whose border it is
/// near, `in,…|near,…`) and, right after it, the zone events it makes,
/// deciding them from the tracker's membership kept in Redis
/// (`<stream>:inside:<tracker>`: zone → enter id, and `~fix`, the latest
/// fix judged; `<stream>:occupants:<zone>`: tracker → enter id) by the rule
/// of `crate::geofence`: a fix older than the latest judged crosses
/// nothing; leaves first, then enters, each by zone name. A zone deleted
/// meanwhile (absent from `<stream>:zones`) is not entered.
/// Answers, for each position, its id followed by `<id> <enter|leave>
/// <zone>` for each zone event.
const PUBLISH: &str = r"
local out = {}
local zones = KEYS[1] .. ':zones'
local i = 4
while i <= #ARGV do
  local json, tracker, fix, near = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'p', json)
  local entry = {id}
  local inside = KEYS[1] .. ':inside:' .. tracker
  local judged = tracker ~= ''
  if judged then
    local last = redis.call('HGET', inside, '~fix')
    judged = not last or tonumber(fix) >= tonumber(last)
  end
  if judged then
    redis.call('HSET', inside, '~fix', fix)
    local bar = string.find(near, '|', 1, true)
    local now_in, keep, entering = {}, {}, {}
    for z in string.gmatch(string.sub(near, 1, bar - 1), '[^,]+') do
      now_in[z] = true
      keep[z] = true
      entering[#entering + 1] = z
    end
    for z in string.gmatch(string.sub(near, bar + 1), '[^,]+') do keep[z] = true end
    local was = redis.call('HKEYS', inside)
    table.sort(was)
    for _, z in ipairs(was) do
      if z ~= '~fix' and not keep[z] then
        redis.call('HDEL', inside, z)
        redis.call('HDEL', KEYS[1] .. ':occupants:' .. z, tracker)
        local t = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
          'p', json, 'z', 'leave', 'zone', z, 'of', id)
        entry[#entry + 1] = t .. ' leave ' .. z
      end
    end
    table.sort(entering)
    for _, z in ipairs(entering) do
      if redis.call('HEXISTS', inside, z) == 0 and redis.call('HEXISTS', zones, z) == 1 then
        local t = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
          'p', json, 'z', 'enter', 'zone', z, 'of', id)
        redis.call('HSET', inside, z, t)
        redis.call('HSET', KEYS[1] .. ':occupants:' .. z, tracker, t)
        entry[#entry + 1] = t .. ' enter ' .. z
      end
    end
  end
  out[#out + 1] = entry
  i = i + 4
end
return out";

/// Puts (ARGV[4] `put`, ARGV[6] the zone's JSON) or deletes (`delete`)
/// zone ARGV[5] in `<stream>:zones`, dropping a deleted zone's
/// membership, and appends the change to the stream (`c`, `zone`, `def`)
/// so every instance applies it in order with the positions. Answers
/// whether the zone was there, and the change's id (none when a delete
/// found nothing).
const CHANGE_ZONE: &str = r"
local zones = KEYS[1] .. ':zones'
local existed = redis.call('HEXISTS', zones, ARGV[5])
if ARGV[4] == 'put' then
  redis.call('HSET', zones, ARGV[5], ARGV[6])
else
  if existed == 0 then return {0, ''} end
  redis.call('HDEL', zones, ARGV[5])
  local occupants = KEYS[1] .. ':occupants:' .. ARGV[5]
  for _, t in ipairs(redis.call('HKEYS', occupants)) do
    redis.call('HDEL', KEYS[1] .. ':inside:' .. t, ARGV[5])
  end
  redis.call('DEL', occupants)
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
  'c', ARGV[4], 'zone', ARGV[5], 'def', ARGV[6])
return {existed, id}";

/// One position to publish: its stored JSON, its tracker (empty: no zone
/// work), its fix time (microseconds) and the zones it is in and near
/// (`in,…|near,…`).
pub(super) struct Publishing {
    pub(super) json: String,
    pub(super) tracker: String,
    pub(super) fix: String,
    pub(super) near: String,
}

impl Scripts {
    /// Loads the scripts into Redis's cache.
    pub(super) async fn load(conn: &mut impl ConnectionLike) -> RedisResult<Self> {
        let generation = Script::load(conn, format!("{GENERATION}return token")).await?;
        // ARGV[3]: the stream's approximate maximum length; then the
        // positions, appended in one script so a batch is stored whole
        // and its ids are consecutive, each followed by its zone events.
        let publish = Script::load(conn, format!("{GENERATION}{PUBLISH}")).await?;
        let change_zone = Script::load(conn, format!("{GENERATION}{CHANGE_ZONE}")).await?;
        Ok(Self {
            generation,
            publish,
            change_zone,
        })
    }

    /// The current generation's token, starting a generation if there is
    /// none; `seen` is the greatest id the caller has seen.
    pub(super) async fn generation(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        seen: EventId,
    ) -> RedisResult<String> {
        let above = seen.next_after(0).to_string();
        self.generation
            .run(conn, keys, &[&fresh_token(), &above])
            .await
    }

    /// Appends `positions` (stored JSON) in the current generation,
    /// starting one if needed, and returns the entries' ids in order.
    pub(super) async fn publish(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        seen: EventId,
        max_len: usize,
        positions: &[Publishing],
    ) -> RedisResult<Vec<Vec<String>>> {
        let above = seen.next_after(0).to_string();
        let max_len = max_len.to_string();
        let token = fresh_token();
        let mut args = vec![token.as_str(), above.as_str(), max_len.as_str()];
        for position in positions {
            args.extend([
                position.json.as_str(),
                &position.tracker,
                &position.fix,
                &position.near,
            ]);
        }
        self.publish.run(conn, keys, &args).await
    }

    /// Puts (with its JSON `def`) or deletes (`def` empty) zone `name`:
    /// whether it was there, and the id of the change in the stream.
    pub(super) async fn change_zone(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        seen: EventId,
        max_len: usize,
        name: &str,
        def: Option<&str>,
    ) -> RedisResult<(bool, String)> {
        let above = seen.next_after(0).to_string();
        let max_len = max_len.to_string();
        let token = fresh_token();
        let change = if def.is_some() { "put" } else { "delete" };
        let args = [
            token.as_str(),
            above.as_str(),
            max_len.as_str(),
            change,
            name,
            def.unwrap_or(""),
        ];
        self.change_zone.run(conn, keys, &args).await
    }
}

/// A token no other generation has: 64 random bits (the standard library's
/// per-process random hash keys), mixed with the time and the process id.
fn fresh_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}
