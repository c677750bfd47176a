//! Authorization codes in Redis: one hash per code (`data`, `exp`, and `fam` once redeemed,
//! `rep` once replayed), with a TTL to the end of the code's memory. Each operation is one
//! script on one key, so it is atomic on every deployment, Cluster included.

use super::scripts::{CODE_CREATE, CODE_REDEEM};
use super::{Op, RedisStore, internal};
use crate::domain::{TokenId, UnixTime};
use crate::store::{AuthorizationCode, CodeRedemption, StoreError, StoreResult};

impl RedisStore {
    pub(super) async fn code_create(&self, key: &str, code: &AuthorizationCode) -> StoreResult<()> {
        let data = serde_json::to_string(code).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.run(async {
            let mut conn = self.conn().await?;
            let (ttl, _) = self.retention(code.keep_until());
            let stored: i64 = CODE_CREATE
                .key(self.keys.code(key))
                .arg(&data)
                .arg(code.expires_at)
                .arg(ttl)
                .invoke_async(&mut conn)
                .await?;
            if stored == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict.into())
            }
        })
        .await
    }

    pub(super) async fn code_redeem(
        &self,
        key: &str,
        family: &TokenId,
        now: UnixTime,
    ) -> StoreResult<CodeRedemption> {
        self.run(async {
            let mut conn = self.conn().await?;
            let answer: Vec<String> = CODE_REDEEM
                .key(self.keys.code(key))
                .arg(family.as_str())
                .arg(now)
                .invoke_async(&mut conn)
                .await?;
            redemption(&answer)
        })
        .await
    }

    pub(super) async fn code_get(&self, key: &str) -> StoreResult<Option<AuthorizationCode>> {
        self.run(async {
            let mut conn = self.conn().await?;
            let data: Option<String> = redis::cmd("HGET")
                .arg(self.keys.code(key))
                .arg("data")
                .query_async(&mut conn)
                .await?;
            data.map(|data| serde_json::from_str(&data).map_err(internal))
                .transpose()
        })
        .await
    }

    pub(super) async fn code_was_replayed(&self, key: &str) -> StoreResult<bool> {
        self.run(async {
            let mut conn = self.conn().await?;
            let replayed: Option<String> = redis::cmd("HGET")
                .arg(self.keys.code(key))
                .arg("rep")
                .query_async(&mut conn)
                .await?;
            Ok(replayed.is_some())
        })
        .await
    }
}

fn redemption(answer: &[String]) -> Op<CodeRedemption> {
    match answer {
        [first, data] if first == "1" => {
            let code = serde_json::from_str(data).map_err(internal)?;
            Ok(CodeRedemption::Redeemed(code))
        }
        [first, family] if first == "2" => Ok(CodeRedemption::Spent {
            family: TokenId::from_trusted(family.as_str()),
        }),
        [first] if first == "0" => Ok(CodeRedemption::Invalid),
        _ => Err(internal("unexpected answer from the code script")),
    }
}
