//! What the Redis store's tests share: a store on a URL, records to write, and polling.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use latchkey::domain::{ClientId, Scope, TokenId, UnixTime};
use latchkey::store::redis::{RedisOptions, RedisStore};
use latchkey::store::{Family, RefreshGeneration};

pub const HOUR: i64 = 3600;

pub fn now() -> UnixTime {
    latchkey::domain::now()
}

pub fn tid(id: &str) -> TokenId {
    TokenId::from_trusted(id)
}

pub fn family(id: &str, jti: &str, expires_at: UnixTime) -> Family {
    Family {
        id: tid(id),
        subject: "alice".to_owned(),
        client_id: ClientId::parse("app").expect("client id"),
        scope: Scope::parse("read").expect("scope"),
        audience: "api".to_owned(),
        current: RefreshGeneration {
            jti: tid(jti),
            issued_at: now(),
            expires_at,
            access_lifetime: None,
        },
        previous: None,
        rotated_at_ms: None,
        revoked: false,
    }
}

pub async fn open(url: &str, prefix: &str, expiry_slack: Duration) -> RedisStore {
    RedisStore::connect_with(
        url,
        RedisOptions {
            prefix: prefix.to_owned(),
            expiry_slack,
            ..RedisOptions::default()
        },
    )
    .await
    .expect("open the redis store")
}

/// Polls an async condition every 50 ms until it holds or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
