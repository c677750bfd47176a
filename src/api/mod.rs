//! The HTTP API: one `#[OpenApi]` struct per area, assembled into one documented service.

mod account;
mod admin;
mod authorize;
mod direct_json;
mod document;
pub mod errors;
mod examples;
mod health;
pub mod jwks;
pub mod limits;
mod logout;
pub mod metrics;
pub mod middleware;
mod oauth;
pub mod observe;
mod optional_body;
pub mod origin;
mod revocations;
mod sign_in_page;
mod strict_json;
mod well_known;

use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

use crate::configuration::Settings;
use crate::oauth::Authority;

pub use health::StartUp;
pub use well_known::ServerMetadata;

#[derive(Tags)]
pub enum ApiTags {
    /// Token issuance, revocation and introspection (RFC 6749, 7009, 7662).
    OAuth,
    /// Keys and metadata for clients and resource servers (RFC 7517, 8414).
    Discovery,
    /// A user's own account.
    Account,
    /// Health checks.
    Operations,
    /// Users and clients, for users with role `admin`, with an access token for the admin API:
    /// one asked for with scope `admin`, whose audience is `admin_audience` of the metadata.
    Admin,
}

pub type Api = document::Documented<(
    oauth::OAuthApi,
    authorize::AuthorizeApi,
    logout::LogoutApi,
    well_known::WellKnownApi,
    account::AccountApi,
    health::HealthApi,
    revocations::RevocationsApi,
    admin::AdminApi,
)>;

/// The documented API. `server_url` is listed in the document as where it is served.
pub fn service(authority: Arc<Authority>, settings: &Settings) -> OpenApiService<Api, ()> {
    let api = document::Documented((
        oauth::OAuthApi {
            authority: authority.clone(),
        },
        authorize::AuthorizeApi {
            authority: authority.clone(),
        },
        logout::LogoutApi {
            authority: authority.clone(),
        },
        well_known::WellKnownApi {
            keys: authority.keys().clone(),
            issuer: authority.issuer().to_owned(),
            max_age: settings.keys.jwks_max_age,
            authority: authority.clone(),
        },
        account::AccountApi {
            authority: authority.clone(),
            registration: settings.registration.clone(),
        },
        health::HealthApi {
            authority: authority.clone(),
        },
        revocations::RevocationsApi {
            authority: authority.clone(),
        },
        admin::api(authority),
    ));
    OpenApiService::new(api, "Latchkey", env!("CARGO_PKG_VERSION"))
        .description(
            "A standalone OAuth2-style token issuer: RS256 JWT access tokens, rotating refresh \
             tokens with reuse detection, revocation and introspection, and a published JWKS.\n\n\
             Every error is JSON, `{\"error\": ..., \"error_description\": ...}`, with RFC \
             6749's codes and statuses on the OAuth endpoints. Each operation lists every status \
             it can answer with. A path this document does not list is answered with `404`, and \
             a method it does not list for a path with `405`, in the same form. Every answer \
             carries `X-Request-Id`: send your own to find the request in the service's log.",
        )
        .server(settings.issuer.clone())
}

/// The interactive page of the document (Swagger UI), built on its first request and kept:
/// the page inlines 1.6 MB of Swagger UI's script and style, which a service whose docs
/// nobody opens should hold neither on its heap nor in resident memory.
pub fn docs_page(authority: Arc<Authority>, settings: &Settings) -> impl poem::Endpoint + use<> {
    let settings = settings.clone();
    let page = std::sync::OnceLock::<bytes::Bytes>::new();
    poem::endpoint::make_sync(move |_| {
        let html = page.get_or_init(|| {
            service(authority.clone(), &settings)
                .swagger_ui_html()
                .into()
        });
        poem::Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(html.clone())
    })
}
