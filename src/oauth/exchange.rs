//! RFC 8693 token exchange: a confidential client that holds an access token of this issuer
//! trades it for a narrower one, for another audience, that names the client (or the subject of
//! an actor token) as the actor.
//!
//! What the issued token keeps and what it may not gain:
//!
//! - the subject token's `sub`, `roles` and `sid`, so that the subject's own revocations (a
//!   logout, a password reset, a change of roles) reach it;
//! - a scope within both the subject token's and the client's, never an admin scope;
//! - an audience the exchanging client may ask for, never the admin audience;
//! - `exp` no later than the subject token's;
//! - `act` naming the new actor, the subject token's own `act` nested inside (RFC 8693 §4.1);
//! - `subject_client_id`, the client the chain began with, so that the removal of any client
//!   the token went through ends it (design §8).
//!
//! No refresh token: the exchanged token lives and dies with the subject token's session.

use super::client_auth::AuthenticatedClient;
use super::cut_off::issued_at;
use super::grants::{asked_audience, truncate};
use super::issue::{Delegation, Grant};
use super::{Authority, IssuedTokens};
use crate::audit::{Event, Record};
use crate::domain::{Scope, TokenId, UnixTime};
use crate::error::ServiceError;
use crate::keys::KeyError;
use crate::tokens::{AccessClaims, Act};

/// The token type of an access token (RFC 8693 §3), the only kind exchanged or issued here.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The longest actor chain an exchange makes: the deepest `act` that latchkey-verify and the
/// Python package read (`MAX_ACTORS`, `MAX_ACTOR_DEPTH`). A deeper one would be a token the
/// issuer's own resource servers refuse.
pub const MAX_ACTORS: usize = 32;

/// The token-exchange parameters of a token request (RFC 8693 §2.1), as received.
#[derive(Debug, Default, Clone)]
pub struct ExchangeParams {
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    pub requested_token_type: Option<String>,
}

impl Authority {
    pub(super) async fn token_exchange_grant(
        &self,
        authenticated: &AuthenticatedClient,
        request: &super::TokenRequest,
        now: UnixTime,
    ) -> Result<IssuedTokens, ServiceError> {
        let client = &authenticated.record;
        if client.is_public() {
            return Err(ServiceError::UnauthorizedClient(
                "a public client cannot use token exchange: the actor must authenticate".into(),
            ));
        }
        let params = &request.exchange;
        let subject_token = params
            .subject_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ServiceError::InvalidRequest("subject_token is required".into()))?;
        access_token_type("subject_token_type", params.subject_token_type.as_deref())?;
        if let Some(requested) = params.requested_token_type.as_deref() {
            access_token_type("requested_token_type", Some(requested))?;
        }
        let subject = self
            .exchangeable(subject_token, "subject_token", now)
            .await?;
        if subject.client_id != client.client_id.as_str() && !names_its_client_in_chain(&subject) {
            // The token from an exchange with an actor token names that actor, not the client
            // that exchanged it. Exchanged again by another client, the new token would keep the
            // chain and the client it began with but lose that client, whose removal would then
            // not end it.
            return Err(ServiceError::InvalidRequest(
                "invalid subject_token: a token obtained with an actor_token is not exchanged \
                 again"
                    .into(),
            ));
        }
        let actor = match (
            params.actor_token.as_deref(),
            params.actor_token_type.as_deref(),
        ) {
            (None, None) => None,
            (Some(token), kind) => {
                access_token_type("actor_token_type", kind)?;
                let actor = self.exchangeable(token, "actor_token", now).await?;
                // Only the exchanging client's own token: one that another client presented
                // to it as a bearer would otherwise let it name that client as the actor, and
                // a resource server requiring that actor would take a token it never asked for.
                if actor.roles.is_some()
                    || actor.sub != actor.client_id
                    || actor.act.is_some()
                    || actor.sub != client.client_id.as_str()
                {
                    return Err(ServiceError::InvalidRequest(
                        "the actor_token must be the exchanging client's own access token \
                         (client_credentials)"
                            .into(),
                    ));
                }
                Some(actor)
            }
            (None, Some(_)) => {
                return Err(ServiceError::InvalidRequest(
                    "actor_token_type is given without actor_token".into(),
                ));
            }
        };
        let actor_name = actor
            .as_ref()
            .map_or(client.client_id.as_str(), |a| a.sub.as_str());
        let act = chain(actor_name, subject.act.as_ref())?;
        let scope = exchanged_scope(request.scope.as_deref(), &subject, &client.scope, |token| {
            self.is_admin_scope(token)
        })?;
        let audience = self.audience_for_scope(client, asked_audience(request)?, &scope)?;
        // Dated no earlier than the tokens it comes from: a cut-off that a revocation set in
        // this second lies beyond it, and a token dated before its subject's would die of a
        // cut-off that the subject token outlived.
        let (issued_at, waited) = issued_at(
            now,
            [
                authenticated.not_before,
                Some(subject.iat),
                actor.as_ref().map(|a| a.iat),
            ],
        )
        .await?;
        if waited {
            self.refuse_if_changed(None, client, || {
                ServiceError::InvalidClient("client authentication failed".into())
            })
            .await?;
        }
        if subject.exp <= issued_at {
            // Waiting for a cut-off outlasted the subject token: the new one would be born dead.
            return Err(ServiceError::InvalidRequest(
                "invalid subject_token: the token has expired".into(),
            ));
        }
        let session = subject.sid.as_deref().map(TokenId::from_trusted);
        let grant = Grant {
            subject: &subject.sub,
            client_id: &client.client_id,
            audience: &audience,
            scope: &scope,
            roles: subject.roles.clone(),
            session: session.as_ref(),
            delegation: Some(Delegation {
                act: act.clone(),
                subject_client_id: subject
                    .subject_client_id
                    .clone()
                    .unwrap_or_else(|| subject.client_id.clone()),
                expires_at: subject.exp,
            }),
        };
        let issued = self
            .issue(&grant, None, issued_at)
            .map_err(|error| match error {
                // The chain and the subject's roles together exceed what a token may carry.
                ServiceError::Internal(source) if is_refused(source.as_ref()) => {
                    ServiceError::InvalidRequest(format!(
                        "the exchanged token would be too large: {source}"
                    ))
                }
                other => other,
            })?;
        // A revocation of the subject token answered while this exchange ran (its `jti`, which
        // the new token does not carry), or of the exchanging client, must still stop it: check
        // once more before handing the new token out, as the password grant does.
        let (live, ()) = tokio::try_join!(
            self.access_is_live(&subject, now),
            self.refuse_if_client_revoked_meanwhile(client, issued_at, now),
        )?;
        if !live {
            return Err(ServiceError::InvalidRequest(
                "the subject_token was revoked during the exchange".into(),
            ));
        }
        let actors: Vec<&str> = act.actors().collect();
        Record::new(Event::TokenExchanged, actor_name, &request.client.origin)
            .client(client.client_id.as_str())
            .subject(&subject.sub)
            .actors(&actors.join(" "))
            .audience(&audience)
            .emit();
        Ok(issued)
    }

    /// A subject or actor token: an access token of this issuer, verified and live as a bearer
    /// token is, and not one for the admin API. RFC 8693 §2.2.2: a token that is invalid for
    /// the exchange is `invalid_request`.
    async fn exchangeable(
        &self,
        token: &str,
        name: &str,
        now: UnixTime,
    ) -> Result<AccessClaims, ServiceError> {
        let claims = self
            .verifier
            .verify_access_at(&self.keys.current(), token, now)
            .map_err(|e| ServiceError::InvalidRequest(format!("invalid {name}: {e}")))?;
        if claims.aud == self.admin_audience {
            // Admin tokens are good for the admin API and nothing else, this exchange included.
            return Err(ServiceError::InvalidRequest(format!(
                "invalid {name}: a token for the admin API is never exchanged"
            )));
        }
        if !self.access_is_live(&claims, now).await? {
            return Err(ServiceError::InvalidRequest(format!(
                "invalid {name}: the token has been revoked"
            )));
        }
        Ok(claims)
    }
}

fn is_refused(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(error.downcast_ref::<KeyError>(), Some(KeyError::Refused(_)))
}

/// Whether what an exchange keeps of `subject` (its `act` chain and the client its chain began
/// with) names its `client_id`: always, but for a token from an exchange with an actor token.
fn names_its_client_in_chain(subject: &AccessClaims) -> bool {
    let Some(act) = &subject.act else {
        return true;
    };
    act.actors()
        .chain(subject.subject_client_id.as_deref())
        .any(|client| client == subject.client_id)
}

/// `value` must be the access-token type; `name` is the parameter, for the message.
fn access_token_type(name: &str, value: Option<&str>) -> Result<(), ServiceError> {
    match value {
        Some(ACCESS_TOKEN_TYPE) => Ok(()),
        None => Err(ServiceError::InvalidRequest(format!("{name} is required"))),
        Some(other) => Err(ServiceError::InvalidRequest(format!(
            "{name} '{}' is not supported: only {ACCESS_TOKEN_TYPE}",
            truncate(other)
        ))),
    }
}

/// The `act` of an exchanged token: `actor` outermost, the subject token's own chain inside
/// (RFC 8693 §4.1), at most [`MAX_ACTORS`] long.
pub(super) fn chain(actor: &str, previous: Option<&Act>) -> Result<Act, ServiceError> {
    let act = Act {
        sub: actor.to_owned(),
        act: previous.cloned().map(Box::new),
    };
    if act.depth() > MAX_ACTORS {
        return Err(ServiceError::InvalidRequest(format!(
            "the subject_token has been exchanged {} times already; a chain holds at most \
             {MAX_ACTORS} actors",
            act.depth() - 1
        )));
    }
    Ok(act)
}

/// The scope of an exchanged token: what is asked for, within both the subject token's scope
/// and the client's; without `scope`, all that both share. Admin scopes never: the subject
/// token is not one for the admin API, and no exchange makes one.
pub(super) fn exchanged_scope(
    requested: Option<&str>,
    subject: &AccessClaims,
    client: &Scope,
    is_admin: impl Fn(&str) -> bool,
) -> Result<Scope, ServiceError> {
    let held = Scope::parse(&subject.scope)
        .map_err(|_| ServiceError::InvalidRequest("invalid subject_token: its scope".into()))?;
    let allowed = held.intersection(client).filter(|token| !is_admin(token));
    let Some(requested) = requested else {
        return Ok(allowed);
    };
    let scope = Scope::parse(requested).map_err(|e| ServiceError::InvalidScope(e.to_string()))?;
    if scope.iter().any(&is_admin) {
        return Err(ServiceError::InvalidScope(
            "scopes for administrators are never granted by token exchange".into(),
        ));
    }
    if !scope.is_subset(&allowed) {
        return Err(ServiceError::InvalidScope(format!(
            "an exchange narrows, never widens: the scope may include only what both the \
             subject_token and the client hold: {allowed}"
        )));
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClientId;
    use crate::oauth::issue::access_claims;
    use crate::tokens::Claims;

    fn subject(scope: &str, act: Option<Act>) -> AccessClaims {
        AccessClaims {
            claims: Claims {
                iss: "https://issuer.test".into(),
                sub: "alice".into(),
                aud: "api".into(),
                exp: 1_000,
                iat: 100,
                nbf: 100,
                jti: "j".into(),
                client_id: "gateway".into(),
                scope: scope.into(),
            },
            roles: Some(vec!["user".into()]),
            sid: Some("s".into()),
            act,
            subject_client_id: None,
        }
    }

    fn scope(value: &str) -> Scope {
        Scope::parse(value).unwrap()
    }

    fn is_admin(token: &str) -> bool {
        token == "admin"
    }

    #[test]
    fn a_new_actor_goes_outermost_and_the_earlier_chain_nests_inside() {
        let first = chain("orders", None).unwrap();
        let second = chain("payments", Some(&first)).unwrap();
        assert_eq!(
            serde_json::to_value(&second).unwrap(),
            serde_json::json!({"sub": "payments", "act": {"sub": "orders"}})
        );
        assert_eq!(second.actors().collect::<Vec<_>>(), ["payments", "orders"]);
    }

    #[test]
    fn a_chain_longer_than_verifiers_read_is_refused() {
        let mut act = chain("a0", None).unwrap();
        for n in 1..MAX_ACTORS {
            act = chain(&format!("a{n}"), Some(&act)).unwrap();
        }
        assert_eq!(act.depth(), MAX_ACTORS);
        assert!(matches!(
            chain("one-more", Some(&act)),
            Err(ServiceError::InvalidRequest(_))
        ));
    }

    #[test]
    fn without_scope_an_exchange_gets_what_subject_and_client_share_less_admin_scopes() {
        let held = subject("read write admin profile", None);
        let got = exchanged_scope(None, &held, &scope("read write admin"), is_admin).unwrap();
        assert_eq!(got.to_string(), "read write");
    }

    #[test]
    fn a_scope_beyond_the_subject_or_the_client_or_an_admin_scope_is_refused() {
        let held = subject("read profile", None);
        let client = scope("read write admin");
        assert_eq!(
            exchanged_scope(Some("read"), &held, &client, is_admin)
                .unwrap()
                .to_string(),
            "read"
        );
        for asked in ["write", "profile", "admin", "read write"] {
            assert!(
                matches!(
                    exchanged_scope(Some(asked), &held, &client, is_admin),
                    Err(ServiceError::InvalidScope(_))
                ),
                "{asked}"
            );
        }
    }

    #[test]
    fn an_exchanged_token_carries_the_chain_and_never_outlives_its_subject() {
        let client = ClientId::parse("orders").unwrap();
        let scope = scope("read");
        let held = subject("read", None);
        let grant = Grant {
            subject: &held.sub,
            client_id: &client,
            audience: "orders-api",
            scope: &scope,
            roles: held.roles.clone(),
            session: None,
            delegation: Some(Delegation {
                act: chain("orders", None).unwrap(),
                subject_client_id: held.client_id.clone(),
                expires_at: held.exp,
            }),
        };
        let claims = access_claims(&grant, "https://issuer.test", 900, 900 + 900);
        assert_eq!(claims.exp, 1_000, "the subject token's exp comes first");
        assert_eq!(claims.subject_client_id.as_deref(), Some("gateway"));
        assert_eq!(claims.clients(), ["gateway", "orders"]);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["act"], serde_json::json!({"sub": "orders"}));
        assert_eq!(json["client_id"], "orders");
        let later = access_claims(&grant, "https://issuer.test", 50, 60);
        assert_eq!(later.exp, 60, "the access lifetime when it ends first");
    }

    #[test]
    fn tokens_from_other_grants_carry_neither_act_nor_subject_client_id() {
        let client = ClientId::parse("web").unwrap();
        let scope = scope("read");
        let grant = Grant {
            subject: "alice",
            client_id: &client,
            audience: "api",
            scope: &scope,
            roles: None,
            session: None,
            delegation: None,
        };
        let json = serde_json::to_value(access_claims(&grant, "i", 1, 2)).unwrap();
        assert!(json.get("act").is_none() && json.get("subject_client_id").is_none());
    }
}
