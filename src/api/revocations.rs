//! `GET /oauth/revocations`: the revocation feed that resource servers follow.

use std::sync::Arc;

use latchkey_feed::{
    ClientRevoked, FamilyRevoked, FeedEvent, RevocationFeed, SubjectRevoked, TokenRevoked,
};
use poem::http::header;
use poem::{IntoResponse, Request, RequestBody};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, OpenApi};

use super::ApiTags;
use super::errors::{
    Answer, ApiError, ErrorDoc, ErrorHeader, INTERNAL, THROTTLED, UNAVAILABLE, error_list,
};
use super::oauth::ClientBasic;
use crate::domain::now;
use crate::error::ServiceError;
use crate::oauth::{Authority, ClientCredentials};
use crate::store::RevocationEvent;

/// The feed's client authentication: HTTP Basic, required, so the document names the
/// `ClientBasic` scheme alone. Read here rather than by poem-openapi's `Basic`, so that a
/// missing or malformed header is RFC 6749's `invalid_client` with a Basic challenge.
pub struct FeedClient(ClientCredentials);

impl<'a> ApiExtractor<'a> for FeedClient {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <ClientBasic as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <ClientBasic as ApiExtractor>::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ServiceError::InvalidClient(
                    "authenticate with HTTP Basic client credentials".into(),
                )
            });
        authorization
            .and_then(|value| ClientCredentials::from_request(Some(value), None, None))
            .map(FeedClient)
            .map_err(|error| poem::Error::from_response(ApiError::from(error).into_response()))
    }
}

error_list!(
    /// What `GET /oauth/revocations` can refuse with.
    FeedErrors: ErrorDoc::new(
        400,
        "`invalid_request`: a cursor this feed never handed out (drop what you learned and \
         resync from the start, without `after`), or a `limit` that is 0 or not a number.",
        "invalid_request",
        "unknown cursor: this feed never handed it out (the store may have been replaced); \
         resync by asking again without `after`",
    ),
    ErrorDoc::new(
        401,
        "`invalid_client`: no HTTP Basic credentials, wrong or malformed ones, or a public \
         client's.",
        "invalid_client",
        "authenticate with HTTP Basic client credentials",
    )
    .with(ErrorHeader::BasicChallenge),
    THROTTLED,
    INTERNAL,
    UNAVAILABLE,
);

/// A feed event as the store keeps it, with its position.
fn feed_event(cursor: String, event: RevocationEvent) -> FeedEvent {
    match event {
        RevocationEvent::Token { jti, exp } => FeedEvent::Token(TokenRevoked { cursor, jti, exp }),
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
        RevocationEvent::Client {
            client_id,
            not_before,
            exp,
        } => FeedEvent::Client(ClientRevoked {
            cursor,
            client_id,
            not_before,
            exp,
        }),
    }
}

#[derive(Debug, ApiResponse)]
pub enum FeedResponse {
    /// The events after the cursor, the cursor to ask with next, and when to ask.
    #[oai(status = 200)]
    Ok(Json<RevocationFeed>),
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
    /// named by the `sid` claim of their access tokens), users (`sub`) whose earlier tokens are
    /// all dead, and clients (`client_id`) through which every earlier token is dead. Events
    /// stay in the feed only while a token they concern can still be live.
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
        auth: FeedClient,
        /// The `next_cursor` of the previous answer; leave it out to start from the beginning.
        after: Query<Option<String>>,
        /// At most this many events (1 to 1000, default 500).
        limit: Query<Option<u64>>,
    ) -> Answer<FeedResponse, FeedErrors> {
        let client = self
            .authority
            .authenticate_confidential_client(&auth.0, "the revocation feed")
            .await?;
        let answer = self
            .authority
            .revocation_feed(&client, after.0.as_deref(), limit.0, now())
            .await?;
        Ok(FeedResponse::Ok(Json(RevocationFeed {
            events: answer
                .events
                .into_iter()
                .map(|(cursor, event)| feed_event(cursor, event))
                .collect(),
            next_cursor: answer.next_cursor,
            poll_after: answer.poll_after,
        })))
    }
}
