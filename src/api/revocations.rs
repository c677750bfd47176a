//! `GET /oauth/revocations`: the revocation feed that resource servers follow.

use std::sync::Arc;

use poem::Request;
use poem::http::header;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Union};

use super::ApiTags;
use super::errors::ApiResult;
use crate::domain::now;
use crate::oauth::{AuthError, Authority, ClientCredentials};
use crate::store::RevocationEvent;

/// One access token is revoked: refuse the token whose `jti` this is.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct TokenRevoked {
    /// This event's position in the feed; asking with it returns the events after this one.
    pub cursor: String,
    /// The `jti` of the revoked access token.
    pub jti: String,
    /// The token's `exp` (Unix seconds); after it the event no longer matters and leaves the
    /// feed.
    pub exp: i64,
}

/// A session (a refresh-token family) is revoked: refuse every access token whose `sid` claim
/// names it.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct FamilyRevoked {
    /// This event's position in the feed.
    pub cursor: String,
    /// The family id, as in the `sid` claim of the session's access tokens.
    pub fam: String,
    /// Unix seconds after which no token of the family can be live; the event leaves the feed
    /// then.
    pub exp: i64,
}

/// Every token of a subject issued before a point in time is revoked (a password change or
/// reset): refuse tokens with this `sub` whose `iat` is earlier than `not_before`.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct SubjectRevoked {
    /// This event's position in the feed.
    pub cursor: String,
    /// The subject (`sub` claim): a username.
    pub sub: String,
    /// Unix seconds: tokens issued (`iat`) before this are dead; later ones are not affected.
    pub not_before: i64,
    /// Unix seconds after which no affected token can be live; the event leaves the feed then.
    pub exp: i64,
}

/// A revocation event; `type` says which kind.
#[derive(Debug, Clone, PartialEq, Eq, Union)]
#[oai(discriminator_name = "type", one_of)]
pub enum FeedEvent {
    #[oai(mapping = "token")]
    Token(TokenRevoked),
    #[oai(mapping = "family")]
    Family(FamilyRevoked),
    #[oai(mapping = "subject")]
    Subject(SubjectRevoked),
}

impl FeedEvent {
    fn new(cursor: String, event: RevocationEvent) -> FeedEvent {
        match event {
            RevocationEvent::Token { jti, exp } => {
                FeedEvent::Token(TokenRevoked { cursor, jti, exp })
            }
            RevocationEvent::Family { fam, exp } => {
                FeedEvent::Family(FamilyRevoked { cursor, fam, exp })
            }
            RevocationEvent::Subject {
                sub,
                not_before,
                exp,
            } => FeedEvent::Subject(SubjectRevoked {
                cursor,
                sub,
                not_before,
                exp,
            }),
        }
    }
}

/// A page of the revocation feed.
#[derive(Debug, Object)]
pub struct RevocationFeed {
    /// Events after the cursor asked with, oldest first. Events whose tokens have all expired
    /// are left out, so a follower that starts from the beginning gets exactly what still
    /// matters.
    pub events: Vec<FeedEvent>,
    /// The cursor to ask with next (`after`): the last event's, or the one asked with when there
    /// was nothing new.
    pub next_cursor: String,
    /// Seconds to wait before asking again: 0 when the page was full and more events are
    /// waiting, otherwise a suggestion that a follower with a tighter revocation bound of its
    /// own may shorten.
    pub poll_after: u64,
}

pub struct RevocationsApi {
    pub authority: Arc<Authority>,
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl RevocationsApi {
    /// Follow the revocation feed
    ///
    /// The revocation events since a cursor, for resource servers that verify access tokens on
    /// their own: revoked access tokens (`jti`), revoked sessions (refresh-token families,
    /// named by the `sid` claim of their access tokens) and subjects whose earlier tokens are
    /// all dead. Events stay in the feed only while a token they concern can still be live.
    ///
    /// Start without `after`, then ask with each answer's `next_cursor`, waiting `poll_after`
    /// seconds between requests. The caller authenticates as a confidential client with HTTP
    /// Basic. A cursor the feed never handed out (say, after the issuer's store was replaced)
    /// is answered with `400 invalid_request`: the follower must then drop what it learned and
    /// resync from the start, without `after`.
    #[oai(
        path = "/oauth/revocations",
        method = "get",
        operation_id = "revocation_feed"
    )]
    async fn revocations(
        &self,
        req: &Request,
        _auth: super::oauth::ClientAuth,
        /// The `next_cursor` of the previous answer; leave it out to start from the beginning.
        after: Query<Option<String>>,
        /// At most this many events (1 to 1000, default 500).
        limit: Query<Option<u64>>,
    ) -> ApiResult<Json<RevocationFeed>> {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                AuthError::InvalidClient("authenticate with HTTP Basic client credentials".into())
            })?;
        let credentials = ClientCredentials::from_request(Some(authorization), None, None)?;
        let client = self.authority.authenticate_client(&credentials).await?;
        let answer = self
            .authority
            .revocation_feed(&client, after.0.as_deref(), limit.0, now())
            .await?;
        Ok(Json(RevocationFeed {
            events: answer
                .events
                .into_iter()
                .map(|(cursor, event)| FeedEvent::new(cursor, event))
                .collect(),
            next_cursor: answer.next_cursor,
            poll_after: answer.poll_after,
        }))
    }
}
