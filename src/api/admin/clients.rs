//! `/admin/clients`: register (secret shown once), list, read, change, delete, rotate secret.

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::Admin;
use super::client_objects::{
    AdminClient, ClientPage, ClientSecret, ClientUpdate, NewClient, RegisteredClient, grant_set,
    keys_of,
};
use crate::accounts::{self, ClientChanges, ClientSpec};
use crate::api::ApiTags;
use crate::api::account::BearerToken;
use crate::api::errors::{
    Answer, BODY_TOO_LARGE, ErrorDoc, INTERNAL, INVALID_TOKEN, NOT_ADMIN, NOT_AN_ADMIN_TOKEN,
    UNAVAILABLE, UNSUPPORTED_MEDIA_TYPE, error_list, unavailable_after_change,
};

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
            redirect_uris: new.redirect_uris,
            first_party: new.first_party,
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

    /// Change a client's grants, scopes, audiences or keys
    ///
    /// Each list given replaces the client's. Refresh tokens issued before are narrowed to
    /// the new scopes and audiences when they are next used. Keys replace the client's
    /// credential, its secret (moving it to `private_key_jwt`) or its old keys: that stops working and
    /// every token issued through the client is revoked.
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
            redirect_uris: update.redirect_uris,
            first_party: update.first_party,
        };
        if let Some(audiences) = &changes.audiences {
            let authority = &self.0.authority;
            accounts::check_reserved_audiences(
                audiences,
                authority.issuer(),
                authority.admin_audience(),
            )?;
        }
        let tokens = self.0.authority.tokens();
        let change = self.0.change(&admin);
        let client = accounts::update_client(&change, tokens, &client_id.0, changes).await?;
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
