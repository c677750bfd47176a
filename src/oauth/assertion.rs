//! Client assertions (RFC 7523 §2.2, §3; RFC 7521 §4.2): a JWT a `private_key_jwt` client signs
//! with one of its keys in place of a secret.
//!
//! The checks are made here, on the compact JWS itself, so that nothing of the header is
//! trusted before the key is chosen: the key comes from the client's set by `kid`, its
//! algorithm from the key, and the header's `alg` must merely agree with it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Number, Value};

use crate::credentials::{CLIENT_KEY_ALGORITHMS, ClientKeySet};
use crate::domain::{UnixTime, limits};

/// RFC 9864's fully specified name of EdDSA with Ed25519, accepted as `EdDSA`.
pub const ED25519: &str = "Ed25519";

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far ahead an assertion's `exp` may be: a short life keeps the window for a replay, and
/// the store's memory of used `jti`s, small.
const MAX_LIFETIME: i64 = 300;

/// Clock skew tolerated on `iat` and `nbf` (seconds).
const LEEWAY: i64 = 5;

/// Longest `jti` kept in the store.
const MAX_JTI_LEN: usize = 256;

/// Header members that would let the assertion name its own key, or demand processing the
/// issuer does not do (RFC 7515 §4.1.2–4.1.5, §4.1.11): refused outright.
const FORBIDDEN_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "crit"];

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        let same = |aud: &String| aud.trim_end_matches('/') == wanted.trim_end_matches('/');
        match self {
            Audience::One(aud) => same(aud),
            Audience::Many(auds) => auds.iter().any(same),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<i64>,
    jti: Option<String>,
}

/// An RFC 7519 §2 NumericDate: seconds, which a client library may send with a fraction; kept
/// as whole seconds, rounded down (an `exp` a little earlier, never later).
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(number) = Option::<Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_i64() {
        return Ok(Some(whole));
    }
    // Within ±2^62 s, far past any date and exactly convertible, so the cast cannot wrap.
    const BOUND: f64 = 4_611_686_018_427_387_904.0;
    match number.as_f64() {
        Some(seconds) if seconds.is_finite() && seconds.abs() < BOUND => {
            Ok(Some(seconds.floor() as i64))
        }
        _ => Err(D::Error::custom("a date must be a number of seconds")),
    }
}

/// A client assertion, parsed but not yet verified.
#[derive(Debug)]
pub struct Assertion {
    header: Header,
    claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

/// What a verified assertion leaves to check against the store: its `jti`, once, until `exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: UnixTime,
}

/// What an assertion must name: the client it authenticates, and the audiences it may be for
/// (the issuer, the token endpoint's URL, or the URL of the endpoint it is sent to).
pub struct Expected<'a> {
    pub client_id: &'a str,
    pub audiences: [&'a str; 3],
}

impl Assertion {
    /// Splits and decodes a compact JWS; `Err` says why it is not one.
    pub fn parse(jwt: &str) -> Result<Assertion, String> {
        if jwt.len() > limits::MAX_TOKEN_BYTES {
            return Err("the assertion is too long".into());
        }
        let mut parts = jwt.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the assertion is not a compact JWS".into());
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| "the assertion is not base64url".to_owned())
        };
        let header: Header = serde_json::from_slice(&decode(header)?)
            .map_err(|e| format!("the assertion's header is malformed: {e}"))?;
        let claims: Claims = serde_json::from_slice(&decode(claims)?)
            .map_err(|e| format!("the assertion's claims are malformed: {e}"))?;
        let signing_input = jwt
            .rsplit_once('.')
            .map(|(input, _)| input.to_owned())
            .unwrap_or_default();
        Ok(Assertion {
            header,
            claims,
            signing_input,
            signature: decode(signature)?,
        })
    }

    /// The client the assertion claims to come from (`sub`), unverified: which client's keys
    /// to check it with.
    pub fn subject(&self) -> Option<&str> {
        self.claims.sub.as_deref()
    }

    /// The `kid` of the header, unverified: whether the client's key set must be refetched.
    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Checks the signature with the client's key the header names, then the claims.
    pub fn verify(
        &self,
        keys: &ClientKeySet,
        expected: &Expected<'_>,
        now: UnixTime,
    ) -> Result<VerifiedAssertion, String> {
        // RFC 9864 names EdDSA over Ed25519 `Ed25519` (openid-client sends that); both are the one
        // algorithm of an Ed25519 key.
        let alg = match self.header.alg.as_str() {
            ED25519 => "EdDSA",
            alg => alg,
        };
        if !CLIENT_KEY_ALGORITHMS.iter().any(|a| a.as_str() == alg) {
            return Err(format!("the algorithm {alg:?} is not accepted"));
        }
        if let Some(member) = FORBIDDEN_HEADERS
            .iter()
            .find(|m| self.header.rest.contains_key(**m))
        {
            return Err(format!("the header member {member:?} is refused"));
        }
        let key = keys
            .select(self.kid(), alg)
            .ok_or("no key of the client matches the header's kid and alg")?;
        if !key.verify(self.signing_input.as_bytes(), &self.signature) {
            return Err("the signature does not verify".into());
        }
        self.check_claims(expected, now)
    }

    fn check_claims(
        &self,
        expected: &Expected<'_>,
        now: UnixTime,
    ) -> Result<VerifiedAssertion, String> {
        let claims = &self.claims;
        if claims.iss.as_deref() != Some(expected.client_id)
            || claims.sub.as_deref() != Some(expected.client_id)
        {
            return Err("iss and sub must both be the client id".into());
        }
        let aud = claims.aud.as_ref().ok_or("aud is required")?;
        if !expected.audiences.iter().any(|wanted| aud.contains(wanted)) {
            return Err("aud names neither the issuer nor its endpoints".into());
        }
        let exp = claims.exp.ok_or("exp is required")?;
        if exp <= now {
            return Err("the assertion has expired".into());
        }
        if exp > now.saturating_add(MAX_LIFETIME) {
            return Err(format!("exp is more than {MAX_LIFETIME} seconds ahead"));
        }
        for (name, value) in [("iat", claims.iat), ("nbf", claims.nbf)] {
            if value.is_some_and(|t| t > now.saturating_add(LEEWAY)) {
                return Err(format!("{name} is in the future"));
            }
        }
        let jti = claims.jti.as_deref().unwrap_or_default();
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(format!("jti is required, at most {MAX_JTI_LEN} bytes"));
        }
        Ok(VerifiedAssertion {
            jti: jti.to_owned(),
            exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode("sig")
        )
    }

    #[test]
    fn anything_but_three_base64url_parts_is_refused() {
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(Assertion::parse(bad).is_err(), "{bad}");
        }
        let long = "a".repeat(limits::MAX_TOKEN_BYTES + 1);
        assert!(Assertion::parse(&long).is_err());
    }

    #[test]
    fn claims_are_checked_against_the_client_and_the_clock() {
        let now = 1_700_000_000;
        let expected = Expected {
            client_id: "svc",
            audiences: [
                "https://issuer",
                "https://issuer/oauth/token",
                "https://issuer/oauth/revoke",
            ],
        };
        let check = |claims: serde_json::Value| {
            let jwt = assertion(r#"{"alg":"EdDSA"}"#, &claims.to_string());
            Assertion::parse(&jwt).unwrap().check_claims(&expected, now)
        };
        let good = serde_json::json!({"iss": "svc", "sub": "svc", "aud": "https://issuer/",
            "exp": now + 60, "jti": "j1"});
        assert_eq!(
            check(good.clone()).unwrap(),
            VerifiedAssertion {
                jti: "j1".into(),
                exp: now + 60
            }
        );
        for (member, value) in [
            ("iss", serde_json::json!("other")),
            ("sub", serde_json::json!("other")),
            ("aud", serde_json::json!(["https://elsewhere"])),
            ("exp", serde_json::json!(now)),
            ("exp", serde_json::json!(now + 301)),
            ("iat", serde_json::json!(now + 6)),
            ("nbf", serde_json::json!(now + 6)),
            ("jti", serde_json::json!("")),
        ] {
            let mut claims = good.clone();
            claims[member] = value;
            assert!(check(claims).is_err(), "{member}");
        }
        for member in ["aud", "exp", "jti"] {
            let mut claims = good.clone();
            claims.as_object_mut().unwrap().remove(member);
            assert!(check(claims).is_err(), "without {member}");
        }
    }

    #[test]
    fn dates_with_a_fraction_of_a_second_are_read_rounded_down_and_huge_ones_refused() {
        let parse = |exp: &str| {
            let claims = format!(r#"{{"exp":{exp},"iat":{exp},"nbf":null}}"#);
            serde_json::from_str::<Claims>(&claims).map(|c| (c.exp, c.iat, c.nbf))
        };
        assert_eq!(
            parse("1700000000.75").unwrap(),
            (Some(1_700_000_000), Some(1_700_000_000), None)
        );
        assert_eq!(parse("1700000000").unwrap().0, Some(1_700_000_000));
        assert_eq!(parse("-0.5").unwrap().0, Some(-1));
        for huge in ["1e300", "18446744073709551615", "1180591620717411303424"] {
            assert!(parse(huge).is_err(), "{huge}");
        }
        assert!(parse(r#""1700000000""#).is_err(), "a string is no date");
    }
}
