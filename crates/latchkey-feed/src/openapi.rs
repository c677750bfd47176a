//! The feed's types in the issuer's OpenAPI document. The events are one serde enum, so that a
//! reader can skip kinds it does not know; the document describes them as the `oneOf` that a
//! poem-openapi union with a `type` discriminator makes, and the JSON is serde's.

use std::borrow::Cow;

use poem_openapi::Union;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use crate::{
    ClientRevoked, FamilyRevoked, FeedEvent, RevocationFeed, SubjectRevoked, TokenRevoked,
};

/// Values the document's examples share with the issuer's other examples.
pub mod examples {
    /// The example access token's `jti`.
    pub const JTI: &str = "4Eu6KV0gg6uswFUhUbmCiQ";
    /// The example session (refresh-token family): `fam`, and `sid` in the access token.
    pub const FAMILY: &str = "zqOYd9695eWawCjEOrTyew";
    /// Unix seconds the example tokens were issued at.
    pub const ISSUED_AT: i64 = 1_764_000_000;
}

/// A revocation event; `type` says which kind.
#[derive(Union)]
#[oai(rename = "FeedEvent", discriminator_name = "type", one_of)]
#[allow(dead_code, reason = "only its schema is used")]
enum Documented {
    #[oai(mapping = "token")]
    Token(TokenRevoked),
    #[oai(mapping = "family")]
    Family(FamilyRevoked),
    #[oai(mapping = "subject")]
    Subject(SubjectRevoked),
    #[oai(mapping = "client")]
    Client(ClientRevoked),
}

impl Type for FeedEvent {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        Documented::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        Documented::schema_ref()
    }

    fn register(registry: &mut Registry) {
        Documented::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for FeedEvent {
    fn to_json(&self) -> Option<Value> {
        serde_json::to_value(self).ok()
    }
}

impl ParseFromJSON for FeedEvent {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        serde_json::from_value(value.unwrap_or_default()).map_err(ParseError::custom)
    }
}

impl Example for TokenRevoked {
    fn example() -> Self {
        TokenRevoked {
            cursor: "41".into(),
            jti: examples::JTI.into(),
            exp: examples::ISSUED_AT + 900,
        }
    }
}

impl Example for FamilyRevoked {
    fn example() -> Self {
        FamilyRevoked {
            cursor: "42".into(),
            fam: examples::FAMILY.into(),
            exp: examples::ISSUED_AT + 2_592_000,
        }
    }
}

impl Example for SubjectRevoked {
    fn example() -> Self {
        SubjectRevoked {
            cursor: "43".into(),
            sub: "bob".into(),
            not_before: examples::ISSUED_AT + 360,
            exp: examples::ISSUED_AT + 360 + 2_592_000,
        }
    }
}

impl Example for ClientRevoked {
    fn example() -> Self {
        ClientRevoked {
            cursor: "44".into(),
            client_id: "reports".into(),
            not_before: examples::ISSUED_AT + 420,
            exp: examples::ISSUED_AT + 420 + 2_592_000,
        }
    }
}

impl Example for RevocationFeed {
    fn example() -> Self {
        RevocationFeed {
            events: vec![
                FeedEvent::Token(TokenRevoked::example()),
                FeedEvent::Family(FamilyRevoked::example()),
                FeedEvent::Subject(SubjectRevoked::example()),
                FeedEvent::Client(ClientRevoked::example()),
            ],
            next_cursor: "44".into(),
            poll_after: 2,
        }
    }
}
