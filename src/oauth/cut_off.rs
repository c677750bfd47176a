//! When tokens are dated: a revocation's cut-off against the issuance that races it.

use std::time::Duration;

use super::AuthError;
use crate::domain::{UnixTime, now_ms};

/// The longest an issuance waits for a cut-off that a revocation has just set.
const MAX_CUT_OFF_WAIT_MS: i64 = 5_000;

/// The `iat` of tokens issued from credentials read at `now`, given the cut-offs read with
/// them: `now`, unless a revocation has just set a cut-off beyond it (cut-offs lie past the
/// second of their revocation, so that the tokens issued in that second die too). A token dated
/// before a cut-off would be dead on arrival, and one dated in the future would be refused by
/// verifiers without leeway, so the issuance waits for the cut-off (at most a second after one
/// revocation) and dates its tokens by it.
///
/// Dating tokens by when the credentials were read, never by when signing ends, is what makes
/// a revocation final: an issuance that read the credentials before a revocation dates its
/// tokens before that revocation's cut-off, however long the password check takes.
pub(super) async fn issued_at(
    now: UnixTime,
    cut_offs: impl IntoIterator<Item = Option<UnixTime>>,
) -> Result<UnixTime, AuthError> {
    let Some(cut_off) = cut_offs.into_iter().flatten().max().filter(|c| *c > now) else {
        return Ok(now);
    };
    let wait_ms = cut_off.saturating_mul(1000).saturating_sub(now_ms());
    if wait_ms > MAX_CUT_OFF_WAIT_MS {
        return Err(AuthError::Unavailable {
            reason: "the account's tokens were just revoked; try again shortly".into(),
            retry_after: u64::try_from(wait_ms / 1000 + 1).unwrap_or(1),
        });
    }
    if wait_ms > 0 {
        tokio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())).await;
    }
    Ok(cut_off)
}
