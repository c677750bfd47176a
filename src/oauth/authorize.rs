//! Sign-in in a browser, the issuer's side (OAuth 2.1 §4.1, RFC 7636 PKCE, RFC 9207 `iss`):
//! checking an authorization request, the pending request that the sign-in form carries, the
//! sign-in itself, and the code it ends with. HTTP and HTML are `api::authorize`'s.
//!
//! The pending request travels in the form, signed by the issuer (`typ` `signin+jwt`, for the
//! issuer only), so a page shown by one replica can be posted to another with nothing kept in
//! the store. Its `jti` is the CSRF token: the form's hidden field and a cookie set with the
//! page must both carry it, so a form posted from another site (which can read neither) is
//! refused.

use aws_lc_rs::{constant_time, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::Authority;
use crate::domain::{ClientId, GrantType, Scope, UnixTime, Username, random_token};
use crate::error::ServiceError;
use crate::store::ClientRecord;
use crate::tokens::{Claims, TokenKind, sign};

/// How long a sign-in form may be posted after it was shown, in seconds.
pub const FORM_LIFETIME: i64 = 600;
/// How long an authorization code may be redeemed, in seconds.
pub const CODE_LIFETIME: i64 = 60;
/// The scope that asks for an ID token (OpenID Connect Core §3.1.2.1).
pub const OPENID: &str = "openid";
/// The longest `state` and `nonce` accepted: they travel back in URLs and tokens.
pub(super) const MAX_STATE_LEN: usize = 1024;
const MAX_NONCE_LEN: usize = 256;

/// The parameters of `GET /oauth/authorize`, as received.
#[derive(Debug, Default, Clone)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
}

/// Why an authorization request or a sign-in ends without a code.
#[derive(Debug)]
pub enum AuthorizeError {
    /// About the client, the redirect URI or the form itself: shown to the user, never sent to
    /// a redirect URI, which cannot be trusted with it (RFC 6749 §4.1.2.1).
    Shown(String),
    /// Sent back to the client at its registered redirect URI: the `Location` to send.
    Redirected(String),
    /// The client stopped being first-party after the request was read: the user must be
    /// asked for consent after all.
    ConsentNeeded,
    /// The service's own refusal or failure (429, 503, 500).
    Service(ServiceError),
}

impl From<ServiceError> for AuthorizeError {
    fn from(error: ServiceError) -> Self {
        AuthorizeError::Service(error)
    }
}

impl From<crate::store::StoreError> for AuthorizeError {
    fn from(error: crate::store::StoreError) -> Self {
        AuthorizeError::Service(error.into())
    }
}

/// An authorization request that passed every check, waiting for the user to sign in. Signed
/// into the form as a `signin+jwt`: `sub` and `client_id` are the client, `aud` the issuer,
/// `scope` the scope to grant, and `jti` the CSRF token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    #[serde(flatten)]
    claims: Claims,
    pub redirect_uri: String,
    pub code_challenge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Whether the request named its scope (an admin scope asked for by a non-admin is then
    /// refused rather than left out).
    #[serde(default)]
    pub explicit_scope: bool,
    /// The client is the operator's own: its users are not asked for consent.
    #[serde(default)]
    pub first_party: bool,
    /// Who signed in, once someone has: the consent page's form carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in: Option<SignedIn>,
}

/// A user's sign-in: who, and when the password was checked (OpenID Connect `auth_time`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub username: Username,
    pub auth_time: UnixTime,
    /// The browser's sign-in session (its cookie's `jti`) once one is open. Codes and ID
    /// tokens name it, so that a logout can tell a hint from this browser's own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl std::ops::Deref for PendingAuthorization {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl PendingAuthorization {
    /// The CSRF token bound to this form.
    pub fn csrf_token(&self) -> &str {
        &self.claims.jti
    }

    /// Whether `presented` (from the form and from the cookie) is this form's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        same_token(presented, &self.claims.jti)
    }

    /// The `Location` that tells the client of an error (RFC 6749 §4.1.2.1, RFC 9207).
    pub fn error_location(&self, issuer: &str, error: &str, description: &str) -> String {
        error_location(
            &self.redirect_uri,
            issuer,
            error,
            description,
            self.state.as_deref(),
        )
    }
}

/// Whether two tokens are equal, compared in constant time.
pub(super) fn same_token(presented: &str, expected: &str) -> bool {
    constant_time::verify_slices_are_equal(presented.as_bytes(), expected.as_bytes()).is_ok()
}

/// `redirect_uri` with `params` added to its query, and `iss` (RFC 9207).
pub(super) fn location(redirect_uri: &str, issuer: &str, params: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
                query.append_pair("iss", issuer);
            }
            url.to_string()
        }
        // Registered URIs were parsed when registered; this cannot happen, and a URI that
        // cannot be parsed is not one to send a browser to.
        Err(_) => String::from("about:blank"),
    }
}

fn error_location(
    redirect_uri: &str,
    issuer: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    location(redirect_uri, issuer, &params)
}

/// RFC 7636 §4.2: a challenge made with S256 is 43 characters of base64url.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: a verifier is 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `verifier` hashes to `challenge` (S256), compared in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let hash = digest::digest(&digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(hash.as_ref());
    constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

/// The store key of a code: its SHA-256, so that the store holds nothing redeemable.
pub fn code_key(code: &str) -> String {
    let hash = digest::digest(&digest::SHA256, code.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Printable ASCII, at most `max` characters: what may go back in a URL or a token as is.
pub(super) fn bounded_text(value: &str, max: usize) -> bool {
    value.len() <= max && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Authority {
    /// Checks an authorization request: first the client and the redirect URI (errors about
    /// them are shown, never redirected), then everything else (errors go back to the
    /// redirect URI). Returns the pending request to sign into the form.
    pub async fn check_authorization(
        &self,
        request: &AuthorizationRequest,
        now: UnixTime,
    ) -> Result<PendingAuthorization, AuthorizeError> {
        let client = self.browser_client(request.client_id.as_deref()).await?;
        let redirect_uri = match request.redirect_uri.as_deref() {
            None => {
                return Err(AuthorizeError::Shown(
                    "The application did not say where to return to (redirect_uri).".into(),
                ));
            }
            Some(uri) if client.redirect_uris.contains(uri) => uri.to_owned(),
            Some(_) => {
                return Err(AuthorizeError::Shown(
                    "The application asked to return to an address it has not registered \
                     (redirect_uri)."
                        .into(),
                ));
            }
        };
        let state = request.state.clone();
        let refuse = |error: &str, description: &str| {
            AuthorizeError::Redirected(error_location(
                &redirect_uri,
                &self.issuer,
                error,
                description,
                state.as_deref().filter(|s| bounded_text(s, MAX_STATE_LEN)),
            ))
        };
        if state
            .as_deref()
            .is_some_and(|s| !bounded_text(s, MAX_STATE_LEN))
        {
            return Err(refuse(
                "invalid_request",
                "state must be at most 1024 printable ASCII characters",
            ));
        }
        match request.response_type.as_deref() {
            Some("code") => {}
            None => return Err(refuse("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(refuse(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        if !client.grants.contains(&GrantType::AuthorizationCode) {
            return Err(refuse(
                "unauthorized_client",
                "this client may not use the authorization_code grant",
            ));
        }
        if request.code_challenge_method.as_deref() != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "PKCE is required: code_challenge_method must be S256",
            ));
        }
        let code_challenge = match request.code_challenge.as_deref() {
            Some(challenge) if is_s256_challenge(challenge) => challenge.to_owned(),
            Some(_) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge must be the base64url SHA-256 of the code verifier",
                ));
            }
            None => {
                return Err(refuse(
                    "invalid_request",
                    "PKCE is required: code_challenge is missing",
                ));
            }
        };
        if request
            .nonce
            .as_deref()
            .is_some_and(|n| n.is_empty() || !bounded_text(n, MAX_NONCE_LEN))
        {
            return Err(refuse(
                "invalid_request",
                "nonce must be 1 to 256 printable ASCII characters",
            ));
        }
        let scope = self
            .browser_scope(&client, request.scope.as_deref())
            .map_err(|error| refuse("invalid_scope", &error.to_string()))?;
        Ok(PendingAuthorization {
            claims: Claims {
                iss: self.issuer.clone(),
                sub: client.client_id.to_string(),
                aud: self.issuer.clone(),
                exp: now + FORM_LIFETIME,
                iat: now,
                nbf: now,
                jti: random_token(32),
                client_id: client.client_id.to_string(),
                scope: scope.to_string(),
            },
            redirect_uri,
            code_challenge,
            state,
            nonce: request.nonce.clone(),
            explicit_scope: request.scope.is_some(),
            first_party: client.first_party,
            signed_in: None,
        })
    }

    /// The client named by `client_id`, if it exists and has redirect URIs.
    pub(super) async fn browser_client(
        &self,
        client_id: Option<&str>,
    ) -> Result<ClientRecord, AuthorizeError> {
        let unknown = || {
            AuthorizeError::Shown(
                "The application that sent you here is not registered with this service \
                 (client_id)."
                    .into(),
            )
        };
        let id = client_id.ok_or_else(unknown)?;
        let id = ClientId::parse(id).map_err(|_| unknown())?;
        let client = self.store.get_client(&id).await?.ok_or_else(unknown)?;
        if client.redirect_uris.is_empty() {
            return Err(AuthorizeError::Shown(
                "The application that sent you here cannot sign users in through this page: it \
                 has no registered redirect URI."
                    .into(),
            ));
        }
        Ok(client)
    }

    /// The scope a browser sign-in asks for: as for the password grant (the client's scopes
    /// but the admin ones, or a narrower set, with an admin scope alone), plus `openid`, which
    /// every browser client may ask for.
    fn browser_scope(
        &self,
        client: &ClientRecord,
        asked: Option<&str>,
    ) -> Result<Scope, ServiceError> {
        let parsed = asked
            .map(Scope::parse)
            .transpose()
            .map_err(|e| ServiceError::InvalidScope(e.to_string()))?;
        let openid = parsed.as_ref().is_some_and(|s| s.contains(OPENID));
        let rest = parsed.map(|s| s.filter(|token| token != OPENID).to_string());
        let scope = match rest.as_deref() {
            Some(rest) if !rest.is_empty() => self.scope_asked(Some(rest), &client.scope)?,
            Some(_) => Scope::default(),
            None => self.scope_asked(None, &client.scope)?,
        };
        // An admin scope goes alone, as the password grant has it.
        self.audience_for_scope(client, None, &scope)?;
        if openid {
            return Scope::parse(&format!("{scope} {OPENID}"))
                .map_err(|e| ServiceError::InvalidScope(e.to_string()));
        }
        Ok(scope)
    }

    /// Signs the pending request into a token for the form.
    /// A request too large to carry (a long `state` and `nonce` beside a client's many long
    /// scopes and a long redirect URI) is the caller's error, shown on the page.
    pub fn seal_pending(&self, pending: &PendingAuthorization) -> Result<String, AuthorizeError> {
        let keys = self.keys.current();
        sign(keys.signer(), TokenKind::SignIn, pending).map_err(|error| match error {
            crate::keys::KeyError::Refused(_) => AuthorizeError::Shown(
                "This sign-in request is too large to carry through the sign-in form: its \
                 state, nonce or scope is too long. Go back to the application and start again."
                    .into(),
            ),
            other => AuthorizeError::Service(other.into()),
        })
    }

    /// The pending request a form carries, if this issuer signed it and it is still live.
    pub fn open_pending(
        &self,
        sealed: &str,
        now: UnixTime,
    ) -> Result<PendingAuthorization, AuthorizeError> {
        self.verifier
            .verify_own_at(&self.keys.current(), sealed, TokenKind::SignIn, now)
            .map_err(|_| {
                AuthorizeError::Shown(
                    "This sign-in form has expired or was not issued here. Go back to the \
                     application and start again."
                        .into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifier_matches_its_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_code_verifier(verifier));
        assert!(is_s256_challenge(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(&verifier.replace('d', "e"), challenge));
    }

    #[test]
    fn verifiers_outside_the_unreserved_set_or_length_are_refused() {
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(is_code_verifier(&"a".repeat(128)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn an_error_location_keeps_the_redirect_uri_s_query_and_adds_state_and_iss() {
        let at = error_location(
            "https://app.example/cb?tenant=1",
            "https://id.example",
            "invalid_request",
            "bad",
            Some("s 1"),
        );
        assert_eq!(
            at,
            "https://app.example/cb?tenant=1&error=invalid_request&error_description=bad\
             &state=s+1&iss=https%3A%2F%2Fid.example"
        );
    }
}
