//! A request body that may be left out entirely, which poem-openapi has no built-in form for.

use poem::http::header;
use poem::{Request, RequestBody, Result};
use poem_openapi::registry::{MetaRequest, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::account::LogoutBody;

/// `Some` when the request carries a body, `None` when it has none at all; a body that does not
/// parse is still an error. (Concrete rather than generic: poem-openapi's handler macro cannot
/// yet prove the lifetime bounds of a generic extractor.)
pub struct OptionalBody(pub Option<LogoutBody>);


impl<'a> ApiExtractor<'a> for OptionalBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        LogoutBody::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        LogoutBody::request_meta().map(|meta| MetaRequest {
            required: false,
            ..meta
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        let length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let typed = request.headers().contains_key(header::CONTENT_TYPE);
        if length == Some(0) || (!typed && length.is_none()) {
            return Ok(OptionalBody(None));
        }
        let parsed = LogoutBody::from_request(request, body, ExtractParamOptions::default()).await?;
        Ok(OptionalBody(Some(parsed)))
    }
}
