//! [`Store`] on Upstash Redis, spoken over Upstash's REST API. The Lambdas use it.
//!
//! Each command is one POST to the database URL whose body is the command as a JSON array
//! (`["HGET","key","field"]`), sent with `Authorization: Bearer <token>`. The reply is
//! `{"result": ...}` or `{"error": "..."}`. Steps that must not interleave with other callers
//! run as one `EVAL` of a Lua script, because Redis runs no other command while a script runs.
//!
//! # Key layout
//!
//! Kept from the earlier Python implementation, so a team moving from it keeps its data:
//!
//! | key | type | contents |
//! |---|---|---|
//! | `{prefix}_hook_secret` | string | the one secret that implementation stored. Read as the oldest secret of the prefix, deleted only by [`Store::remove_webhook`] of a webhook gid recorded for it |
//! | `{counter_key}` | string | the last number handed out, as an integer, incremented with `INCR` |
//!
//! Added by this implementation:
//!
//! | key | type | contents |
//! |---|---|---|
//! | `autonumber:secrets:{prefix}` | list | secrets stored by handshakes, oldest first, each once |
//! | `autonumber:secret_webhooks:{prefix}` | hash | secret → webhook gid, `""` until the gid is recorded. Contains every secret of the list, and the legacy secret once a gid is recorded for it |
//! | `autonumber:pending:{prefix}` | string, `PX` expiry | `1` while a registration accepts a handshake |
//! | `autonumber:numbers:{prefix}` | hash | task gid → number |
//! | `autonumber:prefixes` | hash | prefix → counter key |
//! | `autonumber:webhooks` | hash | webhook gid → prefix. Its secret is the field of `autonumber:secret_webhooks:{prefix}` whose value is this gid |
//! | `autonumber:ping` | string, 60 s expiry | the value written by [`Store::ping`] |
//!
//! # Errors
//!
//! HTTP 401 and 403 map to [`StoreError::Unauthorized`]. Connection failures, timeouts
//! ([`REQUEST_TIMEOUT`]), 429 and 5xx map to [`StoreError::Unavailable`]. An `{"error": ...}`
//! reply with any other status, and any reply of another shape, map to [`StoreError::Backend`].
//! Messages never contain the token or the URL, because Upstash also accepts the token as a
//! `_token` query parameter.
//!
//! NOTE: the local stand-in `@humanwhocodes/upstash-redis-server` 1.0.0 replies to a failed
//! Redis command with HTTP 500, so under it such a failure maps to `Unavailable`, not `Backend`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Assignment, Store, StoreError, StoredSecret};
use reply::{integer, optional_string, parse_reply, request_error, string_array, unexpected};

mod reply;

/// Upper bound of one command, connection included. Asana expects a webhook response within
/// 10 s, and the response to a handshake waits for one store call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const PREFIXES_KEY: &str = "autonumber:prefixes";
const WEBHOOKS_KEY: &str = "autonumber:webhooks";
const PING_KEY: &str = "autonumber:ping";

/// KEYS: legacy secret, secret list, secret → gid hash. Returns `[secret, gid or "", ...]`,
/// legacy secret first.
const SECRETS_LUA: &str = r#"
local legacy = redis.call('GET', KEYS[1])
local reply = {}
if legacy then
  reply[#reply + 1] = legacy
  reply[#reply + 1] = redis.call('HGET', KEYS[3], legacy) or ''
end
for _, secret in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if secret ~= legacy then
    reply[#reply + 1] = secret
    reply[#reply + 1] = redis.call('HGET', KEYS[3], secret) or ''
  end
end
return reply
"#;

/// KEYS: pending mark, legacy secret, secret list, secret → gid hash. ARGV: secret.
/// Returns 1 when a registration was pending, else 0 and changes nothing.
const COMPLETE_REGISTRATION_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] and redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then
  redis.call('RPUSH', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[4], ARGV[1], '')
end
redis.call('DEL', KEYS[1])
return 1
"#;

/// KEYS: legacy secret, secret → gid hash, webhooks hash. ARGV: secret, gid, prefix.
/// Returns 0 when the prefix has no such secret.
const SET_WEBHOOK_GID_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return 0
end
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous and previous ~= '' and previous ~= ARGV[2] then
  redis.call('HDEL', KEYS[3], previous)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1
"#;

/// KEYS: webhooks hash, legacy secret, secret list, secret → gid hash. ARGV: gid, prefix.
/// Returns 0, changing nothing, when the gid no longer belongs to the prefix.
const REMOVE_WEBHOOK_LUA: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
local entries = redis.call('HGETALL', KEYS[4])
for i = 1, #entries, 2 do
  if entries[i + 1] == ARGV[1] then
    local secret = entries[i]
    redis.call('HDEL', KEYS[4], secret)
    redis.call('LREM', KEYS[3], 0, secret)
    if redis.call('GET', KEYS[2]) == secret then
      redis.call('DEL', KEYS[2])
    end
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"#;

/// KEYS: numbers hash, counter, prefixes hash. ARGV: task gid, prefix.
/// Returns `[number, 1]` when this call incremented the counter, `[number, 0]` otherwise.
const ASSIGN_NUMBER_LUA: &str = r#"
local number = redis.call('HGET', KEYS[1], ARGV[1])
if number then
  return {number, 0}
end
number = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], number)
redis.call('HSET', KEYS[3], ARGV[2], KEYS[2])
return {number, 1}
"#;

/// A client of one Upstash Redis database.
pub struct UpstashStore {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl fmt::Debug for UpstashStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstashStore")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl UpstashStore {
    /// Creates a client of the database at `url` (`UPSTASH_REDIS_REST_URL`), authenticated by
    /// `token` (`UPSTASH_REDIS_REST_TOKEN`).
    pub fn new(url: &str, token: &str, http: reqwest::Client) -> Self {
        UpstashStore {
            url: url.to_owned(),
            token: token.to_owned(),
            http,
        }
    }

    /// Sends one command and returns the `result` of the reply.
    async fn command(&self, args: &[&str]) -> Result<Value, StoreError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .timeout(REQUEST_TIMEOUT)
            .json(args)
            .send()
            .await
            .map_err(request_error)?;

        let status = response.status();
        let body = response.bytes().await.map_err(request_error)?;
        parse_reply(status, &body)
    }

    /// Runs a Lua script with `EVAL`.
    async fn eval(&self, script: &str, keys: &[&str], args: &[&str]) -> Result<Value, StoreError> {
        let key_count = keys.len().to_string();
        let mut command = vec!["EVAL", script, key_count.as_str()];
        command.extend_from_slice(keys);
        command.extend_from_slice(args);
        self.command(&command).await
    }
}

/// KEYS: the secrets list and the secret-to-webhook hash. ARGV: the secret.
const REMOVE_SECRET_LUA: &str = r#"
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"#;

fn legacy_secret_key(prefix: &str) -> String {
    format!("{prefix}_hook_secret")
}

fn secrets_key(prefix: &str) -> String {
    format!("autonumber:secrets:{prefix}")
}

fn secret_webhooks_key(prefix: &str) -> String {
    format!("autonumber:secret_webhooks:{prefix}")
}

fn pending_key(prefix: &str) -> String {
    format!("autonumber:pending:{prefix}")
}

fn numbers_key(prefix: &str) -> String {
    format!("autonumber:numbers:{prefix}")
}

fn as_strs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

#[async_trait]
impl Store for UpstashStore {
    async fn secrets(&self, prefix: &str) -> Result<Vec<StoredSecret>, StoreError> {
        let keys = [
            legacy_secret_key(prefix),
            secrets_key(prefix),
            secret_webhooks_key(prefix),
        ];
        let reply = self.eval(SECRETS_LUA, &as_strs(&keys), &[]).await?;

        let fields = string_array(&reply)?;
        let secrets = fields
            .chunks_exact(2)
            .map(|pair| StoredSecret {
                secret: pair[0].clone(),
                webhook_gid: Some(pair[1].clone()).filter(|gid| !gid.is_empty()),
            })
            .collect();
        Ok(secrets)
    }

    async fn begin_registration(&self, prefix: &str, ttl: Duration) -> Result<(), StoreError> {
        // Redis rejects PX 0, so a TTL under a millisecond becomes one millisecond.
        let millis = ttl.as_millis().max(1).to_string();
        self.command(&["SET", &pending_key(prefix), "1", "PX", &millis])
            .await?;
        Ok(())
    }

    async fn registration_pending(&self, prefix: &str) -> Result<bool, StoreError> {
        let reply = self.command(&["EXISTS", &pending_key(prefix)]).await?;
        Ok(integer(&reply)? == 1)
    }

    async fn remove_secret(&self, prefix: &str, secret: &str) -> Result<(), StoreError> {
        let keys = [secrets_key(prefix), secret_webhooks_key(prefix)];
        self.eval(REMOVE_SECRET_LUA, &as_strs(&keys), &[secret])
            .await
            .map(drop)
    }

    async fn cancel_registration(&self, prefix: &str) -> Result<(), StoreError> {
        self.command(&["DEL", &pending_key(prefix)]).await.map(drop)
    }

    async fn complete_registration(&self, prefix: &str, secret: &str) -> Result<bool, StoreError> {
        let keys = [
            pending_key(prefix),
            legacy_secret_key(prefix),
            secrets_key(prefix),
            secret_webhooks_key(prefix),
        ];
        let reply = self
            .eval(COMPLETE_REGISTRATION_LUA, &as_strs(&keys), &[secret])
            .await?;
        Ok(integer(&reply)? == 1)
    }

    async fn set_webhook_gid(
        &self,
        prefix: &str,
        secret: &str,
        webhook_gid: &str,
    ) -> Result<(), StoreError> {
        let keys = [
            legacy_secret_key(prefix),
            secret_webhooks_key(prefix),
            WEBHOOKS_KEY.to_owned(),
        ];
        let args = [secret, webhook_gid, prefix];
        let reply = self
            .eval(SET_WEBHOOK_GID_LUA, &as_strs(&keys), &args)
            .await?;

        if integer(&reply)? == 0 {
            return Err(StoreError::Backend(format!(
                "failed to record webhook {webhook_gid}: the secret is not stored under prefix {prefix}"
            )));
        }
        Ok(())
    }

    async fn remove_webhook(&self, webhook_gid: &str) -> Result<Option<String>, StoreError> {
        // The script's keys depend on the prefix, so the prefix is read first and the script
        // checks that the webhook still belongs to it. A concurrent change fails that check,
        // and the loop reads the prefix again.
        for _ in 0..3 {
            let reply = self.command(&["HGET", WEBHOOKS_KEY, webhook_gid]).await?;
            let Some(prefix) = optional_string(&reply)? else {
                return Ok(None);
            };

            let keys = [
                WEBHOOKS_KEY.to_owned(),
                legacy_secret_key(&prefix),
                secrets_key(&prefix),
                secret_webhooks_key(&prefix),
            ];
            let reply = self
                .eval(REMOVE_WEBHOOK_LUA, &as_strs(&keys), &[webhook_gid, &prefix])
                .await?;
            if integer(&reply)? == 1 {
                return Ok(Some(prefix));
            }
        }
        Err(StoreError::Unavailable(format!(
            "failed to remove webhook {webhook_gid}: it changed during each of 3 attempts"
        )))
    }

    async fn assign_number(
        &self,
        prefix: &str,
        counter_key: &str,
        task_gid: &str,
    ) -> Result<Assignment, StoreError> {
        let numbers = numbers_key(prefix);
        let keys = [numbers.as_str(), counter_key, PREFIXES_KEY];
        let reply = self
            .eval(ASSIGN_NUMBER_LUA, &keys, &[task_gid, prefix])
            .await?;

        match reply.as_array().map(Vec::as_slice) {
            Some([number, fresh]) => Ok(Assignment {
                number: integer(number)?,
                fresh: integer(fresh)? == 1,
            }),
            _ => Err(unexpected("a [number, fresh] pair", &reply)),
        }
    }

    async fn task_number(&self, prefix: &str, task_gid: &str) -> Result<Option<u64>, StoreError> {
        let reply = self
            .command(&["HGET", &numbers_key(prefix), task_gid])
            .await?;
        match reply {
            Value::Null => Ok(None),
            number => integer(&number).map(Some),
        }
    }

    async fn counter(&self, counter_key: &str) -> Result<u64, StoreError> {
        let reply = self.command(&["GET", counter_key]).await?;
        match reply {
            Value::Null => Ok(0),
            value => integer(&value),
        }
    }

    async fn set_counter(&self, counter_key: &str, value: u64) -> Result<(), StoreError> {
        self.command(&["SET", counter_key, &value.to_string()])
            .await?;
        Ok(())
    }

    async fn max_assigned(&self, prefix: &str) -> Result<Option<u64>, StoreError> {
        // NOTE: HVALS returns every number of the prefix in one reply, so the reply grows with
        // the number of tasks ever numbered under it.
        let reply = self.command(&["HVALS", &numbers_key(prefix)]).await?;
        let values = reply
            .as_array()
            .ok_or_else(|| unexpected("an array", &reply))?;

        let mut max = None;
        for value in values {
            max = max.max(Some(integer(value)?));
        }
        Ok(max)
    }

    async fn prefixes(&self) -> Result<Vec<(String, String)>, StoreError> {
        let reply = self.command(&["HGETALL", PREFIXES_KEY]).await?;
        let fields = string_array(&reply)?;

        let mut prefixes: Vec<(String, String)> = fields
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        prefixes.sort();
        Ok(prefixes)
    }

    async fn set_counter_key(&self, prefix: &str, counter_key: &str) -> Result<(), StoreError> {
        self.command(&["HSET", PREFIXES_KEY, prefix, counter_key])
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let nonce = rand::random::<u64>().to_string();
        self.command(&["SET", PING_KEY, &nonce, "PX", "60000"])
            .await?;

        let reply = self.command(&["GET", PING_KEY]).await?;
        if reply.as_str() != Some(nonce.as_str()) {
            return Err(StoreError::Backend(
                "ping failed: GET returned a value other than the one SET wrote".to_owned(),
            ));
        }
        Ok(())
    }
}
