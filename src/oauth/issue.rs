//! Signing what a grant decided: the access token and, for a session, its refresh token.

use super::{Authority, IssuedTokens};
use crate::domain::{ClientId, Scope, TokenId, UnixTime};
use crate::error::ServiceError;
use crate::store::{Family, RefreshGeneration};
use crate::tokens::{AccessClaims, Act, Claims, RefreshClaims, TokenKind, sign};

/// What an access token is about, before it is signed.
pub(super) struct Grant<'a> {
    pub subject: &'a str,
    pub client_id: &'a ClientId,
    pub audience: &'a str,
    pub scope: &'a Scope,
    pub roles: Option<Vec<String>>,
    pub session: Option<&'a TokenId>,
    /// For token exchange: who acts, and where the chain began.
    pub delegation: Option<Delegation>,
}

/// What an exchanged token carries beyond a grant's usual claims.
pub(super) struct Delegation {
    /// The `act` claim, the new actor outermost.
    pub act: Act,
    /// The `client_id` of the token the exchange chain began with.
    pub subject_client_id: String,
    /// The subject token's `exp`: an exchanged token never outlives it.
    pub expires_at: UnixTime,
}

impl Authority {
    pub(super) fn next_generation(&self, now: UnixTime) -> RefreshGeneration {
        RefreshGeneration {
            jti: TokenId::generate(),
            issued_at: now,
            expires_at: now + self.tokens.refresh_ttl as i64,
            // `issue` signs the generation's access token at its `issued_at`.
            access_lifetime: Some(self.tokens.access_ttl as i64),
        }
    }

    /// A new session (refresh-token family) of `subject` through `client`, its first
    /// generation issued at `issued_at`.
    pub(super) fn new_family(
        &self,
        id: TokenId,
        subject: &str,
        client: &ClientId,
        scope: &Scope,
        audience: &str,
        issued_at: UnixTime,
    ) -> Family {
        Family {
            id,
            subject: subject.to_owned(),
            client_id: client.clone(),
            scope: scope.clone(),
            audience: audience.to_owned(),
            current: self.next_generation(issued_at),
            previous: None,
            rotated_at_ms: None,
            revoked: false,
        }
    }

    /// Signs the access token and, for a family, the refresh token of its current generation.
    /// Signing is deterministic, so a repeat inside the grace window gets the very same token.
    pub(super) fn issue(
        &self,
        grant: &Grant<'_>,
        family: Option<&Family>,
        now: UnixTime,
    ) -> Result<IssuedTokens, ServiceError> {
        let keys = self.keys.current();
        let signer = keys.signer();
        // No longer than the family has recorded (its feed event is kept that long after the
        // generation's `issued_at`), also when a repeat re-signs the generation's tokens on a
        // replica with a longer lifetime.
        let lifetime = self.tokens.access_ttl as i64;
        let lifetime = family
            .and_then(|family| family.current.access_lifetime)
            .map_or(lifetime, |recorded| recorded.min(lifetime));
        let expires_at = now + lifetime;
        let access = access_claims(grant, &self.issuer, now, expires_at);
        // What is left when answered: tokens are dated when the credentials were read (before
        // a password check that may have queued), and a repeat re-signs its first answer's.
        let expires_in = u64::try_from(access.exp - crate::domain::now().max(now)).unwrap_or(0);
        let access_token = sign(signer, TokenKind::Access, &access)?;
        let refresh_token = match family {
            Some(family) => {
                let claims = RefreshClaims {
                    claims: Claims {
                        iss: self.issuer.clone(),
                        sub: family.subject.clone(),
                        aud: self.issuer.clone(),
                        exp: family.current.expires_at,
                        iat: family.current.issued_at,
                        nbf: family.current.issued_at,
                        jti: family.current.jti.to_string(),
                        client_id: family.client_id.to_string(),
                        scope: family.scope.to_string(),
                    },
                    fam: family.id.to_string(),
                };
                Some(sign(signer, TokenKind::Refresh, &claims)?)
            }
            None => None,
        };
        Ok(IssuedTokens {
            access_token,
            expires_in,
            refresh_token,
            scope: grant.scope.clone(),
            id_token: None,
            issued_token_type: grant
                .delegation
                .is_some()
                .then_some(super::ACCESS_TOKEN_TYPE),
        })
    }
}

/// The claims of `grant`'s access token, issued at `now`, expiring at `expires_at` or at its
/// delegation's bound if that comes first.
pub(super) fn access_claims(
    grant: &Grant<'_>,
    issuer: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> AccessClaims {
    let delegation = grant.delegation.as_ref();
    let exp = delegation.map_or(expires_at, |d| expires_at.min(d.expires_at));
    AccessClaims {
        claims: Claims {
            iss: issuer.to_owned(),
            sub: grant.subject.to_owned(),
            aud: grant.audience.to_owned(),
            exp,
            iat: now,
            nbf: now,
            jti: TokenId::generate().to_string(),
            client_id: grant.client_id.to_string(),
            scope: grant.scope.to_string(),
        },
        roles: grant.roles.clone(),
        sid: grant.session.map(ToString::to_string),
        act: delegation.map(|d| d.act.clone()),
        subject_client_id: delegation.map(|d| d.subject_client_id.clone()),
    }
}
