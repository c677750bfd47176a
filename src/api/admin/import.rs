//! `POST /admin/users/import`: users brought from another system with the password hashes they
//! have there, as `latchkey users import` takes them, a batch per request.

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Admin;
use crate::accounts::{self, ImportedUser};
use crate::api::account::BearerToken;
use crate::api::errors::{
    Answer, BODY_TOO_LARGE, ErrorDoc, INTERNAL, NOT_ADMIN, NOT_AN_ADMIN_TOKEN,
    UNSUPPORTED_MEDIA_TYPE, error_list, unavailable_after_change,
};
use crate::api::{ApiTags, examples};

/// Most users one request imports; larger imports take several requests, or the CLI.
const MAX_BATCH: usize = 1000;

/// A user with the password hash another system made.
#[derive(Debug, Object)]
pub struct UserToImport {
    /// 1 to 64 letters, digits and `. _ - @ +`.
    pub username: String,
    /// The hash as the other system stored it: Werkzeug `pbkdf2:sha256:N$salt$hex` or
    /// `scrypt:N:r:p$salt$hex`, Django `pbkdf2_sha256$N$salt$b64`, bcrypt `$2a$`/`$2b$`/`$2y$`,
    /// or a PHC string (`$argon2id$`, `$argon2i$`, `$pbkdf2-sha256$`, `$scrypt$`), within the
    /// cost ceilings the README lists. It becomes argon2id at the user's first sign-in.
    pub password_hash: String,
    /// Roles to grant, as for a new user.
    #[oai(default, validator(max_items = 32, min_length = 1, max_length = 64))]
    pub roles: Vec<String>,
}

/// Users to import.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UserImport {
    /// 1 to 1000 users; each is imported or refused on its own. The body must also fit in
    /// `server.max_body_bytes`: the default 64 KiB holds about 350 users with Werkzeug hashes.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub users: Vec<UserToImport>,
}

impl Example for UserImport {
    fn example() -> Self {
        UserImport {
            users: vec![UserToImport {
                username: "alice".into(),
                password_hash: examples::WERKZEUG_HASH.into(),
                roles: vec!["editor".into()],
            }],
        }
    }
}

/// A user that was not imported, and why; nothing of it was stored.
#[derive(Debug, Object)]
pub struct RefusedUser {
    /// Its position in `users`, from 1.
    pub line: u64,
    pub username: String,
    /// Why: an unknown hash format, a hash above the cost ceilings, a username or role that
    /// breaks the rules, or a username that is taken.
    pub error: String,
}

/// What an import did.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ImportReport {
    /// The usernames imported, in canonical form.
    pub imported: Vec<String>,
    pub refused: Vec<RefusedUser>,
}

impl Example for ImportReport {
    fn example() -> Self {
        ImportReport {
            imported: vec!["alice".into()],
            refused: vec![RefusedUser {
                line: 2,
                username: "bob".into(),
                error: "not a password hash format Latchkey accepts (...)".into(),
            }],
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum ImportResponse {
    /// Each user was imported or refused; `refused` says which were not, and why.
    #[oai(status = 200)]
    Ok(Json<ImportReport>),
}

error_list!(
    /// What `POST /admin/users/import` can refuse with.
    ImportErrors: ErrorDoc::new(
        400,
        "`invalid_request`: a body that is not a `UserImport`, or with no users or more than \
         1000. A user that cannot be imported is not an error of the request: it is listed in \
         `refused`.",
        "invalid_request",
        "users: at most 1000 per request",
    ),
    NOT_AN_ADMIN_TOKEN,
    NOT_ADMIN,
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INTERNAL,
    unavailable_after_change!(
        "some users may have been imported; a retry imports the rest and lists those as \
         refused with `the username is taken`."
    ),
);

pub struct UsersImportApi(pub(super) Admin);

#[OpenApi(prefix_path = "/admin", tag = "ApiTags::Admin")]
impl UsersImportApi {
    /// Import users with their password hashes
    ///
    /// Users of a Flask, Django or other service, with the password hashes they have there,
    /// so that they keep their passwords. Each user is imported or refused on its own (an
    /// unknown format, a hash costlier than the ceilings, a name that is taken); the answer
    /// lists the refused ones with their position. A hash becomes argon2id at the user's first
    /// sign-in; `password_scheme` shows which users still have the old one.
    #[oai(path = "/users/import", method = "post", operation_id = "import_users")]
    async fn import_users(
        &self,
        req: &Request,
        auth: BearerToken,
        body: Json<UserImport>,
    ) -> Answer<ImportResponse, ImportErrors> {
        let admin = self.0.caller(req, &auth).await?;
        let change = self.0.change(&admin);
        let mut report = ImportReport {
            imported: Vec::new(),
            refused: Vec::new(),
        };
        for (line, user) in (1..).zip(body.0.users.into_iter().take(MAX_BATCH)) {
            let username = user.username.clone();
            let imported = ImportedUser {
                username: user.username,
                password_hash: user.password_hash,
                roles: user.roles.into_iter().collect(),
            };
            match accounts::import_user(&change, imported).await {
                Ok(user) => {
                    report.imported.push(user.username.to_string());
                    // Measured at once, even if a later line fails the request.
                    self.0.authority.passwords().hashes_changed();
                }
                Err(error) if error.is_about_the_request() => {
                    report.refused.push(RefusedUser {
                        line,
                        username,
                        error: error.to_string(),
                    });
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(ImportResponse::Ok(Json(report)))
    }
}
