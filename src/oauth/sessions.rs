//! What happens to tokens after they are issued: bearer checks, revocation (RFC 7009),
//! introspection (RFC 7662) and logout.

use super::Authority;
use crate::audit::{Event, Origin, Record};
use crate::domain::{ClientId, TokenId, UnixTime, Username};
use crate::error::ServiceError;
use crate::store::{ClientRecord, Subject, UserRecord};
use crate::tokens::{AccessClaims, Claims, RefreshClaims};

/// The `token_type_hint` of RFC 7009 and RFC 7662.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

impl TokenHint {
    /// Unknown hints are ignored, as RFC 7009 §2.1 allows: the server searches all kinds.
    pub fn parse(value: Option<&str>) -> Option<TokenHint> {
        match value {
            Some("access_token") => Some(TokenHint::AccessToken),
            Some("refresh_token") => Some(TokenHint::RefreshToken),
            _ => None,
        }
    }
}

/// An RFC 7662 answer. Inactive tokens say nothing but `active: false`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    pub token_type: Option<&'static str>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub jti: Option<String>,
    /// RFC 8693 §4.1: the actor chain of an exchanged access token.
    pub act: Option<crate::tokens::Act>,
}

impl Introspection {
    fn describe(token_type: &'static str, username: Option<String>, c: Claims) -> Introspection {
        Introspection {
            active: true,
            token_type: Some(token_type),
            username,
            scope: Some(c.scope),
            client_id: Some(c.client_id),
            sub: Some(c.sub),
            aud: Some(c.aud),
            iss: Some(c.iss),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            jti: Some(c.jti),
            act: None,
        }
    }
}

/// Which cut-offs a token answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenUse {
    /// A client's own access token: its client's cut-off.
    ClientAccess,
    /// A user's access token: the user's cut-offs, both, and its client's.
    UserAccess,
    /// A user's refresh token: the user's token cut-off and its client's.
    UserRefresh,
}

enum Verified {
    Access(AccessClaims),
    Refresh(RefreshClaims),
}

impl Authority {
    /// A bearer access token that is valid, not revoked, of a live session, and whose user (if
    /// any) is still enabled.
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<AccessClaims, ServiceError> {
        let claims = self
            .verifier
            .verify_access(&self.keys.current(), token)
            .map_err(|e| ServiceError::InvalidToken(e.to_string()))?;
        if self.access_is_live(&claims, now).await? {
            Ok(claims)
        } else {
            Err(ServiceError::InvalidToken(
                "the token has been revoked".into(),
            ))
        }
    }

    /// A bearer access token for the issuer's own user endpoints (`/userinfo`, `/logout`):
    /// valid and live as [`Authority::authenticate_bearer`] asks, and issued for the default
    /// audience (`tokens.audience`). RFC 9068 §4: a resource checks that a token was meant for
    /// it. Tokens for a named resource (asked for with `audience` or `resource`) belong to
    /// that resource, and tokens for the admin API to the admin API; here they are
    /// `invalid_token`.
    pub async fn authenticate_default_audience(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<AccessClaims, ServiceError> {
        let claims = self.authenticate_bearer(token, now).await?;
        if claims.aud != self.tokens.audience {
            return Err(ServiceError::InvalidToken(format!(
                "the token is for another audience; this endpoint takes tokens for '{}'",
                self.tokens.audience
            )));
        }
        Ok(claims)
    }

    pub(super) async fn access_is_live(
        &self,
        claims: &AccessClaims,
        now: UnixTime,
    ) -> Result<bool, ServiceError> {
        if self
            .store
            .is_token_revoked(&TokenId::from_trusted(&claims.jti), now)
            .await?
        {
            return Ok(false);
        }
        if let Some(sid) = &claims.sid {
            let family = self.store.get_family(&TokenId::from_trusted(sid)).await?;
            if family.is_none_or(|f| f.revoked) {
                return Ok(false);
            }
        }
        let kind = if claims.roles.is_some() {
            TokenUse::UserAccess
        } else {
            TokenUse::ClientAccess
        };
        if !self.subject_is_live(claims, kind, now).await? {
            return Ok(false);
        }
        // An exchanged token went through more clients than its `client_id`: the removal of
        // any of them ends it (design §8).
        self.delegation_is_live(claims, now).await
    }

    /// Whether no client of an exchanged token's chain (its actors and the client the chain
    /// began with) has been revoked since the token's `iat`. Its `client_id` is checked with
    /// the subject.
    async fn delegation_is_live(
        &self,
        claims: &AccessClaims,
        now: UnixTime,
    ) -> Result<bool, ServiceError> {
        if claims.act.is_none() && claims.subject_client_id.is_none() {
            return Ok(true);
        }
        let mut subjects = Vec::new();
        for client in claims.clients() {
            if client == claims.client_id {
                continue;
            }
            let Ok(client) = ClientId::parse(client) else {
                return Ok(false);
            };
            subjects.push(Subject::Client(client));
        }
        let cut_offs = futures_util::future::try_join_all(
            subjects
                .iter()
                .map(|subject| self.store.subject_not_before(subject, now)),
        )
        .await?;
        Ok(cut_offs
            .into_iter()
            .flatten()
            .all(|cut_off| claims.iat >= cut_off))
    }

    /// Whether a token's user (for a user's token) is still enabled, and neither that user nor
    /// the client it was issued through has been revoked since the token's `iat`. Users and
    /// clients are separate namespaces: a user's cut-off concerns the `sub` of users' tokens, a
    /// client's every token with its `client_id`. A user's access tokens answer to the access
    /// cut-off (a change of roles) as well; refresh tokens do not.
    async fn subject_is_live(
        &self,
        claims: &Claims,
        kind: TokenUse,
        now: UnixTime,
    ) -> Result<bool, ServiceError> {
        let Ok(client) = ClientId::parse(claims.client_id.as_str()) else {
            return Ok(false);
        };
        let client = Subject::Client(client);
        let cut_offs = if kind != TokenUse::ClientAccess {
            let Ok(name) = Username::parse(claims.sub.as_str()) else {
                return Ok(false);
            };
            let ((user, user_cut_offs), client_cut_off) = tokio::try_join!(
                self.store.user_and_not_before(&name, now),
                self.store.subject_not_before(&client, now),
            )?;
            if user.is_none_or(|u| u.disabled) {
                return Ok(false);
            }
            let user_cut_off = match kind {
                TokenUse::UserRefresh => user_cut_offs.tokens,
                _ => user_cut_offs.for_access(),
            };
            [user_cut_off, client_cut_off]
        } else {
            [self.store.subject_not_before(&client, now).await?, None]
        };
        Ok(cut_offs
            .into_iter()
            .flatten()
            .all(|cut_off| claims.iat >= cut_off))
    }

    async fn refresh_is_live(
        &self,
        claims: &RefreshClaims,
        now_ms: i64,
    ) -> Result<bool, ServiceError> {
        let now = now_ms.div_euclid(1000);
        let Some(family) = self
            .store
            .get_family(&TokenId::from_trusted(&claims.fam))
            .await?
        else {
            return Ok(false);
        };
        let current = family.current.jti.as_str() == claims.jti;
        let grace = (self.tokens.refresh_grace * 1000) as i64;
        let just_replaced = grace > 0
            && family
                .previous
                .as_ref()
                .is_some_and(|p| p.as_str() == claims.jti)
            && family.rotated_at_ms.is_some_and(|at| now_ms - at <= grace);
        if family.revoked || !(current || just_replaced) {
            return Ok(false);
        }
        self.subject_is_live(claims, TokenUse::UserRefresh, now)
            .await
    }

    pub(super) async fn live_user(
        &self,
        subject: &str,
    ) -> Result<Option<UserRecord>, ServiceError> {
        let Ok(name) = Username::parse(subject) else {
            return Ok(None);
        };
        Ok(self.store.get_user(&name).await?.filter(|u| !u.disabled))
    }

    fn identify(&self, token: &str, hint: Option<TokenHint>) -> Option<Verified> {
        let access = || {
            self.verifier
                .verify_access(&self.keys.current(), token)
                .ok()
                .map(Verified::Access)
        };
        let refresh = || {
            self.verifier
                .verify_refresh(&self.keys.current(), token)
                .ok()
                .map(Verified::Refresh)
        };
        match hint {
            Some(TokenHint::RefreshToken) => refresh().or_else(access),
            _ => access().or_else(refresh),
        }
    }

    /// RFC 7662: any authenticated client may ask; foreign, expired and revoked tokens are
    /// simply inactive. Time in milliseconds, for the refresh grace window.
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<TokenHint>,
        now_ms: i64,
    ) -> Result<Introspection, ServiceError> {
        let now = now_ms.div_euclid(1000);
        let answer = match self.identify(token, hint) {
            Some(Verified::Access(c)) if self.access_is_live(&c, now).await? => {
                let username = c.roles.is_some().then(|| c.sub.clone());
                Introspection {
                    act: c.act,
                    ..Introspection::describe("access_token", username, c.claims)
                }
            }
            Some(Verified::Refresh(c)) if self.refresh_is_live(&c, now_ms).await? => {
                let username = Some(c.sub.clone());
                Introspection::describe("refresh_token", username, c.claims)
            }
            _ => Introspection::default(),
        };
        Ok(answer)
    }

    /// RFC 7009: a refresh token takes its whole family with it; an access token goes on the
    /// revocation list until it expires. Unknown, expired and foreign tokens are answered as
    /// revoked, since they are.
    pub async fn revoke(
        &self,
        client: &ClientRecord,
        token: &str,
        hint: Option<TokenHint>,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let Some(verified) = self.identify(token, hint) else {
            return Ok(());
        };
        let owner = match &verified {
            Verified::Access(c) => &c.client_id,
            Verified::Refresh(c) => &c.client_id,
        };
        if owner != client.client_id.as_str() {
            return Err(ServiceError::UnauthorizedClient(
                "the token was issued to another client".into(),
            ));
        }
        match verified {
            Verified::Access(c) => {
                self.revoke_access(&c).await?;
                Record::new(Event::Revoke, client.client_id.as_str(), origin)
                    .client(client.client_id.as_str())
                    .subject(&c.sub)
                    .emit();
                Ok(())
            }
            Verified::Refresh(c) => {
                self.store
                    .revoke_family(&TokenId::from_trusted(&c.fam), now)
                    .await?;
                Record::new(Event::Revoke, client.client_id.as_str(), origin)
                    .client(client.client_id.as_str())
                    .subject(&c.sub)
                    .emit();
                Ok(())
            }
        }
    }

    async fn revoke_access(&self, claims: &AccessClaims) -> Result<(), ServiceError> {
        self.store
            .revoke_token(&TokenId::from_trusted(&claims.jti), claims.exp)
            .await?;
        Ok(())
    }

    /// Ends a session: the presented access token, its family, and the family of a refresh
    /// token given with it (which must belong to the same subject and client). Only the user's
    /// own client may: a token that a service obtained by exchange carries the user's session
    /// so that ending the session ends it, not so that the service can end the session.
    pub async fn logout(
        &self,
        claims: &AccessClaims,
        refresh_token: Option<&str>,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        if claims.act.is_some() {
            return Err(ServiceError::Forbidden(
                "a token obtained by token exchange cannot end the user's session".into(),
            ));
        }
        let mut families = Vec::new();
        if let Some(token) = refresh_token {
            let refresh = self
                .verifier
                .verify_refresh(&self.keys.current(), token)
                .map_err(|e| ServiceError::InvalidRequest(format!("invalid refresh_token: {e}")))?;
            if refresh.sub != claims.sub {
                return Err(ServiceError::InvalidRequest(
                    "the refresh token belongs to someone else".into(),
                ));
            }
            if refresh.client_id != claims.client_id {
                return Err(ServiceError::InvalidRequest(
                    "the refresh token was issued to another client".into(),
                ));
            }
            families.push(refresh.fam);
        }
        families.extend(claims.sid.clone());
        families.dedup();
        // The sessions first, the bearer token last: a logout cut short by a 503 leaves the
        // token that its retry presents still valid, so the retry completes it.
        for family in families {
            self.store
                .revoke_family(&TokenId::from_trusted(&family), now)
                .await?;
        }
        self.revoke_access(claims).await?;
        Record::new(Event::Logout, &claims.sub, origin)
            .client(&claims.client_id)
            .emit();
        Ok(())
    }

    /// The profile of the user a bearer token was issued to.
    pub async fn userinfo(&self, claims: &AccessClaims) -> Result<UserRecord, ServiceError> {
        if claims.roles.is_none() {
            return Err(ServiceError::Forbidden(
                "the token was issued to a client, not a user".into(),
            ));
        }
        self.live_user(&claims.sub)
            .await?
            .ok_or_else(|| ServiceError::InvalidToken("the user no longer exists".into()))
    }
}
