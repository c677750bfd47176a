//! `/admin/clients`: register (secret shown once), list, read, change, delete, rotate secret.

use std::collections::BTreeSet;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::Admin;
use crate::accounts::{self, ClientChanges, ClientSpec};
use crate::api::account::BearerToken;
use crate::api::errors::{
    Answer, BODY_TOO_LARGE, ErrorDoc, INTERNAL, INVALID_TOKEN, NOT_ADMIN, NOT_AN_ADMIN_TOKEN,
    UNAVAILABLE, UNSUPPORTED_MEDIA_TYPE, error_list, unavailable_after_change,
};
use crate::api::{ApiTags, examples};
use crate::domain::{GrantType, limits};
use crate::store::{ClientKeys, ClientRecord};

/// A grant type a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Grant {
    /// First-party clients only (RFC 9700 §2.4).
    Password,
    ClientCredentials,
    RefreshToken,
}

impl From<Grant> for GrantType {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::Password => GrantType::Password,
            Grant::ClientCredentials => GrantType::ClientCredentials,
            Grant::RefreshToken => GrantType::RefreshToken,
        }
    }
}

impl From<GrantType> for Grant {
    fn from(grant: GrantType) -> Self {
        match grant {
            GrantType::Password => Grant::Password,
            GrantType::ClientCredentials => Grant::ClientCredentials,
            GrantType::RefreshToken => Grant::RefreshToken,
        }
    }
}

fn grant_set(grants: Vec<Grant>) -> BTreeSet<GrantType> {
    grants.into_iter().map(GrantType::from).collect()
}

/// A client as administrators see it; never the secret or its hash.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminClient {
    pub client_id: String,
    /// A public client has no secret and no keys.
    pub public: bool,
    /// `client_secret_basic` (HTTP Basic or `client_secret_post`), `private_key_jwt` (a
    /// client registered with keys) or `none` (a public client).
    pub token_endpoint_auth_method: String,
    /// The client's public keys, when registered as a JWK Set.
    #[oai(skip_serializing_if_is_none)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its keys, when registered so.
    #[oai(skip_serializing_if_is_none)]
    pub jwks_uri: Option<String>,
    /// The grants the client may use.
    pub grants: Vec<Grant>,
    /// The scopes the client may request; a request may narrow them, never widen them.
    pub scopes: Vec<String>,
    /// Audiences the client may request besides the default one (`audience` or `resource`).
    pub audiences: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl Example for AdminClient {
    fn example() -> Self {
        AdminClient {
            client_id: "reports".into(),
            public: false,
            token_endpoint_auth_method: "client_secret_basic".into(),
            jwks: None,
            jwks_uri: None,
            grants: vec![Grant::ClientCredentials],
            scopes: vec!["reports:read".into()],
            audiences: vec!["https://reports.example.com".into()],
            created_at: examples::ISSUED_AT,
        }
    }
}

impl From<ClientRecord> for AdminClient {
    fn from(client: ClientRecord) -> Self {
        let (jwks, jwks_uri) = match &client.keys {
            Some(ClientKeys::Jwks(set)) => (Some(set.clone()), None),
            Some(ClientKeys::JwksUri(uri)) => (None, Some(uri.clone())),
            None => (None, None),
        };
        AdminClient {
            client_id: client.client_id.to_string(),
            public: client.is_public(),
            token_endpoint_auth_method: accounts::auth_method(&client).to_owned(),
            jwks,
            jwks_uri,
            grants: client.grants.iter().map(|g| Grant::from(*g)).collect(),
            scopes: client.scope.iter().map(str::to_owned).collect(),
            audiences: client.audiences.into_iter().collect(),
            created_at: client.created_at,
        }
    }
}

/// One page of clients, in client-id order.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ClientPage {
    pub clients: Vec<AdminClient>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

impl Example for ClientPage {
    fn example() -> Self {
        ClientPage {
            clients: vec![
                AdminClient::example(),
                AdminClient {
                    client_id: "web".into(),
                    public: true,
                    token_endpoint_auth_method: "none".into(),
                    jwks: None,
                    jwks_uri: None,
                    grants: vec![Grant::Password, Grant::RefreshToken],
                    scopes: vec!["read".into(), "write".into()],
                    audiences: Vec::new(),
                    created_at: examples::ISSUED_AT - 86_400,
                },
            ],
            next: None,
        }
    }
}

/// A client to register.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewClient {
    /// 1 to 64 letters, digits and `. _ - @`.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub client_id: String,
    /// A public client (no secret), such as a mobile or single-page app.
    #[oai(default)]
    pub public: bool,
    /// Without grants, a confidential client gets `client_credentials`; a public client must
    /// name its grants.
    #[oai(default)]
    pub grants: Vec<Grant>,
    /// The scopes the client may request: at most 32, each 1 to 64 printable ASCII
    /// characters other than space, quote and backslash (RFC 6749 §3.3).
    #[oai(default, validator(max_items = 32, min_length = 1, max_length = 64))]
    pub scopes: Vec<String>,
    /// Audiences the client may request besides the default one: at most 32, each 1 to 256
    /// printable ASCII characters other than space, quote and backslash (a URI or a name).
    #[oai(default, validator(max_items = 32, min_length = 1, max_length = 256))]
    pub audiences: Vec<String>,
    /// The client's public keys as an RFC 7517 JWK Set (RSA of 2048 bits or more, P-256 or
    /// Ed25519; no private or symmetric keys): the client gets no secret and authenticates
    /// with signed assertions (`private_key_jwt`, RFC 7523 §2.2).
    pub jwks: Option<serde_json::Value>,
    /// Instead of `jwks`: where the client publishes its JWK Set (https; http only for a
    /// loopback address), fetched and cached by the service.
    #[oai(validator(max_length = 2048))]
    pub jwks_uri: Option<String>,
}

// The validators above and below state the limits of `domain::limits` in the document.
const _: () = assert!(
    limits::MAX_SCOPES == 32
        && limits::MAX_SCOPE_LEN == 64
        && limits::MAX_AUDIENCES == 32
        && limits::MAX_AUDIENCE_LEN == 256
);

impl Example for NewClient {
    fn example() -> Self {
        NewClient {
            client_id: "reports".into(),
            public: false,
            grants: vec![Grant::ClientCredentials],
            scopes: vec!["reports:read".into()],
            audiences: vec!["https://reports.example.com".into()],
            jwks: None,
            jwks_uri: None,
        }
    }
}

/// The keys of a `NewClient` or a `ClientUpdate`: at most one of `jwks` and `jwks_uri`.
fn keys_of(
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
) -> Result<Option<ClientKeys>, crate::error::ServiceError> {
    match (jwks, jwks_uri) {
        (Some(_), Some(_)) => Err(crate::error::ServiceError::InvalidRequest(
            "give jwks or jwks_uri, not both".into(),
        )),
        (Some(set), None) => Ok(Some(ClientKeys::Jwks(set))),
        (None, Some(uri)) => Ok(Some(ClientKeys::JwksUri(uri))),
        (None, None) => Ok(None),
    }
}

/// Changes to a client; each field given replaces the client's list, fields left out stay.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ClientUpdate {
    pub grants: Option<Vec<Grant>>,
    /// At most 32, each 1 to 64 printable ASCII characters other than space, quote and
    /// backslash.
    #[oai(validator(max_items = 32, min_length = 1, max_length = 64))]
    pub scopes: Option<Vec<String>>,
    /// At most 32, each 1 to 256 printable ASCII characters other than space, quote and
    /// backslash.
    #[oai(validator(max_items = 32, min_length = 1, max_length = 256))]
    pub audiences: Option<Vec<String>>,
    /// New keys for a client registered with keys (a JWK Set, as at registration).
    pub jwks: Option<serde_json::Value>,
    /// A new `jwks_uri` for a client registered with keys.
    #[oai(validator(max_length = 2048))]
    pub jwks_uri: Option<String>,
}

impl Example for ClientUpdate {
    fn example() -> Self {
        ClientUpdate {
            grants: None,
            scopes: Some(vec!["reports:read".into(), "reports:write".into()]),
            audiences: None,
            jwks: None,
            jwks_uri: None,
        }
    }
}

/// A registered client and its secret, which is shown only this once.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisteredClient {
    #[oai(flatten)]
    pub client: AdminClient,
    /// The client's secret, for a confidential client; stored only as its SHA-256.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
}

impl Example for RegisteredClient {
    fn example() -> Self {
        RegisteredClient {
            client: AdminClient::example(),
            client_secret: Some(examples::CLIENT_SECRET.into()),
        }
    }
}

/// A client's new secret, shown only this once.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

impl Example for ClientSecret {
    fn example() -> Self {
        ClientSecret {
            client_id: "reports".into(),
            client_secret: examples::CLIENT_SECRET.into(),
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum ClientListResponse {
    /// A page of clients.
    #[oai(status = 200)]
    Ok(Json<ClientPage>),
}

#[derive(Debug, ApiResponse)]
pub enum ClientCreatedResponse {
    /// The client was registered; the secret in the body is not shown again. `Location` is
    /// its URL.
    #[oai(status = 201)]
    Created(
        Json<RegisteredClient>,
        /// The client's URL, `/admin/clients/{client_id}`.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(Debug, ApiResponse)]
pub enum ClientResponse {
    /// The client, as it is now.
    #[oai(status = 200)]
    Ok(Json<AdminClient>),
}

#[derive(Debug, ApiResponse)]
pub enum ClientDeletedResponse {
    /// The client is removed and can get no more tokens.
    #[oai(status = 204)]
    Deleted,
}

#[derive(Debug, ApiResponse)]
pub enum SecretRotatedResponse {
    /// The new secret; the old one no longer works.
    #[oai(status = 200)]
    Ok(Json<ClientSecret>),
}

const NO_SUCH_CLIENT: ErrorDoc = ErrorDoc::new(
    404,
    "There is no client of that id.",
    "not_found",
    "no client 'reports'",
);

const NOT_A_CLIENT_ID: ErrorDoc = ErrorDoc::new(
    400,
    "`invalid_request`: the id in the path is not a valid client id.",
    "invalid_request",
    "client_id may contain only letters, digits and . _ - @",
);

error_list!(
    /// What `GET /admin/clients` can refuse with.
    ListErrors: ErrorDoc::new(
        400,
        "`invalid_request`: a `limit` outside 1 to 500 or not a number.",
        "invalid_request",
        "limit must be between 1 and 500",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    INTERNAL,
    UNAVAILABLE,
);

error_list!(
    /// What `POST /admin/clients` can refuse with.
    CreateErrors: ErrorDoc::new(
        400,
        "`invalid_request`: a client id, scope or audience that breaks the rules, more than \
         32 scopes or audiences, grants a client cannot have (none for a public client, or \
         `client_credentials` for one), a `jwks` with a private, symmetric or unsupported key, \
         a `jwks_uri` that is not https (or loopback http), both of them, or a body that is not a `NewClient` (JSON with a \
         member given twice is not).",
        "invalid_request",
        "a public client cannot use client_credentials",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    ErrorDoc::new(409, "The client id is taken.", "conflict", "the client_id is taken"),
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        "the client may exist, with a secret nobody was shown, and a retry then answers 409 \
         `conflict`; rotate its secret (`POST /admin/clients/{client_id}/secret`) to get one."
    ),
);

error_list!(
    /// What `GET /admin/clients/{client_id}` can refuse with.
    ReadErrors: NOT_A_CLIENT_ID,
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    NO_SUCH_CLIENT,
    INTERNAL,
    UNAVAILABLE,
);

error_list!(
    /// What `DELETE /admin/clients/{client_id}` can refuse with.
    DeleteErrors: NOT_A_CLIENT_ID,
    INVALID_TOKEN,
    NOT_ADMIN,
    NO_SUCH_CLIENT,
    ErrorDoc::new(
        409,
        "The caller's own token was issued through this client: removing it would end the \
         caller's session (every token issued through a removed client is revoked).",
        "conflict",
        "this session was issued through that client, and removing it would end the session; \
         remove it from a session of another client",
    ),
    INTERNAL,
    unavailable_after_change!(
        "the client may be removed already; a retry then answers 404 `not_found` and revokes \
         every token issued through the client again, which completes the removal."
    ),
);

error_list!(
    /// What `PATCH /admin/clients/{client_id}` can refuse with.
    UpdateErrors: ErrorDoc::new(
        400,
        "`invalid_request`: the id in the path is not a valid client id, a scope or audience \
         breaks the rules, more than 32 scopes or audiences, grants the client cannot have, or \
         the body is not a `ClientUpdate` (JSON with a member given twice is not).",
        "invalid_request",
        "a client needs at least one grant",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    NO_SUCH_CLIENT,
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        "the change may have been made; a retry sets the same lists and answers as the first \
         would have."
    ),
);

error_list!(
    /// What `POST /admin/clients/{client_id}/secret` can refuse with.
    RotateErrors: ErrorDoc::new(
        400,
        "`invalid_request`: the id in the path is not a valid client id, or the client is \
         public and has no secret.",
        "invalid_request",
        "a public client has no secret to rotate",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    NO_SUCH_CLIENT,
    ErrorDoc::new(
        405,
        "Only for the client id `.`: HTTP clients remove it as a dot segment (RFC 3986 \
         §5.2.4), so the request reaches `/admin/clients/secret`, which takes no `POST`.",
        "method_not_allowed",
        "method not allowed",
    ),
    INTERNAL,
    unavailable_after_change!(
        "the secret may have been replaced (the old one no longer works, the new one was never \
         shown); a retry replaces it again and shows the secret that counts."
    ),
);

pub struct ClientsApi(pub(super) Admin);

#[OpenApi(prefix_path = "/admin", tag = "ApiTags::Admin")]
impl ClientsApi {
    /// List clients
    ///
    /// Clients in client-id order, `limit` (1 to 500, default 50) at a time; pass a page's
    /// `next` as `after` for the following page.
    #[oai(path = "/clients", method = "get", operation_id = "list_clients")]
    async fn list_clients(
        &self,
        req: &Request,
        auth: BearerToken,
        /// The `next` of the previous page.
        after: Query<Option<String>>,
        /// Page size, 1 to 500.
        limit: Query<Option<u32>>,
    ) -> Answer<ClientListResponse, ListErrors> {
        self.0.caller(req, &auth).await?;
        let limit = accounts::page_size(limit.0.map(|l| l as usize))?;
        let store = self.0.authority.store().as_ref();
        let page = accounts::list_clients(store, after.0.as_deref(), limit).await?;
        Ok(ClientListResponse::Ok(Json(ClientPage {
            clients: page.items.into_iter().map(AdminClient::from).collect(),
            next: page.next,
        })))
    }

    /// Register a client
    ///
    /// A confidential client's secret is in the answer and nowhere else: it is stored only
    /// as its SHA-256.
    #[oai(path = "/clients", method = "post", operation_id = "create_client")]
    async fn create_client(
        &self,
        req: &Request,
        auth: BearerToken,
        body: Json<NewClient>,
    ) -> Answer<ClientCreatedResponse, CreateErrors> {
        let admin = self.0.caller(req, &auth).await?;
        let Json(new) = body;
        let spec = ClientSpec {
            public: new.public,
            grants: grant_set(new.grants),
            scopes: new.scopes,
            audiences: new.audiences.into_iter().collect(),
            keys: keys_of(new.jwks, new.jwks_uri)?,
        };
        let authority = &self.0.authority;
        accounts::check_reserved_audiences(
            &spec.audiences,
            authority.issuer(),
            authority.admin_audience(),
        )?;
        let registered = accounts::add_client(&self.0.change(&admin), &new.client_id, spec).await?;
        self.0.authority.clients_changed();
        let location = format!("/admin/clients/{}", registered.client.client_id);
        Ok(ClientCreatedResponse::Created(
            Json(RegisteredClient {
                client: registered.client.into(),
                client_secret: registered.secret.map(|s| s.expose().to_owned()),
            }),
            location,
        ))
    }

    /// Read a client
    ///
    /// The client's grants, scopes and audiences, and whether it is public; never its secret.
    #[oai(
        path = "/clients/:client_id",
        method = "get",
        operation_id = "get_client"
    )]
    async fn get_client(
        &self,
        req: &Request,
        auth: BearerToken,
        client_id: Path<String>,
    ) -> Answer<ClientResponse, ReadErrors> {
        self.0.caller(req, &auth).await?;
        let store = self.0.authority.store().as_ref();
        let client = accounts::get_client(store, &client_id.0).await?;
        Ok(ClientResponse::Ok(Json(client.into())))
    }

    /// Change a client's grants, scopes or audiences
    ///
    /// Each list given replaces the client's. Refresh tokens issued before are narrowed to
    /// the new scopes and audiences when they are next used.
    #[oai(
        path = "/clients/:client_id",
        method = "patch",
        operation_id = "update_client"
    )]
    async fn update_client(
        &self,
        req: &Request,
        auth: BearerToken,
        client_id: Path<String>,
        body: Json<ClientUpdate>,
    ) -> Answer<ClientResponse, UpdateErrors> {
        let admin = self.0.caller(req, &auth).await?;
        let Json(update) = body;
        let changes = ClientChanges {
            grants: update.grants.map(grant_set),
            scopes: update.scopes,
            audiences: update.audiences.map(|a| a.into_iter().collect()),
            keys: keys_of(update.jwks, update.jwks_uri)?,
        };
        if let Some(audiences) = &changes.audiences {
            let authority = &self.0.authority;
            accounts::check_reserved_audiences(
                audiences,
                authority.issuer(),
                authority.admin_audience(),
            )?;
        }
        let client = accounts::update_client(&self.0.change(&admin), &client_id.0, changes).await?;
        self.0.authority.clients_changed();
        Ok(ClientResponse::Ok(Json(client.into())))
    }

    /// Remove a client
    ///
    /// The client can get no more tokens, and its own `client_credentials` tokens are
    /// revoked.
    #[oai(
        path = "/clients/:client_id",
        method = "delete",
        operation_id = "delete_client"
    )]
    async fn delete_client(
        &self,
        req: &Request,
        auth: BearerToken,
        client_id: Path<String>,
    ) -> Answer<ClientDeletedResponse, DeleteErrors> {
        let (admin, session_client) = self.0.caller_and_client(req, &auth).await?;
        // Removing a client revokes every token issued through it, this request's own too: an
        // administrator would lock themselves out of the API mid-session.
        if session_client == client_id.0 {
            return Err(crate::error::ServiceError::Conflict(
                "this session was issued through that client, and removing it would end the \
                 session; remove it from a session of another client"
                    .into(),
            )
            .into());
        }
        let tokens = self.0.authority.tokens();
        accounts::delete_client(&self.0.change(&admin), tokens, &client_id.0).await?;
        self.0.authority.clients_changed();
        Ok(ClientDeletedResponse::Deleted)
    }

    /// Rotate a client's secret
    ///
    /// A new secret, shown only in this answer; the old one stops working at once, and every
    /// token issued through the client before the rotation is revoked.
    #[oai(
        path = "/clients/:client_id/secret",
        method = "post",
        operation_id = "rotate_client_secret"
    )]
    async fn rotate_secret(
        &self,
        req: &Request,
        auth: BearerToken,
        client_id: Path<String>,
    ) -> Answer<SecretRotatedResponse, RotateErrors> {
        let admin = self.0.caller(req, &auth).await?;
        let tokens = self.0.authority.tokens();
        let secret = accounts::rotate_secret(&self.0.change(&admin), tokens, &client_id.0).await?;
        Ok(SecretRotatedResponse::Ok(Json(ClientSecret {
            client_id: client_id.0,
            client_secret: secret.expose().to_owned(),
        })))
    }
}
