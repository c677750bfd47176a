//! Values the OpenAPI document's examples share, so that they tell one consistent story: user
//! `alice` logs in through the public client `web` at `https://auth.example.com`.
//!
//! The tokens are shaped like the service's (header and claims decode to what it issues) but
//! carry no valid signature.

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};

use super::errors::with_example;

/// The issuer of the examples.
pub const ISSUER: &str = "https://auth.example.com";

/// The `kid` (RFC 7638 thumbprint) of the example signing key, [`MODULUS`].
pub const KID: &str = "u61MilnTFJdGvmfcxOuqCbI7u7AMytbt_TeWfT3fJRI";

/// An access token of `alice`, issued to client `web`.
pub const ACCESS_TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6InU2MU1pbG5URkpkR3ZtZmN4T3VxQ2JJN3U3QU15",
    "dGJ0X1RlV2ZUM2ZKUkkifQ.",
    "eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiJhbGljZSIsImF1ZCI6ImFwaSIsImV4cCI6",
    "MTc2NDAwMDkwMCwiaWF0IjoxNzY0MDAwMDAwLCJuYmYiOjE3NjQwMDAwMDAsImp0aSI6IjRFdTZLVjBnZzZ1c3dG",
    "VWhVYm1DaVEiLCJjbGllbnRfaWQiOiJ3ZWIiLCJzY29wZSI6InJlYWQgd3JpdGUiLCJyb2xlcyI6W10sInNpZCI6",
    "InpxT1lkOTY5NWVXYXdDakVPclR5ZXcifQ.",
    "dGhpcyBleGFtcGxlIGNhcnJpZXMgbm8gdmFsaWQgc2lnbmF0dXJl",
);

/// The refresh token issued with [`ACCESS_TOKEN`].
pub const REFRESH_TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsInR5cCI6InJ0K2p3dCIsImtpZCI6InU2MU1pbG5URkpkR3ZtZmN4T3VxQ2JJN3U3QU15",
    "dGJ0X1RlV2ZUM2ZKUkkifQ.",
    "eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJhdWQiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20i",
    "LCJzdWIiOiJhbGljZSIsImNsaWVudF9pZCI6IndlYiIsInNjb3BlIjoicmVhZCB3cml0ZSIsImp0aSI6Ik5sZFJ3",
    "YkJfQ2VPRTZtN2dHbjNfVFEiLCJmYW0iOiJ6cU9ZZDk2OTVlV2F3Q2pFT3JUeWV3IiwiZXhwIjoxNzY2NTkyMDAw",
    "LCJpYXQiOjE3NjQwMDAwMDB9.",
    "dGhpcyBleGFtcGxlIGNhcnJpZXMgbm8gdmFsaWQgc2lnbmF0dXJl",
);

/// The RSA modulus of the example key (base64url); its exponent is `AQAB`.
pub const MODULUS: &str = concat!(
    "zogqAZXEWLU77xF2pTJDG5ZL2IiJJPzWZ4AmKVolQflo9oMUKH2tafMdpbnj9v5PLjoicJ4LMNNVyfJOwGig2Wvw",
    "VH6t24I0tS0z8wdV4bypb35-eX5sqn1mHZOqC11yO2vOPBNJOkZrkk-DR3BXHwQjRNW67gYMCOOKGzoxVWb7Kb85",
    "KDiVOu3djvqj40QbleSHTnlCFFZulbxGFZnojReWhah7Pk5aagV-EPOcBhdciBgiuLUI9TbLnUqSPDI2IQfPROK1",
    "yhgMDe-V2aUHdfCRlKeJHW9E0f3q6SuyFqJLpJbztJH4BNnpBxfCGV7H8fR7vV8DtVmsTmVsAjkgsQ",
);

/// The access token's `jti` and when the example tokens were issued: the revocation feed's
/// examples name the same.
pub use latchkey_feed::examples::{ISSUED_AT, JTI};

/// A password hash as Werkzeug 3 (Flask) makes it, for the import example.
pub const WERKZEUG_HASH: &str = "scrypt:32768:8:1$ZRJOwdJ6NvowNmM1$67d8d83a54ece00015db4dc2ecf905bfb69b4f57ca340134fd88539c32dcb68646ba6af7b8c4ab0c24bbe2b5b407b22ba3e55dc7a61b1fe80e600c9cb814f39c";

/// A client secret as the service generates them: 256 random bits, base64url.
pub const CLIENT_SECRET: &str = "q4Xv0b0kq3G2mT9yJ7wQeP1sZ8uR5nL6cV2hD4fK0aE";

/// A JSON answer documented with an example of its own rather than its type's: for a type whose
/// answers differ by response (say, a health document that is `ok` in one and `unavailable` in
/// another).
pub struct JsonWith<T, X>(pub T, PhantomData<fn() -> X>);

/// The example a [`JsonWith`] is documented with.
pub trait ExampleValue {
    fn value() -> serde_json::Value;
}

impl<T, X> JsonWith<T, X> {
    pub fn new(value: T) -> Self {
        JsonWith(value, PhantomData)
    }
}

impl<T: Type + Send, X: ExampleValue> Payload for JsonWith<T, X> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        with_example(T::schema_ref(), X::value())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ToJSON, X> IntoResponse for JsonWith<T, X> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}
