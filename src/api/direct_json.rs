//! A JSON answer serialized straight from its struct.
//!
//! poem-openapi's `Json` turns a value into a `serde_json::Value` tree and then writes the tree:
//! for the token answer, which carries one or two JWTs of a kilobyte, that is two copies of
//! every token and a map per answer on the path of every grant. `DirectJson` documents the same
//! schema (the type's `Object` derive) and writes with the type's `Serialize` derive; a test of
//! each type so answered checks that both give the same JSON.

use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Serialize;

/// `application/json`, serialized with `serde` rather than through a `serde_json::Value`.
#[derive(Debug)]
pub struct DirectJson<T>(pub T);

impl<T: Type> Payload for DirectJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + Serialize> IntoResponse for DirectJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .content_type(Self::CONTENT_TYPE)
                .body(body),
            // Only a map with non-string keys or a failing `Serialize` impl can fail, and the
            // answered types have neither.
            Err(error) => {
                tracing::error!(%error, "an answer could not be serialized");
                poem::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
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
        let response = DirectJson(TokenIssued::example()).into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }
}
