//! The OAuth flows, independent of HTTP: client authentication, the grants, revocation,
//! introspection and bearer-token checks.

mod assertion;
pub mod authorize;
mod catalog;
mod client_auth;
mod code_grant;
mod cut_off;
mod exchange;
mod feed;
mod grants;
mod issue;
mod key_auth;
mod key_sets;
pub mod logout;
mod refresh;
mod roles;
mod sessions;
pub mod sign_in;
mod throttle;

use std::sync::Arc;

use crate::configuration::{Settings, TokenSettings};
use crate::credentials::PasswordHasher;
use crate::keys::KeyRing;
use crate::store::SharedStore;
use crate::tokens::TokenVerifier;

pub use assertion::{ASSERTION_TYPE, ED25519};
pub use client_auth::{ClientAssertion, ClientCredentials};
pub use exchange::{ACCESS_TOKEN_TYPE, ExchangeParams, MAX_ACTORS};
pub use feed::{FEED_POLL_AFTER, FeedAnswer};
pub use grants::{IssuedTokens, TokenRequest};
pub use sessions::{Introspection, TokenHint};

/// Everything the flows need, shared by every request.
pub struct Authority {
    issuer: String,
    tokens: TokenSettings,
    /// `admin.audience`: the `aud` of admin tokens, the only one the admin API accepts.
    admin_audience: String,
    store: SharedStore,
    keys: Arc<KeyRing>,
    verifier: TokenVerifier,
    passwords: PasswordHasher,
    catalog: catalog::GrantCatalog,
    security: crate::security::SecuritySettings,
    /// The key sets of `private_key_jwt` clients.
    client_keys: key_sets::ClientKeySets,
}

/// The addresses a `jwks_uri` may lead to; the setting was checked when it was loaded.
fn outbound_policy(
    security: &crate::security::SecuritySettings,
) -> crate::outbound::OutboundPolicy {
    let allowed =
        crate::security::AddressBlocks::parse(&security.jwks_uri_networks).unwrap_or_default();
    crate::outbound::OutboundPolicy::new(allowed)
}

impl Authority {
    pub fn new(
        settings: &Settings,
        store: SharedStore,
        keys: Arc<KeyRing>,
        passwords: PasswordHasher,
    ) -> Authority {
        Authority {
            issuer: settings.issuer.clone(),
            tokens: settings.tokens.clone(),
            admin_audience: settings.admin.audience.clone(),
            verifier: TokenVerifier::new(settings.issuer.clone()),
            store,
            keys,
            passwords,
            catalog: catalog::GrantCatalog::default(),
            security: settings.security.clone(),
            client_keys: key_sets::ClientKeySets::new(outbound_policy(&settings.security)),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn passwords(&self) -> &PasswordHasher {
        &self.passwords
    }

    pub fn tokens(&self) -> &TokenSettings {
        &self.tokens
    }

    /// The `aud` of tokens for the admin API (`admin.audience`).
    pub fn admin_audience(&self) -> &str {
        &self.admin_audience
    }
}
