//! The wire format of Latchkey's revocation feed (`GET /oauth/revocations`), defined once: the
//! issuer writes it and, with the feature `openapi`, documents it in its OpenAPI document;
//! resource servers (latchkey-verify) read it. An event kind a reader does not know yet reads
//! as [`FeedEvent::Unknown`], so that an issuer can add kinds without breaking older readers.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
mod openapi;
#[cfg(feature = "openapi")]
pub use openapi::examples;

/// One access token is revoked: refuse the token whose `jti` this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(example))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(example))]
pub struct FamilyRevoked {
    /// This event's position in the feed.
    pub cursor: String,
    /// The family id, as in the `sid` claim of the session's access tokens.
    pub fam: String,
    /// Unix seconds after which no access token of the session can be live (the last one
    /// issued in it has expired, with five minutes to spare for clock leeway); the event leaves
    /// the feed then. Its refresh tokens never reach a resource server.
    pub exp: i64,
}

/// Every token of a user issued before a point in time is revoked (a password change or reset,
/// a disabled account): refuse tokens with this `sub` whose `iat` is earlier than `not_before`.
/// Usernames and client ids never coincide, so a user's `sub` is never a client's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(example))]
pub struct SubjectRevoked {
    /// This event's position in the feed.
    pub cursor: String,
    /// The user (`sub` claim of users' tokens).
    pub sub: String,
    /// Unix seconds: tokens issued (`iat`) before this are dead; later ones are not affected.
    pub not_before: i64,
    /// Unix seconds after which no affected token can be live; the event leaves the feed then.
    pub exp: i64,
}

/// Every token issued through a client before a point in time is revoked (the client was
/// removed or its secret rotated): refuse tokens issued through this client whose `iat` is
/// earlier than `not_before`, users' tokens as well as the client's own. A token is issued
/// through a client when the client is its `client_id`, any `sub` of its `act` chain, or its
/// `subject_client_id` (the client a token-exchange chain began with).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(example))]
pub struct ClientRevoked {
    /// This event's position in the feed.
    pub cursor: String,
    /// The client (`client_id`, an `act` chain's `sub`, or `subject_client_id`).
    pub client_id: String,
    /// Unix seconds: tokens issued (`iat`) before this are dead; later ones are not affected.
    pub not_before: i64,
    /// Unix seconds after which no affected token can be live; the event leaves the feed then.
    pub exp: i64,
}

/// A revocation event; `type` says which kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    Token(TokenRevoked),
    Family(FamilyRevoked),
    Subject(SubjectRevoked),
    Client(ClientRevoked),
    /// A kind this reader does not know; skip it. The issuer never writes it.
    #[serde(other)]
    Unknown,
}

impl FeedEvent {
    /// The event's position in the feed; `None` for a kind this reader does not know.
    pub fn cursor(&self) -> Option<&str> {
        match self {
            FeedEvent::Token(e) => Some(&e.cursor),
            FeedEvent::Family(e) => Some(&e.cursor),
            FeedEvent::Subject(e) => Some(&e.cursor),
            FeedEvent::Client(e) => Some(&e.cursor),
            FeedEvent::Unknown => None,
        }
    }
}

/// A page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(example))]
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_back_as_written_with_its_type_tag() {
        let events = [
            FeedEvent::Token(TokenRevoked {
                cursor: "1".into(),
                jti: "j".into(),
                exp: 5,
            }),
            FeedEvent::Family(FamilyRevoked {
                cursor: "2".into(),
                fam: "f".into(),
                exp: 6,
            }),
            FeedEvent::Subject(SubjectRevoked {
                cursor: "3".into(),
                sub: "alice".into(),
                not_before: 4,
                exp: 7,
            }),
            FeedEvent::Client(ClientRevoked {
                cursor: "4".into(),
                client_id: "web".into(),
                not_before: 4,
                exp: 8,
            }),
        ];
        for (event, tag) in events.iter().zip(["token", "family", "subject", "client"]) {
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(json["type"], tag, "{json}");
            assert_eq!(serde_json::from_value::<FeedEvent>(json).unwrap(), *event);
        }
    }

    #[test]
    fn a_kind_this_reader_does_not_know_reads_as_unknown() {
        let page: RevocationFeed = serde_json::from_str(
            r#"{"events":[{"type":"session_group","cursor":"1","group":"x"},
                {"type":"token","cursor":"2","jti":"j","exp":5}],
                "next_cursor":"2","poll_after":2}"#,
        )
        .unwrap();
        assert_eq!(page.events[0], FeedEvent::Unknown);
        assert_eq!(page.events[0].cursor(), None);
        assert_eq!(page.events[1].cursor(), Some("2"));
    }
}
