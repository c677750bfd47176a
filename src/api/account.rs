//! The user's own endpoints: registration, profile and logout.

use std::collections::BTreeSet;
use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::{Form, Json};
use poem_openapi::types::Example;
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi, SecurityScheme};
use serde::Deserialize;

use super::errors::{
    Answer, BODY_TOO_LARGE, ErrorDoc, INTERNAL, INVALID_TOKEN, THROTTLED, UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE, error_list, unavailable_after_change,
};
use super::optional_body::{OptionalBody, OptionalRegistrationBody};
use super::origin::origin;
use super::{ApiTags, examples};
use crate::accounts::{self, Change};
use crate::audit::Actor;
use crate::domain::{Secret, now};
use crate::error::ServiceError;
use crate::oauth::Authority;
use crate::store::UserRecord;

/// An access token issued by this service, sent as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerToken(pub Bearer);

/// A new account.
#[derive(Debug, Default, Deserialize, Object)]
#[oai(example)]
pub struct Registration {
    /// 1 to 64 letters, digits and `. _ - @ +` (required).
    pub username: Option<String>,
    /// At least 8 characters (required).
    pub password: Option<String>,
}

impl Example for Registration {
    fn example() -> Self {
        Registration {
            username: Some("alice".into()),
            password: Some("correct horse battery staple".into()),
        }
    }
}

#[derive(Debug, ApiRequest)]
pub enum RegistrationBody {
    Json(Json<Registration>),
    Form(Form<Registration>),
}

/// A user as the user may see it; never the password hash.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UserProfile {
    /// The `sub` of the user's tokens.
    pub sub: String,
    pub username: String,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl Example for UserProfile {
    fn example() -> Self {
        UserProfile {
            sub: "alice".into(),
            username: "alice".into(),
            roles: Vec::new(),
            created_at: examples::ISSUED_AT - 86_400,
        }
    }
}

impl From<UserRecord> for UserProfile {
    fn from(user: UserRecord) -> Self {
        UserProfile {
            sub: user.username.to_string(),
            username: user.username.to_string(),
            roles: user.roles.into_iter().collect(),
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum RegistrationResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserProfile>),
}

error_list!(
    /// What `POST /users` can refuse with.
    RegistrationErrors: ErrorDoc::new(
        400,
        "`invalid_request`: no username or password, a username that breaks the rules, a \
         password shorter than 8 characters, or a body that cannot be read (such as JSON with a \
         member given twice).",
        "invalid_request",
        "the password must be at least 8 characters",
    ),
    ErrorDoc::new(
        403,
        "Self-registration is switched off (`registration.enabled`), as it is by default.",
        "access_denied",
        "self-registration is disabled",
    ),
    ErrorDoc::new(409, "The username is taken.", "conflict", "the username is taken"),
    THROTTLED,
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        hashing,
        "the account may exist, and a retry then answers 409 `conflict`; logging in tells."
    ),
);

#[derive(Debug, ApiResponse)]
pub enum UserinfoResponse {
    /// The profile of the user the token was issued to.
    #[oai(status = 200)]
    Ok(Json<UserProfile>),
}

/// 401 for `/userinfo` and `/logout`, which take only tokens for the default audience.
const NOT_A_DEFAULT_AUDIENCE_TOKEN: ErrorDoc = ErrorDoc {
    description: "The bearer access token is missing, malformed, expired or revoked, its user is \
                  disabled or gone, or it is not for the default audience (`tokens.audience`): \
                  a token asked for with `audience` or `resource`, or one for the admin API \
                  (`invalid_token`).",
    error_description: "the token is for another audience; this endpoint takes tokens for 'api'",
    ..INVALID_TOKEN
};

error_list!(
    /// What `GET /userinfo` can refuse with.
    UserinfoErrors: NOT_A_DEFAULT_AUDIENCE_TOKEN,
    ErrorDoc::new(
        403,
        "The token is a client's own (`client_credentials`): it has no user.",
        "access_denied",
        "the token was issued to a client, not a user",
    ),
    INTERNAL,
    UNAVAILABLE,
);

/// What to end besides the presented access token.
#[derive(Debug, Default, Deserialize, Object)]
#[oai(example)]
pub struct LogoutParams {
    /// A refresh token of the same user; its whole family is revoked.
    pub refresh_token: Option<String>,
}

impl Example for LogoutParams {
    fn example() -> Self {
        LogoutParams {
            refresh_token: Some(examples::REFRESH_TOKEN.into()),
        }
    }
}

#[derive(Debug, ApiRequest)]
pub enum LogoutBody {
    Json(Json<LogoutParams>),
    Form(Form<LogoutParams>),
}

#[derive(Debug, ApiResponse)]
pub enum LogoutResponse {
    /// The access token and its session are revoked.
    #[oai(status = 204)]
    LoggedOut,
}

error_list!(
    /// What `POST /logout` can refuse with.
    LogoutErrors: ErrorDoc::new(
        400,
        "`invalid_request`: the `refresh_token` is not a valid refresh token, belongs to \
         another user or was issued to another client, or the body cannot be read.",
        "invalid_request",
        "the refresh token belongs to someone else",
    ),
    NOT_A_DEFAULT_AUDIENCE_TOKEN,
    ErrorDoc::new(
        403,
        "The token was obtained by token exchange (it has `act`): a service acting for the \
         user cannot end the user's session.",
        "access_denied",
        "a token obtained by token exchange cannot end the user's session",
    ),
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        "some of the sessions may be revoked already; a retry revokes them again and the \
         bearer token last, and answers as the first would have."
    ),
);

pub struct AccountApi {
    pub authority: Arc<Authority>,
    pub registration: crate::configuration::RegistrationSettings,
}

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// Register an account
    ///
    /// Self-registration, when the operator has enabled it (`registration.enabled`). The new
    /// user has no roles.
    #[oai(path = "/users", method = "post", operation_id = "register")]
    async fn register(
        &self,
        req: &Request,
        body: OptionalRegistrationBody,
    ) -> Answer<RegistrationResponse, RegistrationErrors> {
        if !self.registration.enabled {
            return Err(ServiceError::Forbidden("self-registration is disabled".into()).into());
        }
        let params = match body.0 {
            Some(RegistrationBody::Json(Json(p)) | RegistrationBody::Form(Form(p))) => p,
            None => Registration::default(),
        };
        let username = params
            .username
            .ok_or_else(|| ServiceError::InvalidRequest("username is required".into()))?;
        let password = params
            .password
            .ok_or_else(|| ServiceError::InvalidRequest("password is required".into()))?;
        let origin = origin(req);
        // Before the password is hashed: each account costs an argon2 hash.
        let limits = &self.registration;
        self.authority
            .reserve_registration(&origin, limits.max_per_address, limits.window, now())
            .await?;
        let change = Change {
            store: self.authority.store().as_ref(),
            by: &Actor::Anonymous(origin),
            now: now(),
        };
        let user = accounts::add_user(
            &change,
            self.authority.passwords(),
            &username,
            Secret::new(password),
            BTreeSet::new(),
        )
        .await
        .map_err(|error| match error {
            // Anyone may register: a name taken by a client answers as one taken by a user, or
            // the endpoint would list the client ids to whoever asks.
            ServiceError::Conflict(_) => ServiceError::Conflict("the username is taken".into()),
            other => other,
        })?;
        Ok(RegistrationResponse::Created(Json(user.into())))
    }

    /// The caller's profile
    ///
    /// The user the bearer access token was issued to. Takes users' access tokens for the
    /// default audience (`tokens.audience`), the `aud` of tokens asked for without `audience`
    /// or `resource`. As RFC 9068 §4 has every resource check `aud`, a token for a named
    /// resource (asked for with `audience` or `resource`) or for the admin API (asked for with
    /// an admin scope) is refused with 401 `invalid_token`.
    #[oai(path = "/userinfo", method = "get", operation_id = "userinfo")]
    async fn userinfo(&self, auth: BearerToken) -> Answer<UserinfoResponse, UserinfoErrors> {
        let claims = self
            .authority
            .authenticate_default_audience(&auth.0.token, now())
            .await?;
        let user = self.authority.userinfo(&claims).await?;
        Ok(UserinfoResponse::Ok(Json(user.into())))
    }

    /// Log out
    ///
    /// Revokes the bearer access token and its session's refresh-token family, and the family
    /// of a refresh token of the same user and client sent in the body. A token obtained by
    /// token exchange is refused (403). Takes access tokens for the default audience
    /// (`tokens.audience`) only: a token for a named resource (asked for with `audience` or
    /// `resource`) or for the admin API is refused with 401 `invalid_token` (RFC 9068 §4) and
    /// revokes nothing. To end such a session, revoke its refresh token at `/oauth/revoke`.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        req: &Request,
        auth: BearerToken,
        body: OptionalBody,
    ) -> Answer<LogoutResponse, LogoutErrors> {
        let now = now();
        let claims = self
            .authority
            .authenticate_default_audience(&auth.0.token, now)
            .await?;
        let refresh = body.0.and_then(|b| match b {
            LogoutBody::Form(Form(p)) | LogoutBody::Json(Json(p)) => p.refresh_token,
        });
        self.authority
            .logout(&claims, refresh.as_deref(), &origin(req), now)
            .await?;
        Ok(LogoutResponse::LoggedOut)
    }
}
