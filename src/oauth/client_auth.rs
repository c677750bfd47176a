//! Client authentication (RFC 6749 §2.3): HTTP Basic, or `client_id`/`client_secret` in the
//! body, or `client_id` alone for a public client; or a signed assertion (RFC 7523 §2.2, see
//! `key_auth`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Authority;
use super::assertion::ASSERTION_TYPE;
use super::throttle::Attempt;
use crate::audit::{Event, Origin, Record};
use crate::credentials::verify_client_secret;
use crate::domain::{ClientId, Secret, UnixTime, now};
use crate::error::ServiceError;
use crate::store::{ClientRead, ClientRecord};

/// The credentials a request presented, before they are checked.
#[derive(Debug, Default, Clone)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// A `private_key_jwt` assertion, in place of a secret.
    pub assertion: Option<ClientAssertion>,
    /// Where the request came from, for the audit trail.
    pub origin: Origin,
}

/// A client assertion as presented, and the path of the endpoint it was sent to (one of the
/// audiences it may name).
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    pub jwt: String,
    pub endpoint: &'static str,
}

impl ClientCredentials {
    /// Combines an `Authorization` header with body parameters. Using both methods at once is
    /// refused, as RFC 6749 §2.3 requires.
    pub fn from_request(
        authorization: Option<&str>,
        body_id: Option<String>,
        body_secret: Option<String>,
    ) -> Result<ClientCredentials, ServiceError> {
        let Some(header) = authorization else {
            return Ok(ClientCredentials {
                client_id: body_id,
                client_secret: body_secret.map(Secret::new),
                ..ClientCredentials::default()
            });
        };
        let (id, secret) = parse_basic(header)?;
        if body_secret.is_some() || body_id.as_deref().is_some_and(|b| b != id) {
            return Err(ServiceError::InvalidRequest(
                "use one client authentication method, not several".into(),
            ));
        }
        Ok(ClientCredentials {
            client_id: Some(id),
            client_secret: Some(Secret::new(secret)),
            ..ClientCredentials::default()
        })
    }

    /// Adds `client_assertion_type` and `client_assertion` from the body, sent to `endpoint`
    /// (its path). An assertion together with a secret (Basic or in the body) is two methods
    /// at once, and refused as such.
    pub fn with_assertion(
        self,
        assertion_type: Option<String>,
        assertion: Option<String>,
        endpoint: &'static str,
    ) -> Result<ClientCredentials, ServiceError> {
        let jwt = match (assertion_type.as_deref(), assertion) {
            (None, None) => return Ok(self),
            (Some(ASSERTION_TYPE), Some(jwt)) => jwt,
            (Some(ASSERTION_TYPE), None) => {
                return Err(ServiceError::InvalidRequest(
                    "client_assertion is required with client_assertion_type".into(),
                ));
            }
            (Some(_), _) => {
                return Err(ServiceError::InvalidRequest(format!(
                    "client_assertion_type must be {ASSERTION_TYPE}"
                )));
            }
            (None, Some(_)) => {
                return Err(ServiceError::InvalidRequest(
                    "client_assertion needs client_assertion_type".into(),
                ));
            }
        };
        if self.client_secret.is_some() {
            return Err(ServiceError::InvalidRequest(
                "use one client authentication method, not several".into(),
            ));
        }
        Ok(ClientCredentials {
            assertion: Some(ClientAssertion { jwt, endpoint }),
            ..self
        })
    }

    /// The same credentials, remembering where the request came from.
    pub fn with_origin(self, origin: Origin) -> ClientCredentials {
        ClientCredentials { origin, ..self }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1.
fn parse_basic(header: &str) -> Result<(String, String), ServiceError> {
    let bad = || ServiceError::InvalidClient("malformed Basic credentials".into());
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ServiceError::InvalidClient(
            "client authentication must use the Basic scheme".into(),
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| percent_decode(s).ok_or_else(bad);
    Ok((unescape(id)?, unescape(secret)?))
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value.get(i + 1..i + 3)?;
                // Two hex digits exactly: `from_str_radix` alone would also take "+1".
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A client whose credentials checked out, with the cut-off of tokens issued through it as it
/// stood when its credentials were read.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub record: ClientRecord,
    pub not_before: Option<UnixTime>,
    /// Authenticated by a signed assertion, whose check may have waited on the client's key
    /// server: long enough for the client to be revoked meanwhile.
    pub by_assertion: bool,
}

impl Authority {
    /// Checks the presented credentials and returns the client they identify.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<ClientRecord, ServiceError> {
        Ok(self.authenticate_client_state(credentials).await?.record)
    }

    /// Checks the presented credentials; the client comes with its cut-off, read together with
    /// the credential that was checked, for an issuance to date its tokens by.
    pub(super) async fn authenticate_client_state(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<AuthenticatedClient, ServiceError> {
        if let Some(assertion) = &credentials.assertion {
            return self.authenticate_by_assertion(credentials, assertion).await;
        }
        let failed = || ServiceError::InvalidClient("client authentication failed".into());
        let id = credentials.client_id.as_deref().ok_or_else(|| {
            ServiceError::InvalidClient("client authentication is required".into())
        })?;
        let attempt = Attempt::client(&self.security, &credentials.origin);
        let client_id = ClientId::parse(id).ok();
        let mut reserved = false;
        let read = if credentials.client_secret.is_some() {
            // Read together, but the limits apply before the secret is looked at.
            let read = self
                .store
                .client_and_failures(client_id.as_ref(), &attempt.keys(), now())
                .await?;
            attempt.refuse_if_limited(&read.failures, id, &credentials.origin)?;
            reserved = self
                .reserve_if_suspect(&attempt, &read.failures, id, &credentials.origin)
                .await?;
            read
        } else if client_id.is_some() {
            // No secret, nothing to guess: a public client is not held to the limits (its
            // grants have their own). A failure is checked against them below.
            self.store
                .client_and_failures(client_id.as_ref(), &[], now())
                .await?
        } else {
            ClientRead::default()
        };
        let authenticated =
            read.client.filter(
                |client| match (&client.secret_hash, &credentials.client_secret) {
                    (Some(hash), Some(secret)) => verify_client_secret(secret, hash),
                    // A client with keys is not public: it proves itself by assertion only.
                    (None, None) => client.keys.is_none(),
                    _ => false,
                },
            );
        let Some(client) = authenticated else {
            if credentials.client_secret.is_none() {
                // Probing for client ids sends no secret; the limits were not read above.
                self.refuse_if_limited(&attempt, id, &credentials.origin)
                    .await?;
            }
            if !reserved {
                // A reservation is the count already.
                self.count_failure(&attempt).await?;
            }
            // Unknown clients too: probing for client ids is worth seeing in the trail.
            let id: String = id.chars().take(64).collect();
            Record::new(Event::ClientAuthFailed, &id, &credentials.origin)
                .client(&id)
                .emit();
            return Err(failed());
        };
        if reserved {
            self.release(&attempt).await?;
        }
        Ok(AuthenticatedClient {
            record: client,
            not_before: read.not_before,
            by_assertion: false,
        })
    }

    /// A confidential client, proven by its secret or an assertion: what introspection (RFC
    /// 7662 §2.1) and the revocation feed need. Without either the request is refused before
    /// any lookup, so the answer tells nothing about which client ids exist (or which are
    /// public), and it is no guess to count; with one, a public client fails like a wrong
    /// secret does.
    pub async fn authenticate_confidential_client(
        &self,
        credentials: &ClientCredentials,
        endpoint: &str,
    ) -> Result<ClientRecord, ServiceError> {
        if credentials.client_secret.is_none() && credentials.assertion.is_none() {
            if let Some(id) = credentials.client_id.as_deref() {
                let id: String = id.chars().take(64).collect();
                Record::new(Event::ClientAuthFailed, &id, &credentials.origin)
                    .client(&id)
                    .emit();
            }
            return Err(ServiceError::InvalidClient(format!(
                "{endpoint} is for confidential clients: authenticate with the client's id and \
                 secret (HTTP Basic, or client_id and client_secret in the body), or with a \
                 client_assertion"
            )));
        }
        let client = self.authenticate_client(credentials).await?;
        if client.is_public() {
            // Unreachable as long as public clients have neither secret nor keys; kept as the
            // rule itself.
            return Err(ServiceError::InvalidClient(format!(
                "{endpoint} is for confidential clients"
            )));
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_decoded_and_unescaped() {
        let creds =
            ClientCredentials::from_request(Some(&basic("my%20app:s%3Acret")), None, None).unwrap();
        assert_eq!(creds.client_id.as_deref(), Some("my app"));
        assert_eq!(creds.client_secret.unwrap().expose(), "s:cret");
    }

    #[test]
    fn percent_escapes_need_two_hex_digits() {
        assert_eq!(percent_decode("a%41b").as_deref(), Some("aAb"));
        for bad in ["%+1", "%-1", "%4", "%zz", "% 1"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn body_credentials_are_used_without_a_header() {
        let creds =
            ClientCredentials::from_request(None, Some("app".into()), Some("s".into())).unwrap();
        assert_eq!(creds.client_id.as_deref(), Some("app"));
    }

    #[test]
    fn two_authentication_methods_at_once_are_refused() {
        let result = ClientCredentials::from_request(
            Some(&basic("app:s")),
            Some("app".into()),
            Some("s".into()),
        );
        assert!(matches!(result, Err(ServiceError::InvalidRequest(_))));
    }

    #[test]
    fn garbage_authorization_headers_are_invalid_client() {
        for header in [
            "Basic !!!",
            "Bearer abc",
            "Basic",
            &basic("no-colon"),
            &basic("a:%zz"),
        ] {
            let result = ClientCredentials::from_request(Some(header), None, None);
            assert!(
                matches!(result, Err(ServiceError::InvalidClient(_))),
                "{header}"
            );
        }
    }
}
