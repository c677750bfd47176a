//! Roles and the admin API: who may use it, with which tokens, and which scopes only
//! administrators receive.
//!
//! A token for the admin API is one asked for with an admin scope (`tokens.admin_scopes`); it
//! carries the admin audience (`admin.audience`) and nothing but admin scopes, and no other
//! token ever carries that audience. So the admin API can insist on its own audience: a token
//! that a resource server received (for its own audience) is useless here, even when it
//! belongs to an administrator.

use super::Authority;
use crate::audit::{Event, Origin, Record};
use crate::domain::{Scope, UnixTime, Username};
use crate::error::ServiceError;
use crate::store::{ClientRecord, UserRecord};

impl Authority {
    /// The caller of an admin endpoint. Every one of these must hold, checked in this order:
    ///
    /// 1. a valid, live access token (else 401 `invalid_token`);
    /// 2. its `aud` is the admin audience (else 401 `invalid_token`, RFC 6750 §3.1: the token
    ///    was not issued for this resource);
    /// 3. it is a user's token, not a client's own (else 403 `access_denied`);
    /// 4. its `scope` has an admin scope (else 403 `insufficient_scope`);
    /// 5. the user has role `admin` now (else 403 `access_denied`). The role is read from the
    ///    store on every call, not from the token's `roles` claim, so that a user who loses the
    ///    role (or the account) is refused from the next request on rather than when the token
    ///    expires.
    ///
    /// Each refusal after the first is audited as `admin_denied`.
    pub async fn authorize_admin(
        &self,
        token: &str,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<(Username, String), ServiceError> {
        let claims = self.authenticate_bearer(token, now).await?;
        let denied = |error: ServiceError| {
            Record::new(Event::AdminDenied, &claims.sub, origin)
                .client(&claims.client_id)
                .emit();
            error
        };
        if claims.aud != self.admin_audience {
            return Err(denied(ServiceError::InvalidToken(format!(
                "the token is not for the admin API: ask for scope {} to get one with audience \
                 '{}'",
                self.admin_scope_names(),
                self.admin_audience
            ))));
        }
        if claims.roles.is_none() {
            // A client's own token: its `sub` is a client id, which may equal a username.
            return Err(denied(ServiceError::Forbidden(
                "the admin API needs a user's access token, not a client's".into(),
            )));
        }
        if !claims.scope.split(' ').any(|s| self.is_admin_scope(s)) {
            return Err(denied(ServiceError::InsufficientScope {
                reason: format!("the admin API needs scope {}", self.admin_scope_names()),
                required: self.tokens.admin_scopes.join(" "),
            }));
        }
        let user = self
            .live_user(&claims.sub)
            .await?
            .ok_or_else(|| ServiceError::InvalidToken("the user is disabled or gone".into()))?;
        if !user.is_admin() {
            return Err(denied(ServiceError::Forbidden(
                "the admin API needs role admin".into(),
            )));
        }
        Ok((user.username, claims.claims.client_id))
    }

    /// Whether `token` is one of `tokens.admin_scopes`.
    pub(super) fn is_admin_scope(&self, token: &str) -> bool {
        self.tokens.admin_scopes.iter().any(|a| a == token)
    }

    /// Whether `scope` has an admin scope, which makes a token one for the admin API.
    pub(super) fn has_admin_scope(&self, scope: &Scope) -> bool {
        scope.iter().any(|token| self.is_admin_scope(token))
    }

    /// `scope` without the admin scopes: what a request that names no scope gets. Admin scopes
    /// are granted only when asked for, so that an ordinary login through a client that also
    /// serves administrators never yields a token for the admin API.
    pub(super) fn without_admin_scopes(&self, scope: &Scope) -> Scope {
        scope.filter(|token| !self.is_admin_scope(token))
    }

    /// The admin scopes for messages: `admin`, or `admin or ops`.
    fn admin_scope_names(&self) -> String {
        self.tokens.admin_scopes.join(" or ")
    }

    /// The `aud` of a token with `scope`, from what the request asked for with `audience` or
    /// RFC 8707 `resource` (`asked`, already checked to agree):
    ///
    /// - with an admin scope, the admin audience, and only admin scopes besides: a token for
    ///   the admin API is good for nothing else, and nothing else is good for the admin API;
    ///   asking for another audience is `invalid_target`, other scopes `invalid_scope`;
    /// - without, the audience asked for if the client may use it (never the admin audience),
    ///   else `invalid_target`; the default audience when none is asked for.
    pub(super) fn audience_for_scope(
        &self,
        client: &ClientRecord,
        asked: Option<&str>,
        scope: &Scope,
    ) -> Result<String, ServiceError> {
        if self.has_admin_scope(scope) {
            if scope.iter().any(|token| !self.is_admin_scope(token)) {
                return Err(ServiceError::InvalidScope(format!(
                    "scope {} is for the admin API and cannot be combined with other scopes; \
                     ask for those in a token of its own",
                    self.admin_scope_names()
                )));
            }
            return match asked {
                None => Ok(self.admin_audience.clone()),
                Some(a) if a == self.admin_audience => Ok(self.admin_audience.clone()),
                Some(_) => Err(ServiceError::InvalidTarget(format!(
                    "a token with scope {} is for the admin API only: its audience is '{}'",
                    self.admin_scope_names(),
                    self.admin_audience
                ))),
            };
        }
        match asked {
            None => Ok(self.tokens.audience.clone()),
            Some(a) if a == self.admin_audience => Err(ServiceError::InvalidTarget(format!(
                "audience '{}' is the admin API's: ask for scope {} to get a token for it",
                self.admin_audience,
                self.admin_scope_names()
            ))),
            Some(a) if a == self.tokens.audience || client.audiences.contains(a) => {
                Ok(a.to_owned())
            }
            Some(a) => Err(ServiceError::InvalidTarget(format!(
                "this client may not request audience '{}'",
                super::grants::truncate(a)
            ))),
        }
    }

    /// The scope `user` receives: admin-only scopes only for an administrator. Anyone else who
    /// asks for one explicitly is refused; one that comes with a refresh token's scope (the
    /// user has lost the role since) is left out silently.
    pub(super) fn scope_for_user(
        &self,
        user: &UserRecord,
        scope: Scope,
        explicit: bool,
        client: &ClientRecord,
        origin: &Origin,
    ) -> Result<Scope, ServiceError> {
        if user.is_admin() || !self.has_admin_scope(&scope) {
            return Ok(scope);
        }
        if explicit {
            Record::new(Event::AdminDenied, user.username.as_str(), origin)
                .client(client.client_id.as_str())
                .emit();
            return Err(ServiceError::InvalidScope(
                "the requested scope includes scopes for administrators only".into(),
            ));
        }
        Ok(self.without_admin_scopes(&scope))
    }
}
