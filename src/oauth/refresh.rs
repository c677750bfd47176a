//! The `refresh_token` grant (RFC 6749 §6): a rotation of the session's refresh token, with
//! reuse detection, and a new access token for what the session may still have.

use super::Authority;
use super::client_auth::AuthenticatedClient;
use super::cut_off::issued_at;
use super::grants::{
    IssuedTokens, TokenRequest, asked_audience, changed_while_signing_in, requested_scope,
};
use super::issue::Grant;
use crate::audit::{Event, Record};
use crate::domain::{Scope, TokenId, UnixTime, Username};
use crate::error::ServiceError;
use crate::store::{ClientRecord, Family, Rotation, RotationOutcome, UserCutOffs, UserRecord};

impl Authority {
    pub(super) async fn refresh_grant(
        &self,
        authenticated: &AuthenticatedClient,
        request: TokenRequest,
        now_ms: i64,
    ) -> Result<IssuedTokens, ServiceError> {
        let client = &authenticated.record;
        let now = now_ms.div_euclid(1000);
        let presented = request
            .refresh_token
            .as_deref()
            .ok_or_else(|| ServiceError::InvalidRequest("refresh_token is required".into()))?;
        let claims = self
            .verifier
            .verify_refresh(&self.keys.current(), presented)
            .map_err(|e| ServiceError::InvalidGrant(format!("invalid refresh token: {e}")))?;
        if claims.client_id != client.client_id.as_str() {
            return Err(ServiceError::InvalidGrant(
                "the refresh token was issued to another client".into(),
            ));
        }
        let origin = &request.client.origin;
        let granted = Scope::parse(&claims.scope)
            .map_err(|_| ServiceError::InvalidGrant("invalid refresh token".into()))?;
        // What the client may still have: an admin may have narrowed it since the login.
        // `openid` (a browser sign-in's) is not one of a client's scopes, and stays.
        let granted = granted
            .filter(|token| token == super::authorize::OPENID || client.scope.contains(token));
        let scope = requested_scope(request.scope.as_deref(), &granted)?;
        let (user, user_cut_offs) = self.live_subject(&claims.sub, now).await?;
        // A change of roles ends access tokens, not the session: the refresh token answers to
        // the user's token cut-off only, the tokens it yields to both.
        if [user_cut_offs.tokens, authenticated.not_before]
            .into_iter()
            .flatten()
            .any(|cut_off| claims.iat < cut_off)
        {
            return Err(ServiceError::InvalidGrant(
                "the refresh token is no longer valid".into(),
            ));
        }
        let (issued_at, waited) =
            issued_at(now, [user_cut_offs.for_access(), authenticated.not_before]).await?;
        if waited {
            self.refuse_if_changed(Some(&user), client, changed_while_signing_in)
                .await?;
        }
        let scope = self.scope_for_user(&user, scope, request.scope.is_some(), client, origin)?;
        // What can be refused without the family is refused before the token is spent.
        let asked = asked_audience(&request)?;
        let audience = match asked {
            Some(asked) => {
                // Admin scopes beside others come only from a session opened before admin
                // tokens had an audience of their own; such a session loses them (see
                // `refreshed_target`), so what is left is what the audience must suit.
                let mixed = scope.iter().any(|token| !self.is_admin_scope(token));
                let kept = if mixed {
                    self.without_admin_scopes(&scope)
                } else {
                    scope.clone()
                };
                Some(self.audience_for_scope(client, Some(asked), &kept)?)
            }
            None => None,
        };
        if let Some(asked) = &audience {
            // A refresh may narrow what the session was granted, never go beyond it (RFC 6749
            // §6): a session has one audience. Checked before the token is spent.
            let session = self
                .store
                .get_family(&TokenId::from_trusted(&claims.fam))
                .await?;
            if session.is_some_and(|family| family.audience != *asked) {
                return Err(ServiceError::InvalidTarget(
                    "a refresh keeps the audience its session was granted; sign in again for \
                     another"
                        .into(),
                ));
            }
        }
        let rotation = Rotation {
            family: TokenId::from_trusted(&claims.fam),
            presented: TokenId::from_trusted(&claims.jti),
            successor: self.next_generation(issued_at),
            now_ms,
            grace_ms: (self.tokens.refresh_grace * 1000) as i64,
        };
        let family = match self.store.rotate_refresh(&rotation).await? {
            RotationOutcome::Rotated(family) => {
                Record::new(Event::Refresh, &family.subject, origin)
                    .client(client.client_id.as_str())
                    .emit();
                family
            }
            RotationOutcome::Repeated(family) => {
                Record::new(Event::RefreshRepeated, &family.subject, origin)
                    .client(client.client_id.as_str())
                    .emit();
                family
            }
            RotationOutcome::Reused(family) => {
                Record::new(Event::RefreshReuseDetected, &family.subject, origin)
                    .client(client.client_id.as_str())
                    .emit();
                return Err(ServiceError::InvalidGrant(
                    "the refresh token was already used; its session is revoked".into(),
                ));
            }
            RotationOutcome::Inactive => {
                return Err(ServiceError::InvalidGrant(
                    "the refresh token is no longer valid".into(),
                ));
            }
        };
        let (scope, audience) = self.refreshed_target(client, &family, scope, audience)?;
        let grant = Grant {
            subject: &family.subject,
            client_id: &family.client_id,
            audience: &audience,
            scope: &scope,
            roles: Some(user.roles.iter().cloned().collect()),
            session: Some(&family.id),
            delegation: None,
        };
        // A repeat inside the grace window re-signs the successor as it was first issued.
        let dated = family.current.issued_at;
        let issued = self.issue(&grant, Some(&family), dated)?;
        if authenticated.by_assertion {
            // As for client_credentials: the assertion's check may have waited on a key fetch.
            self.refuse_if_client_revoked_meanwhile(client, dated, now)
                .await?;
        }
        Ok(issued)
    }

    /// The user behind a refresh token, if the account still exists and is enabled, with the
    /// cut-off of the user's tokens.
    async fn live_subject(
        &self,
        subject: &str,
        now: UnixTime,
    ) -> Result<(UserRecord, UserCutOffs), ServiceError> {
        let dead = || ServiceError::InvalidGrant("the refresh token is no longer valid".into());
        let name = Username::parse(subject).map_err(|_| dead())?;
        let (user, cut_offs) = self.store.user_and_not_before(&name, now).await?;
        let user = user.filter(|u| !u.disabled).ok_or_else(dead)?;
        Ok((user, cut_offs))
    }

    /// The scope and audience of a refreshed access token, from the family's audience, the
    /// scope left after narrowing (`scope`) and the audience the request asked for (`asked`,
    /// already checked against `scope`):
    ///
    /// - a session opened for the admin API stays one: its tokens keep the admin audience, and
    ///   once no admin scope is left (the user lost role admin, the client lost the scope, or
    ///   the request narrowed it away) it yields nothing more;
    /// - any other session never yields an admin token; admin scopes in it (a session opened
    ///   before admin tokens had an audience of their own) are left out;
    /// - otherwise the audience asked for, or the family's if the client may still use it.
    fn refreshed_target(
        &self,
        client: &ClientRecord,
        family: &Family,
        scope: Scope,
        asked: Option<String>,
    ) -> Result<(Scope, String), ServiceError> {
        if family.audience == self.admin_audience {
            if !self.has_admin_scope(&scope) {
                return Err(ServiceError::InvalidGrant(
                    "the refresh token is for the admin API, and no admin scope is granted any \
                     more"
                        .into(),
                ));
            }
            // `asked`, if given, was checked to be the admin audience along with the scope.
            let scope = scope.filter(|token| self.is_admin_scope(token));
            return Ok((scope, self.admin_audience.clone()));
        }
        if asked.as_deref() == Some(self.admin_audience.as_str()) {
            return Err(ServiceError::InvalidTarget(
                "the refresh token is not for the admin API: log in with an admin scope".into(),
            ));
        }
        let scope = self.without_admin_scopes(&scope);
        let audience = match asked {
            Some(asked) => asked,
            None => self.still_allowed_audience(client, &family.audience)?,
        };
        Ok((scope, audience))
    }

    /// A family's audience, if the client may still use it: an admin may have taken it away.
    fn still_allowed_audience(
        &self,
        client: &ClientRecord,
        audience: &str,
    ) -> Result<String, ServiceError> {
        if audience == self.tokens.audience || client.audiences.contains(audience) {
            Ok(audience.to_owned())
        } else {
            Err(ServiceError::InvalidGrant(
                "the client may no longer use the audience of this refresh token".into(),
            ))
        }
    }
}
