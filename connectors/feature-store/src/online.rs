//! The online store: Redis, one hash per entity key. Writes are Lua scripts, so
//! the compare-and-set on the event timestamp happens atomically on the server.
//!
//! Two layouts ([`Layout`]): Feast's (the default: see [`crate::feast_layout`];
//! the hash is shared with other feature views of the entity, so a write
//! touches only its own view's fields), and sluice's own (`<prefix>:<key>`,
//! text values, the hash belongs to the sink).
//!
//! Redis has no transaction that spans an epoch, so each write first saves the
//! entity's before-image in the epoch's undo log (a hash, `<undo>:<epoch>`,
//! listed in the set `<undo>`), once per entity and epoch. `rollback` restores
//! the before-images of epochs the checkpoint never recorded, newest first, so
//! the oldest image wins; `forget` drops the logs of checkpointed epochs. Without
//! this, a crash between a commit and its checkpoint would leave that epoch's
//! values behind, and a document deleted before the restart would stay online.

use redis::aio::MultiplexedConnection;
use sluice_connector_sdk::{ConnectorError, Epoch, Result};

/// Saves KEYS[1]'s before-image in the undo hash KEYS[2] (once per epoch) and
/// lists epoch ARGV[1] in the index KEYS[3]. No-op when KEYS[2] is absent.
const SAVE: &str = r#"
local function save(epoch)
  if KEYS[2] == nil or redis.call('HEXISTS', KEYS[2], KEYS[1]) == 1 then
    return
  end
  local before = redis.call('HGETALL', KEYS[1])
  local image = ''
  if #before > 0 then
    image = cjson.encode({pttl = redis.call('PTTL', KEYS[1]), fields = before})
  end
  redis.call('HSET', KEYS[2], KEYS[1], image)
  redis.call('SADD', KEYS[3], epoch)
end
"#;

/// KEYS: the entity hash, then optionally the undo hash and the undo index.
/// ARGV[1]: epoch, ARGV[2]: event time (µs), ARGV[3]: ttl in ms (0: none), then
/// field, value pairs. Writes unless the stored event is newer; returns 1 if it
/// wrote. Equal times overwrite, so replaying an epoch changes nothing.
const UPSERT: &str = r#"
local current = redis.call('HGET', KEYS[1], '__event_timestamp')
if current and tonumber(current) > tonumber(ARGV[2]) then
  return 0
end
save(ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '__event_timestamp', ARGV[2], unpack(ARGV, 4))
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"#;

/// KEYS as for UPSERT, ARGV[1]: epoch.
const DELETE: &str = r#"
save(ARGV[1])
return redis.call('DEL', KEYS[1])
"#;

/// KEYS[1]: an epoch's undo hash, KEYS[2]: the index, ARGV[1]: the epoch. Puts
/// back every before-image, then drops the log. Returns the entities restored.
const RESTORE: &str = r#"
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local key, image = entries[i], entries[i + 1]
  redis.call('DEL', key)
  if image ~= '' then
    local saved = cjson.decode(image)
    redis.call('HSET', key, unpack(saved.fields))
    if saved.pttl > 0 then
      redis.call('PEXPIRE', key, saved.pttl)
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return #entries / 2
"#;

/// Feast's layout. The view's event time is a `google.protobuf.Timestamp`
/// (`_ts:<view>`), decoded here to microseconds so that the newer event wins
/// whoever wrote it (sluice or Feast's own materialization). The before-image
/// holds only this view's fields: [PTTL, names, {name, value...}].
const FEAST_SAVE: &str = r#"
local function save(epoch, names)
  if KEYS[2] == nil or redis.call('HEXISTS', KEYS[2], KEYS[1]) == 1 then
    return
  end
  local values = redis.call('HMGET', KEYS[1], unpack(names))
  local kept = {}
  for i = 1, #names do
    if values[i] then
      kept[#kept + 1] = names[i]
      kept[#kept + 1] = values[i]
    end
  end
  redis.call('HSET', KEYS[2], KEYS[1], cmsgpack.pack({redis.call('PTTL', KEYS[1]), names, kept}))
  redis.call('SADD', KEYS[3], epoch)
end
local function varint(s, pos)
  local value, scale, start = 0, 1, pos
  while true do
    local b = string.byte(s, pos)
    if b == nil then return nil, pos end
    value = value + (b % 128) * scale
    scale = scale * 128
    pos = pos + 1
    if b < 128 then break end
  end
  if pos - start == 10 then
    -- negative: minus one more than the complement of the low 63 bits,
    -- exact in a double where the raw 64-bit value is not
    local c, sc = 0, 1
    for i = start, start + 8 do
      c = c + (127 - string.byte(s, i) % 128) * sc
      sc = sc * 128
    end
    value = -(c + 1)
  end
  return value, pos
end
local function micros(ts)
  local seconds, nanos, pos = 0, 0, 1
  while pos <= #ts do
    local tag = string.byte(ts, pos)
    local v
    v, pos = varint(ts, pos + 1)
    if v == nil then break end
    if tag == 8 then seconds = v elseif tag == 16 then nanos = v end
  end
  return seconds * 1000000 + math.floor(nanos / 1000)
end
"#;

/// ARGV[1]: epoch, [2]: event time (µs), [3]: ttl in ms (0: none), [4]: the
/// view's `_ts` field, [5]: the Timestamp, then feature field, value pairs.
const FEAST_UPSERT: &str = r#"
local current = redis.call('HGET', KEYS[1], ARGV[4])
if current and micros(current) > tonumber(ARGV[2]) then
  return 0
end
local names = {ARGV[4]}
for i = 6, #ARGV, 2 do names[#names + 1] = ARGV[i] end
save(ARGV[1], names)
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5], unpack(ARGV, 6))
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"#;

/// ARGV[1]: epoch, then the view's fields (`_ts` first). Removes the view from
/// the entity's hash; Redis drops the hash once no view is left in it.
const FEAST_DELETE: &str = r#"
local names = {unpack(ARGV, 2)}
save(ARGV[1], names)
return redis.call('HDEL', KEYS[1], unpack(names))
"#;

/// As RESTORE, for Feast's layout: only the view's fields are put back.
const FEAST_RESTORE: &str = r#"
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local key, image = entries[i], cmsgpack.unpack(entries[i + 1])
  local pttl, names, kept = image[1], image[2], image[3]
  redis.call('HDEL', key, unpack(names))
  if #kept > 0 then
    redis.call('HSET', key, unpack(kept))
  end
  if pttl > 0 then
    redis.call('PEXPIRE', key, pttl)
  elseif pttl == -1 then
    redis.call('PERSIST', key)
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return #entries / 2
"#;

/// Scripts sent in one round trip.
const PIPELINE: usize = 512;

/// An entity's event time (µs) and its fields: name and value, as the layout
/// encodes them.
pub type OnlineRow = (i64, Vec<(Vec<u8>, Vec<u8>)>);

/// How entities are laid out in Redis.
#[derive(Debug, Clone)]
pub enum Layout {
    /// `<prefix>:<key>`, one hash per entity owned by the sink, text values.
    Sluice,
    /// Feast's: the view's `_ts` field and its feature fields, in a hash other
    /// views share.
    Feast { ts_field: Vec<u8>, fields: Vec<Vec<u8>> },
}

pub struct OnlineStore {
    conn: MultiplexedConnection,
    upsert: redis::Script,
    delete: redis::Script,
    restore: redis::Script,
    layout: Layout,
    pub ttl_ms: u64,
    /// Base name of the undo logs; none when other writers share the keys.
    undo: Option<String>,
    /// The URL with any password hidden, for errors.
    server: String,
}

fn redis_err(what: &str, url: &str, e: redis::RedisError) -> ConnectorError {
    // NOSCRIPT: Redis restarted and lost the scripts; a reconnect loads them.
    let noscript = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript);
    // What the server says will pass (LOADING: a restarted Redis still reading
    // its data back; TRYAGAIN, MASTERDOWN, CLUSTERDOWN), as the client classes it.
    let busy = matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry);
    let retry = noscript
        || busy
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout();
    let url = sluice_connector_sdk::config::redact_url(url);
    ConnectorError::external(format!("Redis at {url}: {what}"))
        .with_source(e)
        .retryable(retry)
}

impl OnlineStore {
    /// `undo`: the base key of this writer's undo logs, or none to write without
    /// them (a backfill or a consumer group, whose replay alone is exact).
    pub async fn connect(
        url: &str,
        layout: Layout,
        ttl_ms: u64,
        undo: Option<String>,
    ) -> Result<OnlineStore> {
        let client = redis::Client::open(url).map_err(|e| {
            // redis may quote the URL it refused: never with its password.
            let redacted = sluice_connector_sdk::config::redact_url(url);
            let why = e.to_string().replace(url, &redacted);
            ConnectorError::user(format!("bad Redis URL {redacted}: {why}"))
        })?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_err("connect", url, e))?;
        let (save, upsert, delete, restore) = match layout {
            Layout::Sluice => (SAVE, UPSERT, DELETE, RESTORE),
            Layout::Feast { .. } => (FEAST_SAVE, FEAST_UPSERT, FEAST_DELETE, FEAST_RESTORE),
        };
        let (upsert, delete, restore) = (
            redis::Script::new(&format!("{save}{upsert}")),
            redis::Script::new(&format!("{save}{delete}")),
            redis::Script::new(restore),
        );
        // A pipeline does not load a missing script the way a lone call does.
        for script in [&upsert, &delete] {
            script
                .load_async(&mut conn)
                .await
                .map_err(|e| redis_err("loading the write scripts", url, e))?;
        }
        Ok(OnlineStore {
            conn,
            upsert,
            delete,
            restore,
            layout,
            ttl_ms,
            undo,
            server: url.to_string(),
        })
    }

    /// The entity's key, then the epoch's undo hash and the undo index.
    fn invocation<'a>(
        &self,
        script: &'a redis::Script,
        entity: &[u8],
        epoch: Epoch,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.key(entity);
        if let Some(undo) = &self.undo {
            inv.key(format!("{undo}:{epoch}")).key(undo);
        }
        inv.arg(epoch);
        inv
    }

    /// Apply an epoch's writes in order: `None` deletes the entity (in Feast's
    /// layout, this view of it), `Some` writes its features unless Redis holds a
    /// newer event. The scripts go out pipelined, [`PIPELINE`] to a round trip;
    /// Redis runs them in order.
    pub async fn apply(&mut self, epoch: Epoch, work: &[(Vec<u8>, Option<OnlineRow>)]) -> Result<()> {
        for part in work.chunks(PIPELINE) {
            let mut pipe = redis::pipe();
            for (entity, row) in part {
                match row {
                    None => {
                        let mut inv = self.invocation(&self.delete, entity, epoch);
                        if let Layout::Feast { ts_field, fields } = &self.layout {
                            inv.arg(ts_field);
                            for f in fields {
                                inv.arg(f);
                            }
                        }
                        pipe.invoke_script(&inv)
                    }
                    Some((event_us, fields)) => {
                        let mut inv = self.invocation(&self.upsert, entity, epoch);
                        inv.arg(event_us).arg(self.ttl_ms);
                        if let Layout::Feast { ts_field, .. } = &self.layout {
                            inv.arg(ts_field)
                                .arg(crate::feast_layout::timestamp_proto(*event_us));
                        }
                        for (k, v) in fields {
                            inv.arg(k).arg(v);
                        }
                        pipe.invoke_script(&inv)
                    }
                };
            }
            pipe.query_async::<()>(&mut self.conn)
                .await
                .map_err(|e| redis_err("writing features", &self.server, e))?;
        }
        Ok(())
    }

    /// The epochs that have an undo log, oldest first.
    async fn logged_epochs(&mut self, undo: &str) -> Result<Vec<Epoch>> {
        let mut epochs: Vec<Epoch> = redis::cmd("SMEMBERS")
            .arg(undo)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_err("reading the undo log", &self.server, e))?;
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Undo every epoch after `committed`, newest first; returns the entities
    /// restored. Each epoch is restored by one script, so a crash mid-way leaves
    /// whole epochs, and the next `rollback` finishes the job.
    pub async fn rollback(&mut self, committed: Epoch) -> Result<u64> {
        let Some(undo) = self.undo.clone() else {
            return Ok(0);
        };
        let restore = self.restore.clone();
        let mut restored = 0;
        for epoch in self.logged_epochs(&undo).await?.into_iter().rev() {
            if epoch <= committed {
                break;
            }
            let n: u64 = restore
                .key(format!("{undo}:{epoch}"))
                .key(&undo)
                .arg(epoch)
                .invoke_async(&mut self.conn)
                .await
                .map_err(|e| redis_err("restoring values from the undo log", &self.server, e))?;
            restored += n;
        }
        self.forget(committed).await?;
        Ok(restored)
    }

    /// Drop the undo logs of epochs up to `checkpointed`.
    pub async fn forget(&mut self, checkpointed: Epoch) -> Result<()> {
        let Some(undo) = self.undo.clone() else {
            return Ok(());
        };
        for epoch in self.logged_epochs(&undo).await? {
            if epoch > checkpointed {
                break;
            }
            redis::pipe()
                .atomic()
                .del(format!("{undo}:{epoch}"))
                .srem(&undo, epoch)
                .query_async::<()>(&mut self.conn)
                .await
                .map_err(|e| redis_err("dropping an undo log", &self.server, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redis_err;

    fn server_error(reply: &[u8]) -> redis::RedisError {
        redis::parse_redis_value(reply)
            .and_then(|v| v.extract_error())
            .expect_err("an error reply")
    }

    /// A Redis restarted with persistence answers LOADING until its data is
    /// read back: seen as a failed run (`outages::redis_stopped_mid_run...`)
    /// when the sink reconnected too early. It is waited out, like a refused
    /// connection; a script or command the server refuses is not.
    #[test]
    fn a_redis_still_loading_is_retried_and_a_refused_command_is_not() {
        let url = "redis://127.0.0.1:1/";
        let loading = server_error(b"-LOADING Redis is loading the dataset in memory\r\n");
        assert!(redis_err("loading the write scripts", url, loading).retryable);
        let refused = server_error(b"-ERR Error compiling script\r\n");
        assert!(!redis_err("loading the write scripts", url, refused).retryable);
    }
}
