//! The claims of a verified access token, typed, and the checks a handler makes on them.

use crate::VerifyError;

/// A verified access token (RFC 9068): signed by the issuer, for this audience, within its
/// lifetime, and not revoked as far as the last synchronisation knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// `sub`: the username, or the client id for a `client_credentials` token.
    pub subject: String,
    /// `client_id`: the client the token was issued to.
    pub client_id: String,
    /// `scope`, split at spaces.
    pub scopes: Vec<String>,
    /// `roles`: the user's roles; empty for a client's own token.
    pub roles: Vec<String>,
    /// Whether the token was issued to a user (it carries `roles`) rather than to a client.
    pub is_user: bool,
    /// `sid`: the session (refresh-token family) the token belongs to, if any.
    pub sid: Option<String>,
    /// `jti`: the token's unique id.
    pub jti: String,
    /// `act` (RFC 8693 §4.1): who acts for the subject in a token obtained by token exchange,
    /// the current actor first (`act.sub`), then the one it was acting for (`act.act.sub`), and
    /// so on; empty when the subject's own client holds the token.
    pub actors: Vec<String>,
    /// `subject_client_id`: in a token obtained by token exchange, the client the exchange
    /// chain began with (the `client_id` of the first subject token).
    pub subject_client_id: Option<String>,
    /// `aud`: every audience the token names (the configured one among them).
    pub audience: Vec<String>,
    /// `iat`, Unix seconds.
    pub iat: i64,
    /// `exp`, Unix seconds.
    pub exp: i64,
}

impl AccessToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Every client the token was issued through: its `client_id`, its actors (clients all)
    /// and the client its exchange chain began with. A client's revocation reaches the token
    /// through any of them.
    pub fn clients(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.client_id.as_str())
            .chain(self.actors.iter().map(String::as_str))
            .chain(self.subject_client_id.as_deref())
    }

    /// The party presenting the token on the subject's behalf (`act.sub`), if any.
    pub fn actor(&self) -> Option<&str> {
        self.actors.first().map(String::as_str)
    }

    /// `Ok` if `actor` is the token's current actor (`act.sub`), else
    /// [`VerifyError::WrongActor`] (403): a service that takes delegated tokens only from its
    /// gateway says so here.
    pub fn require_actor(&self, actor: &str) -> Result<&Self, VerifyError> {
        require_actor(self, actor).map(|()| self)
    }

    /// `Ok` if the token carries `scope`, else [`VerifyError::InsufficientScope`] (403).
    pub fn require_scope(&self, scope: &str) -> Result<&Self, VerifyError> {
        require_scope(self, scope).map(|()| self)
    }

    /// `Ok` if the token's subject has `role`, else [`VerifyError::InsufficientRole`] (403).
    pub fn require_role(&self, role: &str) -> Result<&Self, VerifyError> {
        require_role(self, role).map(|()| self)
    }
}

/// Refuses a token without `scope` with 403 `insufficient_scope`.
pub fn require_scope(token: &AccessToken, scope: &str) -> Result<(), VerifyError> {
    if token.has_scope(scope) {
        Ok(())
    } else {
        Err(VerifyError::InsufficientScope(scope.to_owned()))
    }
}

/// Refuses a token whose subject lacks `role` with 403 `insufficient_scope` (RFC 6750 has no
/// code of its own for roles; the description names the role).
pub fn require_role(token: &AccessToken, role: &str) -> Result<(), VerifyError> {
    if token.has_role(role) {
        Ok(())
    } else {
        Err(VerifyError::InsufficientRole(role.to_owned()))
    }
}

/// Refuses a token whose current actor (`act.sub`) is not `actor`, or that has none, with 403
/// `insufficient_scope` (the description names the actor required).
pub fn require_actor(token: &AccessToken, actor: &str) -> Result<(), VerifyError> {
    if token.actor() == Some(actor) {
        Ok(())
    } else {
        Err(VerifyError::WrongActor(actor.to_owned()))
    }
}
