//! `GET /oauth/authorize` and its sign-in form (`POST /oauth/authorize`): sign-in in a
//! browser with the authorization code grant and PKCE (OAuth 2.1 §4.1, RFC 7636, RFC 9207).
//!
//! Unlike every other operation these answer with HTML pages or redirects, for a browser:
//! errors about the client or the redirect URI are pages (a redirect URI that was not checked
//! is never redirected to), and other errors go back to the client's redirect URI.

use std::sync::Arc;

use poem::Request;
use poem::http::header;
use poem_openapi::param::Query;
use poem_openapi::payload::Form;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::ApiTags;
use super::errors::{Answer, BODY_TOO_LARGE, error_list};
use super::origin::origin;
use super::sign_in_page::{self, SignInForm, SignInPage};
use crate::domain::{Secret, now};
use crate::error::ServiceError;
use crate::oauth::Authority;
use crate::oauth::authorize::{
    AuthorizationRequest, AuthorizeError, FORM_LIFETIME, PendingAuthorization, SignedIn,
};
use crate::oauth::sign_in::{SESSION_LIFETIME, SignIn};

/// The cookie that carries the sign-in form's CSRF token.
pub(super) const CSRF_COOKIE: &str = "latchkey_csrf";
/// The cookie of the browser's sign-in session.
pub(super) const SESSION_COOKIE: &str = "latchkey_session";
/// What a refused sign-in says: the same for an unknown user, a wrong password and a disabled
/// account, so the form tells nobody which usernames exist.
const REFUSED: &str = "The username or password is not right.";

pub struct AuthorizeApi {
    pub authority: Arc<Authority>,
}

/// The sign-in form as posted.
#[derive(Debug, Default, Deserialize, Object)]
pub struct SignInParams {
    /// The signed authorization request the page carries.
    pub request: Option<String>,
    /// The page's CSRF token; must equal the CSRF cookie set with the page.
    pub csrf_token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// On the consent page: `allow` or `deny`.
    pub decision: Option<String>,
}

#[derive(ApiResponse)]
pub enum AuthorizeResponse {
    /// The sign-in page (again, after a wrong username or password, saying only that). Sets
    /// the CSRF cookie its form must be posted with.
    #[oai(status = 200)]
    Page(
        SignInPage,
        /// The CSRF cookie (`HttpOnly`, `SameSite=Lax`; `Secure` and named
        /// `__Host-latchkey_csrf` unless the issuer is http on a loopback address).
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
    /// Back to the client's redirect URI: with `code`, `state` and `iss` after a sign-in,
    /// or with `error`, `error_description`, `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207).
    #[oai(status = 303)]
    Redirect(
        #[oai(header = "Location")] String,
        /// After a sign-in: the sign-in session cookie (`HttpOnly`, `SameSite=Lax`; `Secure` and
        /// named `__Host-latchkey_session` unless the issuer is http on a loopback address,
        /// where it is `latchkey_session`), with which a later authorization skips the page.
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
    /// A page that says why the request cannot go on: an unknown client, a redirect URI it
    /// did not register, or a form that expired or was not posted from its page.
    #[oai(status = 400)]
    Stopped(SignInPage),
    /// Too many sign-in attempts (the limits of the password grant); a page.
    #[oai(status = 429)]
    Throttled(
        SignInPage,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        String,
    ),
    /// The service cannot serve now; a page.
    #[oai(status = 503)]
    Unavailable(
        SignInPage,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        String,
    ),
    /// An internal error; a page.
    #[oai(status = 500)]
    Failed(SignInPage),
}

fn stopped(message: &str) -> AuthorizeResponse {
    AuthorizeResponse::Stopped(sign_in_page::stopped("Sign-in cannot continue", message))
}

impl From<AuthorizeError> for AuthorizeResponse {
    fn from(error: AuthorizeError) -> Self {
        match error {
            AuthorizeError::Shown(message) => stopped(&message),
            AuthorizeError::Redirected(location) => AuthorizeResponse::Redirect(location, None),
            // Answered with the consent page where it can arise; a page, should it not be.
            AuthorizeError::ConsentNeeded => stopped(
                "The application must now ask for your consent. Go back to it and sign in again.",
            ),
            AuthorizeError::Service(ServiceError::TooManyRequests { retry_after }) => {
                AuthorizeResponse::Throttled(
                    sign_in_page::stopped(
                        "Too many attempts",
                        "There were too many sign-in attempts. Wait a while, then try again.",
                    ),
                    retry_after.to_string(),
                )
            }
            AuthorizeError::Service(ServiceError::Unavailable { retry_after, .. }) => {
                AuthorizeResponse::Unavailable(
                    sign_in_page::stopped(
                        "Try again shortly",
                        "The service cannot sign you in right now.",
                    ),
                    retry_after.to_string(),
                )
            }
            AuthorizeError::Service(ServiceError::InvalidRequest(message)) => stopped(&message),
            AuthorizeError::Service(error) => {
                tracing::error!(%error, "sign-in failed");
                AuthorizeResponse::Failed(sign_in_page::stopped(
                    "Something went wrong",
                    "The service could not sign you in.",
                ))
            }
        }
    }
}

/// The value of the cookie `name` in the request, if sent once.
pub(super) fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    let mut found = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value);
    let first = found.next();
    // Two cookies of one name (one planted for a parent domain, say) prove nothing.
    if found.next().is_some() { None } else { first }
}

/// The first of `names` that `query` gives more than once. RFC 6749 §3.1 forbids repeating
/// a parameter, and a second `redirect_uri` or `client_id` that one reader takes and another
/// ignores is how mix-ups start. Names are compared decoded, as the handlers read them.
pub(super) fn repeated_parameter(
    query: Option<&str>,
    names: &[&'static str],
) -> Option<&'static str> {
    let mut seen = Vec::new();
    for (name, _) in form_urlencoded::parse(query?.as_bytes()) {
        if let Some(&known) = names.iter().find(|known| **known == name) {
            if seen.contains(&known) {
                return Some(known);
            }
            seen.push(known);
        }
    }
    None
}

/// The CSP source that lets a page's form lead to `url`: its origin (`scheme://host[:port]`),
/// or for an IPv6 literal (`http://[::1]:8400`, RFC 8252 §7.3), which no CSP host source can
/// name and browsers drop, its scheme alone.
pub(super) fn csp_source(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    if url.host_str().is_some_and(|host| host.starts_with('[')) {
        return Some(format!("{}:", url.scheme()));
    }
    Some(url.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Whether the issuer's cookies are `Secure`: always, unless the issuer is http on a loopback
/// address, where browsers would drop a `Secure` cookie set over http.
fn secure_cookies(issuer: &str) -> bool {
    reqwest::Url::parse(issuer)
        .map(|url| url.scheme() == "https" || !crate::credentials::is_loopback(&url))
        .unwrap_or(true)
}

/// The name a cookie is set and read by: with the `__Host-` prefix when it is `Secure`, so that
/// browsers take it only from this host, over https, for `Path=/` and without `Domain`. A
/// cookie of the bare name, which a sibling or parent domain can plant, is never read: it
/// could sign a browser in to the planter's account (a planted session) or pass a form posted
/// from that domain (a planted CSRF token).
pub(super) fn cookie_name(issuer: &str, name: &str) -> String {
    if secure_cookies(issuer) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, and `Secure` (with the `__Host-` prefix)
/// unless the issuer is http on a loopback address.
pub(super) fn set_cookie(issuer: &str, name: &str, value: &str, max_age: i64) -> String {
    format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        cookie_name(issuer, name),
        if secure_cookies(issuer) {
            "; Secure"
        } else {
            ""
        }
    )
}

/// The CSRF cookie set with a form's page: the form's token, for as long as the form lives.
pub(super) fn csrf_cookie(issuer: &str, token: &str) -> String {
    set_cookie(issuer, CSRF_COOKIE, token, FORM_LIFETIME)
}

/// Whether a posted form comes from this browser's page: the form's CSRF field and the CSRF
/// cookie set with its page must both be the form's own token (`is_token`).
pub(super) fn csrf_bound(
    req: &Request,
    issuer: &str,
    field: Option<&str>,
    is_token: impl Fn(&str) -> bool,
) -> bool {
    match (field, cookie(req, &cookie_name(issuer, CSRF_COOKIE))) {
        (Some(field), Some(cookie)) => is_token(field) && is_token(cookie),
        _ => false,
    }
}

impl AuthorizeApi {
    fn csrf_cookie(&self, token: &str) -> String {
        csrf_cookie(self.authority.issuer(), token)
    }

    /// The consent page, for a client that is not the operator's own, once the user signed in.
    fn consent(
        &self,
        pending: &PendingAuthorization,
        session: Option<String>,
    ) -> AuthorizeResponse {
        let Some(signed_in) = &pending.signed_in else {
            return stopped("The sign-in is missing.");
        };
        let sealed = match self.authority.seal_pending(pending) {
            Ok(sealed) => sealed,
            Err(error) => return error.into(),
        };
        let page = sign_in_page::consent(&sign_in_page::ConsentForm {
            client_id: &pending.client_id,
            username: signed_in.username.as_str(),
            scopes: pending.scope.split(' ').filter(|s| !s.is_empty()).collect(),
            request: &sealed,
            csrf_token: pending.csrf_token(),
            redirect_origin: csp_source(&pending.redirect_uri),
        });
        // The session cookie, when there is one to set, matters more than a fresh CSRF cookie:
        // the one set with the sign-in page is still good for this form.
        AuthorizeResponse::Page(
            page,
            session.or_else(|| Some(self.csrf_cookie(pending.csrf_token()))),
        )
    }

    /// After a sign-in (or with a live session): a code for a first-party client, the consent
    /// page for any other.
    async fn conclude(
        &self,
        mut pending: PendingAuthorization,
        signed_in: SignedIn,
        session: Option<String>,
        req: &Request,
        now: i64,
    ) -> AuthorizeResponse {
        if pending.first_party {
            match self
                .authority
                .grant_code(&pending, &signed_in, &origin(req), now)
                .await
            {
                Ok(location) => return AuthorizeResponse::Redirect(location, session),
                Err(AuthorizeError::ConsentNeeded) => pending.first_party = false,
                Err(error) => return error.into(),
            }
        }
        pending.signed_in = Some(signed_in);
        self.consent(&pending, session)
    }

    fn form(
        &self,
        pending: &PendingAuthorization,
        username: &str,
        error: Option<&str>,
    ) -> AuthorizeResponse {
        let sealed = match self.authority.seal_pending(pending) {
            Ok(sealed) => sealed,
            Err(error) => return error.into(),
        };
        let page = sign_in_page::sign_in(&SignInForm {
            client_id: &pending.client_id,
            request: &sealed,
            csrf_token: pending.csrf_token(),
            username,
            error,
            redirect_origin: csp_source(&pending.redirect_uri),
        });
        AuthorizeResponse::Page(page, Some(self.csrf_cookie(pending.csrf_token())))
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl AuthorizeApi {
    /// Start a sign-in in a browser
    ///
    /// The authorization endpoint (OAuth 2.1 §4.1.1) for clients registered with redirect
    /// URIs and the grant `authorization_code`. PKCE with `S256` is required. Answers with the
    /// sign-in page (HTML, a form with the fields `username` and `password`), or with a page
    /// that says why the request cannot go on when the client or the redirect URI is not in
    /// order; any other error goes back to the redirect URI.
    #[oai(path = "/oauth/authorize", method = "get", operation_id = "authorize")]
    #[allow(clippy::too_many_arguments)]
    async fn authorize(
        &self,
        /// Always `code`.
        response_type: Query<Option<String>>,
        client_id: Query<Option<String>>,
        /// One of the client's registered redirect URIs, exactly.
        redirect_uri: Query<Option<String>>,
        /// Space-separated; `openid` asks for an ID token.
        scope: Query<Option<String>>,
        /// Returned as is with the code or the error.
        state: Query<Option<String>>,
        /// BASE64URL(SHA-256(code_verifier)), 43 characters.
        code_challenge: Query<Option<String>>,
        /// Always `S256`.
        code_challenge_method: Query<Option<String>>,
        /// OpenID Connect: copied into the ID token.
        nonce: Query<Option<String>>,
        /// OpenID Connect: `login` shows the sign-in page even to a signed-in browser; `none`
        /// never shows a page (without a sign-in session: `login_required`) and goes alone.
        prompt: Query<Option<String>>,
        /// OpenID Connect: seconds since the user last entered a password beyond which the
        /// sign-in page is shown again (`0`: always); with `prompt=none`, `login_required`.
        max_age: Query<Option<String>>,
        req: &Request,
    ) -> AuthorizeResponse {
        const PARAMETERS: [&str; 10] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "prompt",
            "max_age",
        ];
        if let Some(name) = repeated_parameter(req.uri().query(), &PARAMETERS) {
            return stopped(&format!("The request gives {name} more than once."));
        }
        let request = AuthorizationRequest {
            response_type: response_type.0,
            client_id: client_id.0,
            redirect_uri: redirect_uri.0,
            scope: scope.0,
            state: state.0,
            code_challenge: code_challenge.0,
            code_challenge_method: code_challenge_method.0,
            nonce: nonce.0,
        };
        let now = now();
        let pending = match self.authority.check_authorization(&request, now).await {
            Ok(pending) => pending,
            Err(error) => return error.into(),
        };
        let refused = |error: &str, why: &str| {
            AuthorizeResponse::Redirect(
                pending.error_location(self.authority.issuer(), error, why),
                None,
            )
        };
        let prompt = prompt.0.unwrap_or_default();
        let prompts: Vec<&str> = prompt.split(' ').filter(|p| !p.is_empty()).collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return refused("invalid_request", "prompt=none goes alone");
        }
        // A parameter sent without a value is one not sent (RFC 6749 §3.1).
        let max_age = match max_age
            .0
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(str::parse::<u64>)
        {
            None => None,
            Some(Ok(seconds)) => Some(i64::try_from(seconds).unwrap_or(i64::MAX)),
            Some(Err(_)) => {
                return refused(
                    "invalid_request",
                    "max_age must be a whole number of seconds",
                );
            }
        };
        if !prompts.contains(&"login")
            && let Some(cookie) = cookie(req, &cookie_name(self.authority.issuer(), SESSION_COOKIE))
        {
            match self.authority.session(cookie, now).await {
                // A session whose password was entered longer ago than `max_age` signs in again.
                Ok(Some(signed_in))
                    if (!prompts.contains(&"none") || pending.first_party)
                        && max_age
                            .is_none_or(|age| now.saturating_sub(signed_in.auth_time) < age) =>
                {
                    return self.conclude(pending, signed_in, None, req, now).await;
                }
                Ok(_) => {}
                Err(error) => return AuthorizeError::Service(error).into(),
            }
        }
        if prompts.contains(&"none") {
            let (error, why) = if pending.first_party {
                ("login_required", "the user is not signed in")
            } else {
                ("consent_required", "the user must sign in and consent")
            };
            return refused(error, why);
        }
        self.form(&pending, "", None)
    }

    /// Sign in (the sign-in page's form)
    ///
    /// Checks the username and password under the limits of the password grant. On success,
    /// redirects (303) to the client's redirect URI with `code`, `state` and `iss`; the code
    /// is good once, for 60 seconds, at the token endpoint with the PKCE verifier. A wrong
    /// username or password shows the page again with a message that does not say which.
    #[oai(path = "/oauth/authorize", method = "post", operation_id = "sign_in")]
    async fn sign_in(
        &self,
        req: &Request,
        body: Form<SignInParams>,
    ) -> Answer<AuthorizeResponse, SignInErrors> {
        Ok(self.signed_in(req, body.0).await)
    }
}

error_list!(
    /// What `POST /oauth/authorize` answers besides its pages, before the form is read.
    SignInErrors: BODY_TOO_LARGE,
);

impl AuthorizeApi {
    async fn signed_in(&self, req: &Request, form: SignInParams) -> AuthorizeResponse {
        let now = now();
        let expired = "This sign-in form has expired or was not sent from its page. Go back to \
                       the application and start again.";
        let Some(sealed) = form.request.as_deref() else {
            return stopped(expired);
        };
        let pending = match self.authority.open_pending(sealed, now) {
            Ok(pending) => pending,
            Err(error) => return error.into(),
        };
        let issuer = self.authority.issuer();
        if !csrf_bound(req, issuer, form.csrf_token.as_deref(), |t| {
            pending.csrf_matches(t)
        }) {
            return stopped(expired);
        }
        if pending.signed_in.is_some() {
            return self
                .decided(pending, form.decision.as_deref(), req, now)
                .await;
        }
        let username = form.username.unwrap_or_default();
        let password = form.password.unwrap_or_default();
        if username.is_empty() || password.is_empty() {
            return self.form(
                &pending,
                &username,
                Some("Enter your username and password."),
            );
        }
        let outcome = self
            .authority
            .sign_in(
                &pending,
                &username,
                Secret::new(password),
                &origin(req),
                now,
            )
            .await;
        let mut signed_in = match outcome {
            Ok(SignIn::Done(signed_in)) => signed_in,
            Ok(SignIn::Refused) => return self.form(&pending, &username, Some(REFUSED)),
            Err(error) => return error.into(),
        };
        let session = match self
            .authority
            .open_session(&mut signed_in, &pending.client_id, now)
        {
            Ok(value) => set_cookie(
                self.authority.issuer(),
                SESSION_COOKIE,
                &value,
                SESSION_LIFETIME,
            ),
            Err(error) => return AuthorizeError::Service(error).into(),
        };
        self.conclude(pending, signed_in, Some(session), req, now)
            .await
    }

    /// The consent page's answer: a code on `allow`, `access_denied` on anything else.
    async fn decided(
        &self,
        pending: PendingAuthorization,
        decision: Option<&str>,
        req: &Request,
        now: i64,
    ) -> AuthorizeResponse {
        let Some(signed_in) = pending.signed_in.clone() else {
            return stopped("The sign-in is missing.");
        };
        if decision != Some("allow") {
            let location = pending.error_location(
                self.authority.issuer(),
                "access_denied",
                "the user did not allow access",
            );
            return AuthorizeResponse::Redirect(location, None);
        }
        match self
            .authority
            .grant_code(&pending, &signed_in, &origin(req), now)
            .await
        {
            Ok(location) => AuthorizeResponse::Redirect(location, None),
            Err(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_given_twice_counts_as_none() {
        let req = Request::builder()
            .header(header::COOKIE, "a=1; latchkey_csrf=x")
            .finish();
        assert_eq!(cookie(&req, CSRF_COOKIE), Some("x"));
        let req = Request::builder()
            .header(header::COOKIE, "latchkey_csrf=x; latchkey_csrf=y")
            .finish();
        assert_eq!(cookie(&req, CSRF_COOKIE), None);
    }
}
