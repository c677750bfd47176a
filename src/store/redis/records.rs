//! The store's building blocks on one connection: JSON records with their indexes, and the
//! revocation feed.

use redis::Value;

use super::conn::Conn;
use super::encoding::parse_cursor;
use super::scripts::*;
use super::{Op, RedisStore, internal};
use crate::domain::UnixTime;
use crate::store::{
    ClientRead, CutOffReach, Family, FeedPage, RevocationEvent, StoreError, Subject, SubjectKind,
    TokenLifetimes,
};

impl RedisStore {
    /// Appends one event to the feed; returns its id.
    pub(super) async fn append_event(
        &self,
        conn: &mut Conn,
        event: &RevocationEvent,
    ) -> Op<String> {
        let json = serde_json::to_string(event).map_err(internal)?;
        let (ttl, deadline) = self.retention(event.expires_at());
        let id: String = FEED_APPEND
            .key(self.keys.feed())
            .key(self.keys.feed_deadlines())
            .arg(json)
            .arg(event.expires_at())
            .arg(deadline)
            .arg(ttl)
            .arg(crate::domain::now())
            .invoke_async(conn)
            .await?;
        Ok(id)
    }

    /// Appends a revoked family's `Family` event, then clears the family's `feed = owed` mark.
    ///
    /// Ordering: on Cluster the family's hash and the feed live in different slots, so the
    /// revocation (inside the rotation or revocation script, atomic with the decision) comes
    /// first and the event is a second call. The family is already dead for refreshes when the
    /// event is written; if the append fails, the operation reports `Unavailable` and the
    /// `owed` mark stays, so the next redemption or revocation of that family appends the event
    /// again. A duplicate `Family` event is harmless to feed readers; a lost one is not.
    pub(super) async fn append_family_event(&self, conn: &mut Conn, family: &Family) -> Op<()> {
        let event = RevocationEvent::Family {
            fam: family.id.as_str().to_owned(),
            exp: family.feed_expires_at(),
        };
        self.append_event(conn, &event).await?;
        let _: i64 = redis::cmd("HDEL")
            .arg(self.keys.family(family.id.as_str()))
            .arg("feed")
            .query_async(conn)
            .await?;
        Ok(())
    }

    /// One JSON record, if the key exists.
    pub(super) async fn read_record<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
    ) -> Op<Option<T>> {
        let mut conn = self.conn().await?;
        let json: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        parse_record(json)
    }

    pub(super) async fn read_records<T: serde::de::DeserializeOwned>(
        &self,
        conn: &mut Conn,
        keys: Vec<String>,
    ) -> Op<Vec<T>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Every key of one index shares its hash tag, so MGET stays in one slot on Cluster.
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(conn).await?;
        let mut records = Vec::with_capacity(values.len());
        for json in values.into_iter().flatten() {
            records.push(serde_json::from_str(&json).map_err(internal)?);
        }
        Ok(records)
    }

    /// A client record and failure counters (each a count and the seconds left in its window)
    /// in one MGET: what client authentication reads on every request, so one round trip. On
    /// Cluster the keys sit in different slots; the client splits the MGET per slot and joins
    /// the answers in order.
    /// The client and its cut-off (`client`: their two keys, in one slot) and the failure
    /// counters, in one MGET.
    pub(super) async fn read_client_and_counts(
        &self,
        client: Option<[String; 2]>,
        counters: Vec<String>,
        now: UnixTime,
    ) -> Op<ClientRead> {
        let with_client = if client.is_some() { 2 } else { 0 };
        let keys: Vec<&String> = client.iter().flatten().chain(&counters).collect();
        if keys.is_empty() {
            return Ok(ClientRead::default());
        }
        let mut conn = self.conn().await?;
        let mut values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        if values.len() != keys.len() {
            return Err(internal(format!(
                "MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        let counts = values.split_off(with_client);
        let mut read = ClientRead {
            failures: Vec::with_capacity(counts.len()),
            ..ClientRead::default()
        };
        if with_client > 0 {
            let mut values = values.into_iter();
            read.client = parse_record(values.next().flatten())?;
            read.not_before = parse_not_before(values.next().flatten(), now)?;
        }
        for (key, count) in counters.iter().zip(counts) {
            // Nearly always there is no counter; its TTL only when there is one.
            let Some(count) = count else {
                read.failures.push((0, 0));
                continue;
            };
            let count: i64 = count.parse().map_err(internal)?;
            let ttl: i64 = redis::cmd("TTL").arg(key).query_async(&mut conn).await?;
            read.failures
                .push((count.max(0).unsigned_abs(), ttl.max(0).unsigned_abs()));
        }
        Ok(read)
    }

    /// Raises the cut-off at `key` (with `floor`, another of the subject's cut-offs in the same
    /// slot, to reach past), then appends the subject's event; the new cut-off.
    pub(super) async fn raise_cut_off(
        &self,
        subject: &Subject,
        (key, reach): (String, CutOffReach),
        floor: Option<String>,
        now: UnixTime,
        lifetime: u64,
    ) -> Op<UnixTime> {
        let mut conn = self.conn().await?;
        let cap = i64::try_from(super::MAX_RETENTION.as_secs()).unwrap_or(i64::MAX / 4);
        let mut invocation = SUBJECT_REVOKE.key(key);
        invocation.key(self.keys.lifetimes(subject.kind()));
        if let Some(floor) = floor {
            invocation.key(floor);
        }
        let reach = match reach {
            CutOffReach::Access => "access",
            CutOffReach::Every => "every",
        };
        let (not_before, keep_until): (String, String) = invocation
            .arg(now)
            .arg(lifetime.min(cap.unsigned_abs()))
            .arg(self.slack_secs)
            .arg(cap)
            .arg(reach)
            .invoke_async(&mut conn)
            .await?;
        let not_before: UnixTime = not_before.parse().map_err(internal)?;
        let keep_until: UnixTime = keep_until.parse().map_err(internal)?;
        // The cut-off is in force once the script ran; the event follows in its own slot.
        self.append_event(&mut conn, &subject.event(not_before, keep_until))
            .await?;
        Ok(not_before)
    }

    /// Raises the token lifetimes kept in each kind's slot; the longest now kept.
    pub(super) async fn record_lifetimes(&self, lifetimes: TokenLifetimes) -> Op<TokenLifetimes> {
        let mut conn = self.conn().await?;
        let mut kept = lifetimes;
        for kind in [SubjectKind::User, SubjectKind::Client] {
            let (access, refresh): (u64, u64) = LIFETIMES_RECORD
                .key(self.keys.lifetimes(kind))
                .arg(lifetimes.access)
                .arg(lifetimes.refresh)
                .invoke_async(&mut conn)
                .await?;
            kept = kept.at_least(TokenLifetimes { access, refresh });
        }
        Ok(kept)
    }

    /// Claims `name` for `kind` of account; `NameTaken` when the other kind holds it.
    pub(super) async fn claim_name(&self, name: &str, kind: SubjectKind) -> Op<()> {
        let mut conn = self.conn().await?;
        let owner: String = NAME_CLAIM
            .key(self.keys.name(name))
            .arg(kind.as_str())
            .invoke_async(&mut conn)
            .await?;
        match SubjectKind::parse(&owner) {
            Some(owner) if owner == kind => Ok(()),
            Some(owner) => Err(StoreError::NameTaken(owner).into()),
            None => Err(internal(format!(
                "account name '{name}' has an unknown kind"
            ))),
        }
    }

    pub(super) async fn create_record(
        &self,
        key: String,
        index: String,
        name: &str,
        json: String,
    ) -> Op<()> {
        let mut conn = self.conn().await?;
        let created: i64 = RECORD_CREATE
            .key(key)
            .key(index)
            .arg(json)
            .arg(name)
            .invoke_async(&mut conn)
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict.into())
        }
    }

    pub(super) async fn replace_record(&self, key: String, json: String) -> Op<()> {
        let mut conn = self.conn().await?;
        let reply: Value = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("XX")
            .query_async(&mut conn)
            .await?;
        if matches!(reply, Value::Nil) {
            Err(StoreError::NotFound.into())
        } else {
            Ok(())
        }
    }

    /// A page of the feed after `position` (the start when `None`); `asked` is the cursor as
    /// given, the next cursor when the page is empty.
    pub(super) async fn read_feed(
        &self,
        position: Option<(u64, u64)>,
        asked: String,
        limit: usize,
        now: UnixTime,
    ) -> Op<FeedPage> {
        let mut conn = self.conn().await?;
        // The first id after the cursor, as an inclusive start: to Redis, an exclusive start
        // at the greatest id there is an error, not an empty range.
        let start = match position {
            None | Some((0, 0)) => "-".to_owned(),
            Some((ms, seq)) => match (seq.checked_add(1), ms.checked_add(1)) {
                (Some(next), _) => format!("{ms}-{next}"),
                (None, Some(next)) => format!("{next}-0"),
                (None, None) => return Err(StoreError::InvalidCursor.into()),
            },
        };
        let reply: Vec<String> = FEED_READ
            .key(self.keys.feed())
            .arg(start)
            .arg(i64::try_from(limit).unwrap_or(i64::MAX))
            .arg(now)
            .invoke_async(&mut conn)
            .await?;
        let (last, entries) = reply
            .split_first()
            .ok_or_else(|| internal("empty reply from the feed script"))?;
        // A cursor past the last id this feed generated was never handed out. Once the
        // whole feed has expired its last id is gone too; then only a cursor from the
        // future (beyond this clock, plus a minute of skew) can be told apart.
        if let Some(position) = position {
            let beyond = match parse_cursor(last) {
                Some(last) => position > last,
                None => {
                    let now_ms = u64::try_from(crate::domain::now()).unwrap_or(0) * 1000;
                    position.0 > now_ms + 60_000
                }
            };
            if beyond {
                return Err(StoreError::InvalidCursor.into());
            }
        }
        let mut events = Vec::with_capacity(entries.len() / 2);
        for entry in entries.chunks_exact(2) {
            let event: RevocationEvent = serde_json::from_str(&entry[1]).map_err(internal)?;
            events.push((entry[0].clone(), event));
        }
        let next_cursor = events.last().map_or(asked, |(id, _)| id.clone());
        Ok(FeedPage {
            events,
            next_cursor,
        })
    }
}

/// A stored JSON record, if there was one.
/// A stored cut-off `<not_before> <keep_until>`, if it is still remembered at `now`.
pub(super) fn parse_not_before(stored: Option<String>, now: UnixTime) -> Op<Option<UnixTime>> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let malformed = || internal(format!("malformed subject cut-off '{stored}'"));
    let (not_before, keep) = stored.split_once(' ').ok_or_else(malformed)?;
    let not_before: UnixTime = not_before.parse().map_err(|_| malformed())?;
    let keep: UnixTime = keep.parse().map_err(|_| malformed())?;
    Ok((keep >= now).then_some(not_before))
}

pub(super) fn parse_record<T: serde::de::DeserializeOwned>(json: Option<String>) -> Op<Option<T>> {
    json.map(|json| serde_json::from_str(&json).map_err(internal))
        .transpose()
}
