//! `/admin/users` and `/admin/clients`: user and client management for access tokens of users
//! who have role `admin` (read from the store on every request).
//!
//! Resources and verbs: `GET` reads (lists page with `?after=&limit=` and answer a `next`
//! cursor), `POST` to a collection creates, `PATCH` changes the fields it names, `DELETE`
//! removes, and `POST` to a credential sub-resource (`.../password`, `.../secret`) replaces that
//! credential, which also revokes what the old one gave.

use std::collections::BTreeSet;
use std::sync::Arc;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::account::BearerToken;
use super::errors::ApiResult;
use super::origin::origin;
use crate::accounts::{self, Change, ClientChanges, ClientSpec, UserChanges};
use crate::audit::Actor;
use crate::domain::{GrantType, Secret, now};
use crate::oauth::Authority;
use crate::store::{ClientRecord, UserRecord};

/// A user as administrators see it; never the password hash.
#[derive(Debug, Object)]
pub struct AdminUser {
    /// The login name, also the `sub` of the user's tokens.
    pub username: String,
    /// Roles, also the `roles` claim of the user's access tokens; `admin` opens this API.
    pub roles: Vec<String>,
    /// A disabled user can neither log in nor use any token.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl From<UserRecord> for AdminUser {
    fn from(user: UserRecord) -> Self {
        AdminUser {
            username: user.username.to_string(),
            roles: user.roles.into_iter().collect(),
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// One page of users, in username order.
#[derive(Debug, Object)]
pub struct UserPage {
    pub users: Vec<AdminUser>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

/// A new user.
#[derive(Debug, Object)]
pub struct NewUser {
    /// 1 to 64 letters, digits and `. _ - @`.
    pub username: String,
    /// At least 8 characters; stored only as an argon2id hash.
    pub password: String,
    /// Roles to grant, such as `admin`.
    #[oai(default)]
    pub roles: Vec<String>,
}

/// Changes to a user; fields left out stay as they are.
#[derive(Debug, Object)]
pub struct UserUpdate {
    /// The user's roles, replacing the current ones.
    pub roles: Option<Vec<String>>,
    /// `true` disables the user and revokes every token of the user at once; `false` enables
    /// the user again, without bringing any revoked token back.
    pub disabled: Option<bool>,
}

/// A new password for a user.
#[derive(Debug, Object)]
pub struct PasswordReset {
    /// At least 8 characters.
    pub password: String,
}

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
pub struct AdminClient {
    pub client_id: String,
    /// A public client has no secret.
    pub public: bool,
    /// The grants the client may use.
    pub grants: Vec<Grant>,
    /// The scopes the client may request; a request may narrow them, never widen them.
    pub scopes: Vec<String>,
    /// Audiences the client may request besides the default one (`audience` or `resource`).
    pub audiences: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<ClientRecord> for AdminClient {
    fn from(client: ClientRecord) -> Self {
        AdminClient {
            client_id: client.client_id.to_string(),
            public: client.is_public(),
            grants: client.grants.iter().map(|g| Grant::from(*g)).collect(),
            scopes: client.scope.iter().map(str::to_owned).collect(),
            audiences: client.audiences.into_iter().collect(),
            created_at: client.created_at,
        }
    }
}

/// One page of clients, in client-id order.
#[derive(Debug, Object)]
pub struct ClientPage {
    pub clients: Vec<AdminClient>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

/// A client to register.
#[derive(Debug, Object)]
pub struct NewClient {
    /// 1 to 64 letters, digits and `. _ - @`.
    pub client_id: String,
    /// A public client (no secret), such as a mobile or single-page app.
    #[oai(default)]
    pub public: bool,
    /// Without grants, a confidential client gets `client_credentials`; a public client must
    /// name its grants.
    #[oai(default)]
    pub grants: Vec<Grant>,
    #[oai(default)]
    pub scopes: Vec<String>,
    #[oai(default)]
    pub audiences: Vec<String>,
}

/// Changes to a client; each field given replaces the client's list, fields left out stay.
#[derive(Debug, Object)]
pub struct ClientUpdate {
    pub grants: Option<Vec<Grant>>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
}

/// A registered client and its secret, which is shown only this once.
#[derive(Debug, Object)]
pub struct RegisteredClient {
    #[oai(flatten)]
    pub client: AdminClient,
    /// The client's secret, for a confidential client; stored only as its SHA-256.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
}

/// A client's new secret, shown only this once.
#[derive(Debug, Object)]
pub struct ClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, ApiResponse)]
pub enum UserListResponse {
    /// A page of users.
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

#[derive(Debug, ApiResponse)]
pub enum UserCreatedResponse {
    /// The user was created.
    #[oai(status = 201)]
    Created(Json<AdminUser>, #[oai(header = "Location")] String),
}

#[derive(Debug, ApiResponse)]
pub enum UserResponse {
    /// The user, as it is now.
    #[oai(status = 200)]
    Ok(Json<AdminUser>),
}

#[derive(Debug, ApiResponse)]
pub enum PasswordResetResponse {
    /// The password is replaced and every token of the user is revoked.
    #[oai(status = 204)]
    Reset,
}

#[derive(Debug, ApiResponse)]
pub enum ClientListResponse {
    /// A page of clients.
    #[oai(status = 200)]
    Ok(Json<ClientPage>),
}

#[derive(Debug, ApiResponse)]
pub enum ClientCreatedResponse {
    /// The client was registered; the secret in the body is not shown again.
    #[oai(status = 201)]
    Created(Json<RegisteredClient>, #[oai(header = "Location")] String),
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

pub struct AdminApi {
    pub authority: Arc<Authority>,
}

impl AdminApi {
    /// The administrator behind the request, or 401/403.
    async fn admin(&self, req: &Request, auth: &BearerToken) -> ApiResult<Actor> {
        let origin = origin(req);
        let username = self
            .authority
            .authorize_admin(&auth.0.token, &origin, now())
            .await?;
        Ok(Actor::Admin { username, origin })
    }

    fn change<'a>(&'a self, by: &'a Actor) -> Change<'a> {
        Change {
            store: self.authority.store().as_ref(),
            by,
            now: now(),
        }
    }
}

#[OpenApi(prefix_path = "/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    ///
    /// Users in username order, `limit` (1 to 500, default 50) at a time; pass a page's
    /// `next` as `after` for the following page.
    #[oai(path = "/users", method = "get", operation_id = "list_users")]
    async fn list_users(
        &self,
        req: &Request,
        auth: BearerToken,
        /// The `next` of the previous page.
        after: Query<Option<String>>,
        /// Page size, 1 to 500.
        limit: Query<Option<u32>>,
    ) -> ApiResult<UserListResponse> {
        self.admin(req, &auth).await?;
        let limit = accounts::page_size(limit.0.map(|l| l as usize))?;
        let store = self.authority.store().as_ref();
        let page = accounts::list_users(store, after.0.as_deref(), limit).await?;
        Ok(UserListResponse::Ok(Json(UserPage {
            users: page.items.into_iter().map(AdminUser::from).collect(),
            next: page.next,
        })))
    }

    /// Create a user
    #[oai(path = "/users", method = "post", operation_id = "create_user")]
    async fn create_user(
        &self,
        req: &Request,
        auth: BearerToken,
        body: Json<NewUser>,
    ) -> ApiResult<UserCreatedResponse> {
        let admin = self.admin(req, &auth).await?;
        let Json(new) = body;
        let user = accounts::add_user(
            &self.change(&admin),
            self.authority.passwords(),
            &new.username,
            Secret::new(new.password),
            new.roles.into_iter().collect(),
        )
        .await?;
        let location = format!("/admin/users/{}", user.username);
        Ok(UserCreatedResponse::Created(Json(user.into()), location))
    }

    /// Read a user
    #[oai(path = "/users/:username", method = "get", operation_id = "get_user")]
    async fn get_user(
        &self,
        req: &Request,
        auth: BearerToken,
        username: Path<String>,
    ) -> ApiResult<UserResponse> {
        self.admin(req, &auth).await?;
        let user = accounts::get_user(self.authority.store().as_ref(), &username.0).await?;
        Ok(UserResponse::Ok(Json(user.into())))
    }

    /// Change a user's roles, or disable or enable the user
    ///
    /// Disabling revokes every token of the user at once (introspection reports them
    /// inactive, and a `subject` event goes to the revocation feed); enabling again brings
    /// none of them back. Administrators cannot disable themselves or take their own `admin`
    /// role (409).
    #[oai(
        path = "/users/:username",
        method = "patch",
        operation_id = "update_user"
    )]
    async fn update_user(
        &self,
        req: &Request,
        auth: BearerToken,
        username: Path<String>,
        body: Json<UserUpdate>,
    ) -> ApiResult<UserResponse> {
        let admin = self.admin(req, &auth).await?;
        let Json(update) = body;
        let changes = UserChanges {
            roles: update.roles.map(|r| r.into_iter().collect()),
            disabled: update.disabled,
        };
        let tokens = self.authority.tokens();
        let user =
            accounts::update_user(&self.change(&admin), tokens, &username.0, changes).await?;
        Ok(UserResponse::Ok(Json(user.into())))
    }

    /// Reset a user's password
    ///
    /// Replaces the password and revokes every token of the user at once.
    #[oai(
        path = "/users/:username/password",
        method = "post",
        operation_id = "reset_password"
    )]
    async fn reset_password(
        &self,
        req: &Request,
        auth: BearerToken,
        username: Path<String>,
        body: Json<PasswordReset>,
    ) -> ApiResult<PasswordResetResponse> {
        let admin = self.admin(req, &auth).await?;
        accounts::set_password(
            &self.change(&admin),
            self.authority.passwords(),
            self.authority.tokens(),
            &username.0,
            Secret::new(body.0.password),
        )
        .await?;
        Ok(PasswordResetResponse::Reset)
    }

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
    ) -> ApiResult<ClientListResponse> {
        self.admin(req, &auth).await?;
        let limit = accounts::page_size(limit.0.map(|l| l as usize))?;
        let store = self.authority.store().as_ref();
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
    ) -> ApiResult<ClientCreatedResponse> {
        let admin = self.admin(req, &auth).await?;
        let Json(new) = body;
        let spec = ClientSpec {
            public: new.public,
            grants: grant_set(new.grants),
            scopes: new.scopes,
            audiences: new.audiences.into_iter().collect(),
        };
        let registered = accounts::add_client(&self.change(&admin), &new.client_id, spec).await?;
        self.authority.clients_changed();
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
    ) -> ApiResult<ClientResponse> {
        self.admin(req, &auth).await?;
        let client = accounts::get_client(self.authority.store().as_ref(), &client_id.0).await?;
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
    ) -> ApiResult<ClientResponse> {
        let admin = self.admin(req, &auth).await?;
        let Json(update) = body;
        let changes = ClientChanges {
            grants: update.grants.map(grant_set),
            scopes: update.scopes,
            audiences: update.audiences.map(|a| a.into_iter().collect()),
        };
        let client = accounts::update_client(&self.change(&admin), &client_id.0, changes).await?;
        self.authority.clients_changed();
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
    ) -> ApiResult<ClientDeletedResponse> {
        let admin = self.admin(req, &auth).await?;
        let tokens = self.authority.tokens();
        accounts::delete_client(&self.change(&admin), tokens, &client_id.0).await?;
        self.authority.clients_changed();
        Ok(ClientDeletedResponse::Deleted)
    }

    /// Rotate a client's secret
    ///
    /// A new secret, shown only in this answer; the old one stops working at once.
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
    ) -> ApiResult<SecretRotatedResponse> {
        let admin = self.admin(req, &auth).await?;
        let secret = accounts::rotate_secret(&self.change(&admin), &client_id.0).await?;
        Ok(SecretRotatedResponse::Ok(Json(ClientSecret {
            client_id: client_id.0,
            client_secret: secret.expose().to_owned(),
        })))
    }
}
