//! The first administrator, made at start-up from configuration so that a fresh deployment
//! can be administered without a shell on the machine.

use std::collections::BTreeSet;

use super::{Change, add_user};
use crate::audit::Actor;
use crate::credentials::PasswordHasher;
use crate::domain::{ADMIN_ROLE, Secret, UnixTime, Username};
use crate::error::ServiceError;
use crate::store::{Store, UserRecord};

/// What start-up did about the bootstrap admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrapped {
    /// No administrator existed; the configured one was created.
    Created,
    /// The configured user exists already (an administrator or not): left as it is.
    UserExists,
    /// Another enabled administrator exists: nothing to do.
    AdminExists,
}

/// Creates `username` with role `admin` if no enabled administrator exists. Never changes an
/// existing user: once made, the account (and its password) is the administrators' own.
pub async fn bootstrap_admin(
    store: &dyn Store,
    hasher: &PasswordHasher,
    username: &str,
    password: Secret,
    now: UnixTime,
) -> Result<Bootstrapped, ServiceError> {
    let name = Username::parse(username).map_err(super::invalid)?;
    // The usual case after the first start: one read, no scan.
    if let Some(user) = store.get_user(&name).await? {
        if !user.roles.contains(ADMIN_ROLE) {
            tracing::warn!(
                username = %name,
                "bootstrap.admin_username names an existing user without role admin; \
                 leaving it unchanged"
            );
        }
        return Ok(Bootstrapped::UserExists);
    }
    if any_admin(store).await? {
        return Ok(Bootstrapped::AdminExists);
    }
    let change = Change {
        store,
        by: &Actor::Operator("bootstrap"),
        now,
    };
    let roles = BTreeSet::from([ADMIN_ROLE.to_owned()]);
    match add_user(&change, hasher, name.as_str(), password, roles).await {
        Ok(_) => {
            tracing::info!(username = %name, "created the bootstrap admin");
            Ok(Bootstrapped::Created)
        }
        // Another replica starting at the same moment made it first.
        Err(ServiceError::Conflict(_)) => Ok(Bootstrapped::UserExists),
        Err(other) => Err(other),
    }
}

/// Whether some enabled user has role admin. Pages through all users, which happens only
/// while the bootstrap user does not exist, that is on the first start or two.
async fn any_admin(store: &dyn Store) -> Result<bool, ServiceError> {
    let mut after = None;
    loop {
        let page = store.list_users(after.as_ref(), 500).await?;
        if page.iter().any(UserRecord::is_admin) {
            return Ok(true);
        }
        match page.last() {
            Some(last) => after = Some(last.username.clone()),
            None => return Ok(false),
        }
    }
}
