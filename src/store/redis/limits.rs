//! Attempt counters and single-use markers in Redis: each operation one script (or one
//! command) on one key, so atomic on every deployment, Cluster included; the reservation
//! script mirrors [`crate::store::attempts::reserve`] line by line.

use super::RedisStore;
use super::scripts::{ATTEMPT_RELEASE, ATTEMPT_RESERVE, FAILURE_RECORD, ONCE_USE};
use crate::domain::UnixTime;
use crate::store::StoreResult;
use crate::store::attempts::{AttemptRule, Reservation};

impl RedisStore {
    pub(super) async fn once_use(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool> {
        self.run(async {
            let mut conn = self.conn().await?;
            let (ttl, _) = self.retention(expires_at);
            let first: i64 = ONCE_USE
                .key(self.keys.once(key))
                .arg(expires_at)
                .arg(now)
                .arg(ttl)
                .invoke_async(&mut conn)
                .await?;
            Ok(first == 1)
        })
        .await
    }

    pub(super) async fn failure_record(
        &self,
        key: &str,
        window_secs: u64,
    ) -> StoreResult<(u64, u64)> {
        self.run(async {
            let mut conn = self.conn().await?;
            let window = i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX / 4);
            let (count, ttl): (i64, i64) = FAILURE_RECORD
                .key(self.keys.failures(key))
                .arg(window)
                .invoke_async(&mut conn)
                .await?;
            Ok((count.max(0).unsigned_abs(), ttl.max(0).unsigned_abs()))
        })
        .await
    }

    pub(super) async fn attempt_reserve(
        &self,
        key: &str,
        rule: &AttemptRule,
        now: UnixTime,
    ) -> StoreResult<Reservation> {
        self.run(async {
            let mut conn = self.conn().await?;
            let wait: i64 = ATTEMPT_RESERVE
                .key(self.keys.failures(key))
                .key(self.keys.last_attempt(key))
                .arg(now)
                .arg(rule.free)
                .arg(rule.base)
                .arg(rule.cap)
                .arg(rule.window.max(1))
                .invoke_async(&mut conn)
                .await?;
            Ok(match u64::try_from(wait) {
                Ok(0) => Reservation::Granted,
                Err(_) => Reservation::Refused { retry_after: 1 },
                Ok(retry_after) => Reservation::Refused { retry_after },
            })
        })
        .await
    }

    pub(super) async fn attempt_release(&self, key: &str) -> StoreResult<()> {
        self.run(async {
            let mut conn = self.conn().await?;
            let _: i64 = ATTEMPT_RELEASE
                .key(self.keys.failures(key))
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    pub(super) async fn failures_clear(&self, key: &str) -> StoreResult<()> {
        self.run(async {
            let mut conn = self.conn().await?;
            let _: i64 = redis::cmd("DEL")
                .arg(self.keys.failures(key))
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }
}
