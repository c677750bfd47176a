//! The public keys of `private_key_jwt` clients (RFC 7523 §2.2): a JWK Set, checked when it is
//! registered or fetched, and the URL a client may publish one at.
//!
//! Each key verifies with one algorithm, taken from the key itself (its `kty` and `crv`) by the
//! same parsing resource servers use (`latchkey_verify::VerifyKey`), so an assertion's header
//! can never choose another.

use jsonwebtoken::jwk::Jwk;
use latchkey_verify::{Algorithm, VerifyKey};
use serde_json::Value;

/// Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037
/// §2). A registered key set holding any of them is refused: the secret has leaked already.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The algorithms a client key may sign assertions with.
pub const CLIENT_KEY_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// At most this many keys in a client's set: enough for a rotation or two.
const MAX_KEYS: usize = 16;

/// One client key: its `kid` (if it has one) and the key, pinned to its algorithm.
#[derive(Debug)]
pub struct ClientKey {
    pub kid: Option<String>,
    pub key: VerifyKey,
}

/// A client's parsed key set.
#[derive(Debug, Default)]
pub struct ClientKeySet {
    keys: Vec<ClientKey>,
}

impl ClientKeySet {
    /// Parses and checks an RFC 7517 key set: public RSA (2048 bits or more), P-256 or Ed25519
    /// signature keys only, at least one, `kid`s distinct. Any private or symmetric key refuses
    /// the whole set. `Err` says why, for the operator or the log.
    pub fn parse(set: &Value) -> Result<ClientKeySet, String> {
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWK Set is an object with a \"keys\" array")?;
        if keys.is_empty() {
            return Err("the JWK Set has no keys".into());
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("a client's JWK Set holds at most {MAX_KEYS} keys"));
        }
        let mut parsed: Vec<ClientKey> = Vec::with_capacity(keys.len());
        for (index, value) in keys.iter().enumerate() {
            let key = parse_key(value).map_err(|why| format!("key {index}: {why}"))?;
            if key.kid.is_some() && parsed.iter().any(|k| k.kid == key.kid) {
                return Err(format!("key {index}: its kid is used by another key"));
            }
            parsed.push(key);
        }
        Ok(ClientKeySet { keys: parsed })
    }

    /// The key an assertion's header names: the one with its `kid`, or without a `kid` the only
    /// key of the header's algorithm. `None` when there is no such key, or the key found
    /// verifies with another algorithm than the header claims.
    pub fn select(&self, kid: Option<&str>, alg: &str) -> Option<&VerifyKey> {
        let key = match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))?,
            None => {
                let mut of_alg = self
                    .keys
                    .iter()
                    .filter(|k| k.key.algorithm().as_str() == alg);
                let only = of_alg.next()?;
                if of_alg.next().is_some() {
                    return None;
                }
                only
            }
        };
        (key.key.algorithm().as_str() == alg).then_some(&key.key)
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn parse_key(value: &Value) -> Result<ClientKey, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
        return Err(format!(
            "has the private member \"{member}\": register public keys only"
        ));
    }
    if object.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err("symmetric keys are refused".into());
    }
    let mut jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    let kid = jwk.common.key_id.clone();
    if kid.as_deref() == Some("") {
        return Err("an empty kid".into());
    }
    // `VerifyKey` wants a `kid` to name the key in its messages; a key without one is
    // selected by its algorithm instead (see `ClientKeySet::select`).
    jwk.common
        .key_id
        .get_or_insert_with(|| "(no kid)".to_owned());
    let (_, key) = VerifyKey::from_jwk(&jwk)?;
    if !CLIENT_KEY_ALGORITHMS.contains(&key.algorithm()) {
        return Err(format!(
            "{} keys are not accepted: RS256, ES256 or EdDSA only",
            key.algorithm().as_str()
        ));
    }
    Ok(ClientKey { kid, key })
}

/// Checks a `jwks_uri`: an absolute `https` URL, or `http` to a loopback address only (a client
/// on the same machine), with no credentials or fragment. Returns it as given.
pub fn check_jwks_uri(uri: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(uri).map_err(|e| format!("jwks_uri is not a URL: {e}"))?;
    if uri.len() > 2048 {
        return Err("jwks_uri is longer than 2048 characters".into());
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("jwks_uri may not carry credentials or a fragment".into());
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(uri.to_owned()),
        "http" if is_loopback(&url) => Ok(uri.to_owned()),
        "http" => Err("jwks_uri must be https (http only for a loopback address)".into()),
        _ => Err("jwks_uri must be an https URL".into()),
    }
}

/// Whether the URL's host is a loopback address, or `localhost`.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn a_set_with_a_private_member_is_refused() {
        let set = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "d": "AA"}]});
        let error = ClientKeySet::parse(&set).unwrap_err();
        assert!(error.contains("private member \"d\""), "{error}");
    }

    #[test]
    fn symmetric_keys_are_refused() {
        let set = json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "kk": "c2VjcmV0"}]});
        assert!(ClientKeySet::parse(&set).unwrap_err().contains("symmetric"));
    }

    #[test]
    fn a_key_without_kid_is_selected_by_its_algorithm_only() {
        let set = ClientKeySet::parse(
            &json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED25519_X}]}),
        )
        .unwrap();
        assert!(set.select(None, "EdDSA").is_some());
        assert!(set.select(None, "RS256").is_none());
        assert!(set.select(Some("x"), "EdDSA").is_none());
    }

    #[test]
    fn a_key_is_never_selected_for_another_algorithm() {
        let set = ClientKeySet::parse(
            &json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": ED25519_X}]}),
        )
        .unwrap();
        assert!(set.select(Some("k1"), "EdDSA").is_some());
        assert!(set.select(Some("k1"), "HS256").is_none());
        assert!(set.select(Some("k1"), "ES256").is_none());
    }

    #[test]
    fn jwks_uris_must_be_https_or_loopback_http() {
        assert!(check_jwks_uri("https://keys.example.com/jwks.json").is_ok());
        assert!(check_jwks_uri("http://127.0.0.1:9000/jwks").is_ok());
        assert!(check_jwks_uri("http://localhost/jwks").is_ok());
        assert!(check_jwks_uri("http://[::1]/jwks").is_ok());
        for bad in [
            "http://keys.example.com/jwks",
            "http://10.0.0.1/jwks",
            "ftp://keys.example.com/jwks",
            "https://user:pw@keys.example.com/jwks",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_jwks_uri(bad).is_err(), "{bad}");
        }
    }
}
