//! Request bodies that may be left out entirely, which poem-openapi has no built-in form for.
//!
//! A request without a body (no `Content-Type` and no or zero `Content-Length`) gets `None`, and
//! the handler answers it as it answers missing parameters (`400 invalid_request`); a body that
//! does not parse is still an error. Declaring such bodies optional also keeps the document
//! usable by openapi-python-client 0.29, whose code for a required body with two content types
//! (form and JSON) does not import a name it uses.

use poem::http::header;
use poem::{Request, RequestBody, Result};
use poem_openapi::registry::{MetaRequest, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::account::{LogoutBody, RegistrationBody};
use super::oauth::{TokenBody, TokenParamBody};

/// Whether the request carries no body at all.
fn bodiless(request: &Request) -> bool {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let typed = request.headers().contains_key(header::CONTENT_TYPE);
    length == Some(0) || (!typed && length.is_none())
}

/// Defines `$name(Option<$body>)`, an extractor for an optional `$body`. (Concrete types rather
/// than one generic: poem-openapi's handler macro cannot yet prove the lifetime bounds of a
/// generic extractor.)
macro_rules! optional_body {
    ($(#[$doc:meta])* $name:ident, $body:ty) => {
        $(#[$doc])*
        pub struct $name(pub Option<$body>);

        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <$body>::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                <$body>::request_meta().map(|meta| MetaRequest {
                    required: false,
                    ..meta
                })
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _options: ExtractParamOptions<Self::ParamType>,
            ) -> Result<Self> {
                if bodiless(request) {
                    return Ok($name(None));
                }
                let parsed =
                    <$body>::from_request(request, body, ExtractParamOptions::default()).await?;
                Ok($name(Some(parsed)))
            }
        }
    };
}

optional_body!(
    /// The logout body: only an optional refresh token, so often left out.
    OptionalBody,
    LogoutBody
);
optional_body!(
    /// The token request; left out, it is an `invalid_request`.
    OptionalTokenBody,
    TokenBody
);
optional_body!(
    /// The token to revoke or introspect; left out, it is an `invalid_request`.
    OptionalTokenParamBody,
    TokenParamBody
);
optional_body!(
    /// The registration; left out, it is an `invalid_request`.
    OptionalRegistrationBody,
    RegistrationBody
);
