//! The `authorization_code` grant (OAuth 2.1 §4.1.3, RFC 7636 §4.6) and the OpenID Connect ID
//! token it issues for scope `openid`.

use serde::{Deserialize, Serialize};

use super::Authority;
use super::authorize::{CODE_LIFETIME, OPENID, code_key, is_code_verifier, verifier_matches};
use super::client_auth::AuthenticatedClient;
use super::cut_off::issued_at;
use super::grants::{IssuedTokens, TokenRequest, changed_while_signing_in};
use super::issue::Grant;
use crate::audit::{Event, Record};
use crate::domain::{GrantType, TokenId, UnixTime};
use crate::error::ServiceError;
use crate::store::{AuthorizationCode, CodeRedemption};
use crate::tokens::{Claims, TokenKind, sign};

/// OpenID Connect Core §2 ID token claims. Besides the registered ones it carries the
/// issuer's usual `nbf`, `jti`, `client_id` and `scope` (relying parties ignore them), so that
/// the issuer reads its own ID tokens (a logout's `id_token_hint`) as it reads its other tokens.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdClaims {
    #[serde(flatten)]
    pub claims: Claims,
    pub auth_time: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The session (the refresh-token family): the `sid` of the access tokens too.
    pub sid: String,
    pub azp: String,
    /// The browser's sign-in session the user signed in with: a logout whose hint names the
    /// browser's own session ends it without asking (`oauth::logout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_sid: Option<String>,
}

impl std::ops::Deref for IdClaims {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

fn invalid_code() -> ServiceError {
    ServiceError::InvalidGrant(
        "the code is invalid, expired, or was issued for another request".into(),
    )
}

impl Authority {
    pub(super) async fn code_grant(
        &self,
        authenticated: &AuthenticatedClient,
        request: TokenRequest,
        now: UnixTime,
    ) -> Result<IssuedTokens, ServiceError> {
        let client = &authenticated.record;
        let required = |value: Option<String>, name: &str| {
            value.ok_or_else(|| ServiceError::InvalidRequest(format!("{name} is required")))
        };
        let code = required(request.code, "code")?;
        let redirect_uri = required(request.redirect_uri, "redirect_uri")?;
        let verifier = required(request.code_verifier, "code_verifier")?;
        if !is_code_verifier(&verifier) {
            return Err(ServiceError::InvalidRequest(
                "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~".into(),
            ));
        }
        let origin = &request.client.origin;
        let key = code_key(&code);
        // A code is bound to its client, its redirect URI and its PKCE verifier. A request that
        // does not match all three is refused and leaves the code as it is: it neither spends
        // the code nor counts as its replay, so whoever merely saw a code (in a log, in a
        // browser's history) can neither burn it nor end the session it opened. Only a use
        // that could have redeemed it can. The binding never changes, so it is read first.
        let bound = self.store.get_code(&key).await?.ok_or_else(invalid_code)?;
        if bound.client_id != client.client_id
            || bound.redirect_uri != redirect_uri
            || !verifier_matches(&verifier, &bound.code_challenge)
        {
            Record::new(Event::CodeMisused, client.client_id.as_str(), origin)
                .client(client.client_id.as_str())
                .subject(bound.username.as_str())
                .emit();
            return Err(invalid_code());
        }
        // The family is named before the code is spent, so that the spent code remembers it
        // and a second use can revoke what the first one issued.
        let family_id = TokenId::generate();
        let issued = match self.store.redeem_code(&key, &family_id, now).await? {
            CodeRedemption::Redeemed(issued) => issued,
            CodeRedemption::Spent { family } => {
                self.store.revoke_family(&family, now).await?;
                Record::new(Event::CodeReuseDetected, client.client_id.as_str(), origin)
                    .client(client.client_id.as_str())
                    .emit();
                return Err(ServiceError::InvalidGrant(
                    "the code was used before; the tokens issued for it are revoked".into(),
                ));
            }
            CodeRedemption::Invalid => return Err(invalid_code()),
        };
        let (user, cut_offs) = self
            .store
            .user_and_not_before(&issued.username, now)
            .await?;
        let user = user.filter(|u| !u.disabled).ok_or_else(invalid_code)?;
        // A password change or a disable after the sign-in ends it, code included. A change of
        // roles ends access tokens, not the sign-in (its session goes on, as a refresh token's
        // does): it ends only a code made before it, whose scope was decided on the old roles.
        let made = issued.expires_at.saturating_sub(CODE_LIFETIME);
        if cut_offs
            .tokens
            .is_some_and(|cut_off| issued.auth_time < cut_off)
            || cut_offs.for_access().is_some_and(|cut_off| made < cut_off)
        {
            return Err(invalid_code());
        }
        // So does a logout of the browser session the code was made in.
        if let Some(session) = &issued.session
            && self
                .store
                .is_token_revoked(&TokenId::from_trusted(session), now)
                .await?
        {
            return Err(invalid_code());
        }
        let (issued_at, waited) =
            issued_at(now, [cut_offs.for_access(), authenticated.not_before]).await?;
        if waited {
            self.refuse_if_changed(Some(&user), client, changed_while_signing_in)
                .await?;
        }
        // What the client may still have: an admin may have narrowed it since the sign-in.
        let openid = issued.scope.contains(OPENID);
        let scope = issued
            .scope
            .filter(|token| token == OPENID || client.scope.contains(token));
        let api_scope = scope.filter(|token| token != OPENID);
        let audience = self.audience_for_scope(client, None, &api_scope)?;
        // The session exists for every sign-in, so that a replayed code can end it and the ID
        // token can name it; only a client with the refresh grant gets its refresh token.
        let family = self.new_family(
            family_id,
            user.username.as_str(),
            &client.client_id,
            &scope,
            &audience,
            issued_at,
        );
        self.store.create_family(&family).await?;
        // A replay that came between the redemption and the family's creation found nothing to
        // revoke; it marked the code, and this answer revokes instead.
        if self.store.code_replayed(&key).await? {
            self.store.revoke_family(&family.id, now).await?;
            return Err(ServiceError::InvalidGrant(
                "the code was used twice; the tokens issued for it are revoked".into(),
            ));
        }
        let grant = Grant {
            subject: user.username.as_str(),
            client_id: &client.client_id,
            audience: &audience,
            scope: &scope,
            roles: Some(user.roles.iter().cloned().collect()),
            session: Some(&family.id),
            delegation: None,
        };
        let refresh = client.grants.contains(&GrantType::RefreshToken);
        let mut tokens = self.issue(&grant, refresh.then_some(&family), issued_at)?;
        if openid {
            tokens.id_token = Some(self.id_token(&issued, &family.id, issued_at)?);
        }
        self.refuse_if_revoked_meanwhile(&user.username, client, Some(&family), issued_at, now)
            .await?;
        Record::new(Event::TokenIssued, user.username.as_str(), origin)
            .client(client.client_id.as_str())
            .emit();
        Ok(tokens)
    }

    fn id_token(
        &self,
        code: &AuthorizationCode,
        session: &TokenId,
        now: UnixTime,
    ) -> Result<String, ServiceError> {
        let claims = IdClaims {
            claims: Claims {
                iss: self.issuer.clone(),
                sub: code.username.to_string(),
                aud: code.client_id.to_string(),
                exp: now + self.tokens.access_ttl as i64,
                iat: now,
                nbf: now,
                jti: TokenId::generate().to_string(),
                client_id: code.client_id.to_string(),
                scope: code.scope.to_string(),
            },
            auth_time: code.auth_time,
            nonce: code.nonce.clone(),
            sid: session.to_string(),
            azp: code.client_id.to_string(),
            browser_sid: code.session.clone(),
        };
        let keys = self.keys.current();
        Ok(sign(keys.signer(), TokenKind::Id, &claims)?)
    }
}
