//! When tokens are dated: a revocation's cut-off against the issuance that races it.

use std::time::Duration;

use super::Authority;
use crate::domain::{UnixTime, now_ms};
use crate::error::ServiceError;
use crate::store::{ClientRecord, UserRecord};

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
///
/// Returns the date and whether it is a cut-off rather than `now`: then another revocation may
/// have come within the cut-off's second without moving it, and the caller must check that the
/// records it read are unchanged ([`Authority::refuse_if_changed`]) before it issues.
pub(super) async fn issued_at(
    now: UnixTime,
    cut_offs: impl IntoIterator<Item = Option<UnixTime>>,
) -> Result<(UnixTime, bool), ServiceError> {
    let Some(cut_off) = cut_offs.into_iter().flatten().max().filter(|c| *c > now) else {
        return Ok((now, false));
    };
    let wait_ms = cut_off.saturating_mul(1000).saturating_sub(now_ms());
    if wait_ms > MAX_CUT_OFF_WAIT_MS {
        return Err(ServiceError::Unavailable {
            reason: "the account's tokens were just revoked; try again shortly".into(),
            retry_after: u64::try_from(wait_ms / 1000 + 1).unwrap_or(1),
        });
    }
    if wait_ms > 0 {
        tokio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())).await;
    }
    Ok((cut_off, true))
}

impl Authority {
    /// After waiting for a cut-off: refuses when the user or the client is no longer the record
    /// the credentials were checked against (a password, roles, a secret changed again, or the
    /// account is gone or disabled), since a second revocation within the cut-off's second does
    /// not move the cut-off. `refused` is the answer to give.
    pub(super) async fn refuse_if_changed(
        &self,
        user: Option<&UserRecord>,
        client: &ClientRecord,
        refused: impl FnOnce() -> ServiceError,
    ) -> Result<(), ServiceError> {
        let client_now = self.store.get_client(&client.client_id).await?;
        let user_unchanged = match user {
            Some(user) => self.store.get_user(&user.username).await?.as_ref() == Some(user),
            None => true,
        };
        if user_unchanged && client_now.as_ref() == Some(client) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}
