//! Refresh-token families in Redis: one hash per family, created, rotated and revoked each by
//! one script on its key (atomic on Cluster too); a revocation's feed event is appended after
//! it, with the `feed = owed` mark covering a failure in between.

use super::encoding::{family_fields, family_from_pairs};
use super::scripts::{FAMILY_CREATE, FAMILY_REVOKE, FAMILY_ROTATE};
use super::{RedisStore, internal};
use crate::domain::{TokenId, UnixTime};
use crate::store::{Family, Rotation, RotationOutcome, StoreError, StoreResult};

impl RedisStore {
    pub(super) async fn family_create(&self, family: &Family) -> StoreResult<()> {
        self.run(async {
            let mut conn = self.conn().await?;
            let (ttl, _) = self.retention(family.current.expires_at);
            let mut invocation = FAMILY_CREATE.key(self.keys.family(family.id.as_str()));
            invocation.arg(ttl);
            for (field, value) in family_fields(family) {
                invocation.arg(field).arg(value);
            }
            let created: i64 = invocation.invoke_async(&mut conn).await?;
            if created == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict.into())
            }
        })
        .await
    }

    pub(super) async fn family_get(&self, id: &TokenId) -> StoreResult<Option<Family>> {
        self.run(async {
            let mut conn = self.conn().await?;
            let pairs: Vec<String> = redis::cmd("HGETALL")
                .arg(self.keys.family(id.as_str()))
                .query_async(&mut conn)
                .await?;
            if pairs.is_empty() {
                return Ok(None);
            }
            family_from_pairs(&pairs).map(Some)
        })
        .await
    }

    pub(super) async fn family_rotate(&self, rotation: &Rotation) -> StoreResult<RotationOutcome> {
        self.run(async {
            let mut conn = self.conn().await?;
            let successor = &rotation.successor;
            let (ttl, _) = self.retention(successor.expires_at);
            let reply: Vec<String> = FAMILY_ROTATE
                .key(self.keys.family(rotation.family.as_str()))
                .arg(rotation.presented.as_str())
                .arg(successor.jti.as_str())
                .arg(successor.issued_at)
                .arg(successor.expires_at)
                .arg(rotation.now_ms)
                .arg(rotation.now_ms.div_euclid(1000))
                .arg(rotation.grace_ms)
                .arg(ttl)
                .arg(
                    successor
                        .access_lifetime
                        .map(|lifetime| lifetime.to_string())
                        .unwrap_or_default(),
                )
                .invoke_async(&mut conn)
                .await?;
            let (outcome, pairs) = reply
                .split_first()
                .ok_or_else(|| internal("empty reply from the rotation script"))?;
            match outcome.as_str() {
                "inactive" => Ok(RotationOutcome::Inactive),
                "inactive_owed" => {
                    // A reuse or revocation whose feed event was never confirmed: finish it.
                    let family = family_from_pairs(pairs)?;
                    self.append_family_event(&mut conn, &family).await?;
                    Ok(RotationOutcome::Inactive)
                }
                "rotated" => Ok(RotationOutcome::Rotated(family_from_pairs(pairs)?)),
                "repeated" => Ok(RotationOutcome::Repeated(family_from_pairs(pairs)?)),
                "reused" => {
                    let family = family_from_pairs(pairs)?;
                    self.append_family_event(&mut conn, &family).await?;
                    Ok(RotationOutcome::Reused(family))
                }
                other => Err(internal(format!("rotation script answered {other:?}"))),
            }
        })
        .await
    }

    pub(super) async fn family_revoke(&self, id: &TokenId, now: UnixTime) -> StoreResult<bool> {
        self.run(async {
            let mut conn = self.conn().await?;
            let reply: Vec<String> = FAMILY_REVOKE
                .key(self.keys.family(id.as_str()))
                .arg(now)
                .invoke_async(&mut conn)
                .await?;
            let (outcome, pairs) = reply
                .split_first()
                .ok_or_else(|| internal("empty reply from the revocation script"))?;
            match outcome.as_str() {
                "unknown" | "already" => Ok(false),
                "owed" => {
                    self.append_family_event(&mut conn, &family_from_pairs(pairs)?)
                        .await?;
                    Ok(false)
                }
                "revoked" => {
                    self.append_family_event(&mut conn, &family_from_pairs(pairs)?)
                        .await?;
                    Ok(true)
                }
                other => Err(internal(format!("revocation script answered {other:?}"))),
            }
        })
        .await
    }
}
