//! What can go wrong: refusals of a token ([`VerifyError`], each with its RFC 6750 answer) and
//! failures to set up or reach the issuer ([`SetupError`]).

/// Why a request's bearer token was refused. Each variant knows its HTTP answer: 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` for a bad token, 403 with
/// `error="insufficient_scope"` for a good token that may not do this, 503 when revocations
/// cannot be checked and the verifier fails closed. The messages are safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No bearer token was presented (RFC 6750 §3.1: the challenge carries no error code).
    #[error("a bearer access token is required")]
    Missing,
    /// Not a compact JWS of sane size, or its header or claims are not valid JSON objects.
    #[error("the token is malformed")]
    Malformed,
    /// The header asks for `none` or an HMAC algorithm, or has a member besides `alg`, `typ`
    /// and `kid`: one that names its own key (`jku`, `x5u`, `jwk`, `x5c`), critical extensions
    /// (`crit`), JWE's `zip` or `enc`, `cty`, or any other.
    #[error("the token's header is not acceptable")]
    ForbiddenHeader,
    /// `typ` is not `at+jwt`: an ID token, a refresh token, or a plain JWT.
    #[error("the token is not an access token")]
    WrongType,
    /// The `kid` names no key of the issuer, even after refetching its key set.
    #[error("the token names no key of the issuer")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key it names.
    #[error("the token's algorithm does not match its key")]
    WrongAlgorithm,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is later than now plus the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    /// A claim RFC 9068 requires is absent or of the wrong type.
    #[error("the token lacks the claim '{0}'")]
    MissingClaim(&'static str),
    /// The issuer revoked the token, its session, or every token of its subject issued before
    /// a password change.
    #[error("the token has been revoked")]
    Revoked,
    /// The token is valid but lacks a scope the resource requires.
    #[error("the token lacks the scope '{0}'")]
    InsufficientScope(String),
    /// The token is valid but its subject lacks a role the resource requires.
    #[error("the token lacks the role '{0}'")]
    InsufficientRole(String),
    /// The token is valid but not presented through the actor the resource requires.
    #[error("the token is not presented by '{0}' on its subject's behalf")]
    WrongActor(String),
    /// Revocations could not be synchronised within the configured bound and the verifier is
    /// set to fail closed, or the issuer's keys were never fetched.
    #[error("tokens cannot be checked right now")]
    Unavailable,
}

impl VerifyError {
    /// The HTTP status to answer with: 401, 403 or 503.
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::InsufficientScope(_)
            | VerifyError::InsufficientRole(_)
            | VerifyError::WrongActor(_) => 403,
            VerifyError::Unavailable => 503,
            _ => 401,
        }
    }

    /// The RFC 6750 error code, if the answer carries one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            VerifyError::Missing => None,
            VerifyError::InsufficientScope(_)
            | VerifyError::InsufficientRole(_)
            | VerifyError::WrongActor(_) => Some("insufficient_scope"),
            VerifyError::Unavailable => Some("temporarily_unavailable"),
            _ => Some("invalid_token"),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3); `None` for 503.
    pub fn www_authenticate(&self) -> Option<String> {
        let description = self.to_string().replace(['"', '\\'], "'");
        match self {
            VerifyError::Missing => Some("Bearer".to_owned()),
            VerifyError::Unavailable => None,
            VerifyError::InsufficientScope(scope) => Some(format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{description}\", \
                 scope=\"{}\"",
                scope.replace(['"', '\\'], "'")
            )),
            _ => Some(format!(
                "Bearer error=\"{}\", error_description=\"{description}\"",
                self.error_code().unwrap_or("invalid_token")
            )),
        }
    }

    /// The JSON body of the answer: `{"error": ..., "error_description": ...}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": self.error_code().unwrap_or("invalid_token"),
            "error_description": self.to_string(),
        })
        .to_string()
    }

    /// Seconds to put in `Retry-After` for a 503.
    pub fn retry_after(&self) -> Option<u64> {
        matches!(self, VerifyError::Unavailable).then_some(5)
    }
}

/// A failure to configure the verifier or to talk to the issuer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The issuer could not be reached or answered with an error.
    #[error("cannot reach the issuer at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The issuer answered with something that is not what the protocol says.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// `connect` gave up waiting for the first synchronisation.
    #[error("the issuer did not answer within {0:?}")]
    Timeout(std::time::Duration),
}
