//! Authorization codes in the embedded store: one row per code, spent in the transaction that
//! reads it.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::sql::{Cached, DbResult, from_json, get_json, insert_error, to_json};
use crate::domain::{TokenId, UnixTime};
use crate::store::{AuthorizationCode, CodeRedemption, StoreResult};

pub(super) fn create(tx: &Transaction<'_>, key: &str, code: &AuthorizationCode) -> StoreResult<()> {
    let data = to_json(code)?;
    tx.execute_cached(
        "INSERT INTO authorization_codes (key, expires_at, keep_until, data) \
         VALUES (?1, ?2, ?3, ?4)",
        params![key, code.expires_at, code.keep_until(), data],
    )
    .map_err(insert_error)?;
    Ok(())
}

pub(super) fn redeem(
    tx: &Transaction<'_>,
    key: &str,
    family: &TokenId,
    now: UnixTime,
) -> StoreResult<CodeRedemption> {
    let row: Option<(i64, Option<String>, String)> = tx
        .query_row_cached(
            "SELECT expires_at, family, data FROM authorization_codes WHERE key = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .db()?;
    let Some((expires_at, spent, data)) = row else {
        return Ok(CodeRedemption::Invalid);
    };
    if let Some(first) = spent {
        tx.execute_cached(
            "UPDATE authorization_codes SET replayed = 1 WHERE key = ?1",
            [key],
        )
        .db()?;
        return Ok(CodeRedemption::Spent {
            family: TokenId::from_trusted(&first),
        });
    }
    if now >= expires_at {
        return Ok(CodeRedemption::Invalid);
    }
    tx.execute_cached(
        "UPDATE authorization_codes SET family = ?2 WHERE key = ?1",
        params![key, family.as_str()],
    )
    .db()?;
    Ok(CodeRedemption::Redeemed(from_json(&data)?))
}

pub(super) fn get(conn: &Connection, key: &str) -> StoreResult<Option<AuthorizationCode>> {
    get_json(
        conn,
        "SELECT data FROM authorization_codes WHERE key = ?1",
        key,
    )
}

pub(super) fn replayed(conn: &Connection, key: &str) -> StoreResult<bool> {
    let replayed: Option<i64> = conn
        .query_row_cached(
            "SELECT replayed FROM authorization_codes WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .db()?;
    Ok(replayed.unwrap_or(0) != 0)
}
