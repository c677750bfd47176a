//! Users and clients as operators and the registration endpoint manage them. The CLI and the
//! HTTP API both call these, so a rule holds however a record is made.

use std::collections::BTreeSet;

use crate::credentials::{ClientSecret, PasswordHasher, check_password_policy};
use crate::domain::{ClientId, GrantType, Scope, Secret, UnixTime, Username};
use crate::oauth::AuthError;
use crate::store::{ClientRecord, Store, UserRecord};

/// Creates a user with a freshly hashed password.
pub async fn add_user(
    store: &dyn Store,
    hasher: &PasswordHasher,
    username: &str,
    password: Secret,
    roles: BTreeSet<String>,
    now: UnixTime,
) -> Result<UserRecord, AuthError> {
    let username = Username::parse(username).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    check_password_policy(&password).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    check_roles(&roles)?;
    let user = UserRecord {
        username,
        password_hash: hasher.hash(password).await?,
        roles,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    store.create_user(&user).await.map_err(|e| match e {
        crate::store::StoreError::Conflict => AuthError::Conflict("the username is taken".into()),
        other => other.into(),
    })?;
    tracing::info!(target: "audit", event = "user_created", username = %user.username);
    Ok(user)
}

/// Replaces a user's password and revokes every token the user holds.
pub async fn set_password(
    store: &dyn Store,
    hasher: &PasswordHasher,
    username: &str,
    password: Secret,
    access_ttl: u64,
    refresh_ttl: u64,
    now: UnixTime,
) -> Result<(), AuthError> {
    let name = Username::parse(username).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    check_password_policy(&password).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    let mut user = store
        .get_user(&name)
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("no user '{name}'")))?;
    user.password_hash = hasher.hash(password).await?;
    user.updated_at = now;
    store.update_user(&user).await?;
    // Token times have one-second resolution: a token issued in the very second of the change
    // survives it, so that a login right after a reset is not refused.
    let keep_until = now + access_ttl.max(refresh_ttl) as i64;
    store.revoke_subject(name.as_str(), now, keep_until).await?;
    tracing::info!(target: "audit", event = "password_changed", username = %name);
    Ok(())
}

fn check_roles(roles: &BTreeSet<String>) -> Result<(), AuthError> {
    for role in roles {
        Username::parse(role.as_str())
            .map_err(|_| AuthError::InvalidRequest(format!("'{role}' is not a valid role name")))?;
    }
    Ok(())
}

/// What a new client may do.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub public: bool,
    pub grants: BTreeSet<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: BTreeSet<String>,
}

/// A registered client and, for a confidential one, its secret, shown this once.
pub struct RegisteredClient {
    pub client: ClientRecord,
    pub secret: Option<Secret>,
}

/// Registers a client. Without grants, a confidential client gets `client_credentials`; a public
/// client must name its grants, since it can use neither that nor anything by default.
pub async fn add_client(
    store: &dyn Store,
    client_id: &str,
    spec: ClientSpec,
    now: UnixTime,
) -> Result<RegisteredClient, AuthError> {
    let client_id = ClientId::parse(client_id).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    let mut grants = spec.grants;
    if grants.is_empty() {
        if spec.public {
            return Err(AuthError::InvalidRequest(
                "a public client needs at least one grant (password, refresh_token)".into(),
            ));
        }
        grants.insert(GrantType::ClientCredentials);
    }
    if spec.public && grants.contains(&GrantType::ClientCredentials) {
        return Err(AuthError::InvalidRequest(
            "a public client cannot use client_credentials".into(),
        ));
    }
    let scope = Scope::from_tokens(&spec.scopes).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    if spec.audiences.iter().any(|a| a.is_empty() || a.len() > 256) {
        return Err(AuthError::InvalidRequest("audiences must be 1 to 256 characters".into()));
    }
    let generated = (!spec.public).then(ClientSecret::generate);
    let client = ClientRecord {
        client_id,
        secret_hash: generated.as_ref().map(|g| g.hash.clone()),
        grants,
        scope,
        audiences: spec.audiences,
        created_at: now,
    };
    store.create_client(&client).await.map_err(|e| match e {
        crate::store::StoreError::Conflict => AuthError::Conflict("the client_id is taken".into()),
        other => other.into(),
    })?;
    tracing::info!(target: "audit", event = "client_created", client_id = %client.client_id);
    Ok(RegisteredClient {
        client,
        secret: generated.map(|g| g.secret),
    })
}
