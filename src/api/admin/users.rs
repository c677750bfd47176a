//! `/admin/users`: list, create, read, change (roles, disabled) and reset a password.

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Admin;
use crate::accounts::{self, UserChanges};
use crate::api::account::BearerToken;
use crate::api::errors::{
    Answer, BODY_TOO_LARGE, ErrorDoc, INTERNAL, NOT_ADMIN, NOT_AN_ADMIN_TOKEN, UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE, error_list, unavailable_after_change,
};
use crate::api::{ApiTags, examples};
use crate::domain::{Secret, limits};
use crate::store::UserRecord;

/// A user as administrators see it; never the password hash.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminUser {
    /// The login name, also the `sub` of the user's tokens.
    pub username: String,
    /// Roles, also the `roles` claim of the user's access tokens; `admin` opens this API.
    pub roles: Vec<String>,
    /// A disabled user can neither log in nor use any token.
    pub disabled: bool,
    /// How the password hash is made: `argon2id`, or for a user imported with the hash of
    /// another system `pbkdf2-sha256`, `scrypt`, `bcrypt` or `argon2i` until their first login
    /// makes it argon2id.
    pub password_scheme: String,
    /// Whether the password hash was imported from another system and is still the one the
    /// user's next sign-in replaces with argon2id of the configured cost.
    pub password_imported: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl Example for AdminUser {
    fn example() -> Self {
        AdminUser {
            username: "alice".into(),
            roles: vec!["editor".into()],
            disabled: false,
            password_scheme: "argon2id".into(),
            password_imported: false,
            created_at: examples::ISSUED_AT - 86_400,
            updated_at: examples::ISSUED_AT,
        }
    }
}

impl From<UserRecord> for AdminUser {
    fn from(user: UserRecord) -> Self {
        AdminUser {
            password_scheme: crate::accounts::password_scheme(&user).to_owned(),
            password_imported: user.imported,
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
#[oai(example)]
pub struct UserPage {
    pub users: Vec<AdminUser>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

impl Example for UserPage {
    fn example() -> Self {
        UserPage {
            users: vec![AdminUser::example()],
            next: Some("alice".into()),
        }
    }
}

/// A new user. A member not listed here is refused (400), never ignored.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 letters, digits and `. _ - @ +`.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub username: String,
    /// At least 8 characters; stored only as an argon2id hash.
    pub password: String,
    /// Roles to grant, such as `admin`: at most 32, each 1 to 64 letters, digits and
    /// `. _ - @`. They go into the `roles` claim of every access token of the user, so they
    /// are bounded to keep that token within what the issuer and resource servers accept.
    #[oai(default, validator(max_items = 32, min_length = 1, max_length = 64))]
    pub roles: Vec<String>,
}

// The validators above and below state the limits of `domain::limits` in the document.
const _: () = assert!(limits::MAX_ROLES == 32 && limits::MAX_NAME_LEN == 64);

impl Example for NewUser {
    fn example() -> Self {
        NewUser {
            username: "alice".into(),
            password: "correct horse battery staple".into(),
            roles: vec!["editor".into()],
        }
    }
}

/// Changes to a user; fields left out stay as they are. A member not listed here is refused
/// (400), never ignored: `{"password": ..}` is no password reset.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct UserUpdate {
    /// The user's roles, replacing the current ones: at most 32, each 1 to 64 letters, digits
    /// and `. _ - @`.
    #[oai(validator(max_items = 32, min_length = 1, max_length = 64))]
    pub roles: Option<Vec<String>>,
    /// `true` disables the user and revokes every token of the user at once; `false` enables
    /// the user again, without bringing any revoked token back.
    pub disabled: Option<bool>,
}

impl Example for UserUpdate {
    fn example() -> Self {
        UserUpdate {
            roles: Some(vec!["editor".into(), "admin".into()]),
            disabled: None,
        }
    }
}

/// A new password for a user. A member not listed here is refused (400), never ignored.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct PasswordReset {
    /// At least 8 characters.
    pub password: String,
}

impl Example for PasswordReset {
    fn example() -> Self {
        PasswordReset {
            password: "a new and longer passphrase".into(),
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum UserListResponse {
    /// A page of users.
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

#[derive(Debug, ApiResponse)]
pub enum UserCreatedResponse {
    /// The user was created; `Location` is its URL.
    #[oai(status = 201)]
    Created(
        Json<AdminUser>,
        /// The user's URL, `/admin/users/{username}`.
        #[oai(header = "Location")]
        String,
    ),
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

const NO_SUCH_USER: ErrorDoc = ErrorDoc::new(
    404,
    "There is no user of that name.",
    "not_found",
    "no user 'alice'",
);

const NOT_A_USERNAME: ErrorDoc = ErrorDoc::new(
    400,
    "`invalid_request`: the name in the path is not a valid username.",
    "invalid_request",
    "username may contain only letters, digits and . _ - @",
);

error_list!(
    /// What `GET /admin/users` can refuse with.
    ListErrors: ErrorDoc::new(
        400,
        "`invalid_request`: a `limit` outside 1 to 500 or not a number, or an `after` that is \
         not a username.",
        "invalid_request",
        "limit must be between 1 and 500",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    INTERNAL,
    UNAVAILABLE,
);

error_list!(
    /// What `POST /admin/users` can refuse with.
    CreateErrors: ErrorDoc::new(
        400,
        "`invalid_request`: a username or role name that breaks the rules, more than 32 roles, \
         a password shorter than 8 characters, or a body that is not a `NewUser` (JSON with a \
         member given twice is not).",
        "invalid_request",
        "the password must be at least 8 characters",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    ErrorDoc::new(409, "The username is taken.", "conflict", "the username is taken"),
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        hashing,
        "the user may exist, and a retry then answers 409 `conflict`; \
         `GET /admin/users/{username}` tells."
    ),
);

error_list!(
    /// What `GET /admin/users/{username}` can refuse with.
    ReadErrors: NOT_A_USERNAME,
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    NO_SUCH_USER,
    INTERNAL,
    UNAVAILABLE,
);

error_list!(
    /// What `PATCH /admin/users/{username}` can refuse with.
    UpdateErrors: ErrorDoc::new(
        400,
        "`invalid_request`: the name in the path is not a valid username, a role name breaks \
         the rules, more than 32 roles, or the body is not a `UserUpdate` (JSON with a member \
         given twice is not).",
        "invalid_request",
        "'ops team' is not a valid role name",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    NO_SUCH_USER,
    ErrorDoc::new(
        409,
        "Administrators cannot disable themselves or take their own `admin` role.",
        "conflict",
        "administrators cannot disable themselves; ask another administrator",
    ),
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        "the change may have been made; a retry sets the same values and answers as the first \
         would have (a repeated disable revokes the user's tokens again, completing a disable \
         cut short before its revocation)."
    ),
);

error_list!(
    /// What `POST /admin/users/{username}/password` can refuse with.
    ResetErrors: ErrorDoc::new(
        400,
        "`invalid_request`: the name in the path is not a valid username, the password is \
         shorter than 8 characters, or the body is not a `PasswordReset` (JSON with a member \
         given twice is not).",
        "invalid_request",
        "the password must be at least 8 characters",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    NO_SUCH_USER,
    ErrorDoc::new(
        405,
        "Only for the username `.`: HTTP clients remove it as a dot segment (RFC 3986 \
         §5.2.4), so the request reaches `/admin/users/password`, which takes no `POST`.",
        "method_not_allowed",
        "method not allowed",
    ),
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        hashing,
        "the password may have been replaced and the user's tokens revoked; a retry replaces it \
         again and answers 204."
    ),
);

pub struct UsersApi(pub(super) Admin);

#[OpenApi(prefix_path = "/admin", tag = "ApiTags::Admin")]
impl UsersApi {
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
    ) -> Answer<UserListResponse, ListErrors> {
        self.0.caller(req, &auth).await?;
        let limit = accounts::page_size(limit.0.map(|l| l as usize))?;
        let store = self.0.authority.store().as_ref();
        let page = accounts::list_users(store, after.0.as_deref(), limit).await?;
        Ok(UserListResponse::Ok(Json(UserPage {
            users: page.items.into_iter().map(AdminUser::from).collect(),
            next: page.next,
        })))
    }

    /// Create a user
    ///
    /// The password is stored only as an argon2id hash.
    #[oai(path = "/users", method = "post", operation_id = "create_user")]
    async fn create_user(
        &self,
        req: &Request,
        auth: BearerToken,
        body: Json<NewUser>,
    ) -> Answer<UserCreatedResponse, CreateErrors> {
        let admin = self.0.caller(req, &auth).await?;
        let Json(new) = body;
        let user = accounts::add_user(
            &self.0.change(&admin),
            self.0.authority.passwords(),
            &new.username,
            Secret::new(new.password),
            new.roles.into_iter().collect(),
        )
        .await?;
        let location = format!("/admin/users/{}", user.username);
        Ok(UserCreatedResponse::Created(Json(user.into()), location))
    }

    /// Read a user
    ///
    /// The user's roles, whether it is disabled, and when it was created and last changed.
    #[oai(path = "/users/:username", method = "get", operation_id = "get_user")]
    async fn get_user(
        &self,
        req: &Request,
        auth: BearerToken,
        username: Path<String>,
    ) -> Answer<UserResponse, ReadErrors> {
        self.0.caller(req, &auth).await?;
        let user = accounts::get_user(self.0.authority.store().as_ref(), &username.0).await?;
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
    ) -> Answer<UserResponse, UpdateErrors> {
        let admin = self.0.caller(req, &auth).await?;
        let Json(update) = body;
        let changes = UserChanges {
            roles: update.roles.map(|r| r.into_iter().collect()),
            disabled: update.disabled,
        };
        let tokens = self.0.authority.tokens();
        let user =
            accounts::update_user(&self.0.change(&admin), tokens, &username.0, changes).await?;
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
    ) -> Answer<PasswordResetResponse, ResetErrors> {
        let admin = self.0.caller(req, &auth).await?;
        accounts::set_password(
            &self.0.change(&admin),
            self.0.authority.passwords(),
            self.0.authority.tokens(),
            &username.0,
            Secret::new(body.0.password),
        )
        .await?;
        Ok(PasswordResetResponse::Reset)
    }

    // `/admin/users/import` is the import's path (see `import.rs`), and the router matches it
    // before `/admin/users/{username}`: a user named `import` is read and changed here, with
    // the same answers, and the document keeps one operation each.

    #[oai(path = "/users/import", method = "get", hidden)]
    async fn get_user_named_import(
        &self,
        req: &Request,
        auth: BearerToken,
    ) -> Answer<UserResponse, ReadErrors> {
        self.get_user(req, auth, Path(IMPORT.to_owned())).await
    }

    #[oai(path = "/users/import", method = "patch", hidden)]
    async fn update_user_named_import(
        &self,
        req: &Request,
        auth: BearerToken,
        body: Json<UserUpdate>,
    ) -> Answer<UserResponse, UpdateErrors> {
        self.update_user(req, auth, Path(IMPORT.to_owned()), body)
            .await
    }
}

/// The user whose name is also the import's path segment.
const IMPORT: &str = "import";
