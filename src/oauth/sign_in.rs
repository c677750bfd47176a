//! The user's side of sign-in in a browser: the password check (under the password grant's
//! limits), the code that ends a sign-in, and the browser's sign-in session that lets a second
//! authorization skip the page (`oauth::logout` ends it).
//!
//! The session is a cookie holding a token this issuer signed for itself (`typ`
//! `session+jwt`): who signed in, when, and the session's id as `jti`. Every replica reads it
//! without the store; a logout puts the id on the revocation list until the session would have
//! expired (a `jti` nothing else carries), so it ends on every replica at once. A password
//! change or a disable ends it too: it is dated like a token, by when the password was checked.

use serde::{Deserialize, Serialize};

use super::Authority;
use super::authorize::{
    AuthorizeError, CODE_LIFETIME, OPENID, PendingAuthorization, SignedIn, code_key, location,
};
use crate::audit::{Event, Origin, Record};
use crate::domain::{GrantType, Scope, Secret, TokenId, UnixTime, Username, random_token};
use crate::error::ServiceError;
use crate::store::{AuthorizationCode, UserRecord};
use crate::tokens::{Claims, TokenKind, sign};

/// How long a browser's sign-in session lasts, in seconds.
pub const SESSION_LIFETIME: i64 = 12 * 3600;

/// What a password sign-in came to.
#[derive(Debug)]
pub enum SignIn {
    Done(SignedIn),
    /// A wrong username or password (or a disabled account): show the form again, saying
    /// only that.
    Refused,
}

/// The session cookie's claims: `sub` the user, `jti` the session id, `aud` the issuer,
/// `client_id` the client signed in to first.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SessionClaims {
    #[serde(flatten)]
    claims: Claims,
    auth_time: UnixTime,
}

impl std::ops::Deref for SessionClaims {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl Authority {
    /// Checks a username and password under the limits of the password grant (the attempt is
    /// reserved before the password is checked; an unknown user costs a check as well).
    pub async fn sign_in(
        &self,
        pending: &PendingAuthorization,
        username: &str,
        password: Secret,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<SignIn, AuthorizeError> {
        let client = self.browser_client(Some(&pending.client_id)).await?;
        let attempt = self
            .reserve_login(username, client.client_id.as_str(), origin, now)
            .await?;
        let (user, _) = self
            .check_password(&attempt, username, password, now)
            .await?;
        let Some(user) = user else {
            Record::new(
                Event::LoginFailed,
                &super::grants::truncate(username),
                origin,
            )
            .client(client.client_id.as_str())
            .emit();
            return Ok(SignIn::Refused);
        };
        self.login_succeeded(&attempt).await?;
        Record::new(Event::Login, user.username.as_str(), origin)
            .client(client.client_id.as_str())
            .emit();
        Ok(SignIn::Done(SignedIn {
            username: user.username,
            auth_time: now,
            session: None,
        }))
    }

    /// Ends a sign-in with a code for the pending request, and returns the `Location` that
    /// takes the browser back to the client with it. The client and the user are read again:
    /// the client may have lost the redirect URI, the grant or its first-party standing (then
    /// [`AuthorizeError::ConsentNeeded`]: a form shown before may not skip consent), the user
    /// been disabled or had the password changed since the sign-in.
    pub async fn grant_code(
        &self,
        pending: &PendingAuthorization,
        signed_in: &SignedIn,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<String, AuthorizeError> {
        let client = self.browser_client(Some(&pending.client_id)).await?;
        if !client.redirect_uris.contains(&pending.redirect_uri) {
            return Err(AuthorizeError::Shown(
                "The application may no longer return to the address it asked for.".into(),
            ));
        }
        if !client.grants.contains(&GrantType::AuthorizationCode) {
            return Err(AuthorizeError::Redirected(pending.error_location(
                &self.issuer,
                "unauthorized_client",
                "this client may not use the authorization_code grant",
            )));
        }
        if pending.first_party && !client.first_party {
            return Err(AuthorizeError::ConsentNeeded);
        }
        let Some(user) = self.signed_in_user(signed_in, now).await? else {
            return Err(AuthorizeError::Shown(
                "Your sign-in has ended. Go back to the application and sign in again.".into(),
            ));
        };
        let asked =
            Scope::parse(&pending.scope).map_err(|e| ServiceError::InvalidScope(e.to_string()))?;
        let rest = asked.filter(|token| token != OPENID);
        let scope = match self.scope_for_user(&user, rest, pending.explicit_scope, &client, origin)
        {
            Ok(scope) => scope,
            Err(error) => {
                return Err(AuthorizeError::Redirected(pending.error_location(
                    &self.issuer,
                    "access_denied",
                    &error.to_string(),
                )));
            }
        };
        let scope = if asked.contains(OPENID) {
            Scope::parse(&format!("{scope} {OPENID}"))
                .map_err(|e| ServiceError::InvalidScope(e.to_string()))?
        } else {
            scope
        };
        let code = random_token(32);
        let record = AuthorizationCode {
            client_id: client.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            scope,
            nonce: pending.nonce.clone(),
            username: user.username.clone(),
            auth_time: signed_in.auth_time,
            session: signed_in.session.clone(),
            expires_at: now + CODE_LIFETIME,
        };
        self.store.create_code(&code_key(&code), &record).await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = pending.state.as_deref() {
            params.push(("state", state));
        }
        Ok(location(&pending.redirect_uri, &self.issuer, &params))
    }

    /// The user of a sign-in, if the account is still enabled, no revocation (a password
    /// change, a disable) came after the sign-in, and its browser session (once it has one) was
    /// not logged out: a form still open in that browser ends nothing after a logout.
    async fn signed_in_user(
        &self,
        signed_in: &SignedIn,
        now: UnixTime,
    ) -> Result<Option<UserRecord>, ServiceError> {
        if let Some(session) = &signed_in.session
            && self
                .store
                .is_token_revoked(&TokenId::from_trusted(session), now)
                .await?
        {
            return Ok(None);
        }
        let (user, cut_offs) = self
            .store
            .user_and_not_before(&signed_in.username, now)
            .await?;
        let revoked = cut_offs
            .tokens
            .is_some_and(|cut_off| signed_in.auth_time < cut_off);
        Ok(user.filter(|u| !u.disabled && !revoked))
    }

    /// The value of the session cookie for a sign-in, which from now on names the session.
    pub fn open_session(
        &self,
        signed_in: &mut SignedIn,
        client_id: &str,
        now: UnixTime,
    ) -> Result<String, ServiceError> {
        let id = TokenId::generate().to_string();
        let claims = SessionClaims {
            claims: Claims {
                iss: self.issuer.clone(),
                sub: signed_in.username.to_string(),
                aud: self.issuer.clone(),
                exp: now + SESSION_LIFETIME,
                iat: signed_in.auth_time,
                nbf: signed_in.auth_time,
                jti: id.clone(),
                client_id: client_id.to_owned(),
                scope: String::new(),
            },
            auth_time: signed_in.auth_time,
        };
        let keys = self.keys.current();
        let value = sign(keys.signer(), TokenKind::Session, &claims)?;
        signed_in.session = Some(id);
        Ok(value)
    }

    /// The sign-in a session cookie stands for, if the cookie is this issuer's, live, not
    /// logged out, and its user may still sign in.
    pub async fn session(
        &self,
        cookie: &str,
        now: UnixTime,
    ) -> Result<Option<SignedIn>, ServiceError> {
        let Some(claims) = self.session_claims(cookie, now) else {
            return Ok(None);
        };
        let Ok(username) = Username::parse(&claims.sub) else {
            return Ok(None);
        };
        let signed_in = SignedIn {
            username,
            auth_time: claims.auth_time,
            session: Some(claims.claims.jti),
        };
        Ok(self
            .signed_in_user(&signed_in, now)
            .await?
            .map(|_| signed_in))
    }

    pub(super) fn session_claims(&self, cookie: &str, now: UnixTime) -> Option<SessionClaims> {
        self.verifier
            .verify_own_at(&self.keys.current(), cookie, TokenKind::Session, now)
            .ok()
    }
}
