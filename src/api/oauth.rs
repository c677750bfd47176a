//! `/oauth/token`, `/oauth/revoke` and `/oauth/introspect`.

use std::sync::Arc;

use poem::Request;
use poem::http::header;
use poem_openapi::auth::Basic;
use poem_openapi::payload::{Form, Json};
use poem_openapi::types::Example;
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi, SecurityScheme};
use serde::{Deserialize, Serialize};

use super::direct_json::DirectJson;
use super::errors::{
    Answer, ApiError, BODY_TOO_LARGE, ErrorDoc, ErrorHeader, INTERNAL, INVALID_CLIENT, THROTTLED,
    UNAVAILABLE, error_list, unavailable_after_change,
};
use super::optional_body::{OptionalTokenBody, OptionalTokenParamBody};
use super::origin::origin;
use super::{ApiTags, examples};
use crate::domain::{Secret, now, now_ms};
use crate::oauth::{
    Authority, ClientCredentials, ExchangeParams, Introspection, TokenHint, TokenRequest,
};

/// Token request parameters (RFC 6749 §4.3, §4.4, §6; RFC 8707 `resource`; RFC 8693 §2.1 token
/// exchange).
#[derive(Debug, Default, Deserialize, Object)]
#[oai(example)]
pub struct TokenParams {
    /// `password`, `client_credentials`, `refresh_token`, `authorization_code` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693, for confidential clients
    /// registered with the grant `token-exchange`).
    pub grant_type: Option<String>,
    /// For `authorization_code`: the code from the redirect.
    pub code: Option<String>,
    /// For `authorization_code`: the redirect URI the code was issued for, exactly.
    pub redirect_uri: Option<String>,
    /// For `authorization_code`: the PKCE verifier (RFC 7636), 43 to 128 characters of
    /// `A-Z a-z 0-9 - . _ ~`.
    pub code_verifier: Option<String>,
    /// For `password`.
    pub username: Option<String>,
    /// For `password`.
    pub password: Option<String>,
    /// For `refresh_token`.
    pub refresh_token: Option<String>,
    /// Space-separated scopes; may narrow, never widen, what the client or token allows.
    /// Without it, the client's scopes except the admin scopes (`admin`), which are granted only
    /// when asked for, to users with role `admin`, and alone: such a token is for the admin API
    /// and carries its audience (`admin_audience` in the metadata).
    pub scope: Option<String>,
    /// The audience (`aud`) wanted for the access token. The admin audience goes with an admin
    /// scope only, and an admin scope with no other audience. For token exchange, one of the
    /// exchanging client's audiences; without it, the default audience.
    pub audience: Option<String>,
    /// RFC 8707 resource indicator; the same as `audience`.
    pub resource: Option<String>,
    /// For token exchange (required): an access token of this issuer, live (not expired, not
    /// revoked) and not one for the admin API. The issued token keeps its `sub`, `roles` and
    /// session (`sid`), and expires no later than it.
    pub subject_token: Option<String>,
    /// For token exchange (required): always `urn:ietf:params:oauth:token-type:access_token`.
    pub subject_token_type: Option<String>,
    /// For token exchange (optional): the exchanging client's own access token
    /// (`client_credentials`) of this issuer, as proof of the actor (`act.sub`); another
    /// client's token is refused.
    pub actor_token: Option<String>,
    /// With `actor_token`: always `urn:ietf:params:oauth:token-type:access_token`.
    pub actor_token_type: Option<String>,
    /// For token exchange (optional): `urn:ietf:params:oauth:token-type:access_token`, the only
    /// type issued.
    pub requested_token_type: Option<String>,
    /// Client authentication in the body, when HTTP Basic is not used.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Client authentication by assertion (`private_key_jwt`, RFC 7523 §2.2): always
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, together with
    /// `client_assertion`, and with neither HTTP Basic nor `client_secret`.
    pub client_assertion_type: Option<String>,
    /// A JWT signed with one of the client's registered keys (RS256, ES256 or EdDSA, the
    /// algorithm of the key its `kid` names): `iss` and `sub` the client id, `aud` the issuer,
    /// the token endpoint's URL or this endpoint's URL, `exp` at most 5 minutes ahead, and a `jti` never used before.
    /// At most 8 KiB.
    pub client_assertion: Option<String>,
}

impl Example for TokenParams {
    fn example() -> Self {
        TokenParams {
            grant_type: Some("password".into()),
            username: Some("alice".into()),
            password: Some("correct horse battery staple".into()),
            scope: Some("read write".into()),
            client_id: Some("web".into()),
            ..TokenParams::default()
        }
    }
}

/// The token request, as a form (RFC 6749) or as JSON.
// JSON is listed first: generated clients that set one body per content type, in document
// order, then send the form (the RFC's encoding) with a matching Content-Type.
#[derive(Debug, ApiRequest)]
pub enum TokenBody {
    Json(Json<TokenParams>),
    Form(Form<TokenParams>),
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct TokenIssued {
    /// An RS256 JWT access token (RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token has left when answered: its lifetime, less the time since it
    /// was dated (when the credentials were read; for a refresh repeated within the grace
    /// window, when the first answer was issued).
    pub expires_in: u64,
    /// A rotating refresh token, for grants that issue one (never for token exchange).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// An OpenID Connect ID token (`authorization_code` with scope `openid`): RS256, `aud` the
    /// client id, with `nonce`, `auth_time` and `sid`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// For token exchange (RFC 8693 §2.2.1): `urn:ietf:params:oauth:token-type:access_token`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

impl Example for TokenIssued {
    fn example() -> Self {
        TokenIssued {
            access_token: examples::ACCESS_TOKEN.into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: Some(examples::REFRESH_TOKEN.into()),
            scope: "read write".into(),
            id_token: None,
            issued_token_type: None,
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum TokenResponse {
    /// Tokens issued. Never cached (`Cache-Control: no-store`, `Pragma: no-cache`).
    #[oai(status = 200)]
    Ok(
        DirectJson<TokenIssued>,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
        /// `no-cache`.
        #[oai(header = "Pragma")]
        String,
    ),
}

const TOKEN_REFUSED: ErrorDoc = ErrorDoc::new(
    400,
    "The request is malformed or refused (RFC 6749 §5.2): `invalid_request` (a missing \
     parameter, two client authentication methods at once, or a body that cannot be read, \
     such as JSON with a member given twice), \
     `invalid_grant` (a wrong username or password, a refresh token that is not live: \
     expired, revoked, already used, or another client's, or one of a session for the admin \
     API whose admin scope was taken away), `unauthorized_client` (the client may not use this \
     grant), `unsupported_grant_type`, `invalid_scope` (wider than the \
     client or the refresh token allows, an admin scope for a non-admin or a client, or an \
     admin scope with other scopes) or `invalid_target` (an audience the client may not ask \
     for, another audience with an admin scope, the admin audience without one, or on a \
     refresh another audience than the session's). Token exchange (RFC 8693 §2.2.2) answers \
     `invalid_request` for a missing, unsupported or invalid `subject_token` or `actor_token` \
     (expired, revoked, not an access token of this issuer, one for the admin API, an actor \
     token that is not a client's own, or a chain of actors too long), `invalid_scope` for a \
     scope beyond what both the subject token and the client hold, and `invalid_target` for \
     an audience the exchanging client may not ask for.",
    "invalid_grant",
    "invalid username or password",
);

error_list!(
    /// What `POST /oauth/token` can refuse with.
    TokenErrors: TOKEN_REFUSED,
    INVALID_CLIENT,
    BODY_TOO_LARGE,
    THROTTLED,
    INTERNAL,
    unavailable_after_change!(
        hashing,
        "for `refresh_token`, the presented token may have been rotated already: a retry within \
         `tokens.refresh_grace` (5 s by default) gets the same successor, a later one counts as \
         reuse and revokes the session. For the other grants, a retry issues new tokens; those \
         the failed answer would have carried are never delivered and expire unused."
    ),
);

/// A token to revoke or introspect (RFC 7009 §2.1, RFC 7662 §2.1).
#[derive(Debug, Default, Deserialize, Object)]
#[oai(example)]
pub struct TokenParam {
    /// The token (required).
    pub token: Option<String>,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// Client authentication in the body, when HTTP Basic is not used.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Client authentication by assertion (`private_key_jwt`, RFC 7523 §2.2): always
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, together with
    /// `client_assertion`, and with neither HTTP Basic nor `client_secret`.
    pub client_assertion_type: Option<String>,
    /// A JWT signed with one of the client's registered keys (RS256, ES256 or EdDSA, the
    /// algorithm of the key its `kid` names): `iss` and `sub` the client id, `aud` the issuer,
    /// the token endpoint's URL or this endpoint's URL, `exp` at most 5 minutes ahead, and a `jti` never used before.
    /// At most 8 KiB.
    pub client_assertion: Option<String>,
}

impl Example for TokenParam {
    fn example() -> Self {
        TokenParam {
            token: Some(examples::REFRESH_TOKEN.into()),
            token_type_hint: Some("refresh_token".into()),
            client_id: Some("web".into()),
            client_secret: None,
            client_assertion_type: None,
            client_assertion: None,
        }
    }
}

/// The token, as a form (RFC 7009, 7662) or as JSON (listed first, as for `TokenBody`).
#[derive(Debug, ApiRequest)]
pub enum TokenParamBody {
    Json(Json<TokenParam>),
    Form(Form<TokenParam>),
}

#[derive(Debug, ApiResponse)]
pub enum RevokeResponse {
    /// The token is revoked, or was not valid to begin with. No body.
    #[oai(status = 200)]
    Ok,
}

error_list!(
    /// What `POST /oauth/revoke` can refuse with.
    RevokeErrors: ErrorDoc::new(
        400,
        "`invalid_request` (no `token`, two client authentication methods at once, or a body \
         that cannot be read) or `unauthorized_client` (the token was issued to another client).",
        "unauthorized_client",
        "the token was issued to another client",
    ),
    INVALID_CLIENT,
    BODY_TOO_LARGE,
    THROTTLED,
    INTERNAL,
    unavailable_after_change!("the token may be revoked already; a retry answers 200 either way."),
);

/// RFC 7662 §2.2 introspection answer. An inactive token is answered with `active` alone.
#[derive(Debug, Object)]
#[oai(example)]
pub struct IntrospectionBody {
    /// Whether the token is live: valid, unexpired, not revoked, and of an enabled user.
    pub active: bool,
    /// `access_token` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub nbf: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// For a token obtained by token exchange (RFC 8693 §4.1): the actor acting for `sub`,
    /// `{"sub": ...}`, with the actor it acted for nested as `act`, and so on.
    #[oai(skip_serializing_if_is_none)]
    pub act: Option<serde_json::Value>,
}

impl Example for IntrospectionBody {
    fn example() -> Self {
        IntrospectionBody {
            active: true,
            token_type: Some("access_token".into()),
            scope: Some("read write".into()),
            client_id: Some("web".into()),
            username: Some("alice".into()),
            sub: Some("alice".into()),
            aud: Some("api".into()),
            iss: Some(examples::ISSUER.into()),
            exp: Some(examples::ISSUED_AT + 900),
            iat: Some(examples::ISSUED_AT),
            nbf: Some(examples::ISSUED_AT),
            jti: Some(examples::JTI.into()),
            act: None,
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum IntrospectResponse {
    /// The token's state: `active` alone for a token that is not live, its claims as well for
    /// one that is.
    #[oai(status = 200)]
    Ok(Json<IntrospectionBody>),
}

error_list!(
    /// What `POST /oauth/introspect` can refuse with.
    IntrospectErrors: ErrorDoc::new(
        400,
        "`invalid_request`: no `token`, two client authentication methods at once, or a body \
         that cannot be read.",
        "invalid_request",
        "token is required",
    ),
    ErrorDoc::new(
        401,
        "Client authentication failed (`invalid_client`): introspection is for confidential \
         clients (RFC 7662 §2.1), so a request without a client secret or assertion (a public \
         client's bare `client_id`, or none at all) is refused, as are an unknown client, a \
         wrong secret, an assertion that does not verify or was used before, and malformed \
         Basic credentials.",
        "invalid_client",
        "introspection is for confidential clients: authenticate with the client's id and \
         secret (HTTP Basic, or client_id and client_secret in the body), or with a \
         client_assertion",
    )
    .with(ErrorHeader::BasicChallenge),
    BODY_TOO_LARGE,
    THROTTLED,
    INTERNAL,
    UNAVAILABLE,
);

impl From<Introspection> for IntrospectionBody {
    fn from(i: Introspection) -> Self {
        IntrospectionBody {
            active: i.active,
            token_type: i.token_type.map(str::to_owned),
            scope: i.scope,
            client_id: i.client_id,
            username: i.username,
            sub: i.sub,
            aud: i.aud,
            iss: i.iss,
            exp: i.exp,
            iat: i.iat,
            nbf: i.nbf,
            jti: i.jti,
            act: i.act.and_then(|act| serde_json::to_value(act).ok()),
        }
    }
}

/// Client authentication by HTTP Basic (RFC 6749 §2.3.1): the client id as the user name and
/// the client secret as the password, both form-urlencoded.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
#[allow(dead_code)] // read from the request by the handlers, see `ClientAuth`
pub struct ClientBasic(Basic);

/// How a client authenticates: HTTP Basic, or `client_id` (and `client_secret`) in the body. Only
/// documents the choice; the handlers read the credentials themselves, so that every failure is
/// an RFC 6749 `invalid_client` answer.
#[derive(SecurityScheme)]
#[allow(dead_code)] // only documents; see above
pub enum ClientAuth {
    Basic(ClientBasic),
    #[oai(fallback)]
    InBody,
}

pub struct OAuthApi {
    pub authority: Arc<Authority>,
}

fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn required_token(token: Option<String>) -> Result<String, ApiError> {
    token.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::from(crate::error::ServiceError::InvalidRequest(
            "token is required".into(),
        ))
    })
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Issue tokens
    ///
    /// Exchanges credentials for an access token and, for the `password` and `refresh_token`
    /// grants, a rotating refresh token. Token exchange (RFC 8693) trades a live access token
    /// (`subject_token`) for a narrower one that names the exchanging client as the actor
    /// (`act`), nested for chains; it issues no refresh token. Clients authenticate with HTTP Basic or with
    /// `client_id` and `client_secret` in the body, or clients registered with keys with a
    /// signed `client_assertion` (`private_key_jwt`); public clients send only `client_id`.
    /// A refresh token presented again within the grace window returns the same successor;
    /// after it, the whole family is revoked.
    #[oai(path = "/oauth/token", method = "post", operation_id = "token")]
    async fn token(
        &self,
        req: &Request,
        _auth: ClientAuth,
        body: OptionalTokenBody,
    ) -> Answer<TokenResponse, TokenErrors> {
        let params = match body.0 {
            Some(TokenBody::Form(Form(p)) | TokenBody::Json(Json(p))) => p,
            None => TokenParams::default(),
        };
        let client = ClientCredentials::from_request(
            authorization(req),
            params.client_id,
            params.client_secret,
        )?
        .with_assertion(
            params.client_assertion_type,
            params.client_assertion,
            "/oauth/token",
        )?
        .with_origin(origin(req));
        let request = TokenRequest {
            grant_type: params.grant_type,
            username: params.username,
            password: params.password.map(Secret::new),
            refresh_token: params.refresh_token,
            scope: params.scope,
            audience: params.audience,
            resource: params.resource,
            code: params.code,
            redirect_uri: params.redirect_uri,
            code_verifier: params.code_verifier,
            exchange: ExchangeParams {
                subject_token: params.subject_token,
                subject_token_type: params.subject_token_type,
                actor_token: params.actor_token,
                actor_token_type: params.actor_token_type,
                requested_token_type: params.requested_token_type,
            },
            client,
        };
        let issued = self.authority.exchange(request, now_ms()).await?;
        Ok(TokenResponse::Ok(
            DirectJson::new(&TokenIssued {
                access_token: issued.access_token,
                token_type: "Bearer".into(),
                expires_in: issued.expires_in,
                refresh_token: issued.refresh_token,
                scope: issued.scope.to_string(),
                id_token: issued.id_token,
                issued_token_type: issued.issued_token_type.map(str::to_owned),
            })?,
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// Revoke a token
    ///
    /// RFC 7009. A refresh token revokes its whole family; an access token is put on the
    /// revocation list until it expires. Unknown or expired tokens are answered with 200 too.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "revoke")]
    async fn revoke(
        &self,
        req: &Request,
        _auth: ClientAuth,
        body: OptionalTokenParamBody,
    ) -> Answer<RevokeResponse, RevokeErrors> {
        let params = match body.0 {
            Some(TokenParamBody::Form(Form(p)) | TokenParamBody::Json(Json(p))) => p,
            None => TokenParam::default(),
        };
        let credentials = ClientCredentials::from_request(
            authorization(req),
            params.client_id,
            params.client_secret,
        )?
        .with_assertion(
            params.client_assertion_type,
            params.client_assertion,
            "/oauth/revoke",
        )?
        .with_origin(origin(req));
        let client = self.authority.authenticate_client(&credentials).await?;
        let token = required_token(params.token)?;
        let hint = TokenHint::parse(params.token_type_hint.as_deref());
        self.authority
            .revoke(&client, &token, hint, &credentials.origin, now())
            .await?;
        Ok(RevokeResponse::Ok)
    }

    /// Introspect a token
    ///
    /// RFC 7662. Only for confidential clients (RFC 7662 §2.1): the caller authenticates with
    /// its client id and secret, by HTTP Basic (`client_secret_basic`) or with `client_id` and
    /// `client_secret` in the body (`client_secret_post`), or with a signed
    /// `client_assertion` (`private_key_jwt`), as the metadata's
    /// `introspection_endpoint_auth_methods_supported` lists. A public client, or a request
    /// without a secret, is refused with `401 invalid_client`. Revoked, expired (from the exact
    /// `exp` on) and foreign tokens are reported as `{"active": false}`.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "introspect"
    )]
    async fn introspect(
        &self,
        req: &Request,
        _auth: ClientAuth,
        body: OptionalTokenParamBody,
    ) -> Answer<IntrospectResponse, IntrospectErrors> {
        let params = match body.0 {
            Some(TokenParamBody::Form(Form(p)) | TokenParamBody::Json(Json(p))) => p,
            None => TokenParam::default(),
        };
        let credentials = ClientCredentials::from_request(
            authorization(req),
            params.client_id,
            params.client_secret,
        )?
        .with_assertion(
            params.client_assertion_type,
            params.client_assertion,
            "/oauth/introspect",
        )?
        .with_origin(origin(req));
        self.authority
            .authenticate_confidential_client(&credentials, "introspection")
            .await?;
        let token = required_token(params.token)?;
        let hint = TokenHint::parse(params.token_type_hint.as_deref());
        let answer = self.authority.introspect(&token, hint, now_ms()).await?;
        Ok(IntrospectResponse::Ok(Json(answer.into())))
    }
}
