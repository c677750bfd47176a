//! Roles: who may use the admin API, and which scopes only administrators receive.

use super::{AuthError, Authority};
use crate::audit::{Event, Origin, Record};
use crate::domain::{Scope, UnixTime, Username};
use crate::store::{ClientRecord, UserRecord};

/// The role that opens the admin API and the admin-only scopes (`tokens.admin_scopes`).
pub const ADMIN_ROLE: &str = "admin";

/// Whether `user` is an enabled administrator.
pub fn is_admin(user: &UserRecord) -> bool {
    !user.disabled && user.roles.contains(ADMIN_ROLE)
}

impl Authority {
    /// The caller of an admin endpoint. The role is read from the store on every call, not
    /// from the token's `roles` claim, so that a user who loses the role (or the account) is
    /// refused from the next request on rather than when the token expires.
    pub async fn authorize_admin(
        &self,
        token: &str,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<Username, AuthError> {
        // 401 for tokens that are invalid, expired, revoked, or whose user is gone or disabled.
        let claims = self.authenticate_bearer(token, now).await?;
        let denied = |reason: &str| {
            Record::new(Event::AdminDenied, &claims.sub, origin)
                .client(&claims.client_id)
                .emit();
            AuthError::Forbidden(reason.to_owned())
        };
        if claims.roles.is_none() {
            // A client's own token: its `sub` is a client id, which may equal a username.
            return Err(denied(
                "the admin API needs a user's access token, not a client's",
            ));
        }
        let user = self
            .live_user(&claims.sub)
            .await?
            .ok_or_else(|| AuthError::InvalidToken("the user is disabled or gone".into()))?;
        if !is_admin(&user) {
            return Err(denied("the admin API needs role admin"));
        }
        Ok(user.username)
    }

    /// The scope `user` receives: admin-only scopes only for an administrator. Anyone else who
    /// asks for one explicitly is refused; one that comes with the client's default scope is
    /// left out silently, so that one client can serve admins and other users alike.
    pub(super) fn scope_for_user(
        &self,
        user: &UserRecord,
        scope: Scope,
        explicit: bool,
        client: &ClientRecord,
        origin: &Origin,
    ) -> Result<Scope, AuthError> {
        let admin_only = |token: &str| self.tokens.admin_scopes.iter().any(|a| a == token);
        if is_admin(user) || !scope.iter().any(admin_only) {
            return Ok(scope);
        }
        if explicit {
            Record::new(Event::AdminDenied, user.username.as_str(), origin)
                .client(client.client_id.as_str())
                .emit();
            return Err(AuthError::InvalidScope(
                "the requested scope includes scopes for administrators only".into(),
            ));
        }
        Ok(scope.filter(|token| !admin_only(token)))
    }
}
