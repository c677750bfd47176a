//! `GET /oauth/logout`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) for
//! sign-in in a browser.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use super::authorize::{SESSION_COOKIE, cookie, cookie_name, set_cookie};
use super::sign_in_page::{self, SignInPage};
use crate::domain::{ClientId, now};
use crate::error::ServiceError;
use crate::oauth::Authority;

pub struct LogoutApi {
    pub authority: Arc<Authority>,
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// Signed out; nowhere to return to. A page; the session cookie is cleared.
    #[oai(status = 200)]
    SignedOut(
        SignInPage,
        /// Clears the sign-in session cookie.
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// Signed out; back to the client's `post_logout_redirect_uri` (with `state`).
    #[oai(status = 303)]
    Redirect(
        #[oai(header = "Location")] String,
        /// Clears the sign-in session cookie.
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// The `id_token_hint` is not an ID token of this issuer, or the
    /// `post_logout_redirect_uri` is not one the client registered. A page; the browser's
    /// session is ended all the same.
    #[oai(status = 400)]
    Refused(
        SignInPage,
        /// Clears the sign-in session cookie.
        #[oai(header = "Set-Cookie")]
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
}

fn refused(message: &str, cleared: String) -> LogoutResponse {
    LogoutResponse::Refused(
        sign_in_page::stopped("Signed out, but not sent back", message),
        cleared,
    )
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl LogoutApi {
    /// Sign out of the browser's session
    ///
    /// Ends the browser's sign-in session on every replica, and with `id_token_hint` (an ID
    /// token this issuer gave the client, expired or not) the client's session it names
    /// (`sid`: its refresh and access tokens). Returns to `post_logout_redirect_uri` when it
    /// is one of the client's registered redirect URIs, else shows a page.
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
        let issuer = self.authority.issuer().to_owned();
        let cleared = set_cookie(&issuer, SESSION_COOKIE, "", 0);
        let hint = match self
            .authority
            .end_browser_session(
                cookie(req, &cookie_name(&issuer, SESSION_COOKIE)),
                id_token_hint.0.as_deref(),
                now(),
            )
            .await
        {
            Ok(hint) => hint,
            Err(ServiceError::Unavailable { retry_after, .. }) => {
                return LogoutResponse::Unavailable(
                    sign_in_page::stopped(
                        "Try again shortly",
                        "The service cannot sign you out right now.",
                    ),
                    retry_after.to_string(),
                );
            }
            Err(_) => {
                return refused(
                    "The application's sign-out request is not valid (id_token_hint).",
                    cleared,
                );
            }
        };
        let Some(target) = post_logout_redirect_uri.0 else {
            return LogoutResponse::SignedOut(sign_in_page::signed_out(), cleared);
        };
        let client = match (hint.client_id, client_id.0) {
            (Some(hinted), Some(named)) if hinted != named => None,
            (Some(id), _) | (None, Some(id)) => Some(id),
            (None, None) => None,
        };
        let registered = match client.as_deref().map(ClientId::parse) {
            Some(Ok(id)) => match self.authority.store().get_client(&id).await {
                Ok(found) => found.is_some_and(|c| c.redirect_uris.contains(&target)),
                Err(_) => false,
            },
            _ => false,
        };
        if !registered {
            return refused(
                "The application asked to return to an address it has not registered.",
                cleared,
            );
        }
        let mut location = match reqwest::Url::parse(&target) {
            Ok(url) => url,
            Err(_) => return refused("The return address is not a URL.", cleared),
        };
        if let Some(state) = state.0 {
            location.query_pairs_mut().append_pair("state", &state);
        }
        LogoutResponse::Redirect(location.to_string(), cleared)
    }
}
