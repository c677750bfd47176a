//! Clients: registration, reading, permissions, secret rotation and removal.

use std::collections::BTreeSet;

use super::{Change, Page, conflict_or, invalid, paginate, revoke_subject};
use crate::audit::{self, Event};
use crate::configuration::TokenSettings;
use crate::credentials::{ClientKeySet, ClientSecret, check_jwks_uri, check_redirect_uris};
use crate::domain::{ClientId, GrantType, Scope, Secret, random_token};
use crate::error::ServiceError;
use crate::store::{ClientKeys, ClientRecord, Store, Subject};

/// What a new client may do.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub public: bool,
    pub grants: BTreeSet<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: BTreeSet<String>,
    /// Public keys instead of a secret: the client authenticates with signed assertions
    /// (`private_key_jwt`).
    pub keys: Option<ClientKeys>,
    /// Where a browser sign-in may return to (`authorization_code`), compared exactly.
    pub redirect_uris: Vec<String>,
    /// A client of the operator's own: no consent page for its users.
    pub first_party: bool,
}

/// What an administrator may change about a client; `None` leaves a field as it is. Each
/// given field replaces the client's.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub grants: Option<BTreeSet<GrantType>>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<BTreeSet<String>>,
    /// New keys, for a client that has keys already (a key rotation).
    pub keys: Option<ClientKeys>,
    /// New redirect URIs (an empty list takes them all away, and with them the grant
    /// `authorization_code`, which must then be taken away too).
    pub redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
}

/// A registered client and, for a confidential one, its secret, shown this once.
pub struct RegisteredClient {
    pub client: ClientRecord,
    pub secret: Option<Secret>,
}

/// Registers a client. Without grants, a client with redirect URIs gets `authorization_code` and
/// `refresh_token`, any other confidential client `client_credentials`; a public client must
/// name its grants, since it can use neither that nor anything by default. A client
/// registered with keys gets no secret.
pub async fn add_client(
    change: &Change<'_>,
    client_id: &str,
    spec: ClientSpec,
) -> Result<RegisteredClient, ServiceError> {
    let client_id = ClientId::parse(client_id).map_err(invalid)?;
    let mut grants = spec.grants;
    if grants.is_empty() && !spec.redirect_uris.is_empty() {
        // A client registered with redirect URIs signs users in through a browser.
        grants.extend([GrantType::AuthorizationCode, GrantType::RefreshToken]);
    }
    if grants.is_empty() && !spec.public {
        grants.insert(GrantType::ClientCredentials);
    }
    let redirect_uris = check_redirect_uris(&spec.redirect_uris).map_err(invalid)?;
    let grants = checked_grants(spec.public, grants)?;
    check_browser_grant(&grants, &redirect_uris)?;
    let scope = Scope::from_tokens(&spec.scopes).map_err(invalid)?;
    let audiences = checked_audiences(spec.audiences)?;
    if spec.public && spec.keys.is_some() {
        return Err(ServiceError::InvalidRequest(
            "a public client has no keys: keys make a client confidential".into(),
        ));
    }
    let keys = spec.keys.map(checked_keys).transpose()?;
    let generated = (!spec.public && keys.is_none()).then(ClientSecret::generate);
    let client = ClientRecord {
        client_id,
        secret_hash: generated.as_ref().map(|g| g.hash.clone()),
        grants,
        scope,
        audiences,
        created_at: change.now,
        keys_version: keys.as_ref().map(|_| random_token(16)),
        keys,
        redirect_uris,
        first_party: spec.first_party,
    };
    change
        .store
        .create_client(&client)
        .await
        .map_err(|e| conflict_or(e, "the client_id is taken"))?;
    audit::change(change.by, Event::ClientCreated, client.client_id.as_str());
    Ok(RegisteredClient {
        client,
        secret: generated.map(|g| g.secret),
    })
}

/// How the client authenticates, as RFC 7591 names it: `client_secret_basic` (or `_post`),
/// `private_key_jwt`, or `none` for a public client.
pub fn auth_method(client: &ClientRecord) -> &'static str {
    match (&client.secret_hash, &client.keys) {
        (_, Some(_)) => "private_key_jwt",
        (Some(_), None) => "client_secret_basic",
        (None, None) => "none",
    }
}

/// One client; `NotFound` if there is none.
pub async fn get_client(store: &dyn Store, client_id: &str) -> Result<ClientRecord, ServiceError> {
    let id = ClientId::parse(client_id).map_err(invalid)?;
    store
        .get_client(&id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no client '{id}'")))
}

/// Clients in id order after the cursor `after` (a client id), `limit` at most.
pub async fn list_clients(
    store: &dyn Store,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<ClientRecord>, ServiceError> {
    // Clients are few (applications, not people), so the store lists them all at once.
    let mut clients = store.list_clients().await?;
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let clients = clients
        .into_iter()
        .filter(|c| after.is_none_or(|after| c.client_id.as_str() > after))
        .take(limit + 1)
        .collect();
    Ok(paginate(clients, limit, |c| c.client_id.to_string()))
}

/// Replaces a client's grants, scopes, audiences or keys. Tokens already issued keep what they
/// were given until they expire; refresh tokens are narrowed to the new permissions. Keys
/// replace the client's credential, its secret or its old keys: that stops working at once and,
/// as with a rotation, every token issued through the client is revoked.
pub async fn update_client(
    change: &Change<'_>,
    tokens: &TokenSettings,
    client_id: &str,
    changes: ClientChanges,
) -> Result<ClientRecord, ServiceError> {
    let mut client = get_client(change.store, client_id).await?;
    if let Some(grants) = changes.grants {
        client.grants = checked_grants(client.is_public(), grants)?;
    }
    if let Some(scopes) = changes.scopes {
        client.scope = Scope::from_tokens(&scopes).map_err(invalid)?;
    }
    if let Some(audiences) = changes.audiences {
        client.audiences = checked_audiences(audiences)?;
    }
    let credential_replaced = changes.keys.is_some();
    if let Some(keys) = changes.keys {
        if client.is_public() {
            return Err(ServiceError::InvalidRequest(
                "a public client has no keys: keys make a client confidential".into(),
            ));
        }
        // A secret that stayed valid beside keys would be a second way in.
        client.secret_hash = None;
        client.keys = Some(checked_keys(keys)?);
        client.keys_version = Some(random_token(16));
    }
    if let Some(uris) = changes.redirect_uris {
        client.redirect_uris = check_redirect_uris(&uris).map_err(invalid)?;
    }
    if let Some(first_party) = changes.first_party {
        client.first_party = first_party;
    }
    check_browser_grant(&client.grants, &client.redirect_uris)?;
    change.store.update_client(&client).await?;
    if credential_replaced {
        // What the old credential (a secret or keys) gave dies with it, as a rotation's does.
        // Revoked whenever keys are given, so that the retry of an update cut short by a 503
        // after the store changed (the secret gone, nothing revoked yet) completes it.
        revoke_subject(
            change.store,
            tokens,
            &Subject::Client(client.client_id.clone()),
        )
        .await?;
    }
    audit::change(change.by, Event::ClientUpdated, client.client_id.as_str());
    Ok(client)
}

/// Gives a confidential client a new secret, shown this once; the old one stops working at
/// once, and every token issued through the client with it is revoked (also an issuance that
/// checked the old secret while this ran).
pub async fn rotate_secret(
    change: &Change<'_>,
    tokens: &TokenSettings,
    client_id: &str,
) -> Result<Secret, ServiceError> {
    let mut client = get_client(change.store, client_id).await?;
    if client.secret_hash.is_none() {
        return Err(ServiceError::InvalidRequest(
            "a public client, or one with keys, has no secret to rotate".into(),
        ));
    }
    let generated = ClientSecret::generate();
    client.secret_hash = Some(generated.hash);
    change.store.update_client(&client).await?;
    revoke_subject(
        change.store,
        tokens,
        &Subject::Client(client.client_id.clone()),
    )
    .await?;
    audit::change(
        change.by,
        Event::ClientSecretRotated,
        client.client_id.as_str(),
    );
    Ok(generated.secret)
}

/// Removes a client: it can get no more tokens, and every token issued through it is revoked:
/// its own `client_credentials` tokens and the tokens of users who signed in with it.
pub async fn delete_client(
    change: &Change<'_>,
    tokens: &TokenSettings,
    client_id: &str,
) -> Result<(), ServiceError> {
    let id = ClientId::parse(client_id).map_err(invalid)?;
    let existed = change.store.delete_client(&id).await?;
    // Revoked also when the client is gone already: the retry of a removal cut short by a
    // 503 (deleted, not yet revoked) completes it. Client ids are a namespace of their own,
    // so this never touches a user's tokens.
    revoke_subject(change.store, tokens, &Subject::Client(id.clone())).await?;
    if !existed {
        return Err(ServiceError::NotFound(format!("no client '{id}'")));
    }
    audit::change(change.by, Event::ClientDeleted, id.as_str());
    Ok(())
}

fn checked_grants(
    public: bool,
    grants: BTreeSet<GrantType>,
) -> Result<BTreeSet<GrantType>, ServiceError> {
    if grants.is_empty() {
        return Err(ServiceError::InvalidRequest(if public {
            "a public client needs at least one grant (authorization_code, password, refresh_token)"
                .into()
        } else {
            "a client needs at least one grant".into()
        }));
    }
    if public && grants.contains(&GrantType::ClientCredentials) {
        return Err(ServiceError::InvalidRequest(
            "a public client cannot use client_credentials".into(),
        ));
    }
    if public && grants.contains(&GrantType::TokenExchange) {
        // An exchange acts on someone else's token: the actor must prove who it is.
        return Err(ServiceError::InvalidRequest(
            "a public client cannot use token-exchange".into(),
        ));
    }
    Ok(grants)
}

/// `authorization_code` sends the user's browser back to the client: only to a redirect URI
/// registered for it, so a client without one cannot have the grant.
fn check_browser_grant(
    grants: &BTreeSet<GrantType>,
    redirect_uris: &BTreeSet<String>,
) -> Result<(), ServiceError> {
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(ServiceError::InvalidRequest(
            "the authorization_code grant needs at least one redirect URI".into(),
        ));
    }
    Ok(())
}

/// Refuses the audiences only the issuer itself may name: its own URL (the audience of refresh
/// tokens) and the admin API's. The configured default audience is fine: every client has it.
pub fn check_reserved_audiences<'a>(
    audiences: impl IntoIterator<Item = &'a String>,
    issuer: &str,
    admin_audience: &str,
) -> Result<(), ServiceError> {
    for audience in audiences {
        if crate::domain::is_issuers_own_audience(audience, issuer) {
            return Err(ServiceError::InvalidRequest(
                "a client's audience may not be the issuer or its token, revocation or \
                 introspection endpoint, the audiences of refresh tokens and client assertions"
                    .into(),
            ));
        }
        if audience == admin_audience {
            return Err(ServiceError::InvalidRequest(
                "a client's audience may not be the admin API's: admin tokens come only with an \
                 admin scope"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// A key set of public signature keys only, or a `jwks_uri` that is https (or loopback http).
fn checked_keys(keys: ClientKeys) -> Result<ClientKeys, ServiceError> {
    match keys {
        ClientKeys::Jwks(set) => {
            ClientKeySet::parse(&set).map_err(|why| invalid(format!("jwks: {why}")))?;
            Ok(ClientKeys::Jwks(set))
        }
        ClientKeys::JwksUri(uri) => Ok(ClientKeys::JwksUri(check_jwks_uri(&uri).map_err(invalid)?)),
    }
}

/// At most `limits::MAX_AUDIENCES`, each 1 to 256 printable ASCII characters other than space,
/// quote and backslash: the one a token carries as `aud` must keep it within the limits.
fn checked_audiences(audiences: BTreeSet<String>) -> Result<BTreeSet<String>, ServiceError> {
    crate::domain::check_audiences(&audiences).map_err(invalid)?;
    Ok(audiences)
}
