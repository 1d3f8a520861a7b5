//! The online store: Redis, one hash per entity key. The write is a Lua script, so
//! the compare-and-set on the event timestamp happens atomically on the server.

use redis::aio::MultiplexedConnection;
use sluice_connector_sdk::{ConnectorError, Result};

/// KEYS[1]: the entity hash. ARGV[1]: event time (µs), ARGV[2]: ttl in ms (0: none),
/// then field, value pairs. Writes unless the stored event is newer; returns 1 if
/// it wrote. Equal times overwrite, so replaying an epoch changes nothing.
const UPSERT: &str = r#"
local current = redis.call('HGET', KEYS[1], '__event_timestamp')
if current and tonumber(current) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '__event_timestamp', ARGV[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"#;

pub struct OnlineStore {
    conn: MultiplexedConnection,
    script: redis::Script,
    pub prefix: String,
    pub ttl_ms: u64,
    /// The URL with any password hidden, for errors.
    server: String,
}

fn redis_err(what: &str, url: &str, e: redis::RedisError) -> ConnectorError {
    let retry = e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout();
    let url = sluice_connector_sdk::config::redact_url(url);
    ConnectorError::external(format!("Redis at {url}: {what}"))
        .with_source(e)
        .retryable(retry)
}

impl OnlineStore {
    pub async fn connect(url: &str, prefix: String, ttl_ms: u64) -> Result<OnlineStore> {
        let client = redis::Client::open(url).map_err(|e| {
            let url = sluice_connector_sdk::config::redact_url(url);
            ConnectorError::user(format!("bad Redis URL {url}")).with_source(e)
        })?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_err("connect", url, e))?;
        Ok(OnlineStore {
            conn,
            script: redis::Script::new(UPSERT),
            prefix,
            ttl_ms,
            server: url.to_string(),
        })
    }

    pub fn key(&self, entity: &str) -> String {
        format!("{}:{entity}", self.prefix)
    }

    /// Write `fields` for `entity` unless Redis holds a newer event. True if written.
    pub async fn upsert(&mut self, entity: &str, event_us: i64, fields: &[(String, String)]) -> Result<bool> {
        let mut inv = self.script.key(self.key(entity));
        inv.arg(event_us).arg(self.ttl_ms);
        for (k, v) in fields {
            inv.arg(k).arg(v);
        }
        let wrote: i64 = inv
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| redis_err("writing features", &self.server, e))?;
        Ok(wrote == 1)
    }

    pub async fn delete(&mut self, entity: &str) -> Result<()> {
        let key = self.key(entity);
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| redis_err("deleting features", &self.server, e))
    }
}
