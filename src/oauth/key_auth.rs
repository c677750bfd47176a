//! `private_key_jwt` client authentication (RFC 7523 §2.2): the client proves itself with an
//! assertion signed by one of its keys. Held to the same limits as a secret: a failed
//! assertion counts against the address exactly as a wrong secret does. A key set that its
//! client's server fails to give, or a `kid` it lacks while it may not be fetched again, is no
//! failed assertion: it is refused all the same but not counted, so neither an outage of that
//! server nor a stranger spending the refetch locks its callers' addresses out.

use super::Authority;
use super::assertion::{Assertion, Expected};
use super::client_auth::{AuthenticatedClient, ClientAssertion, ClientCredentials};
use super::key_sets::NoKeys;
use super::throttle::Attempt;
use crate::audit::{Event, Record};
use crate::domain::{ClientId, now};
use crate::error::ServiceError;
use crate::store::ClientRecord;

/// Why an assertion was refused: a failed authentication, which counts against the caller's
/// address, or a key set its client's server failed to give, which does not.
enum Refusal {
    Failed(String),
    KeysUnavailable(String),
}

impl Authority {
    /// Checks `presented` and returns the client it authenticates, with its cut-off.
    pub(super) async fn authenticate_by_assertion(
        &self,
        credentials: &ClientCredentials,
        presented: &ClientAssertion,
    ) -> Result<AuthenticatedClient, ServiceError> {
        let assertion = Assertion::parse(&presented.jwt);
        // `client_id` is optional beside an assertion (RFC 7521 §4.2): the `sub` names the
        // client then. Either way the signature and `iss`/`sub` are checked against it below.
        let claimed = credentials.client_id.clone().or_else(|| {
            assertion
                .as_ref()
                .ok()
                .and_then(|a| a.subject().map(str::to_owned))
        });
        let id = claimed.as_deref().unwrap_or_default();
        let attempt = Attempt::client(&self.security, &credentials.origin);
        let read = self
            .store
            .client_and_failures(ClientId::parse(id).ok().as_ref(), &attempt.keys(), now())
            .await?;
        // The limits apply before the assertion is looked at, as they do before a secret.
        attempt.refuse_if_limited(&read.failures, id, &credentials.origin)?;
        let reserved = self
            .reserve_if_suspect(&attempt, &read.failures, id, &credentials.origin)
            .await?;
        let checked = match (assertion, read.client) {
            (Err(why), _) => Err(Refusal::Failed(why)),
            (Ok(_), None) => Err(Refusal::Failed("no such client".to_owned())),
            (Ok(assertion), Some(client)) => {
                self.check_assertion(&assertion, client, presented).await?
            }
        };
        match checked {
            Ok(client) => {
                if reserved {
                    self.release(&attempt).await?;
                }
                Ok(AuthenticatedClient {
                    record: client,
                    not_before: read.not_before,
                    by_assertion: true,
                })
            }
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::Failed(reason) => {
                        if !reserved {
                            self.count_failure(&attempt).await?;
                        }
                        reason
                    }
                    Refusal::KeysUnavailable(reason) => {
                        if reserved {
                            self.release(&attempt).await?;
                        }
                        reason
                    }
                };
                let id: String = id.chars().take(64).collect();
                tracing::info!(client_id = %id, %reason, "client assertion refused");
                Record::new(Event::ClientAuthFailed, &id, &credentials.origin)
                    .client(&id)
                    .emit();
                Err(ServiceError::InvalidClient(
                    "client authentication failed".into(),
                ))
            }
        }
    }

    /// The client, when `assertion` is its own, valid and used for the first time; otherwise
    /// why not. Store failures are errors of their own: they are no failed authentication.
    async fn check_assertion(
        &self,
        assertion: &Assertion,
        client: ClientRecord,
        presented: &ClientAssertion,
    ) -> Result<Result<ClientRecord, Refusal>, ServiceError> {
        let keys = match self.client_keys.keys_for(&client, assertion.kid()).await {
            Ok(keys) => keys,
            Err(NoKeys::Refused(why)) => return Ok(Err(Refusal::Failed(why))),
            Err(NoKeys::Unavailable(why)) => return Ok(Err(Refusal::KeysUnavailable(why))),
        };
        // RFC 7523 §3 names the token endpoint's URL; clients of revocation and introspection
        // send either it or the URL they call.
        let token_endpoint = format!("{}/oauth/token", self.issuer);
        let endpoint = format!("{}{}", self.issuer, presented.endpoint);
        let expected = Expected {
            client_id: client.client_id.as_str(),
            audiences: [&self.issuer, &token_endpoint, &endpoint],
        };
        let now = now();
        let verified = match assertion.verify(&keys, &expected, now) {
            Ok(verified) => verified,
            Err(why) => return Ok(Err(Refusal::Failed(why))),
        };
        // Once across every replica sharing the store, until the assertion expires (after
        // which its `exp` refuses it anyway).
        let key = format!("assertion:{}:{}", client.client_id, verified.jti);
        if !self.store.use_once(&key, verified.exp, now).await? {
            return Ok(Err(Refusal::Failed(
                "the assertion's jti was used already".into(),
            )));
        }
        Ok(Ok(client))
    }
}
