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
}

/// The two scripts every instance runs; see the module documentation.
#[derive(Debug, Clone)]
pub(super) struct Scripts {
    generation: Script,
    publish: Script,
}

impl Scripts {
    /// Loads the scripts into Redis's cache.
    pub(super) async fn load(conn: &mut impl ConnectionLike) -> RedisResult<Self> {
        let generation = Script::load(conn, format!("{GENERATION}return token")).await?;
        // ARGV[3]: the stream's approximate maximum length; ARGV[4] on:
        // the stored positions, appended in one script so a batch is
        // stored whole and its ids are consecutive.
        let xadd = "local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'p', ARGV[i])
end
return ids";
        let publish = Script::load(conn, format!("{GENERATION}{xadd}")).await?;
        Ok(Self {
            generation,
            publish,
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
        positions: &[String],
    ) -> RedisResult<Vec<String>> {
        let above = seen.next_after(0).to_string();
        let max_len = max_len.to_string();
        let token = fresh_token();
        let mut args = vec![token.as_str(), above.as_str(), max_len.as_str()];
        args.extend(positions.iter().map(String::as_str));
        self.publish.run(conn, keys, &args).await
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
