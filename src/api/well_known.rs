//! The documents resource servers and client libraries discover: the JWKS and the RFC 8414
//! authorization-server metadata.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::param::Header;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{Example, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiTags, examples};
use crate::credentials::CLIENT_KEY_ALGORITHMS;
use crate::keys::{KeyRing, KeySet};
use crate::oauth::Authority;

/// A JSON document serialised once and sent as is; `T` describes it in the OpenAPI document.
pub struct PreSerialized<T> {
    bytes: Bytes,
    schema: PhantomData<T>,
}

impl<T> PreSerialized<T> {
    pub fn new(bytes: Bytes) -> Self {
        Self {
            bytes,
            schema: PhantomData,
        }
    }
}

impl<T: Type + Send> Payload for PreSerialized<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for PreSerialized<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("application/json")
            .body(self.bytes)
    }
}

/// A public signing key (RFC 7517 §4, RFC 7518 §6): RSA (`RS256`), P-256 (`ES256`) or
/// Ed25519 (`EdDSA`, RFC 8037).
#[derive(Debug, Object)]
pub struct JsonWebKey {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    pub usage: String,
    /// The algorithm this key signs with: `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// The RFC 7638 thumbprint of the key, named by the `kid` header of tokens it signed.
    pub kid: String,
    /// The curve of an `EC` or `OKP` key: `P-256` or `Ed25519`.
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    /// RSA modulus, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
    /// The x coordinate of an `EC` key, or the public key of an `OKP` key, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    /// The y coordinate of an `EC` key, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
}

/// RFC 7517 §5 key set.
#[derive(Debug, Object)]
#[oai(example)]
pub struct JsonWebKeySet {
    pub keys: Vec<JsonWebKey>,
}

impl Example for JsonWebKeySet {
    fn example() -> Self {
        JsonWebKeySet {
            keys: vec![JsonWebKey {
                kty: "RSA".into(),
                usage: "sig".into(),
                alg: "RS256".into(),
                kid: examples::KID.into(),
                crv: None,
                n: Some(examples::MODULUS.into()),
                e: Some("AQAB".into()),
                x: None,
                y: None,
            }],
        }
    }
}

/// RFC 8414 authorization-server metadata.
#[derive(Debug, serde::Serialize, Object)]
#[oai(example)]
pub struct ServerMetadata {
    pub issuer: String,
    /// Sign-in in a browser: the authorization code grant with PKCE (OAuth 2.1 §4.1).
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// OpenID Connect RP-Initiated Logout: ends the browser's sign-in session.
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<String>,
    /// `code` only.
    pub response_types_supported: Vec<String>,
    /// `S256` only: PKCE is required, and `plain` refused.
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: redirects from the authorization endpoint carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// `openid`, for an ID token; the other scopes are each client's own.
    pub scopes_supported: Vec<String>,
    /// OpenID Connect: `public` (`sub` is the username).
    pub subject_types_supported: Vec<String>,
    /// OpenID Connect: the algorithms of the published keys, which sign ID tokens.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Includes `private_key_jwt` (RFC 7523 §2.2) for clients registered with keys.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms a `private_key_jwt` client assertion may be signed with; each key
    /// verifies with the one algorithm of its type.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Includes `none`: a public client revokes its own tokens with its `client_id` alone
    /// (RFC 7009).
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// As for the token endpoint.
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Methods of confidential clients only (a secret, or `private_key_jwt`): introspection is
    /// for confidential clients (RFC 7662 §2.1).
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// As for the token endpoint.
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Algorithms of the published keys.
    pub token_signing_alg_values_supported: Vec<String>,
    /// Latchkey extension: the revocation feed (`GET`, client authentication by HTTP Basic)
    /// that resource servers follow to refuse revoked access tokens without a call per request.
    pub revocation_feed_endpoint: String,
    /// Latchkey extension: the `aud` of access tokens for the admin API (`admin.audience`).
    /// Only tokens asked for with an admin scope carry it, and the admin API takes no other.
    pub admin_audience: String,
}

impl Example for ServerMetadata {
    fn example() -> Self {
        ServerMetadata::describe(examples::ISSUER, vec!["RS256".into()], "latchkey-admin")
    }
}

impl ServerMetadata {
    pub fn new(issuer: &str, keys: &KeySet, admin_audience: &str) -> ServerMetadata {
        let algorithms = keys
            .algorithms()
            .into_iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        ServerMetadata::describe(issuer, algorithms, admin_audience)
    }

    fn describe(issuer: &str, algorithms: Vec<String>, admin_audience: &str) -> ServerMetadata {
        let url = |path: &str| format!("{issuer}{path}");
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ServerMetadata {
            issuer: issuer.to_owned(),
            authorization_endpoint: url("/oauth/authorize"),
            token_endpoint: url("/oauth/token"),
            end_session_endpoint: url("/oauth/logout"),
            revocation_endpoint: url("/oauth/revoke"),
            introspection_endpoint: url("/oauth/introspect"),
            userinfo_endpoint: url("/userinfo"),
            jwks_uri: url("/.well-known/jwks.json"),
            grant_types_supported: strings(&[
                "password",
                "client_credentials",
                "refresh_token",
                "authorization_code",
            ]),
            response_types_supported: strings(&["code"]),
            code_challenge_methods_supported: strings(&["S256"]),
            authorization_response_iss_parameter_supported: true,
            scopes_supported: strings(&["openid"]),
            subject_types_supported: strings(&["public"]),
            id_token_signing_alg_values_supported: algorithms.clone(),
            token_endpoint_auth_methods_supported: strings(&[
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ]),
            token_endpoint_auth_signing_alg_values_supported: assertion_algorithms(),
            revocation_endpoint_auth_methods_supported: strings(&[
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ]),
            revocation_endpoint_auth_signing_alg_values_supported: assertion_algorithms(),
            introspection_endpoint_auth_methods_supported: strings(&[
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ]),
            introspection_endpoint_auth_signing_alg_values_supported: assertion_algorithms(),
            token_signing_alg_values_supported: algorithms,
            revocation_feed_endpoint: url("/oauth/revocations"),
            admin_audience: admin_audience.to_owned(),
        }
    }
}

/// The algorithms of client assertions: one per accepted key type.
fn assertion_algorithms() -> Vec<String> {
    CLIENT_KEY_ALGORITHMS
        .iter()
        .map(|a| a.as_str())
        .chain([crate::oauth::ED25519])
        .map(str::to_owned)
        .collect()
}

#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set. Cache it for `max-age` (`Cache-Control: public, max-age=N`, N from
    /// `keys.jwks_max_age`); revalidate with `If-None-Match` and the `ETag`.
    #[oai(status = 200)]
    Ok(
        PreSerialized<JsonWebKeySet>,
        /// `public, max-age=N`, N from `keys.jwks_max_age`.
        #[oai(header = "Cache-Control")]
        String,
        /// The key set's entity tag, to send back in `If-None-Match`.
        #[oai(header = "ETag")]
        String,
    ),
    /// The key set has not changed since the `ETag` in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// `public, max-age=N`, N from `keys.jwks_max_age`.
        #[oai(header = "Cache-Control")]
        String,
        /// The key set's entity tag, unchanged.
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The metadata document.
    #[oai(status = 200)]
    Ok(
        PreSerialized<ServerMetadata>,
        /// `public, max-age=N`, N from `keys.jwks_max_age`.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

pub struct WellKnownApi {
    pub keys: Arc<KeyRing>,
    pub issuer: String,
    pub max_age: u64,
    /// For the grants in use, which the metadata follows.
    pub authority: Arc<Authority>,
}

/// RFC 9110 §13.1.2: a list of entity tags, or `*`; weak comparison.
pub(super) fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

#[OpenApi(tag = "ApiTags::Discovery")]
impl WellKnownApi {
    /// Signing keys
    ///
    /// Every public key that may have signed a live token (RFC 7517). Cache it for the
    /// `max-age` given; refetch it when a token names a `kid` you do not have.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(
        &self,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> JwksResponse {
        let cache_control = format!("public, max-age={}", self.max_age);
        let keys = self.keys.current();
        let etag = keys.etag().to_owned();
        if if_none_match
            .0
            .as_deref()
            .is_some_and(|v| matches_etag(v, &etag))
        {
            return JwksResponse::NotModified(cache_control, etag);
        }
        JwksResponse::Ok(PreSerialized::new(keys.jwks()), cache_control, etag)
    }

    /// Authorization-server metadata
    ///
    /// RFC 8414: the issuer, its endpoints, grants, client authentication methods and
    /// signing algorithms, and the audience of tokens for the admin API (`admin_audience`).
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "server_metadata"
    )]
    async fn metadata(&self) -> MetadataResponse {
        self.metadata_document().await
    }

    /// Authorization-server metadata (OpenID discovery path)
    ///
    /// The same document as `/.well-known/oauth-authorization-server`, for libraries that
    /// discover through the OpenID Connect path.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openid_configuration"
    )]
    async fn openid_configuration(&self) -> MetadataResponse {
        self.metadata_document().await
    }
}

impl WellKnownApi {
    async fn metadata_document(&self) -> MetadataResponse {
        // Small and cheap to build; built per request so that it follows key rotation and
        // the grants registered clients use.
        let mut metadata = ServerMetadata::new(
            &self.issuer,
            &self.keys.current(),
            self.authority.admin_audience(),
        );
        metadata.grant_types_supported = (self.authority.advertised_grants().await)
            .into_iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        let bytes = serde_json::to_vec(&metadata).unwrap_or_default();
        MetadataResponse::Ok(
            PreSerialized::new(Bytes::from(bytes)),
            format!("public, max-age={}", self.max_age),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::matches_etag;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        assert!(matches_etag("\"abc\"", "\"abc\""));
        assert!(matches_etag("W/\"abc\"", "\"abc\""));
        assert!(matches_etag("\"x\", \"abc\"", "\"abc\""));
        assert!(matches_etag("*", "\"abc\""));
        assert!(!matches_etag("\"abd\"", "\"abc\""));
    }
}
