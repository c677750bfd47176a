//! `GET /oauth/logout` and its confirmation form (`POST /oauth/logout`): RP-initiated logout
//! (OpenID Connect RP-Initiated Logout 1.0) for sign-in in a browser.
//!
//! Another site can send a browser here, so a live sign-in session is ended at once only for
//! an `id_token_hint` issued through that session; any other request gets a page that asks the
//! user to confirm, whose form is bound to the browser by the sign-in form's CSRF cookie.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Form;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::ApiTags;
use super::authorize::{
    SESSION_COOKIE, cookie, cookie_name, csp_source, csrf_bound, csrf_cookie, repeated_parameter,
    set_cookie,
};
use super::errors::{Answer, BODY_TOO_LARGE, error_list};
use super::sign_in_page::{self, LogoutForm, SignInPage};
use crate::domain::{UnixTime, now};
use crate::error::ServiceError;
use crate::oauth::Authority;
use crate::oauth::authorize::SignedIn;
use crate::oauth::logout::{LogoutHint, LogoutReturn, ReturnRefused};

/// What a refused `id_token_hint` says to the user.
const BAD_HINT: &str = "The application's sign-out request is not valid (id_token_hint).";

pub struct LogoutApi {
    pub authority: Arc<Authority>,
}

/// The logout confirmation form as posted.
#[derive(Debug, Default, Deserialize, Object)]
pub struct EndSessionParams {
    /// The signed pending logout the page carries.
    pub request: Option<String>,
    /// The page's CSRF token; must equal the CSRF cookie set with the page.
    pub csrf_token: Option<String>,
    /// `sign_out` (the default) or `stay`.
    pub decision: Option<String>,
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// A page: signed out with nowhere to return to (the header clears the session cookie);
    /// or, when the browser has a live sign-in session and the request did not come with an
    /// `id_token_hint` issued through it, the page that asks the user to confirm, ending nothing
    /// yet (the header sets the CSRF cookie its form must be posted with); or, after "Stay
    /// signed in", a page that says so (no header).
    #[oai(status = 200)]
    Page(
        SignInPage,
        /// Clears the sign-in session cookie, or sets the CSRF cookie (`HttpOnly`,
        /// `SameSite=Lax`; `Secure` and named `__Host-latchkey_csrf` unless the issuer is http
        /// on a loopback address).
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
    /// Signed out; back to the client's `post_logout_redirect_uri` (with `state`).
    #[oai(status = 303)]
    Redirect(
        #[oai(header = "Location")] String,
        /// Clears the sign-in session cookie.
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// A page, and no redirect: the `id_token_hint` is not an ID token of this issuer, the
    /// `post_logout_redirect_uri` is not one the client registered, or a confirmation form
    /// expired or was not posted from its page (which ends nothing). Without a live sign-in
    /// session, or once the user confirmed, the session is ended all the same (the header
    /// clears its cookie); a live session is not ended by a request in error, and the page
    /// offers to sign out (the header sets the CSRF cookie of its form).
    #[oai(status = 400)]
    Refused(
        SignInPage,
        /// Clears the sign-in session cookie, or sets the CSRF cookie.
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
    /// The service cannot serve now; a page. Nothing was ended, or not all of it: ask again.
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

impl From<ServiceError> for LogoutResponse {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Unavailable { retry_after, .. } => LogoutResponse::Unavailable(
                sign_in_page::stopped(
                    "Try again shortly",
                    "The service cannot sign you out right now.",
                ),
                retry_after.to_string(),
            ),
            error => {
                tracing::error!(%error, "logout failed");
                LogoutResponse::Failed(sign_in_page::stopped(
                    "Something went wrong",
                    "The service could not sign you out.",
                ))
            }
        }
    }
}

/// What a logout asks besides its hint: where to return, for which client, with what `state`.
struct LogoutRequest {
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl LogoutApi {
    /// Sign out of the browser's session
    ///
    /// With an `id_token_hint` issued through the browser's sign-in session (an ID token this
    /// issuer gave the client, expired or not), ends the browser's sign-in session on every
    /// replica and the client's session the hint names (`sid`: its refresh and access tokens),
    /// then returns to `post_logout_redirect_uri` when it is one of the client's registered
    /// redirect URIs, else shows a page. A browser without a live session returns the same way
    /// and ends the hint's client session only if the browser session the hint was signed in
    /// with has been logged out already: an ID token alone proves nothing. Any other request
    /// (which another site can send a browser with) ends nothing: it answers a page that asks
    /// the user to confirm, whose form posts to `POST /oauth/logout`.
    #[oai(path = "/oauth/logout", method = "get", operation_id = "end_session")]
    async fn logout(
        &self,
        req: &Request,
        id_token_hint: Query<Option<String>>,
        /// One of the client's registered redirect URIs, exactly.
        post_logout_redirect_uri: Query<Option<String>>,
        /// The client, when there is no `id_token_hint`.
        client_id: Query<Option<String>>,
        /// Returned as is with the redirect.
        state: Query<Option<String>>,
    ) -> LogoutResponse {
        const PARAMETERS: [&str; 4] = [
            "id_token_hint",
            "post_logout_redirect_uri",
            "client_id",
            "state",
        ];
        if let Some(name) = repeated_parameter(req.uri().query(), &PARAMETERS) {
            return LogoutResponse::Refused(
                sign_in_page::stopped(
                    "Sign-out cannot continue",
                    &format!("The request gives {name} more than once. You are still signed in."),
                ),
                None,
            );
        }
        let now = now();
        let request = LogoutRequest {
            post_logout_redirect_uri: post_logout_redirect_uri.0,
            client_id: client_id.0,
            state: state.0,
        };
        let session = self.session_cookie(req);
        let signed_in = match self.signed_in(session, now).await {
            Ok(found) => found,
            Err(error) => return error.into(),
        };
        let hint = id_token_hint
            .0
            .as_deref()
            .map(|hint| self.authority.read_logout_hint(hint, now))
            .transpose();
        let Some(signed_in) = signed_in else {
            // No live session: nothing another site could take from the user, and nothing that
            // proves the hint's user asked (see `end_sessions`).
            return self.end(session, None, hint, &request, now).await;
        };
        match hint {
            Ok(Some(hint)) if hint.is_of(&signed_in) => {
                self.end(session, Some(&signed_in), Ok(Some(hint)), &request, now)
                    .await
            }
            Ok(hint) => {
                self.confirmation(signed_in.username.as_str(), hint, &request, None, now)
                    .await
            }
            Err(_) => {
                self.confirmation(
                    signed_in.username.as_str(),
                    None,
                    &request,
                    Some(BAD_HINT),
                    now,
                )
                .await
            }
        }
    }

    /// Sign out, confirmed (the logout page's form)
    ///
    /// Checks the form's CSRF token against the CSRF cookie set with the page. With
    /// `decision=stay`, ends nothing. Otherwise ends the browser's sign-in session on every
    /// replica and the client's session the request's `id_token_hint` named if the browser is
    /// signed in as its user, then returns to
    /// the `post_logout_redirect_uri` the request gave (with `state`) or shows a page. A form
    /// without a valid CSRF token is refused with a page, and ends nothing.
    #[oai(
        path = "/oauth/logout",
        method = "post",
        operation_id = "confirm_end_session"
    )]
    async fn confirm(
        &self,
        req: &Request,
        body: Form<EndSessionParams>,
    ) -> Answer<LogoutResponse, LogoutErrors> {
        Ok(self.confirmed(req, body.0).await)
    }
}

error_list!(
    /// What `POST /oauth/logout` answers besides its pages, before the form is read.
    LogoutErrors: BODY_TOO_LARGE,
);

impl LogoutApi {
    /// Where the logout `request` may return the browser, for the client of `hint` if any.
    async fn return_of(
        &self,
        hint: Option<&LogoutHint>,
        request: &LogoutRequest,
    ) -> Result<Option<LogoutReturn>, ReturnRefused> {
        self.authority
            .logout_return(
                hint.map(|h| h.client_id.as_str()),
                request.client_id.as_deref(),
                request.post_logout_redirect_uri.as_deref(),
                request.state.as_deref(),
            )
            .await
    }

    fn session_cookie<'a>(&self, req: &'a Request) -> Option<&'a str> {
        cookie(req, &cookie_name(self.authority.issuer(), SESSION_COOKIE))
    }

    /// The live sign-in that the browser's session cookie stands for, read once per logout.
    async fn signed_in(
        &self,
        session: Option<&str>,
        now: UnixTime,
    ) -> Result<Option<SignedIn>, ServiceError> {
        match session {
            Some(value) => self.authority.session(value, now).await,
            None => Ok(None),
        }
    }

    /// Ends the sessions and answers: back to the client, or a page. `signed_in` is the
    /// browser's live sign-in that `session` stands for, if it has one.
    async fn end(
        &self,
        session: Option<&str>,
        signed_in: Option<&SignedIn>,
        hint: Result<Option<LogoutHint>, ServiceError>,
        request: &LogoutRequest,
        now: UnixTime,
    ) -> LogoutResponse {
        let cleared = set_cookie(self.authority.issuer(), SESSION_COOKIE, "", 0);
        let valid = hint.as_ref().ok().and_then(Option::as_ref);
        let ended = self
            .authority
            .end_sessions(session, signed_in, valid, now)
            .await;
        if let Err(error) = ended {
            return error.into();
        }
        let refused = |message: &str| {
            LogoutResponse::Refused(
                sign_in_page::stopped("Signed out, but not sent back", message),
                Some(cleared.clone()),
            )
        };
        let hint = match hint {
            Ok(hint) => hint,
            Err(_) => return refused(BAD_HINT),
        };
        let back = self.return_of(hint.as_ref(), request).await;
        match back {
            Ok(Some(back)) => LogoutResponse::Redirect(back.location, cleared),
            Ok(None) => LogoutResponse::Page(sign_in_page::signed_out(), Some(cleared)),
            Err(ReturnRefused::Refused(message)) => refused(message),
            // The sessions have ended (the store took their revocation); only the way back
            // is unknown for now.
            Err(ReturnRefused::Store(ServiceError::Unavailable { retry_after, .. })) => {
                LogoutResponse::Unavailable(
                    sign_in_page::stopped(
                        "Signed out, but not sent back",
                        "The service could not check the address to return to.",
                    ),
                    retry_after.to_string(),
                )
            }
            Err(ReturnRefused::Store(error)) => error.into(),
        }
    }

    /// The page that asks the user to confirm, ending nothing. A request in error (`error`, or
    /// a return address the client did not register) is answered 400, and its form returns
    /// nowhere.
    async fn confirmation(
        &self,
        username: &str,
        hint: Option<LogoutHint>,
        request: &LogoutRequest,
        mut error: Option<&str>,
        now: UnixTime,
    ) -> LogoutResponse {
        let back = if error.is_some() {
            None
        } else {
            match self.return_of(hint.as_ref(), request).await {
                Ok(back) => back,
                Err(ReturnRefused::Refused(message)) => {
                    error = Some(message);
                    None
                }
                Err(ReturnRefused::Store(error)) => return error.into(),
            }
        };
        // The client is named on the page only when the request proved it.
        let client = hint
            .as_ref()
            .map(|h| h.client_id.clone())
            .or_else(|| back.as_ref().map(|b| b.client_id.clone()));
        let (sealed, pending) =
            match self
                .authority
                .seal_logout(hint, back.as_ref(), request.state.clone(), now)
            {
                Ok(sealed) => sealed,
                Err(_) => {
                    return LogoutResponse::Refused(
                        sign_in_page::stopped(
                            "Sign-out cannot continue",
                            "This sign-out request is too large to carry through the page: its \
                             state is too long. You are still signed in.",
                        ),
                        None,
                    );
                }
            };
        let page = sign_in_page::confirm_logout(&LogoutForm {
            username,
            client_id: client.as_deref(),
            request: &sealed,
            csrf_token: pending.csrf_token(),
            error,
            redirect_origin: back.as_ref().and_then(|b| csp_source(&b.uri)),
        });
        let csrf = csrf_cookie(self.authority.issuer(), pending.csrf_token());
        if error.is_some() {
            LogoutResponse::Refused(page, Some(csrf))
        } else {
            LogoutResponse::Page(page, Some(csrf))
        }
    }

    /// The confirmation form's answer.
    async fn confirmed(&self, req: &Request, form: EndSessionParams) -> LogoutResponse {
        let now = now();
        let expired = LogoutResponse::Refused(
            sign_in_page::stopped(
                "Sign-out cannot continue",
                "This sign-out form has expired or was not sent from its page. You are still \
                 signed in; go back to the application and sign out again.",
            ),
            None,
        );
        let Some(pending) = form
            .request
            .as_deref()
            .and_then(|sealed| self.authority.open_logout(sealed, now))
        else {
            return expired;
        };
        let issuer = self.authority.issuer();
        if !csrf_bound(req, issuer, form.csrf_token.as_deref(), |t| {
            pending.csrf_matches(t)
        }) {
            return expired;
        }
        if form.decision.as_deref() == Some("stay") {
            return LogoutResponse::Page(sign_in_page::still_signed_in(), None);
        }
        let request = LogoutRequest {
            post_logout_redirect_uri: pending.post_logout_redirect_uri.clone(),
            client_id: pending.return_client().map(str::to_owned),
            state: pending.state.clone(),
        };
        let session = self.session_cookie(req);
        let signed_in = match self.signed_in(session, now).await {
            Ok(found) => found,
            Err(error) => return error.into(),
        };
        self.end(session, signed_in.as_ref(), Ok(pending.hint), &request, now)
            .await
    }
}
