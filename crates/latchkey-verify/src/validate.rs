//! Access-token validation per RFC 9068 §4 and RFC 8725, on keys already fetched: no network,
//! no allocation before the signature has been checked beyond the decoded header.
//!
//! The order: size and shape; the header (strict JSON, exactly `alg`, `typ` and `kid`, each
//! once, `typ` = `at+jwt`); the key named by `kid`, whose own algorithm must be the header's;
//! the signature; then the claims (strict JSON, `iss` exact, `aud` includes ours, `exp`, `nbf`
//! and `iat` with leeway, RFC 9068's required claims).

use std::borrow::Cow;
use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::keys::KeySet;
use crate::{AccessToken, VerifyError};

/// Tokens of this issuer are well under 2 KiB; anything near this is hostile.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 1024;
const MAX_SIGNATURE_BYTES: usize = 1024;
const MAX_KID_BYTES: usize = 256;

/// What a token must match, fixed at configuration time.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    pub max_token_bytes: usize,
}

/// The JOSE header, read strictly: a JSON object of exactly the members the issuer writes,
/// `alg`, `typ` and `kid`, each once. serde's derive cannot say "these and nothing else, each
/// once" without losing which rule broke, so the map is walked here.
///
/// Any other member makes the header forbidden, whatever its value (even `null`): members that
/// name a key elsewhere (`jku`, `x5u`, `jwk`, `x5c`), `crit` (RFC 7515 §4.1.11: the issuer
/// implements no extension), the JWE members `zip` and `enc`, `cty` (a nested token), `x5t`,
/// `b64`, and anything unregistered. A member given twice is malformed, so
/// `{"alg":"RS256","alg":"none"}` cannot mean one thing here and another to some other parser.
#[derive(Default)]
struct Header<'a> {
    alg: Option<Cow<'a, str>>,
    typ: Option<Cow<'a, str>>,
    kid: Option<Cow<'a, str>>,
    /// A member besides `alg`, `typ` and `kid`.
    forbidden: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Header<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor(std::marker::PhantomData))
    }
}

struct HeaderVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for HeaderVisitor<'a> {
    type Value = Header<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'a>, A::Error> {
        let mut header = Header::default();
        while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
            let slot = match name.as_ref() {
                "alg" => &mut header.alg,
                "typ" => &mut header.typ,
                "kid" => &mut header.kid,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    header.forbidden = true;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom("a header member appears twice"));
            }
            *slot = Some(map.next_value::<Text<'de>>()?.0);
        }
        Ok(header)
    }
}

/// A JSON string, borrowed from the input when it has no escapes (serde's `Cow` alone always
/// copies).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow)]
    aud: Option<Audience<'a>>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    #[serde(borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    scope: Option<Cow<'a, str>>,
    roles: Option<Vec<String>>,
    #[serde(borrow)]
    sid: Option<Cow<'a, str>>,
    act: Option<Act>,
    #[serde(borrow)]
    subject_client_id: Option<Cow<'a, str>>,
}

/// RFC 8693 §4.1: who acts for the subject of an exchanged token, and for whom that actor was
/// acting in turn. Members besides `sub` and `act` are the issuer's to add and are ignored.
#[derive(Deserialize)]
struct Act {
    sub: String,
    act: Option<Box<Act>>,
}

/// The longest delegation chain read; the issuer's token size limit keeps real ones far shorter.
const MAX_ACTORS: usize = 32;

/// The actors of an `act` claim, the current one first.
fn actor_chain(act: Option<Act>) -> Result<Vec<String>, VerifyError> {
    let mut actors = Vec::new();
    let mut next = act.map(Box::new);
    while let Some(link) = next {
        if actors.len() == MAX_ACTORS {
            return Err(VerifyError::Malformed);
        }
        let Act { sub, act } = *link;
        actors.push(sub);
        next = act;
    }
    Ok(actors)
}

/// Verifies `token` against `keys`: header, key, signature, claims. `now` in Unix seconds. A
/// `kid` the key set lacks is [`VerifyError::UnknownKey`]; [`unknown_kid`] then tells which.
pub fn verify(
    token: &str,
    keys: &KeySet,
    expect: &Expectations,
    now: i64,
) -> Result<AccessToken, VerifyError> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => verify_with(token, keys, expect, now, &mut scratch),
        Err(_) => verify_with(token, keys, expect, now, &mut Scratch::default()),
    })
}

/// Buffers for the decoded parts, kept per thread so that a verification neither allocates
/// nor zeroes them.
#[derive(Default)]
struct Scratch {
    header: Vec<u8>,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Decodes base64url `encoded` into `buffer`, refusing more than `max` decoded bytes.
fn decode_into<'b>(encoded: &str, buffer: &'b mut Vec<u8>, max: usize) -> Option<&'b [u8]> {
    if encoded.len() > max.div_ceil(3) * 4 {
        return None;
    }
    buffer.clear();
    URL_SAFE_NO_PAD.decode_vec(encoded, buffer).ok()?;
    Some(buffer.as_slice())
}

fn verify_with(
    token: &str,
    keys: &KeySet,
    expect: &Expectations,
    now: i64,
    scratch: &mut Scratch,
) -> Result<AccessToken, VerifyError> {
    let (signing_input, payload, signature) = split(token, expect)?;
    let header = header(signing_input, &mut scratch.header)?;
    let key = keys.get(&header.kid).ok_or(VerifyError::UnknownKey)?;
    // The key decides the algorithm; a header that claims another is refused, never obeyed.
    if header.alg != key.algorithm().as_str() {
        return Err(VerifyError::WrongAlgorithm);
    }
    let signature = decode_into(signature, &mut scratch.signature, MAX_SIGNATURE_BYTES)
        .ok_or(VerifyError::BadSignature)?;
    if !key.verify(signing_input.as_bytes(), signature) {
        return Err(VerifyError::BadSignature);
    }
    let payload = decode_into(payload, &mut scratch.payload, expect.max_token_bytes)
        .ok_or(VerifyError::Malformed)?;
    let claims: Claims<'_> = strict_json(payload)?;
    check_claims(claims, expect, now)
}

/// Parses a decoded header or claim set: UTF-8 throughout (RFC 8259 §8.1), checked first, since
/// serde_json skips the strings of members it ignores without looking at their bytes.
fn strict_json<'a, T: Deserialize<'a>>(decoded: &'a [u8]) -> Result<T, VerifyError> {
    let text = std::str::from_utf8(decoded).map_err(|_| VerifyError::Malformed)?;
    serde_json::from_str(text).map_err(|_| VerifyError::Malformed)
}

/// The `kid` of a token whose header is acceptable, for refetching the key set when the cache
/// lacks it.
pub fn unknown_kid(token: &str, expect: &Expectations) -> Option<String> {
    let (signing_input, _, _) = split(token, expect).ok()?;
    let mut buffer = Vec::new();
    let header = header(signing_input, &mut buffer).ok()?;
    Some(header.kid.into_owned())
}

/// `(header.payload, payload, signature)` of a compact JWS of sane size.
fn split<'t>(
    token: &'t str,
    expect: &Expectations,
) -> Result<(&'t str, &'t str, &'t str), VerifyError> {
    if token.len() > expect.max_token_bytes {
        return Err(VerifyError::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let (header, payload) = signing_input
        .split_once('.')
        .ok_or(VerifyError::Malformed)?;
    if header.is_empty() || payload.is_empty() || payload.contains('.') {
        return Err(VerifyError::Malformed);
    }
    if signature.is_empty() {
        // An unsecured JWS (`alg: none`) has an empty signature.
        return Err(VerifyError::ForbiddenHeader);
    }
    Ok((signing_input, payload, signature))
}

/// An acceptable header's algorithm and key id.
struct Checked<'a> {
    alg: Cow<'a, str>,
    kid: Cow<'a, str>,
}

/// Decodes the header of `signing_input` into `buffer` and checks it.
fn header<'b>(signing_input: &str, buffer: &'b mut Vec<u8>) -> Result<Checked<'b>, VerifyError> {
    let encoded = signing_input.split('.').next().unwrap_or_default();
    let decoded = decode_into(encoded, buffer, MAX_HEADER_BYTES).ok_or(VerifyError::Malformed)?;
    let header: Header<'b> = strict_json(decoded)?;
    if header.forbidden {
        return Err(VerifyError::ForbiddenHeader);
    }
    let alg = header.alg.ok_or(VerifyError::Malformed)?;
    if alg.eq_ignore_ascii_case("none") || alg.starts_with("HS") {
        return Err(VerifyError::ForbiddenHeader);
    }
    // RFC 9068 §4: `at+jwt`, or the full media type; media types compare case-insensitively.
    let typ = header.typ.ok_or(VerifyError::WrongType)?;
    if !(typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")) {
        return Err(VerifyError::WrongType);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    if kid.is_empty() || kid.len() > MAX_KID_BYTES {
        return Err(VerifyError::UnknownKey);
    }
    Ok(Checked { alg, kid })
}

fn check_claims(
    claims: Claims<'_>,
    expect: &Expectations,
    now: i64,
) -> Result<AccessToken, VerifyError> {
    let iss = claims.iss.ok_or(VerifyError::MissingClaim("iss"))?;
    if iss != expect.issuer {
        return Err(VerifyError::WrongIssuer);
    }
    let exp = claims.exp.ok_or(VerifyError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(expect.leeway) {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(expect.leeway)
    {
        return Err(VerifyError::NotYetValid);
    }
    let audience: Vec<String> = match claims.aud.ok_or(VerifyError::MissingClaim("aud"))? {
        Audience::One(one) => vec![one.into_owned()],
        Audience::Many(many) => many.into_iter().map(Cow::into_owned).collect(),
    };
    if !audience.contains(&expect.audience) {
        return Err(VerifyError::WrongAudience);
    }
    let iat = claims.iat.ok_or(VerifyError::MissingClaim("iat"))?;
    // A token issued in the future: the issuer's clock is never further ahead than the leeway.
    if iat > now.saturating_add(expect.leeway) {
        return Err(VerifyError::NotYetValid);
    }
    let subject = claims.sub.ok_or(VerifyError::MissingClaim("sub"))?;
    let client_id = claims
        .client_id
        .ok_or(VerifyError::MissingClaim("client_id"))?;
    let jti = claims.jti.ok_or(VerifyError::MissingClaim("jti"))?;
    let actors = actor_chain(claims.act)?;
    let scopes = claims
        .scope
        .map(|s| {
            s.split(' ')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(AccessToken {
        subject: subject.into_owned(),
        client_id: client_id.into_owned(),
        scopes,
        is_user: claims.roles.is_some(),
        roles: claims.roles.unwrap_or_default(),
        sid: claims.sid.map(Cow::into_owned),
        jti: jti.into_owned(),
        actors,
        subject_client_id: claims.subject_client_id.map(Cow::into_owned),
        audience,
        iat,
        exp,
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
