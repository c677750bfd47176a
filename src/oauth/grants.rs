//! The token endpoint's grants: `password`, `client_credentials` and `refresh_token`.

use super::client_auth::AuthenticatedClient;
use super::cut_off::issued_at;
use super::exchange::ExchangeParams;
use super::issue::Grant;
use super::throttle::LoginAttempt;
use super::{Authority, ClientCredentials};
use crate::audit::{Event, Record};
use crate::domain::{GrantType, Scope, Secret, TokenId, UnixTime, Username};
use crate::error::ServiceError;
use crate::store::{ClientRecord, Family, Subject, UserCutOffs, UserRecord};

/// A token request as received, before any checks.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    /// For `authorization_code`: the code, the redirect URI it was issued for, and the PKCE
    /// verifier.
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    /// Token exchange (RFC 8693 §2.1).
    pub exchange: ExchangeParams,
    pub client: ClientCredentials,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: Scope,
    /// An OpenID Connect ID token, for the `authorization_code` grant with scope `openid`.
    pub id_token: Option<String>,
    /// RFC 8693 `issued_token_type`, for token exchange.
    pub issued_token_type: Option<&'static str>,
}

impl Authority {
    /// Runs a token request through client authentication, the grant's checks, and issuance.
    /// Time comes in milliseconds because the refresh grace window is measured that finely.
    pub async fn exchange(
        &self,
        request: TokenRequest,
        now_ms: i64,
    ) -> Result<IssuedTokens, ServiceError> {
        let now = now_ms.div_euclid(1000);
        let grant_name = request
            .grant_type
            .as_deref()
            .ok_or_else(|| ServiceError::InvalidRequest("grant_type is required".into()))?;
        let grant = GrantType::parse(grant_name).ok_or_else(|| {
            ServiceError::UnsupportedGrantType(format!(
                "grant_type '{}' is not supported",
                truncate(grant_name)
            ))
        })?;
        let authenticated = self.authenticate_client_state(&request.client).await?;
        let client = &authenticated.record;
        if !client.grants.contains(&grant) {
            return Err(ServiceError::UnauthorizedClient(format!(
                "this client may not use the {grant} grant"
            )));
        }
        let issued = match grant {
            GrantType::Password => self.password_grant(&authenticated, request, now).await,
            GrantType::ClientCredentials => {
                self.client_credentials_grant(&authenticated, &request, now)
                    .await
            }
            GrantType::RefreshToken => self.refresh_grant(&authenticated, request, now_ms).await,
            GrantType::AuthorizationCode => self.code_grant(&authenticated, request, now).await,
            GrantType::TokenExchange => {
                self.token_exchange_grant(&authenticated, &request, now)
                    .await
            }
        };
        if issued.is_ok() {
            crate::metrics::token_issued(grant);
        }
        issued
    }

    async fn password_grant(
        &self,
        authenticated: &AuthenticatedClient,
        request: TokenRequest,
        now: UnixTime,
    ) -> Result<IssuedTokens, ServiceError> {
        let client = &authenticated.record;
        let username = request
            .username
            .as_deref()
            .ok_or_else(|| ServiceError::InvalidRequest("username is required".into()))?;
        let password = request
            .password
            .clone()
            .ok_or_else(|| ServiceError::InvalidRequest("password is required".into()))?;
        let origin = &request.client.origin;
        let scope = self.scope_asked(request.scope.as_deref(), &client.scope)?;
        let audience = self.audience_for_scope(client, asked_audience(&request)?, &scope)?;
        // Before the password: a refused attempt must cost no argon2 time.
        let attempt = self
            .reserve_login(username, client.client_id.as_str(), origin, now)
            .await?;
        let (user, user_cut_off) = self
            .check_password(&attempt, username, password, now)
            .await?;
        let Some(user) = user else {
            Record::new(Event::LoginFailed, &truncate(username), origin)
                .client(client.client_id.as_str())
                .emit();
            return Err(ServiceError::InvalidGrant(
                "invalid username or password".into(),
            ));
        };
        self.login_succeeded(&attempt).await?;
        let scope = self.scope_for_user(&user, scope, request.scope.is_some(), client, origin)?;
        Record::new(Event::Login, user.username.as_str(), origin)
            .client(client.client_id.as_str())
            .emit();
        let roles = Some(user.roles.iter().cloned().collect());
        let (issued_at, waited) = issued_at(now, [user_cut_off, authenticated.not_before]).await?;
        if waited {
            self.refuse_if_changed(Some(&user), client, changed_while_signing_in)
                .await?;
        }
        let family = if client.grants.contains(&GrantType::RefreshToken) {
            let family = self.new_family(
                TokenId::generate(),
                user.username.as_str(),
                &client.client_id,
                &scope,
                &audience,
                issued_at,
            );
            self.store.create_family(&family).await?;
            Some(family)
        } else {
            None
        };
        let grant = Grant {
            subject: user.username.as_str(),
            client_id: &client.client_id,
            audience: &audience,
            scope: &scope,
            roles,
            session: family.as_ref().map(|f| &f.id),
            delegation: None,
        };
        let issued = self.issue(&grant, family.as_ref(), issued_at)?;
        self.refuse_if_revoked_meanwhile(&user.username, client, family.as_ref(), issued_at, now)
            .await?;
        Ok(issued)
    }

    /// A password change (or a client's removal) that lands while the password is checked
    /// leaves this login's tokens dead on arrival, since they are dated by when the credentials
    /// were read. Say so instead of handing them out: the caller signs in again, with the
    /// credentials now in force.
    pub(super) async fn refuse_if_revoked_meanwhile(
        &self,
        username: &Username,
        client: &ClientRecord,
        family: Option<&Family>,
        issued_at: UnixTime,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let client = Subject::Client(client.client_id.clone());
        let ((_, user_cut_offs), client_cut_off) = tokio::try_join!(
            self.store.user_and_not_before(username, now),
            self.store.subject_not_before(&client, now),
        )?;
        if [user_cut_offs.for_access(), client_cut_off]
            .into_iter()
            .flatten()
            .all(|cut_off| cut_off <= issued_at)
        {
            return Ok(());
        }
        if let Some(family) = family {
            self.store.revoke_family(&family.id, now).await?;
        }
        Err(ServiceError::InvalidGrant(
            "the account's tokens were revoked while signing in; sign in again".into(),
        ))
    }

    /// A client removed, or given a new credential, while an issuance that checked its old one
    /// waited (on the client's key server, say) leaves that issuance's tokens dead on arrival,
    /// since they are dated by when the credentials were read. Say so instead of handing them
    /// out: the caller authenticates again, with the credentials now in force.
    pub(super) async fn refuse_if_client_revoked_meanwhile(
        &self,
        client: &ClientRecord,
        issued_at: UnixTime,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let subject = Subject::Client(client.client_id.clone());
        match self.store.subject_not_before(&subject, now).await? {
            Some(cut_off) if cut_off > issued_at => Err(ServiceError::InvalidClient(
                "the client's credentials were revoked while its token was issued".into(),
            )),
            _ => Ok(()),
        }
    }

    /// [`Self::judge_password`] for an attempt reserved under the login limits.
    pub(super) async fn check_password(
        &self,
        attempt: &LoginAttempt,
        username: &str,
        password: Secret,
        now: UnixTime,
    ) -> Result<(Option<UserRecord>, Option<UnixTime>), ServiceError> {
        match self.judge_password(username, password, now).await {
            Ok(judged) => Ok(judged),
            // Never judged (the hashing queue was full, the store failed): the attempt was no
            // guess, so its reservations go back and an overload never becomes a lockout.
            Err(error) => {
                if let Err(release) = self.give_back(attempt).await {
                    tracing::warn!(
                        error = %release,
                        "a login attempt's reservations were not given back"
                    );
                }
                Err(error)
            }
        }
    }

    /// The user, if the password is theirs and the account is enabled, and the cut-off of the
    /// user's tokens as it stood when the password hash was read. An unknown or malformed
    /// username costs one argon2 verification like a wrong password does.
    async fn judge_password(
        &self,
        username: &str,
        password: Secret,
        now: UnixTime,
    ) -> Result<(Option<UserRecord>, Option<UnixTime>), ServiceError> {
        let (user, cut_offs) = match Username::parse(username) {
            Ok(name) => self.store.user_and_not_before(&name, now).await?,
            Err(_) => (None, UserCutOffs::default()),
        };
        let cut_off = cut_offs.for_access();
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let may_sign_in = user.as_ref().is_some_and(|u| !u.disabled);
        let accepted = self
            .passwords
            .verify(password.clone(), stored, may_sign_in)
            .await?;
        let user = user.filter(|_| accepted);
        if let Some(user) = &user {
            self.upgrade_password_hash(user, password).await;
        }
        Ok((user, cut_off))
    }

    /// A hash imported from another system, or made under older settings, becomes argon2id
    /// with the configured cost at the first login that proves the password. It replaces the
    /// user as read only if nothing changed meanwhile (a password change wins), and the login
    /// goes on whether or not it could.
    async fn upgrade_password_hash(&self, user: &UserRecord, password: Secret) {
        if !user.imported && !self.passwords.needs_rehash(&user.password_hash) {
            return;
        }
        // bcrypt reads only a password's first 72 bytes: a longer one that matched may differ
        // from the user's after them, and hashed whole it would lock the user out of theirs.
        let scheme = crate::credentials::legacy::Scheme::of(&user.password_hash);
        if scheme == Some(crate::credentials::legacy::Scheme::Bcrypt)
            && password.expose().len() > 72
        {
            return;
        }
        let username = user.username.as_str();
        let hash = match self.passwords.hash(password).await {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(%error, username, "could not upgrade a password hash");
                return;
            }
        };
        let upgraded = UserRecord {
            password_hash: hash,
            imported: false,
            ..user.clone()
        };
        match self.store.replace_user_if_unchanged(user, &upgraded).await {
            Ok(true) => {
                crate::metrics::legacy_password_hash_upgraded();
                let from = crate::credentials::legacy::Scheme::of(&user.password_hash)
                    .map_or("unknown", |scheme| scheme.as_str());
                tracing::info!(username, from, "password hash upgraded to argon2id");
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, username, "could not upgrade a password hash"),
        }
    }

    async fn client_credentials_grant(
        &self,
        authenticated: &AuthenticatedClient,
        request: &TokenRequest,
        now: UnixTime,
    ) -> Result<IssuedTokens, ServiceError> {
        let client = &authenticated.record;
        if client.is_public() {
            return Err(ServiceError::UnauthorizedClient(
                "a public client cannot use the client_credentials grant".into(),
            ));
        }
        let scope = self.scope_asked(request.scope.as_deref(), &client.scope)?;
        if self.has_admin_scope(&scope) {
            // Admin scopes are for users with role admin; a client is not one.
            return Err(ServiceError::InvalidScope(
                "scopes for administrators are granted to users, not to clients".into(),
            ));
        }
        let audience = self.audience_for_scope(client, asked_audience(request)?, &scope)?;
        let grant = Grant {
            subject: client.client_id.as_str(),
            client_id: &client.client_id,
            audience: &audience,
            scope: &scope,
            roles: None,
            session: None,
            delegation: None,
        };
        let (issued_at, waited) = issued_at(now, [authenticated.not_before]).await?;
        if waited {
            self.refuse_if_changed(None, client, || {
                ServiceError::InvalidClient("client authentication failed".into())
            })
            .await?;
        }
        let issued = self.issue(&grant, None, issued_at)?;
        if authenticated.by_assertion {
            // A secret is checked in an instant; an assertion may have waited on a key fetch.
            self.refuse_if_client_revoked_meanwhile(client, issued_at, now)
                .await?;
        }
        Record::new(
            Event::TokenIssued,
            client.client_id.as_str(),
            &request.client.origin,
        )
        .client(client.client_id.as_str())
        .emit();
        Ok(issued)
    }

    /// The scope a password or client_credentials request gets: what it asks for, which may
    /// narrow the client's scope but never widen it; without `scope`, all of the client's
    /// scopes but the admin ones, which are granted only when asked for.
    pub(super) fn scope_asked(
        &self,
        requested: Option<&str>,
        allowed: &Scope,
    ) -> Result<Scope, ServiceError> {
        match requested {
            None => Ok(self.without_admin_scopes(allowed)),
            Some(_) => requested_scope(requested, allowed),
        }
    }
}

pub(super) fn changed_while_signing_in() -> ServiceError {
    ServiceError::InvalidGrant("the account changed while signing in; sign in again".into())
}

/// The audience asked for with `audience` or RFC 8707 `resource`, which must agree.
pub(super) fn asked_audience(request: &TokenRequest) -> Result<Option<&str>, ServiceError> {
    match (request.audience.as_deref(), request.resource.as_deref()) {
        (Some(a), Some(r)) if a != r => Err(ServiceError::InvalidTarget(
            "audience and resource disagree".into(),
        )),
        (Some(a), _) | (None, Some(a)) => Ok(Some(a)),
        (None, None) => Ok(None),
    }
}

/// The requested scope, which may narrow `allowed` but never widen it; all of `allowed` when
/// none is asked for.
pub(super) fn requested_scope(
    requested: Option<&str>,
    allowed: &Scope,
) -> Result<Scope, ServiceError> {
    let Some(requested) = requested else {
        return Ok(allowed.clone());
    };
    let scope = Scope::parse(requested).map_err(|e| ServiceError::InvalidScope(e.to_string()))?;
    if !scope.is_subset(allowed) {
        return Err(ServiceError::InvalidScope(format!(
            "the scope may include only: {allowed}"
        )));
    }
    Ok(scope)
}

/// Echoes caller input in messages only in a bounded form.
pub(super) fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_requested_scope_means_everything_the_client_may_have() {
        let allowed = Scope::parse("read write").unwrap();
        assert_eq!(requested_scope(None, &allowed).unwrap(), allowed);
    }

    #[test]
    fn a_narrower_scope_is_granted_and_a_wider_one_refused() {
        let allowed = Scope::parse("read write").unwrap();
        assert_eq!(
            requested_scope(Some("read"), &allowed).unwrap().to_string(),
            "read"
        );
        assert!(matches!(
            requested_scope(Some("read admin"), &allowed),
            Err(ServiceError::InvalidScope(_))
        ));
    }
}
