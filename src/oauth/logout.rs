//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), the issuer's side: reading an
//! `id_token_hint`, telling whether it comes from the browser's own sign-in session, checking
//! where to send the browser afterwards, the pending logout a confirmation form carries, and
//! ending the sessions. HTTP and HTML are `api::logout`'s.
//!
//! Any site can send a browser to the logout endpoint, and a top-level navigation carries the
//! `SameSite=Lax` session cookie. So a logout ends a live session at once only when its hint is
//! an ID token issued through that very session (which only the client holds); any other waits
//! for the user to confirm on a page whose form carries the pending logout, signed by the
//! issuer (`typ` `logout+jwt`, 10 minutes). Its `jti` is the CSRF token, bound to the browser
//! by the sign-in form's CSRF cookie exactly as the sign-in form's token is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::Authority;
use super::authorize::{FORM_LIFETIME, MAX_STATE_LEN, SignedIn, bounded_text, same_token};
use super::code_grant::IdClaims;
use crate::audit::{Event, Origin, Record};
use crate::domain::{ClientId, TokenId, UnixTime, random_token};
use crate::error::ServiceError;
use crate::tokens::{Claims, TokenKind, sign};

/// What a valid `id_token_hint` says: an ID token this issuer signed, expired or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutHint {
    /// The user the ID token names.
    pub subject: String,
    /// The client the ID token was issued to (`azp`).
    pub client_id: String,
    /// The client's session (`sid`, the refresh family), ended with the browser's.
    pub sid: String,
    /// The browser session the user signed in with, if the ID token names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_sid: Option<String>,
}

impl LogoutHint {
    /// Whether the ID token was issued through the browser session `signed_in`: only then may
    /// the logout end that session without asking the user.
    pub fn is_of(&self, signed_in: &SignedIn) -> bool {
        match (&self.browser_sid, &signed_in.session) {
            (Some(hinted), Some(current)) => {
                same_token(hinted, current) && self.subject == signed_in.username.as_str()
            }
            _ => false,
        }
    }
}

/// Where a logout returns the browser: a client's registered redirect URI, with `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutReturn {
    /// The client that registered the address.
    pub client_id: String,
    /// The `post_logout_redirect_uri`, as given.
    pub uri: String,
    /// The `Location` to send: the URI with `state`.
    pub location: String,
}

/// Why a logout cannot return the browser where it asked.
#[derive(Debug)]
pub enum ReturnRefused {
    /// The request is in error; the sentence is for the user.
    Refused(&'static str),
    /// The store could not say whether the client registered the address.
    Store(ServiceError),
}

/// A logout waiting for the user to confirm it. Signed into the confirmation form as a
/// `logout+jwt`: `aud` the issuer, `jti` the CSRF token, `sub` and `client_id` the client that
/// asked (empty when none could be trusted), with what the request asked to end and where it
/// asked to return, both already checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogout {
    #[serde(flatten)]
    claims: Claims,
    /// The valid `id_token_hint`, if there was one: its client's session is ended too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<LogoutHint>,
    /// The `post_logout_redirect_uri`, once checked against the client's registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl std::ops::Deref for PendingLogout {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl PendingLogout {
    /// The CSRF token bound to this form.
    pub fn csrf_token(&self) -> &str {
        &self.claims.jti
    }

    /// Whether `presented` (from the form and from the cookie) is this form's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        same_token(presented, &self.claims.jti)
    }

    /// The client whose return address the logout carries, if any.
    pub fn return_client(&self) -> Option<&str> {
        Some(self.claims.client_id.as_str()).filter(|id| !id.is_empty())
    }
}

impl Authority {
    /// Reads an `id_token_hint`: an ID token this issuer signed, for any client, expired or
    /// not (OpenID Connect RP-Initiated Logout §2: an expired ID token still names its
    /// session). It is checked as of when it was issued, its signature and issuer as ever.
    pub fn read_logout_hint(&self, hint: &str, now: UnixTime) -> Result<LogoutHint, ServiceError> {
        let issued = hint
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|payload| serde_json::from_slice::<serde_json::Value>(&payload).ok())
            .and_then(|claims| claims["iat"].as_i64())
            .ok_or_else(|| ServiceError::InvalidRequest("id_token_hint is malformed".into()))?;
        let claims: IdClaims = self
            .verifier
            .verify_id_token_at(&self.keys.current(), hint, issued.min(now))
            .map_err(|e| ServiceError::InvalidRequest(format!("id_token_hint: {e}")))?;
        Ok(LogoutHint {
            subject: claims.claims.sub,
            client_id: claims.azp,
            sid: claims.sid,
            browser_sid: claims.browser_sid,
        })
    }

    /// Where a logout may return the browser: `target` when it is one of the redirect URIs of
    /// the client (the hint's, or the one named, which must then agree); `Ok(None)` without a
    /// target.
    pub async fn logout_return(
        &self,
        hinted: Option<&str>,
        named: Option<&str>,
        target: Option<&str>,
        state: Option<&str>,
    ) -> Result<Option<LogoutReturn>, ReturnRefused> {
        let Some(target) = target else {
            return Ok(None);
        };
        // The same bound as an authorization's `state`, which goes back the same way.
        if state.is_some_and(|state| !bounded_text(state, MAX_STATE_LEN)) {
            return Err(ReturnRefused::Refused(
                "The application's state is longer than 1024 characters or not printable ASCII.",
            ));
        }
        let client = match (hinted, named) {
            (Some(hinted), Some(named)) if hinted != named => None,
            (Some(id), _) | (None, Some(id)) => Some(id),
            (None, None) => None,
        };
        let unregistered = ReturnRefused::Refused(
            "The application asked to return to an address it has not registered.",
        );
        let Some(Ok(id)) = client.map(ClientId::parse) else {
            return Err(unregistered);
        };
        let found = self
            .store
            .get_client(&id)
            .await
            .map_err(|e| ReturnRefused::Store(e.into()))?;
        if !found.is_some_and(|c| c.redirect_uris.iter().any(|uri| uri.as_str() == target)) {
            return Err(unregistered);
        }
        let mut location = reqwest::Url::parse(target)
            .map_err(|_| ReturnRefused::Refused("The return address is not a URL."))?;
        if let Some(state) = state {
            location.query_pairs_mut().append_pair("state", state);
        }
        Ok(Some(LogoutReturn {
            client_id: id.to_string(),
            uri: target.to_owned(),
            location: location.to_string(),
        }))
    }

    /// The pending logout a confirmation form carries, signed for the form.
    pub fn seal_logout(
        &self,
        hint: Option<LogoutHint>,
        back: Option<&LogoutReturn>,
        state: Option<String>,
        now: UnixTime,
    ) -> Result<(String, PendingLogout), ServiceError> {
        let client = back.map(|b| b.client_id.clone()).unwrap_or_default();
        let pending = PendingLogout {
            claims: Claims {
                iss: self.issuer.clone(),
                sub: client.clone(),
                aud: self.issuer.clone(),
                exp: now + FORM_LIFETIME,
                iat: now,
                nbf: now,
                jti: random_token(32),
                client_id: client,
                scope: String::new(),
            },
            hint,
            post_logout_redirect_uri: back.map(|b| b.uri.clone()),
            state: back.and(state),
        };
        let keys = self.keys.current();
        let sealed = sign(keys.signer(), TokenKind::Logout, &pending)?;
        Ok((sealed, pending))
    }

    /// The pending logout a form carries, if this issuer signed it and it is still live.
    pub fn open_logout(&self, sealed: &str, now: UnixTime) -> Option<PendingLogout> {
        self.verifier
            .verify_own_at(&self.keys.current(), sealed, TokenKind::Logout, now)
            .ok()
    }

    /// Ends the browser's session (on every replica: its id goes on the revocation list) and
    /// the client's session a hint names (its refresh and access tokens) when the user asked:
    /// the browser is signed in as the hint's user, or the browser session the hint was signed
    /// in with has been logged out already (a logout at one client, then at the next). An ID
    /// token is no secret (logout URLs carry it, into histories and logs), so holding one alone
    /// ends nothing; a client ends its own session by revoking its refresh token.
    ///
    /// `signed_in` is the live sign-in the cookie stands for ([`Authority::session`], read before
    /// the session ends): a cookie that was logged out, or outlived a password change, has none
    /// and proves nothing.
    pub async fn end_sessions(
        &self,
        cookie: Option<&str>,
        signed_in: Option<&SignedIn>,
        hint: Option<&LogoutHint>,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let asked = match hint {
            Some(hint) if signed_in.is_some_and(|s| s.username.as_str() == hint.subject) => true,
            Some(LogoutHint {
                browser_sid: Some(sid),
                ..
            }) => {
                self.store
                    .is_token_revoked(&TokenId::from_trusted(sid), now)
                    .await?
            }
            _ => false,
        };
        if let Some(claims) = cookie.and_then(|c| self.session_claims(c, now)) {
            self.store
                .revoke_token(&TokenId::from_trusted(&claims.jti), claims.exp)
                .await?;
        }
        if let Some(hint) = hint.filter(|_| asked) {
            self.store
                .revoke_family(&TokenId::from_trusted(&hint.sid), now)
                .await?;
            Record::new(Event::Logout, &hint.subject, &Origin::default())
                .client(&hint.client_id)
                .emit();
        }
        Ok(())
    }
}
