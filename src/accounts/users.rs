//! Users: creation, reading, roles, disabling and password resets.

use std::collections::BTreeSet;

use super::{Change, Page, conflict_or, invalid, paginate, revoke_subject};
use crate::audit::{self, Event};
use crate::configuration::TokenSettings;
use crate::credentials::PasswordHasher;
use crate::credentials::legacy::{self, Scheme};
use crate::domain::{ADMIN_ROLE, Secret, Username, check_password_policy, now};
use crate::error::ServiceError;
use crate::store::{Store, Subject, UserRecord};

/// What an administrator may change about a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// The user's roles, replacing the ones it has.
    pub roles: Option<BTreeSet<String>>,
    pub disabled: Option<bool>,
}

/// Creates a user with a freshly hashed password.
pub async fn add_user(
    change: &Change<'_>,
    hasher: &PasswordHasher,
    username: &str,
    password: Secret,
    roles: BTreeSet<String>,
) -> Result<UserRecord, ServiceError> {
    let username = Username::parse(username).map_err(invalid)?;
    check_password_policy(&password).map_err(invalid)?;
    check_roles(&roles)?;
    let user = UserRecord {
        username,
        password_hash: hasher.hash(password).await?,
        roles,
        disabled: false,
        created_at: change.now,
        updated_at: change.now,
        imported: false,
    };
    change
        .store
        .create_user(&user)
        .await
        .map_err(|e| conflict_or(e, "the username is taken"))?;
    audit::change(change.by, Event::UserCreated, user.username.as_str());
    Ok(user)
}

/// A user brought from another system with the password hash it has there.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedUser {
    pub username: String,
    pub password_hash: String,
    #[serde(default)]
    pub roles: BTreeSet<String>,
}

/// Creates a user with a hash from another system, its format and cost checked (see
/// [`crate::credentials::legacy`]); the first login that proves the password makes it argon2id.
pub async fn import_user(
    change: &Change<'_>,
    imported: ImportedUser,
) -> Result<UserRecord, ServiceError> {
    let username = Username::parse(&imported.username).map_err(invalid)?;
    let password_hash = imported.password_hash.trim().to_owned();
    crate::credentials::legacy::parse(&password_hash).map_err(invalid)?;
    check_roles(&imported.roles)?;
    let user = UserRecord {
        username,
        password_hash,
        roles: imported.roles,
        disabled: false,
        created_at: change.now,
        updated_at: change.now,
        imported: true,
    };
    change
        .store
        .create_user(&user)
        .await
        .map_err(|e| conflict_or(e, "the username is taken"))?;
    audit::change(change.by, Event::UserCreated, user.username.as_str());
    Ok(user)
}

/// What the store holds of password hashes made elsewhere.
#[derive(Debug, Default)]
pub struct HashSurvey {
    /// Users whose hash was imported and not yet replaced (or is not argon2id):
    /// `latchkey_legacy_password_hashes`.
    pub legacy: u64,
    /// For each scheme of another cost than the configured argon2id, its costliest hash: what
    /// [`PasswordHasher::calibrate`] measures.
    pub costliest: Vec<String>,
}

/// Reads every user's hash, a page at a time.
pub async fn survey_hashes(
    store: &dyn Store,
    hasher: &PasswordHasher,
) -> Result<HashSurvey, ServiceError> {
    let mut survey = HashSurvey::default();
    let mut costliest: Vec<(Scheme, u64, String)> = Vec::new();
    let mut after: Option<Username> = None;
    loop {
        let users = store.list_users(after.as_ref(), super::MAX_PAGE).await?;
        for user in &users {
            let hash = &user.password_hash;
            if user.imported || !hash.starts_with("$argon2id$") {
                survey.legacy += 1;
            }
            if hasher.costs_as_configured(hash) {
                continue;
            }
            let Ok(parsed) = legacy::parse(hash) else {
                continue;
            };
            let (scheme, work) = (parsed.scheme(), parsed.work());
            match costliest.iter_mut().find(|(s, _, _)| *s == scheme) {
                Some(kept) if kept.1 >= work => {}
                Some(kept) => *kept = (scheme, work, hash.clone()),
                None => costliest.push((scheme, work, hash.clone())),
            }
        }
        match users.last() {
            Some(last) if users.len() == super::MAX_PAGE => after = Some(last.username.clone()),
            _ => break,
        }
    }
    survey.costliest = costliest.into_iter().map(|(_, _, hash)| hash).collect();
    Ok(survey)
}

/// How a user's password hash is made (`argon2id`, `pbkdf2-sha256`, `scrypt`, `bcrypt`, ...).
pub fn password_scheme(user: &UserRecord) -> &'static str {
    Scheme::of(&user.password_hash).map_or("unknown", |s| s.as_str())
}

/// Replaces a user's password and revokes every token the user holds.
pub async fn set_password(
    change: &Change<'_>,
    hasher: &PasswordHasher,
    tokens: &TokenSettings,
    username: &str,
    password: Secret,
) -> Result<(), ServiceError> {
    check_password_policy(&password).map_err(invalid)?;
    let mut user = get_user(change.store, username).await?;
    user.password_hash = hasher.hash(password).await?;
    user.imported = false;
    user.updated_at = change.now;
    change.store.update_user(&user).await?;
    revoke_subject(change.store, tokens, &Subject::User(user.username.clone())).await?;
    audit::change(change.by, Event::PasswordChanged, user.username.as_str());
    Ok(())
}

/// One user; `NotFound` if there is none.
pub async fn get_user(store: &dyn Store, username: &str) -> Result<UserRecord, ServiceError> {
    let name = Username::parse(username).map_err(invalid)?;
    store
        .get_user(&name)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no user '{name}'")))
}

/// Users in name order after the cursor `after` (a username), `limit` at most.
pub async fn list_users(
    store: &dyn Store,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<UserRecord>, ServiceError> {
    let after = after
        .map(Username::parse)
        .transpose()
        .map_err(|_| ServiceError::InvalidRequest("after is not a username".into()))?;
    let users = store.list_users(after.as_ref(), limit + 1).await?;
    Ok(paginate(users, limit, |u| u.username.to_string()))
}

/// Changes a user's roles and whether the account is disabled. Disabling revokes every token
/// of the user at once; enabling again brings none of them back.
pub async fn update_user(
    change: &Change<'_>,
    tokens: &TokenSettings,
    username: &str,
    changes: UserChanges,
) -> Result<UserRecord, ServiceError> {
    let mut user = get_user(change.store, username).await?;
    let name = user.username.clone();
    // An administrator who locks themselves out may leave nobody who can let them back in.
    let myself = change.by.is_user(&name);
    let roles = changes.roles.filter(|roles| *roles != user.roles);
    if let Some(roles) = &roles {
        check_roles(roles)?;
        if myself && !roles.contains(ADMIN_ROLE) {
            return Err(ServiceError::Conflict(
                "administrators cannot take their own admin role; ask another administrator".into(),
            ));
        }
    }
    let disabled = changes.disabled.filter(|d| *d != user.disabled);
    if disabled == Some(true) && myself {
        return Err(ServiceError::Conflict(
            "administrators cannot disable themselves; ask another administrator".into(),
        ));
    }
    // A disable of a user who is disabled already revokes again: it completes a disable whose
    // revocation never happened (a 503 after the user was stored as disabled), so that its
    // retry answers as the first would have. No token has been issued to the user since.
    let revoke = changes.disabled == Some(true);
    if roles.is_none() && disabled.is_none() && !revoke {
        return Ok(user);
    }
    if roles.is_some() || disabled.is_some() {
        if let Some(roles) = &roles {
            user.roles = roles.clone();
        }
        if let Some(disabled) = disabled {
            user.disabled = disabled;
        }
        user.updated_at = change.now;
        change.store.update_user(&user).await?;
    }
    if roles.is_some() {
        // The access tokens out there carry the old roles: they stop being accepted here and,
        // through the feed, at resource servers. Sessions go on and refresh into the new roles.
        let lifetime = tokens.access_ttl;
        change
            .store
            .revoke_user_access(&name, now(), lifetime)
            .await?;
        audit::change(change.by, Event::UserRolesChanged, name.as_str());
    }
    if revoke {
        // Every token issued up to now dies, so none comes back with an `enable`.
        revoke_subject(change.store, tokens, &Subject::User(name.clone())).await?;
    }
    match disabled {
        Some(true) => audit::change(change.by, Event::UserDisabled, name.as_str()),
        Some(false) => audit::change(change.by, Event::UserEnabled, name.as_str()),
        None => {}
    }
    Ok(user)
}

/// At most `limits::MAX_ROLES` roles, each a valid role name: every role goes into the `roles`
/// claim of the user's access tokens, which must stay within what the issuer accepts.
fn check_roles(roles: &BTreeSet<String>) -> Result<(), ServiceError> {
    crate::domain::check_roles(roles).map_err(invalid)
}
