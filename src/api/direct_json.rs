//! A JSON answer serialized straight from its struct.
//!
//! poem-openapi's `Json` turns a value into a `serde_json::Value` tree and then writes the tree:
//! for the token answer, which carries one or two JWTs of a kilobyte, that is two copies of
//! every token and a map per answer on the path of every grant. `DirectJson` documents the same
//! schema (the type's `Object` derive) and writes with the type's `Serialize` derive; debug
//! builds check every answer against what the schema's own writer gives.

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use serde::Serialize;

use crate::error::ServiceError;

/// `application/json` of a `T`, serialized with `serde` rather than through a
/// `serde_json::Value`. Serialized when made, so that a failure is an error of the handler's
/// (the response derive answers 200 for whatever the payload turns into).
#[derive(Debug)]
pub struct DirectJson<T> {
    body: Vec<u8>,
    kind: PhantomData<T>,
}

impl<T: Serialize + ToJSON> DirectJson<T> {
    pub fn new(value: &T) -> Result<DirectJson<T>, ServiceError> {
        let body = serde_json::to_vec(value).map_err(|e| ServiceError::Internal(Box::new(e)))?;
        // Every debug build (all the tests) holds each answer to what the schema writes.
        debug_assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).ok(),
            value.to_json(),
            "the serde and OpenAPI views of an answer differ"
        );
        Ok(DirectJson {
            body,
            kind: PhantomData,
        })
    }
}

impl<T: Type> Payload for DirectJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> IntoResponse for DirectJson<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.body)
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::{Example, ToJSON};

    use super::super::oauth::TokenIssued;
    use super::*;

    /// Fails unless `value` serializes to the JSON its schema's own writer gives.
    fn assert_same_json<T: Serialize + ToJSON>(value: &T) {
        let direct = serde_json::to_value(value).unwrap();
        assert_eq!(Some(direct), value.to_json());
    }

    #[test]
    fn a_token_answer_is_the_json_its_schema_describes_with_or_without_its_optional_members() {
        let example = TokenIssued::example();
        assert!(example.refresh_token.is_some() && example.id_token.is_none());
        assert_same_json(&example);
        assert_same_json(&TokenIssued {
            refresh_token: None,
            id_token: Some("eyJ.id.token".into()),
            issued_token_type: Some("urn:ietf:params:oauth:token-type:access_token".into()),
            scope: "quote\" \\ and\nnewline ✓".into(),
            ..example
        });
    }

    #[test]
    fn a_direct_answer_says_it_is_json() {
        let response = DirectJson::new(&TokenIssued::example())
            .unwrap()
            .into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }
}
